"""Skill on independent observations: :func:`validate`, :func:`split_profiles`.

:func:`validate` scores a fitted model, or a volume it reconstructed, against
observations it was not fitted on (RO profiles held out of the fit, or an ionosonde
table of foF2 / hmF2) and scores its background on the same points, so that the table
says what the learned residual adds: RMSE and bias of log10 Ne, of log10 NmF2 and of
hmF2, and the skill ``1 - RMSE(model) / RMSE(background)``, overall and by latitude
band, local time and Kp class, with the counts of each group.

The model is evaluated at the points exactly as a fit evaluates its validation
points (:class:`~ionofield.observations.ObservationStore` and the trainer's
predictions), on the background the fit used; a volume is interpolated at them by
:func:`volume_at`. :func:`split_profiles` holds whole profiles out of a campaign, so
that a user can fit on one part and validate on the other.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ionofield._device import resolve_device
from ionofield._files import PathLike, atomic_path
from ionofield._version import __version__
from ionofield.align import DRIVERS
from ionofield.background import IRI_F107, campaign_background
from ionofield.campaign import check_campaign, drivers_at
from ionofield.diagnostics import _peak, peak_parameters
from ionofield.drivers import HourlyDrivers
from ionofield.errors import (
    CampaignError,
    ConfigError,
    CoverageError,
    DataWarning,
    ManyProblemsError,
)
from ionofield.io.cf import history_line
from ionofield.io.ionosonde import nmf2_from_fof2, open_ionosonde
from ionofield.io.ro import open_ro_profiles
from ionofield.model import RSTMRF
from ionofield.observations import ObservationStore
from ionofield.reconstruction import _check_background, _iri_f107_name, _usable_model
from ionofield.sphere import (
    Cells,
    axis_cells,
    fold_longitude,
    global_meridians,
    interpolate,
    longitude_cells,
)
from ionofield.timeutil import HOUR, to_datetime64, universal_time_hours
from ionofield.training import _Trainer

logger = logging.getLogger(__name__)

__all__ = ["split_profiles", "validate", "validate_command", "volume_at"]

#: Edges (deg N) of the default latitude bands: polar, middle and low latitudes of
#: each hemisphere.
LAT_BANDS = (-90.0, -60.0, -30.0, 0.0, 30.0, 60.0, 90.0)
#: Edges (hours) of the default local-time bins: night, morning, afternoon, evening.
LOCAL_TIME_BINS = (0.0, 6.0, 12.0, 18.0, 24.0)
#: Edges of the default Kp classes: quiet (Kp < 3), active (3 <= Kp < 5) and storm
#: (Kp >= 5, a G1 storm or stronger).
KP_CLASSES = (0.0, 3.0, 5.0, 9.0)
#: Edges of the default signal-to-noise classes of RO observations (``ne / ne_err``):
#: mostly noise (< 1), marginal (1-3), fair (3-10) and clean (>= 10). Where the true
#: density is below an occultation's noise (the night's bottomside, depletions), a
#: log10 error can reach a dex, and such points can dominate an RMSE.
SNR_CLASSES = (0.0, 1.0, 3.0, 10.0, math.inf)
#: Altitudes (km) where the F2 peak is looked for: above the E and F1 layers, below
#: any F2 peak.
PEAK_SEARCH_KM = (150.0, 800.0)
#: Altitude step (km) of the model's columns at ionosonde stations.
COLUMN_STEP_KM = 5.0
#: What is scored: the model (or volume), and its background alone.
ESTIMATES = ("model", "background")
#: The volume's variables of the two estimates.
ESTIMATES_IN_VOLUME = ("ne", "ne_background")

#: Range of each grouping's edges, and the form of its labels.
_GROUPINGS = {
    "lat_band": ((-90.0, 90.0), "lat {:g}..{:g}"),
    "local_time": ((0.0, 24.0), "LT {:02g}-{:02g}"),
    "kp_class": ((0.0, 9.0), "Kp {:g}-{:g}"),
    "snr_class": ((0.0, math.inf), "SNR {:g}-{:g}"),
}


#: No time tolerance: a one-time volume holds only at its time.
_EXACT = np.timedelta64(0, "ns")


class _Group(NamedTuple):
    """One group of the table: items with ``lower <= x < upper`` (``<= upper`` if closed)."""

    grouping: str
    label: str
    lower: float
    upper: float
    closed: bool


def split_profiles(
    ds: xr.Dataset, fraction: float = 0.1, *, seed: int = 0, block: str | None = None
) -> tuple[xr.Dataset, xr.Dataset]:
    """Hold whole profiles out of a campaign: one part to fit, the other to validate.

    Parameters
    ----------
    ds
        A campaign (:func:`ionofield.campaign`).
    fraction
        Share of the profiles (or, with ``block``, of the time blocks holding
        profiles) held out, in (0, 1); at least one is held out and one kept.
    seed
        Seeds the draw: the same campaign, fraction, seed and block give the same
        split.
    block
        None draws profiles at random: held-out profiles then share their hours with
        fitted ones, and the scores measure how well the fit fills the gaps between
        profiles. A duration (``"6h"``, ``"1D"``) holds out every profile that
        starts in the drawn blocks of that length: the scores then measure hours the
        fit has seen no profile of, as a forecast or a reconstruction of a data gap
        would meet them.

    Returns
    -------
    fit, held_out : xarray.Dataset
        Two campaigns with the same hourly drivers, splitting the observations by
        whole profiles: disjoint, and together the whole campaign. Their attributes
        record the split (``split``) and the new ``n_obs`` and ``n_profiles``.

    Raises
    ------
    CampaignError
        ``ds`` is not a campaign.
    ConfigError
        ``fraction`` is not in (0, 1), ``seed`` not a whole number >= 0, ``block``
        not a positive duration, or the campaign has fewer than two profiles (or
        blocks) to split.

    Examples
    --------
    >>> fit_part, held = split_profiles(ds, 0.2, seed=1)  # doctest: +SKIP
    >>> model = fit_part.rstmrf.fit()  # doctest: +SKIP
    >>> scores = validate(model, held)  # doctest: +SKIP
    """
    check_campaign(ds)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0.0 < fraction < 1.0):
        raise ConfigError(f"split_profiles: fraction={fraction!r}; give a share in (0, 1), "
                          "e.g. 0.1 to hold out a tenth of the profiles")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"split_profiles: seed={seed!r} must be an int >= 0, e.g. seed=0")
    _, code = np.unique(ds["obs_profile"].values.astype(str), return_inverse=True)
    unit = code
    if block is not None:
        try:
            step = pd.to_timedelta(block)
            if step <= pd.Timedelta(0):
                raise ValueError("not positive")
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"split_profiles: block={block!r} is not a positive duration; "
                              "give e.g. '6h' or '1D'") from exc
        time = pd.Series(to_datetime64(ds["obs_time"].values))
        first = time.groupby(code).transform("min").dt.floor(step).to_numpy()
        _, unit = np.unique(first, return_inverse=True)
    n_units = int(unit.max()) + 1
    what = "profiles" if block is None else f"blocks of {block} holding profiles"
    if n_units < 2:
        raise ConfigError(f"split_profiles: the campaign has {n_units} {what}; at least two "
                          "are needed to keep one and hold one out")
    n_held = min(max(int(round(fraction * n_units)), 1), n_units - 1)
    held_units = np.random.default_rng(seed).choice(n_units, size=n_held, replace=False)
    held = np.isin(unit, held_units)
    note = (f"{n_held} of {n_units} {what} held out (fraction {fraction:g}, seed {seed}) by "
            "ionofield.split_profiles")
    parts = []
    for mask, role in ((~held, "fit"), (held, "held-out")):
        part = ds.isel(obs=np.flatnonzero(mask))
        part.attrs = {**ds.attrs, "n_obs": int(mask.sum()),
                      "n_profiles": int(np.unique(code[mask]).size), "split": f"{role}: {note}"}
        parts.append(part)
    logger.info("split_profiles: %s", note)
    return parts[0], parts[1]


def validate(
    source: RSTMRF | PathLike | xr.Dataset,
    observations: xr.Dataset,
    *,
    campaign: xr.Dataset | None = None,
    background: xr.Dataset | xr.DataArray | None = None,
    lat_bands: Sequence[float] = LAT_BANDS,
    local_time_bins: Sequence[float] = LOCAL_TIME_BINS,
    kp_classes: Sequence[float] = KP_CLASSES,
    snr_classes: Sequence[float] = SNR_CLASSES,
    cache_dir: PathLike | None = None,
    device: str | torch.device | None = "auto",
) -> xr.Dataset:
    """Skill of a model or a volume on independent observations, against its background.

    Parameters
    ----------
    source
        A fitted :class:`~ionofield.RSTMRF`, the path of a model file, or a volume
        from :func:`ionofield.reconstruct` (``ne`` and ``ne_background`` on ``time,
        alt, lat, lon``; lazy or loaded, or opened from its NetCDF file).
    observations
        Data the source was not fitted on, either

        * RO profiles: ``ne`` (m-3) on the dimension ``obs`` with the coordinates of
          :func:`ionofield.open_ro_profiles` (``time``, ``lat``, ``lon``, ``alt`` km,
          optionally ``profile``) or of a campaign (``obs_time``, ...), e.g. the
          held-out part of :func:`split_profiles`; or
        * ionosonde soundings from :func:`ionofield.open_ionosonde`: ``nmf2`` (m-3; or
          ``fof2`` in MHz) and optionally ``hmf2`` (km) with coordinates ``time``,
          ``lat``, ``lon``.
    campaign
        The campaign whose hourly drivers (Kp, F10.7) the model reads at the points
        and the Kp classes come from; by default ``observations`` when it is a
        campaign. Required for a model; for a volume without one, the table has no
        Kp classes.
    background
        The background the model was fitted with, when it was user-supplied (as
        :func:`ionofield.reconstruct` takes it); unused for a volume, which carries
        its own ``ne_background``.
    lat_bands, local_time_bins, kp_classes, snr_classes
        Increasing group edges: latitudes (deg N) within -90..90, local times (hours)
        within 0..24, Kp within 0..9, the RO observations' signal-to-noise ratio
        ``ne / ne_err`` within 0..inf (only when they carry ``ne_err``; an F2 peak
        takes its observation's). Groups include their lower edge; the last also its
        upper one. Local time is the mean solar time, ``UT + lon / 15`` hours.
    cache_dir
        Disk cache of the IRI background (for a model).
    device
        The torch device the model runs on (as :func:`ionofield.reconstruct`); a
        model object is copied there, never moved.

    Returns
    -------
    xarray.Dataset
        Dims ``estimate`` (``"model"``, ``"background"``) and ``group`` (labels such
        as ``"all"``, ``"lat 30..60"``, ``"LT 06-12"``, ``"Kp 5-9"``, ``"SNR 0-1"``;
        coordinates ``grouping`` (``all``, ``lat_band``, ``local_time``, ``kp_class``,
        ``snr_class``) and the edges ``lower``, ``upper``). Variables: counts
        ``n_points`` (Ne values), ``n_nmf2`` and ``n_hmf2`` (F2 peaks);
        ``log10_ne_rmse``, ``log10_ne_bias``, ``log10_nmf2_rmse``,
        ``log10_nmf2_bias`` (dex), ``hmf2_rmse``, ``hmf2_bias`` (km) on ``(estimate,
        group)``, biases as estimate minus observation; and the skills
        ``log10_ne_skill``, ``log10_nmf2_skill``, ``hmf2_skill`` (``1 - RMSE(model)
        / RMSE(background)``; 1 is perfect, 0 no better than the background). A
        group without data holds NaN. The attributes describe the source and the
        observations (with how many fell outside the source) and hold a one-line
        ``summary``. Select with ``table.sel(group="all")`` or
        ``table.isel(group=table.grouping == "kp_class")``.

    Raises
    ------
    ConfigError
        ``source`` is none of the above, a group's edges are not increasing within
        their range, or a model is given without a campaign.
    CampaignError
        ``campaign`` is not a campaign, or ``observations`` are neither RO profiles
        nor soundings.
    ManyProblemsError
        The observations lack coordinates or hold non-positive or non-finite values.
    CoverageError
        No observation falls inside the source (its times, altitudes, latitudes and
        longitudes, and the campaign's hours).

    Warns
    -----
    DataWarning
        Observations outside the source are left out, with the count and the
        source's extent.

    Notes
    -----
    RO profiles are scored point by point (log10 Ne). Each profile's F2 peak is
    found, for the observation and for each estimate at the same points, by
    :func:`ionofield.peak_parameters`' parabola through log Ne at the largest value
    within :data:`PEAK_SEARCH_KM`; profiles whose observed maximum is their lowest or
    highest point there have no peak inside them and are not scored for it. At an
    ionosonde, the model's column is taken every :data:`COLUMN_STEP_KM` km (a volume's
    at its own altitudes) within :data:`PEAK_SEARCH_KM`, and its peak is compared with
    NmF2 = 1.24e10 foF2**2 and hmF2. Peaks are grouped at the observed peak's time
    and position.

    A volume is interpolated at the points by :func:`volume_at`: multilinearly in
    log10 Ne over time, altitude, latitude and longitude (across the antimeridian on
    a global grid); points beyond its grid are left out, never given its edge's
    value.

    Examples
    --------
    >>> scores = validate(model, held_out)  # doctest: +SKIP
    >>> scores.log10_ne_skill.sel(group="all")  # doctest: +SKIP
    >>> scores.log10_ne_rmse.isel(group=scores.grouping == "lat_band")  # doctest: +SKIP
    """
    groups = _group_table(lat_bands, local_time_bins, kp_classes, snr_classes)
    if campaign is None and _is_campaign(observations):
        campaign = observations
    if campaign is not None:
        check_campaign(campaign)
    scorer = _source(source, campaign, background, cache_dir, device)
    if _is_soundings(observations):
        parts, described = _score_soundings(scorer, observations, campaign)
    else:
        parts, described = _score_profiles(scorer, observations, campaign)
    # Kp classes need a campaign, SNR classes observations with ne_err.
    first = parts["log10_ne"]
    missing = {grouping for grouping, values in (("kp_class", first.kp), ("snr_class", first.snr))
               if values is None}
    with_snr = "snr_class" not in missing
    table = _table([g for g in groups if g.grouping not in missing], parts)
    table.attrs = {
        "title": "ionofield validation: skill on independent observations against the "
                 "background",
        "source": scorer.describe,
        "observations": described,
        "bias": "estimate minus observation",
        "skill": "1 - RMSE(model) / RMSE(background)",
        "local_time": "mean solar local time, UT + lon / 15 hours",
        "kp": "Kp of the 3-hour slot, from the campaign" if campaign is not None
              else "no campaign given: no Kp classes",
        "snr": "observed ne / ne_err of each RO observation" if with_snr
               else "no ne_err in the observations: no SNR classes",
        "history": history_line("validate"),
        "ionofield_version": __version__,
        "summary": _summary(table),
    }
    if scorer.interpolation:
        table.attrs["interpolation"] = scorer.interpolation
    logger.info("validate: %s", table.attrs["summary"])
    return table


def volume_at(
    volume: xr.Dataset,
    time: Any,
    alt: Any,
    lat: Any,
    lon: Any,
    *,
    log10: Sequence[str] = ("ne", "ne_background"),
    linear: Sequence[str] = (),
    snapshot_tolerance: np.timedelta64 = _EXACT,
) -> dict[str, np.ndarray]:
    """A volume's variables at scattered points, NaN outside it.

    Multilinear in time, altitude, latitude and longitude
    (:func:`ionofield.sphere.interpolate`), across the antimeridian when the volume's
    meridians go round the globe (:func:`grid_meridians`). Points beyond the grid's
    times, altitudes, latitudes or (regional) longitudes get NaN rather than the
    value at the grid's edge. A lazy volume is computed one dask chunk of times at a
    time, and only the chunks holding points, each once.

    Parameters
    ----------
    volume
        A Dataset on ``time, alt, lat, lon`` (the axes in any order; times
        increasing, altitudes and latitudes either way), e.g. from
        :func:`ionofield.reconstruct`.
    time, alt, lat, lon
        The points, broadcast together: datetime64 (or cftime), km, deg N, deg E (any
        range).
    log10
        Variables interpolated in log10 (densities): their log10 is returned.
    linear
        Variables interpolated as they are (``ne_log10_sigma``).
    snapshot_tolerance
        How far from the time of a one-time volume a point may be and still take
        its values (zero: only at that time).

    Returns
    -------
    dict of numpy.ndarray
        For each variable, float64 values of the broadcast shape of the points.

    Raises
    ------
    ConfigError
        A variable is not in the volume, or the volume lacks an axis.

    Examples
    --------
    >>> import pandas as pd
    >>> vol = xr.Dataset({"ne": (("time", "alt", "lat", "lon"), np.full((1, 2, 2, 2), 1e11))},
    ...                  coords={"time": pd.to_datetime(["2024-05-10"]), "alt": [200.0, 400.0],
    ...                          "lat": [-10.0, 10.0], "lon": [-180.0, 0.0]})
    >>> volume_at(vol, np.datetime64("2024-05-10"), 300.0, [0.0, 20.0], 90.0, log10=["ne"])
    {'ne': array([11., nan])}
    """
    names = [*log10, *linear]
    _check_volume(volume, names)
    fields = volume[names].sortby(["alt", "lat"])
    grid = to_datetime64(fields["time"].values)
    t, z, y, x = np.broadcast_arrays(to_datetime64(time), *(np.asarray(v, dtype=np.float64)
                                                            for v in (alt, lat, lon)))
    if grid.size == 1:
        inside = np.abs(t - grid[0]) <= snapshot_tolerance
        zero = np.zeros(t.shape, dtype=np.intp)
        time_cells = Cells(zero, zero, np.zeros(t.shape))
    else:
        inside = (t >= grid[0]) & (t <= grid[-1])
        time_cells = axis_cells((grid - grid[0]) / HOUR, (t - grid[0]) / HOUR)
    alt_axis, lat_axis = fields["alt"].values, fields["lat"].values
    inside &= (z >= alt_axis[0]) & (z <= alt_axis[-1]) & (y >= lat_axis[0]) & (y <= lat_axis[-1])
    meridians, columns, is_global = grid_meridians(fields["lon"].values)
    if is_global:
        lon_cells = longitude_cells(meridians, x)
    else:
        east = meridians[0] + np.mod(x - meridians[0], 360.0)  # eastward of the west edge
        inside &= east <= meridians[-1]
        lon_cells = axis_cells(meridians, east)
    out = np.full((len(names), *t.shape), np.nan)
    lower, upper = time_cells.lower, time_cells.upper
    edges = np.cumsum((0, *(fields.chunksizes.get("time") or (grid.size,))))
    carried = None  # the last time of the chunk before, when it was read
    for start, stop in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        # Points whose later time lies in this chunk; those whose earlier time is the
        # last of the chunk before take it from `carried`, so no chunk is read twice.
        sel = inside & (upper >= start) & (upper < stop)
        if not (sel.any() or (inside & (lower >= start) & (lower < stop)).any()):
            carried = None
            continue
        block = fields.isel(time=slice(start, stop)).to_dataarray("field")
        values = block.transpose("time", "alt", "lat", "lon", "field").values[:, :, :, columns]
        values = np.ascontiguousarray(values, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log10(values[..., : len(log10)], out=values[..., : len(log10)])
        first = start if carried is None else start - 1
        stack = values if carried is None else np.concatenate([carried, values])
        carried = values[-1:]
        if not sel.any():
            continue
        cells = [
            Cells(lower[sel] - first, upper[sel] - first, time_cells.weight[sel]),
            axis_cells(alt_axis, z[sel]),
            axis_cells(lat_axis, y[sel]),
            Cells(*(member[sel] for member in lon_cells)),
        ]
        out[:, sel] = np.moveaxis(interpolate(stack, cells), -1, 0)
    return {name: out[k] for k, name in enumerate(names)}


def _check_volume(volume: xr.Dataset, names: Sequence[str]) -> None:
    """ConfigError unless ``volume`` holds ``names`` on the four axes."""
    absent = [name for name in names if name not in volume.data_vars]
    axes = [name for name in ("time", "alt", "lat", "lon") if name not in volume.dims]
    lacks = [f"{what} {names}" for what, names in (("variable(s)", absent), ("axes", axes))
             if names]
    if lacks:
        raise ConfigError(
            f"volume: no {' and no '.join(lacks)} (it has {sorted(map(str, volume.data_vars))} "
            f"on {dict(volume.sizes)}); pass a volume from ionofield.reconstruct"
        )


def grid_meridians(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Increasing longitudes of a grid, the index into ``lon`` of each, and whether global.

    The distinct meridians (:func:`ionofield.sphere.global_meridians`, in [-180, 180))
    go round the globe when no gap between neighbours, the one across the antimeridian
    included, is wider than 1.5 times the median of the others. A regional axis starts
    east of its widest gap and runs on past 180 when it crosses the antimeridian.

    Parameters
    ----------
    lon
        The grid's longitudes (deg E), any range, shape [X].

    Returns
    -------
    meridians : numpy.ndarray
        Increasing longitudes (deg E), shape [X'].
    columns : numpy.ndarray
        Index into ``lon`` of each meridian, shape [X'].
    is_global : bool
        Whether the meridians go round the globe.

    Examples
    --------
    >>> grid_meridians(np.array([160.0, 170.0, -180.0, -170.0]))
    (array([160., 170., 180., 190.]), array([0, 1, 2, 3]), False)
    """
    meridians, columns = global_meridians(lon)
    gaps = np.diff(meridians, append=meridians[0] + 360.0)
    widest = int(gaps.argmax())
    if meridians.size > 1 and gaps[widest] <= 1.5 * float(np.median(np.delete(gaps, widest))):
        return meridians, columns, True
    order = np.roll(np.arange(meridians.size), -(widest + 1))
    west = meridians[order[0]]
    return west + np.mod(meridians[order] - west, 360.0), columns[order], False


def validate_command(
    out: PathLike,
    *,
    campaign: xr.Dataset,
    model: PathLike | None = None,
    volume: PathLike | None = None,
    held_out: Sequence[PathLike] | None = None,
    ionosonde: Sequence[PathLike] | None = None,
    device: str = "auto",
) -> xr.Dataset:
    """The ``ionofield validate`` command: score a model or volume file, write the table.

    Parameters
    ----------
    out
        The table's file: ``.nc`` (NetCDF, the Dataset :func:`validate` returns) or
        ``.csv`` (one row per group, a column per variable and estimate, e.g.
        ``log10_ne_rmse_model``); written atomically.
    campaign
        The campaign whose drivers the model reads and the Kp classes come from.
    model, volume
        The model file (``ionofield fit --out``) or the volume's NetCDF file
        (``ionofield reconstruct --out``): exactly one.
    held_out, ionosonde
        RO profile files (as :func:`ionofield.open_ro_profiles` reads them) or
        ionosonde tables (:func:`ionofield.open_ionosonde`) to score against: exactly
        one.
    device
        The torch device of the model.

    Returns
    -------
    xarray.Dataset
        The table that was written.

    Raises
    ------
    ConfigError
        Not exactly one source or one kind of observations, or ``out`` is neither
        ``.nc`` nor ``.csv``; and as :func:`validate` and the readers raise.
    """
    suffix = Path(out).suffix.lower()
    problems = []
    if (model is None) == (volume is None):
        problems.append("give exactly one of --model (a model file) or --volume (a volume "
                        "NetCDF file)")
    if (held_out is None) == (ionosonde is None):
        problems.append("give exactly one of --held-out (RO profile files the model was not "
                        "fitted on) or --ionosonde (foF2 / hmF2 tables)")
    if suffix not in (".nc", ".csv"):
        problems.append(f"--out {os.fspath(out)!r}: end it in .nc or .csv")
    if problems:
        raise ConfigError("validate: " + "; ".join(problems))
    observations = (open_ro_profiles(held_out) if held_out is not None
                    else open_ionosonde(ionosonde))
    if volume is not None:
        with xr.open_dataset(volume, chunks={}) as vol:
            table = validate(vol, observations, campaign=campaign)
    else:
        table = validate(model, observations, campaign=campaign, device=device)
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            _frame(table).to_csv(tmp)
        else:  # no fill value on the coordinates (CF), whose NaN are the edges of "all"
            table.to_netcdf(tmp, encoding={name: {"_FillValue": None} for name in table.coords})
    return table


# -- sources --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """What :func:`validate` scores: log10 Ne of the estimates at points."""

    describe: str
    extent: str  # where the source has values, for the warning about the others
    column_alt: np.ndarray  # altitudes (km) of the columns at ionosonde stations
    log10_at: Callable[[xr.Dataset], np.ndarray]  # points -> (2, N), NaN outside
    interpolation: str = ""


def _source(source: Any, campaign: xr.Dataset | None, background: Any, cache_dir: Any,
            device: Any) -> _Source:
    """The scorer of a model, a model file or a volume."""
    if isinstance(source, xr.Dataset):
        return _volume_source(source, campaign)
    if not isinstance(source, (RSTMRF, str, os.PathLike)):
        raise ConfigError(
            f"validate: source is a {type(source).__name__}; pass a fitted ionofield.RSTMRF, "
            "the path of a model file, or a volume Dataset from ionofield.reconstruct"
        )
    if campaign is None:
        raise ConfigError(
            "validate: a model needs the hourly drivers of a campaign at the points; pass "
            "campaign= (the campaign it was fitted on, or one covering the observations)"
        )
    model, device = _usable_model(source), resolve_device(device)
    if model.device != device:
        model = copy.deepcopy(model).to(device)  # the caller's model stays where it is
    _check_background(model, background)
    drivers = HourlyDrivers.from_campaign(campaign[list(DRIVERS)])
    f107 = campaign[IRI_F107 if background is not None else _iri_f107_name(model, campaign)]
    hours = drivers.hours[[0, -1]]

    def log10_at(points: xr.Dataset) -> np.ndarray:
        time = points["obs_time"].values
        inside = (time >= hours[0]) & (time <= hours[1])
        out = np.full((2, time.size), np.nan)
        if not inside.any():
            return out
        field, _ = campaign_background(time[inside], f107, config=model.config,
                                       background=background, cache_dir=cache_dir)
        alt = points["obs_alt"].values
        inside &= (alt >= field.alt[0]) & (alt <= field.alt[-1])
        if not inside.any():
            return out
        data = ObservationStore.from_campaign(points.isel(obs=np.flatnonzero(inside)), field)
        rows = data.rows(np.arange(len(data)))
        data.close()
        predicted, _ = _Trainer(model, data, drivers, field).predictions(rows)
        out[:, inside] = predicted, rows["background"]
        return out

    period = model.info.get("period", ["?", "?"])
    low, high = PEAK_SEARCH_KM
    return _Source(
        describe=f"R-STMRF model ({model.n_parameters()} parameters) fitted on "
                 f"{period[0]} to {period[-1]}, evaluated at the points on the "
                 f"{'user-supplied' if background is not None else 'IRI'} background",
        extent=f"the campaign's hours {hours[0]} to {hours[1]} and the background's altitudes",
        column_alt=np.arange(low, high + COLUMN_STEP_KM / 2, COLUMN_STEP_KM),
        log10_at=log10_at,
    )


def _volume_source(volume: xr.Dataset, campaign: xr.Dataset | None) -> _Source:
    """The scorer of a volume; points outside the campaign's hours are outside too."""
    _check_volume(volume, ESTIMATES_IN_VOLUME)
    hours = None if campaign is None else to_datetime64(campaign["time"].values[[0, -1]])
    alt = np.sort(volume["alt"].values)

    def log10_at(points: xr.Dataset) -> np.ndarray:
        time = points["obs_time"].values
        at = volume_at(volume, time, *(points[f"obs_{name}"].values
                                       for name in ("alt", "lat", "lon")))
        out = np.stack([at[name] for name in ESTIMATES_IN_VOLUME])
        if hours is not None:
            out[:, (time < hours[0]) | (time > hours[1])] = np.nan
        return out

    low, high = PEAK_SEARCH_KM
    extent = (f"the volume's grid (time {volume['time'].values.min()} to "
              f"{volume['time'].values.max()}, alt {alt[0]:g} to {alt[-1]:g} km, lat "
              f"{float(volume['lat'].min()):g} to {float(volume['lat'].max()):g}, lon "
              f"{float(volume['lon'].min()):g} to {float(volume['lon'].max()):g})")
    if hours is not None:
        extent += f" within the campaign's hours {hours[0]} to {hours[1]}"
    label = volume.attrs.get("title") or volume.attrs.get("source") or "no title"
    return _Source(
        describe=f"volume ({label}), interpolated at the points",
        extent=extent,
        column_alt=alt[(alt >= low) & (alt <= high)],
        log10_at=log10_at,
        interpolation="multilinear in log10 Ne over time, alt, lat and lon (across the "
                      "antimeridian on a global grid); points beyond the grid left out",
    )


# -- observations ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """Errors of one quantity, (2, N), and where each of the N items lies."""

    errors: np.ndarray
    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    kp: np.ndarray | None
    snr: np.ndarray | None = None


def _is_campaign(ds: Any) -> bool:
    return isinstance(ds, xr.Dataset) and "obs_time" in ds.coords and all(
        name in ds.data_vars for name in DRIVERS)


def _is_soundings(ds: Any) -> bool:
    return isinstance(ds, xr.Dataset) and ("nmf2" in ds.data_vars or "fof2" in ds.data_vars)


def _points(what: str, ds: xr.Dataset, dim: str, names: Sequence[str], prefix: str,
            values: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns of observations on ``dim``; ManyProblemsError listing what is wrong."""
    problems = []
    if not isinstance(ds, xr.Dataset) or dim not in ds.dims:
        raise CampaignError(
            f"validate: observations ({type(ds).__name__}) have no {dim!r} dimension; pass RO "
            "profiles (ionofield.open_ro_profiles, or the held-out part of "
            "ionofield.split_profiles) or ionosonde soundings (ionofield.open_ionosonde)"
        )
    absent = [prefix + n for n in names if prefix + n not in ds.variables]
    if absent:
        problems.append(f"no coordinate(s) {absent}")
    for k, name in enumerate(values):  # the first is required, the others may be NaN
        if name in ds.data_vars:
            v = np.asarray(ds[name].values, dtype=np.float64)
            bad = ~(np.isfinite(v) & (v > 0)) & (~np.isnan(v) if k else True)
            if bad.any():
                problems.append(f"{name!r} holds {int(bad.sum())} zero, negative or "
                                f"{'infinite' if k else 'non-finite'} value(s); drop them")
    if problems:
        raise ManyProblemsError(f"validate: {what}", problems)
    columns = {n: ds[prefix + n].values for n in names}
    columns["time"] = to_datetime64(columns["time"], name=f"{what} 'time'")
    for n in ("lat", "lon", "alt"):
        if n in columns:
            columns[n] = np.asarray(columns[n], dtype=np.float64)
    return columns


def _score_profiles(scorer: _Source, obs: xr.Dataset, campaign: xr.Dataset | None
                    ) -> tuple[dict[str, _Part], str]:
    """The errors of log10 Ne, log10 NmF2 and hmF2 at RO profiles."""
    prefix = "obs_" if "obs_time" in obs.coords else ""
    if "ne" not in getattr(obs, "data_vars", {}):
        raise CampaignError(
            "validate: observations have neither 'ne' (RO profiles) nor 'nmf2' / 'fof2' "
            "(ionosonde soundings); read them with ionofield.open_ro_profiles or "
            "ionofield.open_ionosonde"
        )
    cols = _points("RO observations", obs, "obs", ("time", "lat", "lon", "alt"), prefix,
                   ["ne", "ne_err"])
    profile = (obs[prefix + "profile"].values if prefix + "profile" in obs.coords
               else cols["time"])  # one profile per distinct time, as a campaign makes them
    code = pd.factorize(profile)[0]
    points = xr.Dataset(
        {"ne": ("obs", np.asarray(obs["ne"].values, dtype=np.float64))},
        coords={"obs_time": ("obs", cols["time"]), "obs_lat": ("obs", cols["lat"]),
                "obs_lon": ("obs", fold_longitude(cols["lon"])),
                "obs_alt": ("obs", cols["alt"]), "obs_profile": ("obs", code)},
    )
    estimates = scorer.log10_at(points)
    observed = np.log10(points["ne"].values)
    valid = np.isfinite(estimates).all(axis=0)
    outside = _check_outside(valid, "RO observation(s)", scorer.extent)
    t, lat, lon, alt = (cols[n][valid] for n in ("time", "lat", "lon", "alt"))
    values = np.vstack([observed[valid], estimates[:, valid]])
    kp = _kp(campaign, cols["time"][valid])
    snr = (points["ne"].values[valid] / np.asarray(obs["ne_err"].values, np.float64)[valid]
           if "ne_err" in obs.data_vars else None)
    parts = {"log10_ne": _Part(values[1:] - values[0], t, lat, lon, kp, snr)}
    rows, nmf2, hmf2 = _profile_peaks(code[valid], alt, values)
    where = (t[rows], lat[rows], lon[rows], None if kp is None else kp[rows],
             None if snr is None else snr[rows])
    parts["log10_nmf2"] = _Part(np.log10(nmf2[1:] / nmf2[0]), *where)
    parts["hmf2"] = _Part(hmf2[1:] - hmf2[0], *where)
    described = (f"{int(valid.sum())} RO observations in {np.unique(code[valid]).size} profiles "
                 f"({rows.size} with an F2 peak within {PEAK_SEARCH_KM[0]:g}-"
                 f"{PEAK_SEARCH_KM[1]:g} km){outside}")
    return parts, described


def _profile_peaks(code: np.ndarray, alt: np.ndarray, log10: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F2 peaks of each profile: observed (row 0) and estimated at the same points.

    Parameters
    ----------
    code
        Profile of each point, shape [N].
    alt
        Altitudes (km), shape [N].
    log10
        log10 Ne of the observation and the estimates, shape [K, N].

    Returns
    -------
    rows, nmf2, hmf2
        The point of each peaked profile's observed maximum (indices into N, [P]);
        NmF2 (m-3) and hmF2 (km), [K, P]. Profiles with fewer than three distinct
        altitudes within :data:`PEAK_SEARCH_KM`, or whose observed maximum is their
        lowest or highest point there, have no peak.
    """
    low, high = PEAK_SEARCH_KM
    order = np.flatnonzero((alt >= low) & (alt <= high))
    order = order[np.lexsort((alt[order], code[order]))]
    starts = np.flatnonzero(np.diff(code[order], prepend=-1))
    rows, nmf2, hmf2 = [], [], []
    for members in np.split(order, starts[1:]):
        members = members[np.unique(alt[members], return_index=True)[1]]
        if members.size < 3:
            continue
        top = int(np.argmax(log10[0, members]))
        if top in (0, members.size - 1):
            continue
        peak, height = _peak(10.0 ** log10[:, members], alt[members])
        rows.append(members[top])
        nmf2.append(peak)
        hmf2.append(height)
    if not rows:
        empty = np.empty((log10.shape[0], 0))
        return np.empty(0, dtype=np.intp), empty, empty
    return np.asarray(rows), np.stack(nmf2, axis=1), np.stack(hmf2, axis=1).astype(np.float64)


def _score_soundings(scorer: _Source, obs: xr.Dataset, campaign: xr.Dataset | None
                     ) -> tuple[dict[str, _Part], str]:
    """The errors of log10 NmF2 and hmF2 at ionosonde soundings (no Ne points)."""
    peak_var = "nmf2" if "nmf2" in obs.data_vars else "fof2"
    dim = obs[peak_var].dims[0] if obs[peak_var].ndim == 1 else "sounding"  # else refused
    cols = _points("ionosonde soundings", obs, dim, ("time", "lat", "lon"), "",
                   [peak_var, "hmf2"])
    nmf2 = (np.asarray(obs["nmf2"].values, dtype=np.float64) if peak_var == "nmf2"
            else nmf2_from_fof2(obs["fof2"].values))
    hmf2 = (np.asarray(obs["hmf2"].values, dtype=np.float64) if "hmf2" in obs.data_vars
            else np.full(nmf2.size, np.nan))
    alt = scorer.column_alt
    if alt.size < 3:
        raise CoverageError(
            f"validate: the source has {alt.size} altitude(s) within {PEAK_SEARCH_KM[0]:g}-"
            f"{PEAK_SEARCH_KM[1]:g} km, where the F2 peak is looked for; at least three are "
            "needed (reconstruct on a grid with more altitudes there)"
        )
    n, m = nmf2.size, alt.size
    column = {name: np.repeat(cols[name], m) for name in ("time", "lat", "lon")}
    points = xr.Dataset(
        {"ne": ("obs", np.full(n * m, np.nan))},
        coords={"obs_time": ("obs", column["time"]), "obs_lat": ("obs", column["lat"]),
                "obs_lon": ("obs", column["lon"]), "obs_alt": ("obs", np.tile(alt, n)),
                "obs_profile": ("obs", np.repeat(np.arange(n), m))},
    )
    estimates = scorer.log10_at(points).reshape(2, n, m)
    valid = np.isfinite(estimates).all(axis=(0, 2))
    outside = _check_outside(valid, "sounding(s)", scorer.extent)
    columns = xr.DataArray(10.0 ** estimates[:, valid], dims=("estimate", "sounding", "alt"),
                           coords={"alt": alt})
    peaks = peak_parameters(columns)
    t, lat, lon = (cols[name][valid] for name in ("time", "lat", "lon"))
    where = (t, lat, lon, _kp(campaign, t))
    parts = {
        "log10_ne": _Part(np.empty((2, 0)), t[:0], lat[:0], lon[:0],
                          None if campaign is None else np.empty(0)),
        "log10_nmf2": _Part(np.log10(peaks["nmf2"].values.astype(np.float64) / nmf2[valid]),
                            *where),
        "hmf2": _Part(peaks["hmf2"].values.astype(np.float64) - hmf2[valid], *where),
    }
    stations = obs["station"].values[valid] if "station" in obs.coords else np.empty(0)
    described = (f"{int(valid.sum())} ionosonde soundings"
                 + (f" at {np.unique(stations).size} station(s)" if stations.size else "")
                 + f", {int(np.isfinite(hmf2[valid]).sum())} with hmF2{outside}")
    return parts, described


def _check_outside(valid: np.ndarray, what: str, extent: str) -> str:
    """Warn that the observations outside the source are left out; raise if all are.

    Returns the note for the table's ``observations`` attribute.
    """
    outside = int(np.count_nonzero(~valid))
    if outside == valid.size:
        raise CoverageError(
            f"validate: none of the {valid.size} {what} falls inside {extent}; give "
            "observations within it (or a source covering them)"
        )
    if outside:
        warnings.warn(
            f"validate: {outside} of {valid.size} {what} outside {extent} left out; "
            f"{valid.size - outside} scored",
            DataWarning,
            stacklevel=4,
        )
    return f"; {outside} outside {extent} left out" if outside else ""


def _kp(campaign: xr.Dataset | None, time: np.ndarray) -> np.ndarray | None:
    """Kp at times within the campaign's hours; None without a campaign."""
    return None if campaign is None else drivers_at(campaign, time)["kp"].values


# -- the table ------------------------------------------------------------------------


def _group_table(lat_bands: Sequence[float], local_time_bins: Sequence[float],
                 kp_classes: Sequence[float], snr_classes: Sequence[float]) -> list[_Group]:
    """The groups of the table, "all" first; ConfigError on bad edges."""
    groups = [_Group("all", "all", np.nan, np.nan, True)]
    problems = []
    given = {"lat_band": lat_bands, "local_time": local_time_bins, "kp_class": kp_classes,
             "snr_class": snr_classes}
    for grouping, edges in given.items():
        (low, high), label = _GROUPINGS[grouping]
        values = np.atleast_1d(np.asarray(edges, dtype=np.float64))
        if values.ndim != 1 or values.size < 2 or not np.all(np.diff(values) > 0) or (
                values[0] < low or values[-1] > high):
            problems.append(f"{grouping} edges {values.tolist()}: give at least two increasing "
                            f"values within {low:g}..{high:g}")
            continue
        for k, (lo, hi) in enumerate(zip(values[:-1], values[1:], strict=True)):
            groups.append(_Group(grouping, label.format(lo, hi), float(lo), float(hi),
                                 k == values.size - 2))
    if problems:
        raise ConfigError("validate: " + "; ".join(problems))
    return groups


def _membership(groups: list[_Group], part: _Part) -> np.ndarray:
    """Bool [G, N]: which items of ``part`` each group holds."""
    local_time = np.mod(universal_time_hours(part.time) + part.lon / 15.0, 24.0)
    key = {"lat_band": part.lat, "local_time": local_time, "kp_class": part.kp,
           "snr_class": part.snr}
    member = np.ones((len(groups), part.lat.size), dtype=bool)
    for k, group in enumerate(groups):
        if group.grouping != "all":
            x = key[group.grouping]
            below = (x <= group.upper) if group.closed else (x < group.upper)
            member[k] = (x >= group.lower) & below
    return member


def _scores(groups: list[_Group], part: _Part) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count [G], RMSE [2, G] and bias [2, G] of each group (NaN where empty)."""
    member = _membership(groups, part) & np.isfinite(part.errors).all(axis=0)
    errors = np.where(np.isfinite(part.errors), part.errors, 0.0)
    weights = member.astype(np.float64)
    count = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = (weights @ errors.T / count[:, None]).T
        rmse = np.sqrt(weights @ (errors**2).T / count[:, None]).T
    return count.astype(np.int64), rmse, bias


#: Quantities of the table: (key, name in texts, units).
_QUANTITIES = (
    ("log10_ne", "log10 Ne", "1"),
    ("log10_nmf2", "log10 NmF2", "1"),
    ("hmf2", "hmF2", "km"),
)
_COUNTS = {"log10_ne": "n_points", "log10_nmf2": "n_nmf2", "hmf2": "n_hmf2"}
_COUNT_NAMES = {
    "n_points": "observations of Ne scored",
    "n_nmf2": "F2 peak densities (NmF2) scored",
    "n_hmf2": "F2 peak heights (hmF2) scored",
}


def _table(groups: list[_Group], parts: dict[str, _Part]) -> xr.Dataset:
    """The scores of every quantity and group as a Dataset."""
    data = {}
    for key, quantity, units in _QUANTITIES:
        count, rmse, bias = _scores(groups, parts[key])
        dex = " (dex)" if units == "1" else ""
        data[_COUNTS[key]] = ("group", count, {"long_name": _COUNT_NAMES[_COUNTS[key]],
                                               "units": "1"})
        data[f"{key}_rmse"] = (("estimate", "group"), rmse,
                               {"long_name": f"root-mean-square error of {quantity}{dex}",
                                "units": units, "ancillary_variables": _COUNTS[key]})
        data[f"{key}_bias"] = (("estimate", "group"), bias,
                               {"long_name": f"mean error of {quantity}, estimate minus "
                                             f"observation{dex}", "units": units,
                                "ancillary_variables": _COUNTS[key]})
        with np.errstate(invalid="ignore", divide="ignore"):
            skill = 1.0 - rmse[0] / rmse[1]
        data[f"{key}_skill"] = ("group", np.where(np.isfinite(skill), skill, np.nan),
                                {"long_name": f"skill over the background in {quantity}: 1 - "
                                              "RMSE(model) / RMSE(background)", "units": "1"})
    coords = {
        "estimate": ("estimate", list(ESTIMATES),
                     {"long_name": "what is scored: the model (or volume), or its background "
                                   "alone"}),
        "group": ("group", [g.label for g in groups], {"long_name": "group of observations"}),
        "grouping": ("group", [g.grouping for g in groups],
                     {"long_name": "what the group is drawn by: all, lat_band (deg N), "
                                   "local_time (h), kp_class, snr_class (ne / ne_err)"}),
        "lower": ("group", [g.lower for g in groups],
                  {"long_name": "lower edge of the group (included)"}),
        "upper": ("group", [g.upper for g in groups],
                  {"long_name": "upper edge of the group (excluded, except the last of a "
                                "grouping)"}),
    }
    return xr.Dataset(data, coords=coords)


def _summary(table: xr.Dataset) -> str:
    """One line of the overall scores."""
    every = table.sel(group="all")
    parts = []
    for key, quantity, units in _QUANTITIES:
        n = int(every[_COUNTS[key]])
        if n:
            model, bg = (float(every[f"{key}_rmse"].sel(estimate=e)) for e in ESTIMATES)
            unit = " km" if units == "km" else ""
            parts.append(f"{quantity} RMSE {model:.3g}{unit} (background {bg:.3g}{unit}, skill "
                         f"{float(every[f'{key}_skill']):.2f}, n={n})")
    return "; ".join(parts) or "nothing scored"


def _frame(table: xr.Dataset) -> pd.DataFrame:
    """The table as one row per group, a column per variable (and estimate)."""
    columns = {name: table[name].values for name in ("grouping", "lower", "upper")}
    for name, var in table.data_vars.items():
        if "estimate" in var.dims:
            for estimate in ESTIMATES:
                columns[f"{name}_{estimate}"] = var.sel(estimate=estimate).values
        else:
            columns[str(name)] = var.values
    return pd.DataFrame(columns, index=pd.Index(table["group"].values, name="group"))

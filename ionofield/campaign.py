"""The campaign Dataset: observations and their hourly drivers, checked once.

:func:`campaign` is the boundary where observations, TEC maps and indices become one
Dataset: whatever reaches it, read by ionofield's readers or made by hand, passes the
readers' checks (units, magnitudes, ranges, finite values, duplicates); times are
converted to ``datetime64[ns]`` and sorted, the drivers are aligned to whole hours
(:mod:`ionofield.align`), the variables are labelled from :mod:`ionofield.io.cf`,
and every layer below trusts what it built. :func:`check_campaign` tells a campaign
from other Datasets, and :func:`drivers_at` reads its drivers at any time.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ionofield.align import (
    DRIVERS,
    OBS_COORDS,
    align_indices,
    align_tec,
    check_index_ranges,
    hour_index,
    hourly_axis,
    provenance,
    tec_times,
    timestamp,
)
from ionofield.errors import (
    CampaignError,
    ConfigError,
    CoverageError,
    DataWarning,
    IonofieldError,
    ManyProblemsError,
    UnitsError,
)
from ionofield.io.cf import attributes
from ionofield.io.indices import ATTRIBUTES as INDEX_ATTRIBUTES
from ionofield.io.indices import open_indices
from ionofield.io.ro import NE_PLAUSIBLE_M3, _density_factor, _obs_attributes
from ionofield.sphere import fold_longitude
from ionofield.timeutil import HOUR, describe_times, to_datetime64

logger = logging.getLogger(__name__)

__all__ = ["campaign", "check_campaign", "drivers_at"]

#: Altitudes (km) an observation may have, exclusive: 0 is the ground, and 5000 km is
#: well above the highest RO orbits; a value outside is an altitude in metres (or
#: another unit).
ALT_RANGE_KM = (0.0, 5000.0)
#: Vertical TEC (TECU) a map may hold: the largest GIM values of the strongest storms
#: stay below about 300 TECU, and negative TEC is impossible.
TEC_RANGE_TECU = (0.0, 500.0)
#: Observations per block where a campaign's columns are read a block at a time
#: (:func:`observation_blocks`): temporaries of a few MB whatever its size.
OBS_PER_BLOCK = 262_144
#: Positive densities at most in the median of the units check (every k-th of them).
MEDIAN_SAMPLE = 1_000_000

#: The reader that makes each input of :func:`campaign` from files.
_READERS = {
    "obs": "ionofield.open_ro_profiles(paths)",
    "tec": "ionofield.open_ionex(paths)",
    "indices": "ionofield.open_indices(start, end, source=path)",
}


def campaign(
    obs: xr.Dataset,
    tec: xr.Dataset,
    indices: xr.Dataset | None = None,
    *,
    period: tuple[object, object] | None = None,
    max_gap: str | pd.Timedelta = "2h",
) -> xr.Dataset:
    """Observations and their hourly drivers in one Dataset.

    Parameters
    ----------
    obs
        Observations on dim ``obs``: ``ne`` (m-3; ``units`` ``"m-3"``, or
        ``"cm-3"`` / ``"el/cm3"``, converted), optional ``ne_err`` (likewise),
        coords ``time``, ``lat`` (deg N), ``lon`` (deg E, any range, folded to
        -180..180), ``alt`` (km) and optionally ``profile``, ``mission``. Any time
        order; cftime of a real-world calendar accepted.
    tec
        TEC maps, ``tec(time, lat, lon)`` in TECU (``ionofield.open_ionex``), at any
        interval up to ``max_gap``.
    indices
        Kp / F10.7 (:func:`ionofield.open_indices`); ``None`` reads them for the
        period from the default source.
    period
        ``(start, end)`` of the hourly driver axis; by default every whole hour the
        TEC maps span. The observations must lie within it. A period longer than the
        observations' (e.g. a held-out day with drivers but no observations) is how
        to reconstruct beyond them, or to give the Kp memory a storm that precedes
        the observations. The model's driver history before the first hour repeats
        the first hour's values.
    max_gap
        Widest spacing of two TEC maps that the hours between them are interpolated
        across (:func:`ionofield.align.align_tec`), e.g. ``"4h"`` to bridge one
        missing 2-hourly map; wider gaps are refused.

    Returns
    -------
    xarray.Dataset
        Dims ``obs`` and ``time, lat, lon``. The observations with their coordinates
        renamed ``obs_time`` (datetime64[ns], sorted), ``obs_lat``, ``obs_lon``,
        ``obs_alt``, ``obs_profile`` (one profile per distinct time when ``obs``
        has none), ``obs_mission``; the hourly drivers ``tec(time, lat, lon)``,
        ``kp(time)``, ``f107(time)``, ``f107_81(time)`` on the whole hours of
        ``period``. Variables carry CF ``units`` and ``long_name``; attributes record
        provenance. The text coordinates are encoded as characters, so a campaign
        saved with ``ds.to_netcdf(path)`` and reopened with ``xr.open_dataset(path)``
        (no ``.load()``) stays on disk: :func:`ionofield.fit` then reads it a block of
        observations at a time.

    Raises
    ------
    CampaignError
        When an input is not a Dataset (a path: read it first), ``obs`` is empty, or
        observations share time and position with different densities.
    ManyProblemsError
        When ``obs`` lacks a required variable or coordinate, or holds NaT times,
        non-finite or impossible values (listed together).
    UnitsError
        When ``ne`` has units other than m-3 or cm-3, its median is outside
        :data:`ionofield.io.ro.NE_PLAUSIBLE_M3`, altitudes are not in km, TEC is
        outside :data:`TEC_RANGE_TECU`, or Kp / F10.7 leave their ranges.
    CalendarError
        When times are cftime dates of a model calendar (360_day, noleap, ...).
    CoverageError
        When the observations fall outside the period, or the TEC maps or the indices
        do not cover it (or a TEC map has no valid cell), naming the hours and the fix.
    ConfigError
        When ``period`` is not two times, or ``max_gap`` not a positive duration.

    Warns
    -----
    DataWarning
        When ``ne`` / ``ne_err`` were converted from cm-3, or exact duplicate
        observations were dropped (with the counts).
    """
    _check_kind(obs, "obs")
    _check_kind(tec, "tec")
    if indices is not None:
        _check_kind(indices, "indices")
    obs = _checked_observations(obs)
    first, last = obs["time"].values[0], obs["time"].values[-1]
    if period is None:
        tec_time = tec_times(tec)
        period = (timestamp(tec_time.min()).ceil("h"), timestamp(tec_time.max()).floor("h"))
    elif not isinstance(period, tuple | list) or len(period) != 2:
        raise ConfigError(
            f"campaign: period={period!r} is not a (start, end) pair; pass e.g. "
            "period=('2024-05-10T00', '2024-05-11T00')."
        )
    hours = hourly_axis(*(timestamp(t, f"campaign: period[{k}]") for k, t in enumerate(period)))
    if first < hours[0] or last > hours[-1]:
        raise CoverageError(
            f"campaign: observations span {first} to {last}, outside the drivers' period "
            f"{hours[0]} to {hours[-1]}; load TEC maps covering the observations (or pass "
            "period=) or select the observations inside it."
        )
    need = f"the campaign needs hourly drivers from {hours[0]} to {hours[-1]}"
    try:
        tec_hourly = align_tec(tec, hours, max_gap=max_gap)
        if indices is None:
            indices = open_indices(hours[0], hours[-1])
        idx_hourly = align_indices(indices, hours)
    except CoverageError as err:
        raise CoverageError(f"campaign: {err} ({need}).") from err
    _check_tec_values(tec_hourly, provenance(tec, "the TEC Dataset"))

    renamed = obs.rename({name: f"obs_{name}" for name in OBS_COORDS if name in obs.coords})
    ds = xr.merge(
        [renamed, tec_hourly, idx_hourly], join="exact", compat="no_conflicts", combine_attrs="drop"
    )
    for name, var in ds.variables.items():
        source = next(
            (part[name].attrs for part in (renamed, tec_hourly, idx_hourly) if name in part), {}
        )
        default = {"long_name": str(name).removeprefix("obs_")}
        var.attrs = {**default, **source, **_labels(str(name))}
        if var.dtype.kind in "OSU":  # saved as characters: reopened lazily, read in blocks
            var.encoding = {"dtype": "S1"}
    ds.attrs = {
        "title": "ionofield campaign: observations with hourly drivers",
        "obs_source": provenance(obs, "unknown"),
        "tec_source": provenance(tec, "unknown"),
        "indices_source": provenance(indices, "unknown"),
        "n_obs": int(obs.sizes["obs"]),
        "obs_time_coverage": f"{first} to {last}",
        "tec_time_alignment": tec_hourly.attrs["time_alignment"],
        "indices_time_alignment": idx_hourly.attrs["time_alignment"],
    }
    for name, label in (("profile", "n_profiles"), ("mission", "missions")):
        if name in obs.coords:
            values = np.unique(obs[name].values.astype(str))
            ds.attrs[label] = int(values.size) if label == "n_profiles" else ", ".join(values)
    logger.info("campaign: %d observations, %d hourly drivers", obs.sizes["obs"], hours.size)
    return ds


def check_campaign(ds: xr.Dataset) -> None:
    """Raise unless ``ds`` is a campaign whose values are still those :func:`campaign` checked.

    A campaign has an ``obs`` dimension with an ``obs_time`` coordinate and an hourly
    ``time`` axis (whole hours, one hour apart) carrying ``kp``, ``f107`` and
    ``f107_81``, as :func:`campaign` builds. Its densities, positions and indices
    are checked again (cheaply), so a campaign edited by hand after it was built
    (``ds["kp"] *= 10``) is refused like the same values given to :func:`campaign`.

    Parameters
    ----------
    ds
        The Dataset to check.

    Raises
    ------
    CampaignError
        When ``ds`` is not a campaign.
    ManyProblemsError, UnitsError
        When its observations or indices hold values :func:`campaign` refuses.
    """
    if not isinstance(ds, xr.Dataset):
        raise CampaignError(
            f"expected an ionofield campaign (xarray.Dataset), got {type(ds).__name__}; build "
            "it with ionofield.campaign(obs=..., tec=..., indices=...)."
        )
    problems = []
    if "obs" not in ds.dims or "obs_time" not in ds.coords:
        problems.append("no 'obs' dimension with an 'obs_time' coordinate")
    if "time" not in ds.dims:
        problems.append("no hourly 'time' dimension")
    else:
        hours = to_datetime64(ds["time"].values, name="campaign 'time'")
        whole = (hours - hours.astype("datetime64[h]")) == np.timedelta64(0)
        if hours.size < 2 or np.any(np.diff(hours) != HOUR) or not whole.all():
            problems.append("'time' is not whole hours one hour apart")
    absent = [name for name in ("ne", *DRIVERS) if name not in ds.data_vars]
    absent += [f"obs_{name}" for name in OBS_COORDS[1:4] if f"obs_{name}" not in ds.coords]
    if absent:
        problems.append(f"variable(s) {absent} missing")
    if problems:
        raise CampaignError(
            f"Dataset is not an ionofield campaign: {'; '.join(problems)}. Build it with "
            "ionofield.campaign(obs=..., tec=..., indices=...)."
        )
    check = _ValueCheck(ds.sizes["obs"])
    for block in observation_blocks(ds, [f"obs_{name}" for name in OBS_COORDS[:4]] + ["ne"]):
        check.add({name.removeprefix("obs_"): values for name, values in block.items()})
    values, units = check.problems()
    _raise_problems("campaign observations (build it with ionofield.campaign)", values, units)
    check_index_ranges(ds[list(DRIVERS)], "the campaign")


def drivers_at(campaign: xr.Dataset, times: object = None) -> xr.Dataset:
    """Hourly drivers at arbitrary times: each time takes its slot's Kp and its day's F10.7.

    Kp is a step over its 3-hour slot and F10.7 (and its 81-day mean) over its UT
    day (DESIGN.md section 4), so a time in ``[t, t + 3 h)`` gets exactly the value
    of that slot, read at the whole hour at or before it
    (:func:`ionofield.align.hour_index`). The cosine-squared blend of the two whole
    hours around a time (:func:`ionofield.align.cos2_weights`) would give the same
    value inside a slot, and in the last hour of a slot would let the next slot's
    Kp in before it starts; it is not applied across a slot's start.

    Parameters
    ----------
    campaign
        A Dataset built by :func:`campaign`.
    times
        Times within the campaign's hourly axis: a DataArray (its dims and coords are
        kept), a 1-D array (a new ``time`` dim) or a scalar; datetime64 or cftime.
        ``None`` means the observation times (``campaign.obs_time``).

    Returns
    -------
    xarray.Dataset
        ``kp``, ``f107`` and ``f107_81`` (float64) at ``times``, attributes of the
        hourly variables kept.

    Raises
    ------
    CampaignError
        When ``campaign`` is not a campaign.
    CoverageError
        When times fall outside the campaign's hourly axis.
    """
    check_campaign(campaign)
    if times is None:
        times = campaign["obs_time"]
    if isinstance(times, xr.DataArray):
        t = to_datetime64(times.values, name="drivers_at: times")
        dims, coords = times.dims, times.coords
    else:
        t = to_datetime64(times, name="drivers_at: times")
        if t.ndim > 1:
            raise ConfigError(
                f"drivers_at: times has shape {t.shape}; pass a DataArray to label more than "
                "one dimension."
            )
        dims = ("time",) * t.ndim
        coords = {"time": (dims, t)}
    at = hour_index(t.ravel(), campaign["time"].values)
    data = {}
    for name in DRIVERS:
        hourly = np.asarray(campaign[name].values, dtype=np.float64)
        attrs = {
            **campaign[name].attrs,
            "interpolation": "step: the value of the 3-hour slot (Kp) or UT day (F10.7) the "
            "time falls in",
        }
        data[name] = (dims, hourly[at].reshape(t.shape), attrs)
    return xr.Dataset(data, coords=coords)


def _check_kind(value: object, name: str) -> None:
    """Raise CampaignError when an input of :func:`campaign` is not a Dataset."""
    if isinstance(value, xr.Dataset):
        return
    paths = value if isinstance(value, list | tuple) else [value]
    if paths and all(isinstance(path, str | os.PathLike) for path in paths):
        found = f"a path or list of paths ({str(value)[:120]!r})"
        fix = f"read the file(s) first: {name}={_READERS[name]}"
    else:
        found = f"a {type(value).__name__}"
        fix = f"pass the xarray.Dataset that {_READERS[name]} returns"
        if isinstance(value, xr.DataArray):
            fix += f" (or {name}.to_dataset(name=...))"
    raise CampaignError(f"campaign: {name}= is {found}, not an xarray.Dataset; {fix}.")


def _checked_observations(obs: xr.Dataset) -> xr.Dataset:
    """The observations checked, in m-3, lon folded, sorted in time, exact duplicates dropped.

    Raises as :func:`campaign` documents; warns (DataWarning) for each repair.
    """
    what = "observations Dataset (build it with ionofield.open_ro_profiles)"
    if "obs" in obs.dims and obs.sizes["obs"] == 0:
        raise CampaignError(
            "observations Dataset: empty (0 observations); read RO profiles that fall in the "
            "period (ionofield.open_ro_profiles) before building a campaign."
        )
    problems = []
    if "obs" not in obs.dims:
        problems.append(f"no 'obs' dimension (dims {dict(obs.sizes)})")
    if "ne" not in obs.data_vars:
        problems.append("no 'ne' variable (electron density, m-3)")
    for name in ("ne", "ne_err", *OBS_COORDS[:4]):
        if name == "ne_err" and name not in obs.variables:
            continue
        if name not in obs.variables:
            if name != "ne":
                problems.append(f"no '{name}' coordinate on 'obs'")
        elif obs[name].dims != ("obs",):
            problems.append(f"'{name}' is on dims {obs[name].dims}, not ('obs',)")
        elif name != "time" and not np.issubdtype(obs[name].dtype, np.number):
            problems.append(f"'{name}' is not numeric (dtype {obs[name].dtype})")
    if problems:
        raise ManyProblemsError(what, problems)

    columns = {name: obs[name].values for name in OBS_COORDS[:4]}
    columns["time"] = to_datetime64(columns["time"], name="observations 'time'")
    lon = np.asarray(columns["lon"], dtype=np.float64)
    columns["lon"] = np.where(np.isfinite(lon), fold_longitude(np.nan_to_num(lon)), lon)
    converted = {name: _in_m3(obs, name) for name in ("ne", "ne_err") if name in obs.data_vars}
    check = _ValueCheck(obs.sizes["obs"])
    check.add({**columns, "ne": converted["ne"]})
    values, units = check.problems()
    if "ne_err" in converted:
        err = converted["ne_err"]
        bad = int(np.count_nonzero(np.isinf(err) | (err < 0)))  # NaN: unknown, as read
        if bad:
            values.append(
                f"'ne_err' holds {bad} negative or infinite value(s); set them to NaN (an "
                "unknown error) or drop the 'ne_err' variable"
            )
    _raise_problems(what, values, units)

    obs = obs.assign(
        {name: ("obs", value, obs[name].attrs) for name, value in converted.items()}
    ).assign_coords(
        time=("obs", columns["time"], obs["time"].attrs),
        lon=("obs", columns["lon"], obs["lon"].attrs),
    )
    if "profile" not in obs.coords:
        ids = np.datetime_as_string(columns["time"], unit="s")
        obs = obs.assign_coords(profile=("obs", np.char.add("profile@", ids)))
    obs = _without_duplicates(obs)
    order = np.argsort(obs["time"].values, kind="stable")
    return obs.isel(obs=order)


def _in_m3(obs: xr.Dataset, name: str) -> np.ndarray:
    """Values of density variable ``name`` in m-3 from its ``units`` (m-3 when absent)."""
    values = np.asarray(obs[name].values, dtype=np.float64)
    units = str(obs[name].attrs.get("units", "m-3"))
    try:
        factor = _density_factor(units, where=None)
    except IonofieldError as err:
        raise UnitsError(
            f"observations Dataset: '{name}' has units {units!r}, not an electron density "
            "unit; set its units attribute to 'm-3' (or 'cm-3' for el/cm3, converted) after "
            "checking the values."
        ) from err
    if factor != 1.0:
        warnings.warn(
            f"observations Dataset: '{name}' ({values.size} values) in {units!r} converted to "
            f"m-3 (multiplied by {factor:g}).",
            DataWarning,
            stacklevel=4,
        )
    return values * factor


class _ValueCheck:
    """Value and units problems of observation columns, gathered over blocks of them.

    The columns are ``time``, ``lat``, ``lon``, ``alt`` (km) and ``ne`` (m-3). Counts
    add up over the blocks given to :meth:`add`; the median density (the units check)
    is that of every ``stride``-th positive value, at most :data:`MEDIAN_SAMPLE` of
    them, so a campaign of any size is checked in the memory of one block.

    Parameters
    ----------
    n_obs
        Number of observations that will be added.
    """

    def __init__(self, n_obs: int) -> None:
        self.stride = max(1, -(-n_obs // MEDIAN_SAMPLE))
        self.count = {key: 0 for key in ("nat", "ne", "huge", "lat", "lon", "alt", "off_lat",
                                         "alt_out")}
        self.sample: list[np.ndarray] = []
        self.huge_max = -np.inf
        self.off_lat_example = np.nan
        self.alt_out_range = [np.inf, -np.inf]

    def add(self, columns: dict[str, np.ndarray]) -> None:
        """Count the problems of one block of columns."""
        count = self.count
        count["nat"] += int(np.count_nonzero(np.isnat(to_datetime64(columns["time"]))))
        ne = np.asarray(columns["ne"], dtype=np.float64)
        positive = np.isfinite(ne) & (ne > 0)
        count["ne"] += int(ne.size - np.count_nonzero(positive))
        self.sample.append(ne[positive][:: self.stride])
        huge = np.isfinite(ne) & (ne > NE_PLAUSIBLE_M3[1])
        if huge.any():
            count["huge"] += int(huge.sum())
            self.huge_max = max(self.huge_max, float(ne[huge].max()))
        for name in ("lat", "lon", "alt"):
            count[name] += int(np.count_nonzero(~np.isfinite(np.asarray(columns[name],
                                                                        np.float64))))
        lat = np.asarray(columns["lat"], dtype=np.float64)
        off = np.isfinite(lat) & (np.abs(lat) > 90.0)
        if off.any():
            if not count["off_lat"]:
                self.off_lat_example = float(lat[off][0])
            count["off_lat"] += int(off.sum())
        alt = np.asarray(columns["alt"], dtype=np.float64)
        lo, hi = ALT_RANGE_KM
        out = np.isfinite(alt) & ~((alt > lo) & (alt < hi))
        if out.any():
            count["alt_out"] += int(out.sum())
            self.alt_out_range = [min(self.alt_out_range[0], float(alt[out].min())),
                                  max(self.alt_out_range[1], float(alt[out].max()))]

    def problems(self) -> tuple[list[str], list[str]]:
        """Value problems and units problems, one line per problem."""
        count, values, units = self.count, [], []
        if count["nat"]:
            values.append("'time' holds NaT values; drop those observations")
        if count["ne"]:
            values.append(
                f"'ne' holds {count['ne']} zero, negative or NaN/infinite values; drop them "
                "(the readers do, with a count), e.g. obs.where(obs.ne > 0, drop=True)"
            )
        low, high = NE_PLAUSIBLE_M3
        sample = np.concatenate(self.sample) if self.sample else np.zeros(0)
        median = float(np.median(sample)) if sample.size else float("nan")
        if count["huge"] and median <= high:  # a median above means the units, below
            values.append(
                f"'ne' holds {count['huge']} value(s) above {high:.0e} m-3 (max "
                f"{self.huge_max:.3g}), impossible for the ionosphere; drop them"
            )
        for name in ("lat", "lon", "alt"):
            if count[name]:
                values.append(f"'{name}' holds {count[name]} NaN or infinite value(s); drop them")
        if count["off_lat"]:
            values.append(
                f"'lat' holds {count['off_lat']} value(s) outside -90..90 (e.g. "
                f"{self.off_lat_example:g}); check which variable is latitude"
            )
        if sample.size and not low <= median <= high:
            units.append(
                f"the median of 'ne' is {median:.3g} m-3, outside {low:.0e}..{high:.0e} m-3 "
                "where ionospheric densities lie: "
                + (
                    "the values look like el/cm3: set obs.ne.attrs['units'] = 'cm-3' (converted)"
                    if median < low
                    else "the values look like m-3 labelled el/cm3 (multiplied by 1e6 once "
                    "too often): check them and obs.ne.attrs['units'] ('m-3' for m-3)"
                )
            )
        if count["alt_out"]:
            lo, hi = ALT_RANGE_KM
            first, last = self.alt_out_range
            units.append(
                f"'alt' holds {count['alt_out']} value(s) outside {lo:g} < alt < {hi:g} km "
                f"(from {first:g} to {last:g}): altitudes in metres? divide them by 1000 "
                "(obs.assign_coords(alt=obs.alt / 1000)); altitudes are in km"
            )
        return values, units


def observation_blocks(
    ds: xr.Dataset, names: Sequence[str], size: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """The values of variables on ``obs``, a block of observations at a time.

    A lazily opened campaign (``xr.open_dataset`` without ``.load()``, dask-backed,
    Zarr) is read a block at a time and nothing is cached in it, so the memory is that
    of one block whatever the campaign's size; a loaded one is sliced without copies.

    Parameters
    ----------
    ds
        A Dataset with an ``obs`` dimension.
    names
        Variables or coordinates of ``ds`` on ``obs``.
    size
        Observations per block (default :data:`OBS_PER_BLOCK`).

    Yields
    ------
    dict
        numpy values of each name for the next block, in order.
    """
    size = size or OBS_PER_BLOCK
    for start in range(0, ds.sizes["obs"], size):
        block = slice(start, start + size)
        yield {name: ds[name].variable[block].to_numpy() for name in names}


def _raise_problems(what: str, values: list[str], units: list[str]) -> None:
    """ManyProblemsError when there are value problems (units ones listed too), else UnitsError."""
    if values:
        raise ManyProblemsError(what, values + units)
    if units:
        raise UnitsError(f"{what}: {'; '.join(units)}.")


def _without_duplicates(obs: xr.Dataset) -> xr.Dataset:
    """Drop observations repeating an earlier one exactly; refuse conflicting repeats.

    Two observations at the same time, lat, lon and alt are one measurement read
    twice (a file read twice, two copies concatenated): identical ones carry no more
    information and would count twice in the fit, so the later are dropped with a
    DataWarning; ones with different densities cannot both be right and are refused.
    """
    place = pd.DataFrame({name: obs[name].values for name in OBS_COORDS[:4]})
    repeated = place.duplicated(keep="first").to_numpy()
    if not repeated.any():
        return obs
    values = place.assign(
        **{name: obs[name].values for name in ("ne", "ne_err") if name in obs.data_vars}
    )
    identical = values.duplicated(keep="first").to_numpy()
    conflicting = repeated & ~identical
    if conflicting.any():
        first = place[conflicting].iloc[0]
        raise CampaignError(
            f"observations Dataset: {int(conflicting.sum())} observation(s) share time, lat, "
            "lon and alt with another but have a different 'ne' (first at "
            f"{first['time']}, lat {first['lat']:g}, lon {first['lon']:g}, alt "
            f"{first['alt']:g} km); the same profile was read twice with different values: "
            "keep one source of each profile."
        )
    warnings.warn(
        f"observations Dataset: {int(identical.sum())} duplicate observation(s) (same time, "
        f"lat, lon, alt and 'ne' as an earlier one) dropped, {int((~identical).sum())} kept; "
        "read each profile once.",
        DataWarning,
        stacklevel=4,
    )
    return obs.isel(obs=np.flatnonzero(~identical))


def _check_tec_values(tec: xr.Dataset, source: str) -> None:
    """Raise when hourly TEC maps are not in TECU, out of range, or empty at some hour."""
    units = tec["tec"].attrs.get("units", "TECU")
    if str(units).strip().upper() != "TECU":
        raise UnitsError(
            f"TEC maps from {source}: 'tec' has units {units!r}; convert to TECU (1 TECU = "
            "1e16 m-2, i.e. divide el/m2 by 1e16) and set units='TECU'."
        )
    maps = tec["tec"].transpose("time", ...)
    values = np.asarray(maps.values, dtype=np.float64)
    times = to_datetime64(maps["time"].values)
    lo, hi = TEC_RANGE_TECU
    out = ~np.isnan(values) & ~((values >= lo) & (values <= hi))
    if out.any():
        hours = np.broadcast_to(times.reshape(-1, *([1] * (values.ndim - 1))), values.shape)
        fix = (
            "TEC cannot be negative: set those cells to NaN (missing), or clip rounding noise "
            "with tec.clip(min=0)"
            if values[out].min() < lo
            else "TEC is in TECU (1 TECU = 1e16 m-2); a value near 999.9 is IONEX's "
            "missing-value code read as a number: set it to NaN"
        )
        raise UnitsError(
            f"TEC maps from {source}: 'tec' holds {int(out.sum())} value(s) outside "
            f"{lo:g}..{hi:g} TECU (from {values[out].min():g} to {values[out].max():g}, at "
            f"{describe_times(hours[out], HOUR)}); {fix}."
        )
    empty = ~np.isfinite(values).reshape(times.size, -1).any(axis=1)
    if empty.any():
        raise CoverageError(
            f"TEC maps from {source}: no valid cell (all 9999 / NaN) at hour(s) "
            f"{describe_times(times[empty], HOUR)}; add maps "
            "that cover them (ionofield.open_ionex reads several files at once) or choose a "
            "period= without them."
        )


def _labels(name: str) -> dict[str, str]:
    """CF attributes of a campaign variable (:mod:`ionofield.io.cf`); empty for others."""
    if name in ("ne", "ne_err", "tec", "tec_rms", "lat", "lon"):
        return attributes(name)
    if name == "time":
        return attributes("time", long_name="whole hours of the hourly drivers (UTC)")
    if name == "obs_time":
        return _obs_attributes("time", long_name="time of the observation (UTC)")
    if name in ("obs_lat", "obs_lon", "obs_alt"):
        return _obs_attributes(name.removeprefix("obs_"))
    if name in INDEX_ATTRIBUTES:
        step = "3-hour slot [t, t + 3 h)" if name == "kp" else "UT day"
        sfu = "" if name == "kp" else "; 1 sfu = 1e-22 W m-2 Hz-1"
        return {
            **INDEX_ATTRIBUTES[name],
            "comment": f"value of the {step} the hour falls in{sfu}",
        }
    return {}

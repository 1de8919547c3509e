"""A campaign's observations as a fit reads them, with the background there.

:class:`ObservationStore` gathers the observations of a campaign (times already
``datetime64[ns]`` and sorted by :func:`ionofield.campaign`) with the network's
coordinates and the background's log10 Ne at each point, once, before training, into
a scratch file (:class:`~ionofield._files.RecordSpool`) from which each step reads its
batch; what it keeps in memory is an index of the profiles, not of the points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ionofield._files import RecordSpool
from ionofield.background import BackgroundField
from ionofield.campaign import observation_blocks
from ionofield.errors import CampaignError
from ionofield.ro_errors import observation_log10_sigma
from ionofield.timeutil import universal_time_hours

#: Step (deg) of the central differences that give the background's horizontal gradient.
_BG_GRADIENT_STEP_DEG = 0.25

POINT = np.dtype([("coords", np.float32, (4,)), ("time", "datetime64[ns]"),
                  ("target", np.float32), ("background", np.float32),
                  ("obs_sigma", np.float32), ("log10_noise", np.float32)])
"""One observation as a fit reads it (40 bytes): the network's coordinates (latitude,
longitude, altitude, UT hours; :func:`point_coords`), the time, the observed log10 Ne,
the background's log10 Ne there, the observation's own sigma of log10 Ne (dex;
:func:`~ionofield.ro_errors.observation_log10_sigma`) and log10 of its ``ne_err`` (m-3;
NaN where the campaign gives none or the fit's ``observation_errors`` is not
``"auto"``)."""


@dataclass(frozen=True)
class ProfileRuns:
    """Where a campaign's profiles lie: runs of consecutive points of one profile.

    The points of a profile follow one another in a campaign (its levels share a time,
    or follow one another in time), so a profile is one run, or a few when profiles
    were observed at the same instants; the index is then about as long as the
    number of profiles, whatever their number of levels.

    Attributes
    ----------
    start
        int64 [R]: index of each run's first point.
    length
        int64 [R]: its number of points.
    profile
        int32 [R]: its profile's code: 0 for the first name seen, then in order of
        appearance.
    hour
        int32 [R]: whole hours from the campaign's first observed hour to its first
        point.
    """

    start: np.ndarray
    length: np.ndarray
    profile: np.ndarray
    hour: np.ndarray


class ObservationStore:
    """A campaign's observations with the background at each point, read by rows.

    The points (:data:`POINT`, 40 bytes each) lie in an anonymous scratch file in the
    campaign's order; the memory holds the profile index (:class:`ProfileRuns`) and a
    few numbers, so a fit of a month costs the memory of a fit of a day. Build it with
    :meth:`from_campaign`.

    Attributes
    ----------
    runs
        The profiles' runs of points.
    lat_range, alt_range
        Smallest and largest observed latitude (deg) and altitude (km).
    time_range
        First and last observation time (datetime64[ns]).
    """

    def __init__(self, spool: RecordSpool, runs: ProfileRuns, lat_range: tuple[float, float],
                 alt_range: tuple[float, float], time_range: tuple[np.datetime64, np.datetime64]
                 ) -> None:
        self._spool = spool
        self.runs = runs
        self.lat_range, self.alt_range, self.time_range = lat_range, alt_range, time_range

    @classmethod
    def from_campaign(
        cls, ds: xr.Dataset, bg_field: BackgroundField, observation_errors: str = "none"
    ) -> ObservationStore:
        """Gather the observations of a campaign and the background at them.

        The campaign is read a block of :data:`~ionofield.campaign.OBS_PER_BLOCK`
        observations at a time (:func:`~ionofield.campaign.observation_blocks`) and each
        block goes to the scratch file, so the float64 temporaries stay the size of a
        block and a campaign opened lazily (``xr.open_dataset(path)`` without
        ``.load()``, dask-backed, Zarr) is never held whole.

        Parameters
        ----------
        ds
            A campaign Dataset (:func:`ionofield.campaign`).
        bg_field
            A :class:`~ionofield.background.BackgroundField`.
        observation_errors
            Where each point's ``obs_sigma`` comes from
            (:attr:`~ionofield.config.FitConfig.observation_errors`): ``"auto"``,
            ``"model"`` or ``"none"`` (zeros).

        Returns
        -------
        ObservationStore
        """
        spool = RecordSpool(POINT)
        heads, head_starts, head_hours, ranges = [], [], [], []
        names = ["obs_time", "obs_lat", "obs_lon", "obs_alt", "obs_profile", "ne"]
        with_err = observation_errors == "auto" and "ne_err" in ds.variables
        for block in observation_blocks(ds, [*names, "ne_err"] if with_err else names):
            time = block["obs_time"]
            lat, lon, alt = (block[f"obs_{name}"].astype(np.float64)
                             for name in ("lat", "lon", "alt"))
            points = np.empty(time.size, POINT)
            points["coords"] = point_coords(time, alt, lat, lon)
            points["time"] = time
            background = bg_field.log10_at(time, alt, lat, lon)
            points["background"] = background
            points["target"] = np.log10(block["ne"])
            runs = run_starts(block["obs_profile"])
            points["log10_noise"] = _log10_noise(block.get("ne_err"), time.size)
            points["obs_sigma"] = observation_log10_sigma(
                bg_field, time, alt, lat, lon, background, block.get("ne_err"),
                observation_errors, runs
            )
            if not heads:  # a campaign is sorted in time: its first hour is the first block's
                first_hour = time.min().astype("datetime64[h]")
            heads.append(block["obs_profile"][runs])
            head_starts.append(runs + len(spool))
            head_hours.append((time[runs] - first_hour) // np.timedelta64(1, "h"))
            coords = points["coords"]
            ranges.append([(coords[:, k].min(), coords[:, k].max()) for k in (0, 2)]
                          + [(time.min(), time.max())])
            spool.append(points)
        if not heads:
            raise CampaignError("the campaign holds no observations; build it with "
                                "ionofield.campaign from observations within its period")
        starts = np.concatenate(head_starts).astype(np.int64)
        codes, _ = pd.factorize(np.concatenate(heads))
        runs = ProfileRuns(start=starts, length=np.diff(np.append(starts, len(spool))),
                           profile=codes.astype(np.int32),
                           hour=np.concatenate(head_hours).astype(np.int32))
        (lat_lo, lat_hi), (alt_lo, alt_hi), (first, last) = (
            (min(r[k][0] for r in ranges), max(r[k][1] for r in ranges)) for k in range(3))
        return cls(spool, runs, (float(lat_lo), float(lat_hi)), (float(alt_lo), float(alt_hi)),
                   (first, last))

    def __len__(self) -> int:
        return len(self._spool)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The points at ``index`` (:data:`POINT` records, in that order)."""
        return self._spool.rows(index)

    def close(self) -> None:
        """Drop the scratch file."""
        self._spool.close()


def _log10_noise(ne_err: np.ndarray | None, n: int) -> np.ndarray:
    """log10 of the observations' ``ne_err`` (m-3), NaN where unknown or zero."""
    if ne_err is None:
        return np.full(n, np.nan, np.float32)
    with np.errstate(divide="ignore"):
        noise = np.log10(ne_err.astype(np.float64))
    return np.where(np.isfinite(noise), noise, np.nan).astype(np.float32)


def run_starts(names: np.ndarray) -> np.ndarray:
    """Where each run of equal neighbouring names begins.

    Points of one profile lie next to each other in a campaign (a profile's levels
    share a time, or follow one another), so a profile is one run, or a few. The
    names of a campaign are coded once per run, not once per point: numpy finds the
    runs without making a Python string per point, which would cost some 100 bytes a
    point for as long as the process lives (freed small objects stay in the
    allocator's arenas).

    Examples
    --------
    >>> run_starts(np.array(["b", "b", "a", "b"]))
    array([0, 2, 3])
    """
    if names.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate(([True], names[1:] != names[:-1])))


def point_coords(time: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The network's coordinates of points.

    Parameters
    ----------
    time, alt, lat, lon
        The points, each shape [N] (datetime64, km, degrees).

    Returns
    -------
    numpy.ndarray
        float32 [N, 4]: latitude, longitude, altitude and universal time in hours.
    """
    return np.stack([lat, lon, alt, universal_time_hours(time)], axis=-1).astype(np.float32)


def background_gradient(
    bg_field: BackgroundField, time: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Horizontal gradient of the log10 background at points.

    Parameters
    ----------
    bg_field
        A :class:`~ionofield.background.BackgroundField`.
    time, alt, lat, lon
        The points, each shape [N] (datetime64, km, degrees).

    Returns
    -------
    numpy.ndarray
        float32 [N, 2]: d/dlat and d/dlon of log10 Ne per degree (central differences
        of ``_BG_GRADIENT_STEP_DEG``, one-sided at the poles).
    """
    step = _BG_GRADIENT_STEP_DEG
    lat_lo, lat_hi = np.clip(lat - step, -90, 90), np.clip(lat + step, -90, 90)

    def at(lat_q: np.ndarray, lon_q: np.ndarray) -> np.ndarray:
        return bg_field.log10_at(time, alt, lat_q, lon_q)

    gradient = np.stack(
        [
            (at(lat_hi, lon) - at(lat_lo, lon)) / np.maximum(lat_hi - lat_lo, 1e-9),
            (at(lat, lon + step) - at(lat, lon - step)) / (2 * step),
        ],
        axis=-1,
    )
    return gradient.astype(np.float32)

"""A campaign's observations as the arrays a fit trains on, with the background there.

:class:`ObservationArrays` gathers the observations of a campaign (times already
``datetime64[ns]`` and sorted by :func:`ionofield.campaign`) with the network's
coordinates and the background's log10 Ne at each point, once, before training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ionofield.background import BackgroundField
from ionofield.campaign import observation_blocks
from ionofield.timeutil import universal_time_hours

#: Step (deg) of the central differences that give the background's horizontal gradient.
_BG_GRADIENT_STEP_DEG = 0.25


@dataclass(frozen=True)
class ObservationArrays:
    """A campaign's observations as arrays, with the background at each point.

    Attributes
    ----------
    coords
        float32 [N, 4]: latitude, longitude (deg), altitude (km), UT (hours).
    time_id
        int32 [N]: index of each point's time in ``times``.
    times
        datetime64[ns] [U]: distinct observation times.
    hour_bin
        int32 [N]: the whole hour at or before each point (for the sampler).
    target
        float32 [N]: observed log10 Ne.
    background
        float32 [N]: log10 of the background Ne.
    profile
        int32 [N]: profile code of each point.
    """

    coords: np.ndarray
    time_id: np.ndarray
    times: np.ndarray
    hour_bin: np.ndarray
    target: np.ndarray
    background: np.ndarray
    profile: np.ndarray

    @classmethod
    def from_campaign(cls, ds: xr.Dataset, bg_field: BackgroundField) -> ObservationArrays:
        """Gather the observations of a campaign and the background at them.

        The campaign is read a block of :data:`~ionofield.campaign.OBS_PER_BLOCK`
        observations at a time (:func:`~ionofield.campaign.observation_blocks`), so the
        float64 temporaries stay the size of a block, and a campaign opened lazily
        (``xr.open_dataset(path)`` without ``.load()``, or dask-backed) is never held
        whole: the arrays here, 36 bytes an observation, are what the fit keeps.

        Parameters
        ----------
        ds
            A campaign Dataset (:func:`ionofield.campaign`).
        bg_field
            A :class:`~ionofield.background.BackgroundField`.

        Returns
        -------
        ObservationArrays
        """
        n = ds.sizes["obs"]
        coords = np.empty((n, 4), dtype=np.float32)
        background, target = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
        time_id, hour_bin = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)
        blocks, heads, head_starts = [], [], []
        names = ["obs_time", "obs_lat", "obs_lon", "obs_alt", "obs_profile", "ne"]
        start = 0
        for block in observation_blocks(ds, names):
            rows = slice(start, start + block["ne"].size)
            time = block["obs_time"]
            lat, lon, alt = (block[f"obs_{name}"].astype(np.float64)
                             for name in ("lat", "lon", "alt"))
            coords[rows] = point_coords(time, alt, lat, lon)
            background[rows] = bg_field.log10_at(time, alt, lat, lon)
            target[rows] = np.log10(block["ne"])
            if not blocks:  # a campaign is sorted in time: its first hour is the first block's
                first_hour = time.min().astype("datetime64[h]")
            hour_bin[rows] = (time - first_hour) // np.timedelta64(1, "h")
            distinct, time_id[rows] = np.unique(time, return_inverse=True)
            blocks.append((rows, distinct))
            runs = run_starts(block["obs_profile"])
            heads.append(block["obs_profile"][runs])
            head_starts.append(runs + start)
            start = rows.stop
        times = np.unique(np.concatenate([distinct for _, distinct in blocks]))
        for rows, distinct in blocks:  # block-local time indices to indices into `times`
            time_id[rows] = np.searchsorted(times, distinct)[time_id[rows]]
        return cls(coords=coords, time_id=time_id, times=times, hour_bin=hour_bin,
                   target=target, background=background,
                   profile=profile_codes(np.concatenate(heads), np.concatenate(head_starts), n))

    def __len__(self) -> int:
        return len(self.target)


def run_starts(names: np.ndarray) -> np.ndarray:
    """Where each run of equal neighbouring names begins.

    Points of one profile lie next to each other in a campaign (a profile's levels
    share a time, or follow one another), so a profile is one run, or a few.

    Examples
    --------
    >>> run_starts(np.array(["b", "b", "a", "b"]))
    array([0, 2, 3])
    """
    if names.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate(([True], names[1:] != names[:-1])))


def profile_codes(heads: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """A whole-number code for each point's profile name, the same for equal names.

    The names are hashed once per run of equal names (:func:`run_starts`), not once
    per point: numpy finds the runs without making a Python string per point, which
    would cost some 100 bytes a point for as long as the process lives (freed small
    objects stay in the allocator's arenas).

    Parameters
    ----------
    heads
        The name of each run.
    starts
        Increasing index of each run's first point, from 0.
    size
        Number of points.

    Returns
    -------
    numpy.ndarray
        int32 [size] codes: 0 for the first name seen, then in order of appearance.

    Examples
    --------
    >>> names = np.array(["b", "b", "a", "b"])
    >>> runs = run_starts(names)
    >>> profile_codes(names[runs], runs, names.size)
    array([0, 0, 1, 0], dtype=int32)
    """
    codes, _ = pd.factorize(heads)
    return np.repeat(codes.astype(np.int32), np.diff(np.append(starts, size)))


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

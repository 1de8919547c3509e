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
from ionofield.timeutil import universal_time_hours

#: Points per block of :meth:`ObservationArrays.from_campaign` (float64 temporaries of
#: some tens of MB).
POINTS_PER_BLOCK = 262_144
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

        The coordinates and the background are computed in blocks of
        :data:`POINTS_PER_BLOCK` points, so the float64 temporaries stay the size of a
        block whatever the campaign's size, and the profile codes come from a hash
        table (:func:`pandas.factorize`), not a sorted copy of the profile names.

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
        # The codes first: factorizing names makes Python strings for a moment.
        profile, _ = pd.factorize(ds["obs_profile"].values)
        time = ds["obs_time"].values
        n = time.size
        coords = np.empty((n, 4), dtype=np.float32)
        background = np.empty(n, dtype=np.float32)
        for start in range(0, n, POINTS_PER_BLOCK):
            block = slice(start, start + POINTS_PER_BLOCK)
            t = time[block]
            lat, lon, alt = (ds[f"obs_{name}"].values[block].astype(np.float64)
                             for name in ("lat", "lon", "alt"))
            coords[block] = point_coords(t, alt, lat, lon)
            background[block] = bg_field.log10_at(t, alt, lat, lon)
        times, time_id = np.unique(time, return_inverse=True)
        hours = (time - time.min().astype("datetime64[h]")) // np.timedelta64(1, "h")
        return cls(
            coords=coords,
            time_id=time_id.astype(np.int32),
            times=times,
            hour_bin=hours.astype(np.int32),
            target=np.log10(ds["ne"].values).astype(np.float32),
            background=background,
            profile=profile.astype(np.int32),
        )

    def __len__(self) -> int:
        return len(self.target)


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

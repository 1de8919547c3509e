"""A campaign's hourly drivers as numpy arrays: the model's view of the time axis.

Fit and reconstruct both go through :class:`HourlyDrivers`: the Kp / F10.7 history the
LSTM reads, the TEC map sequences the ConvLSTM reads, and the cosine-squared blend of
the two whole hours around any minute time (DESIGN.md §3-4). Everything here is
arrays; the model turns them into tensors (:meth:`ionofield.RSTMRF.encode_time`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ionofield.align import bracket_hours
from ionofield.errors import CoverageError
from ionofield.features import driver_features, temporal_features
from ionofield.sphere import Cells
from ionofield.timeutil import day_of_year, universal_time_hours


@dataclass(frozen=True)
class HourlyDrivers:
    """Hourly drivers of a campaign.

    Attributes
    ----------
    hours
        The whole hours, ``datetime64[ns]``, shape [T].
    features
        Normalised Kp, Kp memory, F10.7 and F10.7 81-day mean, float32, shape [T, 4]
        (:func:`~ionofield.features.driver_features`).
    tec
        TEC maps in TECU, float32, shape [T, H, W], W distinct meridians (IONEX's
        repeated +180 column dropped); None when the campaign has no TEC.
    tec_lat, tec_lon
        The maps' ascending latitudes and longitudes (deg), shapes [H] and [W].
    """

    hours: np.ndarray
    features: np.ndarray
    tec: np.ndarray | None
    tec_lat: np.ndarray
    tec_lon: np.ndarray

    @classmethod
    def from_campaign(cls, ds: xr.Dataset) -> HourlyDrivers:
        """Take the hourly drivers out of a campaign Dataset.

        Parameters
        ----------
        ds
            A Dataset built by :func:`ionofield.campaign`.

        Returns
        -------
        HourlyDrivers
        """
        hours = ds["time"].values
        features = driver_features(ds["kp"].values, ds["f107"].values, ds["f107_81"].values)
        if "tec" not in ds:
            return cls(hours, features, None, np.empty(0), np.empty(0))
        tec = ds["tec"].transpose("time", "lat", "lon")
        lon = tec["lon"].values
        if np.isclose(lon[-1] - lon[0], 360.0):  # IONEX repeats -180 as +180
            tec = tec.isel(lon=slice(0, -1))
        if bool(tec.isnull().any()):
            tec = tec.interpolate_na("lon", period=360.0).ffill("lat").bfill("lat")
        return cls(
            hours,
            features,
            tec.values.astype(np.float32),
            tec["lat"].values.astype(np.float64),
            tec["lon"].values.astype(np.float64),
        )

    @property
    def n_hours(self) -> int:
        """Number of whole hours T."""
        return len(self.hours)

    def bracket(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The two whole hours around each time and their cosine-squared weights.

        Parameters
        ----------
        times
            ``datetime64`` times, shape [N], inside the hourly axis.

        Returns
        -------
        i0, i1, w0, w1
            Hour indices (int64) and weights (float32), each shape [N]; ``w0 + w1 = 1``.

        Raises
        ------
        CoverageError
            A time lies outside the hourly axis.
        """
        i0, w0, w1 = bracket_hours(times, self.hours)
        i1 = i0 + 1
        return i0.astype(np.int64), i1.astype(np.int64), w0.astype(np.float32), w1.astype(
            np.float32
        )

    @staticmethod
    def windows(hour_index: np.ndarray, length: int) -> np.ndarray:
        """Indices of the ``length`` hours ending at each hour, oldest first.

        Hours before the first one repeat the first (the history is padded by its
        earliest value).

        Parameters
        ----------
        hour_index
            Shape [U].
        length
            Window length L.

        Returns
        -------
        numpy.ndarray
            Shape [U, L].
        """
        offsets = np.arange(-length + 1, 1)
        return np.maximum(np.asarray(hour_index)[:, None] + offsets, 0)

    def time_inputs(self, times: np.ndarray, env_len: int) -> TimeInputs:
        """Everything the temporal path needs for distinct times.

        Parameters
        ----------
        times
            Distinct ``datetime64`` times, shape [U].
        env_len
            Hours of driver history the LSTM reads.

        Returns
        -------
        TimeInputs
        """
        i0, i1, w0, w1 = self.bracket(times)
        hours, inverse = np.unique(np.concatenate([i0, i1]), return_inverse=True)
        history = self.features[self.windows(hours, env_len)]
        return TimeInputs(
            features=temporal_features(universal_time_hours(times), day_of_year(times)),
            history=history,
            hours=hours,
            weights=(inverse[: len(times)], inverse[len(times):], w0, w1),
        )

    def hour_cells(self, times: np.ndarray) -> Cells:
        """The two whole hours around each time as interpolation cells on the hour axis.

        :func:`ionofield.sphere.interpolate` with these cells on the time axis of an
        hourly stack of maps gives ``w0 * map[i0] + w1 * map[i1]``, the cosine-squared
        blend.

        Parameters
        ----------
        times
            ``datetime64`` times, any shape, inside the hourly axis.

        Returns
        -------
        Cells
            Hour indices and the weight of the later hour, the shape of ``times``.
        """
        times = np.asarray(times, dtype="datetime64[ns]")
        i0, i1, _, w1 = self.bracket(times.ravel())
        return Cells(*(a.reshape(times.shape) for a in (i0, i1, w1.astype(np.float64))))

    def tec_sequences(self, hour_index: np.ndarray, seq_len: int) -> np.ndarray:
        """TEC map sequences ending at each hour, float32, shape [U, seq_len, H, W]."""
        if self.tec is None:
            raise CoverageError("the campaign has no TEC maps; pass tec= to ionofield.campaign")
        return self.tec[self.windows(hour_index, seq_len)]


@dataclass(frozen=True)
class TimeInputs:
    """Inputs of :meth:`ionofield.RSTMRF.time_code` for U distinct times, as arrays.

    Attributes
    ----------
    features
        Temporal SIREN input, float32, shape [U, 4].
    history
        Driver history of each distinct whole hour involved, float32, shape
        [Hn, env_len, 4].
    hours
        Those hours' indices on the campaign axis, shape [Hn].
    weights
        ``(i0, i1, w0, w1)``, each shape [U]: rows of ``history`` before and after each
        time and their cosine-squared weights.
    """

    features: np.ndarray
    history: np.ndarray
    hours: np.ndarray
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

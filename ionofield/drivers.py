"""A campaign's hourly drivers as numpy arrays: the model's view of the time axis.

Fit and reconstruct both go through :class:`HourlyDrivers`: the Kp / F10.7 history the
LSTM reads, the TEC map sequences the ConvLSTM reads, and the cosine-squared blend of
the two whole hours around any minute time (DESIGN.md §3-4): across any hour for the
TEC maps, within a 3-hour Kp slot for the driver history (a time never reads the next
slot's Kp or the next day's F10.7 before they start). Everything here is arrays; the
model turns them into tensors (:meth:`ionofield.RSTMRF.encode_time`).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ionofield.align import bracket_hours, bracket_slots
from ionofield.errors import CoverageError, DataWarning
from ionofield.features import driver_features, temporal_features
from ionofield.sphere import Cells
from ionofield.timeutil import HOUR, day_of_year, describe_times, universal_time_hours


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
        repeated +180 column dropped), missing cells filled (:func:`_fill_map_gaps`);
        None when the campaign has no TEC.
    tec_lat, tec_lon
        The maps' ascending latitudes and longitudes (deg), shapes [H] and [W].
    tec_observed
        Whether a native map lies at each hour, bool, shape [T] (the campaign's
        ``tec_observed``, :func:`ionofield.align.align_tec`): the other hours' maps
        were interpolated in time (the odd hours of a 2-hourly product). None: every
        hour has its map.
    """

    hours: np.ndarray
    features: np.ndarray
    tec: np.ndarray | None
    tec_lat: np.ndarray
    tec_lon: np.ndarray
    tec_observed: np.ndarray | None = None

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

        Raises
        ------
        CoverageError
            When a TEC map has no valid cell at some hour.

        Warns
        -----
        DataWarning
            When TEC cells are missing (9999 in IONEX, NaN), with how many were filled,
            at which hours and how (:func:`_fill_map_gaps`).
        """
        hours = ds["time"].values
        features = driver_features(ds["kp"].values, ds["f107"].values, ds["f107_81"].values)
        if "tec" not in ds:
            return cls(hours, features, None, np.empty(0), np.empty(0))
        tec = ds["tec"].transpose("time", "lat", "lon")
        lon = tec["lon"].values
        if np.isclose(lon[-1] - lon[0], 360.0):  # IONEX repeats -180 as +180
            tec = tec.isel(lon=slice(0, -1))
        tec_lat = tec["lat"].values.astype(np.float64)
        tec_lon = tec["lon"].values.astype(np.float64)
        maps = _fill_map_gaps(tec.values.astype(np.float64), tec_lat, tec_lon, hours)
        observed = ds["tec_observed"].values.astype(bool) if "tec_observed" in ds else None
        return cls(hours, features, maps.astype(np.float32), tec_lat, tec_lon, observed)

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

        The driver history is blended between the two whole hours around a time
        within a 3-hour Kp slot only (:func:`ionofield.align.bracket_slots`): in the
        last hour of a slot a time reads only the history ending at the whole hour
        before it, not the one ending at the next slot's start, whose last Kp (and, at
        midnight, F10.7) is the next slot's. The temporal code therefore steps at the
        slot starts, as Kp does.

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
        i0, w0, w1 = bracket_slots(times, self.hours)
        i1 = np.where(w1 > 0.0, i0 + 1, i0)
        hours, inverse = np.unique(np.concatenate([i0, i1]), return_inverse=True)
        history = self.features[self.windows(hours, env_len)]
        return TimeInputs(
            features=temporal_features(universal_time_hours(times), day_of_year(times)),
            history=history,
            hours=hours,
            weights=(
                inverse[: len(times)],
                inverse[len(times):],
                w0.astype(np.float32),
                w1.astype(np.float32),
            ),
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

    def for_tec_path(self, native_cadence: bool) -> HourlyDrivers:
        """These drivers as the TEC path reads them.

        Parameters
        ----------
        native_cadence
            True: the path reads the native maps only (:attr:`tec_observed`), and an
            hour without one gets the head's field at its lead after the latest one
            (``FitConfig.w_tec_forecast > 0``). False: every hour's aligned map counts
            as the hour's own, interpolated ones included (lead 0 everywhere).

        Returns
        -------
        HourlyDrivers
            ``self``, or a copy with ``tec_observed = None`` (the arrays shared).
        """
        return self if native_cadence else dataclasses.replace(self, tec_observed=None)

    def map_hours(self) -> np.ndarray:
        """Indices of the hours whose maps the TEC path reads, increasing, shape [M].

        The hours with a native map (:attr:`tec_observed`), and the hours before the
        first of them (their interpolated maps are all there is); every hour when
        :attr:`tec_observed` is None.
        """
        if self.tec_observed is None:
            return np.arange(self.n_hours)
        observed = np.asarray(self.tec_observed, dtype=bool)
        return np.flatnonzero(observed | (np.cumsum(observed) == 0))

    def latest_map(self, hour_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The latest map hour (:meth:`map_hours`) at or before each hour, and the lead.

        Parameters
        ----------
        hour_index
            Indices of :attr:`hours`, shape [U].

        Returns
        -------
        base, lead_hours
            Hour indices, int64, and the hours from each base map to its hour, float32
            (0 at a map hour), each shape [U].

        Examples
        --------
        >>> hours = np.datetime64("2024-05-11T00", "ns") + np.arange(5) * np.timedelta64(1, "h")
        >>> drivers = HourlyDrivers(hours, np.zeros((5, 4)), np.zeros((5, 1, 2)), np.zeros(1),
        ...                         np.zeros(2), np.array([1, 0, 1, 0, 0], bool))
        >>> base, lead = drivers.latest_map(np.arange(5))
        >>> base.tolist(), lead.tolist()
        ([0, 0, 2, 2, 2], [0.0, 1.0, 0.0, 1.0, 2.0])
        """
        hour_index = np.asarray(hour_index, dtype=np.int64)
        maps = self.map_hours()
        base = maps[np.searchsorted(maps, hour_index, side="right") - 1]
        lead = (self.hours[hour_index] - self.hours[base]) / HOUR
        return base, lead.astype(np.float32)

    def tec_sequences(self, hour_index: np.ndarray, seq_len: int) -> np.ndarray:
        """Map sequences of the TEC path, float32, shape [U, seq_len, H, W].

        Each sequence holds the ``seq_len`` latest map hours (:meth:`map_hours`) at or
        before its hour, oldest first, padded by the first one (:meth:`windows`): at
        a map's native cadence, never an interpolated map after the first native one.
        With hourly maps these are the maps of the ``seq_len`` hours ending at the hour.
        """
        if self.tec is None:
            raise CoverageError("the campaign has no TEC maps; pass tec= to ionofield.campaign")
        maps = self.map_hours()
        position = np.searchsorted(maps, np.asarray(hour_index, dtype=np.int64), side="right") - 1
        return self.tec[maps[self.windows(position, seq_len)]]


def _fill_map_gaps(
    maps: np.ndarray, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray
) -> np.ndarray:
    """Fill missing cells (NaN) of hourly maps, saying how many, where and how.

    Each latitude row with a valid cell is filled linearly in longitude between its
    valid cells (periodically across the antimeridian when the meridians span the
    globe); rows left without any are then filled linearly in latitude between the
    nearest filled rows (and from the nearest one beyond the last). Only numpy is
    used.

    Parameters
    ----------
    maps
        Maps, float, shape [T, H, W], NaN where missing.
    lat, lon
        Latitudes [H] and longitudes [W] of the maps (deg), each in either order.
    hours
        The maps' times, ``datetime64``, shape [T], for the messages.

    Returns
    -------
    numpy.ndarray
        A filled copy of ``maps`` (the input itself when nothing is missing).

    Raises
    ------
    CoverageError
        When a map has no valid cell.

    Warns
    -----
    DataWarning
        When cells were filled: their count, the hours, and how.

    Examples
    --------
    >>> import warnings
    >>> maps = np.array([[[1.0, np.nan, 3.0, 2.0], [np.nan] * 4]])
    >>> hours = np.array(["2024-05-11T00"], "datetime64[ns]")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     filled = _fill_map_gaps(maps, np.array([0.0, 10.0]), np.arange(0.0, 360, 90), hours)
    >>> filled.tolist()
    [[[1.0, 2.0, 3.0, 2.0], [1.0, 2.0, 3.0, 2.0]]]
    >>> str(caught[0].message).split(" of ")[0]
    'TEC maps: 5 missing cell(s) (9999 in IONEX, NaN)'
    """
    missing = np.isnan(maps)
    if not missing.any():
        return maps
    empty = missing.reshape(len(maps), -1).all(axis=1)
    if empty.any():
        raise CoverageError(
            f"TEC maps: no valid cell (all 9999 / NaN) at hour(s) "
            f"{describe_times(hours[empty], HOUR)}; build the campaign with maps that cover "
            "them (ionofield.campaign refuses such maps)."
        )
    lon_order, lat_order = np.argsort(lon), np.argsort(lat)
    x, y = lon[lon_order], lat[lat_order]
    step = np.diff(x).min() if x.size > 1 else 360.0
    period = 360.0 if np.isclose(x[-1] - x[0] + step, 360.0) else None
    filled = maps[:, lat_order][:, :, lon_order].copy()
    for t, k in zip(*np.nonzero(np.isnan(filled).any(axis=2)), strict=True):
        row = filled[t, k]
        valid = ~np.isnan(row)
        if valid.any():
            row[~valid] = np.interp(x[~valid], x[valid], row[valid], period=period)
    for t in np.flatnonzero(np.isnan(filled).any(axis=(1, 2))):
        valid = ~np.isnan(filled[t, :, 0])
        for j in range(x.size):
            filled[t, ~valid, j] = np.interp(y[~valid], y[valid], filled[t, valid, j])
    out = np.empty_like(filled)
    out[np.ix_(np.arange(len(maps)), lat_order, lon_order)] = filled
    counts = missing.sum(axis=(1, 2))
    hit = counts > 0
    warnings.warn(
        f"TEC maps: {int(counts.sum())} missing cell(s) (9999 in IONEX, NaN) of "
        f"{int(hit.sum())} hourly map(s) at {describe_times(hours[hit], HOUR)} (at most "
        f"{int(counts.max())} of {maps[0].size} in one map) filled for the TEC path: linearly "
        f"in longitude{' (periodic)' if period else ''} within each latitude row, then "
        "linearly in latitude for rows without a valid cell; the campaign's tec keeps them "
        "missing.",
        DataWarning,
        stacklevel=3,
    )
    return out


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
        time and their cosine-squared weights, ``w1 = 0`` (and ``i1 = i0``) in the last
        hour of a 3-hour slot (:func:`ionofield.align.bracket_slots`).
    """

    features: np.ndarray
    history: np.ndarray
    hours: np.ndarray
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

"""The background field of the model: log10 Ne at any point, from IRI or a user's cube.

R-STMRF learns a residual on top of a climatological background, whose profile it may
raise by a learned height (:meth:`BackgroundField.raised`)::

    log10 Ne(x, t) = log10 Ne_background(alt - shift, lat, lon, t) + residual(x, t)

:class:`BackgroundField` turns any background cube (IRI's from
:func:`ionofield.iri.iri_cube`, or one a user supplies) into log10 Ne at scattered
points by multilinear interpolation in log10 space (:func:`ionofield.sphere.interpolate`).
It is the only reading of the background: fitting and reconstruction both call
:meth:`BackgroundField.log10_at` (and :meth:`BackgroundField.raised`), so they see the
same value at the same point.
:func:`campaign_background` gives fitting and reconstruction that field over whole
hours: the IRI cube of a configuration, or a user's background.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from ionofield.errors import CoverageError, ManyProblemsError
from ionofield.iri import FOF2_MODEL, HMF2_MODEL, iri_cube
from ionofield.sphere import (
    Cells,
    axis_cells,
    fill_pole_rows,
    fold_longitude,
    global_meridians,
    interpolate,
    longitude_cells,
    pole_rows,
)
from ionofield.timeutil import hours_since, to_datetime64

if TYPE_CHECKING:
    from ionofield.config import FitConfig

logger = logging.getLogger(__name__)

NE_FLOOR = 1.0e6
"""Lowest electron density (m-3) the background takes before its log10 is formed."""

COVERAGE_TOLERANCE = 1e-6
"""How far (hours for time, km for altitude) a query may stray outside the cube."""

IRI_F107 = "f107_81"
"""The campaign variable whose F10.7 a fit gives PyIRI: the 81-day centred mean.

PyIRI 0.1.7 (``IRI_density_1day``) reads its one F10.7 argument as the level of solar
activity of monthly-median maps: it converts it with IRI's relations for 12-month
running means (``F107_2_IG12`` for foF2 and hmF2, ``F107_2_R12`` for M3000, B0, B1
and foEs, which interpolate between maps at IG12 / R12 = 0 and 100), and it enters
the NeQuick foE and the F2 thickness, also 12-month-smoothed quantities there. PyIRI
says it does not tell daily, 81-day and 365-day F10.7 apart. The daily value moves
with the 27-day solar rotation (223 sfu on 2024-05-10 against an 81-day mean of 176),
which the monthly medians do not describe; the 81-day centred mean is the smoothed
flux every campaign carries (a 12-month mean would need a year of indices).
"""

IRI_HOURS_PER_READ = 24
"""Hours of IRI :meth:`BackgroundField.from_iri` computes or reads per call of
:func:`iri_cube` when it builds a field."""

BACKGROUND_MEMORY_MB = 64.0
"""Memory (MB) an IRI background field keeps of its hours' log10 Ne.

The other hours are read back from the IRI disk cache when a query needs them
(:meth:`BackgroundField.from_iri`), so a fit of a month holds what a fit of a day
does: on the default 2.5 x 5 degree, 10 km grid an hour is 2 MB, 32 hours are kept.
"""

PROFILE_STEP_KM = 10.0
"""Step (km) of the central differences that give the background's vertical slope
(:meth:`BackgroundField.vertical_slope`): the default IRI grid's step."""

_NE_UNITS = {"m-3", "m^-3", "m**-3", "/m3", "1/m3"}

def campaign_background(
    hours: npt.ArrayLike,
    f107: float | xr.DataArray,
    *,
    config: FitConfig,
    background: xr.Dataset | xr.DataArray | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[BackgroundField, dict[str, Any]]:
    """The background field that fitting and reconstruction use over some hours.

    Parameters
    ----------
    hours
        Times the field must cover, shape [T] (datetime64 or cftime).
    f107
        F10.7 in sfu given to PyIRI, as :func:`iri_cube` takes it: a campaign's
        ``ds[IRI_F107]`` (:data:`IRI_F107`), or one number.
    config
        Its ``background_alt`` ``(start, stop, step)`` km and ``background_lat_step``,
        ``background_lon_step`` degrees set the IRI grid: altitudes start..stop,
        latitudes from -90 + step to 90 - step (the IONEX rows for 2.5 degrees),
        longitudes -180 up to 180 (excluded).
    background
        A user-supplied background (see :class:`BackgroundField`); IRI when omitted.
    cache_dir
        Disk cache of the IRI cube (:func:`iri_cube`).

    Returns
    -------
    field : BackgroundField
        IRI on the whole hours spanning ``hours``
        (:meth:`BackgroundField.from_iri`): cached on disk per hour, so a later call
        for the same hours (a reconstruction of the fitted period) reads it back, and
        held in memory only up to :data:`BACKGROUND_MEMORY_MB`.
    info : dict
        JSON-ready description to store with a model: ``kind`` (``"iri"`` or
        ``"user"``) and the options or extent of the background; for IRI,
        ``f107_variable`` (the name of the ``f107`` DataArray, which
        :func:`ionofield.reconstruct` gives PyIRI again, or ``"constant"``) and
        ``f107`` (the value of each UT day).
    """
    if background is not None:
        field = BackgroundField(background)
        info = {
            "kind": "user",
            "time": [str(field.time[0]), str(field.time[-1])],
            "shape": [field.time.size, field.alt.size, field.lat.size, field.lon.size],
        }
        return field, info
    when = to_datetime64(hours)
    first, last = when.min().astype("datetime64[h]"), when.max().astype("datetime64[h]")
    if last < when.max():
        last = last + np.timedelta64(1, "h")
    times = np.arange(first, last + np.timedelta64(1, "h"), np.timedelta64(1, "h")).astype(
        "datetime64[ns]"
    )
    alt, lat, lon = iri_axes(config)
    start, stop, step = config.background_alt
    lat_step, lon_step = config.background_lat_step, config.background_lon_step
    field = BackgroundField.from_iri(times, alt, lat, lon, f107=f107, cache_dir=cache_dir)
    info = {
        "kind": "iri",
        "pyiri_version": field.attrs["iri_version"],
        "fof2_model": FOF2_MODEL,
        "hmf2_model": HMF2_MODEL,
        "f107_variable": str(f107.name) if isinstance(f107, xr.DataArray) else "constant",
        "f107": field.attrs["iri_f107"],
        "alt": [float(start), float(stop), float(step)],
        "lat_step": float(lat_step),
        "lon_step": float(lon_step),
    }
    return field, info


def iri_axes(config: FitConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The altitudes, latitudes and longitudes of the IRI grid a config sets.

    Parameters
    ----------
    config
        Its ``background_alt`` and ``background_lat_step``, ``background_lon_step``
        (:func:`campaign_background`).

    Returns
    -------
    alt, lat, lon : numpy.ndarray
        float64 axes (km, degrees, degrees).

    Examples
    --------
    >>> from ionofield.config import FitConfig
    >>> alt, lat, lon = iri_axes(FitConfig(background_alt=(100.0, 500.0, 100.0)))
    >>> alt.tolist(), lat[[0, -1]].tolist(), lon[[0, -1]].tolist()
    ([100.0, 200.0, 300.0, 400.0, 500.0], [-87.5, 87.5], [-180.0, 175.0])
    """
    start, stop, step = config.background_alt
    lat_step, lon_step = config.background_lat_step, config.background_lon_step
    alt = np.arange(start, stop + step / 2, step)
    lat = np.arange(-90.0 + lat_step, 90.0 - lat_step / 2, lat_step)
    lon = np.arange(-180.0, 180.0 - lon_step / 2, lon_step)
    return alt, lat, lon


class BackgroundField:
    """log10 of a background electron density, interpolated at any points.

    Parameters
    ----------
    background
        A Dataset holding the variable ``name``, or a DataArray, on the dimensions
        ``time``, ``alt``, ``lat``, ``lon`` (any order) with coordinates for each:
        times (datetime64 or cftime), altitude in km, latitude in degrees north and
        longitude in degrees east (any range; folded to [-180, 180); a duplicated
        -180/180 column is dropped). Units must be ``m-3``. The longitudes must go
        round the globe. Typically :func:`iri_cube`'s output.
    name
        The variable of a Dataset ``background`` to use.
    floor
        Electron density in m-3 below which values are raised to ``floor`` before
        log10 is taken (zeros and negative values included).

    Raises
    ------
    ManyProblemsError
        Every problem found with the dimensions, coordinates, units or values,
        reported together.

    Notes
    -----
    :meth:`log10_at` interpolates log10 Ne multilinearly on the grid: linearly in
    time, altitude and latitude, and periodically in longitude (across the
    antimeridian). When the grid's last row lies within one grid step of a pole
    (IONEX-like grids stop at +-87.5 degrees), the field goes on linearly to the
    zonal mean of that row at the pole, so it is single-valued and continuous there.
    Times and altitudes outside the grid raise
    :class:`~ionofield.errors.CoverageError`.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> ne = xr.DataArray(
    ...     np.full((2, 3, 3, 4), 1e11),
    ...     coords={"time": pd.date_range("2024-05-11", periods=2, freq="h"),
    ...             "alt": [100.0, 300.0, 500.0], "lat": [-60.0, 0.0, 60.0],
    ...             "lon": [-180.0, -90.0, 0.0, 90.0]},
    ...     dims=("time", "alt", "lat", "lon"), attrs={"units": "m-3"})
    >>> field = BackgroundField(ne)
    >>> field.log10_at(np.datetime64("2024-05-11T00:30"), 250.0, 89.0, 179.0)
    array(11.)
    """

    def __init__(
        self,
        background: xr.Dataset | xr.DataArray,
        *,
        name: str = "ne_background",
        floor: float = NE_FLOOR,
    ) -> None:
        da = _validated_background(background, name)
        self.floor = float(floor)
        self.attrs = dict(da.attrs)
        self.time = to_datetime64(da["time"].values)
        self.alt = np.asarray(da["alt"].values, dtype=np.float64)
        self.lat = np.asarray(da["lat"].values, dtype=np.float64)
        self.lon = np.asarray(da["lon"].values, dtype=np.float64)
        self._hours = hours_since(self.time, self.time[0])
        self._lat_closed, _, _ = pole_rows(self.lat)
        self._slabs: _LoadedHours | _CachedIriHours = _LoadedHours(
            _log10_grid(np.asarray(da.values), self.lat, self.floor)
        )

    @property
    def alt_range(self) -> tuple[float, float]:
        """Lowest and highest altitude (km) of the field."""
        return float(self.alt[0]), float(self.alt[-1])

    @classmethod
    def from_iri(
        cls,
        times: np.ndarray,
        alt: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        *,
        f107: float | xr.DataArray,
        cache_dir: str | os.PathLike[str] | None = None,
        memory_mb: float = BACKGROUND_MEMORY_MB,
    ) -> BackgroundField:
        """IRI (:func:`iri_cube`) on a grid, computed once per hour, kept in part.

        Every hour is computed (or found) in the IRI disk cache first, a batch of
        hours at a time; the field then keeps the log10 Ne of the hours last used,
        ``memory_mb`` at most (at least two hours), and reads the others back from
        the cache when a query needs them. A campaign of any length thus costs the
        memory of a few days of it.

        Parameters
        ----------
        times
            Whole hours, strictly increasing (datetime64).
        alt, lat, lon
            The grid (km, degrees), as :func:`iri_cube` takes it.
        f107
            F10.7 as :func:`iri_cube` takes it.
        cache_dir
            The IRI disk cache (:func:`iri_cube`).
        memory_mb
            How much of the field is kept in memory.

        Returns
        -------
        BackgroundField
        """
        times = to_datetime64(times)
        hours = _CachedIriHours(times, alt, lat, lon, f107, cache_dir, memory_mb)
        per_read = min(hours.capacity, IRI_HOURS_PER_READ)
        first = hours.cube(np.arange(min(times.size, per_read)))
        field = cls(first)  # checks the grid and sets it, on the first hours
        field.time, field._hours = times, hours_since(times, times[0])
        hours.keep(np.arange(first.sizes["time"]), field._slabs.log10)
        field._slabs = hours
        days = dict(item.split("=") for item in first.attrs["iri_f107"].split())
        for start in range(first.sizes["time"], times.size, per_read):
            batch = np.arange(start, min(start + per_read, times.size))
            cube = hours.cube(batch)
            days.update(item.split("=") for item in cube.attrs["iri_f107"].split())
            hours.keep(batch, hours.log10(cube))
        field.attrs = {**first.attrs,
                       "iri_f107": " ".join(f"{day}={value}" for day, value in days.items())}
        return field

    def __repr__(self) -> str:
        return (
            f"<BackgroundField time {self.time[0]}..{self.time[-1]} ({self.time.size}), "
            f"alt {self.alt[0]:g}..{self.alt[-1]:g} km ({self.alt.size}), "
            f"lat ({self.lat.size}), lon ({self.lon.size})>"
        )

    def log10_at(
        self,
        time: npt.ArrayLike,
        alt: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
    ) -> np.ndarray:
        """log10 of the background Ne (m-3) at the given points.

        The four inputs are broadcast against each other, so scattered points
        (four arrays of shape [N]) and whole grids (``t[:, None, None, None]``,
        ``alt[None, :, None, None]``, ...) use the same routine; on a grid, the
        cell indices are found per axis, not per point.

        Parameters
        ----------
        time
            Times (datetime64, pandas or cftime), any shape broadcastable with the
            others.
        alt
            Altitudes in km.
        lat
            Latitudes in degrees north, in [-90, 90].
        lon
            Longitudes in degrees east, any range.

        Returns
        -------
        numpy.ndarray
            float64 log10 Ne with the broadcast shape of the inputs.

        Raises
        ------
        CoverageError
            A time, altitude or latitude (or a NaN) outside what the background
            covers, with the range it covers.
        """
        when = to_datetime64(time)
        hours = hours_since(when, self.time[0])
        span = f"{self.time[0]}..{self.time[-1]}"
        _check_range("time", hours, 0.0, self._hours[-1], span, shown=when)
        alt_q = self._checked_alt(alt)
        lat_q = np.asarray(lat, dtype=np.float64)
        lo, hi = self._lat_closed[0], self._lat_closed[-1]
        _check_range("lat", lat_q, lo, hi, f"{lo:g}..{hi:g} degrees north")
        lon_q = np.asarray(lon, dtype=np.float64)
        _check_range("lon", lon_q, -np.inf, np.inf, "finite values")
        values, time_cells = self._slabs.values_for(axis_cells(self._hours, hours))
        cells = [
            time_cells,
            axis_cells(self.alt, alt_q),
            axis_cells(self._lat_closed, lat_q),
            longitude_cells(self.lon, lon_q),
        ]
        return np.asarray(interpolate(values, cells))

    def raised(
        self,
        time: npt.ArrayLike,
        alt: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        rise_km: npt.ArrayLike,
    ) -> np.ndarray:
        """log10 Ne at the given points of the background with its profiles raised.

        The value at ``alt`` is the background's at ``alt - rise_km``, held at the
        field's lowest or highest altitude beyond them: the network's profile shift
        (:class:`~ionofield.nn.model.RSTMRFNetwork`) moves the whole profile, peak,
        bottomside and topside together.

        Parameters
        ----------
        time, alt, lat, lon
            As :meth:`log10_at` takes them (broadcast against each other).
        rise_km
            How far each profile rises (km; negative lowers it), broadcast with them.

        Returns
        -------
        numpy.ndarray
            float64 log10 Ne of the raised profiles, shaped as :meth:`log10_at`'s.

        Raises
        ------
        CoverageError
            As :meth:`log10_at`, for the points as given (not as lowered).

        Examples
        --------
        >>> import numpy as np, pandas as pd, xarray as xr
        >>> alt = np.arange(100.0, 501.0, 50.0)
        >>> ne = xr.DataArray(
        ...     np.broadcast_to(10.0 ** (8 + 0.01 * alt)[None, :, None, None], (2, 9, 3, 4)),
        ...     coords={"time": pd.date_range("2024-05-11", periods=2, freq="h"), "alt": alt,
        ...             "lat": [-60.0, 0.0, 60.0], "lon": [-180.0, -90.0, 0.0, 90.0]},
        ...     dims=("time", "alt", "lat", "lon"), attrs={"units": "m-3"})
        >>> BackgroundField(ne).raised(np.datetime64("2024-05-11T00:30"), 300.0, 0.0, 0.0,
        ...                            [20.0, -20.0, 500.0]).round(6)
        array([10.8, 11.2,  9. ])
        """
        lowered, _ = self._lowered(alt, rise_km)
        return self.log10_at(time, lowered, lat, lon)

    def raised_slope(
        self,
        time: npt.ArrayLike,
        alt: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        rise_km: npt.ArrayLike,
    ) -> np.ndarray:
        """Derivative of :meth:`raised` in the rise (dex per km).

        Minus the background's :meth:`vertical_slope` at the lowered altitude, and 0
        where that altitude is held at the field's end (the value no longer moves with
        the rise there). A fit takes it as the gradient of the raised background in the
        network's profile shift.

        Parameters
        ----------
        time, alt, lat, lon, rise_km
            As :meth:`raised` takes them.

        Returns
        -------
        numpy.ndarray
            float64, shaped as :meth:`raised`'s value.

        Raises
        ------
        CoverageError
            As :meth:`raised`.
        """
        lowered, held = self._lowered(alt, rise_km)
        return np.where(held, 0.0, -self.vertical_slope(time, lowered, lat, lon))

    def _lowered(
        self, alt: npt.ArrayLike, rise_km: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """``alt - rise_km`` held within the field's altitudes, and where it was held."""
        lowered = self._checked_alt(alt) - np.asarray(rise_km, dtype=np.float64)
        low, high = self.alt_range
        return np.clip(lowered, low, high), (lowered < low) | (lowered > high)

    def _checked_alt(self, alt: npt.ArrayLike) -> np.ndarray:
        """``alt`` as float64 km, refused (CoverageError) outside the field's altitudes."""
        alt_q = np.asarray(alt, dtype=np.float64)
        _check_range(
            "alt", alt_q, self.alt[0], self.alt[-1], f"{self.alt[0]:g}..{self.alt[-1]:g} km"
        )
        return alt_q

    def vertical_slope(
        self,
        time: npt.ArrayLike,
        alt: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
    ) -> np.ndarray:
        """Slope d log10 Ne / d alt of the background at the given points (dex per km).

        Central differences of :data:`PROFILE_STEP_KM`, one-sided within a step of the
        field's lowest or highest altitude (0 for a field of one altitude); a fit takes
        it as the derivative of :meth:`raised` in the rise.

        Parameters
        ----------
        time, alt, lat, lon
            As :meth:`log10_at` takes them (broadcast against each other).

        Returns
        -------
        numpy.ndarray
            float64, the broadcast shape of the inputs.

        Raises
        ------
        CoverageError
            As :meth:`log10_at`.
        """
        alt_q = np.asarray(alt, dtype=np.float64)
        above = np.minimum(alt_q + PROFILE_STEP_KM, self.alt[-1])
        below = np.maximum(alt_q - PROFILE_STEP_KM, self.alt[0])
        rise = self.log10_at(time, above, lat, lon) - self.log10_at(time, below, lat, lon)
        depth = np.broadcast_to(above - below, rise.shape)  # 0 only for a one-level field
        return np.divide(rise, depth, out=np.zeros_like(rise), where=depth > 0)


class _LoadedHours:
    """Every hour of a background's log10 Ne, in memory."""

    def __init__(self, log10: np.ndarray) -> None:
        self.log10 = log10

    def values_for(self, cell: Cells) -> tuple[np.ndarray, Cells]:
        """The grid to interpolate for queries in time cells ``cell``, and their cells there."""
        return self.log10, cell


class _CachedIriHours:
    """The hours of an IRI background, read from the IRI disk cache, the last used kept.

    Parameters
    ----------
    times, alt, lat, lon, f107, cache_dir
        What :func:`iri_cube` is given, ``times`` for every hour of the field.
    memory_mb
        Memory of the hours kept (at least two are).
    """

    def __init__(self, times: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                 f107: float | xr.DataArray, cache_dir: str | os.PathLike[str] | None,
                 memory_mb: float) -> None:
        self.times, self.alt, self.lat, self.lon = times, alt, lat, lon
        self.f107, self.cache_dir = f107, cache_dir
        hour_bytes = 4 * alt.size * (lat.size + 2) * lon.size
        self.capacity = max(2, int(memory_mb * 2**20 // hour_bytes))
        self.kept: OrderedDict[int, np.ndarray] = OrderedDict()

    def cube(self, hours: np.ndarray) -> xr.Dataset:
        """:func:`iri_cube` at ``hours`` (indices of ``times``, increasing)."""
        return iri_cube(self.times[hours], self.alt, self.lat, self.lon, f107=self.f107,
                        cache_dir=self.cache_dir)

    def log10(self, cube: xr.Dataset) -> np.ndarray:
        """The log10 grids of an IRI cube of these hours."""
        return _log10_grid(cube["ne_background"].values, self.lat, NE_FLOOR)

    def keep(self, hours: np.ndarray, log10: np.ndarray) -> None:
        """Keep (copies of) the log10 grids of ``hours``, forgetting the least recent."""
        for hour, grid in zip(hours.tolist(), log10, strict=True):
            self.kept[hour] = grid.copy()  # not a view, which would hold all of log10
            self.kept.move_to_end(hour)
        while len(self.kept) > self.capacity:
            self.kept.popitem(last=False)

    def values_for(self, cell: Cells) -> tuple[np.ndarray, Cells]:
        """The hours that queries in time cells ``cell`` need, stacked, and their cells there."""
        needed = np.unique(np.concatenate([np.ravel(cell.lower), np.ravel(cell.upper)]))
        missing = np.array([hour for hour in needed.tolist() if hour not in self.kept], int)
        read = dict(zip(missing.tolist(), self.log10(self.cube(missing)), strict=True)) \
            if missing.size else {}
        stack = np.stack([read[hour] if hour in read else self.kept[hour]
                          for hour in needed.tolist()])
        for hour in needed.tolist():
            if hour in self.kept:
                self.kept.move_to_end(hour)
        self.keep(missing, [read[hour] for hour in missing.tolist()])
        return stack, Cells(np.searchsorted(needed, cell.lower),
                            np.searchsorted(needed, cell.upper), cell.weight)


def _log10_grid(ne: np.ndarray, lat: np.ndarray, floor: float) -> np.ndarray:
    """log10 of Ne [T, Z, Y, X] on latitudes ``lat``, floored, with the pole rows added.

    Rows at the poles a grid stops just short of hold the zonal mean of the nearest
    row (:func:`ionofield.sphere.pole_rows`), so the field is single-valued and
    continuous there. The array is filled in place: building it costs no more memory
    than it holds.
    """
    closed, south, north = pole_rows(lat)
    n_floored = int(np.count_nonzero(ne < floor))
    if n_floored:
        logger.info("background: %d of %d values below %g m-3 raised to it", n_floored,
                    ne.size, floor)
    log10 = np.empty((*ne.shape[:2], closed.size, ne.shape[3]), np.float32)
    inner = log10[:, :, south : south + lat.size]
    np.maximum(ne, floor, out=inner, casting="same_kind")
    np.log10(inner, out=inner)
    fill_pole_rows(log10, south, north)
    return log10


def _validated_background(background: xr.Dataset | xr.DataArray, name: str) -> xr.DataArray:
    """Return the background as a sorted DataArray (time, alt, lat, lon), lon folded."""
    what = "background"
    if isinstance(background, xr.Dataset):
        if name not in background.data_vars:
            raise ManyProblemsError(
                what,
                [
                    f"no variable {name!r} (found {sorted(map(str, background.data_vars))}); "
                    "pass name=... or a DataArray"
                ],
            )
        background = background[name]
    what = f"background {background.name or ''}".rstrip()
    dims = ("time", "alt", "lat", "lon")
    problems = []
    if set(background.dims) != set(dims):
        problems.append(
            f"dims {background.dims}; expected {dims} (rename or transpose the dimensions)"
        )
    missing = [d for d in dims if d not in background.coords]
    if missing:
        problems.append(f"no coordinate values for {missing}; assign them")
    units = str(background.attrs.get("units", "")).replace(" ", "")
    if units not in _NE_UNITS:
        problems.append(
            f"units {background.attrs.get('units')!r}; expected 'm-3' "
            "(convert el/cm3 by multiplying by 1e6, then set attrs['units'] = 'm-3')"
        )
    if problems:
        raise ManyProblemsError(what, problems)

    # Copies of a large cube are avoided: indexing happens only where needed.
    da = background.transpose(*dims)
    da = da.assign_coords(lon=fold_longitude(da["lon"].values))
    _, first = global_meridians(da["lon"].values)
    if first.size < da.sizes["lon"]:
        da = da.isel(lon=np.sort(first))
    for dim in dims:
        if not da.indexes[dim].is_monotonic_increasing:
            da = da.sortby(dim)
        if not da.indexes[dim].is_unique:
            problems.append(f"coordinate {dim!r} has duplicate values; drop them")
    alt_units = da["alt"].attrs.get("units", "km")
    if alt_units != "km":
        problems.append(f"alt units {alt_units!r}; expected 'km' (convert and set units='km')")
    elif da["alt"].max() > 2.0e4:
        problems.append(f"alt reaches {float(da['alt'].max()):g}, which is metres: give km")
    if da["lat"].min() < -90.0 or da["lat"].max() > 90.0:
        problems.append("lat outside [-90, 90] degrees")
    lon = da["lon"].values
    widest = np.diff(lon).max(initial=0.0)
    wrap_gap = lon[0] + 360.0 - lon[-1]
    if lon.size < 2 or wrap_gap > widest * (1.0 + 1e-9) + 1e-9:
        problems.append(
            f"lon {lon[0]:g}..{lon[-1]:g} does not go round the globe (gap of {wrap_gap:g} "
            f"degrees across the seam, widest step {widest:g}); give a global grid"
        )
    values = np.asarray(da.values)
    if not np.all(np.isfinite(values)):
        problems.append(f"{int(np.count_nonzero(~np.isfinite(values)))} NaN or infinite values")
    elif values.max() < 1.0e8:
        problems.append(
            f"largest value {values.max():g} is far below any ionosphere in m-3 "
            "(peaks are 1e10..1e13); is it in el/cm3?"
        )
    if problems:
        raise ManyProblemsError(what, problems)
    return da


def _check_range(
    name: str,
    q: np.ndarray,
    lo: float,
    hi: float,
    covered: str,
    *,
    shown: np.ndarray | None = None,
) -> None:
    """Raise CoverageError if any ``q`` (NaN included) is outside [lo, hi] + tolerance.

    ``shown`` (default ``q``) holds the values the message quotes, same shape as ``q``.
    """
    inside = (q >= lo - COVERAGE_TOLERANCE) & (q <= hi + COVERAGE_TOLERANCE)
    if not np.all(inside):
        outside = ~inside
        first = (q if shown is None else shown)[outside].flat[0]
        raise CoverageError(
            f"background: {int(np.count_nonzero(outside))} point(s) with `{name}` outside "
            f"the {covered} it covers (first: {first}); build or pass a background that "
            "covers every point asked for"
        )

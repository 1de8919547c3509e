"""The IRI background of the model and the interpolation every component shares.

R-STMRF learns a residual on top of a climatological background::

    log10 Ne(x, t) = log10 Ne_background(x, t) + residual(x, t)

Two public objects serve it:

- :func:`iri_cube` evaluates the International Reference Ionosphere through PyIRI on
  a regular (time, alt, lat, lon) grid, one PyIRI call per time with that UT day's
  F10.7, and caches each time's grid on disk as NetCDF.
- :class:`BackgroundField` turns any background cube (IRI's or one a user supplies)
  into log10 Ne at scattered points by multilinear interpolation in log10 space.
  It is the only interpolation of the background: fitting and reconstruction both
  call :meth:`BackgroundField.log10_at`, so they see the same value at the same point.

:func:`campaign_background` joins the two for :func:`ionofield.fit` and
:func:`ionofield.reconstruct`: the IRI cube of a configuration over whole hours, or
a user's background, as a :class:`BackgroundField`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import xarray as xr
from xarray.backends.locks import HDF5_LOCK

from ionofield._files import atomic_path
from ionofield._version import __version__
from ionofield.errors import (
    CoverageError,
    ManyProblemsError,
    TimeOrderError,
    UnitsError,
)
from ionofield.timeutil import fold_longitude, hours_since, to_datetime64

if TYPE_CHECKING:
    from ionofield.config import FitConfig

logger = logging.getLogger(__name__)

NE_FLOOR = 1.0e6
"""Lowest electron density (m-3) the background takes before its log10 is formed."""

FOF2_MODEL = "URSI"
"""PyIRI foF2 coefficient set used by :func:`iri_cube`."""

HMF2_MODEL = "SHU2015"
"""PyIRI hmF2 model used by :func:`iri_cube`."""

F107_RANGE = (30.0, 600.0)
"""Daily F10.7 values (sfu) accepted by :func:`iri_cube`; outside it, a units error."""

COVERAGE_TOLERANCE = 1e-6
"""How far (hours for time, km for altitude) a query may stray outside the cube."""

_CACHE_FORMAT = 5  # 4: netCDF-3 files of a day; 5: a file per time
_NE_UNITS = {"m-3", "m^-3", "m**-3", "/m3", "1/m3"}


def default_cache_dir() -> Path:
    """Directory where :func:`iri_cube` keeps its cubes when given none.

    Returns
    -------
    pathlib.Path
        ``$IONOFIELD_CACHE`` when set, else ``~/.cache/ionofield``.
    """
    env = os.environ.get("IONOFIELD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ionofield"


def iri_cube(
    times: npt.ArrayLike,
    alt: npt.ArrayLike,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    *,
    f107: float | xr.DataArray,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Electron density of IRI (PyIRI) on a regular grid, cached on disk.

    PyIRI's spherical-harmonics model is run once per time, with URSI foF2
    coefficients, the SHU-2015 hmF2 model and the F10.7 of the time's UT day. Each
    time's grid is written to ``cache_dir`` as a NetCDF file named by a hash of the
    time, the grids, its F10.7, the options and the PyIRI version (written
    atomically); a later call asking for the same time reads the file and does not
    run PyIRI, so requests that share times share their cache (a reconstruction of
    a few hours reads what a fit of the whole campaign computed).

    Parameters
    ----------
    times
        Times of the cube, shape [N_T], strictly increasing (datetime64, pandas or
        cftime); usually hourly. They may span several UT days.
    alt
        Altitudes in km, shape [N_Z], strictly increasing.
    lat
        Geographic latitudes in degrees north, shape [N_Y], strictly increasing.
    lon
        Geographic longitudes in degrees east, shape [N_X], strictly increasing;
        kept as given (a grid holding both -180 and 180 keeps both columns).
    f107
        F10.7 solar radio flux in sfu: one number for every day, or a DataArray on a
        ``time`` dimension (e.g. a campaign's ``f107``). From a DataArray, a UT day's
        value is the mean of its finite samples within that day, so a daily value
        repeated over the day's hours is taken as is.
    cache_dir
        Directory of the disk cache; default :func:`default_cache_dir`.
    progress
        Show a progress bar over the times.

    Returns
    -------
    xarray.Dataset
        ``ne_background(time, alt, lat, lon)`` float32 in m-3, ``nmf2(time, lat,
        lon)`` in m-3 and ``hmf2(time, lat, lon)`` in km, with CF attributes. The
        attributes ``iri_version``, ``iri_fof2_model``, ``iri_hmf2_model`` and
        ``iri_f107_daily`` record how it was made. Densities are PyIRI's own, not
        floored; :class:`BackgroundField` applies :data:`NE_FLOOR` before log10.

    Raises
    ------
    TimeOrderError
        ``times`` or a grid is not strictly increasing.
    UnitsError
        Altitudes look like metres, latitudes leave [-90, 90], or an F10.7 value
        leaves :data:`F107_RANGE`.
    CoverageError
        ``f107`` has no finite value on one of the UT days of ``times``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> cube = iri_cube(pd.date_range("2024-05-11", periods=2, freq="12h"),
    ...                 np.arange(100.0, 1001.0, 100.0), np.array([-30.0, 0.0, 30.0]),
    ...                 np.arange(-180.0, 180.0, 90.0), f107=150.0)  # doctest: +SKIP
    >>> cube.ne_background.dims  # doctest: +SKIP
    ('time', 'alt', 'lat', 'lon')
    """
    t = to_datetime64(times).ravel()
    axes = {
        "times": t.astype(np.int64),
        "alt": np.asarray(alt, dtype=np.float64).ravel(),
        "lat": np.asarray(lat, dtype=np.float64).ravel(),
        "lon": np.asarray(lon, dtype=np.float64).ravel(),
    }
    for name, values in axes.items():
        if values.size == 0 or np.any(np.diff(values) <= 0):
            raise TimeOrderError(
                f"iri_cube: `{name}` must be a non-empty, strictly increasing 1-D array; "
                "sort it and drop duplicates"
            )
    alt_km, lat_deg, lon_deg = axes["alt"], axes["lat"], axes["lon"]
    if alt_km[-1] > 2.0e4:
        raise UnitsError(
            f"iri_cube: `alt` reaches {alt_km[-1]:g}, which is metres, not km; divide by 1000"
        )
    if lat_deg[0] < -90.0 or lat_deg[-1] > 90.0:
        raise UnitsError(
            f"iri_cube: `lat` spans {lat_deg[0]:g}..{lat_deg[-1]:g}, outside [-90, 90] degrees"
        )
    days = np.unique(t.astype("datetime64[D]"))
    f107_days = _daily_f107(f107, days)
    f107_of_time = f107_days[np.searchsorted(days, t.astype("datetime64[D]"))]
    version = importlib.metadata.version("PyIRI")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ne = np.empty((t.size, alt_km.size, lat_deg.size, lon_deg.size), dtype=np.float32)
    nmf2 = np.empty((t.size, lat_deg.size, lon_deg.size), dtype=np.float32)
    hmf2 = np.empty_like(nmf2)
    loop = range(t.size)
    if progress:
        from tqdm.auto import tqdm

        loop = tqdm(loop, desc="IRI background", unit="time")
    cached = 0
    for k in loop:
        ne[k], nmf2[k], hmf2[k], hit = _iri_time(
            t[k], alt_km, lat_deg, lon_deg, f107_of_time[k], version, folder
        )
        cached += hit
    logger.info("IRI background: %d of %d times read from the cache in %s", cached, t.size,
                folder)
    return _cube_dataset(t, alt_km, lat_deg, lon_deg, ne, nmf2, hmf2, f107_of_time, version)


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
        Daily F10.7 in sfu, as :func:`iri_cube` takes it (a campaign's ``f107``).
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
        The IRI cube is built on the whole hours spanning ``hours``; it is cached per
        hour, so a later call for the same hours (a reconstruction of the fitted
        period) reads it back.
    info : dict
        JSON-ready description to store with a model: ``kind`` (``"iri"`` or
        ``"user"``) and the options or extent of the background.
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
    start, stop, step = config.background_alt
    lat_step, lon_step = config.background_lat_step, config.background_lon_step
    alt = np.arange(start, stop + step / 2, step)
    lat = np.arange(-90.0 + lat_step, 90.0 - lat_step / 2, lat_step)
    lon = np.arange(-180.0, 180.0 - lon_step / 2, lon_step)
    cube = iri_cube(times, alt, lat, lon, f107=f107, cache_dir=cache_dir)
    info = {
        "kind": "iri",
        "pyiri_version": cube.attrs["iri_version"],
        "fof2_model": FOF2_MODEL,
        "hmf2_model": HMF2_MODEL,
        "f107_daily": cube.attrs["iri_f107_daily"],
        "alt": [float(start), float(stop), float(step)],
        "lat_step": float(lat_step),
        "lon_step": float(lon_step),
    }
    return BackgroundField(cube), info


def _daily_f107(f107: float | xr.DataArray, days: np.ndarray) -> np.ndarray:
    """F10.7 (sfu) of each UT day in ``days`` (datetime64[D]), shape [N_D]."""
    if isinstance(f107, xr.DataArray):
        if f107.dims != ("time",):
            raise CoverageError(
                f"f107: expected a DataArray on the single dimension 'time', found dims "
                f"{f107.dims}; select or squeeze the other dimensions"
            )
        sample_days = to_datetime64(f107["time"].values).astype("datetime64[D]")
        samples = np.asarray(f107.values, dtype=np.float64)
        values = np.empty(days.size)
        for k, day in enumerate(days):
            today = samples[(sample_days == day) & np.isfinite(samples)]
            if today.size == 0:
                raise CoverageError(
                    f"f107: no finite value on {day} (f107 covers {sample_days.min()}.."
                    f"{sample_days.max()}); extend the indices to every day of the times asked"
                )
            values[k] = today.mean()
    else:
        values = np.full(days.size, float(f107))
    lo, hi = F107_RANGE
    bad = ~((values >= lo) & (values <= hi))
    if bad.any():
        k = int(np.argmax(bad))
        raise UnitsError(
            f"f107: {values[k]:g} on {days[k]} is outside {lo:g}..{hi:g}; F10.7 must be "
            "in solar flux units (1 sfu = 1e-22 W m-2 Hz-1)"
        )
    return values


def _iri_time(
    time: np.datetime64,
    alt: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    f107: float,
    version: str,
    folder: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Ne [Z, Y, X], NmF2 and hmF2 [Y, X] at one time, and whether the cache had them.

    The cache holds one file per time, so any request reuses every time it shares
    with an earlier one: a reconstruction chunk of a few hours reads the hours a fit
    of the whole campaign computed.
    """
    path = folder / f"iri_{_cache_key(time, alt, lat, lon, f107, version)}.nc"
    if path.exists():
        with xr.open_dataset(path, engine="scipy") as cached:
            ne, nmf2, hmf2 = (cached[name].values[0] for name in ("ne_background", "nmf2", "hmf2"))
        return ne, nmf2, hmf2, True
    logger.info("IRI background cache miss: running PyIRI for %s", time)
    ne, nmf2, hmf2 = _pyiri_time(time, alt, lat, lon, f107)
    ds = _cube_dataset(np.array([time]), alt, lat, lon, ne[None], nmf2[None], hmf2[None],
                       np.array([f107]), version)
    # netCDF-3 through scipy, not HDF5: the cube is written from a dask task, maybe
    # while the volume itself is being written, and HDF5 is not thread-safe.
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="scipy", format="NETCDF3_64BIT",
                     encoding={name: {"_FillValue": None} for name in ds.coords})
    return ne, nmf2, hmf2, False


def _cache_key(
    time: np.datetime64, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, f107: float,
    version: str,
) -> str:
    """Hex digest naming the IRI of these inputs by this PyIRI version."""
    digest = hashlib.sha256()
    digest.update(f"format={_CACHE_FORMAT};PyIRI={version};{FOF2_MODEL};{HMF2_MODEL}".encode())
    for name, values in (
        ("time", np.int64(time.astype("datetime64[ns]").astype(np.int64))),
        ("alt", alt),
        ("lat", lat),
        ("lon", lon),
        ("f107", np.float64(f107)),
    ):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:24]


#: Largest number of Ne values one PyIRI call computes (bounds its memory to ~400 MB).
PYIRI_VALUES_PER_CALL = 2_000_000


def _pyiri_time(
    time: np.datetime64, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, f107: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyIRI at one time: Ne [Z, Y, X], NmF2 and hmF2 [Y, X].

    PyIRI is run once per time. Most of a call's cost is per time (its quasi-dipole
    coordinates), so this is as fast as one call for a whole day, and its memory
    (about 200 bytes per value) is that of one time, not of the day: on the IONEX
    grid, 0.35 GB instead of 2.4 GB. The values equal those of one call. A time
    whose grid exceeds :data:`PYIRI_VALUES_PER_CALL` values goes to PyIRI in bands
    of latitude rows; PyIRI 0.1.7's F1 region (near 150 km) depends a little on the
    other points of a call (up to ~15 % seen), so the band size is a constant: the
    same grid always gives the same background.
    """
    from PyIRI import sh_library

    day = time.astype("datetime64[D]")
    date = day.item()
    ut = float(hours_since(np.array([time]), day)[0])
    ne = np.empty((alt.size, lat.size, lon.size), dtype=np.float32)
    nmf2 = np.empty((lat.size, lon.size), dtype=np.float32)
    hmf2 = np.empty_like(nmf2)
    rows = max(1, PYIRI_VALUES_PER_CALL // (alt.size * lon.size))
    for start in range(0, lat.size, rows):
        band = slice(start, min(start + rows, lat.size))
        grid_lat, grid_lon = (g.ravel() for g in np.meshgrid(lat[band], lon, indexing="ij"))
        # PyIRI reads its coefficient files through netCDF4, i.e. HDF5, which is not
        # thread-safe: a volume may be written by another thread (a dask task) right
        # now. xarray takes this lock around its own netCDF4 calls.
        with HDF5_LOCK:
            f2, *_, edp = sh_library.IRI_density_1day(
                date.year,
                date.month,
                date.day,
                np.array([ut]),
                grid_lon,
                grid_lat,
                alt,
                float(f107),
                foF2_coeff=FOF2_MODEL,
                hmF2_model=HMF2_MODEL,
                old_output=False,
            )
        n_rows = band.stop - band.start
        ne[:, band] = edp.reshape(alt.size, n_rows, lon.size)
        nmf2[band] = f2["Nm"].reshape(n_rows, lon.size)
        hmf2[band] = f2["hm"].reshape(n_rows, lon.size)
    return ne, nmf2, hmf2


def _cube_dataset(
    times: np.ndarray,
    alt: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    ne: np.ndarray,
    nmf2: np.ndarray,
    hmf2: np.ndarray,
    f107: np.ndarray,
    version: str,
) -> xr.Dataset:
    """Wrap PyIRI output (and the F10.7 of each time, shape [T]) in a CF-described Dataset."""
    days, first = np.unique(times.astype("datetime64[D]"), return_index=True)
    f107_daily = " ".join(f"{day}={value:g}" for day, value in zip(days, f107[first],
                                                                    strict=True))
    coords = {
        "time": ("time", times, {"standard_name": "time", "axis": "T"}),
        "alt": (
            "alt",
            alt,
            {
                "long_name": "altitude",
                "standard_name": "altitude",
                "units": "km",
                "positive": "up",
                "axis": "Z",
            },
        ),
        "lat": (
            "lat",
            lat,
            {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
        ),
        "lon": (
            "lon",
            lon,
            {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
        ),
    }
    source = f"ionofield {__version__}, PyIRI {version} (IRI_density_1day, sh_library)"
    ds = xr.Dataset(
        {
            "ne_background": (
                ("time", "alt", "lat", "lon"),
                ne,
                {
                    "long_name": "electron number density",
                    "units": "m-3",
                    "comment": "IRI background (PyIRI)",
                },
            ),
            "nmf2": (
                ("time", "lat", "lon"),
                nmf2,
                {"long_name": "F2-layer peak electron number density", "units": "m-3"},
            ),
            "hmf2": (
                ("time", "lat", "lon"),
                hmf2,
                {"long_name": "F2-layer peak height", "units": "km"},
            ),
        },
        coords=coords,
        attrs={
            "Conventions": "CF-1.11",
            "title": "IRI electron density background",
            "institution": "ionofield user",
            "source": source,
            "history": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} ionofield.iri_cube",
            "references": (
                "Forsythe et al. (2023), PyIRI: Whole-Globe Approach to the International "
                "Reference Ionosphere Modeling Implemented in Python, Space Weather, "
                "doi:10.22541/essoar.169592556.61105365/v1; Servan-Schreiber et al. (2026), "
                "A major update to the PyIRI model, Space Weather, doi:10.1029/2025SW004853"
            ),
            "iri_version": version,
            "iri_fof2_model": FOF2_MODEL,
            "iri_hmf2_model": HMF2_MODEL,
            "iri_f107_daily": f107_daily,
        },
    )
    ds["time"].attrs["units_metadata"] = "leap_seconds: none"
    return ds


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
        lat_step = np.diff(self.lat).max(initial=0.0)
        south_pole_near = self.lat[0] - lat_step <= -90.0 + COVERAGE_TOLERANCE
        north_pole_near = self.lat[-1] + lat_step >= 90.0 - COVERAGE_TOLERANCE
        self._lat_limits = (
            -90.0 if south_pole_near else self.lat[0],
            90.0 if north_pole_near else self.lat[-1],
        )
        ne = np.asarray(da.values)
        n_floored = int(np.count_nonzero(ne < self.floor))
        if n_floored:
            logger.info(
                "background: %d of %d values below %g m-3 raised to it", n_floored, ne.size, floor
            )
        # Rows at the poles, where every longitude is the same point, hold the zonal
        # mean of the nearest row: the field is single-valued there and continuous.
        # One more longitude column, a copy of the first one 360 degrees on, makes
        # the periodic axis an ordinary one: every query falls inside it. The array
        # is filled in place, so building it costs no more memory than it holds.
        add_south = south_pole_near and self.lat[0] > -90.0
        add_north = north_pole_near and self.lat[-1] < 90.0
        self._lat_ext = np.concatenate(
            [[-90.0] if add_south else [], self.lat, [90.0] if add_north else []]
        )
        self._lon_ext = np.append(self.lon, self.lon[0] + 360.0)
        shape = (*ne.shape[:2], self._lat_ext.size, self._lon_ext.size)
        self._log10 = np.empty(shape, dtype=np.float32)
        rows = slice(int(add_south), int(add_south) + self.lat.size)
        inner = self._log10[:, :, rows, :-1]
        np.maximum(ne, self.floor, out=inner, casting="same_kind")
        np.log10(inner, out=inner)
        if add_south:
            self._log10[:, :, 0, :-1] = inner[:, :, 0].mean(-1, keepdims=True)
        if add_north:
            self._log10[:, :, -1, :-1] = inner[:, :, -1].mean(-1, keepdims=True)
        self._log10[..., -1] = self._log10[..., 0]

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
        alt_q = np.asarray(alt, dtype=np.float64)
        _check_range(
            "alt", alt_q, self.alt[0], self.alt[-1], f"{self.alt[0]:g}..{self.alt[-1]:g} km"
        )
        lat_q = np.asarray(lat, dtype=np.float64)
        lo, hi = self._lat_limits
        _check_range("lat", lat_q, lo, hi, f"{lo:g}..{hi:g} degrees north")
        lon_q = fold_longitude(lon)
        _check_range("lon", lon_q, -np.inf, np.inf, "finite values")
        lon_q = np.where(lon_q < self.lon[0], lon_q + 360.0, lon_q)
        return _multilinear(
            self._log10,
            [
                _cell(self._hours, hours),
                _cell(self.alt, alt_q),
                _cell(self._lat_ext, lat_q),
                _cell(self._lon_ext, lon_q),
            ],
        )


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
    _, first = np.unique(da["lon"].values, return_index=True)
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


def _cell(grid: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower cell index and fractional position of ``q`` on an increasing ``grid``.

    Parameters
    ----------
    grid
        Strictly increasing coordinates, shape [N].
    q
        Query coordinates, any shape; clipped into [grid[0], grid[-1]].

    Returns
    -------
    tuple of numpy.ndarray
        Index ``i`` in [0, N - 2] (0 when N == 1) and weight ``w`` in [0, 1] of
        ``grid[i + 1]``, both with the shape of ``q``.
    """
    if grid.size == 1:
        return np.zeros(q.shape, dtype=np.intp), np.zeros(q.shape)
    q = np.clip(q, grid[0], grid[-1])
    steps = np.diff(grid)
    if np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        # Regular grid: index arithmetic, several times faster than a search.
        u = (q - grid[0]) / steps[0]
        i = np.minimum(u.astype(np.intp), grid.size - 2)
        return i, u - i
    i = np.clip(np.searchsorted(grid, q, side="right") - 1, 0, grid.size - 2)
    return i, (q - grid[i]) / steps[i]


def _multilinear(values: np.ndarray, cells: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Multilinear interpolation of a C-contiguous array at broadcast cell positions.

    Parameters
    ----------
    values
        Grid values, shape [N_0, ..., N_{D-1}], C-contiguous.
    cells
        For each of the D axes, the ``(index, weight)`` pair of :func:`_cell`; the
        pairs of different axes broadcast together.

    Returns
    -------
    numpy.ndarray
        float64 interpolated values, of the broadcast shape of the cells.
    """
    flat = values.ravel()
    strides = [s // values.itemsize for s in values.strides]
    steps = [stride if n > 1 else 0 for stride, n in zip(strides, values.shape, strict=True)]
    base = sum(i * stride for (i, _), stride in zip(cells, strides, strict=True))

    def blend(axis: int, offset: int) -> np.ndarray:
        if axis == values.ndim:
            return flat.take(base + offset)
        low = blend(axis + 1, offset)
        high = blend(axis + 1, offset + steps[axis])
        return low + cells[axis][1] * (high - low)

    return np.asarray(blend(0, 0))

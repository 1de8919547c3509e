"""The International Reference Ionosphere through PyIRI, on a grid, cached on disk.

:func:`iri_cube` evaluates IRI (PyIRI's spherical-harmonics model) on a regular
(time, alt, lat, lon) grid, one PyIRI call per time with that UT day's F10.7, and
caches each time's grid on disk as NetCDF, so that a fit and the reconstructions
after it compute each hour once. :mod:`ionofield.background` turns such a cube into
the field the model reads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import xarray as xr
from xarray.backends.locks import HDF5_LOCK

from ionofield._files import atomic_path
from ionofield._version import __version__
from ionofield.errors import ConfigError, CoverageError, DataWarning, TimeOrderError, UnitsError
from ionofield.io.cf import CONVENTIONS, attributes, history_line
from ionofield.timeutil import hours_since, to_datetime64

logger = logging.getLogger(__name__)

FOF2_MODEL = "URSI"
"""PyIRI foF2 coefficient set of the background (:func:`iri_cube`'s default)."""

HMF2_MODEL = "SHU2015"
"""PyIRI hmF2 model of the background (:func:`iri_cube`'s default)."""

FOF2_MODELS = ("URSI", "CCIR")
"""The foF2 coefficient sets PyIRI offers."""

HMF2_MODELS = ("SHU2015", "AMTB2013", "BSE1979")
"""The hmF2 models PyIRI offers."""

F107_RANGE = (30.0, 600.0)
"""Daily F10.7 values (sfu) accepted by :func:`iri_cube`; outside it, a units error."""

_CACHE_FORMAT = 5  # 4: netCDF-3 files of a day; 5: a file per time

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
    fof2_model: str = FOF2_MODEL,
    hmf2_model: str = HMF2_MODEL,
) -> xr.Dataset:
    """Electron density of IRI (PyIRI) on a regular grid, cached on disk.

    PyIRI's spherical-harmonics model is run once per time, by default with URSI
    foF2 coefficients and the SHU-2015 hmF2 model (the background of a fit), with
    the F10.7 of the time's UT day. Each
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
        ``time`` dimension (e.g. a campaign's ``f107_81``). From a DataArray, a UT
        day's value is the mean of its finite samples within that day, so a daily
        value repeated over the day's hours is taken as is. PyIRI reads it as a
        smoothed level of solar activity (see
        :data:`ionofield.background.IRI_F107`, which a fit gives it).
    cache_dir
        Directory of the disk cache; default :func:`default_cache_dir`.
    progress
        Show a progress bar over the times.
    fof2_model
        PyIRI's foF2 coefficients, one of :data:`FOF2_MODELS`.
    hmf2_model
        PyIRI's hmF2 model, one of :data:`HMF2_MODELS`. Other coefficients than the
        background's make a truth the background does not contain (the OSSE's
        ``"other_iri"`` world).

    Returns
    -------
    xarray.Dataset
        ``ne_background(time, alt, lat, lon)`` float32 in m-3, ``nmf2(time, lat,
        lon)`` in m-3 and ``hmf2(time, lat, lon)`` in km, with CF attributes. The
        attributes ``iri_version``, ``iri_fof2_model``, ``iri_hmf2_model``,
        ``iri_f107`` (the F10.7 PyIRI was given on each UT day, sfu) and
        ``iri_f107_source`` (which F10.7 that is) record how it was made. Densities
        are PyIRI's own, not floored; :class:`~ionofield.background.BackgroundField` applies
        :data:`~ionofield.background.NE_FLOOR` before log10.

    Raises
    ------
    TimeOrderError
        ``times`` or a grid is not strictly increasing.
    UnitsError
        Altitudes look like metres, latitudes leave [-90, 90], or an F10.7 value
        leaves :data:`F107_RANGE`.
    CoverageError
        ``f107`` has no finite value on one of the UT days of ``times``.
    ConfigError
        A foF2 or hmF2 model PyIRI does not offer.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> cube = iri_cube(pd.date_range("2024-05-11", periods=2, freq="12h"),
    ...                 np.arange(100.0, 1001.0, 100.0), np.array([-30.0, 0.0, 30.0]),
    ...                 np.arange(-180.0, 180.0, 90.0), f107=150.0)  # doctest: +SKIP
    >>> cube.ne_background.dims  # doctest: +SKIP
    ('time', 'alt', 'lat', 'lon')
    """
    if fof2_model not in FOF2_MODELS or hmf2_model not in HMF2_MODELS:
        raise ConfigError(
            f"iri_cube: foF2 {fof2_model!r} / hmF2 {hmf2_model!r}; PyIRI offers foF2 "
            f"{' or '.join(FOF2_MODELS)} and hmF2 {', '.join(HMF2_MODELS)}"
        )
    coefficients = (fof2_model, hmf2_model)
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
            t[k], alt_km, lat_deg, lon_deg, f107_of_time[k], version, folder, coefficients
        )
        cached += hit
    logger.info("IRI background: %d of %d times read from the cache in %s", cached, t.size,
                folder)
    cube = _cube_dataset(t, alt_km, lat_deg, lon_deg, ne, nmf2, hmf2, f107_of_time, version,
                         coefficients)
    cube.attrs["iri_f107_source"] = _f107_source(f107)
    return cube


def _f107_source(f107: float | xr.DataArray) -> str:
    """Which F10.7 ``f107`` is, for the cube's ``iri_f107_source`` attribute."""
    if not isinstance(f107, xr.DataArray):
        return "one value for every day, given by the caller"
    label = f107.attrs.get("long_name")
    return f"the daily mean of {f107.name!r}" + (f" ({label})" if label else "")


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
    coefficients: tuple[str, str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Ne [Z, Y, X], NmF2 and hmF2 [Y, X] at one time, and whether the cache had them.

    The cache holds one file per time, so any request reuses every time it shares
    with an earlier one: a reconstruction chunk of a few hours reads the hours a fit
    of the whole campaign computed.
    """
    path = folder / f"iri_{_cache_key(time, alt, lat, lon, f107, version, coefficients)}.nc"
    if path.exists():
        cached = _read_cached(path, (alt.size, lat.size, lon.size))
        if not isinstance(cached, str):
            return (*cached, True)
        warnings.warn(
            f"IRI cache: {path} cannot be read ({cached}); it was computed again with PyIRI "
            "and rewritten (1 file). Delete the cache folder if this repeats",
            DataWarning,
            stacklevel=3,
        )
    logger.info("IRI background cache miss: running PyIRI for %s", time)
    ne, nmf2, hmf2 = _pyiri_time(time, alt, lat, lon, f107, coefficients)
    ds = _cube_dataset(np.array([time]), alt, lat, lon, ne[None], nmf2[None], hmf2[None],
                       np.array([f107]), version, coefficients)
    # netCDF-3 through scipy, not HDF5: the cube is written from a dask task, maybe
    # while the volume itself is being written, and HDF5 is not thread-safe.
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="scipy", format="NETCDF3_64BIT",
                     encoding={name: {"_FillValue": None} for name in ds.coords})
    return ne, nmf2, hmf2, False


def _read_cached(
    path: Path, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """Ne [Z, Y, X], NmF2 and hmF2 [Y, X] of a cache file, or what is wrong with it.

    A file damaged on disk (truncated, overwritten) is a problem to report, not an
    error: the caller computes the time again.
    """
    try:
        with xr.open_dataset(path, engine="scipy") as cached:
            ne, nmf2, hmf2 = (cached[name].values[0] for name in ("ne_background", "nmf2", "hmf2"))
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if ne.shape != shape or nmf2.shape != shape[1:] or hmf2.shape != shape[1:]:
        return f"Ne of shape {ne.shape} for a grid of shape {shape}"
    return ne, nmf2, hmf2


def _cache_key(
    time: np.datetime64, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, f107: float,
    version: str, coefficients: tuple[str, str],
) -> str:
    """Hex digest naming the IRI of these inputs by this PyIRI version."""
    digest = hashlib.sha256()
    digest.update(f"format={_CACHE_FORMAT};PyIRI={version};{';'.join(coefficients)}".encode())
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
    time: np.datetime64, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, f107: float,
    coefficients: tuple[str, str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyIRI at one time with (foF2, hmF2) ``coefficients``: Ne [Z, Y, X], NmF2 and hmF2 [Y, X].

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
                foF2_coeff=coefficients[0],
                hmF2_model=coefficients[1],
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
    coefficients: tuple[str, str],
) -> xr.Dataset:
    """Wrap PyIRI output (and the F10.7 of each time, shape [T]) in a CF-described Dataset."""
    days, first = np.unique(times.astype("datetime64[D]"), return_index=True)
    f107_days = " ".join(f"{day}={value:g}" for day, value in zip(days, f107[first],
                                                                   strict=True))
    coords = {
        "time": ("time", times, attributes("time")),
        "alt": ("alt", alt, attributes("alt")),
        "lat": ("lat", lat, attributes("lat")),
        "lon": ("lon", lon, attributes("lon")),
    }
    source = f"ionofield {__version__}, PyIRI {version} (IRI_density_1day, sh_library)"
    ds = xr.Dataset(
        {
            "ne_background": (
                ("time", "alt", "lat", "lon"),
                ne,
                attributes("ne", comment="IRI background (PyIRI)"),
            ),
            "nmf2": (("time", "lat", "lon"), nmf2, attributes("nmf2")),
            "hmf2": (("time", "lat", "lon"), hmf2, attributes("hmf2")),
        },
        coords=coords,
        attrs={
            "Conventions": CONVENTIONS,
            "title": "IRI electron density background",
            "institution": "ionofield user",
            "source": source,
            "history": history_line("iri_cube"),
            "references": (
                "Forsythe et al. (2023), PyIRI: Whole-Globe Approach to the International "
                "Reference Ionosphere Modeling Implemented in Python, Space Weather, "
                "doi:10.22541/essoar.169592556.61105365/v1; Servan-Schreiber et al. (2026), "
                "A major update to the PyIRI model, Space Weather, doi:10.1029/2025SW004853"
            ),
            "iri_version": version,
            "iri_fof2_model": coefficients[0],
            "iri_hmf2_model": coefficients[1],
            "iri_f107": f107_days,
        },
    )
    ds["time"].attrs["units_metadata"] = "leap_seconds: none"
    return ds



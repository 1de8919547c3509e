"""Electron-density volumes on a user's grid: :func:`grid`, :func:`reconstruct`, :func:`to_netcdf`.

A volume is a lazy, dask-backed Dataset ``ne``, ``ne_background``, ``ne_log10_sigma``
on ``(time, alt, lat, lon)``, chunked over time. The graph has one task per chunk,
which takes the IRI of the chunk's own hours (from the disk cache, or PyIRI), runs the
network and combines the two. Nothing is computed ahead of the chunk that needs it,
so the peak memory is that of the chunks in flight, whatever the grid's length; two
chunks in flight overlap one's IRI with the other's network; and the graph runs
unchanged on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import torch
import xarray as xr
from dask.diagnostics import ProgressBar

from ionofield._files import atomic_path
from ionofield._threads import torch_threads
from ionofield._version import __version__
from ionofield.background import BackgroundField, campaign_background
from ionofield.config import FitConfig
from ionofield.diagnostics import TECU
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError, CoverageError
from ionofield.nn.model import RSTMRF
from ionofield.sphere import fold_longitude
from ionofield.timeutil import to_datetime64, universal_time_hours

#: Points per network call: small enough that a call's activations stay near the CPU
#: (8192 x 128 float32 = 4 MB), large enough that Python's overhead is small.
POINTS_PER_CALL = 8192
#: Points per background interpolation call (its float64 temporaries: about 20 MB).
BACKGROUND_POINTS_PER_CALL = 262_144
#: Altitude step (km) of the model columns compared with the TEC maps.
COLUMN_STEP_KM = 20.0
#: Every this many rows and columns of a TEC map are compared with the model's column
#: (the misfit is smooth; the full IONEX grid would cost a sixth of a reconstruction).
MISFIT_MAP_STRIDE = 2
#: Floor (TECU) of the map TEC in the misfit's ratio (maps can hold zeros).
MIN_MAP_TEC = 0.1
#: Output variables, in the order of the stacked chunk array.
_OUTPUTS = ("ne", "ne_background", "ne_log10_sigma")

_ATTRS: dict[str, dict[str, str]] = {
    "ne": {"long_name": "electron number density", "units": "m-3"},
    "ne_background": {
        "long_name": "background electron number density (IRI unless user-supplied)",
        "units": "m-3",
    },
    "ne_log10_sigma": {
        "long_name": "predicted one-sigma uncertainty of log10 electron number density",
        "units": "1",
    },
    "time": {"standard_name": "time", "long_name": "time", "axis": "T"},
    "alt": {
        "standard_name": "altitude",
        "long_name": "altitude above mean sea level",
        "units": "km",
        "positive": "up",
        "axis": "Z",
    },
    "lat": {
        "standard_name": "latitude",
        "long_name": "latitude",
        "units": "degrees_north",
        "axis": "Y",
    },
    "lon": {
        "standard_name": "longitude",
        "long_name": "longitude",
        "units": "degrees_east",
        "axis": "X",
    },
}


def grid(time: Any, alt: Any, lat: Any, lon: Any) -> xr.Dataset:
    """Describe a target grid for :func:`reconstruct`.

    Parameters
    ----------
    time
        Times (datetime64, pandas, or cftime of a real-world calendar), shape [T].
    alt
        Altitudes in km, shape [Z], increasing.
    lat
        Latitudes in degrees north within [-90, 90], shape [Y].
    lon
        Longitudes in degrees east, any range (0..360 is folded to -180..180 and
        sorted), shape [X].

    Returns
    -------
    xarray.Dataset
        A Dataset with coordinates only, carrying CF attributes.

    Examples
    --------
    >>> import pandas as pd
    >>> g = grid(time=pd.date_range("2024-05-11", periods=2, freq="h"),
    ...          alt=[200.0, 300.0], lat=[0.0], lon=[0.0, 350.0])
    >>> g["lon"].values
    array([-10.,   0.])
    """
    coords = {
        "time": to_datetime64(np.atleast_1d(np.asarray(time))),
        "alt": np.atleast_1d(np.asarray(alt, dtype=np.float64)),
        "lat": np.atleast_1d(np.asarray(lat, dtype=np.float64)),
        "lon": np.unique(fold_longitude(np.atleast_1d(lon))),
    }
    problems = []
    for name in ("time", "alt"):
        if coords[name].size > 1 and not (np.diff(coords[name]) > np.zeros_like(
            np.diff(coords[name])[:1])).all():
            problems.append(f"{name} must be strictly increasing")
    if np.any(np.abs(coords["lat"]) > 90):
        problems.append("lat must lie within [-90, 90] degrees north")
    if np.any(coords["alt"] < 0) or np.any(coords["alt"] > 5000):
        problems.append("alt must be in km between 0 and 5000 (metres given?)")
    if problems:
        raise ConfigError("grid: " + "; ".join(problems))
    ds = xr.Dataset(coords=coords)
    for name in coords:
        ds[name].attrs.update(_ATTRS[name])
    return ds


def reconstruct(
    ds: xr.Dataset,
    target: xr.Dataset,
    *,
    model: RSTMRF,
    background: xr.Dataset | xr.DataArray | None = None,
    chunks: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> xr.Dataset:
    """Reconstruct Ne on a grid, lazily.

    Parameters
    ----------
    ds
        The campaign whose hourly drivers (Kp, F10.7) cover the grid's times.
    target
        The grid, from :func:`grid`.
    model
        A fitted :class:`~ionofield.RSTMRF`.
    background
        The background the model was fitted with, when it was user-supplied.
    chunks
        Times per chunk (default: as many as keep a chunk near 4 million points).
    cache_dir
        Disk cache of the IRI background.

    Returns
    -------
    xarray.Dataset
        ``ne`` (m-3), ``ne_background`` (m-3) and ``ne_log10_sigma`` on
        ``(time, alt, lat, lon)``, float32, dask-backed; nothing is computed until
        ``.compute()`` or a write. ``ne_log10_sigma`` includes the column misfit of
        the campaign's TEC maps (:class:`ColumnMisfit`) when the model was calibrated
        with it and ``ds`` has them.
    """
    times = to_datetime64(target["time"].values)
    alt, lat, lon = (target[name].values.astype(np.float64) for name in ("alt", "lat", "lon"))
    names = ["kp", "f107", "f107_81"] + (["tec"] if _uses_column_misfit(model, ds) else [])
    drivers = HourlyDrivers.from_campaign(ds[names])
    drivers.bracket(times)  # raises now, not at compute time, when uncovered
    _check_background(model, background)
    per_time = alt.size * lat.size * lon.size
    step = chunks or max(1, min(len(times), 4_000_000 // max(per_time, 1)))
    source = (
        _IriHours(ds["f107"].load(), model.config, cache_dir)
        if background is None
        else dask.delayed(BackgroundField, pure=True)(background)
    )
    model_node = dask.delayed(model, pure=True)
    drivers_node = dask.delayed(drivers, pure=True)
    blocks = []
    for start in range(0, len(times), step):
        t = times[start : start + step]
        block = dask.delayed(_volume_block, pure=True)(model_node, drivers_node, source, t, alt,
                                                       lat, lon)
        shape = (len(_OUTPUTS), len(t), alt.size, lat.size, lon.size)
        blocks.append(dsa.from_delayed(block, shape, dtype=np.float32))
    stacked = dsa.concatenate(blocks, axis=1)
    dims = ("time", "alt", "lat", "lon")
    out = xr.Dataset(
        {name: (dims, stacked[k], _ATTRS[name]) for k, name in enumerate(_OUTPUTS)},
        coords={name: target[name] for name in dims},
    )
    out.attrs.update(_global_attrs(model))
    return out


#: One IRI background at a time per process: PyIRI uses one core and ~0.4 GB; two at
#: once would double that memory and slow the network down.
_BACKGROUND_LOCK = threading.Lock()
#: One network evaluation at a time per process: it already uses every core.
_NETWORK_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class _IriHours:
    """The IRI background of any hours, on the grid and with the options of a fit."""

    f107: xr.DataArray
    config: FitConfig
    cache_dir: str | os.PathLike | None

    def field(self, times: np.ndarray) -> BackgroundField:
        """The field over the whole hours spanning ``times`` (disk-cached per hour)."""
        with _BACKGROUND_LOCK:
            field, _ = campaign_background(times, self.f107, config=self.config,
                                           cache_dir=self.cache_dir)
        return field


def _volume_block(
    model: RSTMRF, drivers: HourlyDrivers, background: _IriHours | BackgroundField,
    times: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray,
) -> np.ndarray:
    """ne, ne_background, ne_log10_sigma of a time chunk, stacked on axis 0."""
    field = background.field(times) if isinstance(background, _IriHours) else background
    with _NETWORK_LOCK:
        residual, log_var = predict_residual(model, drivers, times, alt, lat, lon)
        misfit = None
        if drivers.tec is not None:  # at the hours with weight, which `field` spans
            i0, i1, w0, w1 = drivers.bracket(times)
            hours = np.union1d(i0[w0 > 0], i1[w1 > 0])
            misfit = ColumnMisfit.compute(model, drivers, field, hours)
    out = np.empty((len(_OUTPUTS), *residual.shape), dtype=np.float32)
    # Slabs of a few altitudes keep the interpolation's temporaries the same on any grid.
    levels = max(1, BACKGROUND_POINTS_PER_CALL // (lat.size * lon.size))
    for k, time in enumerate(times):
        for start in range(0, alt.size, levels):
            slab = slice(start, start + levels)
            out[1, k, slab] = field.log10_at(time, alt[slab, None, None], lat[:, None], lon)
    np.add(out[1], residual, out=out[0])
    np.exp(log_var, out=out[2])  # log_var is ln(sigma^2), sigma in dex
    if misfit is not None:
        out[2] += misfit.variance(drivers, times[:, None, None], lat[:, None], lon,
                                  float(model.column_misfit_offset))[:, None]
    np.sqrt(out[2], out=out[2])
    np.power(10.0, out[0], out=out[0])
    np.power(10.0, out[1], out=out[1])
    return out


def predict_residual(
    model: RSTMRF,
    drivers: HourlyDrivers,
    times: np.ndarray,
    alt: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The network's log10 residual and log-variance on a (time, alt, lat, lon) grid.

    The temporal path (and the time half of the decoder) runs once per time; the
    spatial path once per point, in calls of :data:`POINTS_PER_CALL` points spread
    over ``workers`` threads of one torch thread each: on these narrow layers,
    independent calls side by side use the cores better than torch's own intra-op
    threads.

    Parameters
    ----------
    model
        A fitted model.
    drivers
        Hourly drivers covering ``times``.
    times
        datetime64 times, shape [T].
    alt, lat, lon
        Grid axes (km, deg, deg), shapes [Z], [Y], [X].
    workers
        Threads evaluating the network (default: torch's intra-op thread count).

    Returns
    -------
    residual, log_var
        float32 arrays of shape [T, Z, Y, X].
    """
    model.eval()
    with torch.inference_mode():
        inputs = drivers.time_inputs(times, model.config.env_len)
        codes = model.time_code(inputs.features, inputs.history, inputs.weights)
    space_grid = np.empty((alt.size, lat.size, lon.size, 3), dtype=np.float32)
    space_grid[..., 0] = lat[:, None]
    space_grid[..., 1] = lon
    space_grid[..., 2] = alt[:, None, None]
    space = torch.from_numpy(space_grid.reshape(-1, 3))
    ut = universal_time_hours(times)
    shape = (len(times), alt.size, lat.size, lon.size)
    residual = np.empty(shape, dtype=np.float32)
    log_var = np.empty(shape, dtype=np.float32)
    flat_residual = residual.reshape(len(times), -1)
    flat_log_var = log_var.reshape(len(times), -1)

    def evaluate(task: tuple[int, int]) -> None:
        k, start = task
        stop = min(start + POINTS_PER_CALL, len(space))
        coords = torch.empty((stop - start, 4), dtype=torch.float32)
        coords[:, :3] = space[start:stop]
        coords[:, 3] = float(ut[k])
        with torch.inference_mode():  # grad mode is per thread
            r, v = model(coords, codes[k : k + 1])
        flat_residual[k, start:stop] = r.numpy()
        flat_log_var[k, start:stop] = v.numpy()

    tasks = [(k, s) for k in range(len(times)) for s in range(0, len(space), POINTS_PER_CALL)]
    n_workers = workers or torch.get_num_threads()
    with torch_threads(1):
        for _ in _worker_pool(n_workers).map(evaluate, tasks):
            pass
    return residual, log_var


def _uses_column_misfit(model: RSTMRF, ds: xr.Dataset) -> bool:
    """Whether sigma takes the TEC maps' column misfit.

    It does when the model was calibrated with it and the campaign has TEC maps.
    """
    return "tec" in ds and bool(np.isfinite(float(model.column_misfit_offset)))


@dataclasses.dataclass(frozen=True)
class ColumnMisfit:
    """How far the model's vertical TEC is from the campaign's TEC maps, in log10.

    ``misfit = log10(model column / map TEC)`` on (a stride of) the maps' grid at some
    of the campaign's hours. A relative error of Ne shared by a whole column shows
    unchanged as its misfit, so the misfit measures, from data the fit never used for
    magnitudes, how wrong the reconstruction is where no profile says so (a day
    without profiles, say). It enters ``ne_log10_sigma`` only, never ``ne``.

    Attributes
    ----------
    hours
        int64 [K]: the campaign hours (indices on the drivers' hour axis), ascending.
    lat, lon
        float64 [Y], [X]: the latitudes (ascending) and the regular, distinct
        longitudes of the compared cells.
    values
        float32 [K, Y, X]: the misfit.
    """

    hours: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    values: np.ndarray

    @classmethod
    def compute(
        cls, model: RSTMRF, drivers: HourlyDrivers, field: BackgroundField, hours: np.ndarray
    ) -> ColumnMisfit:
        """The misfit of a model at campaign hours.

        The model's column is the trapezoid integral of its Ne over the background's
        altitude range in steps of :data:`COLUMN_STEP_KM`, at every
        :data:`MISFIT_MAP_STRIDE`-th row and column of the maps.

        Parameters
        ----------
        model
            A fitted model.
        drivers
            The campaign's hourly drivers, with TEC maps.
        field
            The background over (at least) those hours.
        hours
            Sorted hour indices of ``drivers``, shape [K].

        Returns
        -------
        ColumnMisfit
        """
        # Strided longitudes stay regular across the antimeridian only if they divide it.
        lon_stride = MISFIT_MAP_STRIDE if drivers.tec_lon.size % MISFIT_MAP_STRIDE == 0 else 1
        lat = drivers.tec_lat[::MISFIT_MAP_STRIDE]
        lon = drivers.tec_lon[::lon_stride]
        alt = np.arange(field.alt[0], field.alt[-1] + 1e-6, COLUMN_STEP_KM)
        hours = np.asarray(hours, dtype=np.int64)
        values = np.empty((hours.size, lat.size, lon.size), dtype=np.float32)
        for k, hour in enumerate(hours):  # one hour at a time: the memory of one
            time = drivers.hours[hour : hour + 1]
            log10_ne, _ = predict_residual(model, drivers, time, alt, lat, lon)
            log10_ne[0] += field.log10_at(time[0], alt[:, None, None], lat[:, None], lon)
            column = np.trapezoid(10.0 ** log10_ne[0].astype(np.float64), alt * 1e3, axis=0)
            tec = drivers.tec[hour, ::MISFIT_MAP_STRIDE, ::lon_stride]
            values[k] = np.log10(column / TECU / np.maximum(tec, MIN_MAP_TEC))
        return cls(hours, lat, lon, values)

    def at(
        self, drivers: HourlyDrivers, time: np.ndarray, lat: np.ndarray, lon: np.ndarray
    ) -> np.ndarray:
        """The misfit at times and positions (its column's).

        Bilinear in latitude and longitude (across the antimeridian), and between the
        two hours around each time with the drivers' cosine-squared weights.

        Parameters
        ----------
        drivers
            The drivers whose hour axis ``hours`` indexes.
        time, lat, lon
            datetime64, degrees, degrees; broadcastable arrays.

        Returns
        -------
        numpy.ndarray
            float64, the broadcast shape.
        """
        time, lat, lon = np.broadcast_arrays(time, lat, lon)
        i0, i1, w0, w1 = drivers.bracket(time.ravel())
        wanted, weight = np.stack([i0, i1]), np.stack([w0, w1])
        rows = np.minimum(np.searchsorted(self.hours, wanted), self.hours.size - 1)
        if np.any((self.hours[rows] != wanted) & (weight > 0)):
            raise CoverageError("column misfit: asked at times outside the hours it was "
                                "computed at; compute it for the hours around them")
        y = np.interp(lat.ravel(), self.lat, np.arange(self.lat.size))
        y0 = np.minimum(np.floor(y).astype(np.int64), self.lat.size - 2)
        x = np.mod(lon.ravel() - self.lon[0], 360.0) / (self.lon[1] - self.lon[0])
        x0 = np.floor(x).astype(np.int64) % self.lon.size
        x1 = (x0 + 1) % self.lon.size
        fy, fx = y - y0, x - np.floor(x)

        def plane(row: np.ndarray) -> np.ndarray:
            v = self.values
            south = v[row, y0, x0] * (1 - fx) + v[row, y0, x1] * fx
            north = v[row, y0 + 1, x0] * (1 - fx) + v[row, y0 + 1, x1] * fx
            return south * (1 - fy) + north * fy

        return (w0 * plane(rows[0]) + w1 * plane(rows[1])).reshape(time.shape)

    def variance(
        self,
        drivers: HourlyDrivers,
        time: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        offset: float,
    ) -> np.ndarray:
        """The misfit's term of ``ne_log10_sigma**2``: ``(misfit - offset)**2``.

        Parameters
        ----------
        drivers, time, lat, lon
            As :meth:`at`.
        offset
            The campaign's median misfit (``RSTMRF.column_misfit_offset``).

        Returns
        -------
        numpy.ndarray
            float64, the broadcast shape.
        """
        return (self.at(drivers, time, lat, lon) - offset) ** 2


@functools.cache
def _worker_pool(workers: int) -> ThreadPoolExecutor:
    """Network threads kept for the life of the process.

    New threads for every chunk would each take fresh malloc arenas, and the resident
    memory would grow chunk after chunk.
    """
    return ThreadPoolExecutor(workers, thread_name_prefix="ionofield-network")


def _check_background(model: RSTMRF, background: Any) -> None:
    kind = model.info.get("background", {}).get("kind", "iri")
    if kind != "iri" and background is None:
        raise ConfigError(
            "the model was fitted on a user-supplied background; pass the same one as "
            "background= (fit and reconstruct must use the same background)"
        )


def _global_attrs(model: RSTMRF) -> dict[str, str]:
    period = model.info.get("period", ["?", "?"])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Conventions": "CF-1.11",
        "title": "Ionospheric electron density reconstructed by R-STMRF",
        "institution": "ionofield users",
        "source": f"ionofield {__version__} R-STMRF (IRI background via PyIRI)",
        "history": f"{stamp} ionofield {__version__} reconstruct",
        "references": "R-STMRF: physics-guided recurrent spatio-temporal residual field; "
        "IRI via PyIRI (Forsythe et al. 2024)",
        "comment": "log10 Ne = log10 Ne_background + learned residual",
        "ionofield_version": __version__,
        "model_config_hash": model.config.digest(),
        "training_period": f"{period[0]} to {period[-1]}",
    }


#: Largest number of values in one NetCDF chunk (2 MB of float32).
VALUES_PER_FILE_CHUNK = 500_000


def _file_chunks(var: xr.DataArray) -> tuple[int, ...]:
    """NetCDF chunk shape: one time, whole lon rows, as many lat (then alt) rows as fit.

    A chunk of bounded size keeps the writer's buffers the same on a bigger grid.
    """
    chunks = []
    room = VALUES_PER_FILE_CHUNK
    for dim, n in reversed(list(zip(var.dims, var.shape, strict=True))):
        size = 1 if dim == "time" else max(1, min(n, room))
        chunks.append(size)
        room //= size
    return tuple(reversed(chunks))


def to_netcdf(
    volume: xr.Dataset,
    path: str | os.PathLike,
    *,
    compression: int = 4,
    progress: bool = False,
) -> None:
    """Write a volume to NetCDF-4 atomically, CF-1.11 compliant, compressed.

    Parameters
    ----------
    volume
        A Dataset from :func:`reconstruct` (lazy or loaded).
    path
        Destination; written to a temporary file beside it and renamed on success, so
        an interrupted write leaves nothing at ``path``.
    compression
        zlib level of the data variables (0 disables compression).
    progress
        Show dask's progress bar while the volume is computed and written.
    """
    volume = volume.copy()
    for name in volume.coords:
        if name in _ATTRS:
            volume[name].attrs = {**_ATTRS[name], **volume[name].attrs}
    encoding: dict[str, dict[str, Any]] = {
        name: {"_FillValue": None} for name in volume.coords
    }
    encoding["time"].update(
        units="seconds since 1970-01-01 00:00:00", calendar="proleptic_gregorian", dtype="f8"
    )
    for name, var in volume.data_vars.items():
        encoding[name] = {"zlib": compression > 0, "complevel": compression or None,
                          "chunksizes": _file_chunks(var), "_FillValue": np.float32(np.nan)}
        if not compression:
            encoding[name] = {"_FillValue": np.float32(np.nan)}
    volume["time"].attrs["units_metadata"] = "leap_seconds: none"
    bar = ProgressBar() if progress else contextlib.nullcontext()
    with atomic_path(path) as tmp, bar, _no_chunk_cache():
        volume.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


@contextlib.contextmanager
def _no_chunk_cache() -> Iterator[None]:
    """No netCDF chunk cache for the files opened inside.

    Through HDF5's chunk cache (64 MB a variable by default), the resident memory of
    a write grows with the volume's length: 550 MB for 24 times of the perf grid,
    980 MB for 96. Without it, 420 MB for both, and no slower. Each file chunk of a
    time-chunked volume is written whole and once (:func:`_file_chunks` holds one
    time), so there is nothing for a cache to gather.
    """
    import netCDF4

    saved = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(0, saved[1], saved[2])
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(*saved)

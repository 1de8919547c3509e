"""Electron-density volumes on a user's grid: :func:`grid` and :func:`reconstruct`.

A volume is a lazy, dask-backed Dataset ``ne``, ``ne_background``, ``ne_log10_sigma``
on ``(time, alt, lat, lon)``, chunked over time. The graph has one task per chunk,
which takes the IRI of the chunk's own hours (from the disk cache, or PyIRI), runs the
network (:func:`ionofield.prediction.predict_residual`) and combines the two. Nothing
is computed ahead of the chunk that needs it, so the peak memory is that of the
chunks in flight, whatever the grid's length; a chunk's network runs while its IRI
is computed, so PyIRI's one core is never the only one busy; and the graph runs
unchanged on a ``dask.distributed`` cluster. :func:`ionofield.to_netcdf`
(``vol.rstmrf.to_netcdf``) writes it atomically.

The network runs on the torch device ``device=`` names (a GPU when torch sees one,
by default). The graph holds the model as bytes (``torch.save``), one node shipped
once to each worker process, and each process rebuilds it from them once, on that
device, for all the chunks it computes: the model a user passes is neither moved nor
changed, and what happens to it afterwards does not reach the volume. On a
``dask.distributed`` worker the network runs on the worker's own threads
(:func:`ionofield._threads.worker_threads`), so that worker processes side by side
do not oversubscribe the cores.

What a volume holds is checked where it is made: a model with NaN or infinite weights
is refused before anything is built, and each chunk is checked as it is computed
(:data:`RESIDUAL_LIMIT_DEX`, :data:`SIGMA_RANGE_DEX`), so ``ne`` and
``ne_background`` are finite and positive and ``ne_log10_sigma`` finite and positive
in every volume written, or the write fails naming the chunk. A grid far from the
times or altitudes the model was fitted on gives an
:class:`~ionofield.errors.ExtrapolationWarning` and is recorded in the volume's
``extrapolation`` attribute.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import io
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import torch
import xarray as xr
from threadpoolctl import threadpool_limits

from ionofield._device import resolve_device, resolve_precision
from ionofield._threads import torch_threads, worker_threads
from ionofield._version import __version__
from ionofield.background import IRI_F107, BackgroundField, campaign_background, iri_axes
from ionofield.campaign import check_campaign
from ionofield.config import FitConfig, Precision
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError, DataWarning, DivergenceError, ExtrapolationWarning
from ionofield.io.cf import CONVENTIONS, attributes, history_line
from ionofield.iri import FOF2_MODEL, HMF2_MODEL
from ionofield.model import RSTMRF, load_model
from ionofield.prediction import ColumnMisfit, ModelColumns, predict_residual
from ionofield.sphere import fold_longitude
from ionofield.timeutil import to_datetime64

#: Points per background interpolation call (its float64 temporaries: about 20 MB).
BACKGROUND_POINTS_PER_CALL = 262_144
#: Output variables, in the order of the stacked chunk array.
_OUTPUTS = ("ne", "ne_background", "ne_log10_sigma")
#: Largest log10 residual (dex, either sign) a volume takes: Ne within a factor of a
#: million of the background. Real departures from a climatology (storms, plasma
#: bubbles, bottomside depletions) stay within a few dex; beyond 6 the model is broken
#: and the chunk fails.
RESIDUAL_LIMIT_DEX = 6.0
#: Range (dex) of ``ne_log10_sigma`` a volume takes. Below 1e-4 dex (0.02 %) or above
#: 6 dex the predicted spread is not a measurement error but a broken model.
SIGMA_RANGE_DEX = (1.0e-4, 6.0)
#: Grid times more than this many days outside the training period warn.
EXTRAPOLATION_DAYS = 1.0
#: Grid altitudes more than this many km outside the observed altitudes the model was
#: fitted on (``model.info["obs_alt_range"]``) warn: about two topside scale heights.
EXTRAPOLATION_KM = 200.0
#: Rebuilt models a process keeps (:func:`_rebuilt_model`): those of the last few
#: reconstructions, each a few MB.
MODELS_KEPT = 4


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
        Longitudes in degrees east, shape [X], sorted. Values within [-180, 180] are
        kept as given, so the IONEX grid ``np.arange(-180, 180.1, 5)`` keeps both
        -180 and 180 (the volume's two columns there are equal); others (0..360) are
        folded into [-180, 180).

    Returns
    -------
    xarray.Dataset
        A Dataset with coordinates only, carrying CF attributes.

    Raises
    ------
    ConfigError
        An axis is empty or not finite, time or alt is not strictly increasing, a
        latitude leaves [-90, 90] or an altitude looks like metres.

    Warns
    -----
    DataWarning
        Longitudes that fold onto a meridian already in the grid (360 onto 0, or a
        value given twice) are dropped, with their count.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> g = grid(time=pd.date_range("2024-05-11", periods=2, freq="h"),
    ...          alt=[200.0, 300.0], lat=[0.0], lon=[0.0, 350.0])
    >>> g["lon"].values
    array([-10.,   0.])
    >>> ionex = grid(time=pd.date_range("2024-05-11", periods=1), alt=[300.0], lat=[0.0],
    ...              lon=np.arange(-180, 180.1, 90))
    >>> ionex["lon"].values
    array([-180.,  -90.,    0.,   90.,  180.])
    """
    coords = {
        "time": to_datetime64(np.atleast_1d(np.asarray(time))),
        "alt": np.atleast_1d(np.asarray(alt, dtype=np.float64)),
        "lat": np.atleast_1d(np.asarray(lat, dtype=np.float64)),
        "lon": _grid_longitudes(lon),
    }
    problems = []
    for name, values in coords.items():
        if values.size == 0:
            problems.append(f"{name} is empty")
        elif name == "time" and np.isnat(values).any():
            problems.append("time holds NaT")
        elif name != "time" and not np.isfinite(values).all():
            problems.append(f"{name} holds NaN or infinite values")
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
        ds[name].attrs.update(attributes(name))
    return ds


def _grid_longitudes(lon: Any) -> np.ndarray:
    """Longitudes of a grid: kept within [-180, 180], folded otherwise, sorted, distinct."""
    given = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    inside = (given >= -180.0) & (given <= 180.0)
    folded = np.where(inside | ~np.isfinite(given), given, fold_longitude(given))
    values, counts = np.unique(folded, return_counts=True)
    repeats = int(np.sum(counts - 1))
    if repeats:
        warnings.warn(
            f"grid: {repeats} of {given.size} longitude(s) fall on a meridian already in the "
            f"grid once folded to -180..180 (e.g. 360 on 0) and were dropped, leaving "
            f"{values.size}; give each meridian once (-180 and 180 may both be given)",
            DataWarning,
            stacklevel=3,
        )
    return values


def reconstruct(
    ds: xr.Dataset,
    target: xr.Dataset,
    *,
    model: RSTMRF | str | os.PathLike,
    background: xr.Dataset | xr.DataArray | None = None,
    chunks: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    precision: Precision = "auto",
    compile: bool = False,
) -> xr.Dataset:
    """Reconstruct Ne on a grid, lazily.

    Parameters
    ----------
    ds
        The campaign whose hourly drivers (Kp, F10.7) cover the grid's times.
    target
        The grid, from :func:`grid`.
    model
        A fitted :class:`~ionofield.RSTMRF`, or the path of a model file (read with
        :func:`ionofield.load_model`). The volume takes a copy of the model as it
        is now, rebuilt on ``device`` where the chunks compute: the model itself is
        neither moved nor changed, and changing it after this call does not change
        the volume.
    background
        The background the model was fitted with, when it was user-supplied.
    chunks
        Times per chunk, a positive whole number (default: as many as keep a chunk
        near 4 million points).
    cache_dir
        Disk cache of the IRI background.
    device
        The torch device the network runs on when the chunks compute: ``"auto"``
        (the default, or None: the first CUDA GPU when torch sees one, else Apple's
        MPS when available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
        ``"mps"`` or a :class:`torch.device`. The background and the combination run
        on the CPU whatever the device.
    precision
        ``"auto"`` (the default): ``"bfloat16"`` where the device computes it
        natively (a CPU with AVX-512 BF16 or AMX, a CUDA GPU of compute capability 8.0
        or later; :func:`~ionofield._device.native_bfloat16`), else ``"float32"``.
        ``"bfloat16"`` runs the network's matrix products in bfloat16
        (:func:`torch.autocast`; the output layer and the background stay float32):
        on a CPU with AVX-512 BF16 the network runs about twice as fast, and on the
        OSSE's fitted models ``ne`` moved by 0.0009-0.0017 dex rms (at most 0.02 dex),
        ``ne_log10_sigma`` by 0.4 % rms and the skill by at most 0.0002, a hundredth
        of the model's own error (:doc:`/user_guide/fit_time`). ``"float32"`` keeps
        every product in float32, on any device.
    compile
        Run the network through :func:`torch.compile`, compiled once per process
        (:func:`~ionofield.prediction.compiled_network`; an eager fallback, with a
        :class:`~ionofield.errors.PerformanceWarning`, where compiling fails). The
        results agree with the eager network's to float rounding. It pays on long
        grids: compiling costs seconds per process, and saves a share of the
        network's time on every point (:doc:`/user_guide/fit_time`).

    Returns
    -------
    xarray.Dataset
        ``ne`` (m-3), ``ne_background`` (m-3) and ``ne_log10_sigma`` on
        ``(time, alt, lat, lon)``, float32, dask-backed; nothing is computed until
        ``.compute()`` or a write. ``ne_log10_sigma`` includes the column misfit of
        the campaign's TEC maps (:class:`~ionofield.prediction.ColumnMisfit`) when the
        model was calibrated with it and ``ds`` has them, and the growth of the
        variance with the hours from the training data
        (:meth:`~ionofield.RSTMRF.gap_variance`). The attributes say which
        background was used (``source``, ``background``, and for IRI the F10.7 it
        was given, ``iri_f107``), how far the grid is from what the model was
        fitted on (``training_period``, ``training_alt_range``, ``extrapolation``),
        the device the network runs on (``device``: ``"cpu"``, ``"cuda:0"``, ...) and
        its ``precision`` (``"float32"`` or ``"bfloat16"``, what ``"auto"`` chose).

    Raises
    ------
    ConfigError
        ``model``, ``target``, ``chunks``, ``device``, ``precision`` or ``compile`` is not
        what is described above (for a device, also when this machine's torch cannot use it: the
        message says how to install one that can), or the model was fitted on a
        user background and ``background`` is missing.
    CampaignError
        ``ds`` is not a campaign.
    CheckpointError
        ``model`` is the path of a damaged or foreign file.
    DivergenceError
        The model holds NaN or infinite weights (here), or a chunk's values leave
        :data:`RESIDUAL_LIMIT_DEX` or :data:`SIGMA_RANGE_DEX` (when it is computed,
        naming the chunk).
    CoverageError
        The campaign's drivers do not cover the grid's times.

    Warns
    -----
    ExtrapolationWarning
        The grid reaches more than :data:`EXTRAPOLATION_DAYS` beyond the training
        period, or more than :data:`EXTRAPOLATION_KM` beyond the observed altitudes.
    """
    device = resolve_device(device)
    model = _usable_model(model)
    _check_target(target)
    if chunks is not None and (
        isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1
    ):
        raise ConfigError(
            f"reconstruct: chunks={chunks!r}; give a positive whole number of times per "
            "chunk, or leave chunks=None for about 4 million points per chunk"
        )
    precision = resolve_precision(precision, device, where="reconstruct")
    if not isinstance(compile, (bool, np.bool_)):
        raise ConfigError(f"reconstruct: compile={compile!r}; give True or False")
    check_campaign(ds)
    times = to_datetime64(target["time"].values)
    alt, lat, lon = (target[name].values.astype(np.float64) for name in ("alt", "lat", "lon"))
    names = ["kp", "f107", "f107_81"] + (["tec"] if _uses_column_misfit(model, ds) else [])
    drivers = HourlyDrivers.from_campaign(ds[names])
    drivers.bracket(times)  # raises now, not at compute time, when uncovered
    _check_background(model, background)
    f107_name = _iri_f107_name(model, ds) if background is None else None
    extrapolation = _extrapolation(model, times, alt)
    per_time = alt.size * lat.size * lon.size
    step = chunks or max(1, min(len(times), 4_000_000 // max(per_time, 1)))
    source = (
        _IriHours(ds[f107_name].load(), model.config, cache_dir)
        if f107_name is not None
        else dask.delayed(BackgroundField, pure=True)(background)
    )
    recipe = _ModelRecipe.of(model, device)
    model_node = dask.delayed(recipe, pure=True, name=f"ionofield-model-{recipe.token}")
    drivers_node = dask.delayed(drivers, pure=True)
    blocks = []
    for start in range(0, len(times), step):
        t = times[start : start + step]
        block = dask.delayed(_volume_block, pure=True)(model_node, drivers_node, source, t, alt,
                                                       lat, lon, precision, compile)
        shape = (len(_OUTPUTS), len(t), alt.size, lat.size, lon.size)
        blocks.append(dsa.from_delayed(block, shape, dtype=np.float32))
    stacked = dsa.concatenate(blocks, axis=1)
    dims = ("time", "alt", "lat", "lon")
    out = xr.Dataset(
        {name: (dims, stacked[k], attributes(name)) for k, name in enumerate(_OUTPUTS)},
        coords={name: target[name] for name in dims},
    )
    out.attrs.update(_global_attrs(model, ds, background, f107_name, extrapolation, device,
                                   precision))
    return out


def _usable_model(model: Any) -> RSTMRF:
    """The model a path or an object names, refused when its weights are not finite."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)  # load_model refuses non-finite weights
    if not isinstance(model, RSTMRF):
        raise ConfigError(
            f"reconstruct: model= is a {type(model).__name__}; pass a fitted ionofield.RSTMRF "
            "(from ionofield.fit or ionofield.load_model(path)) or the path of a model file"
        )
    bad = model.nonfinite_tensors()
    if bad:
        raise DivergenceError(
            f"reconstruct: the model's weights hold NaN or infinite values in {len(bad)} "
            f"tensor(s) ({', '.join(bad)}): its fit diverged or the weights were damaged, "
            "and every value it gives would be NaN; refit the model (a lower lr, finite "
            "observations)"
        )
    return model


def _check_target(target: Any) -> None:
    """ConfigError unless ``target`` is a Dataset with the four grid coordinates."""
    dims = ("time", "alt", "lat", "lon")
    missing = [name for name in dims if name not in getattr(target, "coords", {})]
    if not isinstance(target, (xr.Dataset, xr.DataArray)) or missing:
        raise ConfigError(
            f"reconstruct: the target grid ({type(target).__name__}) lacks the coordinate(s) "
            f"{missing or list(dims)}; build it with ionofield.grid(time=..., alt=..., lat=..., "
            "lon=...)"
        )
    for name in dims:
        if target[name].ndim != 1:
            raise ConfigError(
                f"reconstruct: the target's {name!r} coordinate has dims {target[name].dims}; "
                "each axis must be 1-D (build the target with ionofield.grid)"
            )


#: One IRI background at a time per process: PyIRI uses one core and ~0.4 GB; two at
#: once would double that memory and slow the network down.
_BACKGROUND_LOCK = threading.Lock()
#: One network evaluation at a time per process: it already uses every core.
_NETWORK_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class _ModelRecipe:
    """A model as the bytes ``torch.save`` gives, and the device to rebuild it on.

    This, not the module, is the graph's model node. dask.distributed serialises a
    ``torch.nn.Module`` attribute by attribute (its generic serialiser for modules),
    past the module's own pickling, and fails on the weak references an LSTM keeps
    to its weights; bytes cross to any process. The scheduler sends the node once
    to each worker that computes a chunk, and each process rebuilds the model from
    it once (:func:`_rebuilt_model`). Recipes are equal when their bytes are:
    ``token`` is their SHA-256.
    """

    token: str
    device: str
    payload: bytes = dataclasses.field(compare=False, repr=False)

    @classmethod
    def of(cls, model: RSTMRF, device: torch.device) -> _ModelRecipe:
        """The recipe of ``model`` as it is now, to be rebuilt on ``device``."""
        buffer = io.BytesIO()
        torch.save(model, buffer)
        payload = buffer.getvalue()
        return cls(hashlib.sha256(payload).hexdigest(), str(device), payload)


#: One model rebuilt at a time per process: chunks arriving together share it.
_MODEL_LOCK = threading.Lock()


def _model_of(recipe: _ModelRecipe) -> RSTMRF:
    """The model of a recipe, rebuilt by the first chunk of this process that needs it."""
    with _MODEL_LOCK:
        return _rebuilt_model(recipe)


@functools.lru_cache(maxsize=MODELS_KEPT)
def _rebuilt_model(recipe: _ModelRecipe) -> RSTMRF:
    """The model of a recipe, in eval mode on its device.

    ``_rebuilt_model.cache_info().misses`` counts the models this process has rebuilt.
    """
    # Not weights_only: the bytes hold the module itself, written by reconstruct in
    # the user's own session, not a file from elsewhere.
    model = torch.load(io.BytesIO(recipe.payload), map_location=recipe.device,
                       weights_only=False)
    return model.eval()


@dataclasses.dataclass(frozen=True)
class _IriHours:
    """The IRI background of any hours, on the grid and with the options of a fit."""

    f107: xr.DataArray
    config: FitConfig
    cache_dir: str | os.PathLike | None

    @property
    def alt_range(self) -> tuple[float, float]:
        """Lowest and highest altitude (km) of the IRI grid."""
        alt, _, _ = iri_axes(self.config)
        return float(alt[0]), float(alt[-1])

    def field(self, times: np.ndarray, cores: threading.Semaphore) -> BackgroundField:
        """The field over the whole hours spanning ``times`` (disk-cached per hour).

        It holds one of ``cores`` meanwhile: the network's calls, which hold them too,
        then leave PyIRI its core. On that core PyIRI's matrix products (numpy's BLAS)
        run on one thread: with one BLAS thread a core, OpenBLAS's waiting threads
        took the network's core and slowed both (a day of the perf grid in bfloat16:
        26.5 s against 29.4 s, mean of three runs on 2 cores). The BLAS setting is
        the process's; torch does its matrix products without it. (OpenBLAS 0.3.31
        ignores it here when the main thread has set its thread count itself, e.g.
        through threadpoolctl: PyIRI then runs as it would anyway.)
        """
        with _BACKGROUND_LOCK, cores, threadpool_limits(1, user_api="blas"):
            field, _ = campaign_background(times, self.f107, config=self.config,
                                           cache_dir=self.cache_dir)
        return field


def _volume_block(
    recipe: _ModelRecipe, drivers: HourlyDrivers, background: _IriHours | BackgroundField,
    times: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, precision: Precision,
    compile: bool,
) -> np.ndarray:
    """ne, ne_background, ne_log10_sigma of a time chunk, stacked on axis 0.

    The network does not need the background, so it starts first, on
    :func:`_network_runner`'s thread, while this thread gets the chunk's IRI: from the
    first chunk on, PyIRI (one core) and the network (the others, and all of them once
    PyIRI is done: :func:`_cores`) run side by side.
    Each distinct meridian is computed once (180 as -180), so the columns of a grid
    holding both -180 and 180 are equal.
    """
    meridians, column = np.unique(np.where(lon >= 180.0, lon - 360.0, lon), return_inverse=True)
    model = _model_of(recipe)
    threads = worker_threads() or torch.get_num_threads()  # the calling task's share
    cores = _cores(threads)
    network = _network_runner().submit(_network, model, drivers, background, times, alt, lat,
                                       meridians, threads, cores, precision, compile)
    if isinstance(background, _IriHours):
        field = background.field(times, cores)
    else:
        field = background
    residual, log_var, shift, columns = network.result()
    # A broken model overflows below; _check_block then names the chunk.
    with np.errstate(over="ignore", invalid="ignore"):
        misfit = None if columns is None else columns.misfit(drivers, field)
        out = _block_values(model, drivers, field, times, alt, lat, meridians, residual,
                            log_var, shift, misfit)
    _check_block(times, residual, out)
    return out if np.array_equal(meridians, lon) else out[..., column]


@functools.cache
def _network_runner() -> ThreadPoolExecutor:
    """The thread that runs each chunk's network, one chunk after the other.

    Kept for the life of the process, like the network's own worker threads.
    """
    return ThreadPoolExecutor(1, thread_name_prefix="ionofield-chunk")


@functools.cache
def _cores(threads: int) -> threading.BoundedSemaphore:
    """The cores the chunks of this process share, ``threads`` of them.

    PyIRI holds one while it runs, and each network call one.
    """
    return threading.BoundedSemaphore(threads)


def _network(
    model: RSTMRF, drivers: HourlyDrivers, background: _IriHours | BackgroundField,
    times: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, threads: int,
    cores: threading.Semaphore, precision: Precision, compile: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, ModelColumns | None]:
    """All a chunk needs of the network, on ``threads`` threads holding ``cores``.

    The residual, log-variance and profile shift on the chunk's grid, and, when sigma
    takes the TEC maps' column misfit, the network's part of the columns at the hours
    the chunk's times take weight from (:class:`~ionofield.prediction.ModelColumns`).
    While PyIRI computes a background it holds one of the ``cores``, and the network
    runs on the others; read from the IRI cache, or given by the user, the background
    leaves them all to the network.
    """
    columns = None
    with _NETWORK_LOCK, torch_threads(threads):
        residual, log_var, shift = predict_residual(model, drivers, times, alt, lat, lon,
                                                    precision=precision, compile=compile,
                                                    cores=cores)
        if drivers.tec is not None:
            i0, i1, w0, w1 = drivers.bracket(times)
            hours = np.union1d(i0[w0 > 0], i1[w1 > 0])  # the chunk's field spans them
            columns = ModelColumns.compute(model, drivers, background.alt_range, hours,
                                           precision=precision, compile=compile, cores=cores)
    return residual, log_var, shift, columns


def _block_values(
    model: RSTMRF, drivers: HourlyDrivers, field: BackgroundField, times: np.ndarray,
    alt: np.ndarray, lat: np.ndarray, lon: np.ndarray, residual: np.ndarray,
    log_var: np.ndarray, shift: np.ndarray | None, misfit: ColumnMisfit | None,
) -> np.ndarray:
    """The stacked outputs of a chunk on distinct meridians ``lon``.

    ``ne`` is the background, raised by the profile ``shift`` (None: not raised), times
    the residual; ``ne_background`` the background itself.
    """
    out = np.empty((len(_OUTPUTS), *residual.shape), dtype=np.float32)
    # Slabs of a few altitudes keep the interpolation's temporaries the same on any grid.
    levels = max(1, BACKGROUND_POINTS_PER_CALL // (lat.size * lon.size))
    for k, time in enumerate(times):
        for start in range(0, alt.size, levels):
            slab = slice(start, start + levels)
            where = (time, alt[slab, None, None], lat[:, None], lon)
            out[1, k, slab] = field.log10_at(*where)
            if shift is not None:
                out[0, k, slab] = field.raised(*where, shift[k, slab])
    np.add(out[1] if shift is None else out[0], residual, out=out[0])
    np.exp(log_var, out=out[2])  # log_var is ln(sigma^2), sigma in dex
    out[2] += model.gap_variance(times)[:, None, None, None]
    if misfit is not None:
        out[2] += misfit.variance(drivers, times[:, None, None], lat[:, None], lon,
                                  float(model.column_misfit_offset))[:, None]
    np.sqrt(out[2], out=out[2])
    np.power(10.0, out[0], out=out[0])
    np.power(10.0, out[1], out=out[1])
    return out


def _check_block(times: np.ndarray, residual: np.ndarray, out: np.ndarray) -> None:
    """DivergenceError, naming the chunk, unless its values are physical.

    The residual must lie within :data:`RESIDUAL_LIMIT_DEX`, ``ne_log10_sigma``
    within :data:`SIGMA_RANGE_DEX`, ``ne`` and ``ne_background`` finite and positive.
    """
    lo, hi = SIGMA_RANGE_DEX
    bad = {
        f"log10 residual outside +-{RESIDUAL_LIMIT_DEX:g} dex (Ne within a factor 1e"
        f"{RESIDUAL_LIMIT_DEX:g} of the background)": (
            residual, ~(np.abs(residual) <= RESIDUAL_LIMIT_DEX)),
        f"ne_log10_sigma outside {lo:g}..{hi:g} dex": (out[2], ~((out[2] >= lo) & (out[2] <= hi))),
        "ne not finite and positive": (out[0], ~(np.isfinite(out[0]) & (out[0] > 0))),
        "ne_background not finite and positive": (
            out[1], ~(np.isfinite(out[1]) & (out[1] > 0))),
    }
    problems = [
        f"{what} at {int(np.count_nonzero(mask))} of {mask.size} points (e.g. "
        f"{values[mask].flat[0]:g})"
        for what, (values, mask) in bad.items()
        if mask.any()
    ]
    if problems:
        first, last = np.datetime_as_string(times[[0, -1]], unit="s")
        raise DivergenceError(
            f"reconstruct: the chunk of {len(times)} time(s) {first} to {last}: "
            f"{'; '.join(problems)}. The model gives unphysical values there (a diverged fit "
            "or damaged weights, or a background far from the one it was fitted on): refit "
            "the model, and check its validation scores (print(model)) before reconstructing"
        )


def _uses_column_misfit(model: RSTMRF, ds: xr.Dataset) -> bool:
    """Whether sigma takes the TEC maps' column misfit.

    It does when the model was calibrated with it and the campaign has TEC maps.
    """
    return "tec" in ds and bool(np.isfinite(float(model.column_misfit_offset)))


def _check_background(model: RSTMRF, background: Any) -> None:
    kind = model.info.get("background", {}).get("kind", "iri")
    if kind != "iri" and background is None:
        raise ConfigError(
            "the model was fitted on a user-supplied background; pass the same one as "
            "background= (fit and reconstruct must use the same background)"
        )


def _iri_f107_name(model: RSTMRF, ds: xr.Dataset) -> str:
    """The campaign variable whose F10.7 the model's IRI background was given.

    ``model.info["background"]["f107_variable"]`` records it
    (:func:`~ionofield.background.campaign_background`); models fitted before it
    was recorded were given the daily ``f107``, and a model that was never fitted
    takes :data:`~ionofield.background.IRI_F107`.
    """
    info = model.info.get("background")
    name = IRI_F107 if info is None else str(info.get("f107_variable", "f107"))
    if name not in ds.data_vars:
        raise ConfigError(
            f"reconstruct: the model's IRI background was given the F10.7 of {name!r}, which "
            f"the campaign lacks (it has {sorted(map(str, ds.data_vars))}); build the "
            "campaign with ionofield.campaign, whose indices carry it"
        )
    return name


def _extrapolation(model: RSTMRF, times: np.ndarray, alt: np.ndarray) -> str:
    """How far the grid is from what the model was fitted on, and a warning if far.

    Returns ``""`` when the grid is within :data:`EXTRAPOLATION_DAYS` of the training
    period and :data:`EXTRAPOLATION_KM` of the observed altitudes (or the model does
    not record them), else the description the warning gives.
    """
    notes = []
    period = model.info.get("period")
    if period:
        first, last = (np.datetime64(str(p), "m") for p in (period[0], period[-1]))
        day = np.timedelta64(1, "D")
        for days, side in (((first - times.min()) / day, "before"),
                           ((times.max() - last) / day, "after")):
            if days > EXTRAPOLATION_DAYS:
                notes.append(
                    f"grid times reach {days:.1f} days ({days * 24:.0f} h) {side} the training "
                    f"period {first} to {last}"
                )
    span = model.info.get("obs_alt_range")
    if span:
        lo, hi = float(span[0]), float(span[-1])
        for km, side in ((lo - alt.min(), "below"), (alt.max() - hi, "above")):
            if km > EXTRAPOLATION_KM:
                notes.append(
                    f"grid altitudes reach {km:.0f} km {side} the observed altitudes "
                    f"({lo:g} to {hi:g} km) the model was fitted on"
                )
    if not notes:
        return ""
    text = "; ".join(notes)
    warnings.warn(
        f"reconstruct: {text}; the residual there is an extrapolation that no observation "
        "constrained and ne_log10_sigma does not measure: fit on a campaign covering these "
        "times and altitudes (recorded in the volume's 'extrapolation' attribute)",
        ExtrapolationWarning,
        stacklevel=3,
    )
    return text


def _global_attrs(
    model: RSTMRF, ds: xr.Dataset, background: Any, f107_name: str | None, extrapolation: str,
    device: torch.device, precision: Precision,
) -> dict[str, str]:
    """The volume's global attributes; they name the background that was used."""
    period = model.info.get("period", ["?", "?"])
    span = model.info.get("obs_alt_range")
    if f107_name is not None:
        pyiri = importlib.metadata.version("PyIRI")
        f107 = ds[f107_name]
        what = f"IRI via PyIRI {pyiri} ({FOF2_MODEL} foF2, {HMF2_MODEL} hmF2)"
        used = {
            "background": what,
            "iri_f107": f"{f107_name}"
            + (f" ({f107.attrs['long_name']})" if "long_name" in f107.attrs else "")
            + ", sfu, the mean of each UT day, from the campaign",
        }
        references = "; IRI via PyIRI (Forsythe et al. 2023)"
    else:
        attrs = getattr(background, "attrs", {})
        label = attrs.get("title") or attrs.get("source") or "no title or source attribute"
        what = f"user-supplied background ({label})"
        used = {"background": what}
        references = ""
    return {
        "Conventions": CONVENTIONS,
        "title": "Ionospheric electron density reconstructed by R-STMRF",
        "institution": "ionofield users",
        "source": f"ionofield {__version__} R-STMRF on the {what}",
        "history": history_line("reconstruct"),
        "references": "R-STMRF: physics-guided recurrent spatio-temporal residual field"
        + references,
        "comment": "log10 Ne = log10 Ne_background + learned residual",
        **used,
        "ionofield_version": __version__,
        "model_config_hash": model.config.digest(),
        "training_period": f"{period[0]} to {period[-1]}",
        "training_alt_range": f"{span[0]:g} to {span[-1]:g} km" if span else "not recorded",
        "extrapolation": extrapolation or "none",
        "device": str(device),
        "precision": precision,
    }

"""The fitted network evaluated where fitting and reconstruction both need it.

:func:`predict_residual` runs the network on a (time, alt, lat, lon) grid, and
:class:`ColumnMisfit` compares the resulting vertical TEC with the campaign's TEC
maps. :func:`ionofield.fit` uses both to calibrate sigma after training;
:func:`ionofield.reconstruct` uses them to build a volume's ``ne`` and
``ne_log10_sigma``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ionofield._device import resolve_precision
from ionofield._threads import torch_threads
from ionofield.background import BackgroundField
from ionofield.config import Precision
from ionofield.diagnostics import TECU
from ionofield.drivers import HourlyDrivers
from ionofield.errors import CoverageError, PerformanceWarning
from ionofield.model import RSTMRF
from ionofield.sphere import Cells, axis_cells, interpolate, longitude_cells
from ionofield.timeutil import universal_time_hours

#: Points per network call: small enough that a call's activations stay near the CPU
#: (8192 x 128 float32 = 4 MB), large enough that Python's overhead is small.
POINTS_PER_CALL = 8192
#: Altitude step (km) of the model columns compared with the TEC maps.
COLUMN_STEP_KM = 20.0
#: Every this many rows and columns of a TEC map are compared with the model's column
#: (the misfit is smooth; the full IONEX grid would cost a sixth of a reconstruction).
MISFIT_MAP_STRIDE = 2
#: Hours of columns computed together by :meth:`ColumnMisfit.compute` (a few MB).
MISFIT_HOURS_PER_CALL = 24
#: Floor (TECU) of the map TEC in the misfit's ratio (maps can hold zeros).
MIN_MAP_TEC = 0.1


def predict_residual(
    model: RSTMRF,
    drivers: HourlyDrivers,
    times: np.ndarray,
    alt: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    workers: int | None = None,
    precision: Precision = "float32",
    compile: bool = False,
    cores: threading.Semaphore | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The network's log10 residual, log-variance and profile shift on a 4-D grid.

    The network runs on the model's device (:attr:`~ionofield.RSTMRF.device`): the grid goes
    there once, each call's coordinates are built there, and the results come back
    to the CPU once, at the end. The temporal path (and the time half of the decoder)
    runs once per time; the spatial path once per point, in calls of
    :data:`POINTS_PER_CALL` points. On the CPU the calls are spread over ``workers``
    threads of one torch thread each: on these narrow layers, independent calls side
    by side use the cores better than torch's own intra-op threads. On a GPU they
    run one after the other from the calling thread (its stream orders them
    anyway).

    Parameters
    ----------
    model
        A fitted model, on the device to run on.
    drivers
        Hourly drivers covering ``times``.
    times
        datetime64 times, shape [T].
    alt, lat, lon
        Grid axes (km, deg, deg), shapes [Z], [Y], [X].
    workers
        Threads evaluating the network on the CPU (default: torch's intra-op thread
        count); unused on other devices.
    precision
        ``"bfloat16"`` runs the network's matrix products in bfloat16
        (:func:`torch.autocast`), ``"auto"`` does where the device computes it
        natively (:func:`~ionofield._device.resolve_precision`); the results are
        float32 either way.
    compile
        Run the network through :func:`torch.compile` (:func:`compiled_network`),
        every call on :data:`POINTS_PER_CALL` points (the last one padded), so
        that one graph serves them all.
    cores
        On the CPU, a semaphore each call holds while it runs: work beside the network
        that holds some too (a reconstruction's PyIRI) takes cores from it only
        while it runs.

    Returns
    -------
    residual, log_var, shift_km
        float32 numpy arrays of shape [T, Z, Y, X]; the profile shift is None for a
        model without one (:attr:`~ionofield.config.FitConfig.profile_shift`).

    Warns
    -----
    PerformanceWarning
        ``compile`` was asked for and the compilation failed: the network ran as it
        is, with the same results.
    """
    model.eval()
    device = model.device
    bfloat16 = resolve_precision(precision, device, where="predict_residual") == "bfloat16"
    space_grid = np.empty((alt.size, lat.size, lon.size, 3), dtype=np.float32)
    space_grid[..., 0] = lat[:, None]
    space_grid[..., 1] = lon
    space_grid[..., 2] = alt[:, None, None]
    ut = universal_time_hours(times)
    with torch.inference_mode():
        codes = model.encode_time(drivers.time_inputs(times, model.config.env_len))
        space = torch.as_tensor(space_grid.reshape(-1, 3), device=device)
        # residual, log_var (and the shift) of every point, written in place by the calls below
        rows = 3 if model.profile_shift else 2
        out = torch.empty((rows, len(times), len(space)), dtype=torch.float32, device=device)

    def evaluate(network: torch.nn.Module, task: tuple[int, int]) -> None:
        k, start = task
        n = min(POINTS_PER_CALL, len(space) - start)
        # grad mode and autocast are per thread
        with (cores or contextlib.nullcontext()), torch.inference_mode(), torch.autocast(
                device.type, dtype=torch.bfloat16, enabled=bfloat16):
            padded = network is not model  # compiled: one shape for every call
            coords = torch.empty((POINTS_PER_CALL if padded else n, 4), device=device)
            coords[:n, :3] = space[start : start + n]
            coords[n:, :3] = space[0]  # the padding: any point of the grid
            coords[:, 3] = float(ut[k])
            # without the profile shift, out has no row for the network's zeros
            for row, values in zip(out, network(coords, codes[k : k + 1]), strict=False):
                row[k, start : start + n] = values[:n]

    tasks = [(k, s) for k in range(len(times)) for s in range(0, len(space), POINTS_PER_CALL)]
    on_cpu, workers = device.type == "cpu", workers or torch.get_num_threads()
    with torch_threads(1 if on_cpu else None):  # CPU: one thread per call, compiled too
        network = compiled_network(model, lambda net: evaluate(net, tasks[0])) if compile else model
        if on_cpu:
            for _ in _worker_pool(workers).map(functools.partial(evaluate, network), tasks):
                pass
        else:
            for task in tasks:
                evaluate(network, task)
    shape = (len(times), alt.size, lat.size, lon.size)
    residual, log_var, *shift = out.cpu().numpy().reshape(rows, *shape)
    return residual, log_var, (shift[0] if shift else None)


def compiled_network(
    model: RSTMRF, first_call: Callable[[torch.nn.Module], object]
) -> torch.nn.Module:
    """The model through :func:`torch.compile`, or the model itself where that fails.

    The compilation happens at ``first_call``, here, on the calling thread, so that
    threads calling the compiled network afterwards find it compiled. Its graph has
    fixed shapes: calls of other shapes compile again. It takes a few seconds when
    inductor's on-disk cache holds the kernels (a later process, the same network
    size and precision), 20 s or more on the first compilation of this machine; it
    needs a C++ compiler on the CPU.

    Parameters
    ----------
    model
        The model, in evaluation mode.
    first_call
        Calls the network it is given once, as the later calls will.

    Returns
    -------
    torch.nn.Module
        Called like the model.

    Warns
    -----
    PerformanceWarning
        The compilation failed (no compiler, an operation the compiler does not
        support): the model itself is returned, with the same results.
    """
    compiled = torch.compile(model, dynamic=False)
    try:
        first_call(compiled)
    except Exception as error:  # torch's compiler stack fails in many kinds of ways
        warnings.warn(
            f"torch.compile of the network failed ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); it runs "
            "without compilation, with the same results, more slowly",
            PerformanceWarning, stacklevel=3,
        )
        return model
    return compiled


@dataclasses.dataclass(frozen=True)
class ModelColumns:
    """The network's part of the model's columns compared with the TEC maps.

    The network does not need the background, so a reconstruction computes this part
    while the background's IRI is still being computed, and :meth:`misfit` adds the
    background afterwards.

    Attributes
    ----------
    hours
        int64 [K]: the campaign hours (indices on the drivers' hour axis), ascending.
    alt, lat, lon
        float64 [Z], [Y], [X]: the column altitudes, every :data:`COLUMN_STEP_KM`,
        and the latitudes and longitudes of every :data:`MISFIT_MAP_STRIDE`-th row
        and (where the maps' distinct meridians allow) column of the maps.
    lon_stride
        The maps' columns ``lon`` takes every this many of.
    residual
        float32 [K, Z, Y, X]: the network's log10 residual over the background.
    shift
        float32 [K, Z, Y, X]: the network's profile shift (km), or None for a model
        without one.
    """

    hours: np.ndarray
    alt: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    lon_stride: int
    residual: np.ndarray
    shift: np.ndarray | None

    @classmethod
    def compute(
        cls, model: RSTMRF, drivers: HourlyDrivers, alt_range: tuple[float, float],
        hours: np.ndarray, *, precision: Precision = "float32", compile: bool = False,
        cores: threading.Semaphore | None = None,
    ) -> ModelColumns:
        """The network's residual on the columns at campaign hours.

        Parameters
        ----------
        model
            A fitted model.
        drivers
            The campaign's hourly drivers, with TEC maps.
        alt_range
            Lowest and highest altitude (km) of the columns: the background's.
        hours
            Sorted hour indices of ``drivers``, shape [K].
        precision, compile, cores
            As :func:`predict_residual` takes them.

        Returns
        -------
        ModelColumns
        """
        # Strided longitudes stay regular across the antimeridian only if they divide it.
        lon_stride = MISFIT_MAP_STRIDE if drivers.tec_lon.size % MISFIT_MAP_STRIDE == 0 else 1
        lat = drivers.tec_lat[::MISFIT_MAP_STRIDE]
        lon = drivers.tec_lon[::lon_stride]
        alt = np.arange(alt_range[0], alt_range[1] + 1e-6, COLUMN_STEP_KM)
        hours = np.asarray(hours, dtype=np.int64)
        residual, _, shift = predict_residual(model, drivers, drivers.hours[hours], alt, lat,
                                              lon, precision=precision, compile=compile,
                                              cores=cores)
        return cls(hours, alt, lat, lon, lon_stride, residual, shift)

    def misfit(self, drivers: HourlyDrivers, field: BackgroundField) -> ColumnMisfit:
        """The column misfit, once the background of the hours is known.

        The model's column is the trapezoid integral of its Ne (the background, raised
        by the profile shift, times the residual) over the column altitudes.

        Parameters
        ----------
        drivers
            The drivers the columns were computed with.
        field
            The background over (at least) the hours.

        Returns
        -------
        ColumnMisfit
        """
        values = np.empty((self.hours.size, self.lat.size, self.lon.size), dtype=np.float32)
        for k, hour in enumerate(self.hours):  # one hour at a time: the memory of one
            where = (drivers.hours[hour], self.alt[:, None, None], self.lat[:, None], self.lon)
            background = (field.log10_at(*where) if self.shift is None
                          else field.raised(*where, self.shift[k]))
            log10_ne = self.residual[k] + background
            column = np.trapezoid(10.0 ** log10_ne.astype(np.float64), self.alt * 1e3, axis=0)
            tec = drivers.tec[hour, ::MISFIT_MAP_STRIDE, :: self.lon_stride]
            values[k] = np.log10(column / TECU / np.maximum(tec, MIN_MAP_TEC))
        return ColumnMisfit(self.hours, self.lat, self.lon, values)


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

        :meth:`ModelColumns.compute` and then :meth:`ModelColumns.misfit`, a few hours
        at a time (:data:`MISFIT_HOURS_PER_CALL`), over the background's altitudes.

        Parameters
        ----------
        model, drivers
            As :meth:`ModelColumns.compute` takes them.
        field
            The background over (at least) those hours.
        hours
            Sorted hour indices of ``drivers``, shape [K], K >= 1.

        Returns
        -------
        ColumnMisfit
        """
        hours = np.asarray(hours, dtype=np.int64)
        parts = []
        for start in range(0, hours.size, MISFIT_HOURS_PER_CALL):
            some = hours[start : start + MISFIT_HOURS_PER_CALL]
            columns = ModelColumns.compute(model, drivers, field.alt_range, some)
            parts.append(columns.misfit(drivers, field))
        values = np.concatenate([part.values for part in parts])
        return cls(hours, parts[0].lat, parts[0].lon, values)

    def at(
        self, drivers: HourlyDrivers, time: np.ndarray, lat: np.ndarray, lon: np.ndarray
    ) -> np.ndarray:
        """The misfit at times and positions (its column's).

        Bilinear in latitude and longitude (across the antimeridian), and between the
        two hours around each time with the drivers' cosine-squared weights
        (:func:`ionofield.sphere.interpolate`).

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
        time_cells = drivers.hour_cells(time)
        rows = np.searchsorted(self.hours, np.stack([time_cells.lower, time_cells.upper]))
        rows = np.minimum(rows, self.hours.size - 1)
        wanted = np.stack([time_cells.lower, time_cells.upper])
        weight = np.stack([1.0 - time_cells.weight, time_cells.weight])
        if np.any((self.hours[rows] != wanted) & (weight > 0)):
            raise CoverageError("column misfit: asked at times outside the hours it was "
                                "computed at; compute it for the hours around them")
        cells = [
            Cells(rows[0], rows[1], time_cells.weight),
            axis_cells(self.lat, lat),
            longitude_cells(self.lon, lon),
        ]
        return np.asarray(interpolate(self.values, cells))

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

"""The fitted network evaluated where fitting and reconstruction both need it.

:func:`predict_residual` runs the network on a (time, alt, lat, lon) grid, and
:class:`ColumnMisfit` compares the resulting vertical TEC with the campaign's TEC
maps. :func:`ionofield.fit` uses both to calibrate sigma after training;
:func:`ionofield.reconstruct` uses them to build a volume's ``ne`` and
``ne_log10_sigma``.
"""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ionofield._threads import torch_threads
from ionofield.background import BackgroundField
from ionofield.config import Precision
from ionofield.diagnostics import TECU
from ionofield.drivers import HourlyDrivers
from ionofield.errors import CoverageError
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
) -> tuple[np.ndarray, np.ndarray]:
    """The network's log10 residual and log-variance on a (time, alt, lat, lon) grid.

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
        (:func:`torch.autocast`); the results are float32 either way.

    Returns
    -------
    residual, log_var
        float32 numpy arrays of shape [T, Z, Y, X].
    """
    model.eval()
    device = model.device
    space_grid = np.empty((alt.size, lat.size, lon.size, 3), dtype=np.float32)
    space_grid[..., 0] = lat[:, None]
    space_grid[..., 1] = lon
    space_grid[..., 2] = alt[:, None, None]
    ut = universal_time_hours(times)
    with torch.inference_mode():
        codes = model.encode_time(drivers.time_inputs(times, model.config.env_len))
        space = torch.as_tensor(space_grid.reshape(-1, 3), device=device)
        # residual and log_var of every point, written in place by the calls below
        out = torch.empty((2, len(times), len(space)), dtype=torch.float32, device=device)

    def evaluate(task: tuple[int, int]) -> None:
        k, start = task
        stop = min(start + POINTS_PER_CALL, len(space))
        # grad mode and autocast are per thread
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=precision == "bfloat16"):
            coords = torch.empty((stop - start, 4), dtype=torch.float32, device=device)
            coords[:, :3] = space[start:stop]
            coords[:, 3] = float(ut[k])
            out[0, k, start:stop], out[1, k, start:stop] = model(coords, codes[k : k + 1])

    tasks = [(k, s) for k in range(len(times)) for s in range(0, len(space), POINTS_PER_CALL)]
    if device.type == "cpu":
        with torch_threads(1):
            for _ in _worker_pool(workers or torch.get_num_threads()).map(evaluate, tasks):
                pass
    else:
        for task in tasks:
            evaluate(task)
    shape = (len(times), alt.size, lat.size, lon.size)
    residual, log_var = out.cpu().numpy().reshape(2, *shape)
    return residual, log_var


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

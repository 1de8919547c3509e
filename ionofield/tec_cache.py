"""The TEC path's direction field at any time: an hourly LRU cache and a labelled view.

The ConvLSTM + direction head of R-STMRF reads the last ``seq_len`` native TEC maps
at or before a whole hour and gives one direction field per whole hour (at an hour
without a native map, the head's field at that lead after the latest map,
:meth:`ionofield.drivers.HourlyDrivers.latest_map`); at a time between two hours the field
is the cosine-squared blend of the two (DESIGN.md §3). Evaluating it at many minute
times therefore needs the network only once per distinct hour:
:class:`HourlyTECCache` keeps those hourly fields in a least-recently-used cache
(eval mode only: in training mode it computes every call, with gradients), and
:func:`tec_direction` returns the field as an ``xarray.Dataset`` for plotting.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Literal

import numpy as np
import torch
import xarray as xr

from ionofield.campaign import check_campaign
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError
from ionofield.model import RSTMRF
from ionofield.nn.recurrent import reference_direction, sample_direction
from ionofield.sphere import Cells, interpolate
from ionofield.timeutil import to_datetime64

__all__ = ["HourlyTECCache", "tec_direction"]

logger = logging.getLogger(__name__)

_SOURCES = ("model", "data")


def _hours_of(drivers: HourlyDrivers, times: np.ndarray) -> tuple[np.ndarray, Cells]:
    """The distinct hours with a non-zero weight at ``times``, and cells over them.

    A time on a whole hour needs that hour alone: where a weight is 0 its side points
    at the other side's hour.
    """
    cells = drivers.hour_cells(times)
    lower = np.where(cells.weight < 1, cells.lower, cells.upper)
    upper = np.where(cells.weight > 0, cells.upper, lower)
    hours, inverse = np.unique(np.concatenate([lower, upper]), return_inverse=True)
    return hours, Cells(inverse[: lower.size], inverse[lower.size :], cells.weight)


class HourlyTECCache:
    """The TEC path's hourly direction fields, computed once per hour in eval mode.

    In eval mode (``not model.training``) :meth:`fields` runs the ConvLSTM and the
    direction head under ``torch.no_grad()`` only for hours it does not hold, all
    such hours of one call batched together (``batch_hours`` at most per ConvLSTM
    call), and keeps the results in an LRU cache of
    at most ``max_size`` hours. In training mode it computes every hour on every
    call, with gradients, and stores nothing (nor counts hits or misses).

    The cache notices new weights: when any parameter of the TEC path has changed
    in place since the fields were stored (an optimiser step, ``load_state_dict``)
    or been replaced (``model.to(device)``), the stored fields are dropped.

    The TEC path runs on the model's device (:attr:`~ionofield.RSTMRF.device`), and the fields
    stay there: the maps' grid axes go to that device once (again only if the model
    moves), and :meth:`fields` and :meth:`at` return tensors on it.

    Parameters
    ----------
    model
        The model whose TEC path is evaluated.
    drivers
        The campaign's hourly drivers (with TEC maps).
    max_size
        Most hours kept (each is ``2 * H * W`` floats, 41 kB on the IONEX grid).
    batch_hours
        Most hours per ConvLSTM call, to bound the memory of a call.

    Raises
    ------
    ConfigError
        When ``max_size`` or ``batch_hours`` is below 1.

    Examples
    --------
    Three hourly TEC maps growing northward, and an untrained model, whose head
    starts at the TEC gradient:

    >>> import numpy as np, torch, ionofield as iof
    >>> from ionofield.drivers import HourlyDrivers
    >>> hours = np.arange("2024-05-11T00", "2024-05-11T03", dtype="datetime64[h]")
    >>> lat, lon = np.arange(-80.0, 81.0, 20.0), np.arange(-180.0, 180.0, 30.0)
    >>> tec = np.zeros((3, 9, 12), "float32") + 20 + 10 * np.sin(np.deg2rad(lat))[:, None]
    >>> drivers = HourlyDrivers(hours.astype("datetime64[ns]"), np.zeros((3, 3)), tec, lat, lon)
    >>> cache = HourlyTECCache(iof.RSTMRF(iof.FitConfig(seq_len=2)).eval(), drivers)
    >>> times = np.array(["2024-05-11T00:30", "2024-05-11T01:10"], "datetime64[ns]")
    >>> cache.at(times, torch.tensor([10.0, -30.0]), torch.tensor([0.0, 100.0]))
    tensor([[1., 0.],
            [1., 0.]])
    >>> cache.get_stats()
    {'hits': 0, 'misses': 3, 'hit_rate': 0.0, 'size': 3, 'max_size': 100}
    >>> _ = cache.at(times, torch.tensor([10.0, -30.0]), torch.tensor([0.0, 100.0]))
    >>> cache.get_stats()["hit_rate"]
    0.5
    """

    def __init__(
        self,
        model: RSTMRF,
        drivers: HourlyDrivers,
        *,
        max_size: int = 100,
        batch_hours: int = 48,
    ) -> None:
        if max_size < 1 or batch_hours < 1:
            raise ConfigError(
                f"HourlyTECCache: max_size={max_size} and batch_hours={batch_hours}; both "
                "must be at least 1"
            )
        self.model = model
        self.drivers = drivers.for_tec_path(model.config.w_tec_forecast > 0)
        self.max_size = max_size
        self.batch_hours = batch_hours
        self._fields: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._weights_id: tuple[tuple[int, int], ...] = ()
        self.hits = 0
        self.misses = 0
        self._grid = self._grid_axes()

    # -- statistics ------------------------------------------------------------------
    def get_stats(self) -> dict[str, float | int]:
        """Cache statistics, counted per distinct hour per call in eval mode.

        Returns
        -------
        dict
            ``hits``, ``misses``, ``hit_rate`` (hits / (hits + misses), 0 before any
            look-up), ``size`` (hours held) and ``max_size``.
        """
        looked_up = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / looked_up if looked_up else 0.0,
            "size": len(self._fields),
            "max_size": self.max_size,
        }

    def clear(self) -> None:
        """Drop every stored field and reset the statistics."""
        self._fields.clear()
        self.hits = 0
        self.misses = 0

    # -- hourly fields ---------------------------------------------------------------
    def _grid_axes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The maps' latitudes and longitudes in the model's dtype, on its device."""
        param = next(self.model.parameters())
        like = {"dtype": param.dtype, "device": param.device}
        return (torch.as_tensor(self.drivers.tec_lat, **like),
                torch.as_tensor(self.drivers.tec_lon, **like))

    def _compute(self, hours: np.ndarray) -> torch.Tensor:
        """Run the TEC path for whole hours, ``batch_hours`` at a time: [U, 2, H, W]."""
        param = next(self.model.parameters())
        if (self._grid[0].device, self._grid[0].dtype) != (param.device, param.dtype):
            self._grid = self._grid_axes()  # the model moved since the last call
        parts = []
        for start in range(0, len(hours), self.batch_hours):
            chunk = hours[start : start + self.batch_hours]
            seqs = self.drivers.tec_sequences(chunk, self.model.config.seq_len)
            tec = torch.as_tensor(seqs, dtype=param.dtype, device=param.device)
            lead = torch.as_tensor(self.drivers.latest_map(chunk)[1], device=param.device)
            parts.append(self.model.direction_field(tec, *self._grid, lead)[0])
        return torch.cat(parts)

    def _current_weights_id(self) -> tuple[tuple[int, int], ...]:
        # The parameters of the TEC path (RSTMRF.direction_field's modules): a
        # parameter's storage address changes when it is replaced, its version
        # counter grows with every in-place change (optimiser steps, copy_).
        modules = (self.model.convlstm, self.model.direction_head)
        return tuple((p.data_ptr(), p._version) for m in modules for p in m.parameters())

    def fields(self, hours: np.ndarray) -> torch.Tensor:
        """Direction fields of whole hours.

        Parameters
        ----------
        hours
            Indices on the campaign's hourly axis, shape [U] (a repeated hour is
            looked up and counted once).

        Returns
        -------
        torch.Tensor
            Shape [U, 2, H, W], (north, east) components in the spherical metric, on
            the drivers' grid of W distinct meridians. Without gradients in eval mode
            (from the cache where possible); with gradients in training mode.
        """
        hours = np.asarray(hours, dtype=np.int64).ravel()
        if self.model.training:
            return self._compute(hours)
        weights_id = self._current_weights_id()
        if weights_id != self._weights_id:
            if self._fields:
                logger.debug("model weights changed: dropping %d cached hours", len(self._fields))
            self._fields.clear()
            self._weights_id = weights_id
        distinct = list(dict.fromkeys(hours.tolist()))
        found: dict[int, torch.Tensor] = {}
        for hour in distinct:
            if hour in self._fields:
                self._fields.move_to_end(hour)
                found[hour] = self._fields[hour]
        missing = np.array([h for h in distinct if h not in found], dtype=np.int64)
        self.hits += len(found)
        self.misses += missing.size
        if missing.size:
            with torch.no_grad():
                computed = self._compute(missing)
            for hour, field in zip(missing.tolist(), computed, strict=True):
                found[hour] = self._fields[hour] = field.clone()  # not a view of the batch
            while len(self._fields) > self.max_size:
                self._fields.popitem(last=False)
        return torch.stack([found[h] for h in hours.tolist()])

    def field(self, hour: int) -> torch.Tensor:
        """Direction field of one whole hour, shape [2, H, W] (see :meth:`fields`)."""
        return self.fields(np.array([hour]))[0]

    # -- any time, any point -----------------------------------------------------------
    def at(self, times: object, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        """Direction at query points and times, cosine-squared in time between hours.

        ``w0 * field(i0) + w1 * field(i1)`` sampled bilinearly at each point, with the
        two whole hours around its time and their weights from
        :meth:`ionofield.drivers.HourlyDrivers.bracket`; only the distinct hours with
        a non-zero weight are computed (or read from the cache).

        Parameters
        ----------
        times
            Times of the points (datetime64 or cftime), shape [N], within the
            campaign's hourly axis.
        lat
            Latitudes in degrees north, shape [N].
        lon
            Longitudes in degrees east, any range, shape [N].

        Returns
        -------
        torch.Tensor
            Shape [N, 2], (north, east) components in the spherical metric, in the
            model's dtype, on its device.

        Raises
        ------
        ConfigError
            When ``times``, ``lat`` and ``lon`` differ in length.
        CoverageError
            When a time lies outside the hourly axis, or the campaign has no TEC.
        """
        times = np.asarray(times, dtype="datetime64[ns]").ravel()
        lat, lon = np.asarray(lat, dtype=np.float64).ravel(), np.asarray(lon).ravel()
        if lat.size != times.size or lon.size != times.size:
            raise ConfigError(
                f"HourlyTECCache.at: {times.size} times but {lat.size} latitudes and "
                f"{lon.size} longitudes; pass one time, latitude and longitude per point"
            )
        hours, cells = _hours_of(self.drivers, times)
        maps = self.fields(hours)
        return sample_direction(maps, cells, lat, lon, self.drivers.tec_lat,
                                self.drivers.tec_lon)


def tec_direction(
    ds: xr.Dataset,
    times: object = None,
    *,
    model: RSTMRF | None = None,
    source: Literal["model", "data"] = "model",
) -> xr.Dataset:
    """The TEC direction field of a campaign on its TEC grid, as labelled data.

    ``source="data"`` gives the unit finite-difference gradient of each hourly TEC
    map on the sphere (the anchor of the direction head); ``source="model"`` the
    head's field (ConvLSTM over the last ``seq_len`` maps, through
    :class:`HourlyTECCache`, once per hour). At times between whole hours both are
    the cosine-squared blend of the two hours' fields, as the TEC direction loss
    sees them (the blend of two unit vectors is shorter than 1 where the direction
    turns; only directions matter to the loss).

    Parameters
    ----------
    ds
        A campaign Dataset (:func:`ionofield.campaign`) with TEC maps.
    times
        Times within the campaign's hourly axis (datetime64 or cftime), 1-D or
        scalar; ``None`` means the campaign's whole hours.
    model
        The model whose TEC path to evaluate, on its device; required for
        ``source="model"``, unused for ``"data"``.
    source
        ``"model"`` or ``"data"``.

    Returns
    -------
    xarray.Dataset
        ``north`` and ``east`` (float32, dimensionless) on ``(time, lat, lon)``:
        ``lat`` ascending, ``lon`` the W distinct meridians (IONEX's repeated
        +180 column dropped). Components in the spherical metric: ``north`` along
        d/dlat, ``east`` along d/dlon / cos(lat).

    Raises
    ------
    ConfigError
        When ``source`` is unknown, or is ``"model"`` without ``model=``.
    CampaignError
        When ``ds`` is not a campaign.
    CoverageError
        When the campaign has no TEC maps or times fall outside its hourly axis.

    Examples
    --------
    A campaign whose TEC grows northward everywhere (indices from the default
    source); its gradient points due north:

    >>> import numpy as np, xarray as xr, ionofield as iof
    >>> hours = np.arange("2024-05-11T00", "2024-05-11T04", dtype="datetime64[h]")
    >>> lat, lon = np.arange(-80.0, 81.0, 20.0), np.arange(-180.0, 181.0, 30.0)
    >>> tec = np.zeros((4, 9, 13)) + 20 + 10 * np.sin(np.deg2rad(lat))[:, None]
    >>> tec = xr.Dataset({"tec": (("time", "lat", "lon"), tec)},
    ...                  coords={"time": hours, "lat": lat, "lon": lon})
    >>> obs = xr.Dataset({"ne": ("obs", [1e11])}, coords={
    ...     "time": ("obs", hours[:1]), "lat": ("obs", [0.0]), "lon": ("obs", [0.0]),
    ...     "alt": ("obs", [300.0])})
    >>> ds = iof.campaign(obs=obs, tec=tec)
    >>> field = tec_direction(ds, ["2024-05-11T01:30"], source="data")
    >>> dict(field.sizes)
    {'time': 1, 'lat': 9, 'lon': 12}
    >>> float(field.north.min().round(6)), float(abs(field.east).max())
    (1.0, 0.0)

    An untrained model's field is that same gradient (``ds.rstmrf.tec_direction``
    is the same call):

    >>> model = iof.RSTMRF(iof.FitConfig(seq_len=2))
    >>> bool(np.allclose(tec_direction(ds, model=model).north, 1.0))
    True
    """
    if source not in _SOURCES:
        raise ConfigError(f"tec_direction: source={source!r}; use one of {_SOURCES}")
    if source == "model" and model is None:
        raise ConfigError(
            "tec_direction: source='model' needs the model; pass model= (from "
            "ds.rstmrf.fit(...) or ionofield.load_model(path)), or use source='data'"
        )
    check_campaign(ds)
    drivers = HourlyDrivers.from_campaign(ds)
    times = ds["time"].values if times is None else to_datetime64(times).ravel()
    hours, cells = _hours_of(drivers, times)
    with torch.no_grad():
        if source == "model":
            hourly = HourlyTECCache(model, drivers).fields(hours)
        else:
            tec = torch.from_numpy(drivers.tec[hours])
            hourly = reference_direction(tec, drivers.tec_lat, drivers.tec_lon)
        tensors = Cells(*(torch.as_tensor(a, device=hourly.device) for a in cells[:2]),
                        torch.as_tensor(cells.weight, dtype=hourly.dtype, device=hourly.device))
        maps = interpolate(hourly, [tensors]).to(torch.float32).cpu().numpy()
    dims = ("time", "lat", "lon")
    note = "cosine-squared blend of the neighbouring whole hours between them"
    what = (
        "TEC path direction field (ConvLSTM + direction head)"
        if source == "model"
        else "unit finite-difference TEC gradient"
    )
    attrs = {"units": "1", "source": source, "interpolation": note}
    return xr.Dataset(
        {
            "north": (dims, maps[:, 0], {**attrs, "long_name": f"{what}, northward component"}),
            "east": (dims, maps[:, 1], {**attrs, "long_name": f"{what}, eastward component"}),
        },
        coords={
            "time": ("time", times),
            "lat": ("lat", drivers.tec_lat, {"units": "degrees_north"}),
            "lon": ("lon", drivers.tec_lon, {"units": "degrees_east"}),
        },
        attrs={"title": f"TEC direction field ({source})"},
    )

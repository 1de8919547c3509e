"""Electron-density volumes on a user's grid: :func:`grid` and :func:`reconstruct`.

A volume is a lazy, dask-backed Dataset ``ne``, ``ne_background``, ``ne_log10_sigma``
on ``(time, alt, lat, lon)``, chunked over time. The graph has one task per chunk,
which takes the IRI of the chunk's own hours (from the disk cache, or PyIRI), runs the
network (:func:`ionofield.prediction.predict_residual`) and combines the two. Nothing
is computed ahead of the chunk that needs it, so the peak memory is that of the
chunks in flight, whatever the grid's length; two chunks in flight overlap one's IRI
with the other's network; and the graph runs unchanged on a ``dask.distributed``
cluster. :func:`ionofield.to_netcdf` writes it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from ionofield._version import __version__
from ionofield.background import BackgroundField, campaign_background
from ionofield.config import FitConfig
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError
from ionofield.io.cf import CONVENTIONS, attributes, history_line
from ionofield.model import RSTMRF
from ionofield.prediction import ColumnMisfit, predict_residual
from ionofield.sphere import fold_longitude
from ionofield.timeutil import to_datetime64

#: Points per background interpolation call (its float64 temporaries: about 20 MB).
BACKGROUND_POINTS_PER_CALL = 262_144
#: Output variables, in the order of the stacked chunk array.
_OUTPUTS = ("ne", "ne_background", "ne_log10_sigma")


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
        ds[name].attrs.update(attributes(name))
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
        the campaign's TEC maps (:class:`~ionofield.prediction.ColumnMisfit`) when the
        model was calibrated with it and ``ds`` has them.
    """
    times = target["time"].values
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
        {name: (dims, stacked[k], attributes(name)) for k, name in enumerate(_OUTPUTS)},
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


def _global_attrs(model: RSTMRF) -> dict[str, str]:
    period = model.info.get("period", ["?", "?"])
    return {
        "Conventions": CONVENTIONS,
        "title": "Ionospheric electron density reconstructed by R-STMRF",
        "institution": "ionofield users",
        "source": f"ionofield {__version__} R-STMRF (IRI background via PyIRI)",
        "history": history_line("reconstruct"),
        "references": "R-STMRF: physics-guided recurrent spatio-temporal residual field; "
        "IRI via PyIRI (Forsythe et al. 2024)",
        "comment": "log10 Ne = log10 Ne_background + learned residual",
        "ionofield_version": __version__,
        "model_config_hash": model.config.digest(),
        "training_period": f"{period[0]} to {period[-1]}",
    }

"""The campaign Dataset: observations and their hourly drivers, checked once.

:func:`campaign` is the boundary where observations, TEC maps and indices become one
Dataset: times are converted to ``datetime64[ns]`` and sorted, the drivers are
aligned to whole hours (:mod:`ionofield.align`), and every layer below trusts what
it built. :func:`check_campaign` tells a campaign from other Datasets, and
:func:`drivers_at` reads its drivers at any time.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from ionofield.align import (
    DRIVERS,
    OBS_COORDS,
    align_indices,
    align_tec,
    bracket_hours,
    hourly_axis,
    provenance,
    timestamp,
)
from ionofield.errors import CampaignError, ConfigError, CoverageError, ManyProblemsError
from ionofield.io.indices import open_indices
from ionofield.timeutil import HOUR, to_datetime64

logger = logging.getLogger(__name__)

__all__ = ["campaign", "check_campaign", "drivers_at"]


def campaign(
    obs: xr.Dataset,
    tec: xr.Dataset,
    indices: xr.Dataset | None = None,
    *,
    period: tuple[object, object] | None = None,
) -> xr.Dataset:
    """Observations and their hourly drivers in one Dataset.

    Parameters
    ----------
    obs
        Observations on dim ``obs``: ``ne`` (m-3), optional ``ne_err`` (m-3), coords
        ``time``, ``lat`` (deg N), ``lon`` (deg E), ``alt`` (km) and optionally
        ``profile``, ``mission``. Any time order; cftime accepted.
    tec
        TEC maps, ``tec(time, lat, lon)`` in TECU (``ionofield.open_ionex``), at any
        interval up to 2 h.
    indices
        Kp / F10.7 (:func:`ionofield.open_indices`); ``None`` reads them for the
        period from the default source.
    period
        ``(start, end)`` of the hourly driver axis; by default every whole hour the
        TEC maps span. The observations must lie within it. A period longer than the
        observations' (e.g. a held-out day with drivers but no observations) is how
        to reconstruct beyond them, or to give the Kp memory a storm that precedes
        the observations. The model's driver history before the first hour repeats
        the first hour's values.

    Returns
    -------
    xarray.Dataset
        Dims ``obs`` and ``time, lat, lon``. The observations with their coordinates
        renamed ``obs_time`` (datetime64[ns], sorted), ``obs_lat``, ``obs_lon``,
        ``obs_alt``, ``obs_profile``, ``obs_mission``; the hourly drivers
        ``tec(time, lat, lon)``, ``kp(time)``, ``f107(time)``, ``f107_81(time)`` on
        the whole hours of ``period``. Attributes record provenance.

    Raises
    ------
    CampaignError, ManyProblemsError
        When ``obs`` is empty or lacks a required variable or coordinate.
    CoverageError
        When the observations fall outside the period, or the TEC maps or the indices
        do not cover it, naming the hours and the fix.
    """
    _check_observations(obs)
    obs_time = to_datetime64(obs["time"].values)
    order = np.argsort(obs_time, kind="stable")
    obs = obs.isel(obs=order).assign_coords(time=("obs", obs_time[order], obs["time"].attrs))
    first, last = obs["time"].values[0], obs["time"].values[-1]
    if period is None:
        tec_time = to_datetime64(tec["time"].values)
        period = (timestamp(tec_time.min()).ceil("h"), timestamp(tec_time.max()).floor("h"))
    hours = hourly_axis(*period)
    if first < hours[0] or last > hours[-1]:
        raise CoverageError(
            f"campaign: observations span {first} to {last}, outside the drivers' period "
            f"{hours[0]} to {hours[-1]}; load TEC maps covering the observations (or pass "
            "period=) or select the observations inside it."
        )
    need = f"the campaign needs hourly drivers from {hours[0]} to {hours[-1]}"
    try:
        tec_hourly = align_tec(tec, hours)
        if indices is None:
            indices = open_indices(hours[0], hours[-1])
        idx_hourly = align_indices(indices, hours)
    except CoverageError as err:
        raise CoverageError(f"campaign: {err} ({need}).") from err

    renamed = obs.rename({name: f"obs_{name}" for name in OBS_COORDS if name in obs.coords})
    ds = xr.merge(
        [renamed, tec_hourly, idx_hourly], join="exact", compat="no_conflicts", combine_attrs="drop"
    )
    ds["time"].attrs = {"long_name": "whole hours of the hourly drivers (UTC)"}
    ds.attrs = {
        "title": "ionofield campaign: observations with hourly drivers",
        "obs_source": provenance(obs, "unknown"),
        "tec_source": provenance(tec, "unknown"),
        "indices_source": provenance(indices, "unknown"),
        "n_obs": int(obs.sizes["obs"]),
        "obs_time_coverage": f"{first} to {last}",
        "tec_time_alignment": tec_hourly.attrs["time_alignment"],
        "indices_time_alignment": idx_hourly.attrs["time_alignment"],
    }
    for name, label in (("profile", "n_profiles"), ("mission", "missions")):
        if name in obs.coords:
            values = np.unique(obs[name].values.astype(str))
            ds.attrs[label] = int(values.size) if label == "n_profiles" else ", ".join(values)
    logger.info("campaign: %d observations, %d hourly drivers", obs.sizes["obs"], hours.size)
    return ds


def check_campaign(ds: xr.Dataset) -> None:
    """Raise :class:`~ionofield.errors.CampaignError` unless ``ds`` is a campaign.

    A campaign has an ``obs`` dimension with an ``obs_time`` coordinate and an hourly
    ``time`` axis (whole hours, one hour apart) carrying ``kp``, ``f107`` and
    ``f107_81``, as :func:`campaign` builds.

    Parameters
    ----------
    ds
        The Dataset to check.
    """
    problems = []
    if "obs" not in ds.dims or "obs_time" not in ds.coords:
        problems.append("no 'obs' dimension with an 'obs_time' coordinate")
    if "time" not in ds.dims:
        problems.append("no hourly 'time' dimension")
    else:
        hours = to_datetime64(ds["time"].values)
        whole = (hours - hours.astype("datetime64[h]")) == np.timedelta64(0)
        if hours.size < 2 or np.any(np.diff(hours) != HOUR) or not whole.all():
            problems.append("'time' is not whole hours one hour apart")
    absent = [name for name in DRIVERS if name not in ds.data_vars]
    if absent:
        problems.append(f"driver variable(s) {absent} missing")
    if problems:
        raise CampaignError(
            f"Dataset is not an ionofield campaign: {'; '.join(problems)}. Build it with "
            "ionofield.campaign(obs=..., tec=..., indices=...)."
        )


def drivers_at(campaign: xr.Dataset, times: object = None) -> xr.Dataset:
    """Hourly drivers at arbitrary times, by cosine-squared interpolation.

    Between whole hours ``t0`` and ``t0 + 1 h`` each driver is
    ``v(t0) * w0 + v(t0 + 1 h) * w1`` with the weights of :func:`cos2_weights`; at
    the hours it is exactly the hourly value.

    Parameters
    ----------
    campaign
        A Dataset built by :func:`campaign`.
    times
        Times within the campaign's hourly axis: a DataArray (its dims and coords are
        kept), a 1-D array (a new ``time`` dim) or a scalar; datetime64 or cftime.
        ``None`` means the observation times (``campaign.obs_time``).

    Returns
    -------
    xarray.Dataset
        ``kp``, ``f107`` and ``f107_81`` (float64) at ``times``, attributes of the
        hourly variables kept.

    Raises
    ------
    CampaignError
        When ``campaign`` is not a campaign.
    CoverageError
        When times fall outside the campaign's hourly axis.
    """
    check_campaign(campaign)
    if times is None:
        times = campaign["obs_time"]
    if isinstance(times, xr.DataArray):
        t = to_datetime64(times.values)
        dims, coords = times.dims, times.coords
    else:
        t = to_datetime64(times)
        if t.ndim > 1:
            raise ConfigError(
                f"drivers_at: times has shape {t.shape}; pass a DataArray to label more than "
                "one dimension."
            )
        dims = ("time",) * t.ndim
        coords = {"time": (dims, t)}
    i0, w0, w1 = bracket_hours(t.ravel(), campaign["time"].values)
    data = {}
    for name in DRIVERS:
        hourly = np.asarray(campaign[name].values, dtype=np.float64)
        value = hourly[i0] * w0 + hourly[i0 + 1] * w1
        attrs = {
            **campaign[name].attrs,
            "interpolation": "cosine-squared between the neighbouring whole hours",
        }
        data[name] = (dims, value.reshape(t.shape), attrs)
    return xr.Dataset(data, coords=coords)


def _check_observations(obs: xr.Dataset) -> None:
    """Raise when ``obs`` is not an observations Dataset (DESIGN.md section 2)."""
    if "obs" in obs.dims and obs.sizes["obs"] == 0:
        raise CampaignError(
            "observations Dataset: empty (0 observations); read RO profiles that fall in the "
            "period (ionofield.open_ro_profiles) before building a campaign."
        )
    problems = []
    if "obs" not in obs.dims:
        problems.append(f"no 'obs' dimension (dims {dict(obs.sizes)})")
    if "ne" not in obs.data_vars:
        problems.append("no 'ne' variable (electron density, m-3)")
    problems += [
        f"no '{name}' coordinate on 'obs'" for name in OBS_COORDS[:4] if name not in obs.coords
    ]
    if "time" in obs.coords and np.isnat(to_datetime64(obs["time"].values)).any():
        problems.append("'time' holds NaT values; drop those observations")
    if "ne" in obs.data_vars:
        bad = int(np.count_nonzero(~(np.asarray(obs["ne"].values, dtype=np.float64) > 0)))
        if bad:
            problems.append(
                f"'ne' holds {bad} zero, negative or NaN values; drop them (the readers do, "
                "with a count), e.g. obs.where(obs.ne > 0, drop=True)"
            )
    if problems:
        raise ManyProblemsError(
            "observations Dataset (build it with ionofield.open_ro_profiles)", problems
        )

"""Figures of a campaign, a reconstructed volume and a fit, with matplotlib.

Every function draws on the Axes it is given (``ax=``) or on a new figure, labels
its axes with quantities and units, adds colorbars with units, and returns the Axes
(the Figure for the two-panel plots, whose ``ax=`` takes a pair of Axes). Maps are
plain longitude-latitude plots with a graticule (no coastlines: they would need
data that is not available offline).

The same plots of a campaign are reached as ``ds.rstmrf.plot.coverage()`` and so
on (:class:`CampaignPlots`). Plots read only public results: campaigns, volumes, the
direction field of :func:`ionofield.tec_direction` and a fitted model's
:attr:`~ionofield.RSTMRF.history`.

``import ionofield`` does not import this module: it is loaded, with matplotlib, on
first use of ``ionofield.plot`` (or of ``ds.rstmrf.plot``).

The plots share their panels, colour scales, labels and time handling (the private
helpers at the end), which is why they are one module of about 800 lines: every
figure of ionofield looks the same way because it is drawn by the same helpers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.colors as mcolors
import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import xarray as xr

from ionofield.campaign import check_campaign
from ionofield.diagnostics import peak_parameters
from ionofield.errors import ConfigError, CoverageError
from ionofield.tec_cache import tec_direction
from ionofield.timeutil import HOUR, to_datetime64
from ionofield.validation import grid_meridians, volume_at

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import QuadMesh
    from matplotlib.figure import Figure

    from ionofield.model import RSTMRF

logger = logging.getLogger(__name__)

__all__ = [
    "CampaignPlots",
    "coverage",
    "direction_map",
    "drivers",
    "history",
    "peak_maps",
    "profile",
    "validation",
    "volume_map",
    "volume_section",
]

#: Axis and colorbar labels of known variables.
_LABELS = {
    "ne": "Ne (m$^{-3}$)",
    "ne_background": "background Ne (m$^{-3}$)",
    "ne_log10_sigma": r"$\sigma$ of log$_{10}$ Ne (dex)",
    "nmf2": "NmF2 (m$^{-3}$)",
    "hmf2": "hmF2 (km)",
    "tec": "vertical TEC (TECU)",
}
_LON_LABEL = "longitude (deg E)"
_LAT_LABEL = "latitude (deg N)"
_ALT_LABEL = "altitude (km)"
_TIME_LABEL = "time (UTC)"
#: Arrows across the map width when ``stride`` is not given.
_ARROWS_ACROSS = 24
#: Panel titles of the groupings of a validation table.
_GROUPING_TITLES = {"lat_band": "by latitude band (deg N)", "local_time": "by local time (h)",
                    "kp_class": "by Kp class", "snr_class": "by signal-to-noise (ne / ne_err)"}
#: Loss terms of a fit, in the order of the history plot.
_LOSS_TERMS = ("data", "chapman", "tec_direction", "tec_anchor", "tec_forecast")


# -- campaign plots -------------------------------------------------------------------


def coverage(ds: xr.Dataset, *, time: Any = None, ax: Axes | None = None) -> Axes:
    """RO tangent points over the TEC map of one hour.

    Each observation is a dot at its tangent point, coloured by its time; those
    within half an hour of the map's hour are ringed in white.

    Parameters
    ----------
    ds
        A campaign (:func:`ionofield.campaign`).
    time
        The hour of the TEC map (any time on the campaign's axis; the nearest hour
        is shown). Default: the hour with the most observations within +-30 min.
    ax
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        The map, with a TEC colorbar (TECU) and an observation-time colorbar.

    Raises
    ------
    CampaignError
        When ``ds`` is not a campaign.
    CoverageError
        When ``time`` lies outside the campaign's hours.

    Examples
    --------
    >>> ax = coverage(ds)  # doctest: +SKIP
    >>> ax.figure.savefig("coverage.png")  # doctest: +SKIP
    """
    check_campaign(ds)
    obs_time = to_datetime64(ds["obs_time"].values)
    if time is None:
        time = _busiest_hour(obs_time, to_datetime64(ds["time"].values))
    tec = _at_time(ds["tec"], time, what="the campaign's TEC maps")
    hour = to_datetime64(tec["time"].values)[()]
    ax = _axes(ax, figsize=(9, 5.5))
    _map_panel(ax, tec, "tec", cmap="Greys_r")
    lat, lon = ds["obs_lat"].values, ds["obs_lon"].values
    dots = ax.scatter(lon, lat, c=mdates.date2num(obs_time), s=6, cmap="plasma", linewidths=0)
    near = np.abs(obs_time - hour) <= HOUR / 2
    ax.scatter(
        lon[near], lat[near], s=22, facecolors="none", edgecolors="white", linewidths=0.6,
        label=f"observed within 30 min of {_fmt_time(hour)}",
    )
    bar = ax.figure.colorbar(dots, ax=ax, orientation="horizontal", shrink=0.8, pad=0.12)
    bar.set_label("RO observation time (UTC)")
    locator = mdates.AutoDateLocator()
    bar.ax.xaxis.set_major_locator(locator)
    bar.ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    n_profiles = np.unique(ds["obs_profile"].values).size if "obs_profile" in ds.coords else None
    count = f"{ds.sizes['obs']} RO points" + (f", {n_profiles} profiles" if n_profiles else "")
    ax.set_title(f"RO tangent points ({count}) over TEC at {_fmt_time(hour)} UTC")
    ax.legend(loc="lower left", fontsize="small", facecolor="0.5", labelcolor="white")
    return ax


def direction_map(
    ds: xr.Dataset,
    *,
    time: Any,
    model: RSTMRF | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    stride: int | None = None,
) -> Axes | Figure:
    """TEC map with the horizontal TEC-gradient direction as arrows.

    The arrows draw the direction field that :func:`ionofield.tec_direction` returns.
    They are unit vectors drawn with their compass bearing (east to the right,
    north up), as wind barbs are on a longitude-latitude map. Without ``model`` they
    are the direction of the finite-difference gradient of the map on the sphere
    (the reference of the model's direction head); with ``model`` a second panel
    shows the direction field of the model's TEC path (ConvLSTM and head) beside it.

    Parameters
    ----------
    ds
        A campaign (:func:`ionofield.campaign`).
    time
        A whole hour of the campaign.
    model
        A fitted model; adds the panel of its direction head.
    ax
        Axes to draw on (a pair of Axes with ``model``); a new figure when omitted.
    stride
        Arrow every ``stride`` grid cells in latitude and longitude; default about
        24 arrows across the map.

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure
        The Axes without ``model``, the two-panel Figure with it.

    Raises
    ------
    CampaignError
        When ``ds`` is not a campaign.
    CoverageError
        When ``time`` is not on the campaign's hourly axis.

    Examples
    --------
    >>> fig = direction_map(ds, time="2024-05-11T12", model=model)  # doctest: +SKIP
    """
    check_campaign(ds)
    hour = _at_time(ds["time"], time, what="the campaign's hours", tolerance=np.timedelta64(0))
    hours = to_datetime64(hour.values)[None]
    sources = ["data"] if model is None else ["data", "model"]
    axes = _panels(ax, len(sources), figsize=(7.5 * len(sources), 4.5))
    tec = ds["tec"].sel(time=hours[0])
    for panel, source in zip(axes, sources, strict=True):
        field = tec_direction(ds, hours, model=model, source=source).isel(time=0)
        _map_panel(panel, tec, "tec")
        _quiver(panel, field, stride)
        what = "TEC gradient (data)" if source == "data" else "model direction head"
        panel.set_title(f"{what}, {_fmt_time(hours[0])} UTC")
    return axes[0] if model is None else axes[0].figure


def drivers(ds: xr.Dataset, *, native: xr.Dataset | None = None, ax: Axes | None = None) -> Axes:
    """Kp and F10.7 over a campaign, on two y axes.

    The hourly aligned values are drawn as steps (each holds for its hour); the
    native 3-hourly values, when given, as markers at the middle of their slot.

    Parameters
    ----------
    ds
        A campaign (:func:`ionofield.campaign`).
    native
        The indices Dataset the campaign was aligned from
        (:func:`ionofield.open_indices`), on 3-hour slots.
    ax
        Axes to draw Kp on (F10.7 goes on its twin); a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        The Kp axes; the F10.7 axes is its twin (``ax.figure.axes``).

    Raises
    ------
    CampaignError
        When ``ds`` is not a campaign.

    Examples
    --------
    >>> idx = ionofield.open_indices("2024-05-10", "2024-05-12")  # doctest: +SKIP
    >>> ax = drivers(ds, native=idx)  # doctest: +SKIP
    """
    check_campaign(ds)
    ax = _axes(ax, figsize=(9, 3.5))
    right = ax.twinx()
    hours = to_datetime64(ds["time"].values)
    edges = np.append(hours, hours[-1] + HOUR)
    styles = {
        "kp": (ax, "C0", "-", "Kp (hourly)"),
        "f107": (right, "C3", "-", "F10.7 (hourly)"),
        "f107_81": (right, "C1", "--", "F10.7 81-day mean (hourly)"),
    }
    for name, (axis, color, line, label) in styles.items():
        values = ds[name].values
        axis.step(edges, np.append(values, values[-1]), where="post", color=color, ls=line,
                  label=label)
    if native is not None:
        slots = to_datetime64(native["time"].values)
        middle = slots + np.timedelta64(90, "m")  # the middle of each 3-hour slot
        keep = (middle >= edges[0]) & (middle <= edges[-1])
        middle = middle[keep]
        for name, marker in (("kp", "o"), ("f107", "s")):
            axis, color, _, label = styles[name]
            axis.plot(middle, native[name].values[keep], marker, color=color, ms=4, mfc="none",
                      label=label.replace("hourly", "native 3-hourly"))
    ax.set_ylim(0, 9.5)
    ax.set_ylabel("Kp (0-9)", color="C0")
    solar = np.concatenate([ds["f107"].values, ds["f107_81"].values])
    pad = max(10.0, 0.1 * float(np.ptp(solar)))
    right.set_ylim(float(solar.min()) - pad, float(solar.max()) + pad)
    right.set_ylabel("F10.7 (sfu)", color="C3")
    ax.set_xlabel(_TIME_LABEL)
    _date_axis(ax)
    ax.set_xlim(edges[0], edges[-1])
    handles = [h for axis in (ax, right) for h in axis.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01), fontsize="small",
              ncols=3, frameon=False)
    return ax


def profile(
    ds: xr.Dataset, volume: xr.Dataset, profile_id: str, *, ax: Axes | None = None
) -> Axes:
    """An observed RO profile against the background and the reconstruction.

    The volume is interpolated at the profile's own tangent points: linearly in
    log10 Ne (and in sigma) over time, altitude, latitude and longitude (across the
    antimeridian when the volume is global in longitude); points beyond its grid are
    left out of the curves. The shaded band is the reconstruction's predicted one-sigma
    range, ``10 ** (log10 Ne +- sigma)``.

    Parameters
    ----------
    ds
        A campaign (:func:`ionofield.campaign`) holding the profile.
    volume
        A volume from :func:`ionofield.reconstruct` on a grid whose times cover the
        profile's time (a single grid time within one hour of it is used as is).
    profile_id
        The profile's id (a value of ``ds.obs_profile``).
    ax
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        Ne (m-3, log scale) on x against altitude (km) on y.

    Raises
    ------
    ConfigError
        When no observation carries ``profile_id``.
    CoverageError
        When the volume does not cover the profile's time or position.

    Examples
    --------
    >>> pid = str(ds.obs_profile.values[0])  # doctest: +SKIP
    >>> t = pd.Timestamp(ds.obs_time.values[0]).floor("h")  # doctest: +SKIP
    >>> g = ionofield.grid(time=[t, t + pd.Timedelta("1h")],  # doctest: +SKIP
    ...                    alt=np.arange(100, 801, 10), lat=np.arange(-90, 91, 2.5),
    ...                    lon=np.arange(-180, 180, 5.0))
    >>> ax = profile(ds, ds.rstmrf.reconstruct(g), pid)  # doctest: +SKIP
    """
    check_campaign(ds)
    ids = ds["obs_profile"].values.astype(str)
    (where,) = np.nonzero(ids == str(profile_id))
    if where.size == 0:
        raise ConfigError(
            f"profile_id: no observation has obs_profile == {profile_id!r} "
            f"(the campaign has {np.unique(ids).size} profiles, e.g. "
            f"{', '.join(np.unique(ids)[:3])}); pick one of ds.obs_profile."
        )
    obs = ds.isel(obs=where).sortby("obs_alt")
    at = _volume_at(volume, obs)
    alt = obs["obs_alt"].values
    ax = _axes(ax, figsize=(5, 6))
    mission = str(obs["obs_mission"].values[0]) if "obs_mission" in obs.coords else "RO"
    ax.plot(obs["ne"].values, alt, ".", color="k", ms=4, label=f"observed ({mission})")
    ax.plot(10.0 ** at["log10_bg"], alt, "--", color="C7", label="background")
    ax.fill_betweenx(alt, 10.0 ** (at["log10_ne"] - at["sigma"]),
                     10.0 ** (at["log10_ne"] + at["sigma"]), color="C0", alpha=0.25,
                     linewidth=0, label=r"reconstruction $\pm 1\sigma$")
    ax.plot(10.0 ** at["log10_ne"], alt, "-", color="C0", label="R-STMRF reconstruction")
    ax.set_xscale("log")
    ax.set_xlabel(_LABELS["ne"])
    ax.set_ylabel(_ALT_LABEL)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    mid = obs.isel(obs=len(alt) // 2)
    ax.set_title(
        f"{profile_id}: {_fmt_time(to_datetime64(mid['obs_time'].values)[()])} UTC, "
        f"{float(mid['obs_lat']):.1f}$^\\circ$N {float(mid['obs_lon']):.1f}$^\\circ$E"
    )
    return ax


# -- volume plots ---------------------------------------------------------------------


def volume_map(
    volume: xr.Dataset,
    *,
    alt: float,
    time: Any = None,
    variable: str = "ne",
    ax: Axes | None = None,
) -> Axes:
    """Latitude-longitude map of a volume variable at the nearest altitude level.

    Parameters
    ----------
    volume
        A volume from :func:`ionofield.reconstruct` (lazy or loaded).
    alt
        Altitude in km; the nearest grid level is shown (and named in the title).
    time
        Time to show (nearest grid time); default the first.
    variable
        ``"ne"``, ``"ne_background"`` or ``"ne_log10_sigma"`` (or any variable on
        ``time, alt, lat, lon``); densities get a logarithmic colour scale.
    ax
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        The map with a colorbar in the variable's units.

    Raises
    ------
    ConfigError
        When ``variable`` is not in the volume.
    CoverageError
        When ``time`` lies outside the volume's times.

    Examples
    --------
    >>> vol = xr.Dataset(
    ...     {"ne": (("time", "alt", "lat", "lon"), np.logspace(10, 12, 24).reshape(1, 2, 3, 4))},
    ...     coords={"time": [np.datetime64("2024-05-11T12", "ns")], "alt": [250.0, 350.0],
    ...             "lat": [-45.0, 0.0, 45.0], "lon": [-180.0, -90.0, 0.0, 90.0]})
    >>> volume_map(vol, alt=280.0).get_title()
    'Ne at 250 km, 2024-05-11 12:00 UTC'
    """
    da = _at_time(_variable(volume, variable), time, what="the volume")
    da = da.sel(alt=alt, method="nearest").load()
    ax = _axes(ax, figsize=(8, 4.5))
    _map_panel(ax, da, variable)
    ax.set_title(
        f"{_quantity(da, variable)} at {float(da['alt']):g} km, "
        f"{_fmt_time(to_datetime64(da['time'].values))} UTC"
    )
    return ax


def volume_section(
    volume: xr.Dataset,
    *,
    lon: float,
    time: Any = None,
    variable: str = "ne",
    ax: Axes | None = None,
) -> Axes:
    """Altitude-latitude section of a volume variable along the nearest meridian.

    Parameters
    ----------
    volume
        A volume from :func:`ionofield.reconstruct` (lazy or loaded).
    lon
        Longitude in degrees east; the nearest grid meridian is shown.
    time
        Time to show (nearest grid time); default the first.
    variable
        As in :func:`volume_map`.
    ax
        Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        Latitude (deg N) on x, altitude (km) on y, with a colorbar in the
        variable's units.

    Raises
    ------
    ConfigError
        When ``variable`` is not in the volume.
    CoverageError
        When ``time`` lies outside the volume's times.
    """
    da = _at_time(_variable(volume, variable), time, what="the volume")
    da = da.sel(lon=lon, method="nearest").transpose("alt", "lat").load()
    ax = _axes(ax, figsize=(8, 4.5))
    mesh = ax.pcolormesh(da["lat"].values, da["alt"].values, da.values, shading="nearest",
                         **_colour(da, variable))
    ax.figure.colorbar(mesh, ax=ax, label=_label(da, variable))
    ax.set_xlim(-90, 90)
    ax.set_xticks(np.arange(-90, 91, 30))
    ax.set_xlabel(_LAT_LABEL)
    ax.set_ylabel(_ALT_LABEL)
    ax.set_title(
        f"{_quantity(da, variable)} at {float(da['lon']):g}$^\\circ$E, "
        f"{_fmt_time(to_datetime64(da['time'].values))} UTC"
    )
    return ax


def peak_maps(
    volume: xr.Dataset, *, time: Any = None, ax: Sequence[Axes] | None = None
) -> Figure:
    """Maps of the F2 peak: NmF2 and hmF2 side by side.

    The peak of each reconstructed profile comes from
    :func:`ionofield.peak_parameters` (parabolic refinement in log Ne).

    Parameters
    ----------
    volume
        A volume from :func:`ionofield.reconstruct` (lazy or loaded).
    time
        Time to show (nearest grid time); default the first.
    ax
        A pair of Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding both maps, each with its colorbar (m-3, km).

    Raises
    ------
    CoverageError
        When ``time`` lies outside the volume's times.
    """
    ne = _at_time(_variable(volume, "ne"), time, what="the volume")
    peaks = peak_parameters(ne).load()
    axes = _panels(ax, 2, figsize=(15, 4.5))
    stamp = _fmt_time(to_datetime64(ne["time"].values))
    for panel, name in zip(axes, ("nmf2", "hmf2"), strict=True):
        _map_panel(panel, peaks[name], name)
        panel.set_title(f"{_quantity(peaks[name], name)}, {stamp} UTC")
    return axes[0].figure


# -- fit ------------------------------------------------------------------------------


def history(
    model_or_table: RSTMRF | pd.DataFrame, *, ax: Sequence[Axes] | None = None
) -> Figure:
    """Training history: the loss terms, and the validation RMSE against the background's.

    Left: each training loss term per validation and the validation data loss (log y; a
    symmetric-log y when a term is negative, as a Gaussian NLL can be). Right: the
    validation RMSE of log10 Ne of the model and of the background alone (linear y
    from 0, so that the gain over the background reads as a fraction).

    Parameters
    ----------
    model_or_table
        A fitted model (:func:`ionofield.fit`) or its history table
        (:attr:`ionofield.RSTMRF.history`).
    ax
        A pair of Axes to draw on; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding both panels.

    Raises
    ------
    ConfigError
        When there is no history (the model was never fitted).

    Examples
    --------
    >>> table = pd.DataFrame({"step": [200, 400], "data": [0.9, 0.4], "val_loss": [1.0, 0.5],
    ...                       "val_rmse": [0.3, 0.2], "val_rmse_background": [0.4, 0.4]})
    >>> [ax.get_ylabel() for ax in history(table.set_index("step")).axes]
    ['loss (unweighted term)', 'validation RMSE of log$_{10}$ Ne (dex)']
    """
    table = model_or_table if isinstance(model_or_table, pd.DataFrame) else model_or_table.history
    if table.empty:
        raise ConfigError(
            "history: the model has no training history (info['history'] is empty); plot a "
            "model returned by ionofield.fit, or its model.history table."
        )
    losses, scores = _panels(ax, 2, figsize=(12, 4))
    step = table.index.to_numpy()
    terms = [name for name in _LOSS_TERMS if name in table] + ["val_loss"]
    for k, name in enumerate(terms):
        style = "--" if name == "val_loss" else "-"
        label = "validation data loss" if name == "val_loss" else f"train {name}"
        losses.plot(step, table[name].to_numpy(), style, marker=".", color=f"C{k}", label=label)
    values = table[terms].to_numpy(dtype=np.float64)
    if np.nanmin(values) > 0:
        losses.set_yscale("log")
    else:
        tiny = np.abs(values[values != 0])
        losses.set_yscale("symlog", linthresh=10.0 ** np.floor(np.log10(np.nanmin(tiny))))
    losses.set_ylabel("loss (unweighted term)")
    losses.set_title("Training loss terms")
    scores.plot(step, table["val_rmse"].to_numpy(), "-", marker=".", color="C0",
                label="R-STMRF")
    scores.plot(step, table["val_rmse_background"].to_numpy(), "--", color="C7",
                label="background alone")
    rmse = table[["val_rmse", "val_rmse_background"]].to_numpy(dtype=np.float64)
    scores.set_ylim(0, 1.1 * np.nanmax(rmse))
    scores.set_ylabel("validation RMSE of log$_{10}$ Ne (dex)")
    scores.set_title("Validation error")
    for panel in (losses, scores):
        panel.set_xlabel(table.index.name or "step")
        panel.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        panel.grid(True, which="both", alpha=0.3)
        panel.legend(fontsize="small")
    return losses.figure


def validation(
    table: xr.Dataset, *, variable: str | None = None, ax: Sequence[Axes] | None = None
) -> Figure:
    """Scores of a model (or volume) against its background, group by group.

    One panel per grouping of the table (latitude band, local time, Kp class): the
    model's and the background's bars side by side in each group, the group's count
    under its label, and dashed lines at their overall values; the title gives the
    overall scores and the skill.

    Parameters
    ----------
    table
        The table of :func:`ionofield.validate`.
    variable
        A variable of the table on ``(estimate, group)``: ``log10_ne_rmse`` (the
        default), ``log10_nmf2_rmse`` (the default when no Ne value was scored, as at
        ionosondes), ``hmf2_rmse`` or a ``*_bias``.
    ax
        One Axes per grouping of the table; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the panels.

    Raises
    ------
    ConfigError
        When ``table`` is not a validation table, ``variable`` is not one of its
        variables on ``(estimate, group)``, or ``ax`` does not hold one Axes per
        grouping.

    Examples
    --------
    >>> fig = validation(ionofield.validate(model, held_out))  # doctest: +SKIP
    >>> fig.savefig("skill.png")  # doctest: +SKIP
    """
    if not isinstance(table, xr.Dataset) or "grouping" not in table.coords or (
            "estimate" not in table.dims):
        raise ConfigError(
            f"validation: expected the table of ionofield.validate, got a "
            f"{type(table).__name__} without 'grouping' and 'estimate'; pass what "
            "ionofield.validate returns."
        )
    if variable is None:
        scored = int(table["n_points"].sel(group="all")) if "n_points" in table else 0
        variable = "log10_ne_rmse" if scored else "log10_nmf2_rmse"
    if variable not in table.data_vars or table[variable].dims != ("estimate", "group"):
        choices = [str(n) for n, v in table.data_vars.items() if v.dims == ("estimate", "group")]
        raise ConfigError(f"variable: {variable!r} is not a score of the table on (estimate, "
                          f"group); pick one of {choices}.")
    scores = table[variable]
    counts = table[scores.attrs["ancillary_variables"]]
    groupings = [g for g in dict.fromkeys(table["grouping"].values.tolist()) if g != "all"]
    axes = _panels(ax, len(groupings), figsize=(4.8 * len(groupings), 4.2))
    units = scores.attrs.get("units", "1")
    label = scores.attrs.get("long_name", variable) + (f" ({units})" if units != "1" else "")
    overall = scores.sel(group="all")
    for panel, grouping in zip(axes, groupings, strict=True):
        rows = np.flatnonzero(table["grouping"].values == grouping)
        x = np.arange(rows.size)
        for k, estimate in enumerate(scores["estimate"].values):
            colour = "C0" if k == 0 else "C7"
            panel.bar(x + (k - 0.5) * 0.4, scores.isel(group=rows).sel(estimate=estimate).values,
                      width=0.4, color=colour, label=str(estimate))
            panel.axhline(float(overall.sel(estimate=estimate)), color=colour, linestyle="--",
                          linewidth=0.8)
        ticks = [f"{name}\nn={n}" for name, n in zip(table["group"].values[rows],
                                                       counts.values[rows], strict=True)]
        panel.set_xticks(x, ticks, fontsize="small")
        panel.set_title(_GROUPING_TITLES.get(grouping, grouping))
        panel.set_ylabel(label)
        panel.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    skill = table.get(variable.rsplit("_", 1)[0] + "_skill")
    model_value, background_value = (float(overall.sel(estimate=e))
                                     for e in scores["estimate"].values)
    title = (f"all: model {model_value:.3g}, background {background_value:.3g}, n="
             f"{int(counts.sel(group='all'))}")
    if skill is not None and variable.endswith("_rmse"):
        title += f", skill {float(skill.sel(group='all')):.2f}"
    axes[0].figure.suptitle(title)
    return axes[0].figure


# -- accessor namespace ---------------------------------------------------------------


class CampaignPlots:
    """The plots of one campaign, bound to it: ``ds.rstmrf.plot``.

    Each method forwards to the function of the same name in :mod:`ionofield.plot`
    with the campaign as its first argument.

    Parameters
    ----------
    ds
        The campaign Dataset.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def coverage(self, *, time: Any = None, ax: Axes | None = None) -> Axes:
        """RO tangent points over a TEC map; see :func:`ionofield.plot.coverage`."""
        return coverage(self._ds, time=time, ax=ax)

    def direction_map(
        self,
        *,
        time: Any,
        model: RSTMRF | None = None,
        ax: Axes | Sequence[Axes] | None = None,
        stride: int | None = None,
    ) -> Axes | Figure:
        """TEC map with direction arrows; see :func:`ionofield.plot.direction_map`."""
        return direction_map(self._ds, time=time, model=model, ax=ax, stride=stride)

    def drivers(self, *, native: xr.Dataset | None = None, ax: Axes | None = None) -> Axes:
        """Kp and F10.7 over the campaign; see :func:`ionofield.plot.drivers`."""
        return drivers(self._ds, native=native, ax=ax)

    def profile(self, volume: xr.Dataset, profile_id: str, *, ax: Axes | None = None) -> Axes:
        """Observed vs reconstructed profile; see :func:`ionofield.plot.profile`."""
        return profile(self._ds, volume, profile_id, ax=ax)


# -- helpers --------------------------------------------------------------------------


def _axes(ax: Axes | None, *, figsize: tuple[float, float]) -> Axes:
    """The given Axes, or the Axes of a new (pyplot-managed) figure."""
    return _panels(ax, 1, figsize=figsize)[0]


def _panels(ax: Any, n: int, *, figsize: tuple[float, float]) -> list[Axes]:
    """``n`` Axes side by side: the given ones, or those of a new figure."""
    if ax is None:
        import matplotlib.pyplot as plt

        return list(plt.figure(figsize=figsize, layout="constrained").subplots(1, n, squeeze=False)
                    .ravel())
    axes = list(ax) if isinstance(ax, Sequence | np.ndarray) else [ax]
    if len(axes) != n:
        raise ConfigError(
            f"ax: this plot has {n} panel(s) but {len(axes)} Axes were given; pass "
            f"{'one Axes' if n == 1 else f'a sequence of {n} Axes'} or none."
        )
    return axes


def _fmt_time(t: np.datetime64) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "m"), unit="m")).replace("T", " ")


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _busiest_hour(obs_time: np.ndarray, hours: np.ndarray) -> np.datetime64:
    """The campaign hour with the most observations within +-30 min of it."""
    nearest = np.clip(np.round((obs_time - hours[0]) / HOUR).astype(np.int64), 0, hours.size - 1)
    return hours[np.bincount(nearest, minlength=hours.size).argmax()]


def _at_time(
    obj: xr.DataArray, time: Any, *, what: str, tolerance: np.timedelta64 = HOUR / 2
) -> xr.DataArray:
    """``obj`` at the grid time nearest ``time`` (the first when None).

    Times more than ``tolerance`` outside the grid's span (or, with a zero
    tolerance, off the grid) raise :class:`CoverageError`.
    """
    if time is None:
        return obj.isel(time=0)
    t = to_datetime64(time)[()]
    grid = to_datetime64(obj["time"].values)
    k = int(np.abs(grid - t).argmin())
    outside = t < grid[0] - tolerance or t > grid[-1] + tolerance
    exact = tolerance == np.timedelta64(0)
    if outside or (exact and grid[k] != t):
        where, fix = ("one", "one of them") if exact else ("within the span", "a time in it")
        raise CoverageError(
            f"time {t} is not {where} of {what} ({grid.size} times, {grid[0]} to "
            f"{grid[-1]}); pick {fix}."
        )
    return obj.isel(time=k)


def _variable(volume: xr.Dataset, name: str) -> xr.DataArray:
    if name not in volume.data_vars:
        raise ConfigError(
            f"variable: {name!r} is not in the volume (it has {list(volume.data_vars)}); "
            "pick one of those."
        )
    return volume[name]


def _is_density(da: xr.DataArray, name: str) -> bool:
    return da.attrs.get("units") == "m-3" or name in ("ne", "ne_background", "nmf2")


def _label(da: xr.DataArray, name: str) -> str:
    if name in _LABELS:
        return _LABELS[name]
    return f"{da.attrs.get('long_name', name)} ({da.attrs.get('units', '?')})"


def _quantity(da: xr.DataArray, name: str) -> str:
    """The label of a variable without its units, for titles."""
    return _label(da, name).rsplit(" (", 1)[0]


def _colour(da: xr.DataArray, name: str) -> dict[str, Any]:
    """Colour map and normalisation: logarithmic for densities."""
    if _is_density(da, name):
        values = da.values[np.isfinite(da.values) & (da.values > 0)]
        if values.size:
            return {"cmap": "viridis",
                    "norm": mcolors.LogNorm(vmin=values.min(), vmax=values.max())}
        return {"cmap": "viridis"}
    return {"cmap": "magma" if name == "ne_log10_sigma" else "viridis"}


def _map_panel(ax: Axes, da: xr.DataArray, name: str, **style: Any) -> QuadMesh:
    """Draw a (lat, lon) field with its colorbar on a longitude-latitude graticule."""
    da = _wrap_longitude(da.transpose("lat", "lon"))
    mesh = ax.pcolormesh(da["lon"].values, da["lat"].values, da.values, shading="nearest",
                         **{**_colour(da, name), **style})
    ax.figure.colorbar(mesh, ax=ax, label=_label(da, name), shrink=0.85)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(np.arange(-180, 181, 60))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.grid(True, color="0.6", linewidth=0.5, linestyle=":")
    ax.set_aspect("equal")
    ax.set_xlabel(_LON_LABEL)
    ax.set_ylabel(_LAT_LABEL)
    return mesh


def _quiver(ax: Axes, field: xr.Dataset, stride: int | None) -> None:
    """Unit arrows (east, north) every ``stride`` cells; zero vectors are left out."""
    step = stride or max(1, round(field.sizes["lon"] / _ARROWS_ACROSS))
    sub = field.isel(lat=slice(None, None, step), lon=slice(None, None, step))
    north = sub["north"].transpose("lat", "lon").values
    east = sub["east"].transpose("lat", "lon").values
    norm = np.hypot(north, east)
    ok = norm > 0
    lon, lat = np.meshgrid(sub["lon"].values, sub["lat"].values)
    ax.quiver(lon[ok], lat[ok], east[ok] / norm[ok], north[ok] / norm[ok], color="white",
              pivot="mid", angles="uv", scale=_ARROWS_ACROSS * 1.3, width=0.003,
              headwidth=4, edgecolor="k", linewidth=0.3)


def _volume_at(volume: xr.Dataset, obs: xr.Dataset) -> dict[str, np.ndarray]:
    """log10 Ne, log10 background and sigma of a volume at observation points.

    :func:`ionofield.validation.volume_at`: multilinear in time, altitude, latitude and
    longitude, across the antimeridian when the volume's meridians go round the globe;
    a one-time volume holds within an hour of its time. Points beyond the grid's
    altitudes, latitudes or (regional) longitudes get NaN rather than the value at the
    grid's edge.
    """
    times = to_datetime64(obs["obs_time"].values)
    grid = to_datetime64(volume["time"].values)
    if grid.size == 1 and np.abs(times - grid[0]).max() > HOUR:
        raise CoverageError(
            f"volume: its one time {grid[0]} is more than an hour from the profile's "
            f"({times[0]}); reconstruct on a grid at the profile's time."
        )
    if grid.size > 1 and (times.min() < grid[0] or times.max() > grid[-1]):
        raise CoverageError(
            f"volume: times {grid[0]} to {grid[-1]} do not cover the profile's time "
            f"({times[0]}); reconstruct on a grid covering it."
        )
    at = volume_at(volume, times, *(obs[f"obs_{name}"].values for name in ("alt", "lat", "lon")),
                   log10=("ne", "ne_background"), linear=("ne_log10_sigma",),
                   snapshot_tolerance=HOUR)
    if np.isnan(at["ne"]).all():
        raise CoverageError(
            f"volume: its grid (alt {float(volume['alt'].min()):g} to "
            f"{float(volume['alt'].max()):g} km, lat {float(volume['lat'].min()):g} to "
            f"{float(volume['lat'].max()):g}, lon {float(volume['lon'].min()):g} to "
            f"{float(volume['lon'].max()):g}) does not reach the profile's points; "
            "reconstruct on a grid around them."
        )
    return {"log10_ne": at["ne"], "log10_bg": at["ne_background"], "sigma": at["ne_log10_sigma"]}


def _wrap_longitude(da: xr.DataArray) -> xr.DataArray:
    """A global field for drawing: on folded meridians, closed across the antimeridian.

    The columns are put on their meridians in [-180, 180)
    (:func:`ionofield.validation.grid_meridians`), and the last and the first are
    repeated 360 degrees before and after them, so that the map reaches both edges.
    Fields already running from -180 to 180 (IONEX maps) and regional fields are
    returned as they are.
    """
    lon = da["lon"].values
    meridians, columns, is_global = grid_meridians(lon)
    if not is_global or (lon[0] <= -180.0 and lon[-1] >= 180.0 and np.all(np.diff(lon) > 0)):
        return da
    da = da.isel(lon=columns).assign_coords(lon=meridians)
    first = da.isel(lon=[0]).assign_coords(lon=[meridians[0] + 360.0])
    last = da.isel(lon=[-1]).assign_coords(lon=[meridians[-1] - 360.0])
    return xr.concat([last, da, first], dim="lon")

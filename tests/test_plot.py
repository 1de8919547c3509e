from __future__ import annotations

import ast
import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

import ionofield as iof  # noqa: E402
from ionofield import plot  # noqa: E402
from ionofield.errors import ConfigError, CoverageError  # noqa: E402
from tests.conftest import START, chapman_log10, indices_dataset  # noqa: E402

HOUR = np.timedelta64(1, "h")


def first_profile(ds):
    pid = str(ds.obs_profile.values[0])
    time = pd.Timestamp(ds.obs_time.values[0])
    return pid, time


@pytest.fixture(scope="module")
def volume(tiny_campaign, model, chapman_background):
    _, time = first_profile(tiny_campaign)
    grid = iof.grid(time=[time.floor("h"), time.floor("h") + pd.Timedelta("1h")],
                    alt=np.arange(100.0, 701.0, 50.0), lat=np.arange(-90.0, 90.1, 15.0),
                    lon=np.arange(-180.0, 180.0, 30.0))
    return iof.reconstruct(tiny_campaign, grid, model=model, background=chapman_background)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def pixels(fig) -> np.ndarray:
    fig.set_dpi(40)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float64)


def assert_drawn(fig):
    assert pixels(fig).std() > 10.0  # a blank canvas has std 0


def labels(fig) -> str:
    """Every axis label of every Axes (colorbars included) of a figure."""
    return " | ".join(f"{ax.get_xlabel()} | {ax.get_ylabel()}" for ax in fig.axes)


def n_artists(fig) -> int:
    return sum(len(ax.get_children()) for ax in fig.axes)


def analytic_volume(times, alt, lat, lon, *, hm=None):
    """A volume whose log10 Ne is linear in every coordinate (or a Chapman layer)."""
    t = (np.asarray(times, "datetime64[ns]") - START) / HOUR
    T, Z, Y, X = np.meshgrid(t, alt, lat, lon, indexing="ij")
    if hm is None:
        log10 = 11.0 + 1e-3 * Z + 2e-3 * Y + 1e-3 * X + 0.01 * T
    else:
        log10 = chapman_log10(Z, 5e11, hm(Y, X))
    dims = ("time", "alt", "lat", "lon")
    coords = {"time": np.asarray(times, "datetime64[ns]"), "alt": alt, "lat": lat, "lon": lon}
    return xr.Dataset(
        {"ne": (dims, 10.0 ** log10, {"units": "m-3"}),
         "ne_background": (dims, 10.0 ** (log10 - 0.1), {"units": "m-3"}),
         "ne_log10_sigma": (dims, np.full(log10.shape, 0.05), {"units": "1"})},
        coords=coords,
    )


def observations(lon, *, lat=0.0, alt=300.0, time=START):
    """Observation points (the coordinates a campaign gives them) at longitudes ``lon``."""
    n = len(lon)
    return xr.Dataset(
        {"ne": ("obs", np.full(n, 1e11))},
        coords={"obs_time": ("obs", [time] * n), "obs_lat": ("obs", np.broadcast_to(lat, n)),
                "obs_lon": ("obs", np.asarray(lon, np.float64)),
                "obs_alt": ("obs", np.broadcast_to(alt, n))},
    )


def campaign_plots(ds, model, volume):
    pid, _ = first_profile(ds)
    return {
        "coverage": lambda ax: plot.coverage(ds, ax=ax),
        "direction_map": lambda ax: plot.direction_map(ds, time=ds.time.values[3], ax=ax),
        "drivers": lambda ax: plot.drivers(ds, native=indices_dataset(), ax=ax),
        "profile": lambda ax: plot.profile(ds, volume, pid, ax=ax),
        "volume_map": lambda ax: plot.volume_map(volume, alt=300.0, ax=ax),
        "volume_section": lambda ax: plot.volume_section(volume, lon=30.0, ax=ax),
    }


UNITS = {
    "coverage": ["deg E", "deg N", "TECU", "UTC"],
    "direction_map": ["deg E", "deg N", "TECU"],
    "drivers": ["UTC", "Kp", "sfu"],
    "profile": ["m$^{-3}$", "km"],
    "volume_map": ["deg E", "deg N", "m$^{-3}$"],
    "volume_section": ["deg N", "km", "m$^{-3}$"],
}


@pytest.mark.parametrize("name", list(UNITS))
def test_single_panel_plots_draw_on_the_given_axes(name, tiny_campaign, model, volume):
    draw = campaign_plots(tiny_campaign, model, volume)[name]
    fig, ax = plt.subplots(figsize=(6, 4))
    assert draw(ax) is ax
    assert ax.get_children() and (ax.lines or ax.collections)
    assert_drawn(fig)
    text = labels(fig)
    for unit in UNITS[name]:
        assert unit in text, f"{name}: no {unit!r} in the axis labels {text!r}"
    own = draw(None)  # without ax: a new figure, same drawing
    assert own.figure is not fig and own.get_xlabel() == ax.get_xlabel()


def test_coverage_defaults_to_the_busiest_hour(tiny_campaign):
    ds = tiny_campaign
    rounded = pd.Series(pd.to_datetime(ds.obs_time.values).round("h"))
    busiest = rounded.value_counts().sort_index().idxmax()
    ax = plot.coverage(ds)
    assert busiest.strftime("%Y-%m-%d %H:%M") in ax.get_title()
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(mesh.get_array().reshape(ds.sizes["lat"], -1),
                               ds.tec.sel(time=busiest).values)
    dots = ax.collections[1]
    assert len(dots.get_offsets()) == ds.sizes["obs"]
    np.testing.assert_allclose(dots.get_array(), mdates.date2num(ds.obs_time.values))
    with pytest.raises(CoverageError, match="not within the span"):
        plot.coverage(ds, time=START + 40 * HOUR)


def test_direction_map_arrows_point_up_the_gradient(tiny_campaign):
    # The tiny TEC is 20 + 30 cos^2(lat) (...): it grows towards the equator.
    ax = plot.direction_map(tiny_campaign, time=tiny_campaign.time.values[2], stride=1)
    (arrows,) = [c for c in ax.collections if isinstance(c, Quiver)]
    lat = arrows.get_offsets()[:, 1]
    np.testing.assert_allclose(np.hypot(arrows.U, arrows.V), 1.0, rtol=1e-6)
    assert np.all(arrows.V[lat > 20] < 0) and np.all(arrows.V[lat < -20] > 0)
    sparse = plot.direction_map(tiny_campaign, time=tiny_campaign.time.values[2], stride=2)
    n_sparse = len([c for c in sparse.collections if isinstance(c, Quiver)][0].U)
    assert n_sparse < len(arrows.U)
    with pytest.raises(CoverageError, match="is not one of"):  # between two hours
        plot.direction_map(tiny_campaign, time=START + 30 * np.timedelta64(1, "m"))


def test_direction_map_with_a_model_has_two_panels(tiny_campaign, model):
    time = tiny_campaign.time.values[4]
    fig = plot.direction_map(tiny_campaign, time=time, model=model)
    maps = [ax for ax in fig.axes if ax.get_xlabel()]
    assert len(maps) == 2 and "model" in maps[1].get_title()
    assert_drawn(fig)
    fig2, pair = plt.subplots(1, 2)
    assert plot.direction_map(tiny_campaign, time=time, model=model, ax=pair) is fig2
    with pytest.raises(ConfigError, match="2 Axes"):
        plot.direction_map(tiny_campaign, time=time, model=model, ax=pair[0])


def test_drivers_steps_follow_the_hourly_values(tiny_campaign):
    native = indices_dataset()
    ax = plot.drivers(tiny_campaign, native=native)
    kp_step = ax.lines[0]
    np.testing.assert_array_equal(kp_step.get_ydata()[:-1], tiny_campaign.kp.values)
    middles = native.time.values + np.timedelta64(90, "m")
    inside = (middles >= tiny_campaign.time.values[0]) & (
        middles <= tiny_campaign.time.values[-1] + HOUR)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), native.kp.values[inside])
    (twin,) = [other for other in ax.figure.axes if other is not ax]
    assert "sfu" in twin.get_ylabel()
    low, high = twin.get_ylim()
    assert low < 170.0 and high > 180.0


def test_profile_interpolates_the_volume_at_the_tangent_points(tiny_campaign):
    ds = tiny_campaign
    pid, time = first_profile(ds)
    hours = [time.floor("h"), time.floor("h") + pd.Timedelta("1h")]
    vol = analytic_volume(hours, np.arange(100.0, 801.0, 50.0), np.arange(-90.0, 90.1, 10.0),
                          np.arange(-180.0, 180.0, 10.0))
    obs = ds.isel(obs=np.flatnonzero(ds.obs_profile.values == pid)).sortby("obs_alt")
    t = (obs.obs_time.values - START) / HOUR
    # Linear in every coordinate: linear interpolation is exact, except across the
    # antimeridian, which the test profile does not cross.
    assert np.ptp(obs.obs_lon.values) < 10 and obs.obs_lon.values.max() < 170
    expected = (11.0 + 1e-3 * obs.obs_alt + 2e-3 * obs.obs_lat + 1e-3 * obs.obs_lon
                + 0.01 * t).values
    ax = plot.profile(ds, vol, pid)
    observed, background, reconstruction = ax.lines
    np.testing.assert_array_equal(observed.get_xdata(), obs.ne.values)
    np.testing.assert_allclose(np.log10(reconstruction.get_xdata()), expected, atol=1e-9)
    np.testing.assert_allclose(np.log10(background.get_xdata()), expected - 0.1, atol=1e-9)
    band = ax.collections[0].get_paths()[0].vertices[:, 0]
    assert np.log10(band.min()) == pytest.approx(expected.min() - 0.05, abs=1e-9)
    assert np.log10(band.max()) == pytest.approx(expected.max() + 0.05, abs=1e-9)
    assert ax.get_xscale() == "log"


def test_profile_wraps_across_the_antimeridian():
    lon = np.arange(-180.0, 180.0, 15.0)
    vol = analytic_volume([START], np.array([200.0, 400.0]), np.array([-10.0, 10.0]), lon)
    at = plot._volume_at(vol, observations([172.0, -175.0]))
    # Between 165 and 180 (= -180): weights 8/15 and 7/15 of the neighbours.
    at_165, at_m180 = 11.0 + 0.3 + 0.165, 11.0 + 0.3 - 0.18
    assert at["log10_ne"][0] == pytest.approx(at_165 + (7 / 15) * (at_m180 - at_165))
    assert at["log10_ne"][1] == pytest.approx(at_m180 + (5 / 15) * 0.015)


def test_profile_reads_a_0_to_360_grid_on_both_sides_of_the_antimeridian():
    lon = np.arange(0.0, 360.0, 10.0)
    vol = analytic_volume([START], np.array([200.0, 400.0]), np.array([-10.0, 10.0]), lon)
    at = plot._volume_at(vol, observations([-175.0, 185.0, 355.0, -5.0, 20.0]))
    base = 11.0 + 0.3
    # -175 is 185 east, between the columns of 180 and 190; 355 lies between 350 and 0.
    expected = base + np.array([0.185, 0.185, 0.35 / 2, 0.35 / 2, 0.02])
    np.testing.assert_allclose(at["log10_ne"], expected, atol=1e-12)
    np.testing.assert_allclose(at["log10_bg"], expected - 0.1, atol=1e-12)
    np.testing.assert_allclose(at["sigma"], 0.05)


def test_profile_on_a_regional_grid_across_the_antimeridian():
    # As ionofield.grid gives it: folded and sorted, the region split at -180.
    lon = np.array([-180.0, -170.0, 160.0, 170.0])
    vol = analytic_volume([START], np.array([200.0, 400.0]), np.array([-10.0, 10.0]), lon)
    at = plot._volume_at(vol, observations([165.0, 175.0, -175.0, 185.0, 0.0, 155.0, -165.0]))
    base = 11.0 + 0.3
    inside = base + np.array([0.165, (0.17 - 0.18) / 2, -0.175, -0.175])
    np.testing.assert_allclose(at["log10_ne"][:4], inside, atol=1e-12)
    # East of -170, west of 160: outside the region, not held at its edge.
    assert np.isnan(at["log10_ne"][4:]).all() and np.isnan(at["sigma"][4:]).all()
    with pytest.raises(CoverageError, match="does not reach"):
        plot._volume_at(vol, observations([0.0, 90.0]))


def test_profile_points_beyond_the_grid_are_left_out():
    vol = analytic_volume([START, START + HOUR], np.array([200.0, 400.0]),
                          np.array([-10.0, 10.0]), np.arange(-180.0, 180.0, 30.0))
    at = plot._volume_at(vol, observations([0.0] * 4, lat=[0.0, 0.0, 0.0, 20.0],
                                           alt=[300.0, 450.0, 150.0, 300.0]))
    assert at["log10_ne"][0] == pytest.approx(11.0 + 0.3)
    assert np.isnan(at["log10_ne"][1:]).all()
    with pytest.raises(CoverageError, match="more than an hour"):
        plot._volume_at(vol.isel(time=[0]), observations([0.0], time=START + 2 * HOUR))


def test_profile_errors(tiny_campaign, volume):
    with pytest.raises(ConfigError, match="no observation"):
        plot.profile(tiny_campaign, volume, "no-such-profile")
    pid, time = first_profile(tiny_campaign)
    far = analytic_volume([START + 10 * HOUR, START + 11 * HOUR], np.array([200.0, 400.0]),
                          np.array([-90.0, 90.0]), np.array([-180.0, 0.0]))
    with pytest.raises(CoverageError, match="do not cover"):
        plot.profile(tiny_campaign, far, pid)
    regional = analytic_volume([time.floor("h"), time.floor("h") + pd.Timedelta("1h")],
                               np.array([900.0, 1000.0]), np.array([-90.0, 90.0]),
                               np.array([-180.0, 0.0]))
    with pytest.raises(CoverageError, match="does not reach"):
        plot.profile(tiny_campaign, regional, pid)


def test_volume_map_levels_and_scales(volume):
    ax = plot.volume_map(volume, alt=310.0, time=volume.time.values[1])
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert isinstance(mesh.norm, mcolors.LogNorm)
    assert "300 km" in ax.get_title()  # the nearest level of 100, 150, ..., 700
    # The global grid is closed across the antimeridian: the map reaches +180.
    assert mesh.get_coordinates()[0, :, 0].max() >= 180.0
    sigma = plot.volume_map(volume, alt=300.0, variable="ne_log10_sigma")
    sigma_mesh = [c for c in sigma.collections if isinstance(c, QuadMesh)][0]
    assert not isinstance(sigma_mesh.norm, mcolors.LogNorm)
    assert "dex" in labels(sigma.figure)
    with pytest.raises(ConfigError, match="not in the volume"):
        plot.volume_map(volume, alt=300.0, variable="te")
    with pytest.raises(CoverageError):
        plot.volume_section(volume, lon=0.0, time=START + 48 * HOUR)


def test_maps_of_a_0_to_360_grid_span_the_globe():
    lon = np.arange(0.0, 360.0, 30.0)
    vol = analytic_volume([START], np.array([300.0]), np.array([-30.0, 30.0]), lon)
    ax = plot.volume_map(vol, alt=300.0)
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    edges = mesh.get_coordinates()[0, :, 0]
    assert edges.min() <= -180.0 and edges.max() >= 180.0
    # Columns on their meridians in [-180, 180), closed at both ends: 150 | 180 ... 150 | 180.
    drawn = mesh.get_array().reshape(2, -1)
    order = np.r_[5, 6:12, 0:6, 6]
    np.testing.assert_allclose(drawn, vol.ne.isel(time=0, alt=0).values[:, order])


def test_peak_maps_show_the_layer_peak():
    alt = np.arange(150.0, 601.0, 10.0)
    lat, lon = np.arange(-80.0, 80.1, 20.0), np.arange(-180.0, 180.0, 45.0)
    vol = analytic_volume([START], alt, lat, lon, hm=lambda y, x: 300.0 + 0.5 * y)
    fig = plot.peak_maps(vol)
    nmf2, hmf2 = [ax for ax in fig.axes if ax.get_xlabel()]
    assert "NmF2" in nmf2.get_title() and "hmF2" in hmf2.get_title()
    mesh = [c for c in hmf2.collections if isinstance(c, QuadMesh)][0]
    heights = mesh.get_array().reshape(lat.size, -1)
    # The global map is closed across the antimeridian: 8 meridians + 2 wrapped.
    assert heights.shape == (lat.size, lon.size + 2)
    np.testing.assert_allclose(heights, np.broadcast_to((300.0 + 0.5 * lat)[:, None],
                                                        heights.shape), atol=1.0)
    text = labels(fig)
    assert "m$^{-3}$" in text and "hmF2 (km)" in text
    assert_drawn(fig)


def test_history_panels(model):
    fig = plot.history(model)
    losses, scores = fig.axes
    table = model.history
    assert len(losses.lines) == 5  # data, chapman, tec_direction, tec_anchor, val_loss
    np.testing.assert_array_equal(scores.lines[0].get_ydata(), table.val_rmse.values)
    np.testing.assert_array_equal(scores.lines[1].get_ydata(), table.val_rmse_background.values)
    assert "dex" in scores.get_ylabel() and losses.get_xlabel() == "step"
    assert_drawn(fig)
    assert plot.history(table).axes[0].get_yscale() == losses.get_yscale()


@pytest.mark.parametrize(("data", "scale"), [(0.5, "log"), (-1.5, "symlog")],
                         ids=["positive-loss", "negative-nll"])
def test_history_scale_follows_the_sign(data, scale):
    table = pd.DataFrame({"step": [200, 400, 600], "data": [data, data / 2, data / 4],
                          "val_loss": [1.0, 0.8, 0.7], "val_rmse": [0.2, 0.1, 0.08],
                          "val_rmse_background": [0.3] * 3}).set_index("step")
    fig, pair = plt.subplots(1, 2)
    assert plot.history(table, ax=pair) is fig
    assert pair[0].get_yscale() == scale
    with pytest.raises(ConfigError, match="no training history"):
        plot.history(table.iloc[:0])


def test_history_of_an_unfitted_model_is_an_error():
    with pytest.raises(ConfigError, match="no training history"):
        plot.history(iof.RSTMRF())


def test_plots_read_only_public_results():
    tree = ast.parse(inspect.getsource(plot))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not imported & {"ionofield.training", "ionofield.reconstruct"}
    assert "tec_direction" not in plot.__all__ and "direction_map" in plot.__all__


def test_accessor_namespace_forwards(tiny_campaign, volume):
    ds = tiny_campaign.copy()
    pid, _ = first_profile(ds)
    pairs = [
        (ds.rstmrf.plot.coverage(), plot.coverage(ds)),
        (ds.rstmrf.plot.drivers(), plot.drivers(ds)),
        (ds.rstmrf.plot.direction_map(time=ds.time.values[1]),
         plot.direction_map(ds, time=ds.time.values[1])),
        (ds.rstmrf.plot.profile(volume, pid), plot.profile(ds, volume, pid)),
    ]
    for via_accessor, direct in pairs:
        assert n_artists(via_accessor.figure) == n_artists(direct.figure)
        assert via_accessor.get_title() == direct.get_title()

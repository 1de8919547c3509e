from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

import ionofield as iof
from ionofield.background import BackgroundField
from ionofield.errors import ConfigError, CoverageError
from ionofield.iri import iri_cube
from ionofield.osse import (
    WORLDS,
    Perturbations,
    Structures,
    SyntheticWorld,
    background_rmse,
    hold_out_profiles,
    sample_ro_profiles,
    storm_world,
    synthetic_world,
    tec_maps,
)
from ionofield.osse.sampling import IONEX_LAT, IONEX_LON
from ionofield.osse.world import SPINUP_DAYS

START = np.datetime64("2024-05-10T00:00", "ns")
HOUR = np.timedelta64(3600 * 10**9, "ns")


def at(hours):
    """START + hours (float, any shape) to the nanosecond."""
    return START + np.round(np.asarray(hours) * 3.6e12).astype("timedelta64[ns]")


AMPLITUDES = (
    "depletion",
    "enhancement",
    "uplift_km",
    "anomaly_quiet",
    "anomaly_storm",
    "tid_amplitude",
)
NO_PERTURBATION = Perturbations(**dict.fromkeys(AMPLITUDES, 0.0))


def only(name: str) -> Perturbations:
    """Perturbations with every amplitude zero but ``name`` (at its default)."""
    return dataclasses.replace(NO_PERTURBATION, **{name: getattr(Perturbations(), name)})


def chapman(alt, nm, hm=300.0, scale=60.0):
    z = (alt - hm) / scale
    return nm * np.exp(0.5 * (1.0 - z - np.exp(-z)))


def default_nm(lat):
    return 1e12 * (0.3 + 0.7 * np.cos(np.radians(lat)) ** 2)


def chapman_background(
    *, alt_step=20.0, lat_step=10.0, lon_step=20.0, hours=24, nm_of_lat=default_nm, diurnal=0.3
):
    """A Chapman-layer background, single-valued at the poles, with a diurnal cycle."""
    time = START + HOUR * np.arange(hours + 1)
    alt = np.arange(60.0, 1000.0 + 1e-9, alt_step)
    lat = np.arange(-90.0, 90.0 + 1e-9, lat_step)
    lon = np.arange(-180.0, 180.0 - 1e-9, lon_step)
    ut = np.arange(hours + 1.0)[:, None, None]
    local = np.radians(15.0 * ut + lon[None, None, :])
    nm = nm_of_lat(lat)[None, :, None] * (
        1.0 + diurnal * np.cos(np.radians(lat))[None, :, None] ** 2 * np.cos(local - np.pi)
    )
    ne = chapman(alt[None, :, None, None], nm[:, None, :, :])
    return xr.Dataset(
        {"ne_background": (("time", "alt", "lat", "lon"), ne, {"units": "m-3"})},
        coords={"time": time, "alt": alt, "lat": lat, "lon": lon},
    )


def kp_record(kp_of_slot):
    """3-hourly Kp from SPINUP_DAYS before START for two days after; kp_of_slot(t_hours)."""
    time = START - np.timedelta64(SPINUP_DAYS, "D") + 3 * HOUR * np.arange(8 * (SPINUP_DAYS + 2))
    hours = (time - START) / HOUR
    kp = np.broadcast_to(np.asarray(kp_of_slot(hours), dtype=np.float64), hours.shape)
    return xr.Dataset({"kp": ("time", kp.copy())}, coords={"time": time})


def storm_kp(hours):
    """Quiet until 06 UT, then a G5 storm (Kp 9) for 24 h, then recovery to 4."""
    return np.select([hours < 6, hours < 30], [2.0, 9.0], 4.0)


@pytest.fixture(scope="module")
def background():
    return chapman_background()


@pytest.fixture(scope="module")
def world(background):
    return SyntheticWorld(background, kp_record(storm_kp), seed=0)


def test_lagged_kp_is_the_critically_damped_step_response(background):
    tau = 2.0
    world = SyntheticWorld(background, kp_record(lambda h: np.where(h < 6, 0.0, 9.0)))
    s = np.array([0.0, 0.5, 1.0, 3.0, 7.0, 15.0])
    got = world.lagged_kp(at(6.0 + s), tau)
    np.testing.assert_allclose(got, 9.0 * (1.0 - np.exp(-s / tau) * (1.0 + s / tau)), atol=1e-12)
    before = world.lagged_kp(at([-30.0, 0.0, 5.99]), tau)
    np.testing.assert_array_equal(before, 0.0)
    # C1 at a step: equal one-sided slopes (both zero at the step of the second lag).
    eps = 1e-4
    t = at([6.0 - eps, 6.0, 6.0 + eps])
    left, mid, right = world.lagged_kp(t, tau)
    assert abs((mid - left) / eps) < 1e-3 and abs((right - mid) / eps) < 1e-3


@pytest.mark.parametrize(
    ("perturbations", "kp"),
    [
        (NO_PERTURBATION, storm_kp),
        (dataclasses.replace(Perturbations(), anomaly_quiet=0.0), lambda h: 0.0),
    ],
    ids=["amplitudes-zero-in-storm", "kp-history-zero-and-quiet-anomaly-off"],
)
def test_truth_is_the_background_without_perturbation(background, perturbations, kp):
    world = SyntheticWorld(background, kp_record(kp), perturbations=perturbations)
    rng = np.random.default_rng(1)
    n = 500
    time = at(rng.uniform(0, 24, n))
    alt, lat, lon = rng.uniform(60, 1000, n), rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)
    expected = BackgroundField(background).log10_at(time, alt, lat, lon)
    np.testing.assert_allclose(world.log10_ne(time, alt, lat, lon), expected, rtol=0, atol=1e-12)


def test_storm_perturbs_and_lags_kp(world, background):
    field = BackgroundField(background)
    lat, lon, alt = np.linspace(-80, 80, 17)[:, None], np.linspace(-180, 160, 18), 400.0
    delta = [
        np.sqrt(np.mean((world.log10_ne(t, alt, lat, lon) - field.log10_at(t, alt, lat, lon)) ** 2))
        for t in (at(4.0), at(22.0))
    ]
    assert delta[0] < 0.1 and delta[1] > 2 * delta[0]  # quiet: the anomaly only


def constant_kp_world(background, kp, perturbations):
    return SyntheticWorld(background, kp_record(lambda h: kp), perturbations=perturbations)


KP_LEVELS = np.arange(0.0, 9.01, 1.0)


def test_depletion_deepens_with_kp(background):
    t, alt, lat, lon = at(10.0), 400.0, np.array([-60.0, 50.0, 70.0]), 30.0
    base = BackgroundField(background).log10_at(t, alt, lat, lon)
    change = np.array(
        [
            constant_kp_world(background, kp, only("depletion")).log10_ne(t, alt, lat, lon) - base
            for kp in KP_LEVELS
        ]
    )
    np.testing.assert_array_equal(change[0], 0.0)
    assert np.all(np.diff(change, axis=0) < 0)
    assert np.all(change[-1] < -0.25)


def test_daytime_enhancement_grows_with_kp(background):
    t, alt, lat, lon = at(12.0), 350.0, np.array([-5.0, 10.0]), np.array([0.0, 20.0])
    base = BackgroundField(background).log10_at(t, alt, lat, lon)
    change = np.array(
        [
            constant_kp_world(background, kp, only("enhancement")).log10_ne(t, alt, lat, lon) - base
            for kp in KP_LEVELS
        ]
    )
    assert np.all(np.diff(change, axis=0) > 0) and np.all(change[-1] > 0.1)


def test_hmf2_rises_with_kp(background):
    t, lat, lon = at(6.0), 30.0, 45.0
    alt = np.arange(150.0, 600.0, 0.5)
    hmf2 = np.array(
        [
            alt[
                np.argmax(
                    constant_kp_world(background, kp, only("uplift_km")).log10_ne(t, alt, lat, lon)
                )
            ]
            for kp in KP_LEVELS
        ]
    )
    assert hmf2[0] == pytest.approx(300.0, abs=1.0)
    assert np.all(np.diff(hmf2) >= 0) and hmf2[-1] - hmf2[0] > 30.0


@settings(max_examples=25, deadline=None)
@given(
    hours=st.floats(0.0, 24.0),
    alt=st.floats(60.0, 1000.0),
    lat=st.floats(-90.0, 90.0),
    lon=st.floats(-540.0, 540.0),
)
def test_truth_is_periodic_in_longitude(world, hours, alt, lat, lon):
    values = world.log10_ne(at(hours), alt, lat, np.array([lon, lon + 360.0, lon - 720.0]))
    np.testing.assert_allclose(values, values[0], rtol=0, atol=1e-9)


def test_truth_continuous_across_antimeridian_and_at_poles(world):
    t = at([3.3, 17.0, 21.5])[:, None, None]
    alt = np.array([120.0, 300.0, 450.0, 800.0])[:, None]
    lat = np.linspace(-85.0, 85.0, 35)
    west, east = (world.log10_ne(t, alt, lat, lon) for lon in (-180.0, 180.0))
    np.testing.assert_allclose(west, east, rtol=0, atol=1e-12)
    west, east = (world.log10_ne(t, alt, lat, lon) for lon in (-179.9999, 179.9999))
    np.testing.assert_allclose(west, east, rtol=0, atol=1e-5)
    lon = np.linspace(-180.0, 180.0, 37)
    for pole in (-90.0, 90.0):
        at_pole = world.log10_ne(t, alt, pole, lon)
        np.testing.assert_allclose(at_pole - at_pole[..., :1], 0.0, rtol=0, atol=1e-9)
        close = world.log10_ne(t, alt, pole - np.sign(pole) * 1e-5, lon)
        np.testing.assert_allclose(close, at_pole, rtol=0, atol=1e-5)


def test_world_seed_moves_the_perturbations_deterministically(background):
    points = (at(20.0), 400.0, np.linspace(-80, 80, 33)[:, None], np.linspace(-180, 170, 36))
    kp = kp_record(storm_kp)
    a, b, c = (SyntheticWorld(background, kp, seed=s).log10_ne(*points) for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.02


def test_profiles_follow_the_observation_data_model(world):
    obs = sample_ro_profiles(world, 12, levels=30, seed=3)
    assert obs.sizes == {"obs": 360}
    for name in ("ne", "ne_err"):
        assert obs[name].dtype == np.float64 and obs[name].attrs["units"] == "m-3"
    assert obs["time"].dtype == np.dtype("datetime64[ns]")
    assert set(obs.coords) == {"time", "lat", "lon", "alt", "profile", "mission"}
    assert ((obs.lon >= -180) & (obs.lon < 180)).all()
    profiles = obs.groupby("profile")
    assert len(profiles) == 12
    for _, one in profiles:
        assert np.unique(one.time).size == 1 and np.unique(one.mission).size == 1
        assert np.all(np.diff(one.alt) > 1.0)
        time = pd.Timestamp(one.time.values[0])
        assert time.second == 0 and world.start <= one.time.values[0] < world.end
        # Slanted: the tangent point moves along the profile.
        drift = np.degrees(
            np.arccos(
                np.clip(
                    np.sin(np.radians(one.lat[0])) * np.sin(np.radians(one.lat[-1]))
                    + np.cos(np.radians(one.lat[0]))
                    * np.cos(np.radians(one.lat[-1]))
                    * np.cos(np.radians(one.lon[-1] - one.lon[0])),
                    -1,
                    1,
                )
            )
        )
        assert 3.0 - 1e-6 <= drift <= 12.0 + 1e-6
        top = {"COSMIC2": (500, 530), "FY3D": (770, 800)}[str(one.mission.values[0])]
        assert 90 <= one.alt.values[0] <= 110 and top[0] <= one.alt.values[-1] <= top[1]
    cosmic = obs.where(obs.mission == "COSMIC2", drop=True)
    assert np.abs(cosmic.lat).max() <= 45.0 + 6.0


def test_same_seed_same_samples_other_seed_other_samples(world):
    a = sample_ro_profiles(world, 6, levels=20, seed=7)
    xr.testing.assert_identical(a, sample_ro_profiles(world, 6, levels=20, seed=7))
    b = sample_ro_profiles(world, 6, levels=20, seed=8)
    assert not np.array_equal(a.lat.values, b.lat.values)
    assert not np.array_equal(a.ne.values, b.ne.values)


def test_noise_is_ten_percent_at_high_density_and_floored_at_low(world):
    obs = sample_ro_profiles(world, 200, levels=60, seed=11, missions=("FY3D",))
    truth = world.ne(obs.time.values, obs.alt.values, obs.lat.values, obs.lon.values)
    ne = obs.ne.values
    high = truth > 5e11
    assert high.sum() > 1000
    assert np.std(np.log(ne[high] / truth[high])) == pytest.approx(0.1, rel=0.08)
    low = truth < 1e8
    assert low.sum() > 300
    assert np.std(ne[low]) == pytest.approx(5e9, rel=0.1)
    assert (ne <= 0).sum() > 0.1 * low.sum()
    np.testing.assert_allclose(obs.ne_err.values, np.hypot(0.1 * truth, 5e9), rtol=1e-12)


def test_retrieval_errors_are_correlated_along_profiles_and_largest_at_the_bottom(world):
    from ionofield.osse.sampling import RETRIEVAL_CORRELATION_KM, _retrieval_noise

    obs = sample_ro_profiles(world, 6, levels=20, seed=7, retrieval_errors=True)
    default = sample_ro_profiles(world, 6, levels=20, seed=7)
    for name in ("time", "lat", "lon", "alt", "profile"):  # the same profiles, other noise
        np.testing.assert_array_equal(obs[name].values, default[name].values)
    assert obs.attrs["retrieval_errors"] == 1 and default.attrs["retrieval_errors"] == 0
    # The noise on profiles of a uniform 1e12 m-3 peaking at their top, 500 km, 10 km
    # between levels, at 70 degrees (no low-latitude gain to speak of).
    n, levels = 4000, 41
    alt = np.broadcast_to(np.linspace(100.0, 500.0, levels), (n, levels))
    ne_true = np.full((n, levels), 1e12)
    ne_true[:, -1] = 1.01e12
    ne, ne_err = _retrieval_noise(ne_true, alt, np.full((n, levels), 70.0), 0.1, 0.0,
                                  np.random.default_rng(0))
    r = 0.1 * (1 + 3 * np.clip((200.0 - alt[0]) / 100.0, 0, 1)) * (1 + 0.5 * np.exp(-3.5**2))
    abel = 0.01 * 1.01e12 * np.clip((500.0 - alt[0]) / 100.0, 0, 1)
    np.testing.assert_allclose(ne_err[0], np.hypot(r * ne_true[0], abel), rtol=1e-12)
    # Above 400 km the log-normal part rules: the log error's correlation between
    # levels 50 km apart is exp(-50 km / RETRIEVAL_CORRELATION_KM).
    top = np.log(ne[:, alt[0] >= 400.0] / ne_true[:, alt[0] >= 400.0])
    corr = np.corrcoef(top[:, :-5].ravel(), top[:, 5:].ravel())[0, 1]
    assert corr == pytest.approx(np.exp(-50.0 / RETRIEVAL_CORRELATION_KM), abs=0.05)
    # The relative error at 100 km is several times that above 200 km.
    spread = np.std(ne / ne_true - 1.0, axis=0)
    assert spread[0] > 3 * spread[alt[0] >= 200.0].max()


def test_retrieval_errors_turn_the_bottom_of_some_profiles_negative(world):
    obs = sample_ro_profiles(world, 200, levels=60, seed=5, retrieval_errors=True,
                             noise_floor=0.0)
    alt, ne = obs.alt.values.reshape(200, 60), obs.ne.values.reshape(200, 60)
    truth = world.ne(obs.time.values, obs.alt.values, obs.lat.values, obs.lon.values)
    negative = ne <= 0
    assert 0 < negative.any(axis=1).mean() < 1  # some profiles, not all
    assert alt[negative].max() < 400.0  # at the bottom only (no floor noise at the top)
    # Below 200 km the relative errors are several times those of the F region.
    relative = np.abs(obs.ne.values / truth - 1.0).reshape(200, 60)
    assert np.median(relative[alt < 150]) > 3 * np.median(relative[(alt > 250) & (alt < 450)])


def test_sampling_rejects_bad_requests(world, background):
    with pytest.raises(ConfigError, match="GRACE"):
        sample_ro_profiles(world, 3, missions=("GRACE",))
    with pytest.raises(CoverageError):
        sample_ro_profiles(world, 3, start="2024-05-09", end="2024-05-10T06:00")
    late = kp_record(storm_kp).isel(time=slice(8 * SPINUP_DAYS, None))
    with pytest.raises(CoverageError, match="one day before"):
        SyntheticWorld(background, late)


def exact_chapman_tec(nm, lo=60.0, hi=1000.0, hm=300.0, scale=60.0):
    """Integral of the Chapman layer over [lo, hi] km, in TECU (exact, via erf)."""
    w = [np.exp(-(h - hm) / scale) / 2.0 for h in (lo, hi)]
    integral = np.sqrt(2 * np.pi) * np.exp(0.5) * (erf(np.sqrt(w[0])) - erf(np.sqrt(w[1])))
    return nm * scale * 1e3 * integral / 1e16


def test_tec_of_a_chapman_layer_is_its_exact_integral():
    nm_of_lat = lambda lat: 1e12 * (0.2 + 0.8 * np.cos(np.radians(lat)))  # noqa: E731
    background = chapman_background(
        alt_step=2.0, lat_step=30.0, lon_step=90.0, hours=2, nm_of_lat=nm_of_lat, diurnal=0.0
    )
    world = SyntheticWorld(background, kp_record(storm_kp), perturbations=NO_PERTURBATION)
    lat = np.array([-60.0, 0.0, 30.0, 90.0])
    tec = tec_maps(
        world,
        [START, START + 90 * np.timedelta64(1, "m")],
        lat=lat,
        lon=np.array([-180.0, 0.0, 180.0]),
    )
    assert tec.tec.dtype == np.float32 and tec.tec.attrs["units"] == "TECU"
    expected = exact_chapman_tec(nm_of_lat(lat))[None, :, None]
    np.testing.assert_allclose(tec.tec.values, np.broadcast_to(expected, tec.tec.shape), rtol=2e-3)


def test_tec_maps_default_to_the_ionex_grid(world):
    tec = tec_maps(world, at(12.0), alt_step=20.0)
    assert tec.tec.shape == (1, 71, 73)
    np.testing.assert_array_equal(tec.lat, IONEX_LAT)
    np.testing.assert_array_equal(tec.lon, IONEX_LON)
    assert np.all(np.diff(tec.lat) > 0)
    np.testing.assert_array_equal(tec.tec[..., 0], tec.tec[..., -1])
    assert 1.0 < float(tec.tec.min()) and float(tec.tec.max()) < 300.0


@pytest.mark.slow
def test_storm_world_background_rmse_and_physical_range(tmp_path_factory):
    world = storm_world(
        "2024-05-10",
        days=3,
        lat_step=15.0,
        lon_step=30.0,
        alt_step=20.0,
        cache_dir=tmp_path_factory.mktemp("iri"),
    )
    assert background_rmse(world) >= 0.25
    bg = world.background.ne_background.sel(alt=slice(150, None)).isel(time=slice(0, None, 6))
    truth = world.log10_ne(*np.ix_(bg.time.values, bg.alt.values, bg.lat.values, bg.lon.values))
    nmf2 = 10.0 ** truth.max(axis=1)
    assert np.quantile(nmf2, 0.001) > 1e10 and nmf2.max() < 1e13
    # The real Kp drives it: the storm on 11 May, not quiet 10 May morning.
    assert (
        world.lagged_kp(world.start + 8 * HOUR, 6.0)
        < 3.5
        < 6.0
        < world.lagged_kp(world.start + 30 * HOUR, 6.0)
    )


@pytest.mark.slow
def test_write_samples_is_small_readable_and_reproducible(tmp_path, monkeypatch):
    from ionofield.io.ionex import open_ionex
    from ionofield.io.ro import open_ro_profiles
    from ionofield.osse import samples, write_samples

    coarse = functools.partial(storm_world, lat_step=15.0, lon_step=30.0, alt_step=20.0)
    monkeypatch.setattr(samples, "storm_world", coarse)
    cache = tmp_path / "cache"
    first = write_samples(tmp_path / "a", n_profiles=40, n_ionprf=5, cache_dir=cache)
    second = write_samples(tmp_path / "b", n_profiles=40, n_ionprf=5, cache_dir=cache)
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in first)
    assert "syng1310.24i" in names and "README.md" in names and "ro_profiles.nc" in names
    assert sum(p.stat().st_size for p in first) < 10e6
    for path in first:
        if path.suffix in (".nc", ".md"):
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert (
                hashlib.sha256(path.read_bytes()).digest()
                == hashlib.sha256(twin.read_bytes()).digest()
            ), path.name
    tec = open_ionex(tmp_path / "a" / "syng1310.24i")
    assert tec.sizes == {"time": 25, "lat": 71, "lon": 73}
    obs = open_ro_profiles([tmp_path / "a" / "ionprf" / "*.nc", tmp_path / "a" / "ro_profiles.nc"])
    assert pd.unique(obs.profile.values).size == 40
    assert len(second) == len(first)


# -- named worlds, structures, reanalysis split -----------------------------------------

NO_STRUCTURE = Structures(sed=0.0, bubbles=0.0, ctid_amplitude=0.0)


def only_structure(name: str) -> Structures:
    """Structures with every amplitude zero but ``name`` (at its default)."""
    return dataclasses.replace(NO_STRUCTURE, **{name: getattr(Structures(), name)})


def magnetic_latitude(lat, lon):
    """Centred-dipole magnetic latitude (degrees), computed here independently."""
    pole_lat, pole_lon = np.radians(80.65), np.radians(-72.68)
    lat, lon = np.radians(lat), np.radians(lon)
    sin_mlat = np.sin(lat) * np.sin(pole_lat) + np.cos(lat) * np.cos(pole_lat) * np.cos(
        lon - pole_lon
    )
    return np.degrees(np.arcsin(sin_mlat))


#: A global 1 x 2 degree map at 400 km (full F-region ramp) and its magnetic latitude.
MAP_LAT, MAP_LON = np.arange(-89.0, 89.1, 1.0)[:, None], np.arange(-180.0, 180.0, 2.0)
MAP_MLAT = np.abs(magnetic_latitude(MAP_LAT, MAP_LON))


def structure_change(background, structures, hours, *, kp=9.0, seed=0):
    """log10 Ne of a world with ``structures`` minus the same world without, on the map."""
    kw = dict(seed=seed, perturbations=NO_PERTURBATION)
    indices = kp_record(lambda h: kp)
    plain = SyntheticWorld(background, indices, **kw)
    bent = SyntheticWorld(background, indices, structures=structures, **kw)
    return bent.log10_ne(at(hours), 400.0, MAP_LAT, MAP_LON) - plain.log10_ne(
        at(hours), 400.0, MAP_LAT, MAP_LON
    )


def local_hour(hours):
    """Mean solar local time (hours) of the map at ``hours`` after START (0 UT)."""
    return np.mod(hours + MAP_LON / 15.0, 24.0) + 0.0 * MAP_LAT


def test_world_is_its_base_when_structure_amplitudes_are_zero(background):
    rng = np.random.default_rng(4)
    n = 400
    points = (
        at(rng.uniform(0, 24, n)),
        rng.uniform(60, 1000, n),
        rng.uniform(-90, 90, n),
        rng.uniform(-180, 180, n),
    )
    indices = kp_record(storm_kp)
    none = SyntheticWorld(
        background, indices, perturbations=NO_PERTURBATION, structures=NO_STRUCTURE
    )
    expected = BackgroundField(background).log10_at(*points)
    np.testing.assert_allclose(none.log10_ne(*points), expected, rtol=0, atol=1e-12)
    storm = SyntheticWorld(background, indices).log10_ne(*points)
    zero = SyntheticWorld(background, indices, structures=NO_STRUCTURE).log10_ne(*points)
    np.testing.assert_array_equal(zero, storm)


def test_plume_lies_at_mid_latitudes_in_the_afternoon_and_grows_with_kp(background):
    sed = only_structure("sed")
    hours = 20.0  # 16 LT at -60 E, near the plume's sector (-75 E)
    change = structure_change(background, sed, hours)
    # Nothing outside 28-72 degrees magnetic latitude; next to nothing 6 h and more
    # (4 standard deviations) from the plume's local times (12-16 LT).
    assert np.all(change[(MAP_MLAT < 28.0) | (MAP_MLAT > 72.0)] == 0.0)
    lt = local_hour(hours)
    assert np.abs(change[(lt > 22.0) | (lt < 6.0)]).max() < 1e-3
    # Up to the amplitude (intensity 1 at a steady Kp 9) where placed: base at 16 LT.
    assert change.max() == pytest.approx(Structures().sed, rel=0.05)
    peak = np.unravel_index(np.argmax(change), change.shape)
    assert 30.0 <= MAP_MLAT[peak] <= 66.0 and 11.5 <= lt[peak] <= 16.5
    assert np.sqrt(np.mean(change**2)) > 0.02
    quieter = structure_change(background, sed, hours, kp=4.5)
    assert quieter.max() == pytest.approx(0.25 * change.max(), rel=0.05)  # (4.5 / 9)**2


@pytest.mark.parametrize("hours", [2.0, 14.0], ids=["02UT", "14UT"])
def test_plasma_depletions_after_sunset_near_the_magnetic_equator(background, hours):
    change = structure_change(background, only_structure("bubbles"), hours, kp=0.0)
    lt = local_hour(hours)
    assert np.all(change <= 0.0)
    assert np.all(change[(MAP_MLAT > 20.0) | ((lt > 3.0) & (lt < 19.0))] == 0.0)
    window = (MAP_MLAT < 10.0) & ((lt > 20.0) | (lt < 1.0))
    # Full depth at a band's centre; the 2-degree map passes within 1 degree of one
    # (0.77 of the depth for 24 bands of ((1 + cos) / 2)**6).
    depth = Structures().bubbles
    assert -depth - 1e-12 <= change[window].min() <= -0.75 * depth
    # Bands, not a sheet: a fair share of the evening equator keeps (nearly) its density.
    assert np.mean(change[window] > -0.05) > 0.3


def test_concentric_disturbances_vanish_beyond_their_radius(background):
    from ionofield.osse.world import _seeded_structures

    s = only_structure("ctid_amplitude")
    change = structure_change(background, s, 7.0, kp=0.0, seed=3)
    _, sources = _seeded_structures(3, s.ctid_sources)
    lat, lon = np.radians(MAP_LAT), np.radians(MAP_LON)
    distance = np.min(
        [
            6371.0
            * np.arccos(
                np.clip(np.sin(lat) * np.sin(a) + np.cos(lat) * np.cos(a) * np.cos(lon - b), -1, 1)
            )
            for a, b, _ in sources
        ],
        axis=0,
    )
    assert np.all(change[distance > s.ctid_radius_km] == 0.0)
    near = (distance > 300.0) & (distance < 0.5 * s.ctid_radius_km)
    assert np.abs(change[near]).max() == pytest.approx(s.ctid_amplitude, rel=0.1)
    assert np.mean(change[near] > 0) == pytest.approx(0.5, abs=0.15)  # waves, both signs


def test_structures_are_deterministic_by_seed(background):
    a, b, c = (structure_change(background, Structures(), 21.0, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def test_structured_truth_is_continuous_across_antimeridian_and_at_poles(background):
    world = SyntheticWorld(background, kp_record(storm_kp), structures=Structures())
    t = at([1.0, 13.0, 22.0])[:, None, None]
    alt = np.array([150.0, 400.0])[:, None]
    lat = np.linspace(-85.0, 85.0, 69)
    west, east = (world.log10_ne(t, alt, lat, lon) for lon in (-180.0, 180.0))
    np.testing.assert_allclose(west, east, rtol=0, atol=1e-12)
    lon = np.linspace(-180.0, 180.0, 37)
    for pole in (-90.0, 90.0):
        at_pole = world.log10_ne(t, alt, pole, lon)
        np.testing.assert_allclose(at_pole - at_pole[..., :1], 0.0, rtol=0, atol=1e-9)


def test_held_out_profiles_are_whole_a_tenth_and_carry_the_truth(world):
    obs = sample_ro_profiles(world, 60, levels=20, seed=5)
    obs = obs.where(obs.ne > 0, drop=True)
    hours = START + HOUR * np.arange(25)
    tec = tec_maps(
        world,
        hours,
        lat=np.arange(-80.0, 81.0, 40.0),
        lon=np.arange(-180.0, 180.1, 90.0),
        alt_step=40.0,
    )
    ds = iof.campaign(obs=obs, tec=tec, period=(hours[0], hours[-1]))
    fit, held = hold_out_profiles(ds, world, 0.1, seed=2, alt_range=(150.0, 600.0))
    fitted, kept = set(fit.obs_profile.values), set(held.obs_profile.values)
    assert len(kept) == 6 and not fitted & kept
    assert fitted | kept == set(ds.obs_profile.values)
    # Whole profiles: every point of a held-out profile within the band is held out.
    whole = ds.isel(obs=np.flatnonzero(np.isin(ds.obs_profile.values, list(kept))))
    band = (whole.obs_alt >= 150.0) & (whole.obs_alt <= 600.0)
    assert (
        held.sizes["obs"] == int(band.sum())
        and fit.sizes["obs"] + whole.sizes["obs"] == (ds.sizes["obs"])
    )
    points = [held[f"obs_{n}"].values for n in ("time", "alt", "lat", "lon")]
    np.testing.assert_array_equal(held.ne.values, world.ne(*points))
    assert "ne_err" not in held
    again = hold_out_profiles(ds, world, 0.1, seed=2)[1]
    other = hold_out_profiles(ds, world, 0.1, seed=3)[1]
    assert set(again.obs_profile.values) == kept != set(other.obs_profile.values)


def test_other_iri_base_is_not_the_background(tmp_path):
    times = np.array([np.datetime64("2024-05-11T12:00", "ns")])
    axes = (
        times,
        np.arange(100.0, 801.0, 25.0),
        np.arange(-75.0, 76.0, 15.0),
        np.arange(-180.0, 180.0, 30.0),
    )
    model = iri_cube(*axes, f107=170.0, cache_dir=tmp_path)
    other = iri_cube(*axes, f107=170.0, cache_dir=tmp_path, fof2_model="CCIR",
                     hmf2_model="AMTB2013")
    assert len(list(tmp_path.glob("iri_*.nc"))) == 2  # the coefficients are in the cache key
    assert (other.attrs["iri_fof2_model"], other.attrs["iri_hmf2_model"]) == ("CCIR", "AMTB2013")
    band = dict(alt=slice(150.0, 600.0))
    diff = np.log10(other.ne_background.sel(band)) - np.log10(model.ne_background.sel(band))
    assert 0.1 < float(np.sqrt((diff**2).mean())) < 0.6
    peak = other.ne_background.idxmax("alt") - model.ne_background.idxmax("alt")
    assert float(np.abs(peak).max()) >= 25.0
    with pytest.raises(ConfigError, match="CCIR"):
        iri_cube(*axes, f107=170.0, cache_dir=tmp_path, fof2_model="IRI2020")


def test_named_worlds_are_known_and_others_rejected():
    assert {"storm", "other_iri", "structured"} <= set(WORLDS)
    assert WORLDS["storm"].structures is None and WORLDS["structured"].structures is not None
    assert (WORLDS["other_iri"].fof2_model, WORLDS["other_iri"].hmf2_model) != ("URSI", "SHU2015")
    with pytest.raises(ConfigError, match="other_iri"):
        synthetic_world("nowhere")

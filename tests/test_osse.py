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

from ionofield.background import BackgroundField
from ionofield.errors import ConfigError, CoverageError
from ionofield.osse import (
    Perturbations,
    SyntheticWorld,
    background_rmse,
    sample_ro_profiles,
    storm_world,
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

"""The observation errors of RO profiles: sigma from ne_err, the error model, its sources."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ionofield.background import BackgroundField
from ionofield.ro_errors import (
    MAX_LOG10_SIGMA,
    TABLE_HMF2_KM,
    background_hmf2,
    log10_sigma_from_ne_err,
    observation_log10_sigma,
    ro_relative_error,
)
from tests.conftest import START

REALDATA = os.environ.get("IONOFIELD_REALDATA") or None


def test_sigma_from_ne_err_is_the_relative_error_over_ln10_capped():
    ne = np.array([1e11, 2e10, 1e12, 0.0, -3e9, 1e11, 1e9])
    ne_err = np.array([1e10, 1e9, 5e10, 1e9, 1e9, np.nan, 1e11])
    got = log10_sigma_from_ne_err(ne, ne_err)
    expected = [0.1, 0.05, 0.05]
    np.testing.assert_allclose(got[:3], np.array(expected) / np.log(10.0), rtol=1e-12)
    # ne <= 0 and an error of 100 times the density: capped; unknown stays unknown.
    assert got[3] == got[4] == got[6] == MAX_LOG10_SIGMA
    assert np.isnan(got[5])


def test_error_model_grows_below_the_peak_at_night_and_at_low_latitudes():
    depth = np.arange(-300.0, 301.0, 10.0)  # altitude above hmF2
    for lat in (0.0, 20.0, 45.0, 70.0):
        for local_time in (0.0, 6.0, 12.0, 18.0):
            r = ro_relative_error(depth, lat, local_time)
            assert np.all(np.diff(r) < 0)  # larger the deeper below the peak
    below, above = ro_relative_error(np.array([-150.0, 150.0]), 45.0, 12.0)
    assert below > 3 * above
    # The bottomside by night beats the bottomside by day; at and above the peak they agree.
    night, day = ro_relative_error(-100.0, 45.0, np.array([0.0, 12.0]))
    assert night > 3 * day
    top_night, top_day = ro_relative_error(200.0, 45.0, np.array([0.0, 12.0]))
    assert top_night == pytest.approx(top_day, rel=0.02)
    # Low latitudes (the anomaly's crests) above mid and high ones, symmetric in latitude.
    by_lat = ro_relative_error(0.0, np.array([20.0, -20.0, 0.0, 50.0, 80.0]), 12.0)
    assert by_lat[0] == by_lat[1] > by_lat[2] > by_lat[3] > by_lat[4] * 0.999


def test_background_hmf2_is_the_chapman_peak(chapman_background):
    field = BackgroundField(chapman_background)
    n = 50
    rng = np.random.default_rng(0)
    time = START + rng.integers(0, 12 * 60, n) * np.timedelta64(1, "m")
    hm = background_hmf2(field, time, rng.uniform(-80, 80, n), rng.uniform(-180, 180, n))
    np.testing.assert_allclose(hm, 300.0, atol=3.0)  # the background's layer peaks at 300 km


@pytest.mark.parametrize("source", ["auto", "model", "none"])
def test_observation_sigma_takes_ne_err_where_known_and_the_model_elsewhere(
    chapman_background, source
):
    field = BackgroundField(chapman_background)
    alt = np.array([150.0, 300.0, 450.0, 200.0])
    lat, lon = np.array([10.0, 40.0, -60.0, 0.0]), np.array([0.0, 90.0, -150.0, 15.0])
    time = np.full(4, START + np.timedelta64(6, "h"))
    background = field.log10_at(time, alt, lat, lon)
    ne_err = np.array([2e10, np.nan, 1e10, np.nan])
    got = observation_log10_sigma(field, time, alt, lat, lon, background, ne_err, source)
    assert got.dtype == np.float32
    local_time = 6.0 + lon / 15.0
    above = alt - background_hmf2(field, time, lat, lon)  # about 300 km: tested above
    model = np.minimum(ro_relative_error(above, lat, local_time) / np.log(10.0), MAX_LOG10_SIGMA)
    relative = ne_err / 10.0**background  # to the background's density, not the observed
    expected = {"auto": np.where(np.isnan(ne_err), model,
                                 np.minimum(relative / np.log(10.0), MAX_LOG10_SIGMA)),
                "model": model, "none": np.zeros(4)}[source]
    np.testing.assert_allclose(got, expected, rtol=2e-3)


def test_the_sigma_of_ne_err_does_not_depend_on_the_noise_draw(chapman_background):
    """Relative to the observed density, the draws above the truth would weigh more than
    those below it, and a weighted mean of log10 Ne would lean upward; relative to the
    background, every draw of a point weighs alike and the weighted mean is the mean."""
    field = BackgroundField(chapman_background)
    rng = np.random.default_rng(1)
    n = 20000
    time = np.full(n, START + np.timedelta64(6, "h"))
    alt, lat, lon = np.full(n, 180.0), np.full(n, 20.0), np.full(n, 30.0)
    background = field.log10_at(time, alt, lat, lon)
    truth = 10.0 ** background  # a truth equal to the background, to isolate the noise
    ne_err = 0.3 * truth
    observed = truth + ne_err * rng.standard_normal(n)
    kept = observed > 0
    sigma = observation_log10_sigma(field, time, alt, lat, lon, background, ne_err, "auto")
    assert np.ptp(sigma) == 0  # one weight for every draw
    weight = 1.0 / sigma[kept].astype(np.float64) ** 2
    log_obs = np.log10(observed[kept])
    ours = np.sum(weight * log_obs) / np.sum(weight)
    by_observed = log10_sigma_from_ne_err(observed[kept], ne_err[kept])
    leaning = np.sum(log_obs / by_observed**2) / np.sum(1.0 / by_observed**2)
    assert ours == pytest.approx(np.mean(log_obs), abs=1e-12)
    assert leaning - background[0] > ours - background[0] + 0.05  # the upward lean


def test_points_carry_their_observation_sigma(tiny_campaign, chapman_background):
    from ionofield.observations import ObservationStore

    field = BackgroundField(chapman_background)
    with_err = tiny_campaign.assign(ne_err=0.2 * tiny_campaign.ne)
    rows = {}
    for source, ds in (("auto", with_err), ("model", with_err), ("none", with_err),
                       ("auto-without-ne_err", tiny_campaign)):
        store = ObservationStore.from_campaign(ds, field, source.split("-")[0])
        rows[source] = store.rows(np.arange(len(store)))
        store.close()
    # 20 % of the observed density, relative to the background's there
    relative = 0.2 * 10.0 ** (rows["none"]["target"].astype(np.float64)
                              - rows["none"]["background"])
    np.testing.assert_allclose(rows["auto"]["obs_sigma"],
                               np.minimum(relative / np.log(10.0), MAX_LOG10_SIGMA), rtol=1e-5)
    assert np.all(rows["none"]["obs_sigma"] == 0)
    np.testing.assert_array_equal(rows["model"]["obs_sigma"],
                                  rows["auto-without-ne_err"]["obs_sigma"])
    assert rows["model"]["obs_sigma"].min() > 0.01
    np.testing.assert_array_equal(rows["model"]["target"], rows["none"]["target"])


@pytest.mark.realdata
@pytest.mark.skipif(REALDATA is None, reason="set IONOFIELD_REALDATA to the real-data folder")
def test_error_model_follows_dart_cosmic_error_table():
    """Within a factor of 1.5 in the median, and of 3 in three cells of four, of f3coerr.nc.

    The table (MANIFEST.md) is a signed relative error by local time, latitude and
    altitude; its magnitude is compared, within 80 degrees of the equator (the pole
    rows hold fill values), with hmF2 at the nominal height the model was fitted with.
    """
    table = xr.open_dataset(Path(REALDATA) / "f3coerr.nc")["percent"]
    table = np.abs(table.sel(latitude=slice(-80, 80)))
    local_time, lat, alt = xr.broadcast(*(table[name] for name in table.dims))
    model = table.copy(data=ro_relative_error(alt.values - TABLE_HMF2_KM, lat.values,
                                              local_time.values))
    ratio = np.log((model / table).values)
    assert np.exp(abs(np.median(ratio))) < 1.5
    assert np.mean(np.abs(ratio) < np.log(3.0)) > 0.7
    # The shape: the bottomside (100-200 km) over the F region (300-500 km), both ways.
    bottom = table.sel(altitude=slice(100, 200)).median() / table.sel(
        altitude=slice(300, 500)).median()
    bottom_model = model.sel(altitude=slice(100, 200)).median() / model.sel(
        altitude=slice(300, 500)).median()
    assert 0.5 < float(bottom_model / bottom) < 2.0


def test_the_model_takes_hmf2_once_per_run_at_its_middle_point(chapman_background):
    """On a background whose peak rises with latitude, each run gets its middle's hmF2."""
    from tests.conftest import chapman_log10

    ne = chapman_background["ne_background"]
    hm = 250.0 + ne["lat"] + 0.0 * ne["alt"]  # 160 km at 90 S .. 340 km at 90 N
    tilted = ne.copy(data=np.broadcast_to(
        10.0 ** chapman_log10(ne["alt"], 5e11, hm).transpose("alt", "lat").values[None, :, :, None],
        ne.shape).astype(np.float32))
    field = BackgroundField(tilted)
    time = np.full(5, START + np.timedelta64(3, "h"))
    lat, lon = np.array([-30.0, 0.0, 30.0, 10.0, 50.0]), np.zeros(5)
    alt = np.full(5, 200.0)
    by_run = observation_log10_sigma(field, time, alt, lat, lon, np.full(5, 11.0), None,
                                     "model", np.array([0, 3]))
    middle = background_hmf2(field, time[[1, 4]], lat[[1, 4]], lon[[1, 4]])
    np.testing.assert_allclose(middle, [250.0, 300.0], atol=6.0)  # on a 20 km, 15 deg grid
    local_time = 3.0 + lon / 15.0
    expected = ro_relative_error(alt - np.repeat(middle, [3, 2]), lat, local_time) / np.log(10.0)
    np.testing.assert_allclose(by_run, np.minimum(expected, MAX_LOG10_SIGMA), rtol=1e-6)
    per_point = observation_log10_sigma(field, time, alt, lat, lon, np.full(5, 11.0), None,
                                        "model")
    assert per_point[0] < by_run[0]  # its own peak (220 km) is lower than its run's (250 km)

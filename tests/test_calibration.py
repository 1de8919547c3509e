"""The calibration of sigma: its analytic cases, and sigma's growth away from the data."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import ndtr

import ionofield as iof
from ionofield.calibration import (
    GAP_BINS,
    _error_likelihood,
    errors_by_gap,
    fit_variance,
    sigma_scale,
    standard_scores,
)
from ionofield.observations import POINT
from ionofield.timeutil import hours_from_data
from ionofield.training import _observation_variance
from tests.conftest import START

HOURS = np.array(["2024-05-10T03", "2024-05-10T04", "2024-05-10T05", "2024-05-10T09"],
                 dtype="datetime64[h]")


def at(*minutes: float) -> np.ndarray:
    """Times ``minutes`` after 2024-05-10T00:00."""
    return np.datetime64("2024-05-10T00:00", "ns") + (np.array(minutes) * 60e9).astype(
        "timedelta64[ns]")


def test_hours_from_data_are_0_inside_and_grow_one_per_hour_outside():
    # inside the hours with data (3:00-6:00 and 9:00-10:00), whatever the minute
    assert np.all(hours_from_data(at(180, 239.9, 300, 359, 540, 599), HOURS) == 0.0)
    # in a gap: the distance to its nearer edge (6:00 or 9:00)
    np.testing.assert_allclose(hours_from_data(at(390, 450, 480, 510), HOURS),
                               [0.5, 1.5, 1.0, 0.5])
    # after the last data hour (a forecast) and before the first (a hindcast): 1 per hour
    after = at(*(600 + 60 * np.arange(25.0)))
    np.testing.assert_allclose(hours_from_data(after, HOURS), np.arange(25.0))
    np.testing.assert_allclose(hours_from_data(at(0, 90), HOURS), [3.0, 1.5])
    assert hours_from_data(at(0, 90).reshape(2, 1), HOURS).shape == (2, 1)


@pytest.mark.parametrize(("scale2", "rate"),
                         [(1.0, 0.02), (4.0, 0.0), (0.25, 0.05), (0.0, 0.02)],
                         ids=["both", "no-growth", "steep", "no-network"])
def test_fit_variance_recovers_the_terms_of_known_errors(scale2, rate):
    """Errors of variance ``scale2 * v + rate * g + noise``: both weights come back."""
    rng = np.random.default_rng(1)
    n = 100_000
    network = rng.uniform(0.002, 0.02, n)  # the network's varying variance
    hours = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.0, 6.0, n))
    noise = np.full(n, 0.0019)  # 10 % relative noise
    error = rng.normal(0.0, np.sqrt(scale2 * network + rate * hours + noise))
    weights = fit_variance(error, np.stack([network, hours]), noise)
    assert weights[0] == pytest.approx(scale2, rel=0.05, abs=0.02)
    assert weights[1] == pytest.approx(rate, rel=0.1, abs=2e-4)


def test_the_calibration_does_not_leap_onto_the_plateau_of_tiny_variances():
    """400 validation errors of an OSSE fit (storm reanalysis, seed 1, step 1600),
    scored as noisy densities: the NLL is flat for factors below 0.1 and least near
    1.1. Started from the mean squared error over the mean variance, L-BFGS once
    leapt from there onto the plateau and stopped (a factor of 1e-11)."""
    data = np.load(Path(__file__).parent / "data" / "calibration_plateau.npz")
    error, log_var, log10_snr = data["error"], data["log_var"], data["log10_snr"]
    zero = np.zeros(error.size)
    likelihood = _error_likelihood(error, zero, log10_snr)
    network = torch.from_numpy(np.exp(log_var.astype(np.float64)))
    factors = np.exp(np.linspace(-3.0, 3.0, 601))
    best = factors[np.argmin([float(likelihood(f**2 * network)) for f in factors])]
    assert 0.5 < best < 2.0
    assert sigma_scale(error, log_var, zero, log10_snr) == pytest.approx(best, rel=0.01)
    weight = fit_variance(error, network.numpy()[np.newaxis], zero, log10_snr)[0]
    assert np.sqrt(weight) == pytest.approx(best, rel=0.01)


def test_fit_variance_recovers_the_network_term_under_additive_noise():
    """Observations of Ne with additive noise, non-positive ones dropped.

    Half the points are scored as log-normal, half as noisy densities of signal-to-noise
    0.1 to 100; the network's variance, scaled by 2.25, comes back from both, and the
    standard scores fall within 1 as often as they should.
    """
    rng = np.random.default_rng(2)
    n = 120_000
    network = rng.uniform(0.0005, 0.005, n)  # sigma to 0.1 dex: Ne's first order holds
    snr = 10.0 ** rng.uniform(-1.0, 2.0, n)  # the prediction over the noise
    noisy = np.arange(n) % 2 == 1
    true_var = 2.25 * network
    # the truth about the prediction, in log10 Ne; then the observation of it
    truth = snr * 10.0 ** rng.normal(0.0, np.sqrt(true_var))
    observed = np.where(noisy, truth + rng.standard_normal(n),
                        snr * 10.0 ** rng.normal(0.0, np.sqrt(true_var + 0.001)))
    keep = observed > 0
    error = np.log10(observed[keep] / snr[keep])
    log10_snr = np.where(noisy, np.log10(snr), np.nan)[keep]
    fixed = np.where(noisy, 0.0, 0.001)[keep]
    weights = fit_variance(error, network[np.newaxis, keep], fixed, log10_snr)
    assert weights[0] == pytest.approx(2.25, rel=0.05)
    z = standard_scores(error, weights[0] * network[keep] + fixed, log10_snr)
    # within one sigma: 68.3 %, or of a normal cut at -u (u the prediction over tau) its
    # share above -u
    u = snr[keep] / np.sqrt((snr[keep] * np.log(10.0)) ** 2 * true_var[keep] + 1.0)
    cut = np.where(np.isnan(log10_snr), np.inf, u)
    inside = (ndtr(1.0) - ndtr(-np.minimum(cut, 1.0))) / ndtr(cut)
    assert np.mean(np.abs(z) <= 1.0) == pytest.approx(np.mean(inside), abs=0.005)


def test_errors_by_gap_of_gaussian_errors_put_68_percent_within_one_sigma():
    """Errors drawn with their own sigma: every bin holds about 68.3 % within it."""
    rng = np.random.default_rng(4)
    n = 60_000
    gap = rng.uniform(0.0, 48.0, n)
    sigma = rng.uniform(0.02, 0.3, n)
    error = rng.normal(0.0, sigma)
    rows = errors_by_gap(error, error / sigma, gap)
    edges = [row["gap_hours"] for row in rows]
    assert edges == [[low, high] for low, high in zip(GAP_BINS[:-1], GAP_BINS[1:], strict=True)]
    assert sum(row["count"] for row in rows) == n
    for row, (low, high) in zip(rows, edges, strict=True):
        members = (gap >= low) & (gap < high)
        assert row["count"] == members.sum()
        p = 0.6827
        assert abs(row["inside_1sigma"] - p) < 4 * np.sqrt(p * (1 - p) / row["count"])
        # the root mean square error is that of the bin's sigmas
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean(sigma[members] ** 2)), rel=0.08)


def test_errors_by_gap_bins_are_closed_below_and_leave_empty_bins_out():
    gap = np.array([0.0, 0.999, 1.0, 2.5, 3.0, 6.0, 24.0, 500.0])
    error = np.array([0.1, 0.3, 0.1, 0.1, 0.3, 0.1, 0.3, 0.1])
    rows = errors_by_gap(error, error / 0.2, gap)
    by_bin = {tuple(row["gap_hours"]): (row["count"], row["inside_1sigma"]) for row in rows}
    assert by_bin == {(0.0, 1.0): (2, 0.5), (1.0, 3.0): (2, 1.0), (3.0, 6.0): (1, 0.0),
                      (6.0, 12.0): (1, 1.0), (24.0, np.inf): (2, 0.5)}  # none in 12-24 h
    assert rows[0]["rmse"] == pytest.approx(np.sqrt((0.01 + 0.09) / 2))
    # bins of one's own: the gaps outside them are left out
    rows = errors_by_gap(error, error / 0.2, gap, bins=(1.0, 6.0))
    assert [(row["gap_hours"], row["count"]) for row in rows] == [([1.0, 6.0], 3)]


def test_calibration_takes_the_observations_own_variance_unless_told_not_to():
    points = np.zeros(3, dtype=POINT)
    points["obs_sigma"] = [0.05, 0.1, 1.0]
    points["log10_noise"] = [np.nan, np.nan, 9.0]
    for option in ("auto", "model"):
        config = iof.FitConfig(observation_errors=option, noise_likelihood="log")
        np.testing.assert_allclose(_observation_variance(config, points), [0.0025, 0.01, 1.0],
                                   rtol=1e-6)
        # a point whose noise the likelihood takes in Ne has none in log10 Ne
        config = iof.FitConfig(observation_errors=option)
        np.testing.assert_allclose(_observation_variance(config, points), [0.0025, 0.01, 0.0],
                                   rtol=1e-6)
    none = iof.FitConfig(observation_errors="none")
    assert np.all(_observation_variance(none, points) == 0.0)


def sigma2(campaign, model, background, times) -> np.ndarray:
    grid = iof.grid(time=times, alt=np.arange(200.0, 501.0, 100.0),
                    lat=np.arange(-60.0, 61.0, 60.0), lon=np.arange(-180.0, 180.0, 90.0))
    vol = iof.reconstruct(campaign, grid, model=model, background=background).compute()
    return vol.ne_log10_sigma.values.astype(np.float64) ** 2


def test_reconstruction_sigma_grows_with_the_hours_from_the_data(
    tiny_campaign, model, chapman_background
):
    """sigma**2 gains rate * sqrt(hours from the data): 0 inside the data hours."""
    data_hours = np.arange(START, START + np.timedelta64(5, "h"), np.timedelta64(1, "h"))
    times = pd.date_range(START, periods=7, freq="2h").values  # 0:00 ... 12:00
    rate = 0.004
    grown, flat = copy.deepcopy(model), copy.deepcopy(model)
    for m, r in ((grown, rate), (flat, 0.0)):
        m.set_data_hours(data_hours)
        m.gap_variance_rate.fill_(r)
    extra = (sigma2(tiny_campaign, grown, chapman_background, times)
             - sigma2(tiny_campaign, flat, chapman_background, times))
    hours = np.maximum((times - (START + np.timedelta64(5, "h"))) / np.timedelta64(1, "h"), 0)
    assert hours.tolist() == [0, 0, 0, 1, 3, 5, 7]
    expected = np.broadcast_to((rate * np.sqrt(hours))[:, None, None, None], extra.shape)
    np.testing.assert_allclose(extra, expected, atol=1e-6)


def test_data_hours_and_growth_survive_save_and_load(model, tmp_path):
    kept = copy.deepcopy(model)
    hours = np.array(["2024-05-10T01", "2024-05-10T00", "2024-05-10T02", "2024-05-10T07",
                      "2024-05-10T01"], dtype="datetime64[h]")
    kept.set_data_hours(hours)
    assert kept.info["data_hours"] == [["2024-05-10T00", "2024-05-10T02"],
                                       ["2024-05-10T07", "2024-05-10T07"]]
    kept.gap_variance_rate.fill_(0.003)
    kept.save(tmp_path / "m.pt")
    loaded = iof.load_model(tmp_path / "m.pt")
    assert np.array_equal(loaded.data_hours, np.unique(hours))
    times = at(30, 200, 720)  # inside, 0.33 h and 4 h after the hours with data
    np.testing.assert_allclose(loaded.gap_variance(times),
                               0.003 * np.sqrt([0, 20 / 60, 4]), rtol=1e-6)
    np.testing.assert_array_equal(loaded.gap_variance(times), kept.gap_variance(times))
    np.testing.assert_allclose(loaded.gap_hours(times), [0, 20 / 60, 4])
    np.testing.assert_array_equal(loaded.gap_growth(times), np.sqrt(loaded.gap_hours(times)))


def test_model_files_without_the_growth_load_with_none(model, tmp_path):
    """Files written before the growth existed: no rate, no data hours; sigma as before."""
    kept = copy.deepcopy(model)
    kept.set_data_hours(np.array(["2024-05-10T00"], dtype="datetime64[h]"))
    kept.gap_variance_rate.fill_(0.01)
    kept.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["state_dict"]["gap_variance_rate"], payload["info"]["data_hours"]
    payload.pop("checksum")
    payload["format"] = "ionofield-rstmrf-model/1"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.warns(iof.errors.IonofieldWarning, match="no checksum"):
        old = iof.load_model(tmp_path / "old.pt")
    assert float(old.gap_variance_rate) == 0.0 and old.data_hours.size == 0
    assert np.all(old.gap_variance(at(0, 600, 6000)) == 0.0)
    assert np.all(old.gap_hours(at(0, 600, 6000)) == 0.0)

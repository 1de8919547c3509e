from __future__ import annotations

import importlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

import ionofield as iof
from ionofield.background import PROFILE_STEP_KM, BackgroundField
from ionofield.drivers import HourlyDrivers
from ionofield.errors import CheckpointError, ConfigError, IonofieldWarning, ManyProblemsError
from ionofield.features import temporal_features
from ionofield.nn.losses import gaussian_nll
from ionofield.nn.model import spatial_features
from ionofield.nn.recurrent import sample_direction
from ionofield.observations import ObservationStore, ProfileRuns
from ionofield.prediction import predict_residual
from ionofield.sampling import ProfileSampler, split_tail
from ionofield.sphere import Cells
from ionofield.timeutil import day_of_year, hours_from_data
from ionofield.training import (
    WeightAverage,
    _Trainer,
    learning_rate,
    split_by_period,
)
from tests.conftest import COARSE_IRI, TINY


@pytest.fixture(scope="module")
def fitted(tiny_campaign, chapman_background):
    return iof.fit(tiny_campaign, background=chapman_background, max_steps=200,
                   calibration_fraction=0.1, **TINY)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_beats_background(fitted):
    table = fitted.history
    best = table["val_loss"].idxmin()
    assert table.loc[best, "val_rmse"] < 0.5 * table.loc[best, "val_rmse_background"]
    assert fitted.info["val_rmse"] == pytest.approx(table.loc[best, "val_rmse"])
    assert {"data", "chapman", "tec_direction", "tec_anchor"} <= set(table.columns)
    assert not fitted.training


def test_the_profile_shift_finds_the_peaks_rise(tiny_campaign, chapman_background):
    """The tiny world's peak is 40 km above the background's: a fit with the profile
    shift finds that rise, and at the same budget fits far better than one without."""
    options = dict(background=chapman_background, max_steps=80, seed=0, **TINY)
    shifted = iof.fit(tiny_campaign, profile_shift=True, **options)
    plain = iof.fit(tiny_campaign, profile_shift=False, **options)
    assert shifted.info["val_rmse"] < 0.6 * plain.info["val_rmse"]
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    _, _, rise = predict_residual(shifted, drivers, tiny_campaign.time.values[2:11:4],
                                  np.arange(200.0, 451.0, 50.0), np.arange(-60.0, 61.0, 30.0),
                                  np.arange(-180.0, 180.0, 60.0))
    assert np.median(rise) == pytest.approx(40.0, abs=8.0)
    assert predict_residual(plain, drivers, tiny_campaign.time.values[:1], np.array([300.0]),
                            np.array([0.0]), np.array([0.0]))[2] is None


def test_the_fits_shift_gradient_is_the_raised_backgrounds_change_with_the_shift(
    tiny_campaign, chapman_background
):
    """The term a fit adds to the raised background (BackgroundField.raised, the
    reconstruction's value) is zero; its derivative in the shift is the raised value's
    change with the shift (central differences of the slope's step), and zero where the
    lowered altitude is held at the field's bottom (80 km)."""
    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(tiny_campaign, bg_field)
    trainer = _Trainer(iof.RSTMRF(iof.FitConfig(basis_dim=8, siren_hidden=16, siren_layers=1)),
                       data, HourlyDrivers.from_campaign(tiny_campaign), bg_field)
    points = data.rows(np.arange(0, len(data), 7))
    coords = points["coords"].astype(np.float64)
    coords[-1, 2] = 150.0  # raised by 90 km: 60 km, below the field
    rise = np.linspace(-60.0, 60.0, len(points))
    rise[-1] = 90.0
    shift = torch.tensor(rise, dtype=torch.float32, requires_grad=True)
    value = trainer.shift_gradient(points["time"], coords, shift, rise)
    (gradient,) = torch.autograd.grad(value.sum(), shift)
    lat, lon, alt = coords[:, 0], coords[:, 1], coords[:, 2]
    assert torch.equal(value.detach(), torch.zeros(len(points)))
    step = PROFILE_STEP_KM
    change = (bg_field.raised(points["time"], alt, lat, lon, rise + step)
              - bg_field.raised(points["time"], alt, lat, lon, rise - step)) / (2 * step)
    np.testing.assert_allclose(gradient.numpy()[:-1], change[:-1], rtol=1e-4, atol=1e-7)
    assert gradient[-1] == 0.0 and np.abs(gradient.numpy()[:-1]).min() > 0.0


def test_fit_is_deterministic_under_a_seed(tiny_campaign, chapman_background):
    a = iof.fit(tiny_campaign, background=chapman_background, max_steps=16, seed=3, **TINY)
    b = iof.fit(tiny_campaign, background=chapman_background, max_steps=16, seed=3, **TINY)
    c = iof.fit(tiny_campaign, background=chapman_background, max_steps=16, seed=4, **TINY)
    assert same_weights(a, b)
    assert not same_weights(a, c)


def test_resume_matches_an_uninterrupted_fit(
    tiny_campaign, chapman_background, tmp_path, monkeypatch
):
    options = dict(background=chapman_background, seed=5, checkpoint_every=1, max_steps=32, **TINY)
    whole = iof.fit(tiny_campaign, **options)
    ckpt = tmp_path / "train.ckpt"
    evaluate = _Trainer.evaluate
    calls = []

    def interrupted(self, idx):  # Ctrl-C in the third validation
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(self, idx)

    monkeypatch.setattr(_Trainer, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        iof.fit(tiny_campaign, checkpoint=ckpt, **options)
    monkeypatch.setattr(_Trainer, "evaluate", evaluate)
    assert torch.load(ckpt, weights_only=True)["step"] == 16
    resumed = iof.fit(tiny_campaign, resume=ckpt, **options)
    assert same_weights(whole, resumed)
    assert len(resumed.history) == 4


def test_resume_refuses_other_options(tiny_campaign, chapman_background, tmp_path):
    ckpt = tmp_path / "train.ckpt"
    iof.fit(tiny_campaign, background=chapman_background, max_steps=8, checkpoint=ckpt, **TINY)
    with pytest.raises(ConfigError, match="lr"):
        iof.fit(tiny_campaign, background=chapman_background, max_steps=16, resume=ckpt,
                **{**TINY, "lr": 1e-2})
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        iof.fit(tiny_campaign, background=chapman_background, max_steps=16, resume=truncated,
                **TINY)


def test_a_checkpoint_without_observation_errors_resumes_as_written(
    tiny_campaign, chapman_background, tmp_path
):
    """A training checkpoint of an earlier version was fitted with "none": resuming it
    with the new default is refused, naming the option; with "none" it resumes."""
    from ionofield.checkpoint import payload_checksum

    options = dict(background=chapman_background, max_steps=8, **TINY)
    ckpt = tmp_path / "train.ckpt"
    iof.fit(tiny_campaign, checkpoint=ckpt, observation_errors="none", **options)
    payload = torch.load(ckpt, weights_only=False)
    del payload["config"]["observation_errors"]
    payload["checksum"] = payload_checksum(payload)
    torch.save(payload, ckpt)
    with pytest.raises(ConfigError, match="observation_errors = 'none' then, 'auto' now"):
        iof.fit(tiny_campaign, resume=ckpt, **{**options, "max_steps": 16})
    resumed = iof.fit(tiny_campaign, resume=ckpt, observation_errors="none",
                      **{**options, "max_steps": 16})
    assert resumed.info["steps"] == 16


def test_save_load_round_trip_in_a_fresh_process(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    coords = torch.tensor([[10.0, 20.0, 300.0, 6.5], [-45.0, 170.0, 450.0, 1.0]])
    code = torch.randn(2, fitted.config.basis_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.stack(fitted(coords, code)).numpy()
    script = (
        "import sys, numpy as np, torch, ionofield as iof\n"
        f"m = iof.load_model({str(path)!r})\n"
        f"coords = torch.tensor({coords.tolist()!r})\n"
        f"code = torch.tensor({code.tolist()!r})\n"
        "with torch.no_grad():\n"
        "    np.save(sys.argv[1], torch.stack(m(coords, code)).numpy())\n"
    )
    out = tmp_path / "pred.npy"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    np.testing.assert_array_equal(np.load(out), expected)
    loaded = iof.load_model(path)
    assert loaded.config == fitted.config
    assert loaded.info["period"] == fitted.info["period"]


def test_load_model_refuses_truncated_and_foreign_files(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        iof.load_model(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an ionofield model file"):
        iof.load_model(foreign)


def test_accessor_fit_equals_function(tiny_campaign, chapman_background):
    options = dict(background=chapman_background, max_steps=8, seed=2, **TINY)
    ds = tiny_campaign.copy()
    via_accessor = ds.rstmrf.fit(**options)
    assert same_weights(via_accessor, iof.fit(tiny_campaign, **options))
    assert ds.rstmrf._model is via_accessor


def test_split_holds_out_whole_periods_and_whole_profiles():
    profile = np.repeat(np.arange(60), 7)
    hour = np.repeat(np.arange(60) * 0.8, 7) + np.tile(np.arange(7) * 0.01, 60)  # 48 h
    profile[-7:] = 58  # profile 58 now also has points at 44.99-45.05 h: across the 45 h edge
    hour[-7:] = 44.99 + np.arange(7) * 0.01
    train, val = split_by_period(profile, hour, 0.25, 3.0, np.random.default_rng(0))
    assert set(profile[train]).isdisjoint(profile[val])
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(profile.size))
    is_val = np.isin(np.arange(profile.size), val)
    others = profile != 58
    block = np.floor(hour / 3.0).astype(int)
    for b in np.unique(block[others]):  # every 3-hour block is held out whole or not at all
        assert len(set(is_val[others & (block == b)])) == 1
    assert len(np.unique(block[is_val & others])) == 4  # 25 % of the 16 blocks


def profiles(sizes, hours):
    """Point arrays of profiles with ``sizes`` levels at ``hours``, points shuffled."""
    rng = np.random.default_rng(7)
    profile = np.repeat(np.arange(len(sizes)), sizes)
    hour_bin = np.repeat(hours, sizes)
    order = rng.permutation(profile.size)
    return profile[order], hour_bin[order]


def point_sampler(indices, profile, hour_bin):
    """A sampler of the single points ``indices`` (runs of one point)."""
    return ProfileSampler(indices, np.ones(indices.size, dtype=int), profile[indices],
                          hour_bin[indices])


def test_profile_sampler_weighs_every_profile_alike_whatever_its_levels():
    sizes = [400, 100, 100, 250, 37, 400]
    profile, hour_bin = profiles(sizes, [0, 0, 1, 1, 1, 2])
    sampler = point_sampler(np.arange(profile.size), profile, hour_bin)
    rng = np.random.default_rng(0)
    drawn = np.concatenate([sampler.batch(rng, 500) for _ in range(400)])
    share = np.bincount(profile[drawn], minlength=len(sizes)) / drawn.size
    np.testing.assert_allclose(share, 1 / len(sizes), atol=0.01)  # not 400/1287 vs 37/1287
    # within a profile, every level alike
    levels = np.flatnonzero(profile == 4)
    counts = np.bincount(np.searchsorted(np.sort(levels), drawn[profile[drawn] == 4]))
    assert counts.size == 37 and counts.min() > 0.5 * counts.mean()


@pytest.mark.parametrize("hours_per_batch", [1, 3])
def test_profile_sampler_batches_hold_the_given_number_of_hours(hours_per_batch):
    profile, hour_bin = profiles([50] * 48, np.repeat(np.arange(24), 2))
    subset = np.flatnonzero(hour_bin % 2 == 0)  # only the even hours are training points
    sampler = point_sampler(subset, profile, hour_bin)
    rng = np.random.default_rng(1)
    for _ in range(50):
        batch = sampler.batch(rng, 256, hours_per_batch)
        assert batch.size == 256 and np.isin(batch, subset).all()
        assert len(np.unique(hour_bin[batch])) == hours_per_batch


def test_profile_sampler_keeps_a_profile_crossing_an_hour_in_its_first_hour():
    profile = np.array([0, 0, 0, 1, 1])
    hour_bin = np.array([3, 3, 4, 4, 4])  # profile 0 starts at 03:xx and ends at 04:00
    sampler = point_sampler(np.arange(5), profile, hour_bin)
    assert sampler.n_profiles == 2 and list(sampler.hours) == [3, 4]
    rng = np.random.default_rng(2)
    batches = [sampler.batch(rng, 64) for _ in range(20)]
    assert all(len(np.unique(profile[b])) == 1 for b in batches)  # one hour, one profile


def test_profile_sampler_of_runs_draws_what_the_sampler_of_their_points_draws():
    """Profiles in several runs (interleaved in time) weigh as one profile each."""
    profile = np.array([0, 0, 1, 1, 1, 0, 0, 0, 2, 1, 2, 2])  # 0 and 1 interleave
    hour_bin = np.array([5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6])
    starts = np.flatnonzero(np.r_[True, profile[1:] != profile[:-1]])
    lengths = np.diff(np.r_[starts, profile.size])
    runs = ProfileSampler(starts, lengths, profile[starts], hour_bin[starts])
    points = point_sampler(np.arange(profile.size), profile, hour_bin)
    assert runs.n_profiles == points.n_profiles == 3 and starts.size == 6
    for seed in range(5):
        np.testing.assert_array_equal(runs.batch(np.random.default_rng(seed), 300, 2),
                                      points.batch(np.random.default_rng(seed), 300, 2))
    drawn = np.concatenate([runs.batch(np.random.default_rng(s), 500, 2) for s in range(40)])
    np.testing.assert_allclose(np.bincount(profile[drawn]) / drawn.size, 1 / 3, atol=0.02)


def test_test_blocks_are_whole_periods_apart_from_training_and_validation():
    from ionofield.training import _split

    rng = np.random.default_rng(3)
    n = 600
    hour = np.sort(rng.integers(0, 72, n)).astype(np.int32)
    runs = ProfileRuns(np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64),
                       np.arange(n, dtype=np.int32), hour)
    config = iof.FitConfig(test_fraction=0.2, val_fraction=0.1, val_block_hours=3.0)
    test, train, val = _split(runs, config, np.random.default_rng(0))
    assert np.array_equal(np.sort(np.concatenate([test, train, val])), np.arange(n))
    blocks = [set(hour[part] // 3) for part in (test, train, val)]
    assert not (blocks[0] & blocks[1]) and not (blocks[0] & blocks[2])
    assert not (blocks[1] & blocks[2])
    assert len(blocks[0]) == round(0.2 * 24) and len(blocks[2]) == round(0.1 * 20)
    # Without a test block the draws are those of the validation split alone.
    plain = iof.FitConfig(val_fraction=0.1, val_block_hours=3.0)
    none, train0, val0 = _split(runs, plain, np.random.default_rng(0))
    expected = split_by_period(runs.profile, runs.hour, 0.1, 3.0, np.random.default_rng(0))
    assert none.size == 0
    assert np.array_equal(train0, expected[0]) and np.array_equal(val0, expected[1])


def test_split_tail_takes_the_whole_profiles_that_start_in_the_last_hours():
    """Runs go by their profile's first run's hour: a profile that starts before the
    tail keeps its later runs; one that starts in it takes its runs of any hour."""
    rng = np.random.default_rng(5)
    n_profiles = 200
    start = np.sort(rng.integers(0, 48, n_profiles))
    profile = np.repeat(np.arange(n_profiles), 3)
    hour = np.repeat(start, 3) + np.tile([0, 1, 2], n_profiles)  # runs over three hours
    order = np.lexsort((profile, hour))  # in time, as a campaign's: profiles interleave
    profile, hour = profile[order], hour[order]
    first = np.repeat(start, 3)[order]
    kept, tail = split_tail(profile, hour, 6.0)
    assert np.array_equal(np.sort(np.concatenate([kept, tail])), np.arange(profile.size))
    assert set(profile[kept]).isdisjoint(profile[tail])
    assert start.max() == 47  # the tail is the hours 42-47
    assert np.array_equal(tail, np.flatnonzero(first >= 42))
    assert hour[kept].max() > 42  # later runs of profiles that start before the tail
    assert split_tail(profile, hour, 0.0)[1].size == 0
    assert split_tail(profile, hour, 48.0)[0].size == 0


def tail_runs(n: int = 600):

    hour = np.sort(np.random.default_rng(3).integers(0, 72, n)).astype(np.int32)
    return ProfileRuns(np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64),
                       np.arange(n, dtype=np.int32), hour)


@pytest.mark.parametrize("test_fraction", [0.0, 0.2], ids=["no-test", "test"])
def test_without_a_tail_the_split_draws_what_it_drew_before(test_fraction):
    from ionofield.training import _split

    runs = tail_runs()
    config = iof.FitConfig(test_fraction=test_fraction, val_tail_hours=0.0)
    test, train, val = _split(runs, config, np.random.default_rng(8))
    rng = np.random.default_rng(8)
    rest = np.arange(runs.start.size)
    if test_fraction:
        rest, expected_test = split_by_period(runs.profile, runs.hour, test_fraction, 3.0, rng)
        assert np.array_equal(test, expected_test)
    expected = split_by_period(runs.profile[rest], runs.hour[rest], 0.1, 3.0, rng)
    assert np.array_equal(train, rest[expected[0]]) and np.array_equal(val, rest[expected[1]])
    assert val.dtype == expected[1].dtype


def test_the_tail_goes_to_validation_with_blocks_drawn_before_it():
    from ionofield.training import _split

    runs = tail_runs()
    config = iof.FitConfig(test_fraction=0.2, val_fraction=0.1, val_tail_hours=6.0)
    test, train, val = _split(runs, config, np.random.default_rng(0))
    assert np.array_equal(np.sort(np.concatenate([test, train, val])), np.arange(600))
    last = runs.hour[np.union1d(train, val)].max()  # the non-test period's last hour
    tail = np.setdiff1d(np.flatnonzero(runs.hour > last - 6), test)
    assert tail.size > 0 and np.isin(tail, val).all()
    assert not np.isin(test, val).any() and runs.hour[train].max() <= last - 6
    blocks = set(runs.hour[np.setdiff1d(val, tail)] // 3)  # the random blocks: before the tail
    assert blocks and max(blocks) * 3 + 3 <= last - 5
    assert len(blocks) == round(0.1 * len(set(runs.hour[train] // 3) | blocks))


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, "6"])
def test_a_bad_val_tail_hours_is_refused(value):
    with pytest.raises(ConfigError, match="val_tail_hours"):
        iof.FitConfig(val_tail_hours=value)


def test_a_tail_holding_every_observation_is_refused(tiny_campaign, chapman_background):
    with pytest.raises(ConfigError, match="val_tail_hours = 24 holds out all"):
        iof.fit(tiny_campaign, background=chapman_background, max_steps=8, val_tail_hours=24.0,
                **TINY)


def test_fit_reports_sigma_by_the_hours_from_the_data(tiny_campaign, chapman_background,
                                                       tmp_path):
    """The validation points' errors by gap: all of them, at the tail's gaps with one."""
    model = iof.fit(tiny_campaign, background=chapman_background, max_steps=16,
                    val_tail_hours=3.0, **TINY)
    info = model.info
    rows = info["sigma_calibration_by_gap"]
    assert sum(row["count"] for row in rows) == info["n_val"] <= info["n_calibration"]
    assert all(0.0 <= row["inside_1sigma"] <= 1.0 and row["rmse"] > 0 for row in rows)
    # the tail (its last 3 of 12 hours with profiles) lies 3 hours or more after the data
    last_data = model.data_hours.max() - np.datetime64("2024-05-10T00", "h")
    assert last_data <= np.timedelta64(8, "h") and rows[-1]["gap_hours"][0] >= 3.0
    model.save(tmp_path / "m.pt")
    assert iof.load_model(tmp_path / "m.pt").info["sigma_calibration_by_gap"] == rows


def test_a_checkpoint_without_val_tail_hours_resumes_as_written(
    tiny_campaign, chapman_background, tmp_path
):
    """A training checkpoint written before val_tail_hours had no tail: it resumes with
    the default and is refused with a tail, naming the option."""
    from ionofield.checkpoint import payload_checksum

    options = dict(background=chapman_background, max_steps=8, **TINY)
    ckpt = tmp_path / "train.ckpt"
    iof.fit(tiny_campaign, checkpoint=ckpt, **options)
    payload = torch.load(ckpt, weights_only=False)
    del payload["config"]["val_tail_hours"]
    payload["checksum"] = payload_checksum(payload)
    torch.save(payload, ckpt)
    with pytest.raises(ConfigError, match="val_tail_hours = 0.0 then, 3.0 now"):
        iof.fit(tiny_campaign, resume=ckpt, val_tail_hours=3.0, **{**options, "max_steps": 16})
    assert iof.fit(tiny_campaign, resume=ckpt, **{**options, "max_steps": 16}).info["steps"] == 16


def test_fit_scores_the_calibrated_model_on_the_test_block(tiny_campaign, chapman_background):
    model = iof.fit(tiny_campaign, background=chapman_background, max_steps=16,
                    test_fraction=0.3, val_block_hours=0.5, **TINY)
    info = model.info
    assert info["n_test"] > 0
    assert info["n_anchor"] > 0
    assert info["n_test"] + info["n_train"] + info["n_val"] + info["n_anchor"] == info["n_obs"]
    assert 0.0 <= info["test_inside_1sigma"] <= 1.0
    assert np.isfinite(info["test_rmse"]) and info["test_rmse_background"] > 0
    assert "test (untouched by the fit)" in repr(model)


def test_learning_rate_holds_then_decays_to_the_final_fraction():
    config = iof.FitConfig(lr=2e-3)
    rates = [learning_rate(config, p) for p in np.linspace(0, 1, 101)]
    assert rates[:51] == [2e-3] * 51
    assert all(a > b for a, b in zip(rates[50:], rates[51:], strict=False))
    assert rates[-1] == pytest.approx(0.05 * 2e-3)
    assert learning_rate(config, 1.7) == pytest.approx(rates[-1])  # a time limit overrun


def test_budget_in_steps_and_validation_rows(fitted):
    history = fitted.history
    steps = fitted.config.max_steps
    assert history.index.name == "step" and list(history.index) == list(range(8, steps + 1, 8))
    assert fitted.info["steps"] == steps and fitted.info["device"] == "cpu"
    assert history["elapsed_s"].is_monotonic_increasing
    assert history["lr"].iloc[0] == TINY["lr"] and history["lr"].iloc[-1] < TINY["lr"] / 10


def test_time_limit_ends_the_fit_early(tiny_campaign, chapman_background):
    model = iof.fit(tiny_campaign, background=chapman_background, max_steps=100_000,
                    time_limit=1.0, **TINY)
    steps, seconds = model.info["steps"], model.info["train_seconds"]
    assert 0 < steps < 100_000 and seconds < 1.0 + 10.0  # a last validation after the limit
    assert model.history["lr"].iloc[-1] < TINY["lr"] / 2  # the schedule followed the clock


def test_weight_average_is_the_weighted_mean_of_the_steps():
    layer = torch.nn.Linear(2, 1)
    decay = 0.8
    average = WeightAverage(layer, decay=decay)
    seen = []
    for step in range(5):
        with torch.no_grad():
            layer.weight.fill_(float(step) ** 2)
        seen.append(layer.weight.detach().clone())
        average.update()
    weights = decay ** np.arange(4, -1, -1)  # the latest step weighs most
    expected = sum(w * v for w, v in zip(weights, seen, strict=True)) / weights.sum()
    with average.applied():
        assert torch.allclose(layer.weight, expected.float())
    assert torch.equal(layer.weight, seen[-1])  # restored after the block
    latest = WeightAverage(layer, decay=0.0)
    latest.update()
    assert latest.steps == 0  # switched off: no copy of the weights per step
    assert torch.equal(latest.weights()["weight"], seen[-1])
    with latest.applied():
        assert torch.equal(layer.weight, seen[-1])


def test_unique_windows_equal_per_point_computation(tiny_campaign):
    """The ConvLSTM once per distinct hour gives what running it per point gives."""
    model = iof.RSTMRF(iof.FitConfig(**{k: v for k, v in TINY.items() if k != "progress"}))
    torch.nn.init.normal_(model.direction_head.correction.weight, std=0.1)
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    lat_axis, lon_axis = torch.from_numpy(drivers.tec_lat), torch.from_numpy(drivers.tec_lon)
    point_hours = np.array([3, 3, 7, 3, 7, 9, 9, 3])
    lat = np.linspace(-60, 60, point_hours.size)
    lon = np.linspace(-170, 170, point_hours.size)
    model = model.double()

    def sample(field, index, lat, lon):
        one_map = Cells(index, index, np.zeros(index.shape))
        return sample_direction(field, one_map, lat, lon, drivers.tec_lat, drivers.tec_lon)

    def sequences(hours):
        return torch.from_numpy(drivers.tec_sequences(hours, model.config.seq_len)).double()

    with torch.no_grad():
        hours, inverse = np.unique(point_hours, return_inverse=True)
        field, _ = model.direction_field(sequences(hours), lat_axis, lon_axis)
        unique_way = sample(field, inverse, lat, lon)
        per_point = torch.cat([
            sample(model.direction_field(sequences(point_hours[[k]]), lat_axis, lon_axis)[0],
                   np.zeros(1, dtype=np.int64), lat[[k]], lon[[k]])
            for k in range(point_hours.size)
        ])
    torch.testing.assert_close(unique_way, per_point, rtol=1e-12, atol=1e-12)


def test_repr_and_html_repr_summarise_the_fit(fitted):
    text = repr(fitted)
    assert "training period: 2024-05-10T00:00" in text
    assert f"parameters: {fitted.n_parameters():,}" in text
    assert f"validation RMSE (log10 Ne): {fitted.info['val_rmse']:.4f}" in text
    assert "basis_dim=16" in text
    html = fitted._repr_html_()
    assert html.count("<tr>") == len(text.splitlines()) - 1 and "ionofield.RSTMRF" in html


def test_decoder_time_half_once_per_time_equals_the_concatenated_decoder():
    """Rows per distinct time (with an index, or one shared row) give the per-point result."""
    torch.manual_seed(0)
    model = iof.RSTMRF(iof.FitConfig(basis_dim=8, siren_hidden=16, siren_layers=1)).double()
    torch.nn.init.normal_(model.decoder[-1].weight, std=0.5)
    coords = torch.tensor([[10.0, 20.0, 300.0, 1.0], [-50.0, 170.0, 500.0, 7.5],
                           [80.0, -179.0, 150.0, 12.0]], dtype=torch.float64)
    codes = torch.randn(2, 8, dtype=torch.float64)
    index = torch.tensor([1, 0, 1])
    with torch.no_grad():
        h_spatial = model.spatial(spatial_features(coords))
        expected = model.decoder(torch.cat([h_spatial, codes[index]], dim=-1))
        by_index = model(coords, codes, index)
        shared = model(coords, codes[1:])
    torch.testing.assert_close(by_index[0], expected[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(shared[0][[0, 2]], expected[[0, 2], 0], rtol=1e-12, atol=1e-12)


def calibration_points(
    fitted: iof.RSTMRF, campaign: xr.Dataset, bg_field: BackgroundField
) -> tuple[ObservationStore, np.ndarray, np.ndarray, np.ndarray]:
    """The observations of a fit, its validation and anchor points and its anchor runs,
    drawn as the fit drew them."""
    from ionofield.training import _anchor_split, _split, _subsample

    data = ObservationStore.from_campaign(campaign, bg_field, fitted.config.observation_errors)
    runs, config = data.runs, fitted.config
    rng = np.random.default_rng(fitted.info["seed"])
    _, train, val = _split(runs, config, rng)
    train, anchor = _anchor_split(runs, train, val, config, rng)
    val_index = _subsample(runs, val, config.validation_points, rng)
    return data, val_index, _subsample(runs, anchor, config.validation_points, rng), anchor


def test_sigma_is_calibrated_on_the_held_out_points(fitted, tiny_campaign, chapman_background):
    """The calibrated sigma maximises the likelihood of the calibration's errors.

    The calibration points are the validation blocks' and the anchor profiles'
    (drawn as the fit draws them); sigma takes the network's calibrated variance, the
    growth with the hours from the training data, the TEC column misfit and the
    observations' own variance. The mean
    NLL is stationary in the log of both weights (the network's factor squared and
    the growth rate), or the rate sits at 0 with the NLL rising from there. (The
    tiny campaign has too few held-out points in hours with data for the two-stage
    calibration, so both weights are fitted on all of them together.)
    """
    from ionofield.prediction import ColumnMisfit

    bg_field = BackgroundField(chapman_background)
    data, val_index, anchor_index, anchor = calibration_points(fitted, tiny_campaign, bg_field)
    runs, config = data.runs, fitted.config
    index = np.concatenate([val_index, anchor_index])
    assert len(index) == fitted.info["n_calibration"]
    assert fitted.info["n_anchor"] == runs.length[anchor].sum() > 0
    points = data.rows(index)
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    trainer = _Trainer(fitted, data, drivers, bg_field)
    pred, log_var = trainer.predictions(points)
    misfit = ColumnMisfit.compute(fitted, drivers, bg_field, np.arange(drivers.n_hours))
    offset = float(fitted.column_misfit_offset)
    assert offset == pytest.approx(float(np.median(misfit.values)))
    excess = misfit.at(drivers, points["time"], points["coords"][:, 0],
                       points["coords"][:, 1]) - offset
    obs_var = points["obs_sigma"].astype(np.float64) ** 2
    assert config.observation_errors == "auto" and np.all(obs_var > 0)
    network, gap = np.exp(log_var.astype(np.float64)), fitted.gap_variance(points["time"])
    total = network + excess**2 + gap + obs_var
    error2 = (points["target"] - pred).astype(np.float64) ** 2
    assert fitted.info["sigma_factor"] != 1.0 and np.all(excess != 0)
    # d(mean NLL) / d(log weight) = mean(term / total * (1 - error2 / total)): 0 at an
    # inner optimum; >= 0 where the weight went to (nearly) 0, the NLL rising from there
    # (a term the errors do not need: in this small world that may be either one).
    slope = 1 - error2 / total
    term = np.sqrt(hours_from_data(points["time"], fitted.data_hours))
    for weighted, unit in ((network, network), (gap, term)):
        weight_slope, scale = np.mean(unit / total * slope), np.mean(unit / total)
        assert weight_slope >= -1e-3 * scale
        if np.mean(weighted) > 1e-3 * np.mean(total):
            assert abs(weight_slope) < 1e-3 * scale
    # The anchor profiles are 0 hours from the data, the validation blocks' further.
    hours = fitted.data_hours
    assert hours.size > 0 and np.isin(points["time"][-1].astype("datetime64[h]"), hours)
    assert not np.isin(points["time"][0].astype("datetime64[h]"), hours)


def test_sigma_level_and_growth_are_calibrated_in_two_stages(
    tiny_campaign, chapman_background, monkeypatch
):
    """The factor maximises the likelihood of the held-out errors in hours with
    training data, the growth rate that of the others given the factor.

    Each held-out error is scored as the fit scores it (here log-normal, with the
    observation's own variance); the campaign's maps' column misfit enters with
    weight 1.
    """
    from ionofield import training
    from ionofield.calibration import fit_variance

    monkeypatch.setattr(training, "MIN_LEVEL_POINTS", 10)  # the tiny campaign's few
    fitted = iof.fit(tiny_campaign, background=chapman_background, max_steps=48,
                     calibration_fraction=0.2, **TINY)
    bg_field = BackgroundField(chapman_background)
    data, val_index, anchor_index, _ = calibration_points(fitted, tiny_campaign, bg_field)
    points = data.rows(np.concatenate([val_index, anchor_index]))
    assert len(points) == fitted.info["n_calibration"]
    trainer = _Trainer(fitted, data, HourlyDrivers.from_campaign(tiny_campaign), bg_field)
    error, network, _, misfit = trainer.held_out_terms(points,
                                                       float(fitted.column_misfit_offset))
    growth = np.sqrt(hours_from_data(points["time"], fitted.data_hours))
    rate = fitted.info["sigma_gap_variance_rate"]
    np.testing.assert_allclose(fitted.gap_variance(points["time"]), rate * growth, rtol=1e-6)
    obs_var = points["obs_sigma"].astype(np.float64) ** 2
    inside = growth == 0.0
    assert inside.sum() >= 10 and (~inside).sum() >= 10
    # the anchors lie in hours with data, unless theirs held no other profile; the
    # validation blocks never do
    assert not inside[: len(val_index)].any() and inside[len(val_index):].any()

    def nll(where: np.ndarray, factor: float, rate_scale: float) -> float:
        variance = factor**2 * network + rate_scale * rate * growth + misfit + obs_var
        return float(np.mean(0.5 * np.log(2 * np.pi * variance[where])
                             + 0.5 * error[where] ** 2 / variance[where]))

    level = nll(inside, 1.0, 1.0)
    assert nll(inside, 1.02, 1.0) > level and nll(inside, 0.98, 1.0) > level
    assert nll(inside, 1.0, 2.0) == level  # the growth is 0 there
    beyond = ~inside
    grown = nll(beyond, 1.0, 1.0)
    if rate > 1e-9:
        assert nll(beyond, 1.0, 1.05) > grown and nll(beyond, 1.0, 0.95) > grown
    else:  # no growth: the NLL rises from 0
        base = (network + misfit + obs_var)[beyond]
        assert np.mean(growth[beyond] / base * (1 - error[beyond] ** 2 / base)) >= 0
    # a joint fit would have set another factor: the validation blocks' errors differ
    joint = fit_variance(error, np.stack([network, growth]), misfit + obs_var)
    assert abs(math.sqrt(joint[0]) - 1.0) > 0.01


def test_model_files_of_older_versions_load_uncalibrated_and_unpinned(fitted, tmp_path):
    """Files of ionofield 0.1.0 have no log_var_shift (sigma as fitted) nor a pinned season.

    Nor a checksum (format 1): they load, with a warning that damage cannot be detected.
    """
    fitted.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["state_dict"]["log_var_shift"], payload["state_dict"]["pinned_season"]
    del payload["checksum"]
    payload["format"] = "ionofield-rstmrf-model/1"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.warns(IonofieldWarning, match=r"old\.pt.*no checksum.*save it again"):
        old = iof.load_model(tmp_path / "old.pt")
    assert float(old.log_var_shift) == 0.0
    assert float(fitted.log_var_shift) != 0.0
    assert torch.isnan(old.pinned_season).all() and torch.isfinite(fitted.pinned_season).all()


def _loaded_without(model: iof.RSTMRF, field: str, folder) -> iof.RSTMRF:
    """``model`` saved, its config's ``field`` removed as in files of before it, loaded."""
    from ionofield.checkpoint import payload_checksum

    model.save(folder / "m.pt")
    payload = torch.load(folder / "m.pt", weights_only=True)
    del payload["config"][field]
    payload["checksum"] = payload_checksum(payload)
    torch.save(payload, folder / "old.pt")
    return iof.load_model(folder / "old.pt")


def test_model_files_without_observation_errors_load_as_fitted_without_them(fitted, tmp_path):
    """Files written before FitConfig.observation_errors were fitted with the network's
    variance alone: they load with "none", not with the new default."""
    old = _loaded_without(fitted, "observation_errors", tmp_path)
    assert old.config.observation_errors == "none"
    assert iof.FitConfig().observation_errors == "auto"
    assert iof.load_model(tmp_path / "m.pt").config.observation_errors == "auto"
    assert same_weights(old, fitted)


def test_model_files_without_noise_likelihood_load_as_fitted_with_the_log_normal(fitted,
                                                                                 tmp_path):
    old = _loaded_without(fitted, "noise_likelihood", tmp_path)
    assert old.config.noise_likelihood == "log"
    assert iof.FitConfig().noise_likelihood == "truncated"
    assert iof.load_model(tmp_path / "m.pt").config.noise_likelihood == "truncated"
    assert same_weights(old, fitted)


def test_model_files_without_profile_shift_load_as_fitted_without_it(tiny_campaign,
                                                                     chapman_background,
                                                                     tmp_path):
    """Files written before FitConfig.profile_shift have a two-output decoder."""
    plain = iof.fit(tiny_campaign, background=chapman_background, max_steps=8,
                    profile_shift=False, **TINY)
    old = _loaded_without(plain, "profile_shift", tmp_path)
    assert not old.config.profile_shift and iof.FitConfig().profile_shift
    assert same_weights(old, plain)


@pytest.mark.parametrize("source", ["auto", "none"])
def test_a_point_with_a_huge_observation_sigma_barely_moves_the_network(
    tiny_campaign, chapman_background, source
):
    """The data term's gradient on the weights from points of sigma_obs 100 dex is
    1e-4 of theirs at sigma_obs 0; with observation_errors="none" sigma_obs is ignored."""

    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(tiny_campaign, bg_field, source)
    config = iof.FitConfig(basis_dim=16, siren_hidden=32, siren_layers=1, env_hidden=8,
                           env_len=4, observation_errors=source)
    torch.manual_seed(0)
    trainer = _Trainer(iof.RSTMRF(config), data, HourlyDrivers.from_campaign(tiny_campaign),
                       bg_field)
    rows = data.rows(np.arange(0, len(data), 7))
    data.close()

    def gradient_norm(obs_sigma: float) -> float:
        points = rows.copy()
        points["obs_sigma"] = obs_sigma
        pred, log_var = trainer.predict(points)
        loss = trainer.data_loss(pred, log_var, points)
        grads = torch.autograd.grad(loss, list(trainer.model.parameters()), allow_unused=True)
        return float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None)))

    exact, noisy = gradient_norm(0.0), gradient_norm(100.0)
    assert exact > 0
    if source == "none":
        assert noisy == exact
    else:
        assert noisy < 1e-4 * exact


@pytest.mark.parametrize("likelihood", ["truncated", "log"])
def test_the_data_term_takes_ne_err_as_additive_noise_unless_told_not_to(
    tiny_campaign, chapman_background, likelihood
):
    """With ne_err and noise_likelihood="truncated", the data term is gaussian_nll's
    noisy-density form with that noise, and no sigma_obs; with "log", the log-normal."""
    campaign = tiny_campaign.assign(ne_err=0.2 * tiny_campaign["ne"])
    campaign["ne_err"][::3] = np.nan  # unknown errors: the RO error model, log-normal
    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(campaign, bg_field, "auto")
    config = iof.FitConfig(basis_dim=16, siren_hidden=32, siren_layers=1, env_hidden=8,
                           env_len=4, noise_likelihood=likelihood)
    torch.manual_seed(0)
    trainer = _Trainer(iof.RSTMRF(config), data, HourlyDrivers.from_campaign(campaign),
                       bg_field)
    points = data.rows(np.arange(len(data)))
    data.close()
    noise = np.log10(campaign["ne_err"].values.astype(np.float32))
    np.testing.assert_allclose(points["log10_noise"], noise, rtol=1e-6)
    with torch.no_grad():
        pred, log_var = trainer.predict(points)
        got = trainer.data_loss(pred, log_var, points)
    obs_var = torch.from_numpy(points["obs_sigma"].astype(np.float32) ** 2)
    target = torch.from_numpy(points["target"])
    if likelihood == "truncated":
        obs_var[np.isfinite(noise)] = 0.0
        expected = gaussian_nll(pred, log_var, target, obs_var=obs_var,
                                log10_noise=torch.from_numpy(noise))
    else:
        expected = gaussian_nll(pred, log_var, target, obs_var=obs_var)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    other = gaussian_nll(pred, log_var, target, obs_var=obs_var,
                         log10_noise=None if likelihood == "truncated" else torch.from_numpy(noise))
    assert abs(float(other) - float(got)) > 1e-3 * abs(float(got))


def test_a_pinned_season_makes_the_time_code_blind_to_the_date():
    """Pinned, times of one UT on different days get one code: the pinned day's own."""
    torch.manual_seed(0)
    model = iof.RSTMRF(iof.FitConfig(basis_dim=8, siren_hidden=16, siren_layers=1, use_env=False))
    features = torch.from_numpy(temporal_features(np.full(3, 6.0), np.array([40.0, 131.5, 250.0])))
    with torch.no_grad():
        free = model.time_code(features, None, None)
        model.pin_season(131.5)
        pinned = model.time_code(features, None, None)
    assert not torch.allclose(free[0], free[2])
    assert torch.equal(pinned[0], pinned[2])
    torch.testing.assert_close(pinned[1], free[1])


def test_fit_pins_the_season_of_a_short_campaign_only(fitted, tiny_campaign, chapman_background):
    """The tiny campaign spans hours: its season is its middle's, unless season_min_days=0."""
    times = tiny_campaign.obs_time.values
    middle = times.min() + (times.max() - times.min()) / 2
    expected = temporal_features(np.zeros(1), day_of_year(middle)[None])[0, 2:]
    torch.testing.assert_close(fitted.pinned_season, torch.from_numpy(expected))
    free = iof.fit(tiny_campaign, background=chapman_background, max_steps=8, season_min_days=0,
                   **TINY)
    assert torch.isnan(free.pinned_season).all()


def test_fit_with_magnetic_inputs_reads_the_field_of_the_campaigns_middle_day(
    tiny_campaign, chapman_background
):
    from ionofield.magnetic import modip_table

    times = tiny_campaign.obs_time.values
    middle = (times.min() + (times.max() - times.min()) / 2).astype("datetime64[D]")
    model = iof.fit(tiny_campaign, background=chapman_background, max_steps=4,
                    magnetic_inputs=True, **TINY)
    assert model.info["magnetic_epoch"] == str(middle)
    np.testing.assert_array_equal(model.modip_table.numpy(), modip_table(middle))
    assert model.spatial.net[0].linear.in_features == 9


def test_collocation_points_cover_the_hours_without_profiles(chapman_background):
    """Physics points span the whole campaign, not only the hours with profiles."""
    from tests.conftest import START, indices_dataset, observations, tec_dataset

    obs = observations()
    early = obs.where(obs.time < START + np.timedelta64(4, "h"), drop=True)
    ds = iof.campaign(obs=early, tec=tec_dataset(), indices=indices_dataset(),
                      period=(START, START + np.timedelta64(12, "h")))
    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(ds, bg_field)
    config = iof.FitConfig(batch_size=400, collocation_fraction=0.5, collocation_hours=2)
    trainer = _Trainer(iof.RSTMRF(config), data, HourlyDrivers.from_campaign(ds), bg_field)
    rng = np.random.default_rng(0)
    draws = [trainer.collocation_points(rng) for _ in range(50)]
    coords, times, gradient = draws[0]
    assert coords.shape == (200, 4) and gradient.shape == (200, 2)
    assert len(np.unique(times)) == 2
    hours = np.concatenate([(t - START) / np.timedelta64(1, "h") for _, t, _ in draws])
    assert set(hours) == set(range(13))  # every whole hour of the campaign
    assert (hours > 4).mean() == pytest.approx(8 / 13, abs=0.1)  # beyond the profiles
    lat = np.concatenate([c[:, 0] for c, _, _ in draws])
    alt = np.concatenate([c[:, 2] for c, _, _ in draws])
    assert data.lat_range[0] <= lat.min() and lat.max() <= data.lat_range[1]
    assert alt.min() >= 150.0 and alt.max() <= 600.0
    # uniform on the sphere: sin(lat) uniform between the limits
    sin_lat = np.sin(np.radians(lat))
    lo, hi = np.sin(np.radians(data.lat_range))
    assert np.mean(sin_lat) == pytest.approx((lo + hi) / 2, abs=0.03)
    ut = (times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")
    np.testing.assert_allclose(coords[:, 3], ut, atol=1e-4)


def test_tec_path_runs_once_per_collocation_hour(tiny_campaign, chapman_background, monkeypatch):
    """Collocation points at a whole hour need that hour's map sequence only."""

    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(tiny_campaign, bg_field)
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    config = iof.FitConfig(**{k: v for k, v in TINY.items() if k != "progress"},
                           collocation_hours=3)
    trainer = _Trainer(iof.RSTMRF(config), data, drivers, bg_field)
    asked = []
    original = HourlyDrivers.tec_sequences
    monkeypatch.setattr(HourlyDrivers, "tec_sequences",
                        lambda self, hours, n: asked.append(len(hours)) or original(self, hours, n))
    rng = np.random.default_rng(0)
    for _ in range(5):
        losses = trainer.batch_losses(np.arange(config.batch_size), rng)
        assert torch.isfinite(losses["tec_direction"])
    assert asked == [3] * 5


def test_without_the_direction_loss_the_tec_path_never_runs(tiny_campaign, chapman_background,
                                                            tmp_path, monkeypatch):
    """``w_tec_direction=0`` removes the ConvLSTM's whole cost: fit, calibration, volume."""
    from ionofield.nn.recurrent import ConvLSTM

    calls = []
    original = ConvLSTM.forward
    monkeypatch.setattr(ConvLSTM, "forward",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    model = iof.fit(tiny_campaign, background=chapman_background, max_steps=8,
                    w_tec_direction=0.0, **TINY)
    target = iof.grid(tiny_campaign.obs_time.values[:1], [250.0, 300.0], [0.0, 10.0],
                      [0.0, 10.0])
    iof.reconstruct(tiny_campaign, target, model=model, background=chapman_background).load()
    assert calls == []
    iof.fit(tiny_campaign, background=chapman_background, max_steps=2, **TINY)
    assert calls  # the spy sees the path when the loss is on


def test_the_networks_sigma_stays_within_its_bounds_far_from_the_data():
    """An extreme raw log-variance (a storm day far from training) gives 3 dex at most."""
    from ionofield.nn.model import SIGMA_BOUNDS_DEX, bounded_log_var

    raw = torch.linspace(-200.0, 200.0, 4001)
    sigma = (bounded_log_var(raw) / 2).exp()
    assert float(sigma.min()) >= SIGMA_BOUNDS_DEX[0] * 0.999
    assert float(sigma.max()) <= SIGMA_BOUNDS_DEX[1] * 1.001
    assert bool((sigma[1:] >= sigma[:-1]).all())  # monotonic: the NLL keeps its order
    usual = torch.log(torch.tensor([0.03, 0.1, 0.3])) * 2  # where fitted sigmas lie
    low, high = (2 * np.log(b) for b in SIGMA_BOUNDS_DEX)
    departure = (bounded_log_var(usual) - usual).abs()
    assert bool((departure <= torch.exp(usual - high) + torch.exp(low - usual)).all())
    assert float(departure.max()) < 0.011  # sigma within 0.6 % of the unbounded one


def test_the_fits_iri_background_is_given_the_81_day_mean_f107(tiny_campaign, pyiri_calls,
                                                                tmp_path):
    """PyIRI reads F10.7 as a 12-month-smoothed level: the fit gives it f107_81, not f107."""
    model = iof.fit(tiny_campaign, max_steps=8, cache_dir=tmp_path, **COARSE_IRI, **TINY)
    given = {args[7] for args, _ in pyiri_calls}
    assert given == {float(tiny_campaign["f107_81"].mean())} != {float(tiny_campaign["f107"][0])}
    assert model.info["background"]["f107_variable"] == "f107_81"


def point_columns(store):
    """Every point of an ObservationStore, with its profile code and hour."""
    runs = store.runs
    return (store.rows(np.arange(len(store))), np.repeat(runs.profile, runs.length),
            np.repeat(runs.hour, runs.length))


def assert_same_points(a, b):
    (rows_a, code_a, hour_a), (rows_b, code_b, hour_b) = point_columns(a), point_columns(b)
    for name in rows_a.dtype.names:  # field by field: a NaN equals a NaN there
        np.testing.assert_array_equal(rows_a[name], rows_b[name])
    np.testing.assert_array_equal(code_a, code_b)
    np.testing.assert_array_equal(hour_a, hour_b)


def test_observation_store_in_blocks_equals_one_block(tiny_campaign, chapman_background,
                                                      monkeypatch):
    """Blocks cut profiles into more runs, not into more profiles: the points are the same."""
    campaign_module = importlib.import_module("ionofield.campaign")  # the function shadows it

    field = BackgroundField(chapman_background)
    whole = ObservationStore.from_campaign(tiny_campaign, field)
    monkeypatch.setattr(campaign_module, "OBS_PER_BLOCK", 7)  # 1116 points: 160 blocks
    blocks = ObservationStore.from_campaign(tiny_campaign, field)
    assert blocks.runs.start.size > whole.runs.start.size
    assert_same_points(whole, blocks)
    rows, code, hour = point_columns(whole)
    names = tiny_campaign["obs_profile"].values
    same = names[:, None] == names[None, :]  # one code per profile, and only one
    np.testing.assert_array_equal(code[:, None] == code[None, :], same)
    time = tiny_campaign["obs_time"].values
    np.testing.assert_array_equal(rows["time"], time)
    first_hour = time.min().astype("datetime64[h]")
    np.testing.assert_array_equal(hour, (time - first_hour) // np.timedelta64(1, "h"))
    np.testing.assert_allclose(rows["background"], field.log10_at(
        time, *(tiny_campaign[f"obs_{name}"].values for name in ("alt", "lat", "lon"))),
        rtol=1e-6)
    np.testing.assert_allclose(rows["target"], np.log10(tiny_campaign["ne"].values), rtol=1e-6)
    assert whole.lat_range == (rows["coords"][:, 0].min(), rows["coords"][:, 0].max())


@pytest.mark.filterwarnings("ignore:.*(does not have a Zarr V3|Consolidated metadata)")
@pytest.mark.parametrize("store, chunks", [("nc", None), ("nc", {"obs": 100}), ("zarr", None)],
                         ids=["lazy-netcdf", "dask", "zarr"])
def test_lazily_opened_campaign_is_read_in_blocks_not_held(tiny_campaign, chapman_background,
                                                           tmp_path, monkeypatch, store, chunks):
    campaign_module = importlib.import_module("ionofield.campaign")  # the function shadows it
    from ionofield.campaign import check_campaign
    from ionofield.checkpoint import campaign_fingerprint

    field = BackgroundField(chapman_background)
    loaded = ObservationStore.from_campaign(tiny_campaign, field)
    path = tmp_path / f"campaign.{store}"
    if store == "zarr":
        tiny_campaign.chunk({"obs": 100}).to_zarr(path)
    else:
        tiny_campaign.to_netcdf(path)
    monkeypatch.setattr(campaign_module, "OBS_PER_BLOCK", 100)
    with xr.open_dataset(path, chunks=chunks) as lazy:
        check_campaign(lazy)
        observations = ObservationStore.from_campaign(lazy, field)
        fingerprint = campaign_fingerprint(lazy)
        held = [name for name, var in lazy.variables.items()
                if "obs" in var.dims and var._in_memory]
    assert held == []  # nothing read was kept in the Dataset
    assert fingerprint == campaign_fingerprint(tiny_campaign)  # the same bytes, by blocks
    assert_same_points(observations, loaded)


def test_campaign_checked_in_blocks_reports_as_whole(tiny_campaign, monkeypatch):
    campaign_module = importlib.import_module("ionofield.campaign")  # the function shadows it
    from ionofield.campaign import check_campaign

    bad = tiny_campaign.copy(deep=True)
    ne = bad["ne"].values
    ne[[3, 500, 900]] = [-1.0, 1e15, 2e15]
    bad["obs_lat"].values[[10, 800]] = [95.0, -120.0]
    with pytest.raises(ManyProblemsError) as whole:
        check_campaign(bad)
    monkeypatch.setattr(campaign_module, "OBS_PER_BLOCK", 7)
    with pytest.raises(ManyProblemsError) as blocks:
        check_campaign(bad)
    assert str(blocks.value) == str(whole.value)
    for text in ("1 zero, negative", "2 value(s) above 1e+14 m-3 (max 2e+15)",
                 "2 value(s) outside -90..90 (e.g. 95)"):
        assert text in str(whole.value)


@pytest.mark.parametrize(("precision", "native", "steps_dtype"), [
    ("bfloat16", False, torch.bfloat16),
    ("auto", True, torch.bfloat16),
    ("auto", False, torch.float32),
])
def test_bfloat16_precision_runs_the_training_steps_in_bfloat16(
    precision, native, steps_dtype, tiny_campaign, chapman_background, monkeypatch
):
    """``"auto"`` is bfloat16 on a CPU that computes it natively, float32 on another."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": native})
    seen = {"train": set(), "eval": set()}

    def record(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
            shape = (module.in_features, module.out_features)
            seen["train" if torch.is_grad_enabled() else "eval"].add((shape, output.dtype))

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        model = iof.fit(tiny_campaign, background=chapman_background, max_steps=16,
                        precision=precision, **TINY)
    finally:
        hook.remove()
    output_layer = (model.decoder[-1].in_features, model.decoder[-1].out_features)
    # the steps' products, physics terms included, but the residual and log-variance
    assert {dtype for shape, dtype in seen["train"] if shape != output_layer} == {steps_dtype}
    assert {dtype for shape, dtype in seen["train"] if shape == output_layer} == {torch.float32}
    assert {dtype for _, dtype in seen["eval"]} == {torch.float32}  # validation, calibration
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert np.isfinite(model.history[["data", "val_rmse"]].to_numpy()).all()
    assert model.config.precision == precision


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        iof.FitConfig(precision="float16")

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import ionofield as iof
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError, CoverageError
from ionofield.nn.recurrent import sample_direction
from ionofield.sphere import Cells
from ionofield.tec_cache import HourlyTECCache, tec_direction
from tests.conftest import START, TINY, indices_dataset, observations, tec_dataset

MINUTE = np.timedelta64(1, "m")
HOUR = np.timedelta64(1, "h")


def tiny_model(*, corrected: bool = True) -> iof.RSTMRF:
    """A small untrained model; ``corrected`` gives its head a non-zero correction."""
    torch.manual_seed(0)
    model = iof.RSTMRF(iof.FitConfig(**{k: v for k, v in TINY.items() if k != "progress"}))
    if corrected:  # otherwise the head is exactly the reference and hides the ConvLSTM
        torch.nn.init.normal_(model.direction_head.correction.weight, std=0.1)
        torch.nn.init.normal_(model.direction_head.correction.bias, std=0.1)
    return model.eval()


@pytest.fixture(scope="module")
def drivers(tiny_campaign) -> HourlyDrivers:
    return HourlyDrivers.from_campaign(tiny_campaign)


@pytest.fixture()
def model() -> iof.RSTMRF:
    return tiny_model()


def uncached(model: iof.RSTMRF, drivers: HourlyDrivers, hours) -> torch.Tensor:
    seqs = torch.from_numpy(drivers.tec_sequences(np.asarray(hours), model.config.seq_len))
    lat, lon = torch.from_numpy(drivers.tec_lat), torch.from_numpy(drivers.tec_lon)
    with torch.no_grad():
        return model.direction_field(seqs, lat, lon)[0]


def sample(maps: torch.Tensor, index, lat, lon, drivers: HourlyDrivers) -> torch.Tensor:
    """Each point reads map ``index`` (no blend)."""
    index = np.asarray(index)
    one_map = Cells(index, index, np.zeros(index.shape))
    return sample_direction(maps, one_map, np.asarray(lat), np.asarray(lon), drivers.tec_lat,
                            drivers.tec_lon)


def test_hits_and_misses_one_convlstm_call_per_batch_of_misses(model, drivers, monkeypatch):
    calls = []
    original = model.direction_field

    def counting(seqs, lat, lon, lead):
        calls.append(seqs.shape[0])
        return original(seqs, lat, lon, lead)

    monkeypatch.setattr(model, "direction_field", counting)
    cache = HourlyTECCache(model, drivers)
    assert cache.get_stats() == dict(hits=0, misses=0, hit_rate=0.0, size=0, max_size=100)
    first = cache.fields(np.array([2, 5, 7]))
    assert calls == [3]  # the three misses in one ConvLSTM call
    assert cache.get_stats() == dict(hits=0, misses=3, hit_rate=0.0, size=3, max_size=100)
    second = cache.fields(np.array([7, 2, 5, 5]))  # a repeated hour counts once
    assert calls == [3]
    assert cache.get_stats() == dict(hits=3, misses=3, hit_rate=0.5, size=3, max_size=100)
    assert torch.equal(second[:3], first[[2, 0, 1]]) and torch.equal(second[3], first[1])
    cache.fields(np.array([5, 9]))  # one hit, one miss: only the miss is computed
    assert calls == [3, 1]
    assert cache.get_stats() == dict(hits=4, misses=4, hit_rate=0.5, size=4, max_size=100)
    cache.clear()
    assert cache.get_stats() == dict(hits=0, misses=0, hit_rate=0.0, size=0, max_size=100)


def test_lru_eviction_order(model, drivers):
    cache = HourlyTECCache(model, drivers, max_size=2)
    for hour in (1, 2, 1, 3):  # the re-read of 1 makes 2 the least recently used
        cache.field(hour)
    assert cache.get_stats()["size"] == 2
    cache.field(1)
    assert cache.get_stats()["hits"] == 2  # 1 is still held
    cache.field(2)
    assert cache.get_stats()["misses"] == 4  # 2 was evicted when 3 came in
    cache.field(1)  # 1 was used after 3: 3 went out when 2 came back
    cache.field(3)
    assert cache.get_stats() == dict(hits=3, misses=5, hit_rate=3 / 8, size=2, max_size=2)


def test_more_hours_in_one_call_than_the_cache_holds(model, drivers):
    cache = HourlyTECCache(model, drivers, max_size=2, batch_hours=3)
    hours = np.arange(8)
    torch.testing.assert_close(cache.fields(hours), uncached(model, drivers, hours))
    assert cache.get_stats()["size"] == 2


@pytest.mark.parametrize("batch_hours", [1, 4, 48], ids=lambda b: f"batch{b}")
def test_cached_field_equals_uncached_computation(model, drivers, batch_hours):
    cache = HourlyTECCache(model, drivers, batch_hours=batch_hours)
    hours = np.array([0, 3, 4, 12])
    expected = uncached(model, drivers, hours)
    assert not torch.allclose(expected[:, 0], torch.ones_like(expected[:, 0]))
    torch.testing.assert_close(cache.fields(hours), expected)  # computed
    torch.testing.assert_close(cache.fields(hours), expected)  # from the cache
    assert not cache.fields(hours).requires_grad


def test_new_weights_drop_the_stored_fields(model, drivers):
    cache = HourlyTECCache(model, drivers)
    before = cache.field(4)
    with torch.no_grad():
        model.direction_head.correction.bias.add_(0.5)
    after = cache.field(4)
    assert cache.get_stats()["misses"] == 2
    torch.testing.assert_close(after, uncached(model, drivers, [4])[0])
    torch.testing.assert_close(after - before, torch.full_like(before, 0.5))
    model.load_state_dict(tiny_model(corrected=False).state_dict())
    torch.testing.assert_close(cache.field(4), uncached(model, drivers, [4])[0])
    assert cache.get_stats()["misses"] == 3


@pytest.mark.parametrize("minute", [0, 1, 15, 20, 30, 45, 59, 60])
def test_minute_times_are_the_cos2_blend_of_the_hours(model, drivers, minute):
    """Between hours 4 and 5: w0 = cos^2(pi f / 2) with f = minute / 60, exact at the hours."""
    cache = HourlyTECCache(model, drivers)
    rng = np.random.default_rng(minute)
    lat = torch.from_numpy(rng.uniform(-89.0, 89.0, 50))
    lon = torch.from_numpy(rng.uniform(-180.0, 180.0, 50))
    times = np.full(50, START + 4 * HOUR + minute * MINUTE)
    got = cache.at(times, lat, lon)
    assert cache.get_stats()["misses"] == (1 if minute in (0, 60) else 2)  # hours with weight
    maps = cache.fields(np.array([4, 5]))
    at4 = sample(maps, np.zeros(50, dtype=np.int64), lat, lon, drivers)
    at5 = sample(maps, np.ones(50, dtype=np.int64), lat, lon, drivers)
    if minute == 0:
        assert torch.equal(got, at4)
    elif minute == 60:
        assert torch.equal(got, at5)
    else:
        w0 = np.cos(np.pi * minute / 120.0) ** 2
        torch.testing.assert_close(got, w0 * at4 + (1.0 - w0) * at5)


def test_at_many_hours_equals_sampling_every_map_at_every_point(model, drivers):
    """The per-hour grouping of ``at`` against the plain all-maps sampling."""
    rng = np.random.default_rng(3)
    n = 400
    minutes = np.concatenate([rng.integers(0, 12 * 60, n - 3), [0, 300, 12 * 60]])
    times = START + minutes * MINUTE
    lat = torch.from_numpy(rng.uniform(-90.0, 90.0, n))
    lon = torch.from_numpy(rng.uniform(-400.0, 400.0, n))
    got = HourlyTECCache(model, drivers).at(times, lat, lon)
    i0, i1, w0, w1 = drivers.bracket(times)
    maps = uncached(model, drivers, np.arange(drivers.n_hours))
    at0, at1 = sample(maps, i0, lat, lon, drivers), sample(maps, i1, lat, lon, drivers)
    expected = torch.from_numpy(w0)[:, None] * at0 + torch.from_numpy(w1)[:, None] * at1
    assert got.shape == (n, 2)
    torch.testing.assert_close(got, expected)


def test_training_mode_bypasses_the_cache_and_gradients_reach_the_convlstm(model, drivers):
    model.train()
    cache = HourlyTECCache(model, drivers)
    times = START + np.array([90, 95, 400]) * MINUTE
    lat = torch.tensor([10.0, -20.0, 45.0])
    lon = torch.tensor([0.0, 100.0, -170.0])
    for _ in range(2):
        model.zero_grad()
        out = cache.at(times, lat, lon)
        assert out.requires_grad
        out.pow(2).sum().backward()
        for name, p in model.convlstm.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert cache.get_stats() == dict(hits=0, misses=0, hit_rate=0.0, size=0, max_size=100)


def test_bad_sizes_and_times(model, drivers):
    with pytest.raises(ConfigError, match="max_size"):
        HourlyTECCache(model, drivers, max_size=0)
    cache = HourlyTECCache(model, drivers)
    with pytest.raises(CoverageError):
        cache.at([START - HOUR], torch.zeros(1), torch.zeros(1))
    with pytest.raises(ConfigError, match="2 latitudes"):
        cache.at([START], torch.zeros(2), torch.zeros(2))


# -- the labelled field ----------------------------------------------------------------


def sine_campaign() -> xr.Dataset:
    """TEC = 20 + 10 sin(lat) TECU at every hour: its gradient points due north."""
    tec = tec_dataset()
    tec["tec"][:] = (20.0 + 10.0 * np.sin(np.deg2rad(tec["lat"]))).astype(np.float32)
    return iof.campaign(obs=observations(4), tec=tec, indices=indices_dataset())


def test_data_direction_of_a_sine_map_points_north():
    ds = sine_campaign()
    times = START + np.array([0, 30, 61, 12 * 60]) * MINUTE
    field = tec_direction(ds, times, source="data")
    assert field["north"].dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(field["time"].values, times)
    assert field.sizes["lon"] == ds.sizes["lon"] - 1 == 12  # no repeated +180 column
    assert float(field["lon"].max()) < 180.0 and bool((field["lat"].diff("lat") > 0).all())
    np.testing.assert_allclose(field["north"].values, 1.0, atol=1e-6)
    np.testing.assert_allclose(field["east"].values, 0.0, atol=1e-6)


def test_untrained_model_field_is_the_data_direction(tiny_campaign):
    """The head starts at the finite-difference reference, at the hours and between."""
    model = tiny_model(corrected=False)
    times = START + np.array([0, 17, 240, 330, 719]) * MINUTE
    from_model = tec_direction(tiny_campaign, times, model=model)
    from_data = tec_direction(tiny_campaign, times, source="data")
    xr.testing.assert_allclose(from_model.drop_attrs(), from_data.drop_attrs())
    assert from_model["north"].attrs["source"] == "model"
    assert from_model.sizes == {"time": 5, "lat": 11, "lon": 12}


def test_labelled_field_matches_the_cache_at_the_nodes(model, drivers, tiny_campaign):
    times = START + np.array([125, 600]) * MINUTE
    field = tec_direction(tiny_campaign, times, model=model)
    lat2, lon2 = np.meshgrid(drivers.tec_lat, drivers.tec_lon, indexing="ij")
    for k, t in enumerate(times):
        at = HourlyTECCache(model, drivers).at(
            np.full(lat2.size, t), torch.from_numpy(lat2.ravel()), torch.from_numpy(lon2.ravel())
        )
        np.testing.assert_allclose(
            at[:, 0].numpy(), field["north"].values[k].ravel(), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            at[:, 1].numpy(), field["east"].values[k].ravel(), rtol=1e-5, atol=1e-6
        )


def test_default_times_are_the_campaign_hours(model, tiny_campaign):
    field = tec_direction(tiny_campaign, model=model)
    np.testing.assert_array_equal(field["time"].values, tiny_campaign["time"].values)


def test_accessor_equals_function(model, tiny_campaign):
    times = START + np.array([0, 45, 500]) * MINUTE
    xr.testing.assert_identical(
        tiny_campaign.rstmrf.tec_direction(times, model=model),
        tec_direction(tiny_campaign, times, model=model),
    )
    xr.testing.assert_identical(
        tiny_campaign.rstmrf.tec_direction(times, source="data"),
        tec_direction(tiny_campaign, times, source="data"),
    )
    ds = tiny_campaign.copy()  # its own accessor: the session fixture's stays model-free
    ds.rstmrf._model = model
    xr.testing.assert_identical(
        ds.rstmrf.tec_direction(times), tec_direction(ds, times, model=model)
    )


def test_model_source_needs_a_model(tiny_campaign):
    with pytest.raises(ConfigError, match="model="):
        tiny_campaign.copy().rstmrf.tec_direction()
    with pytest.raises(ConfigError, match="model="):
        tec_direction(tiny_campaign)
    with pytest.raises(ConfigError, match="source"):
        tec_direction(tiny_campaign, source="tec")

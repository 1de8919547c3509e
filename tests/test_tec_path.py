"""The TEC path at hours without a native map: flags, sequences, leads and the forecast loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import ionofield as iof
from ionofield.align import align_tec, hourly_axis
from ionofield.background import BackgroundField
from ionofield.drivers import HourlyDrivers
from ionofield.observations import ObservationStore
from ionofield.tec_cache import HourlyTECCache
from ionofield.training import _Trainer
from tests.conftest import HOURS, START, TINY, indices_dataset, observations, tec_dataset

CONFIG = {k: v for k, v in TINY.items() if k != "progress"}
FORECAST = {**CONFIG, "w_tec_forecast": 1.0}
HOUR = np.timedelta64(1, "h")


@pytest.fixture(scope="module")
def two_hourly() -> xr.Dataset:
    """The tiny campaign with a TEC map every 2 hours (00, 02, ..., 12)."""
    return iof.campaign(obs=observations(), tec=tec_dataset().isel(time=slice(0, None, 2)),
                        indices=indices_dataset())


def _random_head(model: iof.RSTMRF) -> iof.RSTMRF:
    torch.manual_seed(0)
    for conv in (model.direction_head.correction, model.direction_head.tendency):
        torch.nn.init.normal_(conv.weight, std=0.1)
        torch.nn.init.normal_(conv.bias, std=0.1)
    return model


@pytest.mark.parametrize(("step_min", "offset_min"), [(15, 0), (30, 10), (60, 0), (120, 0),
                                                      (120, 60), (180, 0)],
                         ids=lambda v: f"{v}min")
def test_align_tec_flags_exactly_the_hours_with_a_native_map(step_min, offset_min):
    native = START + np.arange(offset_min, 12 * 60 + 1, step_min) * np.timedelta64(1, "m")
    tec = tec_dataset().isel(time=[0] * native.size).assign_coords(time=native)
    hours = START + np.arange(1, 12) * HOUR
    out = align_tec(tec, hours, max_gap="3h")
    observed = out.tec_observed.values
    assert observed.dtype == np.int8
    np.testing.assert_array_equal(observed == 1, np.isin(hours, native))
    assert f"{int((observed == 0).sum())} interpolated" in out.attrs["time_alignment"]


def test_sequences_hold_only_native_maps_at_or_before_the_hour(two_hourly):
    drivers = HourlyDrivers.from_campaign(two_hourly)
    native = drivers.tec[::2]  # the maps at 00, 02, ..., 12
    np.testing.assert_array_equal(drivers.map_hours(), np.arange(0, HOURS, 2))
    hours = np.arange(HOURS)
    base, lead = drivers.latest_map(hours)
    np.testing.assert_array_equal(base, hours - hours % 2)
    np.testing.assert_array_equal(lead, hours % 2)
    seqs = drivers.tec_sequences(hours, 3)
    for h in hours:
        k = h // 2  # the latest native map at or before h
        expected = native[[max(k - 2, 0), max(k - 1, 0), k]]
        np.testing.assert_array_equal(seqs[h], expected)
    # An odd hour reads the sequence of the even hour before it, never the next map.
    np.testing.assert_array_equal(seqs[1::2], seqs[0:-1:2])


def test_hours_before_the_first_native_map_read_their_interpolated_maps():
    tec = tec_dataset()
    native = tec.isel(time=slice(1, None, 2)).assign_coords(
        time=tec.time.values[1::2] - np.timedelta64(30, "m"))  # maps at 00:30, 02:30, ...
    aligned = align_tec(native, hourly_axis(START + HOUR, START + 5 * HOUR))
    drivers = HourlyDrivers(aligned.time.values, np.zeros((5, 4)),
                            aligned.tec.values[..., :-1], aligned.lat.values,
                            aligned.lon.values[:-1], aligned.tec_observed.values.astype(bool))
    assert not drivers.tec_observed.any()  # no map lies on a whole hour
    np.testing.assert_array_equal(drivers.map_hours(), np.arange(5))
    base, lead = drivers.latest_map(np.arange(5))
    np.testing.assert_array_equal(base, np.arange(5))
    np.testing.assert_array_equal(lead, 0.0)


def test_the_field_at_an_odd_hour_does_not_read_the_next_map(two_hourly):
    """No leakage: changing the map after an odd hour leaves its direction unchanged."""
    model = _random_head(iof.RSTMRF(iof.FitConfig(**FORECAST)))
    drivers = HourlyDrivers.from_campaign(two_hourly)
    changed = HourlyDrivers(drivers.hours, drivers.features, drivers.tec.copy(),
                            drivers.tec_lat, drivers.tec_lon, drivers.tec_observed)
    changed.tec[6:] += 5.0 * np.sin(np.deg2rad(drivers.tec_lat))[:, None]  # from 06:00 on
    model.eval()
    first, second = (HourlyTECCache(model, d).fields(np.array([5, 6])) for d in (drivers,
                                                                                 changed))
    torch.testing.assert_close(first[0], second[0], rtol=0, atol=0)
    assert not torch.allclose(first[1], second[1])  # the map hour itself does read it


def test_the_head_moves_away_from_persistence_only_with_lead(two_hourly):
    model = _random_head(iof.RSTMRF(iof.FitConfig(**CONFIG)))
    drivers = HourlyDrivers.from_campaign(two_hourly)
    lat, lon = torch.from_numpy(drivers.tec_lat), torch.from_numpy(drivers.tec_lon)
    seqs = torch.from_numpy(drivers.tec_sequences(np.array([4, 4, 4]), model.config.seq_len))
    with torch.no_grad():
        fields, reference = model.direction_field(seqs, lat, lon, torch.tensor([0.0, 1.0, 2.0]))
    # Linear in the lead: the 1-hour field lies halfway between the 0- and 2-hour ones.
    torch.testing.assert_close(fields[1], 0.5 * (fields[0] + fields[2]))
    torch.testing.assert_close(reference[0], reference[2], rtol=0, atol=0)


def _trainer(campaign: xr.Dataset, chapman_background: xr.Dataset, **options) -> _Trainer:
    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(campaign, bg_field)
    config = iof.FitConfig(**{**FORECAST, **options})
    return _Trainer(iof.RSTMRF(config), data, HourlyDrivers.from_campaign(campaign), bg_field)


def test_forecast_loss_targets_the_next_native_maps_direction(two_hourly, chapman_background):
    """At initialisation the head is persistence: the loss is 1 - cos to the next map."""
    trainer = _trainer(two_hourly, chapman_background)
    drivers = trainer.drivers
    lat, lon = trainer.tec_lat, trainer.tec_lon
    rises_north = (20.0 + drivers.tec_lat / 10.0)[:, None] + 0.0 * drivers.tec_lon
    drivers.tec[4] = rises_north  # the base map at 04:00 rises to the north,
    drivers.tec[6] = rises_north[::-1]  # the next one (06:00) to the south: cos = -1
    drivers.tec[10] = drivers.tec[12] = rises_north  # 10:00 -> 12:00: unchanged, cos = 1
    bases = np.array([4, 10])
    features, reference = trainer.model.tec_features(
        torch.from_numpy(drivers.tec_sequences(bases, trainer.config.seq_len)), lat, lon)
    for one, expected in ((0, 2.0), (1, 0.0)):
        loss = trainer.tec_forecast(features[[one]], reference[[one]], bases[[one]])
        assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
    # The last map (12:00) has no next one: nothing to forecast.
    last = trainer.tec_forecast(features[[1]], reference[[1]], np.array([12]))
    assert float(last.detach()) == 0.0


def test_losses_by_cadence(two_hourly, tiny_campaign, chapman_background):
    """Hourly maps: no forecast term; 2-hourly: the anchor only at the map hours."""
    rng = np.random.default_rng(0)
    hourly = _trainer(tiny_campaign, chapman_background)
    assert not hourly.forecast_tec
    assert "tec_forecast" not in hourly.batch_losses(np.arange(128), rng)
    trainer = _trainer(two_hourly, chapman_background, collocation_hours=HOURS)
    assert trainer.forecast_tec
    losses = trainer.batch_losses(np.arange(128), rng)
    assert {"tec_direction", "tec_anchor", "tec_forecast"} <= set(losses)
    assert float(losses["tec_forecast"].detach()) > 0  # the tiny world's maps change every 2 h
    with torch.no_grad():  # an offset at map hours only moves the anchor
        trainer.model.direction_head.correction.bias.fill_(0.1)
    anchored = trainer.batch_losses(np.arange(128), np.random.default_rng(1))
    assert float(anchored["tec_anchor"].detach()) == pytest.approx(0.01, rel=1e-5)
    # Without the forecast (the default) every hour's aligned map is its own, as before.
    default = _trainer(two_hourly, chapman_background, w_tec_forecast=0.0)
    assert not default.forecast_tec
    base, lead = default.drivers.latest_map(np.arange(HOURS))
    np.testing.assert_array_equal(base, np.arange(HOURS))
    assert not lead.any()
    assert "tec_forecast" not in default.batch_losses(np.arange(128), rng)


def test_a_fit_learns_a_better_forecast_than_persistence(two_hourly, chapman_background):
    """The tiny world's maps rotate in longitude; training the path beats persistence."""
    trainer = _trainer(two_hourly, chapman_background, tec_feat_dim=8)
    drivers = trainer.drivers
    bases = drivers.map_hours()[:-1]
    seqs = torch.from_numpy(drivers.tec_sequences(bases, trainer.config.seq_len))
    path = [*trainer.model.convlstm.parameters(), *trainer.model.direction_head.parameters()]
    optimiser = torch.optim.Adam(path, lr=1e-2)

    def loss() -> torch.Tensor:
        features, reference = trainer.model.tec_features(seqs, trainer.tec_lat, trainer.tec_lon)
        return trainer.tec_forecast(features, reference, bases)

    persistence = float(loss().detach())
    for _ in range(60):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()
    assert float(loss().detach()) < 0.5 * persistence


def test_a_model_file_from_before_the_tendency_loads_as_persistence(tmp_path):
    from ionofield.checkpoint import write_payload
    from ionofield.model import MODEL_FORMAT

    model = _random_head(iof.RSTMRF(iof.FitConfig(**CONFIG)))
    state = {k: v for k, v in model.state_dict().items() if ".tendency." not in k}
    config = {k: v for k, v in model.config.to_dict().items() if k != "w_tec_forecast"}
    write_payload(tmp_path / "old.pt", MODEL_FORMAT,
                  {"config": config, "info": model.info, "state_dict": state})
    loaded = iof.load_model(tmp_path / "old.pt")
    for part in ("weight", "bias"):
        assert not getattr(loaded.direction_head.tendency, part).any()
        assert torch.equal(getattr(loaded.direction_head.correction, part),
                           getattr(model.direction_head.correction, part))

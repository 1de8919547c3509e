"""``device=``: which torch device a reconstruction runs on, and model files on any device.

These tests run on the CPU (a machine without a GPU runs them all, but for the two
that only a CPU-only torch can check); they check the plumbing: the names accepted and
refused, where the model and the tensors reaching the network live, and that a model
a user passes is left where it was.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import ionofield as iof
from ionofield._device import resolve_device, resolve_precision
from ionofield.cli import build_parser, main
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError
from ionofield.prediction import predict_residual
from tests.conftest import START, TINY, write_input_files

CPU = torch.device("cpu")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(),
                             reason="checks the message of a torch that sees no CUDA GPU")


def small_grid() -> xr.Dataset:
    return iof.grid(time=pd.date_range(START, periods=3, freq="97min"),
                    alt=np.arange(150.0, 601.0, 150.0), lat=np.arange(-60.0, 60.1, 60.0),
                    lon=np.arange(-180.0, 180.0, 90.0))


@pytest.fixture
def cpu_only(monkeypatch):
    """Make torch see neither a CUDA GPU nor MPS, so that "auto" is the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def network_calls(monkeypatch):
    """Record, for every call of the network, the model and its inputs' devices."""
    calls = []
    forward = iof.RSTMRF.forward

    def spy(self, coords, time_code, time_index=None):
        calls.append((self, coords.device, time_code.device, self.device))
        return forward(self, coords, time_code, time_index)

    monkeypatch.setattr(iof.RSTMRF, "forward", spy)
    return calls


# -- resolve_device ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["auto", None, " AUTO "])
def test_auto_takes_the_first_gpu_torch_sees_else_the_cpu(name):
    expected = ("cuda" if torch.cuda.is_available()
                else "mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device(name).type == expected


def test_auto_is_the_cpu_without_gpu(cpu_only):
    assert resolve_device("auto") == CPU


# -- resolve_precision ------------------------------------------------------------------


@pytest.mark.parametrize(("features", "expected"), [
    ({"avx512_bf16": True, "amx_bf16": False}, "bfloat16"),
    ({"avx512_bf16": False, "amx_bf16": True}, "bfloat16"),
    ({"avx512_bf16": False, "amx_bf16": False, "avx512": True}, "float32"),
    ({}, "float32"),
])
def test_auto_precision_is_bfloat16_where_the_cpu_computes_it_natively(features, expected,
                                                                        monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: features)
    assert resolve_precision("auto", CPU, where="reconstruct") == expected
    for given in ("float32", "bfloat16"):  # a named precision is kept on any CPU
        assert resolve_precision(given, CPU, where="reconstruct") == given


def test_auto_precision_is_float32_on_mps_and_unknown_names_are_refused():
    assert resolve_precision("auto", torch.device("mps"), where="reconstruct") == "float32"
    with pytest.raises(ConfigError, match=r"reconstruct: precision='half'; give one of "
                                          r"'auto', 'float32', 'bfloat16'"):
        resolve_precision("half", CPU, where="reconstruct")


@pytest.mark.parametrize("native", [True, False])
def test_reconstruct_records_what_auto_chose_and_computes_in_it(native, model, tiny_campaign,
                                                                 chapman_background,
                                                                 monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": native})
    options = dict(model=model, background=chapman_background, device="cpu")
    auto = iof.reconstruct(tiny_campaign, small_grid(), **options)
    chosen = "bfloat16" if native else "float32"
    assert auto.attrs["precision"] == chosen
    named = iof.reconstruct(tiny_campaign, small_grid(), precision=chosen, **options)
    xr.testing.assert_equal(auto.compute(), named.compute())


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu ", CPU], ids=str)
def test_cpu_in_any_spelling(name):
    assert resolve_device(name) == CPU


@pytest.mark.parametrize("name", [
    "gpu", "xla", "meta", "", 1.5,
    pytest.param(3, marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="an int is a CUDA GPU's number where torch sees one")),
], ids=repr)
def test_bad_names_are_refused_with_the_choices(name):
    with pytest.raises(ConfigError, match=rf"(?s)device = {re.escape(repr(name))}[: ].*'auto'"
                       r".*'cpu', 'cuda', 'cuda:1' or 'mps'"):
        resolve_device(name)


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:1", torch.device("cuda")], ids=str)
def test_cuda_on_a_cpu_only_torch_says_to_install_a_cuda_build(name):
    with pytest.raises(ConfigError, match=r"sees no CUDA GPU; install a CUDA build of torch.*"
                       r"download\.pytorch\.org/whl/cu126.*device='cpu'"):
        resolve_device(name)


# -- model files and RSTMRF.device -------------------------------------------------------


def test_load_model_onto_the_cpu_predicts_as_the_saved_model(model, tiny_campaign, tmp_path):
    path = tmp_path / "model.pt"
    model.save(path)
    raw = torch.load(path, weights_only=True)  # no map_location: as written
    assert {value.device for value in raw["state_dict"].values()} == {CPU}
    loaded = iof.load_model(path, device="cpu")
    assert loaded.device == CPU and iof.load_model(path).device == CPU
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    grid = small_grid()
    axes = [grid[name].values for name in ("time", "alt", "lat", "lon")]
    for got, expected in zip(predict_residual(loaded, drivers, *axes),
                             predict_residual(model, drivers, *axes), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_load_model_checks_the_device_before_reading(tmp_path):
    with pytest.raises(ConfigError, match=r"device = 'gpu'"):
        iof.load_model(tmp_path / "not-there.pt", device="gpu")


def test_device_is_the_weights_and_read_only(model):
    assert model.device == next(model.parameters()).device
    with pytest.raises(AttributeError):
        model.device = CPU


# -- reconstruct ------------------------------------------------------------------------


def test_reconstruct_on_the_cpu_equals_the_default(model, tiny_campaign, chapman_background,
                                                   cpu_only, tmp_path):
    default = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                              background=chapman_background)
    path = tmp_path / "model.pt"
    model.save(path)
    for given in ("cpu", CPU):
        for source in (model, path):
            on_cpu = iof.reconstruct(tiny_campaign, small_grid(), model=source,
                                     background=chapman_background, device=given)
            xr.testing.assert_equal(on_cpu.compute(), default.compute())
            assert on_cpu.attrs["device"] == default.attrs["device"] == "cpu"


@pytest.mark.parametrize("entry", ["iof.reconstruct", "accessor"])
def test_the_network_sees_tensors_on_the_requested_device(entry, model, tiny_campaign,
                                                          chapman_background, network_calls):
    ds = tiny_campaign.copy()  # its own accessor
    options = dict(model=model, background=chapman_background, chunks=1, device="cpu")
    vol = (ds.rstmrf.reconstruct(small_grid(), **options) if entry == "accessor"
           else iof.reconstruct(ds, small_grid(), **options))
    assert network_calls == []  # lazy
    vol.compute(scheduler="threads")
    assert network_calls, "the network was not called"
    assert {tuple(devices) for _, *devices in network_calls} == {(CPU, CPU, CPU)}
    assert vol.attrs["device"] == "cpu"


@pytest.mark.parametrize("entry", ["iof.reconstruct", "accessor"])
def test_a_bad_device_is_refused_when_the_volume_is_built(entry, model, tiny_campaign,
                                                          chapman_background, network_calls):
    ds = tiny_campaign.copy()
    options = dict(model=model, background=chapman_background, device="gpu")
    with pytest.raises(ConfigError, match=r"device = 'gpu' is not a torch device.*'cpu'"):
        if entry == "accessor":
            ds.rstmrf.reconstruct(small_grid(), **options)
        else:
            iof.reconstruct(ds, small_grid(), **options)
    assert network_calls == []


def test_the_given_model_is_neither_moved_nor_changed(model, tiny_campaign, chapman_background,
                                                      network_calls):
    mine = copy.deepcopy(model).train()
    weights = {name: value.clone() for name, value in mine.state_dict().items()}
    vol = iof.reconstruct(tiny_campaign, small_grid(), model=mine, background=chapman_background,
                          device="cpu")
    assert mine.training and mine.device == CPU
    assert all(torch.equal(value, weights[name]) for name, value in mine.state_dict().items())
    with torch.no_grad():
        mine.decoder[-1].bias.add_(1.0)  # after the call: not in the volume
    reference = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                                background=chapman_background, device="cpu")
    xr.testing.assert_equal(vol.compute(), reference.compute())
    assert network_calls and all(call[0] is not mine for call in network_calls)
    assert mine.training


# -- command line ---------------------------------------------------------------------


def test_cli_reconstruct_takes_device(model, tmp_path, monkeypatch, capsys, pyiri_calls):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path / "cache"))
    write_input_files(tmp_path)
    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = {"kind": "iri"}
    iri_model.save(tmp_path / "model.pt")
    common = ["reconstruct", "--ro", str(tmp_path / "ro" / "ionPrf_*"),
              "--tec", str(tmp_path / "*.24i"), "--model", str(tmp_path / "model.pt"),
              "--start", "2024-05-10T02:00", "--end", "2024-05-10T03:00",
              "--alt", "150:450:150", "--lat=-60,0,60", "--lon=-180:90:90"]
    assert build_parser().parse_args([*common, "--out", "o"]).device == "auto"
    assert main([*common, "--device", "gpu", "--out", str(tmp_path / "bad.nc")]) == 2
    assert "ionofield reconstruct: error: device = 'gpu'" in capsys.readouterr().err
    assert not (tmp_path / "bad.nc").exists()
    assert main(["-q", *common, "--device", "cpu", "--out", str(tmp_path / "ne.nc")]) == 0
    with xr.open_dataset(tmp_path / "ne.nc") as vol:
        assert vol.attrs["device"] == "cpu"


# -- fit ----------------------------------------------------------------------------------


def test_fit_runs_the_network_and_its_inputs_on_the_requested_device(
    tiny_campaign, chapman_background, network_calls
):
    fitted = iof.fit(tiny_campaign, background=chapman_background, max_steps=8, device="cpu",
                     **TINY)
    # data batches, collocation points (with the TEC path) and validation: all on it
    assert len(network_calls) >= 2 * 8
    assert {tuple(devices) for _, *devices in network_calls} == {(CPU, CPU, CPU)}
    assert fitted.device == CPU and fitted.info["device"] == "cpu"


def test_fit_refuses_a_device_this_machine_cannot_use(tiny_campaign, chapman_background):
    with pytest.raises(ConfigError, match=r"device = 'gpu' is not a torch device"):
        iof.fit(tiny_campaign, background=chapman_background, device="gpu", **TINY)

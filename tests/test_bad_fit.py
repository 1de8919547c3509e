"""Bad-input catalogue of fitting and of model files (issue 17).

One parametrised test per public entry point: ``iof.fit`` / ``ds.rstmrf.fit``,
``iof.FitConfig``, ``RSTMRF.save`` and ``iof.load_model``. Each case names the bad input
in its id and asserts the ionofield error class and that the message names the variable
or file at fault and the fix, or, for input that is accepted, the warning and the
correct result.

The cases use the public API only (``import ionofield as iof``; the error classes are
looked up by name in ``iof.errors``), so the same table runs against older versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import ionofield as iof
from tests.conftest import TINY, background_dataset, indices_dataset, observations, tec_dataset


class World:
    """What the cases are built from: a tiny campaign, its background, files in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @cached_property
    def ds(self) -> xr.Dataset:
        return iof.campaign(obs=observations(), tec=tec_dataset(), indices=indices_dataset())

    @cached_property
    def background(self) -> xr.Dataset:
        return background_dataset()

    def edited(self, name: str, index: int, value: float) -> xr.Dataset:
        """The campaign with one value of ``name`` changed after ``campaign()``."""
        ds = self.ds.copy(deep=True)
        ds[name].values[index] = value
        return ds

    def fit(self, ds: xr.Dataset | None = None, **options: Any) -> Any:
        """A one-epoch fit of the tiny campaign (``options`` on top of the tiny settings)."""
        settings = {"background": self.background, **TINY, "max_steps": 8, **options}
        return iof.fit(self.ds if ds is None else ds, **settings)

    @cached_property
    def model(self) -> Any:
        return self.fit()

    @cached_property
    def model_file(self) -> Path:
        path = self.folder / "model.pt"
        self.model.save(path)
        return path

    @cached_property
    def checkpoint(self) -> Path:
        path = self.folder / "train.ckpt"
        self.fit(checkpoint=path, seed=0)
        return path

    def copy(self, source: Path, name: str, change: Callable[[bytes], bytes]) -> Path:
        """A changed copy of ``source`` in the folder."""
        path = self.folder / name
        path.write_bytes(change(source.read_bytes()))
        return path


def flip_bit_in_weights(data: bytes, tensor: torch.Tensor) -> bytes:
    """``data`` with one bit of the exponent of ``tensor``'s first float flipped.

    The bytes of a float32 tensor appear as they are in a file of ``torch.save``: the
    flip multiplies that weight by 2**64 or 2**-64, the damage a bad disk sector or a
    bad copy does.
    """
    needle = tensor.detach().contiguous().numpy().tobytes()
    offset = data.find(needle)
    assert offset >= 0, "tensor bytes not found in the file"
    damaged = bytearray(data)
    damaged[offset + 3] ^= 0x40  # bit 30 of the little-endian float32: the exponent's top
    return bytes(damaged)


def largest_weight(model: torch.nn.Module) -> torch.Tensor:
    return max(model.state_dict().values(), key=lambda t: t.numel())


@dataclass(frozen=True)
class Case:
    """A bad input: what to do with it, the error class (by name) and message it gets."""

    id: str
    run: Callable[[World], Any]
    error: str
    match: str

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("bad_fit"))


def refused(case: Case, world: World) -> None:
    """Assert that ``case`` raises its error class with a message matching its pattern."""
    with pytest.raises(getattr(iof.errors, case.error), match=case.match):
        case.run(world)


# --------------------------------------------------------------------------- fit
def _nan_background(world: World) -> Any:
    background = world.background.copy(deep=True)
    background["ne_background"][:, :, 6, :] = np.nan  # the equator row
    return world.fit(background=background)


def _other_observations(world: World) -> Any:
    return world.fit(world.edited("ne", 5, 2e11), resume=world.checkpoint, seed=0, max_steps=16)


def _other_drivers(world: World) -> Any:
    return world.fit(world.edited("kp", 3, 9.0), resume=world.checkpoint, seed=0, max_steps=16)


def _other_seed(world: World) -> Any:
    return world.fit(resume=world.checkpoint, seed=1, max_steps=16)


def _corrupt_checkpoint(world: World) -> Any:
    payload = torch.load(world.checkpoint, weights_only=True)
    tensor = max(payload["model"].values(), key=lambda t: t.numel())
    damaged = world.copy(world.checkpoint, "flipped.ckpt",
                         lambda data: flip_bit_in_weights(data, tensor))
    return world.fit(resume=damaged, seed=0, max_steps=16)


FIT_CASES = [
    Case("lr-10", lambda w: w.fit(lr=10.0), "DivergenceError",
         r"fit diverged at step \d+ of 8: the (loss term '\w+'|gradient norm) is "
         r"(inf|nan).*lr = 10, far above the default 0.0003, is too high.*lower lr"),
    Case("lr-1-without-grad-clip", lambda w: w.fit(lr=1.0, grad_clip=0.0), "DivergenceError",
         r"fit diverged (at step \d+ of 8|by step \d+).*lr = 1,.*too high.*or grad_clip > 0"),
    Case("ne-inf-set-after-campaign", lambda w: w.fit(w.edited("ne", 0, np.inf)),
         "ManyProblemsError",
         r"(?s)campaign observations.*'ne' holds 1 zero, negative or NaN/infinite values; drop "
         r"them"),
    Case("ne-nan-set-after-campaign", lambda w: w.fit(w.edited("ne", 7, np.nan)),
         "ManyProblemsError", r"'ne' holds 1 zero, negative or NaN/infinite values"),
    Case("ne-zero", lambda w: w.fit(w.edited("ne", 3, 0.0)), "ManyProblemsError",
         r"'ne' holds 1 zero, negative or NaN/infinite values.*obs.where\(obs.ne > 0"),
    Case("ne-negative", lambda w: w.fit(w.edited("ne", 3, -1e11)), "ManyProblemsError",
         r"'ne' holds 1 zero, negative or NaN/infinite values"),
    Case("obs-alt-nan", lambda w: w.fit(w.edited("obs_alt", 2, np.nan)), "ManyProblemsError",
         r"(?s)campaign observations.*'alt' holds 1 NaN or infinite value\(s\); drop them"),
    Case("kp-nan-hour", lambda w: w.fit(w.edited("kp", 4, np.nan)), "CampaignError",
         r"'kp' is non-finite at 1 of 13 hours"),
    Case("f107-inf-hour", lambda w: w.fit(w.edited("f107", 0, np.inf)), "UnitsError",
         r"indices from the campaign: f107 holds 1 value\(s\) outside 30..600 \(from inf"),
    Case("background-nan-at-the-equator", _nan_background, "ManyProblemsError",
         r"background ne_background: 1 problem\(s\):\s+- 5772 NaN or infinite values"),
    Case("ds-is-a-path", lambda w: iof.fit("campaign.nc"), "CampaignError",
         r"ds is a str \('campaign\.nc'\), not a campaign Dataset.*ionofield\.campaign"),
    Case("option-typo-max-step", lambda w: w.fit(max_step=3), "ConfigError",
         r"fit: unknown option 'max_step' \(did you mean 'max_steps'\?\)"),
    Case("option-retired-epochs", lambda w: w.fit(epochs=3), "ConfigError",
         r"fit: 'epochs' was retired in ionofield 0\.2: use max_steps \(optimiser steps; "
         r"a step draws batch_size points\) or time_limit \(seconds\)"),
    Case("device-unknown", lambda w: w.fit(device="gpu"), "ConfigError",
         r"device = 'gpu' is not a torch device.*'cpu', 'cuda', 'cuda:1' or 'mps'"),
    Case("option-typo-seeds-via-accessor", lambda w: w.ds.rstmrf.fit(seeds=3), "ConfigError",
         r"fit: unknown option 'seeds' \(did you mean 'seed'\?\)"),
    Case("config-is-a-path", lambda w: w.fit(config="fit.json"), "ConfigError",
         r"config is a str; pass an ionofield\.FitConfig or a mapping of its fields"),
    Case("config-mapping-with-typo", lambda w: w.fit(config={"max_step": 2}), "ConfigError",
         r"unknown option 'max_step' \(did you mean 'max_steps'\?\)"),
    Case("config-mapping-retired", lambda w: w.fit(config={"weight_average_epochs": 2}),
         "ConfigError", r"'weight_average_epochs' was retired.*use weight_average_steps"),
    Case("observation-errors-unknown", lambda w: w.fit(observation_errors="ne_err"),
         "ConfigError", r"observation_errors = 'ne_err' \(str\) must be one of 'auto', "
         r"'model', 'none'"),
    Case("max-steps-text", lambda w: w.fit(max_steps="2"), "ConfigError",
         r"max_steps = '2' \(str\) must be an int, e.g. 4000"),
    Case("max-steps-fraction", lambda w: w.fit(max_steps=2.5), "ConfigError",
         r"max_steps = 2\.5 \(float\) must be an int"),
    Case("time-limit-negative", lambda w: w.fit(time_limit=-5), "ConfigError",
         r"time_limit = -5\.0 must be > 0 seconds, or None"),
    Case("time-limit-text", lambda w: w.fit(time_limit="10 min"), "ConfigError",
         r"time_limit = '10 min' \(str\) must be a number"),
    Case("lr-nan", lambda w: w.fit(lr=math.nan), "ConfigError",
         r"lr = nan \(float\) must be a finite number"),
    Case("batch-size-zero", lambda w: w.fit(batch_size=0), "ConfigError",
         r"batch_size = 0 must be >= 1"),
    Case("seed-text", lambda w: w.fit(seed="1"), "ConfigError",
         r"seed = '1' must be an int >= 0"),
    Case("everything-held-out", lambda w: w.fit(val_fraction=0.6, val_block_hours=100.0),
         "ConfigError",
         r"val_fraction = 0\.6 holds out all 1116 observations.*smaller val_fraction"),
    Case("checkpoint-is-a-folder", lambda w: w.fit(checkpoint=w.folder), "ConfigError",
         r"checkpoint = .* is a folder; give the name of the training checkpoint file"),
    Case("resume-other-observations", _other_observations, "ConfigError",
         r"train\.ckpt: cannot resume: .*other observations: 1116 then, 1116 now \(as many, "
         r"other values\).*Resume with the campaign, seed and options it was written with"),
    Case("resume-other-drivers", _other_drivers, "ConfigError",
         r"cannot resume: .*other drivers \(kp, f107, f107_81 or tec values\)"),
    Case("resume-other-seed", _other_seed, "ConfigError",
         r"cannot resume: .*another seed: 0 then, 1 now"),
    Case("resume-other-lr", lambda w: w.fit(resume=w.checkpoint, seed=0, max_steps=16, lr=1e-2),
         "ConfigError", r"cannot resume: .*different options \['lr'\] \(lr = 0\.003 then, 0\.01"),
    Case("resume-flipped-bit", _corrupt_checkpoint, "CheckpointError",
         r"flipped\.ckpt: damaged: checksum mismatch.*write it again"),
    Case("resume-truncated",
         lambda w: w.fit(resume=w.copy(w.checkpoint, "cut.ckpt", lambda d: d[: len(d) // 2]),
                         seed=0),
         "CheckpointError", r"cut\.ckpt: cannot be read as an ionofield training checkpoint.*"
         r"truncated or damaged"),
    Case("resume-a-model-file", lambda w: w.fit(resume=w.model_file), "CheckpointError",
         r"model\.pt: not an ionofield training checkpoint file.*pass the file given as "
         r"checkpoint= to an earlier fit"),
]


@pytest.mark.parametrize("case", [c.param() for c in FIT_CASES])
def test_fit_refuses(case: Case, world: World) -> None:
    refused(case, world)


def test_fit_warns_when_nothing_is_held_out(world: World) -> None:
    """All profiles in one 100-hour block: validation is the training data; say so."""
    with pytest.warns(iof.errors.DataWarning,
                      match=r"nothing held out for validation \(the observations start within "
                            r"one block of val_block_hours = 100 h\).*the 1116 training "
                            r"observations, and sigma is not calibrated"):
        model = world.fit(val_block_hours=100.0)
    assert model.info["held_out"] is False
    assert model.info["n_val"] == 0 and model.info["n_train"] == 1116
    assert model.info["sigma_factor"] == 1.0 and float(model.log_var_shift) == 0.0
    assert "validation: NONE held out: scores are on the training data" in repr(model)
    assert not model.nonfinite_tensors()
    held = world.model
    assert held.info["held_out"] is True and held.info["n_val"] > 0
    assert f"validation: {held.info['n_val']} held-out observations" in repr(held)


def test_fit_takes_a_mapping_as_config(world: World) -> None:
    """``config={...}`` is the FitConfig of that mapping (it was an AttributeError)."""
    options = {k: v for k, v in TINY.items() if k != "progress"}
    from_mapping = iof.fit(world.ds, background=world.background, progress=False,
                           config={**options, "max_steps": 8})
    from_config = iof.fit(world.ds, background=world.background, progress=False,
                          config=iof.FitConfig(**options, max_steps=8))
    assert from_mapping.config == from_config.config
    mapped, direct = from_mapping.state_dict(), from_config.state_dict()
    assert all(torch.equal(mapped[k], direct[k]) for k in direct)


# --------------------------------------------------------------------------- FitConfig
CONFIG_CASES = [
    Case("max-steps-text", lambda w: iof.FitConfig(max_steps="2"), "ConfigError",
         r"FitConfig: max_steps = '2' \(str\) must be an int, e.g. 4000"),
    Case("max-steps-bool", lambda w: iof.FitConfig(max_steps=True), "ConfigError",
         r"max_steps = True \(bool\) must be an int"),
    Case("retired-epochs", lambda w: iof.FitConfig(epochs=50), "ConfigError",
         r"FitConfig: 'epochs' was retired in ionofield 0\.2: use max_steps"),
    Case("constructor-typo", lambda w: iof.FitConfig(lrr=0.1), "ConfigError",
         r"FitConfig: unknown option 'lrr' \(did you mean 'lr'\?\)"),
    Case("lr-text", lambda w: iof.FitConfig(lr="1e-3"), "ConfigError",
         r"lr = '1e-3' \(str\) must be a number, e.g. 0\.0003"),
    Case("lr-inf", lambda w: iof.FitConfig(lr=math.inf), "ConfigError",
         r"lr = inf \(float\) must be a finite number"),
    Case("w-chapman-nan", lambda w: iof.FitConfig(w_chapman=math.nan), "ConfigError",
         r"w_chapman = nan \(float\) must be a finite number"),
    Case("use-env-text", lambda w: iof.FitConfig(use_env="no"), "ConfigError",
         r"use_env = 'no' \(str\) must be True or False"),
    Case("loss-unknown", lambda w: iof.FitConfig(loss="l1"), "ConfigError",
         r"loss = 'l1' \(str\) must be one of 'nll', 'mse'"),
    Case("physics-alt-range-one-number", lambda w: iof.FitConfig(physics_alt_range=(150.0,)),
         "ConfigError", r"physics_alt_range = \(150\.0,\) \(tuple\) must be 2 finite numbers, "
         r"e\.g\. \(150\.0, 600\.0\)"),
    Case("background-alt-text", lambda w: iof.FitConfig(background_alt="60,1000,10"),
         "ConfigError", r"background_alt = '60,1000,10' \(str\) must be 3 finite numbers"),
    Case("background-alt-reversed", lambda w: iof.FitConfig(background_alt=(1000, 60, 10)),
         "ConfigError", r"background_alt = \(1000\.0, 60\.0, 10\.0\) must be \(start, stop, "
         r"step\) with start < stop"),
    Case("checkpoint-every-zero", lambda w: iof.FitConfig(checkpoint_every=0), "ConfigError",
         r"checkpoint_every = 0 must be >= 1"),
    Case("grad-clip-negative", lambda w: iof.FitConfig(grad_clip=-1.0), "ConfigError",
         r"grad_clip = -1\.0 must be >= 0"),
    Case("from-dict-typo", lambda w: iof.FitConfig.from_dict({"max_step": 3, "lrr": 0.1}),
         "ConfigError", r"unknown options 'max_step' \(did you mean 'max_steps'\?\), 'lrr' "
         r"\(did you mean 'lr'\?\)"),
    Case("from-dict-not-a-mapping", lambda w: iof.FitConfig.from_dict("max_steps=24"),
         "ConfigError", r"FitConfig options must be a mapping of field names to values; got str"),
]


@pytest.mark.parametrize("case", [c.param() for c in CONFIG_CASES])
def test_fitconfig_refuses(case: Case, world: World) -> None:
    refused(case, world)


def test_fitconfig_normalises_numbers_of_other_types() -> None:
    """numpy ints and bools, ints for floats and lists for tuples are taken, as Python's."""
    config = iof.FitConfig(max_steps=np.int64(24), lr=1, use_env=np.bool_(False),
                           background_alt=[80, 1000, 40])
    assert config == iof.FitConfig(max_steps=24, lr=1.0, use_env=False,
                                   background_alt=(80.0, 1000.0, 40.0))
    assert type(config.max_steps) is int and type(config.lr) is float
    assert iof.FitConfig(time_limit=np.int64(60)).time_limit == 60.0
    assert iof.FitConfig(time_limit=None).time_limit is None
    assert iof.FitConfig.from_dict(config.to_dict()) == config


# --------------------------------------------------------------------------- save
def _save_nan_weights(world: World) -> Any:
    model = iof.load_model(world.model_file)
    with torch.no_grad():
        largest_weight(model).view(-1)[0] = math.nan  # state_dict tensors share storage
    target = world.folder / "nan.pt"
    try:
        return model.save(target)
    finally:
        assert not target.exists()


SAVE_CASES = [
    Case("nan-weight", _save_nan_weights, "CheckpointError",
         r"nan\.pt: not written: the model's tensor '[\w.]+' holds NaN or infinite values.*fit "
         r"it again"),
]


@pytest.mark.parametrize("case", [c.param() for c in SAVE_CASES])
def test_save_refuses(case: Case, world: World) -> None:
    refused(case, world)


def test_save_to_a_folder_is_refused_before_writing(world: World) -> None:
    with pytest.raises(IsADirectoryError, match=r"is a folder; give the name of the file"):
        world.model.save(world.folder)


# --------------------------------------------------------------------------- load_model
def _legacy_payload(world: World) -> dict[str, Any]:
    """A model file's payload as ionofield 0.1 wrote it (format 1, no checksum)."""
    payload = torch.load(world.model_file, weights_only=True)
    payload.pop("checksum", None)
    payload["format"] = "ionofield-rstmrf-model/1"
    new = ("max_steps", "time_limit", "eval_every", "validation_points", "weight_average_steps")
    payload["config"] = {k: v for k, v in payload["config"].items() if k not in new}
    payload["config"].update(epochs=50, weight_average_epochs=5.0)  # retired since
    payload["info"]["history"] = [
        {"epoch": k, **{n: v for n, v in row.items() if n not in ("step", "elapsed_s", "lr")}}
        for k, row in enumerate(payload["info"]["history"], start=1)
    ]
    return payload


def _legacy_with_inf(world: World) -> Any:
    payload = _legacy_payload(world)
    name = max(payload["state_dict"], key=lambda k: payload["state_dict"][k].numel())
    payload["state_dict"][name] = payload["state_dict"][name].clone()
    payload["state_dict"][name].view(-1)[0] = math.inf
    path = world.folder / "diverged_old.pt"
    torch.save(payload, path)
    return iof.load_model(path)


def _foreign(world: World) -> Any:
    path = world.folder / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    return iof.load_model(path)


def _other_format(world: World) -> Any:
    payload = torch.load(world.model_file, weights_only=True)
    payload["format"] = "ionofield-rstmrf-model/9"
    path = world.folder / "future.pt"
    torch.save(payload, path)
    return iof.load_model(path)


LOAD_CASES = [
    Case("flipped-bit-in-a-weight",
         lambda w: iof.load_model(w.copy(w.model_file, "flipped.pt", lambda d: flip_bit_in_weights(
             d, largest_weight(w.model)))),
         "CheckpointError", r"flipped\.pt: damaged: checksum mismatch.*write it again or restore"),
    Case("inf-weight-in-an-old-file", _legacy_with_inf, "CheckpointError",
         r"diverged_old\.pt: the model's tensor '[\w.]+' holds NaN or infinite values.*fit it "
         r"again"),
    Case("truncated", lambda w: iof.load_model(w.copy(w.model_file, "cut.pt", lambda d: d[:1000])),
         "CheckpointError", r"cut\.pt: cannot be read as an ionofield model.*truncated"),
    Case("foreign-torch-file", _foreign, "CheckpointError",
         r"foreign\.pt: not an ionofield model file.*model\.save\(path\)"),
    Case("training-checkpoint", lambda w: iof.load_model(w.checkpoint), "CheckpointError",
         r"train\.ckpt: not an ionofield model file.*resumed with fit\(\.\.\., resume=path\)"),
    Case("format-of-another-version", _other_format, "CheckpointError",
         r"future\.pt: an ionofield model file in format 'ionofield-rstmrf-model/9'.*does not "
         r"read.*read it with the release that wrote it"),
]


@pytest.mark.parametrize("case", [c.param() for c in LOAD_CASES])
def test_load_model_refuses(case: Case, world: World) -> None:
    refused(case, world)


def test_load_model_of_a_file_without_checksum_warns(world: World) -> None:
    """Files of ionofield 0.1 carry no checksum: they load, with a warning saying so."""
    path = world.folder / "old.pt"
    torch.save(_legacy_payload(world), path)
    with pytest.warns(iof.errors.IonofieldWarning,
                      match=r"old\.pt: .*no checksum: damage to the file cannot be detected.*"
                            r"save it again with model\.save\(path\)"):
        model = iof.load_model(path)
    expected = world.model.state_dict()
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)
    assert model.config.max_steps == iof.FitConfig().max_steps  # epochs=50 dropped
    assert model.history.index.name == "epoch" and len(model.history) == len(world.model.history)
    model.save(world.folder / "resaved.pt")  # now with a checksum: loads without a warning
    assert "checksum" in torch.load(world.folder / "resaved.pt", weights_only=True)

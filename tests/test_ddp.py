"""Data-parallel fits (torch.distributed, gloo on the CPU) equal single-process ones.

The in-process tests split one step over simulated ranks (no process group: the
shares and the loss parts need none) and check that the parts and their gradients sum
to the single process's. The launch test runs real ranks: two processes under
torchrun (:func:`ionofield._distributed.launch`), fitting, resuming a single-process
checkpoint, and writing a checkpoint that a single process resumes; each result is
compared with the single-process fit of the same seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ionofield as iof
from ionofield import _distributed
from ionofield._distributed import World, launch
from ionofield.background import BackgroundField
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError
from ionofield.observations import ObservationStore
from ionofield.training import _check_world, _Trainer
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]

#: One fit's options, shared by the ranks and the single process they are compared with.
OPTIONS = dict(seed=5, checkpoint_every=1, max_steps=32, **TINY)

#: What each rank runs under torchrun; argv[1] is the folder of files.
WORKER = """
import json, sys
import torch.distributed as dist
import ionofield as iof
import ionofield.training as training
from tests.conftest import TINY, background_dataset, indices_dataset, observations, tec_dataset
from tests.test_ddp import OPTIONS
out = sys.argv[1]
dist.init_process_group("gloo")
rank = dist.get_rank()
ds = iof.campaign(obs=observations(), tec=tec_dataset(), indices=indices_dataset())
options = dict(background=background_dataset(), threads=1, **OPTIONS)
writes = []
write = training.write_payload
training.write_payload = lambda path, *rest: writes.append(str(path)) or write(path, *rest)
model = iof.fit(ds, **options)
if rank == 0:
    model.save(f"{out}/two.pt")
model = iof.fit(ds, resume=f"{out}/one.ckpt", **options)
if rank == 0:
    model.save(f"{out}/resumed_on_two.pt")
validate, calls = training._validate, []
def interrupted(*args):
    calls.append(1)
    if len(calls) == 3:  # every rank stops in its third validation (at step 24)
        raise KeyboardInterrupt
    return validate(*args)
training._validate = interrupted
try:
    iof.fit(ds, checkpoint=f"{out}/two.ckpt", **options)
except KeyboardInterrupt:
    pass
with open(f"{out}/report{rank}.json", "w") as file:
    json.dump({"writes": writes, "world_size": model.info["world_size"]}, file)
dist.destroy_process_group()
"""


def interrupted_fit(monkeypatch, ds, ckpt, **options):
    """A single-process fit stopped in its third validation, its checkpoint at step 16."""
    import ionofield.training as training

    validate, calls = training._validate, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return validate(*args)

    monkeypatch.setattr(training, "_validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        iof.fit(ds, checkpoint=ckpt, **options)
    monkeypatch.setattr(training, "_validate", validate)
    assert torch.load(ckpt, weights_only=True)["step"] == 16


def assert_close_models(a, b):
    """Same weights and predictions within float32 rounding of a few dozen steps."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=1e-3, atol=2e-4, msg=name)
    assert [r["step"] for r in a.info["history"]] == [r["step"] for r in b.info["history"]]
    for ra, rb in zip(a.info["history"], b.info["history"], strict=True):
        assert ra["val_rmse"] == pytest.approx(rb["val_rmse"], rel=1e-4)
    assert a.info["sigma_factor"] == pytest.approx(b.info["sigma_factor"], rel=1e-4)


@pytest.fixture(scope="module")
def trainers(tiny_campaign, chapman_background):
    """A trainer of one process and those of two ranks, on one model's weights."""
    bg_field = BackgroundField(chapman_background)
    data = ObservationStore.from_campaign(tiny_campaign, bg_field)
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    config = iof.FitConfig(**{k: v for k, v in TINY.items() if k != "progress"},
                           batch_hours=3, collocation_hours=3)
    torch.manual_seed(0)
    model = iof.RSTMRF(config)
    return [_Trainer(model, data, drivers, bg_field, world)
            for world in (World(), World(rank=0, size=2), World(rank=1, size=2))]


def step_terms(trainer, seed=0):
    """One step's loss parts and the gradient of their weighted total."""
    trainer.model.zero_grad(set_to_none=True)
    rng = np.random.default_rng(seed)
    losses = trainer.batch_losses(rng.choice(len(trainer.data), 128), rng)
    trainer.total(losses).backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads


def test_shares_are_disjoint_cover_the_batch_and_follow_time():
    key = np.random.default_rng(0).integers(0, 5, 103)
    shares = [World(rank=r, size=4).take(key) for r in range(4)]
    assert sorted(np.concatenate(shares)) == list(range(103))
    assert [len(s) for s in shares] == [25, 26, 26, 26]
    assert all(key[a].max() <= key[b].min() for a, b in zip(shares, shares[1:], strict=False))


def test_rank_parts_and_gradients_sum_to_the_single_process_step(trainers):
    """The double-backward physics terms included: parts sum to terms, gradients too."""
    (whole, whole_grads), *ranks = (step_terms(t) for t in trainers)
    assert set(whole) == {"data", "chapman", "tec_direction", "tec_anchor"}
    for name, value in whole.items():
        assert sum(terms[name] for terms, _ in ranks) == pytest.approx(value, rel=1e-5)
    assert ranks[1][0]["tec_anchor"] == 0.0  # rank 0 carries the anchor
    assert whole_grads.keys() == ranks[0][1].keys() == ranks[1][1].keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(ranks[0][1][name] + ranks[1][1][name], grad,
                                   rtol=1e-4, atol=1e-7, msg=name)


def test_one_process_is_unchanged_by_the_world(trainers):
    terms, grads = step_terms(trainers[0], seed=3)
    again = _Trainer(trainers[0].model, trainers[0].data, trainers[0].drivers,
                     trainers[0].bg_field)  # no world given
    terms_again, grads_again = step_terms(again, seed=3)
    assert terms == terms_again
    assert all(torch.equal(grads[k], grads_again[k]) for k in grads)


def test_more_ranks_than_points_per_step_is_refused():
    config = iof.FitConfig(batch_size=64, collocation_fraction=0.05)  # 3 collocation points
    _check_world(config, World(rank=0, size=3))
    with pytest.raises(ConfigError, match=r"4 ranks .* 3 collocation points.*fewer processes"):
        _check_world(config, World(rank=0, size=4))


def test_torchrun_without_a_process_group_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="init_process_group"):
        World.current()


def test_ranks_given_different_fits_are_refused(monkeypatch):
    world = World(rank=0, size=2)
    theirs = {"seed": 1, "options": {"lr": 0.01}}
    monkeypatch.setattr(World, "gather", lambda self, value: [value, theirs])
    with pytest.raises(ConfigError, match=r"rank 1 differs from rank 0 in \['options'\]"):
        world.check_same({"seed": 1, "options": {"lr": 0.003}})


def test_launch_refuses_a_bad_number_of_processes():
    with pytest.raises(ConfigError, match="--nproc"):
        launch(["-m", "ionofield"], 0)


def test_process_group_outside_torchrun_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with _distributed.process_group("cpu") as world:
        assert world == World()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_two_ranks_under_torchrun_equal_one_process(
    tiny_campaign, chapman_background, tmp_path, monkeypatch
):
    """2 gloo ranks: the fit, a resume across world sizes both ways, files from rank 0."""
    options = dict(background=chapman_background, **OPTIONS)
    interrupted_fit(monkeypatch, tiny_campaign, tmp_path / "one.ckpt", **options)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(ROOT)
    assert launch([str(script), str(tmp_path)], 2) == 0

    whole = iof.fit(tiny_campaign, **options)
    two = iof.load_model(tmp_path / "two.pt")
    assert (two.info["world_size"], two.info["devices"]) == (2, ["cpu", "cpu"])
    assert (whole.info["world_size"], whole.info["devices"]) == (1, ["cpu"])
    assert_close_models(two, whole)
    assert_close_models(iof.load_model(tmp_path / "resumed_on_two.pt"), whole)
    assert torch.load(tmp_path / "two.ckpt", weights_only=True)["step"] == 16
    assert_close_models(iof.fit(tiny_campaign, resume=tmp_path / "two.ckpt", **options), whole)
    reports = [json.loads((tmp_path / f"report{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["writes"] == [str(tmp_path / "two.ckpt")] * 2  # steps 8 and 16
    assert reports[1]["writes"] == []
    assert {r["world_size"] for r in reports} == {2}

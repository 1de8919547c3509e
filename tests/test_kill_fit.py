"""Kill tests: a fit and a checkpoint write really SIGKILLed in a subprocess (issue 17).

The child process fits the tiny campaign of ``tests/conftest.py`` and stops itself at a
chosen point (it prints a line, then sleeps); the test then sends SIGKILL, which no
handler can catch, and checks what is left on the disk: the last checkpoint is whole,
a resume from it ends bit-identical to an uninterrupted fit, and the next write
removes the temporary file the killed write left behind.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ionofield as iof
from tests.conftest import TINY

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

ROOT = Path(__file__).resolve().parents[1]

#: Child preamble: the tiny campaign and the fit options every child and parent share.
SETUP = """
import io, os, sys, time
import torch
import ionofield as iof
from tests.conftest import TINY, background_dataset, indices_dataset, observations, tec_dataset
ds = iof.campaign(obs=observations(), tec=tec_dataset(), indices=indices_dataset())
options = dict(background=background_dataset(), seed=5, checkpoint_every=1, threads=1, **TINY)
ckpt = sys.argv[1]
def pause(line):
    print(line, flush=True)
    time.sleep(600)
"""


def options(background) -> dict:
    return dict(background=background, seed=5, checkpoint_every=1, **TINY)


def run_until(script: str, ckpt: Path, timeout: float = 120.0) -> str:
    """Run ``SETUP + script`` in a child until it prints a line; SIGKILL it; the line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    child = subprocess.Popen(
        [sys.executable, "-c", SETUP + script, str(ckpt)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        line = child.stdout.readline() if ready else ""
        assert line, f"the child never reached its pause: {child.poll()=}"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr = child.stderr.read()
        child.stdout.close()
        child.stderr.close()
    assert "Error" not in stderr, stderr
    return line.strip()


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def parts(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


def test_sigkill_mid_fit_then_resume_is_bit_identical(
    tiny_campaign, chapman_background, tmp_path
):
    """Killed in its third round of steps (after two checkpoints), it resumes to the same end."""
    ckpt = tmp_path / "fit.ckpt"
    line = run_until("""
from ionofield import training
evaluate, calls = training._Trainer.evaluate, []
def paused(self, idx):  # the third round has trained; its validation never comes
    calls.append(1)
    if len(calls) == 3:
        pause("IN ROUND 3")
    return evaluate(self, idx)
training._Trainer.evaluate = paused
iof.fit(ds, checkpoint=ckpt, max_steps=32, **options)
""", ckpt)
    assert line == "IN ROUND 3"
    assert torch.load(ckpt, weights_only=True)["step"] == 16
    assert parts(tmp_path) == []
    resumed = iof.fit(tiny_campaign, resume=ckpt, max_steps=32, **options(chapman_background))
    whole = iof.fit(tiny_campaign, max_steps=32, **options(chapman_background))
    assert same_weights(resumed, whole)
    clock = ["elapsed_s"]  # the only column that depends on the machine's speed
    assert resumed.history.drop(columns=clock).equals(whole.history.drop(columns=clock))


def test_sigkill_mid_checkpoint_write(tiny_campaign, chapman_background, tmp_path):
    """Killed halfway through writing a checkpoint: the old one stays whole at the target,
    the half-written temporary file is refused as damaged, the next write removes it."""
    ckpt = tmp_path / "fit.ckpt"
    iof.fit(tiny_campaign, checkpoint=ckpt, max_steps=8, **options(chapman_background))
    before = ckpt.read_bytes()
    line = run_until("""
save = torch.save
def half_written(obj, path):  # the first half reaches the disk, then the writer stalls
    buffer = io.BytesIO()
    save(obj, buffer)
    data = buffer.getvalue()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    pause(f"WRITING {path} {len(data)}")
torch.save = half_written
iof.fit(ds, checkpoint=ckpt, resume=ckpt, max_steps=16, **options)
""", ckpt)
    _, temporary, size = line.split()
    (left,) = parts(tmp_path)
    assert str(left) == temporary and left.name.startswith(".fit.ckpt.")
    assert left.stat().st_size == int(size) // 2
    assert ckpt.read_bytes() == before  # the target is the step-8 checkpoint, whole
    with pytest.raises(iof.errors.CheckpointError, match=r"\.part: cannot be read as an "
                       r"ionofield training checkpoint.*truncated or damaged"):
        iof.fit(tiny_campaign, resume=left, max_steps=16, **options(chapman_background))
    model = iof.fit(tiny_campaign, checkpoint=ckpt, resume=ckpt, max_steps=16,
                    **options(chapman_background))  # the next write of the target
    assert parts(tmp_path) == []
    assert torch.load(ckpt, weights_only=True)["step"] == 16
    # the same resume, never interrupted (its first 8 steps followed the 8-step schedule)
    fresh = tmp_path / "fresh.ckpt"
    fresh.write_bytes(before)
    whole = iof.fit(tiny_campaign, resume=fresh, max_steps=16, **options(chapman_background))
    assert same_weights(model, whole)


def test_sigkill_mid_model_save_keeps_the_old_model(tiny_campaign, chapman_background,
                                                     tmp_path):
    """A model file being replaced when the writer is killed: the old model still loads."""
    path = tmp_path / "model.pt"
    old = iof.fit(tiny_campaign, max_steps=8, **options(chapman_background))
    old.save(path)
    run_until("""
model = iof.fit(ds, max_steps=16, **options)
save = torch.save
def stalled(obj, path):
    with open(path, "wb") as f:
        f.write(b"PK")  # a zip file's first bytes
    pause("SAVING")
torch.save = stalled
model.save(ckpt)
""", path)
    assert len(parts(tmp_path)) == 1
    assert same_weights(iof.load_model(path), old)
    old.save(path)
    assert parts(tmp_path) == []

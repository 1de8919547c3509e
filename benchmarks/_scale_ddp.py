"""Data-parallel training on the CPU: steps/s with 1 and 2 ranks, measured in one run.

:func:`measure` builds a small synthetic campaign (analytic Chapman profiles over a
Chapman background, so no PyIRI; IONEX-sized 71 x 73 TEC maps), then fits it with the
default network for the same number of steps three ways, each in its own processes
started by torchrun (:func:`ionofield._distributed.launch`):

- ``1x1``: one rank, one torch thread;
- ``1x2``: one rank, two torch threads;
- ``2x1``: two ranks (gloo), one thread each, each taking half of every step's points.

and returns JSON-able numbers: each run's training steps/s (``model.info``: steps over
training seconds, the preparation excluded), and the ratios to ``1x1``.

What a 2-core machine can and cannot show: ``2x1`` and ``1x2`` use the same two cores,
so their ratio says whether splitting a step's points over processes (with an
all-reduce of the gradients and the work every rank repeats: the LSTM and the TEC
path of the step's hours, the optimiser step) beats splitting each operation over
threads. It cannot show scaling past two cores, nor NCCL on GPUs, nor a machine with
other loads than this one's (the numbers of a shared machine are noisy: read them as
ratios of one run, with ``uptime`` beside them).

    python benchmarks/_scale_ddp.py [--work DIR] [--steps 120]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

START = np.datetime64("2024-05-10T00:00", "ns")
HOURS = 24


def _chapman_log10(alt: np.ndarray, nm: np.ndarray, hm: float) -> np.ndarray:
    z = (alt - hm) / 60.0
    return np.log10(nm) + 0.5 * (1.0 - z - np.exp(-z)) / np.log(10.0)


def _write_inputs(work: Path, n_profiles: int = 600, levels: int = 100) -> None:
    """A day's synthetic campaign and its background, as netCDF files in ``work``."""
    import ionofield as iof

    rng = np.random.default_rng(0)
    alt = np.linspace(150.0, 600.0, levels)
    n = n_profiles * levels
    time = START + (rng.uniform(0, (HOURS - 1) * 60, n_profiles).astype("int64")
                    * np.timedelta64(1, "m"))
    lat, lon = rng.uniform(-70, 70, n_profiles), rng.uniform(-180, 180, n_profiles)
    nm = 5e11 * (1.0 + 0.8 * np.cos(np.deg2rad(lat)) ** 2)
    log10 = _chapman_log10(alt[None, :], nm[:, None], 340.0) + rng.normal(0, 0.02, (n_profiles,
                                                                                   levels))
    obs = xr.Dataset(
        {"ne": ("obs", 10.0 ** log10.reshape(-1))},
        coords={"time": ("obs", np.repeat(time, levels)), "lat": ("obs", np.repeat(lat, levels)),
                "lon": ("obs", np.repeat(lon, levels)), "alt": ("obs", np.tile(alt, n_profiles)),
                "profile": ("obs", np.repeat([f"P{k:04d}" for k in range(n_profiles)], levels)),
                "mission": ("obs", np.full(n, "SYN"))},
    )
    hours = START + np.arange(HOURS) * np.timedelta64(1, "h")
    tec_lat, tec_lon = np.arange(87.5, -87.6, -2.5), np.arange(-180.0, 180.1, 5.0)
    tec = 20 + 30 * np.cos(np.deg2rad(tec_lat))[None, :, None] ** 2 * (
        1 + 0.3 * np.sin(np.deg2rad(tec_lon)[None, None, :]
                         + 2 * np.pi * np.arange(HOURS)[:, None, None] / 24))
    tec_ds = xr.Dataset({"tec": (("time", "lat", "lon"), tec.astype(np.float32),
                                 {"units": "TECU"})},
                        coords={"time": hours, "lat": tec_lat, "lon": tec_lon})
    slots = pd.date_range(str(START), periods=HOURS // 3, freq="3h").values
    indices = xr.Dataset({"kp": ("time", rng.uniform(1, 6, slots.size)),
                          "f107": ("time", np.full(slots.size, 180.0)),
                          "f107_81": ("time", np.full(slots.size, 170.0))},
                         coords={"time": slots})
    iof.campaign(obs=obs, tec=tec_ds, indices=indices).to_netcdf(work / "campaign.nc")
    bg_alt, bg_lat, bg_lon = (np.arange(80.0, 801.0, 20.0), np.arange(-90.0, 90.1, 10.0),
                              np.arange(-180.0, 180.0, 20.0))
    bg = np.broadcast_to(10.0 ** _chapman_log10(bg_alt, np.array(5e11), 300.0)[None, :, None, None],
                         (HOURS, bg_alt.size, bg_lat.size, bg_lon.size))
    xr.Dataset({"ne_background": (("time", "alt", "lat", "lon"), bg.astype(np.float32),
                                  {"units": "m-3"})},
               coords={"time": hours, "alt": bg_alt, "lat": bg_lat, "lon": bg_lon},
               ).to_netcdf(work / "background.nc")


def _worker(work: Path, threads: int, steps: int, name: str) -> None:
    """One rank of a run: fit the campaign, rank 0 writes ``name``.json."""
    import ionofield as iof
    from ionofield._distributed import process_group

    ds = xr.load_dataset(work / "campaign.nc")
    background = xr.load_dataset(work / "background.nc")
    with process_group("cpu") as world:
        model = iof.fit(ds, background=background, max_steps=steps, eval_every=steps,
                        validation_points=2048, patience=0, progress=False, threads=threads,
                        device="cpu")
        if world.main:
            info = model.info
            (work / f"{name}.json").write_text(json.dumps({
                "ranks": info["world_size"], "threads": threads, "steps": info["steps"],
                "train_s": info["train_seconds"],
                "steps_per_s": round(info["steps"] / info["train_seconds"], 3),
            }))


def measure(work: Path, steps: int = 120) -> dict:
    """Training steps/s of 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread.

    Parameters
    ----------
    work
        An empty folder for the campaign and the results.
    steps
        Optimiser steps of each run (the default config otherwise: batch_size 2048).

    Returns
    -------
    dict
        ``runs`` (each run's ranks, threads, steps, training seconds and steps/s),
        ``speedup_over_1x1`` and the campaign's size.
    """
    from ionofield._distributed import launch

    work.mkdir(parents=True, exist_ok=True)
    _write_inputs(work)
    env = {"OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                     os.environ.get("PYTHONPATH")) if p)}
    os.environ.update(env)
    runs = {}
    for name, nproc, threads in (("1x1", 1, 1), ("1x2", 1, 2), ("2x1", 2, 1)):
        status = launch([__file__, "--worker", str(work), str(threads), str(steps), name], nproc)
        if status:
            raise RuntimeError(f"the {name} run failed (torchrun exit status {status})")
        runs[name] = json.loads((work / f"{name}.json").read_text())
    base = runs["1x1"]["steps_per_s"]
    return {
        "campaign": {"profiles": 600, "levels": 100, "hours": HOURS, "tec_grid": [71, 73]},
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "speedup_over_1x1": {k: round(v["steps_per_s"] / base, 3) for k, v in runs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--worker", nargs=4, metavar=("WORK", "THREADS", "STEPS", "NAME"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work, threads, steps, name = args.worker
        _worker(Path(work), int(threads), int(steps), name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(args.work or Path(tmp), args.steps), indent=2))


if __name__ == "__main__":
    sys.exit(main())

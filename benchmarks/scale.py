"""Scale-out of ionofield on existing engines, measured in one run.

    python benchmarks/scale.py [--work DIR] [--days 1 3 7] [--steps 200] [--dense-levels 400]
                               [--skip dask ddp zarr memory]

Prints one JSON document with a section per engine, each measured by its own module
beside this one (each also runs alone, ``python benchmarks/_scale_ddp.py``, ...):

- ``dask`` (``_scale_dask.py``): a reconstruction on the threaded scheduler against a
  ``dask.distributed`` ``LocalCluster`` of 1 and 2 worker processes, the ratio, and the
  overhead per task;
- ``ddp`` (``_scale_ddp.py``): training steps/s with 1 rank x 1 thread, 1 rank x 2
  threads and 2 ranks (gloo) x 1 thread;
- ``zarr`` (``_scale_zarr.py``): ``to_zarr`` of a 3-day volume on the IONEX grid, its
  throughput, a write killed at two thirds and its resume, a no-op re-run;
- ``memory``: peak RSS of a fit (``--steps`` steps, the default network) of campaigns
  of ``--days`` days (and 2) at 2,660 RO profiles a day of 140 levels
  (``throughput.py``'s density), and of 2 days at ``--dense-levels`` levels, each
  opened lazily from its saved file in a child process, and of the reconstruction of
  each campaign's whole period (hourly, 5 x 10 degrees, 100-800 km every 20 km, a day
  per chunk) written to NetCDF, in another; the ratios of the longest to the shortest
  and of the dense to the 2-day one.

This machine has 2 cores: ratios of 2 workers or ranks to 1 show whether the engines'
overheads stay small, not how they scale on a cluster (docs: "Scaling out").
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from _memory import peak_rss_mb
from throughput import START, WORLD_SEED, child_fit, run_child, write_campaign

import ionofield as iof
from ionofield.osse import storm_world, tec_maps

#: Campaign density of the memory section (throughput.py's realistic one).
PROFILES_PER_DAY = 2660
LEVELS = 140
#: The grid of the memory section's reconstructions, and their hours per chunk.
RECONSTRUCT_GRID = dict(alt=np.arange(100.0, 801.0, 20.0), lat=np.arange(-85.0, 86.0, 5.0),
                        lon=np.arange(-180.0, 180.0, 10.0))
RECONSTRUCT_CHUNK_HOURS = 24


def memory_by_length(work: Path, days: list[int], dense_levels: int, steps: int) -> dict:
    """Peak RSS of a short default fit of campaigns of each length, and of a denser one.

    The campaigns (``days_N``: N days of 140-level profiles; ``dense_2``: 2 days of
    ``dense_levels``-level profiles, against ``days_2``) are sampled from one synthetic
    storm world (``ionofield.osse``) and saved; one already saved in its folder under
    ``work`` is reused. Each fit runs in a child process on the lazily opened file, so
    the peak is the fit's own.

    Returns
    -------
    dict
        Per campaign: observations, the fit's peak RSS and timings; the ratios of the
        longest to the shortest and of the dense to ``days_2``.
    """
    plan = {f"days_{n}": (n, LEVELS) for n in sorted({*days, 2})}
    plan["dense_2"] = (2, dense_levels)
    world, tec = None, None
    measured = {}
    for name, (n, levels) in plan.items():
        folder = work / name
        if not (folder / "campaign.nc").exists():
            if world is None:
                longest = max(plan.values())[0]
                world = storm_world(START, days=longest, seed=WORLD_SEED)
                hours = pd.date_range(np.datetime64(START, "ns"), periods=24 * longest + 1,
                                      freq="h").values
                tec = tec_maps(world, hours)
            write_campaign(folder, world, tec, days=n, levels=levels,
                           profiles_per_day=PROFILES_PER_DAY)
        with xr.open_dataset(folder / "campaign.nc") as ds:
            n_obs = int(ds.sizes["obs"])
        fit = child_fit(folder, "memory", 0, {"max_steps": steps, "eval_every": steps,
                                              "device": "cpu"})
        volume = run_child([__file__, "--stage-reconstruct", str(folder)],
                           what=f"reconstruction of {folder}")
        measured[name] = {"days": n, "levels": levels, "observations": n_obs, **fit,
                          "reconstruct": volume}

    def ratio(last: dict, first: dict) -> dict:
        return {"observations": round(last["observations"] / first["observations"], 2),
                "peak_rss_mb": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
                "peak_rss_mb_added": round(last["peak_rss_mb"] - first["peak_rss_mb"], 1),
                "reconstruct_peak_rss_mb": round(last["reconstruct"]["peak_rss_mb"]
                                                 / first["reconstruct"]["peak_rss_mb"], 3)}

    first, last = measured[f"days_{min(days)}"], measured[f"days_{max(days)}"]
    return {**measured,
            f"ratio_days_{max(days)}_over_{min(days)}": ratio(last, first),
            "ratio_dense_over_days_2": ratio(measured["dense_2"], measured["days_2"])}


def reconstruct_stage(folder: Path) -> dict:
    """Reconstruct a campaign's whole period with its ``model_memory.pt``, written to NetCDF.

    Run in a child process (``--stage-reconstruct``), so the peak RSS is the
    reconstruction's own.
    """
    started = time.perf_counter()
    with xr.open_dataset(folder / "campaign.nc") as ds:
        target = iof.grid(ds["time"].values, **RECONSTRUCT_GRID)
        volume = iof.reconstruct(ds, target, model=folder / "model_memory.pt",
                                 chunks=RECONSTRUCT_CHUNK_HOURS, device="cpu")
        iof.to_netcdf(volume, folder / "volume.nc")
    return {"hours": int(target.sizes["time"]), "points": int(np.prod(list(target.sizes.values()))),
            "wall_s": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--days", type=int, nargs="+", default=[1, 3, 7],
                        help="campaign lengths of the memory section")
    parser.add_argument("--dense-levels", type=int, default=400,
                        help="levels per profile of the dense 2-day campaign")
    parser.add_argument("--steps", type=int, default=200, help="steps of the memory fits")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["dask", "ddp", "zarr", "memory"])
    parser.add_argument("--stage-reconstruct", type=Path, metavar="FOLDER",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage_reconstruct:
        print(json.dumps(reconstruct_stage(args.stage_reconstruct)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="ionofield-scale-"))
    started = time.perf_counter()
    report: dict = {"cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()}
    if "dask" not in args.skip:
        from _scale_dask import measure as measure_dask

        report["dask"] = measure_dask(work / "dask")
    if "ddp" not in args.skip:
        from _scale_ddp import measure as measure_ddp

        report["ddp"] = measure_ddp(work / "ddp")
    if "zarr" not in args.skip:
        from _scale_zarr import measure as measure_zarr

        report["zarr"] = measure_zarr(work / "zarr", days=3)
    if "memory" not in args.skip:
        report["memory"] = memory_by_length(work / "memory", args.days, args.dense_levels,
                                            args.steps)
    report["load_average_after"] = os.getloadavg()
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

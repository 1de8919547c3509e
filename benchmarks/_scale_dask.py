"""Reconstruction on dask.distributed worker processes against the threaded scheduler.

    python benchmarks/_scale_dask.py [--hours 8] [--work DIR]

or ``measure(work)`` from another benchmark. Prints (returns) JSON:

- ``threaded_s``: ``reconstruct(...).compute()`` of ``hours`` hours of the IONEX grid
  (91 altitudes x 71 x 73, one hour per chunk, the IRI from an empty cache, the TEC
  column misfit of sigma included) on dask's threaded scheduler in this process, with
  torch on every core;
- ``processes_1_s``, ``processes_2_s``: the same on a ``LocalCluster`` of one and of
  two worker processes of one thread each (each with its own empty IRI cache); the
  cluster's start is not timed;
- ``ratio_2_processes``: threaded time / time on two processes (throughput of two
  worker processes relative to the threaded scheduler; above 1 is faster);
- ``per_task_s``: wall seconds per task of a graph of many tiny chunks (one time of
  2 x 2 x 4 points each, a user-supplied background), on the threaded scheduler and
  on the two processes: the cost a chunk adds beyond its own computing;
- ``models_built_per_worker``: how many times each worker process rebuilt the model
  of the IONEX-grid volume from the graph (one is the design);
- ``peak_rss_mb``: this process's peak, and each worker process's.

The model is an untrained default-size R-STMRF (its cost does not depend on its
weights), as in ``perf.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
from _memory import available_cores, peak_rss_mb
from perf import ALT, DAY, LAT, LON, campaign

#: Times in the graph of tiny chunks (one task each).
TINY_TASKS = 64


def _models_built() -> int:
    from ionofield.reconstruction import _rebuilt_model

    return _rebuilt_model.cache_info().misses


def _tiny_background(hours: int) -> xr.Dataset:
    """A flat Chapman-like user background over ``hours`` hours (no PyIRI)."""
    alt = np.arange(80.0, 1001.0, 40.0)
    lat, lon = np.arange(-90.0, 90.1, 30.0), np.arange(-180.0, 180.0, 60.0)
    profile = 1e11 * np.exp(-(((alt - 300.0) / 150.0) ** 2)) + 1e9
    values = np.broadcast_to(profile[None, :, None, None], (hours, alt.size, lat.size, lon.size))
    ne = xr.DataArray(values.astype(np.float32),
                      {"time": pd.date_range(DAY, periods=hours, freq="h"), "alt": alt,
                       "lat": lat, "lon": lon}, ("time", "alt", "lat", "lon"),
                      attrs={"units": "m-3"})
    return xr.Dataset({"ne_background": ne})


def measure(work: Path, hours: int = 8) -> dict:
    """Time the same reconstructions on the threaded scheduler and on worker processes.

    Parameters
    ----------
    work
        A folder for the IRI caches (one empty cache per run).
    hours
        Hours of the IONEX grid to reconstruct.

    Returns
    -------
    dict
        JSON-ready numbers (see the module's docstring).
    """
    import torch
    from distributed import Client, LocalCluster

    import ionofield as iof

    cores = available_cores()
    ds = campaign(max(hours, 3))
    model = iof.RSTMRF(iof.FitConfig()).eval()
    model.info["background"] = {"kind": "iri"}
    model.calibrate_sigma(1.0, column_misfit_offset=0.0)  # as a fit with TEC maps leaves it
    target = iof.grid(time=pd.date_range(DAY, periods=hours, freq="h"), alt=ALT, lat=LAT, lon=LON)
    tiny_model = iof.RSTMRF(iof.FitConfig()).eval()
    tiny_model.info["background"] = {"kind": "user"}
    tiny_target = iof.grid(time=pd.date_range(DAY, periods=TINY_TASKS, freq="min"),
                           alt=[200.0, 400.0], lat=[-30.0, 30.0], lon=[-135.0, -45.0, 45.0, 135.0])
    background = _tiny_background(3)

    def volume(cache: str) -> float:
        vol = iof.reconstruct(ds, target, model=model, chunks=1, cache_dir=work / cache,
                              device="cpu")
        started = time.perf_counter()
        vol.compute()
        return time.perf_counter() - started

    def per_task() -> float:
        vol = iof.reconstruct(ds, tiny_target, model=tiny_model, background=background,
                              chunks=1, device="cpu")
        started = time.perf_counter()
        vol.compute()
        return (time.perf_counter() - started) / TINY_TASKS

    torch.set_num_threads(cores)
    report: dict = {"grid": f"{hours} h x {ALT.size} alt x {LAT.size} lat x {LON.size} lon, "
                            "one hour per chunk", "cores": cores, "load_before": os.getloadavg()}
    with dask.config.set(scheduler="threads"):
        report["threaded_s"] = round(volume("threaded"), 2)
        per_task()  # the first graph pays the imports and the model's rebuild
        report["per_task_s"] = {"threaded": round(per_task(), 4)}
    report["torch_threads_threaded"] = torch.get_num_threads()
    built = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            report[f"processes_{workers}_s"] = round(volume(f"processes_{workers}"), 2)
            built[workers] = sorted(client.run(_models_built).values())
            if workers == 2:
                per_task()
                report["per_task_s"]["processes_2"] = round(per_task(), 4)
                report["peak_rss_mb"] = {
                    "client": round(peak_rss_mb()),
                    "workers": [round(v) for v in client.run(peak_rss_mb).values()],
                }
    report["models_built_per_worker"] = {f"processes_{k}": v for k, v in built.items()}
    report["ratio_2_processes"] = round(report["threaded_s"] / report["processes_2_s"], 2)
    report["ratio_1_process"] = round(report["threaded_s"] / report["processes_1_s"], 2)
    report["load_after"] = os.getloadavg()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ionofield-dask-"))
    print(json.dumps(measure(work, args.hours), indent=2))


if __name__ == "__main__":
    main()

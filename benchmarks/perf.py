"""Reconstruction speed and memory against PyIRI alone, measured in one run.

    python benchmarks/perf.py [--hours 24] [--skip-4x] [--skip-other-precision] [--skip-compile]

Prints JSON:
- ``pyiri_alone_s``: PyIRI computing the background for the target grid (24 h x 91
  altitudes 100-1000 km x 71 x 73, the IONEX grid), in a child process;
- ``ionofield_s``: ``reconstruct`` + ``to_netcdf`` of the same grid with the default
  options (``precision="auto"``, which ``precision`` says it chose here), everything
  included (the IRI cube on the model's background grid from an empty cache, the
  network, the TEC maps' column misfit of ``ne_log10_sigma``, the write), in a child
  process, and its peak RSS; PyIRI is imported before the clock starts on both
  sides (its import, with matplotlib's, takes about a second);
- ``ratio``: ``ionofield_s / pyiri_alone_s`` (the issue asks <= 1.15);
- ``ionofield_<p>_s``, ``ratio_<p>``, ``peak_rss_mb_<p>``: the same in the precision the
  default did not choose (``float32`` or ``bf16``), from an empty cache too;
- ``ionofield_warm_cache_s`` and ``ionofield_<p>_warm_cache_s``: each precision again,
  with the IRI cache its first run filled (a reconstruction of a period already fitted
  or reconstructed): the network's and the write's cost alone;
- ``ionofield_compiled_s``, ``ratio_compiled`` (the default precision) and
  ``ionofield_<p>_compiled_s``, ``ratio_<p>_compiled``: the same with ``compile=True``
  (the network through ``torch.compile``), the compilation included, from inductor's
  warm on-disk cache (``compile_warmup_s``: a one-hour reconstruction of each
  precision before them, which fills it on a new machine, as a user's first compiled
  run does);
- the peak RSS of the same reconstruction on a grid 4x larger (twice the times, twice
  the longitudes), which chunking must keep within 20 % of the first.
The model is an untrained default-size R-STMRF: its cost does not depend on its weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from _memory import peak_rss_mb

DAY = "2024-05-11"
ALT = np.arange(100.0, 1001.0, 10.0)
LAT = np.arange(-87.5, 87.6, 2.5)
LON = np.arange(-180.0, 180.1, 5.0)


def pyiri_alone(hours: int) -> dict:
    """One PyIRI call on the whole target grid, as a PyIRI user would make it."""
    from PyIRI import sh_library

    day = pd.Timestamp(DAY)
    grid_lat, grid_lon = (g.ravel() for g in np.meshgrid(LAT, LON, indexing="ij"))
    started = time.perf_counter()
    sh_library.IRI_density_1day(day.year, day.month, day.day, np.arange(hours, dtype=float),
                                grid_lon, grid_lat, ALT, 180.0, foF2_coeff="URSI",
                                hmF2_model="SHU2015", old_output=False)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


def campaign(hours: int) -> xr.Dataset:
    """A day of hourly drivers (analytic TEC, real indices) with a handful of observations."""
    import ionofield as iof

    times = pd.date_range(DAY, periods=hours + 1, freq="h").values
    tec = xr.Dataset(
        {"tec": (("time", "lat", "lon"),
                 (20 + 30 * np.cos(np.deg2rad(LAT))[None, :, None] ** 2
                  * np.ones((times.size, 1, LON.size))).astype(np.float32),
                 {"units": "TECU"})},
        coords={"time": times, "lat": LAT, "lon": LON},
    )
    obs = xr.Dataset(
        {"ne": ("obs", np.full(4, 1e11))},
        coords={"time": ("obs", times[[0, 0, 1, 1]]), "lat": ("obs", np.zeros(4)),
                "lon": ("obs", np.zeros(4)), "alt": ("obs", np.full(4, 300.0)),
                "profile": ("obs", ["a", "a", "b", "b"]), "mission": ("obs", ["X"] * 4)},
    )
    return iof.campaign(obs=obs, tec=tec)


def ionofield_volume(hours: int, lon_factor: int, out: Path, precision: str,
                     compile: bool) -> dict:
    import torch
    from PyIRI import sh_library  # noqa: F401  (imported untimed, as pyiri_alone's)

    import ionofield as iof

    ds = campaign(hours)
    model = iof.RSTMRF(iof.FitConfig()).eval()
    model.info["background"] = {"kind": "iri"}
    model.calibrate_sigma(1.0, column_misfit_offset=0.0)  # as a fit with TEC maps leaves it
    lon = np.arange(-180.0, 180.0, 5.0 / lon_factor)
    target = iof.grid(time=pd.date_range(DAY, periods=hours, freq="h"), alt=ALT, lat=LAT, lon=lon)
    started = time.perf_counter()
    volume = iof.reconstruct(ds, target, model=model, cache_dir=out.parent / "cache",
                             device="cpu", precision=precision, compile=compile)
    iof.to_netcdf(volume, out)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "points": int(
        hours * ALT.size * LAT.size * lon.size), "torch_threads": torch.get_num_threads(),
        "precision": volume.attrs["precision"]}


def child(stage: str, *args: str) -> dict:
    run = subprocess.run([sys.executable, __file__, "--stage", stage, *args], check=True,
                         capture_output=True, text=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--skip-4x", action="store_true")
    parser.add_argument("--skip-other-precision", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "pyiri":
        print(json.dumps(pyiri_alone(args.hours)))
        return
    if args.stage == "ionofield":
        factor, out, precision = int(args.rest[0]), Path(args.rest[1]), args.rest[2]
        compile = args.rest[3] == "compile"
        print(json.dumps(ionofield_volume(args.hours, factor, out, precision, compile)))
        return
    work = Path(tempfile.mkdtemp(prefix="ionofield-perf-"))
    hours = ["--hours", str(args.hours)]
    base = child("pyiri", *hours)
    ours = child("ionofield", *hours, "1", str(work / "a" / "ne.nc"), "auto", "eager")
    default = ours["precision"]
    other = "float32" if default == "bfloat16" else "bfloat16"
    short = {"float32": "float32", "bfloat16": "bf16"}
    report = {
        "grid": f"{args.hours} h x {ALT.size} alt x {LAT.size} lat x {LON.size} lon",
        "pyiri_alone_s": round(base["seconds"], 1),
        "pyiri_alone_peak_rss_mb": round(base["peak_rss_mb"]),
        "precision": default,
        "ionofield_s": round(ours["seconds"], 1),
        "ionofield_points_per_s": round(ours["points"] / ours["seconds"]),
        "ratio": round(ours["seconds"] / base["seconds"], 2),
        "peak_rss_mb": round(ours["peak_rss_mb"]),
        "torch_threads": ours["torch_threads"],
    }
    warm = child("ionofield", *hours, "1", str(work / "a" / "warm.nc"), default, "eager")
    report["ionofield_warm_cache_s"] = round(warm["seconds"], 1)
    if not args.skip_other_precision:
        key = short[other]
        run = child("ionofield", *hours, "1", str(work / "c" / "ne.nc"), other, "eager")
        report[f"ionofield_{key}_s"] = round(run["seconds"], 1)
        report[f"ratio_{key}"] = round(run["seconds"] / base["seconds"], 2)
        report[f"peak_rss_mb_{key}"] = round(run["peak_rss_mb"])
        warm = child("ionofield", *hours, "1", str(work / "c" / "warm.nc"), other, "eager")
        report[f"ionofield_{key}_warm_cache_s"] = round(warm["seconds"], 1)
    if not args.skip_compile:
        precisions = [default] + ([] if args.skip_other_precision else [other])
        report["compile_warmup_s"] = round(sum(
            child("ionofield", "--hours", "1", "1", str(work / f"w{p}" / "ne.nc"), p,
                  "compile")["seconds"] for p in precisions), 1)
        for p in precisions:
            key = "compiled" if p == default else f"{short[p]}_compiled"
            run = child("ionofield", *hours, "1", str(work / f"d{p}" / "ne.nc"), p, "compile")
            report[f"ionofield_{key}_s"] = round(run["seconds"], 1)
            report[f"ratio_{key}"] = round(run["seconds"] / base["seconds"], 2)
    if not args.skip_4x:
        hours4 = ["--hours", str(min(2 * args.hours, 48))]
        bigger = child("ionofield", *hours4, "2", str(work / "b" / "ne.nc"), "auto", "eager")
        report["peak_rss_mb_4x_grid"] = round(bigger["peak_rss_mb"])
        report["rss_increase_4x"] = round(bigger["peak_rss_mb"] / ours["peak_rss_mb"] - 1, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Zarr output of a realistic volume: write speed, resume after a kill, no-op re-run.

``measure(work, days)`` writes a lazy synthetic volume of the IONEX grid (hourly, 91
altitudes 100-1000 km x 71 latitudes x 73 longitudes, three float32 variables: 5.7 MB
a time) with :func:`ionofield.io.zarr.to_zarr`, each stage in its own child process
(so that its peak RSS is its own), and returns JSON-able numbers:

- ``write``: a whole write of ``days`` days into an empty store (seconds, MB/s of
  uncompressed data, times/s, peak RSS) and the store's size on disk;
- ``compute``: the same volume computed block by block (a day each), not written;
- ``netcdf``: :func:`ionofield.to_netcdf` of the same volume, for comparison;
- ``killed``: a write SIGKILLed once half the times are marked written, then
  ``resume``: the same call run again (seconds, and the times it wrote);
- ``noop``: the same call on the complete store (seconds).

The synthetic volume is a Chapman layer whose peak follows local time (so each time
differs, and compresses like a real one), chunked 8 times per chunk as ``reconstruct``
chunks this grid. ``compute`` times computing it block by block without writing:
``write`` minus ``compute`` is the writer's own cost (a reconstruction costs far more
per time than this synthetic field). Run alone: ``python benchmarks/_scale_zarr.py
[--days 3] [--work DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ALT = np.arange(100.0, 1001.0, 10.0)
LAT = np.arange(-87.5, 87.6, 2.5)
LON = np.arange(-180.0, 180.1, 5.0)
START = "2024-05-10"
#: Times per dask chunk: ``reconstruct``'s default for this grid (4 million points).
CHUNK = 8
NAMES = ("ne", "ne_background", "ne_log10_sigma")


def volume(days: int):
    """A lazy volume of ``days`` hourly days on the IONEX grid."""
    import dask.array as dsa
    import pandas as pd
    import xarray as xr

    from ionofield.io.cf import attributes

    times = pd.date_range(START, periods=24 * days, freq="h")
    coslat = np.cos(np.radians(LAT))[:, None]

    def block(block_info=None):
        first, last = block_info[None]["array-location"][1]
        out = np.empty((len(NAMES), last - first, ALT.size, LAT.size, LON.size), np.float32)
        for k, hour in enumerate(range(first, last)):
            phase = 2 * np.pi * ((hour + LON / 15.0) % 24 - 14.0) / 24.0  # local time
            hm = 300.0 + 40.0 * coslat * np.sin(phase)
            z = (ALT[:, None, None] - hm) / 60.0
            log10 = (11.0 + np.log10(1.0 + coslat ** 2) + 0.3 * np.cos(phase)
                     + 0.5 * (1.0 - z - np.exp(-z)) / np.log(10.0))
            out[0, k] = 10.0 ** log10
            out[1, k] = 10.0 ** (log10 - 0.05 * np.cos(phase + coslat))
            out[2, k] = 0.08 + 0.02 * np.tanh(z) + 0.01 * coslat
        return out

    shape = (len(NAMES), times.size, ALT.size, LAT.size, LON.size)
    stacked = dsa.map_blocks(block, dtype=np.float32, meta=np.array((), np.float32),
                             chunks=((3,), *dsa.core.normalize_chunks(
                                 (CHUNK, -1, -1, -1), shape[1:])))
    return xr.Dataset(
        {name: (("time", "alt", "lat", "lon"), stacked[k], attributes(name))
         for k, name in enumerate(NAMES)},
        coords={"time": times, "alt": ALT, "lat": LAT, "lon": LON},
        attrs={"Conventions": "CF-1.11", "title": "synthetic volume (benchmarks/_scale_zarr.py)",
               "model_config_hash": "synthetic"},
    )


def stage(name: str, store: Path, days: int) -> dict:
    """One stage, in this (child) process: write, resume or no-op (to_zarr), netcdf or compute."""
    import zarr
    from _memory import peak_rss_mb

    import ionofield as iof
    from ionofield.io.zarr import MARKER, to_zarr

    vol = volume(days)
    before = None
    if name in ("resume", "noop"):
        before = int(zarr.open_array(store, path=MARKER, mode="r")[:].sum())
    started = time.perf_counter()
    if name == "netcdf":
        iof.to_netcdf(vol, store)
    elif name == "compute":
        for start in range(0, vol.sizes["time"], 24):
            vol.isel(time=slice(start, start + 24)).compute()
    else:
        to_zarr(vol, store)
    seconds = time.perf_counter() - started
    report = {"seconds": round(seconds, 3), "peak_rss_mb": round(peak_rss_mb())}
    if before is not None:
        report["times_written"] = vol.sizes["time"] - before
    return report


def child(name: str, store: Path, days: int) -> dict:
    run = subprocess.run([sys.executable, __file__, "--stage", name, "--days", str(days),
                          str(store)], check=True, capture_output=True, text=True,
                         env=_env())
    return json.loads(run.stdout.splitlines()[-1])


def _env() -> dict:
    """This checkout's ionofield first; one thread per BLAS/OpenMP pool."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def killed_write(store: Path, days: int) -> dict:
    """Start a write in a child and SIGKILL it once half the times are marked written."""
    import zarr

    from ionofield.io.zarr import MARKER

    half = 24 * days // 2
    proc = subprocess.Popen([sys.executable, __file__, "--stage", "write", "--days",
                             str(days), str(store)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while True:
            try:
                written = int(zarr.open_array(store, path=MARKER, mode="r")[:].sum())
            except FileNotFoundError:  # no marker yet
                written = 0
            if written >= half or proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    if proc.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the write ended ({proc.returncode}) before the kill: {stderr}")
    return {"times_written_when_killed": written, "times": 24 * days}


def measure(work: Path, days: int = 3) -> dict:
    """Write, kill, resume and re-run a ``days``-day volume under ``work``; the numbers.

    Parameters
    ----------
    work
        An empty folder for the stores (about 100 MB a day of the IONEX grid).
    days
        Length of the volume, in hourly days.

    Returns
    -------
    dict
        JSON-able: the grid, and per stage seconds, throughput and peak RSS.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    times = 24 * days
    megabytes = times * len(NAMES) * ALT.size * LAT.size * LON.size * 4 / 1e6
    write = child("write", work / "whole.zarr", days)
    store_mb = sum(p.stat().st_size for p in (work / "whole.zarr").rglob("*") if p.is_file())
    compute = child("compute", work / "none", days)
    netcdf = child("netcdf", work / "whole.nc", days)
    killed = killed_write(work / "killed.zarr", days)
    resume = child("resume", work / "killed.zarr", days)
    noop = child("noop", work / "killed.zarr", days)
    return {
        "grid": {"times": times, "alt": ALT.size, "lat": LAT.size, "lon": LON.size,
                 "variables": len(NAMES), "uncompressed_mb": round(megabytes, 1)},
        "write": {**write, "mb_per_s": round(megabytes / write["seconds"], 1),
                  "times_per_s": round(times / write["seconds"], 2),
                  "store_mb": round(store_mb / 1e6, 1),
                  "compression_ratio": round(megabytes / (store_mb / 1e6), 2)},
        "compute": {**compute, "mb_per_s": round(megabytes / compute["seconds"], 1)},
        "netcdf": {**netcdf, "mb_per_s": round(megabytes / netcdf["seconds"], 1)},
        "killed": killed,
        "resume": {**resume, "mb_per_s": round(
            megabytes * resume["times_written"] / times / resume["seconds"], 1)},
        "noop": noop,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--work", type=Path, help="folder for the stores (default: temporary)")
    parser.add_argument("--stage", choices=["write", "resume", "noop", "netcdf", "compute"],
                        help=argparse.SUPPRESS)
    parser.add_argument("store", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.store, args.days)))
    elif args.work:
        print(json.dumps(measure(args.work, args.days), indent=2))
    else:
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(measure(Path(work), args.days), indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: read many CDAAC ionPrf files with open_ro_profiles.

Writes N synthetic profiles (about 400 levels each, a Chapman layer with a few
negative and fill values at the bottom, as real files have) with ``write_ionprf``
into a temporary directory, then times ``open_ro_profiles`` on the glob and prints
one JSON line: files/s, points/s, seconds (best of ``--repeat`` reads), and, for
scale, the files/s of the naive way (``xr.open_dataset`` per file on the first
``--naive-files`` files) with the speed-up ratio measured in the same run.

    .venv/bin/python benchmarks/read_ro.py [--files 2000] [--repeat 3] [--naive-files 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ionofield.io.ro import open_ro_profiles, write_ionprf


def write_profiles(directory: Path, n_files: int, *, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-05-08T00:00:00", "ns")
    n_points = 0
    for k in range(n_files):
        n_levels = int(rng.integers(357, 420))
        alt = np.linspace(rng.uniform(0.0, 80.0), rng.uniform(520.0, 800.0), n_levels)
        hmf2, nmf2, scale = rng.uniform(220, 380), 10 ** rng.uniform(11, 12.3), 60.0
        z = (alt - hmf2) / scale
        ne = nmf2 * np.exp(0.5 * (1.0 - z - np.exp(-z)))
        ne[: rng.integers(0, 40)] *= -1.0
        ne[:2] = np.nan
        lat0, lon0 = rng.uniform(-80, 80), rng.uniform(0, 360)
        t = start + np.timedelta64(int(rng.integers(0, 86_400_000)), "ms")
        doy = (t.astype("datetime64[D]") - t.astype("datetime64[Y]")).astype(int) + 1
        name = f"ionPrf_C2E{k % 6 + 1}.2024.{doy:03d}.{k // 60 % 24:02d}.{k % 60:02d}.G{k % 32:02d}"
        write_ionprf(directory / f"{name}_{k:04d}_nc", time=t, alt=alt,
                     lat=lat0 + np.linspace(0, 5, n_levels),
                     lon=lon0 + np.linspace(0, 5, n_levels), ne=ne, mission="COSEQ",
                     fileStamp=f"{name}.{k:04d}")
        n_points += n_levels
    return n_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-files", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        n_points = write_profiles(directory, args.files)
        write_s = time.perf_counter() - t0
        timings = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            obs = open_ro_profiles(str(directory / "ionPrf_*"))
            timings.append(time.perf_counter() - t0)
        naive = sorted(directory.glob("ionPrf_*"))[: args.naive_files]
        t0 = time.perf_counter()
        for path in naive:
            with xr.open_dataset(path) as ds:
                ds.load()
        naive_files_per_s = len(naive) / (time.perf_counter() - t0)
    best = min(timings)
    print(json.dumps({
        "benchmark": "read_ro",
        "files": args.files,
        "points_in_files": n_points,
        "points_kept": int(obs.sizes["obs"]),
        "profiles": int(obs.attrs["n_profiles"]),
        "seconds": round(best, 3),
        "seconds_all": [round(t, 3) for t in timings],
        "files_per_s": round(args.files / best, 1),
        "points_per_s": round(n_points / best),
        "write_seconds": round(write_s, 3),
        "naive_xr_open_dataset_files_per_s": round(naive_files_per_s, 1),
        "speedup_vs_naive": round(args.files / best / naive_files_per_s, 1),
    }))


if __name__ == "__main__":
    main()

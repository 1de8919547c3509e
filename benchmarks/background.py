"""Benchmark of the IRI background: one PyIRI day on the IONEX grid, then interpolation.

Builds the IRI cube for 24 hourly times on 91 altitudes (100..1000 km, step 10) x the
IONEX grid (71 latitudes x 73 longitudes) in a fresh cache directory, times PyIRI,
then times :meth:`BackgroundField.log10_at` on 2 million random scattered points and
on the whole cube grid (broadcast inputs). Prints one JSON object.

Run: ``.venv/bin/python benchmarks/background.py [--points N] [--f107 SFU]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time

import numpy as np
import pandas as pd

from ionofield.background import BackgroundField
from ionofield.iri import iri_cube


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--f107", type=float, default=180.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    times = pd.date_range("2024-05-11", periods=24, freq="h")
    alt = np.arange(100.0, 1001.0, 10.0)
    lat = np.arange(-87.5, 87.6, 2.5)
    lon = np.arange(-180.0, 180.1, 5.0)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        cube = iri_cube(times, alt, lat, lon, f107=args.f107, cache_dir=cache)
        pyiri_s = time.perf_counter() - start
        start = time.perf_counter()
        iri_cube(times, alt, lat, lon, f107=args.f107, cache_dir=cache)
        cache_hit_s = time.perf_counter() - start

    start = time.perf_counter()
    field = BackgroundField(cube)
    build_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    n = args.points
    span_ns = (times[-1] - times[0]).value
    when = times[0].to_datetime64() + rng.integers(0, span_ns, n).astype("timedelta64[ns]")
    points = (when, rng.uniform(100, 1000, n), rng.uniform(-90, 90, n), rng.uniform(-180, 180, n))
    scattered = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        field.log10_at(*points)
        scattered.append(time.perf_counter() - start)

    grid = (
        times.values[:, None, None, None],
        alt[None, :, None, None],
        lat[None, None, :, None],
        lon[None, None, None, :],
    )
    start = time.perf_counter()
    on_grid = field.log10_at(*grid)
    grid_s = time.perf_counter() - start
    nodes_exact = float(np.abs(on_grid - np.log10(np.maximum(cube.ne_background, 1e6))).max())

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "grid": {"time": times.size, "alt": alt.size, "lat": lat.size, "lon": lon.size},
                "pyiri_wall_s": round(pyiri_s, 2),
                "cache_hit_s": round(cache_hit_s, 3),
                "field_build_s": round(build_s, 3),
                "scattered_points": n,
                "scattered_best_s": round(min(scattered), 3),
                "scattered_points_per_s": round(n / min(scattered)),
                "grid_points": int(on_grid.size),
                "grid_s": round(grid_s, 3),
                "grid_points_per_s": round(on_grid.size / grid_s),
                "grid_nodes_max_abs_error_log10": nodes_exact,
                "nmf2_range_m3": [float(cube.nmf2.min()), float(cube.nmf2.max())],
                "hmf2_range_km": [float(cube.hmf2.min()), float(cube.hmf2.max())],
                "peak_rss_mib": round(peak_mib, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Throughput of the IONEX reader on the real files.

Reads every IONEX file in $IONOFIELD_REALDATA (default ../shared/realdata beside the
repository) and prints JSON: maps per second and megabytes per second, with the
decompression of .gz / .Z files included and excluded (the files decompressed to a
temporary folder first), plus the cost of the two ways of undoing Unix compress.
Each timing is the best of --repeat runs.

    python benchmarks/read_ionex.py [--repeat 3] [--skip-unlzw3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import unlzw3

from ionofield.io import ionex

IONEX_NAME = re.compile(r"(\.\d\d[iI]|\.INX)(\.gz|\.Z)?$")


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def rates(seconds: float, maps: int, megabytes: float) -> dict[str, float]:
    return {
        "seconds": round(seconds, 4),
        "maps_per_s": round(maps / seconds, 1),
        "MB_per_s": round(megabytes / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-unlzw3", action="store_true", help="skip the slow fallback")
    args = parser.parse_args()

    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
    folder = Path(os.environ.get("IONOFIELD_REALDATA", default)).resolve()
    paths = sorted(p for p in folder.iterdir() if IONEX_NAME.search(p.name))
    if not paths:
        raise SystemExit(f"no IONEX file in {folder}: set IONOFIELD_REALDATA")

    raw = {p: p.read_bytes() for p in paths}
    text = {p: ionex._decompress(data, str(p)) for p, data in raw.items()}
    disk_mb = sum(map(len, raw.values())) / 1e6
    text_mb = sum(map(len, text.values())) / 1e6
    tec_maps = sum(t.count(b"START OF TEC MAP") for t in text.values())
    maps = tec_maps + sum(t.count(b"START OF RMS MAP") for t in text.values())

    with tempfile.TemporaryDirectory() as plain_folder:
        plain = []
        for p, data in text.items():
            target = Path(plain_folder) / p.name
            target.write_bytes(data)
            plain.append(target)
        seconds_plain = best_of(args.repeat, lambda: [ionex.open_ionex(p) for p in plain])
    seconds_all = best_of(args.repeat, lambda: [ionex.open_ionex(p) for p in paths])

    z_files = [data for p, data in raw.items() if p.suffix == ".Z"]
    report = {
        "folder": str(folder),
        "files": len(paths),
        "tec_maps": tec_maps,
        "maps_parsed_tec_and_rms": maps,
        "MB_on_disk": round(disk_mb, 2),
        "MB_text": round(text_mb, 2),
        "with_decompression": rates(seconds_all, maps, text_mb)
        | {"MB_on_disk_per_s": round(disk_mb / seconds_all, 2)},
        "without_decompression": rates(seconds_plain, maps, text_mb),
        "z_files": len(z_files),
        "z_decompress_s_system_gzip": round(
            best_of(args.repeat, lambda: [ionex._uncompress_z(d, "") for d in z_files]), 4
        ),
    }
    if not args.skip_unlzw3:
        report["z_decompress_s_unlzw3"] = round(
            best_of(1, lambda: [unlzw3.unlzw(d) for d in z_files]), 4
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

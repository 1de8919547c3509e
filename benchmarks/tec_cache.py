"""Benchmark of the hourly TEC cache: the direction field at every minute of a day.

A campaign is built from an analytic TEC day on the native IONEX grid (71 x 73,
25 hourly maps: a crest of ionisation that follows the Sun, with an equatorial
trough) and hand-made Kp / F10.7. An untrained model of the default size
(``FitConfig()``: ConvLSTM of 16 channels over 6 maps) gets a random head correction
so that its field differs from the plain TEC gradient. The TEC direction is then
evaluated at each of the day's 1440 minutes on a coarse global set of points:

* cached: :meth:`HourlyTECCache.at` per minute, the ConvLSTM run once per hour;
* uncached: per minute, the ConvLSTM over the two bracketing hours' sequences, then
  the same cosine-squared blend and bilinear sampling;
* batched: one :meth:`HourlyTECCache.at` call for all minutes and points at once.

Prints one JSON object: wall times, the speed-up (the issue asks >= 10x), the cache's
hit rate and the largest difference between the cached and uncached directions.

Run: ``.venv/bin/python benchmarks/tec_cache.py [--minutes 1440] [--lat-step 15]
[--lon-step 15] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import pandas as pd
import torch
import xarray as xr

import ionofield as iof
from ionofield.drivers import HourlyDrivers
from ionofield.nn.recurrent import sample_direction
from ionofield.tec_cache import HourlyTECCache

DAY = np.datetime64("2024-05-11T00:00", "ns")


def analytic_tec(hours: pd.DatetimeIndex) -> xr.Dataset:
    """TEC maps (TECU) on the IONEX grid: a sunward crest with an equatorial trough."""
    lat = np.arange(87.5, -87.6, -2.5)  # IONEX order, north first
    lon = np.arange(-180.0, 180.1, 5.0)
    ut = (hours - hours[0]) / pd.Timedelta(hours=1)
    local_time = np.deg2rad(lon)[None, None, :] + 2 * np.pi * np.asarray(ut)[:, None, None] / 24
    phi = np.deg2rad(lat)[None, :, None]
    day_side = 0.5 * (1.0 + np.cos(local_time - np.pi))  # maximum at 12 LT
    crest = np.exp(-(((np.abs(phi) - np.deg2rad(15.0)) / np.deg2rad(12.0)) ** 2))
    tec = 5.0 + 10.0 * np.cos(phi) ** 2 + 40.0 * day_side * crest
    return xr.Dataset(
        {"tec": (("time", "lat", "lon"), tec.astype(np.float32), {"units": "TECU"})},
        coords={"time": hours.values, "lat": lat, "lon": lon},
    )


def campaign(hours: pd.DatetimeIndex) -> xr.Dataset:
    """The analytic TEC, 3-hourly Kp / daily F10.7 and a handful of observations."""
    slots = pd.date_range(hours[0], hours[-1], freq="3h")
    indices = xr.Dataset(
        {
            "kp": ("time", 2.0 + 3.0 * np.sin(np.linspace(0, np.pi, slots.size))),
            "f107": ("time", np.full(slots.size, 150.0)),
            "f107_81": ("time", np.full(slots.size, 145.0)),
        },
        coords={"time": slots.values},
    )
    n = 5
    obs = xr.Dataset(
        {"ne": ("obs", np.full(n, 1e11))},
        coords={
            "time": ("obs", DAY + np.arange(n) * np.timedelta64(3, "h")),
            "lat": ("obs", np.linspace(-40.0, 40.0, n)),
            "lon": ("obs", np.linspace(-150.0, 150.0, n)),
            "alt": ("obs", np.full(n, 300.0)),
        },
    )
    return iof.campaign(obs=obs, tec=analytic_tec(hours), indices=indices)


def uncached_at(
    model: iof.RSTMRF, drivers: HourlyDrivers, when: np.datetime64, lat: torch.Tensor,
    lon: torch.Tensor, grid: dict[str, float],
) -> torch.Tensor:
    """The direction at one time with the ConvLSTM run for its two hours: [B, 2]."""
    i0, i1, w0, w1 = drivers.bracket(np.array([when]))
    seqs = drivers.tec_sequences(np.concatenate([i0, i1]), model.config.seq_len)
    axes = torch.from_numpy(drivers.tec_lat), torch.from_numpy(drivers.tec_lon)
    field = model.tec_direction(seqs, *axes)[0]
    first = torch.zeros(lat.numel(), dtype=torch.long)
    return float(w0[0]) * sample_direction(field, first, lat, lon, **grid) + float(
        w1[0]
    ) * sample_direction(field, first + 1, lat, lon, **grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--lat-step", type=float, default=15.0)
    parser.add_argument("--lon-step", type=float, default=15.0)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (default 1: one 71 x 72 map batch gains little from more)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    hours = pd.date_range(DAY, periods=25, freq="h")
    ds = campaign(hours)
    drivers = HourlyDrivers.from_campaign(ds)
    torch.manual_seed(0)
    model = iof.RSTMRF(iof.FitConfig()).eval()
    torch.nn.init.normal_(model.direction_head.correction.weight, std=0.05)

    plat, plon = np.meshgrid(
        np.arange(-90.0 + args.lat_step / 2, 90.0, args.lat_step),
        np.arange(-180.0, 180.0, args.lon_step),
        indexing="ij",
    )
    lat = torch.from_numpy(plat.ravel()).float()
    lon = torch.from_numpy(plon.ravel()).float()
    n_points = lat.numel()
    minutes = DAY + np.arange(args.minutes) * np.timedelta64(1, "m")
    grid = dict(
        lat0=float(drivers.tec_lat[0]), dlat=float(drivers.tec_lat[1] - drivers.tec_lat[0]),
        lon0=float(drivers.tec_lon[0]), dlon=float(drivers.tec_lon[1] - drivers.tec_lon[0]),
    )

    with torch.no_grad():
        cache = HourlyTECCache(model, drivers)
        start = time.perf_counter()
        cached = [cache.at(np.full(n_points, t), lat, lon) for t in minutes]
        cached_s = time.perf_counter() - start
        stats = cache.get_stats()

        start = time.perf_counter()
        plain = [uncached_at(model, drivers, t, lat, lon, grid) for t in minutes]
        uncached_s = time.perf_counter() - start

        batched_cache = HourlyTECCache(model, drivers)
        start = time.perf_counter()
        batched = batched_cache.at(
            np.repeat(minutes, n_points), lat.repeat(len(minutes)), lon.repeat(len(minutes))
        )
        batched_s = time.perf_counter() - start

    cached_all = torch.cat(cached)
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "torch_threads": torch.get_num_threads(),
                "tec_grid": [int(drivers.tec.shape[1]), int(drivers.tec.shape[2])],
                "model": {"tec_feat_dim": model.config.tec_feat_dim,
                          "seq_len": model.config.seq_len},
                "minutes": len(minutes),
                "points_per_minute": n_points,
                "cached_wall_s": round(cached_s, 3),
                "uncached_wall_s": round(uncached_s, 3),
                "speedup": round(uncached_s / cached_s, 1),
                "cache_stats": stats,
                "convlstm_hours_cached": stats["misses"],
                "convlstm_hours_uncached": 2 * len(minutes),
                "batched_one_call_wall_s": round(batched_s, 3),
                "max_abs_diff_cached_vs_uncached": float(
                    (cached_all - torch.cat(plain)).abs().max()
                ),
                "max_abs_diff_batched_vs_per_minute": float((batched - cached_all).abs().max()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

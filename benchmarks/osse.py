"""Observing-system simulation experiment: skill of R-STMRF against a known truth.

A 3-day synthetic storm world (``ionofield.osse``, driven by the real Kp / F10.7
of 10-12 May 2024) is sampled by RO-like profiles and integrated into TEC maps. The
model is fitted on the profiles of the first two days (validation on held-out 3-hour
periods), then the third day, which it has never seen, is reconstructed on the full
grid and compared with the truth. Prints one JSON document.

    python benchmarks/osse.py [--quick] [--no-ablations] [--seeds 0 1 2] [--work DIR]
                              [--world-seed 0] [--options '{"max_steps": 2000}']

Every variant (the default config and each ablation) is fitted once per seed: single
fits scatter by several hundredths in skill with the seed alone, so the report gives
each seed's scores and their mean, min and max. The default's fits are scored on the
full grid, the ablations' on every other time, latitude and longitude.

Each fit runs in its own process, so its wall time and peak resident memory are its
own (the truth and the IRI cube are prepared, and cached on disk, beforehand).
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

import ionofield as iof
from ionofield.background import IRI_F107, campaign_background
from ionofield.osse import sample_ro_profiles, storm_world, tec_maps

START = "2024-05-10"
DAYS = 3
EVAL_ALT = (150.0, 600.0)
#: The model's IRI cube on the synthetic world's background grid.
BACKGROUND = dict(background_alt=(60.0, 1000.0, 10.0), background_lat_step=5.0,
                  background_lon_step=10.0)
#: Profiles per day: about half of what COSMIC-2 alone delivers (some 4,000 ionospheric
#: profiles a day within 45 degrees of the equator) plus FY-3D's few hundred, spread
#: over the globe.
PROFILES_PER_DAY = 2000
#: Levels per profile, 100-800 km: about 15 km apart, a few per scale height (real
#: ionPrf files have hundreds; neighbouring levels add little independent information).
LEVELS = 48
VARIANTS = {
    "default": {},
    "no_tec_direction": {"w_tec_direction": 0.0},
    "no_chapman": {"w_chapman": 0.0},
    "no_env_lstm": {"use_env": False},
}


def prepare(work: Path, *, profiles_per_day: int, levels: int, quick: bool,
            world_seed: int) -> None:
    """Build the world, the observations, the TEC maps and the campaign; cache the IRI cube.

    ``world_seed`` draws the world's perturbation phases, and ``world_seed + 1`` the
    profiles' places and times.
    """
    world = storm_world(START, days=DAYS, seed=world_seed)
    start = np.datetime64(START, "ns")
    held_out = start + np.timedelta64(DAYS - 1, "D")
    obs = sample_ro_profiles(world, profiles_per_day * (DAYS - 1), start=start, end=held_out,
                             seed=world_seed + 1, levels=levels)
    obs = obs.where(obs.ne > 0, drop=True)  # as the readers do with real files
    hours = pd.date_range(start, periods=24 * DAYS + 1, freq="h").values
    tec = tec_maps(world, hours)
    ds = iof.campaign(obs=obs, tec=tec, period=(hours[0], hours[-1]))
    ds.to_netcdf(work / "campaign.nc")
    campaign_background(ds.time.values, ds[IRI_F107], config=iof.FitConfig(**BACKGROUND))
    grid = evaluation_grid(quick)
    t = grid.time.values
    truth = world.log10_ne(t[:, None, None, None], grid.alt.values[:, None, None],
                           grid.lat.values[:, None], grid.lon.values).astype(np.float32)
    xr.Dataset(
        {"log10_ne": (("time", "alt", "lat", "lon"), truth),
         "tec": tec.tec.sel(time=t, lat=grid.lat, lon=grid.lon)},
        coords=grid.coords,
    ).to_netcdf(work / "truth.nc")


def evaluation_grid(quick: bool) -> xr.Dataset:
    day = pd.Timestamp(START) + pd.Timedelta(days=DAYS - 1)
    step = 2 if quick else 1
    return iof.grid(
        time=pd.date_range(day, periods=24 // step, freq=f"{step}h"),
        alt=np.arange(100.0, 1001.0, 10.0),
        lat=np.arange(-87.5, 87.6, 2.5 * step),
        lon=np.arange(-180.0, 180.0, 5.0 * step),
    )


def fit_variant(work: Path, name: str, seed: int, options: dict) -> dict:
    """Fit one variant (in this process) and save it; returns time and memory.

    The campaign is opened lazily, as a user fitting a saved campaign would: the fit
    reads its observations in blocks, so the peak RSS is the fit's own.
    """
    with xr.open_dataset(work / "campaign.nc") as ds:
        started = time.perf_counter()
        model = iof.fit(ds, seed=seed, progress=False, threads=1, **BACKGROUND, **options)
        wall = time.perf_counter() - started
    model.save(work / f"model_{name}.pt")
    table = model.history
    return {"fit_wall_s": round(wall, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "steps": int(model.info["steps"]), "train_s": model.info["train_seconds"],
            "validations": int(len(table)), "best_step": int(model.info["best_step"]),
            "val_rmse": model.info["val_rmse"],
            "val_rmse_background": model.info["val_rmse_background"],
            "sigma_factor": round(model.info["sigma_factor"], 3)}


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE, prediction efficiency and correlation (CEDAR ETI / CCMC-ISWAT set)."""
    err = pred - truth
    mse = float(np.mean(err**2))
    return {"rmse": round(np.sqrt(mse), 4),
            "prediction_efficiency": round(1.0 - mse / float(np.var(truth)), 4),
            "correlation": round(float(np.corrcoef(pred.ravel(), truth.ravel())[0, 1]), 4),
            "n": int(truth.size)}


def evaluate(work: Path, name: str, *, full: bool) -> dict:
    """Reconstruct the held-out day with a fitted variant and score it against the truth."""
    truth_ds = xr.open_dataset(work / "truth.nc").load()
    if not full:  # ablations: every other time, latitude and longitude
        truth_ds = truth_ds.isel(time=slice(0, None, 2), lat=slice(0, None, 2),
                                 lon=slice(0, None, 2))
    ds = xr.open_dataset(work / "campaign.nc").load()
    model = iof.load_model(work / f"model_{name}.pt")
    started = time.perf_counter()
    vol = iof.reconstruct(ds, truth_ds[["log10_ne"]], model=model).compute()
    seconds = time.perf_counter() - started
    band = dict(alt=slice(*EVAL_ALT))
    truth = truth_ds.log10_ne.sel(band)
    fit = np.log10(vol.ne.sel(band))
    background = np.log10(vol.ne_background.sel(band))
    rmse_fit = float(np.sqrt(((fit - truth) ** 2).mean()))
    rmse_bg = float(np.sqrt(((background - truth) ** 2).mean()))
    out = {"reconstruct_wall_s": round(seconds, 1), "rmse_log10_background": round(rmse_bg, 4),
           "rmse_log10_fit": round(rmse_fit, 4), "skill": round(1.0 - rmse_fit / rmse_bg, 4)}
    if not full:
        return out
    peaks = {k: iof.peak_parameters(v) for k, v in (
        ("truth", 10.0**truth_ds.log10_ne), ("fit", vol.ne), ("background", vol.ne_background))}
    for k in ("fit", "background"):
        rel = (peaks[k].nmf2 - peaks["truth"].nmf2) / peaks["truth"].nmf2
        out[f"nmf2_rel_rmse_{k}"] = round(float(np.sqrt((rel**2).mean())), 4)
        dh = peaks[k].hmf2 - peaks["truth"].hmf2
        out[f"hmf2_rmse_km_{k}"] = round(float(np.sqrt((dh**2).mean())), 2)
        column = iof.column_tec(vol.ne if k == "fit" else vol.ne_background)
        out[f"tec_rmse_tecu_{k}"] = round(float(np.sqrt(((column - truth_ds.tec) ** 2).mean())),
                                          3)
    sigma = vol.ne_log10_sigma.sel(band)
    out["sigma_calibration_inside_1sigma"] = round(float((np.abs(fit - truth) <= sigma).mean()), 4)
    out["sigma_median"] = round(float(sigma.median()), 4)
    out["by_class"] = classes(ds, truth, fit, background)
    return out


def classes(ds: xr.Dataset, truth: xr.DataArray, fit: xr.DataArray, bg: xr.DataArray) -> dict:
    """Metrics split by geomagnetic activity, day / night and latitude band."""
    kp = ds.kp.sel(time=truth.time)
    local_hour = (truth.time.dt.hour + truth.lon / 15.0) % 24
    masks = {
        "kp<3": kp < 3, "3<=kp<5": (kp >= 3) & (kp < 5), "kp>=5": kp >= 5,
        "day (6-18 LT)": (local_hour >= 6) & (local_hour < 18),
        "night": (local_hour < 6) | (local_hour >= 18),
        "|lat|<30": np.abs(truth.lat) < 30,
        "30<=|lat|<60": (np.abs(truth.lat) >= 30) & (np.abs(truth.lat) < 60),
        "|lat|>=60": np.abs(truth.lat) >= 60,
    }
    out = {}
    for label, mask in masks.items():
        mask = mask.broadcast_like(truth)
        if not bool(mask.any()):
            out[label] = None
            continue
        t, f, b = (np.asarray(a.values[mask.values]) for a in (truth, fit, bg))
        out[label] = {"fit": metrics(f, t), "background": metrics(b, t)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings for a smoke run")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="the fits' budget (default: FitConfig's; 60 with --quick)")
    parser.add_argument("--profiles-per-day", type=int, default=None)
    parser.add_argument("--levels", type=int, default=None, help="levels per profile")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the world prepared in --work by an earlier run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the fits (each variant is fitted with each)")
    parser.add_argument("--world-seed", type=int, default=0,
                        help="seed of the world and its profiles (another world, one storm)")
    parser.add_argument("--options", type=json.loads, default={},
                        help="FitConfig fields (JSON) set in every fit, ablations included")
    parser.add_argument("--stage-fit", nargs=3, metavar=("NAME", "SEED", "OPTIONS_JSON"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ionofield-osse-"))
    if args.stage_fit:
        name, seed, options = args.stage_fit
        print(json.dumps(fit_variant(work, name, int(seed), json.loads(options))))
        return
    profiles = args.profiles_per_day or (150 if args.quick else PROFILES_PER_DAY)
    budget = {"max_steps": args.max_steps or (60 if args.quick else iof.FitConfig().max_steps)}
    if args.quick:
        budget.update(eval_every=20, weight_average_steps=20)
    started = time.perf_counter()
    if not (args.reuse and (work / "truth.nc").exists()):
        levels = args.levels or (40 if args.quick else LEVELS)
        prepare(work, profiles_per_day=profiles, levels=levels, quick=args.quick,
                world_seed=args.world_seed)
    report: dict = {"world": f"synthetic storm world {START} + {DAYS} days, real Kp/F10.7",
                    "world_seed": args.world_seed, "options": args.options,
                    "train_days": DAYS - 1, "held_out_day": DAYS,
                    "observations": int(xr.open_dataset(work / "campaign.nc").sizes["obs"]),
                    "profiles_per_day": profiles, **budget,
                    "prepare_s": round(time.perf_counter() - started, 1)}
    variants = {"default": {}} if args.no_ablations else VARIANTS
    fits = {f"{name}_seed{seed}": (name, seed, options)
            for seed in args.seeds for name, options in variants.items()}
    # Two fits at a time (one torch thread each) on this 2-core machine.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = {
            fit: pool.submit(
                subprocess.run,
                [sys.executable, __file__, "--work", str(work), "--stage-fit", fit, str(seed),
                 json.dumps({**budget, **args.options, **options})],
                check=True, capture_output=True, text=True,
            )
            for fit, (name, seed, options) in fits.items()
        }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for fit, run in runs.items():
        name, seed, _ = fits[fit]
        result = json.loads(run.result().stdout.strip().splitlines()[-1])
        result.update(evaluate(work, fit, full=name == "default"))
        results[name].append({"seed": seed, **result})
    for name, each in results.items():
        report[name] = {"over_seeds": over_seeds(each), "each_seed": each}
    print(json.dumps(report, indent=2))


def over_seeds(results: list[dict]) -> dict:
    """Mean, min and max over the seeds of a variant's headline numbers."""
    out: dict = {"seeds": [r["seed"] for r in results]}
    for key in ("skill", "sigma_calibration_inside_1sigma", "fit_wall_s", "peak_rss_mb"):
        values = [r[key] for r in results if key in r]
        if values:
            out[key] = {"mean": round(float(np.mean(values)), 4), "min": min(values),
                        "max": max(values)}
    return out


if __name__ == "__main__":
    main()

"""Observing-system simulation experiment: skill of R-STMRF against a known truth.

Named 3-day synthetic worlds (``ionofield.osse.WORLDS``, driven by the real Kp /
F10.7 of 10-12 May 2024: ``storm``, whose IRI base has the model background's
coefficients; ``other_iri``, whose base has other ones; ``structured``, other_iri
plus structures IRI lacks) are sampled by RO-like profiles and integrated into TEC
maps, and scored in two modes:

- ``forecast``: the model is fitted on the profiles of the first two days
  (validation on held-out 3-hour periods), then the third day, which it has never
  seen, is reconstructed on the full grid and compared with the truth;
- ``reanalysis``: profiles on all three days; 10 % of them (whole profiles, drawn
  with a seeded RNG by ``ionofield.split_profiles``) are held out of the fit and
  scored at their points (150-600 km) against the truth there, and the fitted
  period is reconstructed every 3 hours (shifted by 0, 80 or 160 minutes in turn) on
  the full grid and compared with the truth.

Skill is ``1 - RMSE_fit / RMSE_background`` of log10 Ne over 150-600 km, the
background being the model's own IRI. Prints one JSON document: each (world, mode,
variant, seed)'s scores, and per mode the mean, min, max and std over seeds and
worlds (and per world over seeds).

    python benchmarks/osse.py [--quick] [--no-ablations] [--seeds 0 1 2] [--work DIR]
                              [--worlds storm other_iri structured]
                              [--mode forecast|reanalysis|both]
                              [--world-seed 0] [--tec-cadence 2] [--options '{"max_steps": 2000}']
                              [--val-tail-hours 6] [--jobs 2] [--threads 1]

The grid is reconstructed with ``reconstruct``'s default ``precision="auto"``; where
that chose bfloat16, the default's scoring reconstructs it in float32 too and reports
what the precision changed (``float32``: skill, the rms and largest change of log10
Ne, the rms relative change of sigma).

Every variant (the default config and, in forecast mode, each ablation) is fitted
once per seed: single fits scatter by several hundredths in skill with the seed
alone. The default's fits are scored on the full grid, the ablations' on every other
time, latitude and longitude.

Each fit runs in its own process (``--jobs`` at a time, 2 by default, each with its
share of the cores as torch threads), and is scored there after it, so its wall time
and peak resident memory (taken before the scoring) are its own; the worlds,
observations and IRI cube are prepared, and cached on disk, beforehand.
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
import torch
import xarray as xr
from _memory import available_cores, peak_rss_mb

import ionofield as iof
from ionofield.background import IRI_F107, campaign_background
from ionofield.osse import (
    NOISE_FLOOR_M3,
    WORLDS,
    SyntheticWorld,
    hold_out_profiles,
    sample_ro_profiles,
    synthetic_world,
    tec_maps,
)

START = "2024-05-10"
DAYS = 3
EVAL_ALT = (150.0, 600.0)
#: Edges (km) of the altitude bands the grid's scores are split into (``by_altitude``).
ALT_BANDS = (150.0, 220.0, 300.0, 400.0, 500.0, 600.0)  # the last one includes its top
#: The model's IRI cube on the synthetic world's background grid.
BACKGROUND = dict(background_alt=(60.0, 1000.0, 10.0), background_lat_step=5.0,
                  background_lon_step=10.0)
#: Profiles per day: about what COSMIC-2 alone delivers (some 4,000 ionospheric profiles
#: a day within 45 degrees of the equator), spread over the globe. It was 2,000 (half
#: of that) until December 2026; docs/benchmarks.rst says which density each run used.
PROFILES_PER_DAY = 4000
#: Levels per profile, 100-800 km: about 15 km apart, a few per scale height (real
#: ionPrf files have hundreds; neighbouring levels add little independent information).
LEVELS = 48
VARIANTS = {
    "default": {},
    "no_tec_direction": {"w_tec_direction": 0.0},
    "no_chapman": {"w_chapman": 0.0},
    "no_env_lstm": {"use_env": False},
    "no_profile_shift": {"profile_shift": False},
    "log_noise_likelihood": {"noise_likelihood": "log"},
}
MODES = ("forecast", "reanalysis")
#: Share of the reanalysis profiles held out of the fit.
HELD_OUT_FRACTION = 0.1
#: Hours between the reanalysis grid's times (full runs; twice that with --quick).
REANALYSIS_STEP_H = 3
#: Minutes added in turn to those times, so that they sample each hour of a 3-hour Kp
#: slot and the minutes within an hour: at the slot starts alone (where the temporal
#: code reads its own hour's drivers exactly) sigma looks wider than elsewhere.
REANALYSIS_OFFSETS_MIN = (0, 80, 160)
#: The scores summarised over seeds and worlds.
SUMMARY_KEYS = ("skill", "rmse_log10_fit", "rmse_log10_background", "hmf2_rmse_km_fit",
                "hmf2_rmse_km_background", "nmf2_rel_rmse_fit", "nmf2_rel_rmse_background",
                "sigma_calibration_inside_1sigma", "heldout_skill", "heldout_rmse_log10_fit",
                "heldout_rmse_log10_background", "heldout_hmf2_rmse_km_fit",
                "heldout_hmf2_rmse_km_background", "test_inside_1sigma", "test_rmse",
                "test_rmse_background", "persistence_skill", "truth_persistence_skill",
                "fit_wall_s", "peak_rss_mb")


def prepare(work: Path, *, profiles_per_day: int, levels: int, quick: bool,
            world_seed: int, world: str = "storm", mode: str = "forecast",
            truth: SyntheticWorld | None = None, retrieval_errors: bool = False,
            tec_cadence: int = 1) -> None:
    """Write a mode's campaign, truth on the grid and held-out profiles; cache the IRI cube.

    ``truth`` is the named ``world`` when already built (it takes a minute for
    worlds whose IRI base is not cached). ``world_seed`` draws the world's
    perturbation phases and structures, ``world_seed + 1`` the profiles' places and
    times, and ``world_seed`` the held-out profiles of the reanalysis. The campaign
    holds a TEC map every ``tec_cadence`` hours (the truth file keeps the hourly ones).
    """
    truth = truth or synthetic_world(world, START, days=DAYS, seed=world_seed)
    start = np.datetime64(START, "ns")
    days = DAYS - 1 if mode == "forecast" else DAYS
    obs = sample_ro_profiles(truth, profiles_per_day * days, start=start,
                             end=start + np.timedelta64(days, "D"), seed=world_seed + 1,
                             levels=levels, retrieval_errors=retrieval_errors)
    obs = obs.where(obs.ne > 0, drop=True)  # as the readers do with real files
    hours = pd.date_range(start, periods=24 * DAYS + 1, freq="h").values
    tec = tec_maps(truth, hours)
    ds = iof.campaign(obs=obs, tec=tec.isel(time=slice(0, None, tec_cadence)),
                      period=(hours[0], hours[-1]))
    if mode == "reanalysis":
        ds, held = hold_out_profiles(ds, truth, HELD_OUT_FRACTION, seed=world_seed,
                                     alt_range=EVAL_ALT)
        held.to_netcdf(work / "heldout.nc")
    ds.to_netcdf(work / "campaign.nc")
    campaign_background(ds.time.values, ds[IRI_F107], config=iof.FitConfig(**BACKGROUND))
    grid = evaluation_grid(quick, mode)
    t = grid.time.values

    def on_grid(times: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        return ("time", "alt", "lat", "lon"), truth.log10_ne(
            times[:, None, None, None], grid.alt.values[:, None, None], grid.lat.values[:, None],
            grid.lon.values).astype(np.float32)

    fields = {"log10_ne": on_grid(t),
              "tec": tec_maps(truth, t, lat=grid.lat.values, lon=grid.lon.values).tec}
    if mode == "forecast":  # for the truth's own persistence (score_persistence)
        fields["log10_ne_day_before"] = on_grid(t - np.timedelta64(1, "D"))
    xr.Dataset(fields, coords=grid.coords).to_netcdf(work / "truth.nc")


def prepared(folder: Path, mode: str) -> bool:
    """Whether ``folder`` holds a world as this version of :func:`prepare` writes it."""
    if not (folder / "truth.nc").exists():
        return False
    with xr.open_dataset(folder / "truth.nc") as truth:
        # A forecast's truth holds the day before since score_persistence reads it.
        return mode != "forecast" or "log10_ne_day_before" in truth.data_vars


def evaluation_grid(quick: bool, mode: str = "forecast") -> xr.Dataset:
    """The grid scored against the truth: the unseen last day, or the fitted period."""
    step = 2 if quick else 1
    if mode == "forecast":
        times = pd.date_range(pd.Timestamp(START) + pd.Timedelta(days=DAYS - 1),
                              periods=24 // step, freq=f"{step}h")
    else:
        hours = REANALYSIS_STEP_H * step
        times = pd.date_range(START, periods=24 * DAYS // hours, freq=f"{hours}h")
        times += pd.to_timedelta(np.resize(REANALYSIS_OFFSETS_MIN, len(times)), unit="min")
    return iof.grid(
        time=times,
        alt=np.arange(100.0, 1001.0, 10.0),
        lat=np.arange(-87.5, 87.6, 2.5 * step),
        lon=np.arange(-180.0, 180.0, 5.0 * step),
    )


def fit_variant(work: Path, name: str, seed: int, options: dict, threads: int) -> dict:
    """Fit one variant (in this process, on ``threads`` torch threads) and save it.

    Returns time, memory and the fit's own scores. The campaign is opened lazily, as a
    user fitting a saved campaign would: the fit reads its observations in blocks, so
    the peak RSS is the fit's own.
    """
    with xr.open_dataset(work / "campaign.nc") as ds:
        started = time.perf_counter()
        model = iof.fit(ds, seed=seed, progress=False, threads=threads, **BACKGROUND, **options)
        wall = time.perf_counter() - started
    model.save(work / f"model_{name}.pt")
    table = model.history
    return {"fit_wall_s": round(wall, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "steps": int(model.info["steps"]), "train_s": model.info["train_seconds"],
            "validations": int(len(table)), "best_step": int(model.info["best_step"]),
            "val_rmse": model.info["val_rmse"],
            "val_rmse_background": model.info["val_rmse_background"],
            "sigma_factor": round(model.info["sigma_factor"], 3),
            "sigma_gap_variance_rate": model.info.get("sigma_gap_variance_rate"),
            "val_sigma_calibration_by_gap": gap_table(model.info.get("sigma_calibration_by_gap",
                                                                     [])),
            # With --options '{"test_fraction": ...}': the scores of the untouched test block.
            **{k: model.info[k] for k in ("n_test", "test_rmse", "test_rmse_background",
                                          "test_inside_1sigma") if k in model.info}}


def gap_table(rows: list[dict]) -> dict:
    """The fit's validation errors by hours from the data, keyed by bin ("3-6 h", "24-inf h")."""
    return {"{:g}-{:g} h".format(*row["gap_hours"]):
            {key: row[key] if key == "count" else round(row[key], 4)
             for key in ("count", "inside_1sigma", "rmse")}
            for row in rows}


def metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE, prediction efficiency and correlation (CEDAR ETI / CCMC-ISWAT set)."""
    err = pred - truth
    mse = float(np.mean(err**2))
    return {"rmse": round(np.sqrt(mse), 4),
            "prediction_efficiency": round(1.0 - mse / float(np.var(truth)), 4),
            "correlation": round(float(np.corrcoef(pred.ravel(), truth.ravel())[0, 1]), 4),
            "n": int(truth.size)}


def evaluate(work: Path, name: str, *, full: bool) -> dict:
    """Score a fitted variant against the truth: on the grid, and at held-out profiles.

    The grid is ``truth.nc``'s (the unseen day, or the fitted period of a
    reanalysis); the held-out profiles, when ``heldout.nc`` exists, are scored by
    ``ionofield.validate`` at their points (``heldout_*``).
    """
    out = score_grid(work, name, full=full)
    if (work / "heldout.nc").exists():
        out.update(score_heldout(work, name))
    return out


def score_heldout(work: Path, name: str) -> dict:
    """Skill, log10 Ne and hmF2 RMSE at the held-out profiles' points, against the truth."""
    with xr.open_dataset(work / "heldout.nc") as held:
        table = iof.validate(iof.load_model(work / f"model_{name}.pt"), held.load(),
                             device="cpu").sel(group="all")
    out = {"heldout_points": int(table.n_points),
           "heldout_skill": round(float(table.log10_ne_skill), 4)}
    for estimate, label in (("model", "fit"), ("background", "background")):
        row = table.sel(estimate=estimate)
        out[f"heldout_rmse_log10_{label}"] = round(float(row.log10_ne_rmse), 4)
        out[f"heldout_hmf2_rmse_km_{label}"] = round(float(row.hmf2_rmse), 2)
        out[f"heldout_log10_nmf2_rmse_{label}"] = round(float(row.log10_nmf2_rmse), 4)
    return out


def rms(values: xr.DataArray | np.ndarray) -> float:
    """Root mean square of some values (an RMSE, given errors)."""
    return float(np.sqrt((values**2).mean()))


def score_grid(work: Path, name: str, *, full: bool) -> dict:
    """Reconstruct ``truth.nc``'s grid with a fitted variant and score it against the truth."""
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
    rmse_fit = rms(fit - truth)
    rmse_bg = rms(background - truth)
    out = {"reconstruct_wall_s": round(seconds, 1), "rmse_log10_background": round(rmse_bg, 4),
           "rmse_log10_fit": round(rmse_fit, 4), "skill": round(1.0 - rmse_fit / rmse_bg, 4),
           "precision": vol.attrs["precision"]}
    if not full:
        return out
    if vol.attrs["precision"] != "float32":  # what the default precision cost, if anything
        exact = iof.reconstruct(ds, truth_ds[["log10_ne"]], model=model,
                                precision="float32").compute()
        fit32 = np.log10(exact.ne.sel(band))
        rmse32 = rms(fit32 - truth)
        moved = fit - fit32
        sigma_moved = vol.ne_log10_sigma / exact.ne_log10_sigma - 1.0
        out["float32"] = {"skill": round(1.0 - rmse32 / rmse_bg, 4),
                          "ne_rms_change_dex": round(rms(moved), 5),
                          "ne_max_change_dex": round(float(np.abs(moved).max()), 5),
                          "sigma_rms_change": round(rms(sigma_moved), 5)}
    peaks = {k: iof.peak_parameters(v) for k, v in (
        ("truth", 10.0**truth_ds.log10_ne), ("fit", vol.ne), ("background", vol.ne_background))}
    for k in ("fit", "background"):
        rel = (peaks[k].nmf2 - peaks["truth"].nmf2) / peaks["truth"].nmf2
        out[f"nmf2_rel_rmse_{k}"] = round(rms(rel), 4)
        dh = peaks[k].hmf2 - peaks["truth"].hmf2
        out[f"hmf2_rmse_km_{k}"] = round(rms(dh), 2)
        column = iof.column_tec(vol.ne if k == "fit" else vol.ne_background)
        out[f"tec_rmse_tecu_{k}"] = round(rms(column - truth_ds.tec), 3)
    sigma = vol.ne_log10_sigma.sel(band)
    inside = np.abs(fit - truth) <= sigma
    out["sigma_calibration_inside_1sigma"] = round(float(inside.mean()), 4)
    # by quarter of the scored period: a forecast's sigma must grow with the lead time
    quarters = np.array_split(np.arange(truth.sizes["time"]), 4)
    out["sigma_calibration_by_quarter"] = [round(float(inside.isel(time=q).mean()), 4)
                                           for q in quarters]
    out["sigma_median"] = round(float(sigma.median()), 4)
    out["by_altitude"] = by_altitude(truth, fit, background)
    out["by_noise_floor"] = by_noise_floor(truth, fit, background, inside)
    out["by_class"] = classes(ds, truth, fit, background)
    if "log10_ne_day_before" in truth_ds:  # a forecast's truth (prepare)
        out.update(score_persistence(ds, truth_ds, model, truth, background, rmse_bg))
    return out


def score_persistence(ds: xr.Dataset, truth_ds: xr.Dataset, model: iof.RSTMRF,
                      truth: xr.DataArray, background: xr.DataArray,
                      rmse_background: float) -> dict:
    """Skill of a forecast's usual baseline, persistence of the correction a day before.

    The forecast at each grid time is the background there plus a correction to the
    background at the same place and time of day a day earlier: the fit's
    (``persistence_skill``), the storm's last state as the fit knows it, and the
    truth's own (``truth_persistence_skill``), the best any persistence can do.
    ``truth`` and ``background`` are the scored band, ``rmse_background`` the
    background's RMSE there.
    """
    scored = truth_ds[["log10_ne"]].sel(alt=truth.alt)
    day_before = scored.assign_coords(time=scored.time - np.timedelta64(1, "D"))
    # the day before's volume, labelled with the times it is carried to
    vol = iof.reconstruct(ds, day_before, model=model).compute()
    vol = vol.assign_coords(time=truth.time)
    background_before = np.log10(vol.ne_background)
    corrections = {
        "persistence": np.log10(vol.ne) - background_before,
        "truth_persistence": truth_ds.log10_ne_day_before.sel(alt=truth.alt) - background_before,
    }
    out = {}
    for name, correction in corrections.items():
        rmse = rms(background + correction - truth)
        out[f"{name}_rmse_log10"] = round(rmse, 4)
        out[f"{name}_skill"] = round(1.0 - rmse / rmse_background, 4)
    return out


def by_altitude(truth: xr.DataArray, fit: xr.DataArray, bg: xr.DataArray) -> dict:
    """RMSE of log10 Ne, fit and background, and the skill, in altitude bands (km)."""
    out = {}
    edges = list(zip(ALT_BANDS[:-1], ALT_BANDS[1:], strict=True))
    for low, high in edges:
        band = dict(alt=slice(low, high if high == ALT_BANDS[-1] else high - 1e-6))
        rmse = {k: rms(v.sel(band) - truth.sel(band))
                for k, v in (("fit", fit), ("background", bg))}
        out[f"{low:g}-{high:g} km"] = {"rmse_fit": round(rmse["fit"], 4),
                                       "rmse_background": round(rmse["background"], 4),
                                       "skill": round(1.0 - rmse["fit"] / rmse["background"], 4)}
    return out


def by_noise_floor(truth: xr.DataArray, fit: xr.DataArray, bg: xr.DataArray,
                   inside: xr.DataArray) -> dict:
    """Where the errors lie: grid points whose true density is below the profiles' noise.

    Below ``NOISE_FLOOR_M3`` (the night bottomside, depletions) an occultation sees
    mostly noise, and log10 errors there can reach a dex. ``fraction`` of the points
    lie there; ``share_fit`` and ``share_background`` are the fractions of each one's
    squared error they hold; ``skill_above`` and ``skill_below`` score each side, and
    ``inside_1sigma_above`` and ``inside_1sigma_below`` the fraction of the truth
    within one sigma (``inside``, boolean on the grid).
    """
    below = (truth < np.log10(NOISE_FLOOR_M3)).values
    fit2, bg2 = ((fit - truth) ** 2).values, ((bg - truth) ** 2).values

    def skill(where: np.ndarray) -> float | None:
        if not where.any():
            return None
        return round(1.0 - float(np.sqrt(fit2[where].mean() / bg2[where].mean())), 4)

    def fraction(where: np.ndarray) -> float | None:
        return round(float(inside.values[where].mean()), 4) if where.any() else None

    return {"noise_floor_m3": NOISE_FLOOR_M3, "fraction": round(float(below.mean()), 4),
            "share_fit": round(float(fit2[below].sum() / fit2.sum()), 4),
            "share_background": round(float(bg2[below].sum() / bg2.sum()), 4),
            "skill_above": skill(~below), "skill_below": skill(below),
            "inside_1sigma_above": fraction(~below), "inside_1sigma_below": fraction(below)}


def classes(ds: xr.Dataset, truth: xr.DataArray, fit: xr.DataArray, bg: xr.DataArray) -> dict:
    """Metrics split by geomagnetic activity, day / night and latitude band."""
    kp = ds.kp.reindex(time=truth.time, method="ffill")  # the hour's: times may fall within it
    local_hour = (truth.time.dt.hour + truth.time.dt.minute / 60.0 + truth.lon / 15.0) % 24
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
    parser.add_argument("--worlds", nargs="+", default=["storm"], choices=sorted(WORLDS),
                        metavar="NAME", help=f"named worlds among {sorted(WORLDS)} "
                        "(default: storm)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="forecast",
                        help="forecast an unseen day, reanalyse the fitted period, or both")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="the fits' budget (default: FitConfig's; 60 with --quick)")
    parser.add_argument("--profiles-per-day", type=int, default=None)
    parser.add_argument("--levels", type=int, default=None, help="levels per profile")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the worlds prepared in --work by an earlier run, and the "
                        "scores of the fits it finished with the same options")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the fits (each variant is fitted with each)")
    parser.add_argument("--world-seed", type=int, default=0,
                        help="seed of the worlds and their profiles (other draws, one storm)")
    parser.add_argument("--retrieval-errors", action="store_true",
                        help="Abel-inversion-like profile errors (sample_ro_profiles' "
                        "retrieval_errors) instead of independent noise")
    parser.add_argument("--tec-cadence", type=int, default=1, choices=(1, 2, 3),
                        help="hours between the campaign's TEC maps (2: a 2-hourly product, "
                        "whose odd hours the campaign interpolates); the last hour of the "
                        "3 days must fall on a map")
    parser.add_argument("--options", type=json.loads, default={},
                        help="FitConfig fields (JSON) set in every fit, ablations included")
    parser.add_argument("--val-tail-hours", type=float, default=0.0,
                        help="FitConfig.val_tail_hours of every fit: the last hours of the "
                        "fitted period held out for validation (default 0: none)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="fits run at a time, each in its own process (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of each fit's process (default: the cores shared "
                        "among the --jobs, at least 1)")
    parser.add_argument("--stage-fit", nargs=4, metavar=("NAME", "SEED", "OPTIONS_JSON", "FULL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--jobs and --threads must be at least 1")
    threads = args.threads or max(1, available_cores() // args.jobs)
    work = Path(args.work or tempfile.mkdtemp(prefix="ionofield-osse-"))
    if args.stage_fit:
        torch.set_num_threads(threads)  # the scoring's share too
        name, seed, options, full = args.stage_fit
        result = fit_variant(work, name, int(seed), json.loads(options), threads)
        result.update(evaluate(work, name, full=full == "full"))
        print(json.dumps(result))
        return
    profiles = args.profiles_per_day or (150 if args.quick else PROFILES_PER_DAY)
    levels = args.levels or (40 if args.quick else LEVELS)
    budget = {"max_steps": args.max_steps or (60 if args.quick else iof.FitConfig().max_steps)}
    if args.quick:
        budget.update(eval_every=20, weight_average_steps=20)
    if args.val_tail_hours:  # left out at 0, so that --reuse takes the records of before
        budget["val_tail_hours"] = args.val_tail_hours
    modes = MODES if args.mode == "both" else (args.mode,)
    started = time.perf_counter()
    for world in args.worlds:
        truth = None
        for mode in modes:
            folder = work / world / mode
            if args.reuse and prepared(folder, mode):
                continue
            folder.mkdir(parents=True, exist_ok=True)
            truth = truth or synthetic_world(world, START, days=DAYS, seed=args.world_seed)
            prepare(folder, profiles_per_day=profiles, levels=levels, quick=args.quick,
                    world_seed=args.world_seed, world=world, mode=mode, truth=truth,
                    retrieval_errors=args.retrieval_errors,
                    tec_cadence=args.tec_cadence)
    report: dict = {
        "period": f"{START} + {DAYS} days, real Kp/F10.7",
        "worlds": {world: WORLDS[world].description for world in args.worlds},
        "world_seed": args.world_seed, "options": args.options,
        "retrieval_errors": args.retrieval_errors,
        "tec_cadence_h": args.tec_cadence,
        "modes": {"forecast": f"fit days 1-{DAYS - 1}, score the unseen day {DAYS} on the grid",
                  "reanalysis": f"fit {1 - HELD_OUT_FRACTION:.0%} of the profiles of days "
                                f"1-{DAYS}; score the held-out profiles at their points "
                                f"(heldout_*) and the period every {REANALYSIS_STEP_H} h "
                                f"(shifted by {REANALYSIS_OFFSETS_MIN} min in turn) on "
                                "the grid"},
        "observations": {f"{world}/{mode}": int(xr.open_dataset(
            work / world / mode / "campaign.nc").sizes["obs"])
            for world in args.worlds for mode in modes},
        "profiles_per_day": profiles, "levels": levels, **budget,
        "jobs": args.jobs, "threads_per_fit": threads,
        "prepare_s": round(time.perf_counter() - started, 1),
    }
    fits = [(world, mode, name, seed, {**budget, **args.options, **options})
            for seed in args.seeds for world in args.worlds for mode in modes
            for name, options in (VARIANTS.items() if mode == "forecast" and not
                                  args.no_ablations else [("default", {})])]
    # Each fit in a process of its own: a thread here only waits for it.
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = [pool.submit(run_fit, work, *fit, threads=threads, reuse=args.reuse)
                for fit in fits]
    records = [run.result() for run in runs]
    report["summary"] = {mode: summary([r for r in records if r["mode"] == mode
                                        and r["variant"] == "default"])
                         for mode in modes}
    if "forecast" in modes and not args.no_ablations:
        report["ablations"] = {
            world: {name: summary([r for r in records if r["world"] == world
                                   and r["mode"] == "forecast" and r["variant"] == name])["all"]
                    for name in VARIANTS}
            for world in args.worlds
        }
    report["runs"] = records
    print(json.dumps(report, indent=2))


def run_fit(work: Path, world: str, mode: str, name: str, seed: int, options: dict, *,
            threads: int, reuse: bool) -> dict:
    """Fit and score one variant in its own process; its record, also kept in a JSON file.

    The process runs torch on ``threads`` threads. With ``reuse``, a record kept by an
    earlier run with the same options is returned without fitting again.
    """
    folder = work / world / mode
    fit = f"{name}_seed{seed}"
    kept = folder / f"result_{fit}.json"
    if reuse and kept.exists():
        record = json.loads(kept.read_text())
        if record["options"] == options:
            return record
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, __file__, "--work", str(folder), "--threads", str(threads),
         "--stage-fit", fit, str(seed), json.dumps(options),
         "full" if name == "default" else "sample"],
        check=True, capture_output=True, text=True,
    )
    record = {"world": world, "mode": mode, "variant": name, "seed": seed, "options": options,
              **json.loads(run.stdout.strip().splitlines()[-1]),
              "stage_wall_s": round(time.perf_counter() - started, 1)}
    kept.write_text(json.dumps(record))
    print(f"{world} {mode} {fit}: skill {record['skill']}", file=sys.stderr, flush=True)
    return record


def spread(values: list[float]) -> dict:
    """Mean, min, max and (population) standard deviation of some scores."""
    return {"mean": round(float(np.mean(values)), 4), "min": min(values), "max": max(values),
            "std": round(float(np.std(values)), 4), "n": len(values)}


def summary(records: list[dict]) -> dict:
    """Spread of the headline scores over all the records, and per world over its seeds."""
    def over(rows: list[dict]) -> dict:
        return {key: spread([r[key] for r in rows]) for key in SUMMARY_KEYS
                if rows and all(key in r for r in rows)}

    worlds = sorted({r["world"] for r in records})
    return {"all": over(records),
            "by_world": {w: over([r for r in records if r["world"] == w]) for w in worlds}}


if __name__ == "__main__":
    main()

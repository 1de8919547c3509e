"""What is observed of an OSSE's truth: radio-occultation profiles and TEC maps.

:func:`sample_ro_profiles` draws RO-like profiles of a
:class:`~ionofield.osse.world.SyntheticWorld` (slanted, with CDAAC-like ids and
realistic noise) in the observation data model; :func:`tec_maps` integrates its
truth into vertical TEC maps, by default on the IONEX grid;
:func:`hold_out_profiles` splits a campaign of them for a reanalysis, the held-out
profiles carrying the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ionofield.errors import ConfigError, CoverageError
from ionofield.osse.world import SyntheticWorld
from ionofield.sphere import fold_longitude
from ionofield.timeutil import to_datetime64
from ionofield.validation import split_profiles

logger = logging.getLogger(__name__)

__all__ = ["NOISE_FLOOR_M3", "hold_out_profiles", "sample_ro_profiles", "tec_maps"]

TECU = 1.0e16
"""Electrons per m2 in one TEC unit."""

NOISE_FLOOR_M3 = 5.0e9
"""Standard deviation (m-3) of the profiles' additive noise, by default: below it an
occultation's density is mostly noise."""

IONEX_LAT = np.linspace(-87.5, 87.5, 71)
"""The 71 latitudes (degrees north, ascending) of an IONEX global map."""

IONEX_LON = np.linspace(-180.0, 180.0, 73)
"""The 73 longitudes (degrees east) of an IONEX global map, both -180 and 180."""

RETRIEVAL_CORRELATION_KM = 50.0
"""Correlation length (km) along a profile of the retrieval errors."""

RETRIEVAL_BOTTOM_GAIN = 3.0
"""Relative error at 100 km over the F-region one, less 1 (it ramps up below 200 km)."""

RETRIEVAL_LOW_LAT_GAIN = 0.5
"""Relative error at the equator over that at high latitudes, less 1."""

RETRIEVAL_ABEL_FRACTION = 0.01
"""Bottomside Abel error (1 sigma) 100 km and more below hmF2, as a fraction of NmF2."""


@dataclass(frozen=True)
class _Mission:
    """Where and how high a mission's occultations reach."""

    max_lat: float
    top_km: float
    satellites: tuple[str, ...]


_MISSIONS = {
    # COSMIC-2: six satellites at 24 degrees inclination, ~530 km orbits.
    "COSMIC2": _Mission(45.0, 530.0, tuple(f"C2E{i}" for i in range(1, 7))),
    # FengYun-3D GNOS: sun-synchronous, 836 km orbit.
    "FY3D": _Mission(90.0, 800.0, ("FY3D",)),
}


def sample_ro_profiles(
    world: SyntheticWorld,
    n_profiles: int,
    *,
    start: object | None = None,
    end: object | None = None,
    seed: int = 0,
    missions: Sequence[str] = ("FY3D", "COSMIC2"),
    levels: int = 240,
    relative_noise: float = 0.1,
    noise_floor: float = NOISE_FLOOR_M3,
    retrieval_errors: bool = False,
) -> xr.Dataset:
    """Radio-occultation-like profiles of the truth, with realistic noise.

    Each profile has one time (whole minutes, uniform over [start, end)), a
    mission drawn uniformly from ``missions`` and a nominal tangent point (uniform
    over the sphere; COSMIC-2 within 45 degrees of the equator). The tangent point
    drifts along a great circle (random azimuth) by 3 to 12 degrees from the bottom
    to the top of the profile, linearly in altitude, centred on the nominal point.
    Altitudes are ``levels`` evenly spaced values from 90-110 km to the orbit
    (800 km for FY-3D, 530 km for COSMIC-2, less up to 30 km).

    The noise is multiplicative log-normal (``exp(relative_noise * z1)``) plus an
    additive floor (``noise_floor * z2``), z1 and z2 standard normal: at the bottom
    and the top of profiles, where the density is low, values near zero and below
    occur, as in real Abel inversions. They are kept (readers drop them).

    With ``retrieval_errors``, the noise is that of an Abel inversion instead
    (:func:`_retrieval_noise`): errors correlated along the profile over about
    :data:`RETRIEVAL_CORRELATION_KM`, a relative error that grows below 200 km and
    near the equatorial anomaly, and a bottomside error proportional to the profile's
    NmF2 that turns whole stretches of the bottom of some profiles negative.

    Parameters
    ----------
    world
        The truth.
    n_profiles
        Number of profiles.
    start, end
        Period of the profile times; default the world's whole period.
    seed
        Seed of the times, places, missions and noise.
    missions
        Mission names, among ``"FY3D"`` and ``"COSMIC2"``.
    levels
        Levels per profile (240 gives 1.8-2.9 km spacing).
    relative_noise
        Standard deviation of the log of the multiplicative noise (~ relative).
    noise_floor
        Standard deviation of the additive noise, m-3.
    retrieval_errors
        Abel-inversion-like errors (see above) instead of independent noise.

    Returns
    -------
    xarray.Dataset
        The observation data model, dim ``obs`` of size ``n_profiles * levels``
        (profiles in time order, altitudes increasing within a profile): ``ne``
        (m-3, noisy) and ``ne_err`` (m-3, the noise standard deviation
        ``sqrt((relative_noise * ne_true)**2 + noise_floor**2)``), float64;
        coordinates ``time``, ``lat``, ``lon``, ``alt`` (km), ``profile`` (CDAAC-like
        id such as ``C2E3.2024.131.05.17.G12``) and ``mission``; the attributes
        ``relative_noise``, ``noise_floor_m3`` and ``retrieval_errors`` record the
        noise. With ``retrieval_errors``, ``ne_err`` is the standard deviation of
        the retrieval noise (:func:`_retrieval_noise`).

    Raises
    ------
    ConfigError
        An unknown mission, fewer than 2 levels or no profiles.
    CoverageError
        An empty period or one outside the world's.
    """
    unknown = sorted(set(missions) - set(_MISSIONS))
    if unknown or not missions:
        raise ConfigError(
            f"sample_ro_profiles: missions {unknown or '(none)'} unknown; choose among "
            f"{sorted(_MISSIONS)}"
        )
    if levels < 2 or n_profiles < 1:
        raise ConfigError(
            f"sample_ro_profiles: n_profiles={n_profiles}, levels={levels}; give at least "
            "1 profile and 2 levels"
        )
    first = world.start if start is None else to_datetime64(np.asarray(start))[()]
    last = world.end if end is None else to_datetime64(np.asarray(end))[()]
    minutes = int((last - first) // np.timedelta64(1, "m"))
    if minutes < 1 or first < world.start or last > world.end:
        raise CoverageError(
            f"sample_ro_profiles: period {first}..{last} is empty or outside the world's "
            f"{world.start}..{world.end}"
        )
    rng = np.random.default_rng(seed)
    time = np.sort(first + rng.integers(0, minutes, n_profiles) * np.timedelta64(1, "m"))
    names = np.asarray(missions)[rng.integers(0, len(missions), n_profiles)]
    spec = [_MISSIONS[name] for name in names]
    max_sin = np.sin(np.radians([m.max_lat for m in spec]))
    lat0 = np.degrees(np.arcsin(rng.uniform(-max_sin, max_sin)))
    lon0 = rng.uniform(-180.0, 180.0, n_profiles)
    azimuth = rng.uniform(0.0, 2.0 * np.pi, n_profiles)
    drift = np.radians(rng.uniform(3.0, 12.0, n_profiles))
    bottom = rng.uniform(90.0, 110.0, n_profiles)
    top = np.array([m.top_km for m in spec]) - rng.uniform(0.0, 30.0, n_profiles)
    satellite = [
        m.satellites[i % len(m.satellites)]
        for m, i in zip(spec, rng.integers(0, 6, n_profiles), strict=True)
    ]
    prn = rng.integers(0, 32, n_profiles)

    frac = np.linspace(0.0, 1.0, levels)[None, :]
    alt = bottom[:, None] + (top - bottom)[:, None] * frac
    lat, lon = _great_circle(
        lat0[:, None], lon0[:, None], azimuth[:, None], drift[:, None] * (frac - 0.5)
    )
    ne_true = world.ne(time[:, None], alt, lat, lon)
    if retrieval_errors:
        ne, ne_err = _retrieval_noise(ne_true, alt, lat, relative_noise, noise_floor, rng)
    else:
        z = rng.standard_normal((2, n_profiles, levels))
        ne = ne_true * np.exp(relative_noise * z[0]) + noise_floor * z[1]
        ne_err = np.hypot(relative_noise * ne_true, noise_floor)

    profile = _profile_ids(time, satellite, prn)
    per_obs = {
        "time": np.repeat(time, levels),
        "lat": lat.ravel(),
        "lon": fold_longitude(lon.ravel()),
        "alt": alt.ravel(),
        "profile": np.repeat(profile, levels),
        "mission": np.repeat(names, levels),
    }
    logger.info("sampled %d RO profiles x %d levels from the synthetic world", n_profiles, levels)
    return xr.Dataset(
        {
            "ne": ("obs", ne.ravel(), {"long_name": "electron number density", "units": "m-3"}),
            "ne_err": (
                "obs",
                ne_err.ravel(),
                {"long_name": "standard deviation of the noise of ne", "units": "m-3"},
            ),
        },
        coords={name: ("obs", values) for name, values in per_obs.items()},
        attrs={
            "title": "synthetic radio-occultation electron density profiles",
            "source": f"ionofield.osse, world seed {world.seed}, sample seed {seed}",
            "relative_noise": relative_noise,
            "noise_floor_m3": noise_floor,
            "retrieval_errors": int(retrieval_errors),
        },
    )


def _retrieval_noise(
    ne_true: np.ndarray,
    alt: np.ndarray,
    lat: np.ndarray,
    relative_noise: float,
    noise_floor: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Abel-inversion-like noisy profiles and the standard deviation of their noise.

    ::

        ne = ne_true * exp(r * z1) + b * NmF2 * w * z2 + noise_floor * z3
        r = relative_noise * (1 + RETRIEVAL_BOTTOM_GAIN * clip((200 km - alt) / 100 km, 0, 1))
                           * (1 + RETRIEVAL_LOW_LAT_GAIN * exp(-(lat / 20 deg)**2))
        w = clip((hmF2 - alt) / 100 km, 0, 1)

    ``z1`` and ``z2`` are AR(1) series along each profile with correlation
    ``exp(-dz / RETRIEVAL_CORRELATION_KM)`` between levels ``dz`` apart (an
    inversion's error at one level carries to the levels below it), ``z3`` is white;
    ``b`` is :data:`RETRIEVAL_ABEL_FRACTION` and NmF2, hmF2 are the profile's true
    peak. The second term, a few percent of NmF2 at the bottom, is larger than the
    E-region density itself, so stretches of the bottom of some profiles go negative
    as in real ionPrf files.

    Parameters
    ----------
    ne_true, alt, lat
        The truth (m-3), altitudes (km, increasing along the last axis) and latitudes
        (degrees), shape [P, L].
    relative_noise, noise_floor
        As :func:`sample_ro_profiles` takes them.
    rng
        The sampler's generator.

    Returns
    -------
    ne, ne_err : numpy.ndarray
        Noisy densities and ``sqrt((r ne_true)**2 + (b NmF2 w)**2 + noise_floor**2)``, [P, L].
    """
    r = (relative_noise
         * (1.0 + RETRIEVAL_BOTTOM_GAIN * np.clip((200.0 - alt) / 100.0, 0.0, 1.0))
         * (1.0 + RETRIEVAL_LOW_LAT_GAIN * np.exp(-((lat / 20.0) ** 2))))
    peak = np.argmax(ne_true, axis=1)
    nmf2 = ne_true[np.arange(ne_true.shape[0]), peak][:, None]
    hmf2 = alt[np.arange(alt.shape[0]), peak][:, None]
    abel = RETRIEVAL_ABEL_FRACTION * nmf2 * np.clip((hmf2 - alt) / 100.0, 0.0, 1.0)
    rho = np.exp(-np.diff(alt, axis=1) / RETRIEVAL_CORRELATION_KM)
    z = rng.standard_normal((3, *ne_true.shape))
    for k in range(1, ne_true.shape[1]):  # AR(1) along the profile, unit variance
        step = rho[:, k - 1]
        z[:2, :, k] = step * z[:2, :, k - 1] + np.sqrt(1.0 - step**2) * z[:2, :, k]
    ne = ne_true * np.exp(r * z[0]) + abel * z[1] + noise_floor * z[2]
    ne_err = np.sqrt((r * ne_true) ** 2 + abel**2 + noise_floor**2)
    return ne, ne_err


def _great_circle(
    lat: np.ndarray, lon: np.ndarray, azimuth: np.ndarray, distance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Point ``distance`` (radians, may be negative) from (lat, lon) along ``azimuth``.

    Latitudes and longitudes in degrees, azimuth in radians from north; the arrays
    broadcast. Returns latitudes and longitudes (degrees, unfolded).
    """
    phi, lam = np.radians(lat), np.radians(lon)
    sin_phi2 = np.sin(phi) * np.cos(distance) + np.cos(phi) * np.sin(distance) * np.cos(azimuth)
    phi2 = np.arcsin(np.clip(sin_phi2, -1.0, 1.0))
    lam2 = lam + np.arctan2(
        np.sin(azimuth) * np.sin(distance) * np.cos(phi),
        np.cos(distance) - np.sin(phi) * sin_phi2,
    )
    return np.degrees(phi2), np.degrees(lam2)


def _profile_ids(time: np.ndarray, satellite: list[str], prn: np.ndarray) -> np.ndarray:
    """CDAAC-like ids ``SAT.YYYY.DOY.HH.MM.Gnn``, made distinct within a satellite-minute.

    Profiles sharing a satellite and a minute get distinct transmitters (up to 32).
    """
    stamp = pd.DatetimeIndex(time).strftime("%Y.%j.%H.%M")
    keys = pd.Series([f"{s}.{t}" for s, t in zip(satellite, stamp, strict=True)])
    groups = keys.groupby(keys)
    rank = groups.cumcount().to_numpy()
    if rank.max(initial=0) >= 32:
        raise ConfigError(
            "sample_ro_profiles: more than 32 profiles of one satellite in one minute; "
            "give fewer profiles or a longer period"
        )
    # The group's first draw, stepped by 7 (prime to 32) for each later profile.
    first = pd.Series(prn).groupby(keys).transform("first").to_numpy()
    prn = (first + 7 * rank) % 32 + 1
    return np.array([f"{k}.G{p:02d}" for k, p in zip(keys, prn, strict=True)])


def tec_maps(
    world: SyntheticWorld,
    times: npt.ArrayLike,
    *,
    lat: npt.ArrayLike = IONEX_LAT,
    lon: npt.ArrayLike = IONEX_LON,
    alt_step: float = 5.0,
) -> xr.Dataset:
    """Vertical TEC maps of the truth.

    The truth Ne is integrated in altitude by the trapezoid rule (in metres) over
    the world's altitude range only (60-1000 km for
    :func:`~ionofield.osse.world.storm_world`): the plasmasphere above, which adds a
    few TECU to real GNSS TEC, is left out.

    Parameters
    ----------
    world
        The truth.
    times
        Map times, shape [T], within the world's period.
    lat
        Latitudes, degrees north, ascending; default the 71 of IONEX.
    lon
        Longitudes, degrees east; default the 73 of IONEX (-180 and 180 both).
    alt_step
        Largest integration step in km; the levels are evenly spaced from the
        world's lowest to its highest altitude.

    Returns
    -------
    xarray.Dataset
        ``tec(time, lat, lon)`` in TECU (1 TECU = 1e16 m-2), float32.
    """
    times = to_datetime64(np.atleast_1d(np.asarray(times)))
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    lo, hi = world.alt_range
    alt = np.linspace(lo, hi, int(np.ceil((hi - lo) / alt_step)) + 1)
    tec = np.empty((times.size, lat.size, lon.size), dtype=np.float32)
    for k, when in enumerate(times):
        ne = world.ne(when, alt[:, None, None], lat[None, :, None], lon[None, None, :])
        tec[k] = np.trapezoid(ne, alt * 1.0e3, axis=0) / TECU
    return xr.Dataset(
        {
            "tec": (
                ("time", "lat", "lon"),
                tec,
                {
                    "long_name": "vertical total electron content",
                    "units": "TECU",
                    "comment": f"1 TECU = 1e16 m-2; truth Ne integrated from {lo:g} to {hi:g} km",
                },
            ),
        },
        coords={"time": times, "lat": lat, "lon": lon},
        attrs={"title": "synthetic TEC maps", "source": f"ionofield.osse, seed {world.seed}"},
    )


def hold_out_profiles(
    campaign: xr.Dataset,
    world: SyntheticWorld,
    fraction: float = 0.1,
    *,
    seed: int = 0,
    alt_range: tuple[float, float] | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Hold whole profiles out of a campaign of a world's profiles, with their truth.

    The split is :func:`ionofield.split_profiles`' (profiles drawn at random with
    ``seed``): disjoint by whole profiles, ``round(fraction * n_profiles)`` of them
    held out. The held-out part's ``ne`` is then the truth at its points, without
    noise, so that :func:`ionofield.validate` scores a reanalysis against the truth.

    Parameters
    ----------
    campaign
        A campaign (:func:`ionofield.campaign`) of profiles of ``world``.
    world
        The truth.
    fraction
        Share of the profiles held out, in (0, 1).
    seed
        Seed of the draw.
    alt_range
        Lowest and highest altitude (km) of the held-out points kept; default all.

    Returns
    -------
    fit, held_out : xarray.Dataset
        The campaign to fit, and the held-out one: ``ne`` the truth (m-3), no
        ``ne_err``, the attribute ``ne`` saying so.
    """
    fit, held = split_profiles(campaign, fraction, seed=seed)
    if alt_range is not None:
        alt = held["obs_alt"].values
        held = held.isel(obs=np.flatnonzero((alt >= alt_range[0]) & (alt <= alt_range[1])))
    points = [held[f"obs_{name}"].values for name in ("time", "alt", "lat", "lon")]
    held = held.drop_vars("ne_err", errors="ignore")
    held["ne"] = ("obs", world.ne(*points), held["ne"].attrs)
    held.attrs["ne"] = "the truth at the points, without noise (ionofield.osse.hold_out_profiles)"
    return fit, held

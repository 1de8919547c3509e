"""Observing-system simulation experiments: a seeded synthetic ionosphere and its observations.

Not loaded by ``import ionofield``; import it on demand (``import ionofield.osse`` or
``from ionofield.osse import storm_world``). It is built on the library and nothing in
the library imports it. Three modules, each using the one before:

- :mod:`ionofield.osse.world`: the truth, a Kp-driven electron density
  (:class:`SyntheticWorld`, the named :data:`WORLDS` built by
  :func:`synthetic_world`, :func:`storm_world`, :func:`background_rmse`);
- :mod:`ionofield.osse.sampling`: what is observed of it, RO-like profiles with
  realistic noise (:func:`sample_ro_profiles`), TEC maps (:func:`tec_maps`), and
  the held-out profiles of a reanalysis, carrying the truth
  (:func:`hold_out_profiles`);
- :mod:`ionofield.osse.samples`: one day of it written in the real file formats
  (:func:`write_samples`; command line ``python -m ionofield.osse --samples DIR``).

The truth is an IRI base bent in ways a model can learn from the drivers it is
given (position, local time, time and the Kp history), plus, in some worlds,
structures IRI lacks::

    log10 Ne_truth(t, h, lat, lon) = log10 Ne_base(t, h - dh, lat, lon)
                                     + r(h) * (storm + anomaly + tid + structures)

The named worlds (:data:`WORLDS`, :func:`synthetic_world`) differ in the base and
the structures:

- ``"storm"``: the base is IRI with the model background's own coefficients (URSI
  foF2, SHU-2015 hmF2; only its F10.7 differs, daily here, 81-day in a fit), no
  structures: the background holds the truth's climatology;
- ``"other_iri"``: the base is IRI with CCIR foF2 and AMTB-2013 hmF2 coefficients,
  which the background does not contain (0.30 RMSE in log10 Ne over 150-600 km and
  29 km in hmF2 from the background's at noon UT on 11 May 2024), no structures;
- ``"structured"``: ``"other_iri"`` plus :class:`Structures`: a storm-enhanced
  density plume (mid-latitudes, afternoon to noon, growing with Kp), bands of
  post-sunset equatorial plasma depletion drifting east every night, and concentric
  travelling disturbances round seeded sources.

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

:func:`synthetic_world` builds such a world for the real Kp / F10.7 of a period (by
default the 10-12 May 2024 G5 storm); :func:`write_samples` writes one day of the
``"storm"`` world in the real file formats.
"""

from ionofield.osse.samples import write_samples
from ionofield.osse.sampling import (
    NOISE_FLOOR_M3,
    hold_out_profiles,
    sample_ro_profiles,
    tec_maps,
)
from ionofield.osse.world import (
    WORLDS,
    Perturbations,
    Structures,
    SyntheticWorld,
    WorldRecipe,
    background_rmse,
    storm_world,
    synthetic_world,
)

__all__ = [
    "NOISE_FLOOR_M3",
    "WORLDS",
    "Perturbations",
    "Structures",
    "SyntheticWorld",
    "WorldRecipe",
    "background_rmse",
    "hold_out_profiles",
    "sample_ro_profiles",
    "storm_world",
    "synthetic_world",
    "tec_maps",
    "write_samples",
]

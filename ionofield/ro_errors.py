"""The observation error of radio-occultation electron densities, in log10 Ne.

A fit weighs each observed point by its total variance, the network's plus the
observation's own (``FitConfig.observation_errors``). The observation's sigma of
log10 Ne comes from the file's ``ne_err`` when it gives one, relative to the
background's density at the point (:func:`log10_sigma_from_ne_err`,
:func:`observation_log10_sigma`), else from the RO error model
(:func:`ro_relative_error`): the Abel inversion's relative error, which is largest
below the F2 peak (most at night, when the bottomside density is low) and near the
equatorial anomaly's crests, where the horizontal gradients that the inversion's
spherical symmetry ignores are steepest (Yue et al. 2010, Ann. Geophys. 28, 217).

The model's numbers come from a least-squares fit (in log space) to the absolute
values of the FORMOSAT-3/COSMIC error table that NCAR's DART distributes
(``f3coerr.nc``: ``percent(local_time, latitude, altitude)``, a relative error,
taken within 80 degrees of the equator, the pole rows holding fill values), with
the table's altitudes taken relative to a nominal hmF2 of
:data:`TABLE_HMF2_KM`, then rounded. On that table the model's median ratio to the
table is 1.02, 53 % of the cells lie within a factor of 2 of it and 73 % within a
factor of 3: the table scatters from cell to cell by more than any smooth model can
follow. Its medians by altitude, 1.46, 0.42, 0.22, 0.08 and 0.05 at 100, 150, 200,
250 and 300 km, the model gives as 1.51, 0.53, 0.20, 0.09 and 0.05.
"""

from __future__ import annotations

import numpy as np

from ionofield.background import BackgroundField
from ionofield.diagnostics import _peak
from ionofield.timeutil import universal_time_hours

__all__ = ["background_hmf2", "log10_sigma_from_ne_err", "observation_log10_sigma",
           "ro_relative_error"]

#: Relative error of the F-region peak and topside (fraction), at mid latitudes.
PEAK_RELATIVE_ERROR = 0.03
#: Relative error added 100 km below hmF2 by day (12 LT) and by night (0 LT).
BOTTOMSIDE_RELATIVE_ERROR = {"day": 0.07, "night": 0.35}
#: e-folding depth (km) of the bottomside error below hmF2.
BOTTOMSIDE_SCALE_KM = 45.0
#: The low-latitude factor ``1 + A exp(-((|lat| - C) / W)**2)``: amplitude A, centre C
#: and width W (degrees of geographic latitude).
LOW_LATITUDE_AMPLITUDE = 0.6
LOW_LATITUDE_CENTRE_DEG = 20.0
LOW_LATITUDE_WIDTH_DEG = 17.0
#: hmF2 (km) taken for the table's absolute altitudes when the model was fitted to it.
TABLE_HMF2_KM = 280.0
#: Largest observation sigma of log10 Ne (dex): a density whose error reaches
#: ``ln 10`` times itself (an order of magnitude) carries no more information than this.
MAX_LOG10_SIGMA = 1.0
#: Altitudes (km) where the background's hmF2 is looked for.
HMF2_SEARCH_KM = (150.0, 600.0, 10.0)
#: Points whose hmF2 is found at once (bounds the temporaries to some 10 MB).
HMF2_POINTS_PER_CALL = 8192


def ro_relative_error(
    alt_above_hmf2: np.ndarray, lat: np.ndarray, local_time: np.ndarray
) -> np.ndarray:
    """Relative (1 sigma) error of an RO electron density, by the error model.

    ::

        r = L(lat) * (r_peak + r_bottom(LT) * exp(-(h - hmF2 + 100 km) / H))
        r_bottom(LT) = r_day + (r_night - r_day) * (1 + cos(2 pi LT / 24)) / 2
        L(lat) = 1 + A * exp(-((|lat| - C) / W)**2)

    with the constants of this module (``r_peak`` :data:`PEAK_RELATIVE_ERROR`,
    ``r_day``, ``r_night`` :data:`BOTTOMSIDE_RELATIVE_ERROR`, ``H``
    :data:`BOTTOMSIDE_SCALE_KM`; ``A``, ``C``, ``W`` the ``LOW_LATITUDE_*`` ones).
    The bottomside term fades above the peak (5 % of its 100 km value at hmF2).

    Parameters
    ----------
    alt_above_hmf2
        Altitude minus the F2 peak's height (km), any shape broadcastable with the others.
    lat
        Geographic latitude (degrees north).
    local_time
        Solar local time (hours, any range; taken modulo 24).

    Returns
    -------
    numpy.ndarray
        float64 relative error (a fraction of Ne), the broadcast shape.

    Examples
    --------
    >>> round(float(ro_relative_error(0.0, 50.0, 12.0)), 4)  # the peak at noon, mid latitude
    0.0386
    >>> bool(ro_relative_error(-100.0, 50.0, 0.0) > ro_relative_error(-100.0, 50.0, 12.0))
    True
    """
    depth = -np.asarray(alt_above_hmf2, dtype=np.float64)
    night = 0.5 * (1.0 + np.cos(2.0 * np.pi * np.asarray(local_time, dtype=np.float64) / 24.0))
    day_error, night_error = BOTTOMSIDE_RELATIVE_ERROR["day"], BOTTOMSIDE_RELATIVE_ERROR["night"]
    bottom = day_error + (night_error - day_error) * night
    # A depth beyond 30 scale heights below the peak is capped: the sigma is capped anyway.
    growth = np.exp(np.minimum((depth - 100.0) / BOTTOMSIDE_SCALE_KM, 30.0))
    lat_abs = np.abs(np.asarray(lat, dtype=np.float64))
    low_latitude = 1.0 + LOW_LATITUDE_AMPLITUDE * np.exp(
        -(((lat_abs - LOW_LATITUDE_CENTRE_DEG) / LOW_LATITUDE_WIDTH_DEG) ** 2)
    )
    return low_latitude * (PEAK_RELATIVE_ERROR + bottom * growth)


def _log10_sigma(relative: np.ndarray) -> np.ndarray:
    """Sigma of log10 Ne (dex) of a relative error: ``relative / ln 10``, capped.

    First order in the error (``d log10 Ne = dNe / (Ne ln 10)``), capped at
    :data:`MAX_LOG10_SIGMA`; a NaN (unknown) error stays NaN.

    Examples
    --------
    >>> _log10_sigma(np.array([np.log(10) * 0.1, 50.0, np.nan]))
    array([0.1, 1. , nan])
    """
    return np.minimum(np.asarray(relative, dtype=np.float64) / np.log(10.0), MAX_LOG10_SIGMA)


def log10_sigma_from_ne_err(ne: np.ndarray, ne_err: np.ndarray) -> np.ndarray:
    """Sigma of log10 Ne (dex) from a density and its error: ``ne_err / (ne ln 10)``, capped.

    A density at or below zero has an unbounded relative error: it gets
    :data:`MAX_LOG10_SIGMA`, as does any error larger than ``ln 10`` times its
    density. An unknown (NaN) ``ne_err`` gives NaN.

    Parameters
    ----------
    ne, ne_err
        The density the error is relative to (a fit gives the background's:
        :func:`observation_log10_sigma`) and the 1-sigma error (m-3), shape [N].

    Returns
    -------
    numpy.ndarray
        float64 [N].

    Examples
    --------
    >>> log10_sigma_from_ne_err(np.array([1e11, 0.0, 1e11]), np.array([1e10, 1e9, np.nan]))
    array([0.04342945, 1.        ,        nan])
    """
    ne = np.asarray(ne, dtype=np.float64)
    ne_err = np.asarray(ne_err, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(ne > 0, ne_err / ne, np.where(np.isnan(ne_err), np.nan, np.inf))
    return _log10_sigma(relative)


def background_hmf2(
    bg_field: BackgroundField, time: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Height (km) of the background's F2 peak above points.

    The background is read at :data:`HMF2_SEARCH_KM` levels (within its altitude
    range) above each point and its peak refined by a parabola through log Ne, as
    :func:`~ionofield.diagnostics.peak_parameters` does.

    Parameters
    ----------
    bg_field
        The fit's :class:`~ionofield.background.BackgroundField`.
    time, lat, lon
        The points, shape [N] (datetime64, degrees).

    Returns
    -------
    numpy.ndarray
        float64 [N] hmF2 in km.
    """
    start, stop, step = HMF2_SEARCH_KM
    levels = np.arange(max(start, bg_field.alt[0]), min(stop, bg_field.alt[-1]) + step / 2, step)
    height = np.empty(time.size)
    for first in range(0, time.size, HMF2_POINTS_PER_CALL):
        part = slice(first, first + HMF2_POINTS_PER_CALL)
        log10 = bg_field.log10_at(time[part, None], levels[None, :], lat[part, None],
                                  lon[part, None])
        height[part] = _peak(10.0**log10, levels)[1]
    return height


def observation_log10_sigma(
    bg_field: BackgroundField,
    time: np.ndarray,
    alt: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    background: np.ndarray,
    ne_err: np.ndarray | None,
    source: str,
    runs: np.ndarray | None = None,
) -> np.ndarray:
    """The observation sigma of log10 Ne (dex) of each point, as a fit weighs it.

    A file's ``ne_err`` is taken relative to the background's density at the point,
    not to the observed density: relative to the observation itself, a draw of the
    noise above the truth gets a smaller sigma than one below it, so the fit leans
    towards the upward draws wherever the noise is a good part of the density (the
    bottomside; on ``benchmarks/osse.py``'s storm reanalysis, 0.043 dex too high at
    150-220 km against 0.007 relative to the background). The background is not the
    truth, so the sigma is off by the ratio of the two, but that ratio does not
    depend on the noise.

    The error model is placed against the background's hmF2 found once per run of
    points of one profile, at its middle point (the tangent point drifts by a few
    degrees along a profile, over which the background's hmF2 changes by far less
    than the model's :data:`BOTTOMSIDE_SCALE_KM`): a profile of hundreds of levels
    costs one search for the peak, not hundreds.

    Parameters
    ----------
    bg_field
        The fit's background, whose hmF2 the error model is placed against.
    time, alt, lat, lon
        The points, shape [N] (datetime64, km, degrees).
    background
        log10 of the background's Ne (m-3) at the points
        (:meth:`BackgroundField.log10_at
        <ionofield.background.BackgroundField.log10_at>`), shape [N].
    ne_err
        Their errors (m-3; NaN where unknown), or None when the campaign has none.
    source
        ``"auto"``: :func:`log10_sigma_from_ne_err` where ``ne_err`` is known, the
        error model (:func:`ro_relative_error`) elsewhere; ``"model"``: the model
        everywhere; ``"none"``: zeros (the network's variance alone).
    runs
        int [R]: the first point of each run of points of one profile
        (:func:`~ionofield.observations.run_starts`), ascending from 0; default
        every point its own run.

    Returns
    -------
    numpy.ndarray
        float32 [N], finite, in [0, :data:`MAX_LOG10_SIGMA`].
    """
    sigma = np.zeros(time.size) if source == "none" else np.full(time.size, np.nan)
    if source == "auto" and ne_err is not None:
        sigma = log10_sigma_from_ne_err(10.0 ** np.asarray(background, np.float64), ne_err)
    todo = np.flatnonzero(np.isnan(sigma))
    if todo.size:
        starts = np.arange(time.size) if runs is None else np.asarray(runs)
        lengths = np.diff(np.append(starts, time.size))
        run_of = np.repeat(np.arange(starts.size), lengths)[todo]
        needed = np.unique(run_of)
        middle = starts[needed] + lengths[needed] // 2
        hmf2 = np.empty(starts.size)
        hmf2[needed] = background_hmf2(bg_field, time[middle], lat[middle], lon[middle])
        t, la, lo = time[todo], lat[todo], lon[todo]
        local_time = universal_time_hours(t) + lo / 15.0
        above = alt[todo] - hmf2[run_of]
        sigma[todo] = _log10_sigma(ro_relative_error(above, la, local_time))
    return sigma.astype(np.float32)

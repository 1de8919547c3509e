"""The model's view of time and space weather: numeric features of the hourly drivers.

The network's temporal path reads universal time and season as angles
(:func:`temporal_features`), and its environment LSTM reads normalised Kp, a Kp
memory and F10.7 (:func:`driver_features`). These are plain numpy functions of the
campaign's hourly arrays; :mod:`ionofield.drivers` applies them, and the torch
modules see only their output.
"""

from __future__ import annotations

import numpy as np

#: Number of temporal input features (UT angle 2, day-of-year angle 2).
TEMPORAL_FEATURES = 4
#: Number of space-weather drivers read by the LSTM (Kp, Kp memory, F10.7, F10.7
#: 81-day mean).
DRIVER_FEATURES = 4
#: Weight of the previous 3-hour slot in the Kp memory (Wrenn 1987's ap(tau), tau =
#: 0.7): an e-folding time of -3 h / ln 0.7 = 8.4 h.
KP_MEMORY_DECAY_PER_SLOT = 0.7


def kp_memory(kp: np.ndarray) -> np.ndarray:
    """Exponentially weighted past Kp of an hourly series (Wrenn's ap(tau) on Kp).

    ``m[t] = a * m[t - 1] + (1 - a) * kp[t]`` with ``a = 0.7 ** (1 / 3)``, the hourly
    form of Wrenn's (1987) weight 0.7 per 3-hour slot: an e-folding time of 8.4 h.
    The storm-time composition change that depletes the F region (the negative
    phase) builds up and decays on this scale, and so outlasts Kp itself; the
    memory gives the LSTM that state however short its window. Before the first
    hour Kp is taken to have been steady at its first value, so a campaign that
    opens during or just after a storm should start its driver axis a day
    earlier (``ionofield.campaign(..., period=...)``) for the memory to know of it.

    Parameters
    ----------
    kp
        Hourly Kp, shape [T].

    Returns
    -------
    numpy.ndarray
        float64, shape [T].

    Examples
    --------
    >>> m = kp_memory(np.r_[np.zeros(3), np.full(30, 9.0)])
    >>> float(m[2]), round(float(m[3]), 2), round(float(m[-1]), 2)
    (0.0, 1.01, 8.75)
    """
    kp = np.asarray(kp, dtype=np.float64)
    decay = KP_MEMORY_DECAY_PER_SLOT ** (1.0 / 3.0)
    memory = np.empty_like(kp)
    state = kp[0] if kp.size else 0.0
    for t, value in enumerate(kp):
        state = decay * state + (1.0 - decay) * value
        memory[t] = state
    return memory


def driver_features(kp: np.ndarray, f107: np.ndarray, f107_81: np.ndarray) -> np.ndarray:
    """Normalise hourly Kp / F10.7 drivers for the LSTM.

    Parameters
    ----------
    kp, f107, f107_81
        Hourly Kp (0-9), F10.7 and its 81-day mean (sfu), shape [T], in time order.

    Returns
    -------
    numpy.ndarray
        float32, shape [T, 4]: ``kp / 9``, ``kp_memory(kp) / 9`` (:func:`kp_memory`),
        ``(f107 - 150) / 100``, ``(f107_81 - 150) / 100``.
    """
    return np.stack(
        [np.asarray(kp) / 9.0, kp_memory(kp) / 9.0, (np.asarray(f107) - 150.0) / 100.0,
         (np.asarray(f107_81) - 150.0) / 100.0],
        axis=-1,
    ).astype(np.float32)


def temporal_features(ut_hours: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Periodic time code of the temporal SIREN.

    Universal time and season enter as angles, so the code is defined on any day,
    including days outside the training period.

    Parameters
    ----------
    ut_hours
        Universal time in hours [0, 24), shape [N].
    day_of_year
        Fractional day of year (1 = 1 January 00:00), shape [N].

    Returns
    -------
    numpy.ndarray
        float32, shape [N, 4]: sin/cos of the UT angle and of the day-of-year angle.
    """
    ut = 2.0 * np.pi * np.asarray(ut_hours) / 24.0
    season = 2.0 * np.pi * (np.asarray(day_of_year) - 1.0) / 365.25
    return np.stack([np.sin(ut), np.cos(ut), np.sin(season), np.cos(season)], -1).astype(
        np.float32
    )

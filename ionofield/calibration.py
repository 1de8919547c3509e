"""Calibration of the predicted sigma on held-out errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Edges, in hours from the training data, of the bins of :func:`errors_by_gap`: hours
#: with data and next to them, the gaps of validation blocks, and a forecast's first
#: hours, its day and beyond.
GAP_BINS = (0.0, 1.0, 3.0, 6.0, 12.0, 24.0, math.inf)


def sigma_scale(
    error: np.ndarray, log_var: np.ndarray, extra_var: np.ndarray | None = None
) -> float:
    """The constant factor on sigma that minimises the Gaussian NLL of errors.

    Without ``extra_var`` it is the root mean square of the z-scores
    ``error / sigma``: after it, sigma is the standard deviation of the errors it is
    fitted on (the "std scaling" calibration of regression uncertainty, Levi et al.
    2019). With it, the variance of each error is ``(factor * sigma)**2 + extra_var``
    (the TEC maps' column misfit squared), and the factor is found numerically.

    Parameters
    ----------
    error
        Observed minus predicted log10 Ne, shape [N].
    log_var
        Predicted log-variance, shape [N].
    extra_var
        Variance added to each point's after the factor, shape [N].

    Returns
    -------
    float

    Examples
    --------
    >>> round(sigma_scale(np.array([0.3, -0.1]), np.log([0.01, 0.01])), 4)  # sqrt((9 + 1) / 2)
    2.2361
    >>> # mean squared error 0.05 = factor**2 * 0.01 + 0.04
    >>> round(sigma_scale(np.array([0.3, -0.1]), np.log([0.01, 0.01]), np.full(2, 0.04)), 3)
    1.0
    """
    error2 = error.astype(np.float64) ** 2
    var = np.exp(np.asarray(log_var, dtype=np.float64))
    if extra_var is None:
        return float(np.sqrt(np.mean(error2 / var)))

    import scipy.optimize  # 0.3 s to import: only a fit with TEC maps needs it

    def nll(log_factor: float) -> float:
        total = np.exp(2.0 * log_factor) * var + extra_var
        return float(np.mean(np.log(total) + error2 / total))

    best = scipy.optimize.minimize_scalar(nll, bounds=(-10.0, 10.0), method="bounded")
    return float(np.exp(best.x))


def fit_variance(error: np.ndarray, terms: np.ndarray, fixed_var: np.ndarray) -> np.ndarray:
    """Non-negative weights of variance terms that maximise the Gaussian likelihood of errors.

    Each error ``error[i]`` is taken as normal with mean 0 and variance
    ``sum_k weights[k] * terms[k, i] + fixed_var[i]``; the weights minimise the mean
    negative log-likelihood ``mean(ln(var) + error**2 / var)`` (found in their
    logarithms, so a term the errors do not need takes a weight near 0).

    Parameters
    ----------
    error
        Errors, shape [N].
    terms
        The variance terms at each error, shape [K, N], non-negative.
    fixed_var
        Variance added to each error's with weight 1 (the observations' noise), shape [N].

    Returns
    -------
    numpy.ndarray
        float64 weights, shape [K].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> delta = rng.uniform(0.0, 4.0, 200_000)
    >>> error = rng.normal(0.0, np.sqrt(0.01 + 0.02 * delta + 0.001))
    >>> terms = np.stack([np.full_like(delta, 0.01), delta])
    >>> weights = fit_variance(error, terms, np.full_like(delta, 0.001))
    >>> np.round(weights / [1.0, 0.02], 1).tolist()  # the true weights 1 and 0.02
    [1.0, 1.0]
    """
    import scipy.optimize  # 0.3 s to import: only the calibration after a fit needs it

    error2 = np.asarray(error, dtype=np.float64) ** 2
    terms = np.asarray(terms, dtype=np.float64)
    fixed = np.asarray(fixed_var, dtype=np.float64)

    def nll(log_weights: np.ndarray) -> tuple[float, np.ndarray]:
        weights = np.exp(log_weights)
        var = weights @ terms + fixed
        gradient = (terms / var) @ (1.0 - error2 / var) / var.size * weights
        return float(np.mean(np.log(var) + error2 / var)), gradient

    # start with each term alone explaining an equal share of the mean squared error
    share = np.mean(error2) / len(terms) / np.maximum(terms.mean(axis=1), np.finfo(float).tiny)
    # Tolerances far below the defaults: the default stopping rule (on the relative
    # change of the NLL) can leave the log-weights' gradient at 1e-4, and the
    # weights then move with rounding-level changes of the errors.
    best = scipy.optimize.minimize(nll, np.log(np.maximum(share, 1e-12)), jac=True,
                                   method="L-BFGS-B", bounds=[(-50.0, 10.0)] * len(terms),
                                   options={"ftol": 1e-15, "gtol": 1e-10})
    return np.exp(best.x)


def errors_by_gap(
    error: np.ndarray, sigma: np.ndarray, gap: np.ndarray, bins: Sequence[float] = GAP_BINS
) -> list[dict[str, Any]]:
    """How well sigma describes errors, by the hours from the training data.

    An error falls in the bin ``bins[k] <= gap < bins[k + 1]``; errors outside every
    bin are left out, and so are bins without errors. Within one sigma of a
    Gaussian lie 68.3 % of the errors: a bin below that has too narrow a sigma, above
    it too wide.

    Parameters
    ----------
    error
        Observed minus predicted log10 Ne, shape [N].
    sigma
        The predicted standard deviation of each error (dex), shape [N].
    gap
        Hours from each error's time to the nearest hour with training data
        (:meth:`ionofield.RSTMRF.gap_hours`), shape [N].
    bins
        Increasing bin edges in hours (the last may be ``math.inf``).

    Returns
    -------
    list of dict
        One per bin with errors, in the order of ``bins``: ``"gap_hours"`` (the bin's
        ``[low, high)`` edges), ``"count"`` (its errors), ``"inside_1sigma"`` (the
        fraction with ``|error| <= sigma``) and ``"rmse"`` (root mean square error).

    Examples
    --------
    >>> rows = errors_by_gap(np.array([0.1, -0.3, 0.2, 0.5]), np.full(4, 0.25),
    ...                      np.array([0.0, 0.5, 2.0, 30.0]))
    >>> [(row["gap_hours"], row["count"], row["inside_1sigma"]) for row in rows]
    [([0.0, 1.0], 2, 0.5), ([1.0, 3.0], 1, 1.0), ([24.0, inf], 1, 0.0)]
    """
    error = np.asarray(error, dtype=np.float64)
    inside = np.abs(error) <= np.asarray(sigma, dtype=np.float64)
    which = np.searchsorted(np.asarray(bins, dtype=np.float64), gap, side="right") - 1
    rows = []
    for k, (low, high) in enumerate(zip(bins[:-1], bins[1:], strict=True)):
        members = which == k
        if members.any():
            rows.append({"gap_hours": [float(low), float(high)], "count": int(members.sum()),
                         "inside_1sigma": float(inside[members].mean()),
                         "rmse": float(np.sqrt(np.mean(error[members] ** 2)))})
    return rows

"""Calibration of the predicted sigma on held-out errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ionofield.nn.losses import gaussian_nll

#: Edges, in hours from the training data, of the bins of :func:`errors_by_gap`: hours
#: with data and next to them, the gaps of validation blocks, and a forecast's first
#: hours, its day and beyond.
GAP_BINS = (0.0, 1.0, 3.0, 6.0, 12.0, 24.0, math.inf)
#: No clamp of the log-variance in the calibration's likelihood.
_UNCLAMPED = (-math.inf, math.inf)
#: Bounds of the natural log of a variance term's weight in :func:`fit_variance`.
_LOG_WEIGHT_BOUNDS = (-50.0, 10.0)


def sigma_scale(
    error: np.ndarray,
    log_var: np.ndarray,
    extra_var: np.ndarray | None = None,
    log10_snr: np.ndarray | None = None,
) -> float:
    """The constant factor on sigma that minimises the Gaussian NLL of errors.

    Without ``extra_var`` and ``log10_snr`` it is the root mean square of the
    z-scores ``error / sigma``: after it, sigma is the standard deviation of the
    errors it is fitted on (the "std scaling" calibration of regression uncertainty,
    Levi et al. 2019). With them, the variance of each error is
    ``(factor * sigma)**2 + extra_var`` (the TEC maps' column misfit squared, the
    observation's own), each point scored as :func:`fit_variance` scores it, and the
    factor is found numerically.

    Parameters
    ----------
    error
        Observed minus predicted log10 Ne, shape [N].
    log_var
        Predicted log-variance, shape [N].
    extra_var
        Variance added to each point's after the factor, shape [N].
    log10_snr
        As in :func:`fit_variance`.

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
    var = np.exp(np.asarray(log_var, dtype=np.float64))
    if extra_var is None and log10_snr is None:
        return float(np.sqrt(np.mean(np.asarray(error, dtype=np.float64) ** 2 / var)))

    import scipy.optimize  # 0.3 s to import: only some fits need it

    extra = np.zeros_like(var) if extra_var is None else extra_var
    nll = _error_likelihood(error, extra, log10_snr)
    network = _tensor(var)
    best = scipy.optimize.minimize_scalar(
        lambda log_factor: float(nll(math.exp(2.0 * log_factor) * network)),
        bounds=(-10.0, 10.0), method="bounded")
    return float(np.exp(best.x))


def fit_variance(
    error: np.ndarray,
    terms: np.ndarray,
    fixed_var: np.ndarray,
    log10_snr: np.ndarray | None = None,
) -> np.ndarray:
    """Non-negative weights of variance terms that maximise the likelihood of errors.

    Each error ``error[i]`` has the variance of log10 Ne
    ``v[i] = sum_k weights[k] * terms[k, i] + fixed_var[i]`` and is scored by
    :func:`~ionofield.nn.losses.gaussian_nll`, the likelihood a fit trains on: as a
    normal error of mean 0 and variance ``v[i]``, or, where ``log10_snr[i]`` is
    finite, as an observation of Ne with additive noise (truncated to positive
    values) whose prediction is ``10**log10_snr[i]`` times the noise, ``v[i]`` then
    the prediction's variance alone. The weights minimise the mean negative
    log-likelihood (found in their logarithms, so a term the errors do not need
    takes a weight near 0).

    Parameters
    ----------
    error
        Errors, observed minus predicted log10 Ne, shape [N].
    terms
        The variance terms at each error, shape [K, N], non-negative.
    fixed_var
        Variance added to each error's with weight 1 (the TEC maps' column misfit,
        the observation's noise where it is not in ``log10_snr``), shape [N].
    log10_snr
        log10 of each prediction over its observation's additive noise, NaN where
        the error is plain normal; shape [N]. None: NaN everywhere.

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

    terms = _tensor(terms)
    likelihood = _error_likelihood(error, fixed_var, log10_snr)

    def nll(log_weights: np.ndarray) -> tuple[float, np.ndarray]:
        weights = _tensor(np.exp(log_weights)).requires_grad_()
        value = likelihood(weights @ terms)
        (gradient,) = torch.autograd.grad(value, weights)
        return float(value.detach()), (gradient * weights).detach().numpy()

    # Start with each term alone explaining an equal share of the typical squared
    # error (medians: a few errors of a dex do not move them), scaled together by the
    # power of 10 that fits best: the NLL is flat far below the errors' scale.
    share = (np.median(np.asarray(error, dtype=np.float64) ** 2) / len(terms)
             / np.maximum(np.median(terms.numpy(), axis=1), np.finfo(float).tiny))
    starts = np.clip(np.log(np.maximum(share, 1e-12))
                     + np.log(10.0) * np.arange(-4.0, 5.0)[:, np.newaxis], *_LOG_WEIGHT_BOUNDS)
    start = min(starts, key=lambda log_weights: nll(log_weights)[0])
    # Tolerances far below the defaults: the default stopping rule (on the relative
    # change of the NLL) can leave the log-weights' gradient at 1e-4, and the
    # weights then move with rounding-level changes of the errors.
    best = scipy.optimize.minimize(nll, start, jac=True,
                                   method="L-BFGS-B", bounds=[_LOG_WEIGHT_BOUNDS] * len(terms),
                                   options={"ftol": 1e-15, "gtol": 1e-10})
    return np.exp(best.x)


def _tensor(values: np.ndarray) -> torch.Tensor:
    """``values`` as a float64 tensor."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _error_likelihood(
    error: np.ndarray, fixed_var: np.ndarray, log10_snr: np.ndarray | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The mean NLL of ``error`` as a function of their variance before ``fixed_var``.

    As :func:`fit_variance` scores them, through :func:`~ionofield.nn.losses.gaussian_nll`.
    The likelihood of a noisy density depends on the prediction and the observation
    over the noise alone: the noise is taken as 1 (log10 0) and the prediction as its
    SNR.
    """
    error, fixed = _tensor(error), _tensor(fixed_var)
    snr = torch.full_like(error, math.nan) if log10_snr is None else _tensor(log10_snr)
    noisy = torch.isfinite(snr)
    pred = torch.where(noisy, snr, 0.0)
    noise = torch.where(noisy, 0.0, math.nan)

    def nll(variance: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(pred, torch.log(variance + fixed), pred + error,
                            log_var_range=_UNCLAMPED, log10_noise=noise)

    return nll


def standard_scores(
    error: np.ndarray, variance: np.ndarray, log10_snr: np.ndarray | None = None
) -> np.ndarray:
    """Each error over its standard deviation, as :func:`fit_variance` models it.

    ``error / sqrt(variance)``; where ``log10_snr`` is finite, the observation's
    departure from the prediction in Ne over the standard deviation of that
    departure, ``(y - m) / sqrt((m ln 10)**2 variance + 1)`` with Ne in units of the
    noise (``m = 10**log10_snr``, ``y = m 10**error``). Inside one sigma: ``|z| <= 1``.

    Parameters
    ----------
    error
        Observed minus predicted log10 Ne, shape [N].
    variance
        The prediction's variance of log10 Ne, shape [N], with the observation's own
        where ``log10_snr`` is NaN.
    log10_snr
        As in :func:`fit_variance`.

    Returns
    -------
    numpy.ndarray
        float64 [N].

    Examples
    --------
    >>> z = standard_scores(np.array([0.2, 0.2]), np.array([0.01, 0.01]), np.array([np.nan, -1.0]))
    >>> np.round(z, 4).tolist()  # the second: (0.1 * 10**0.2 - 0.1) / 1.0003
    [2.0, 0.0585]
    """
    error = np.asarray(error, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    z = error / np.sqrt(variance)
    if log10_snr is not None:
        noisy = np.isfinite(log10_snr)
        signal = 10.0 ** np.asarray(log10_snr, dtype=np.float64)[noisy]
        z[noisy] = (signal * (10.0 ** error[noisy] - 1.0)
                    / np.sqrt((signal * np.log(10.0)) ** 2 * variance[noisy] + 1.0))
    return z


def errors_by_gap(
    error: np.ndarray, z: np.ndarray, gap: np.ndarray, bins: Sequence[float] = GAP_BINS
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
    z
        Each error over its predicted standard deviation (:func:`standard_scores`),
        shape [N].
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
        fraction with ``|z| <= 1``) and ``"rmse"`` (root mean square error).

    Examples
    --------
    >>> error = np.array([0.1, -0.3, 0.2, 0.5])
    >>> rows = errors_by_gap(error, error / 0.25,
    ...                      np.array([0.0, 0.5, 2.0, 30.0]))
    >>> [(row["gap_hours"], row["count"], row["inside_1sigma"]) for row in rows]
    [([0.0, 1.0], 2, 0.5), ([1.0, 3.0], 1, 1.0), ([24.0, inf], 1, 0.0)]
    """
    error = np.asarray(error, dtype=np.float64)
    inside = np.abs(np.asarray(z, dtype=np.float64)) <= 1.0
    which = np.searchsorted(np.asarray(bins, dtype=np.float64), gap, side="right") - 1
    rows = []
    for k, (low, high) in enumerate(zip(bins[:-1], bins[1:], strict=True)):
        members = which == k
        if members.any():
            rows.append({"gap_hours": [float(low), float(high)], "count": int(members.sum()),
                         "inside_1sigma": float(inside[members].mean()),
                         "rmse": float(np.sqrt(np.mean(error[members] ** 2)))})
    return rows

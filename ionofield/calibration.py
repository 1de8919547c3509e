"""Calibration of the predicted sigma on held-out errors."""

from __future__ import annotations

import numpy as np


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

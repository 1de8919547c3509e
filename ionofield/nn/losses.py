"""Loss functions and spherical-gradient kernels of R-STMRF (pure torch).

Conventions shared by every function here:

- The model's quantity is ``f = log10 Ne`` (Ne in m-3), or its residual over the
  background; "dex" below means one unit of log10.
- Horizontal gradients are written in the local (north, east) frame of the sphere of
  radius ``R``: component 0 is ``(1/R) df/dphi`` and component 1 is
  ``(1/(R cos phi)) df/dlambda``, with latitude ``phi`` and longitude ``lambda`` in
  radians. With ``R = 1`` (the default) the gradient is per radian of great-circle
  arc. :func:`spherical_gradient` (finite differences on a map) and
  :func:`horizontal_gradient_metric` (autograd derivatives at points) both return
  this metric, so their directions can be compared.
- At the poles ``cos phi`` is clamped to ``1e-6`` before dividing.
"""

from __future__ import annotations

import math

import numpy.typing as npt
import torch

from ionofield.errors import ConfigError

__all__ = [
    "chapman_smoothness",
    "direction_consistency",
    "gaussian_nll",
    "horizontal_gradient_metric",
    "mse",
    "spherical_gradient",
    "unit",
]

ArrayLike = torch.Tensor | npt.ArrayLike

_MIN_COS_LAT = 1e-6


def gaussian_nll(
    pred: torch.Tensor,
    log_var: torch.Tensor,
    target: torch.Tensor,
    *,
    log_var_range: tuple[float, float] = (-14.0, 6.0),
    obs_var: torch.Tensor | None = None,
    log10_noise: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Heteroscedastic Gaussian negative log-likelihood of observed log10 Ne.

    For each point, with ``s = clamp(log_var)`` the natural log of the predicted
    variance of ``log10 Ne``::

        nll = 0.5 * log(2 pi) + 0.5 * s + 0.5 * (target - pred)**2 * exp(-s)

    The per-point optimum of ``s`` is ``log((target - pred)**2)``.

    A point with a finite ``log10_noise`` is instead an observation of Ne itself
    with additive Gaussian noise of standard deviation ``e = 10**log10_noise``, kept
    only where it came out positive (readers drop the rest). With ``m = 10**pred``
    and the predicted variance carried to Ne to first order, ``(m ln 10)**2 exp(s)``,
    the observed ``y = 10**target`` is normal with mean ``m`` and variance
    ``tau**2 = (m ln 10)**2 exp(s) + e**2``, truncated to ``y > 0``::

        nll = 0.5 * log(2 pi tau**2) + 0.5 * (y - m)**2 / tau**2
              + log Phi(m / tau) - log(y ln 10)

    (``Phi`` the standard normal distribution function; the last term makes it a
    density of log10 Ne, like the first form). Where ``m >> e`` the two forms agree.
    Where the noise is comparable to Ne, the first form, with the observation's
    sigma in ``obs_var``, cannot know that the draws below zero were dropped: the
    positive draws it keeps lie above the truth on average, and a fit follows them.

    Parameters
    ----------
    pred
        Predicted log10 Ne (dex), any shape.
    log_var
        Predicted ``ln(sigma**2)`` with sigma in dex, same shape as ``pred``.
    target
        Observed log10 Ne (dex), same shape as ``pred``.
    log_var_range
        ``(min, max)`` to which ``log_var`` is clamped before use. The default
        (-14, 6) allows sigma from about 0.001 dex (0.2 %) to 20 dex; outside it the
        gradient with respect to ``log_var`` is zero, so a point fitted exactly cannot
        drive its variance (and the loss) to minus infinity.
    obs_var
        The observations' own variance of log10 Ne (dex squared, >= 0), same shape as
        ``pred``: ``s`` is then ``log(exp(clamp(log_var)) + obs_var)``, the total
        variance of an observation of the predicted field. A point with a large
        ``obs_var`` pulls weakly on ``pred`` and ``log_var``. Not used at the points
        with a finite ``log10_noise``.
    log10_noise
        log10 of each observation's additive noise (m-3), NaN at the points the
        first form scores; same shape as ``pred``.
    reduction
        ``"mean"`` (a scalar) or ``"none"`` (one value per point).

    Returns
    -------
    torch.Tensor
        The mean NLL in nats per point (density with respect to log10 Ne), or each
        point's.

    Examples
    --------
    >>> value = gaussian_nll(torch.zeros(3), torch.zeros(3), torch.ones(3))
    >>> round(float(value), 4)  # 0.5 log(2 pi) + 0.5
    1.4189
    >>> # 1e10 m-3 observed as 1.01e10 with 1e8 m-3 of noise, one sigma off: both forms
    >>> pred, log_var = torch.tensor([10.0]), torch.tensor([-30.0])
    >>> target = torch.log10(torch.tensor([1.01e10]))
    >>> noisy = gaussian_nll(pred, log_var, target, log_var_range=(-30.0, 6.0),
    ...                      log10_noise=torch.tensor([8.0]))
    >>> plain = gaussian_nll(pred, log_var, target, log_var_range=(-30.0, 6.0),
    ...                      obs_var=torch.tensor([(1e8 / 1e10 / math.log(10.0)) ** 2]))
    >>> round(float(noisy), 2), round(float(plain), 2)
    (-4.03, -4.03)
    """
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction must be 'mean' or 'none', not {reduction!r}")
    clamped = log_var.clamp(*log_var_range)
    s = clamped if obs_var is None else torch.logaddexp(clamped, torch.log(obs_var))
    nll = 0.5 * math.log(2.0 * math.pi) + 0.5 * s + 0.5 * (target - pred) ** 2 * torch.exp(-s)
    if log10_noise is not None:
        noisy = torch.isfinite(log10_noise)
        if bool(noisy.any()):
            nll = nll.masked_scatter(noisy, _truncated_nll(
                pred[noisy], clamped[noisy], target[noisy], log10_noise[noisy]))
    return nll.mean() if reduction == "mean" else nll


def _truncated_nll(
    pred: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor, log10_noise: torch.Tensor
) -> torch.Tensor:
    """:func:`gaussian_nll`'s second form, per point, in units of the noise.

    Ne is divided by the noise before anything is raised to a power, so that float32
    holds every quantity (``m / e`` stays below ``1e30``).
    """
    signal = torch.pow(10.0, (pred - log10_noise).clamp(max=30.0))
    observed = torch.pow(10.0, target - log10_noise)
    tau2 = 1.0 + torch.exp(log_var) * (signal * math.log(10.0)) ** 2
    return (0.5 * torch.log(2.0 * math.pi * tau2) + 0.5 * (observed - signal) ** 2 / tau2
            + torch.special.log_ndtr(signal / torch.sqrt(tau2))
            - torch.log(observed * math.log(10.0)))


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error.

    Parameters
    ----------
    pred
        Predicted log10 Ne (dex), any shape.
    target
        Observed log10 Ne (dex), same shape.

    Returns
    -------
    torch.Tensor
        Scalar, in dex squared.

    Examples
    --------
    >>> float(mse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])))
    2.0
    """
    return ((pred - target) ** 2).mean()


def _safe_unit(v: torch.Tensor, dim: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``v / |v|`` along ``dim`` (zero where ``|v| <= eps``) and the mask ``|v| > eps``."""
    norm = torch.linalg.vector_norm(v, dim=dim, keepdim=True)
    valid = norm > eps
    # Divide by 1 where the norm is tiny so that the unused branch of `where` has no
    # inf/NaN that would poison the backward pass.
    u = torch.where(valid, v / torch.where(valid, norm, torch.ones_like(norm)), 0.0)
    return u, valid.squeeze(dim)


def unit(v: torch.Tensor, *, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """Normalise vectors to unit length; vectors shorter than ``eps`` become zero.

    Parameters
    ----------
    v
        Vectors, any shape; the components lie along ``dim``.
    dim
        The component dimension (-1 for point batches ``(B, 2)``, -3 for maps
        ``(N, 2, H, W)``).
    eps
        Norms at or below this are treated as zero (the result is 0 there, with a
        finite gradient).

    Returns
    -------
    torch.Tensor
        Same shape as ``v``.

    Examples
    --------
    >>> unit(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    return _safe_unit(v, dim, eps)[0]


def _cos_lat(lat_deg: torch.Tensor) -> torch.Tensor:
    """Cosine of latitudes in degrees, clamped away from zero at the poles."""
    return torch.cos(torch.deg2rad(lat_deg)).clamp_min(_MIN_COS_LAT)


def _periodic_lon_layout(lon_deg: torch.Tensor) -> tuple[float, bool]:
    """Check a periodic longitude axis; return (spacing in degrees, has duplicate meridian).

    The axis must be uniform and span the globe either with ``W`` distinct meridians
    (``W * dlon = 360``) or with the closing meridian repeated (``(W-1) * dlon = 360``,
    as in IONEX's -180..180).
    """
    n = lon_deg.numel()
    steps = torch.diff(lon_deg)
    if n < 3 or not bool(torch.all(steps > 0)):
        raise ConfigError(
            f"lon_deg: a periodic longitude axis needs >= 3 increasing values, got {n} "
            f"values {lon_deg.tolist()[:5]}...; sort the longitudes or pass periodic_lon=False"
        )
    dlon = float(steps.mean())
    if float((steps - dlon).abs().max()) > 1e-4 * dlon:
        raise ConfigError(
            f"lon_deg: a periodic longitude axis must be uniform; found steps from "
            f"{float(steps.min())} to {float(steps.max())} degrees; regrid, or pass "
            "periodic_lon=False"
        )
    tol = 1e-3 * dlon
    if abs(n * dlon - 360.0) <= tol:
        return dlon, False
    if abs((n - 1) * dlon - 360.0) <= tol:
        return dlon, True
    raise ConfigError(
        f"lon_deg: {n} meridians {dlon:g} degrees apart span {n * dlon:g} degrees, not the globe; "
        "pass a global grid (W * dlon = 360, optionally with the closing meridian repeated) "
        "or periodic_lon=False"
    )


def spherical_gradient(
    field: torch.Tensor,
    lat_deg: ArrayLike,
    lon_deg: ArrayLike,
    *,
    radius: float = 1.0,
    periodic_lon: bool = True,
) -> torch.Tensor:
    """Horizontal gradient of gridded maps on the sphere, by finite differences.

    Latitude derivatives are centred (second order, non-uniform spacing allowed)
    inside and one-sided at the first and last rows. Longitude derivatives are
    centred and, with ``periodic_lon``, wrap around the globe.

    Parameters
    ----------
    field
        Maps, shape ``(..., H, W)``, any units ``U``.
    lat_deg
        Latitudes of the rows in degrees north, shape ``(H,)``, ascending or
        descending, strictly monotonic.
    lon_deg
        Longitudes of the columns in degrees east, shape ``(W,)``, increasing.
        With ``periodic_lon`` the axis must be uniform and global: either ``W``
        distinct meridians (``W * dlon = 360``) or the IONEX layout that repeats
        the closing meridian (-180..180, ``(W - 1) * dlon = 360``), in which case
        the last column of the result equals the first.
    radius
        Sphere radius ``R``; the result is in ``U`` per unit of ``R`` (per radian
        of arc for the default 1).
    periodic_lon
        Wrap the longitude differences around the globe.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 2, H, W)``: component 0 is ``(1/R) df/dlat`` and component 1
        is ``(1/(R cos lat)) df/dlon``, angles in radians.

    Raises
    ------
    ConfigError
        If the coordinates do not match the field's shape or the longitude axis is
        not a global uniform grid while ``periodic_lon`` is set.

    Examples
    --------
    >>> lat = torch.arange(-87.5, 88.0, 2.5)
    >>> lon = torch.arange(-180.0, 180.0, 5.0)
    >>> f = torch.sin(torch.deg2rad(lat))[:, None].expand(71, 72)
    >>> g = spherical_gradient(f, lat, lon)
    >>> g.shape
    torch.Size([2, 71, 72])
    >>> bool(torch.allclose(g[0, 35], torch.ones(72), atol=1e-3))  # cos(0)
    True
    """
    lat = torch.as_tensor(lat_deg, dtype=field.dtype, device=field.device)
    lon = torch.as_tensor(lon_deg, dtype=field.dtype, device=field.device)
    if field.ndim < 2 or lat.shape != field.shape[-2:-1] or lon.shape != field.shape[-1:]:
        raise ConfigError(
            f"spherical_gradient: field of shape {tuple(field.shape)} needs lat_deg of shape "
            f"(H,) and lon_deg of shape (W,), got {tuple(lat.shape)} and {tuple(lon.shape)}"
        )
    lat_steps = torch.diff(lat)
    if lat.numel() < 2 or not (bool(torch.all(lat_steps > 0)) or bool(torch.all(lat_steps < 0))):
        raise ConfigError(
            f"spherical_gradient: lat_deg must hold >= 2 strictly monotonic values, got "
            f"{lat.tolist()[:5]}...; pass the rows' latitudes in their (sorted) order"
        )
    d_dlat = torch.gradient(field, spacing=(torch.deg2rad(lat),), dim=-2, edge_order=1)[0]
    if periodic_lon:
        dlon, duplicate = _periodic_lon_layout(lon)
        core = field[..., :-1] if duplicate else field
        d_dlon = (core.roll(-1, dims=-1) - core.roll(1, dims=-1)) / (2.0 * math.radians(dlon))
        if duplicate:
            d_dlon = torch.cat([d_dlon, d_dlon[..., :1]], dim=-1)
    else:
        d_dlon = torch.gradient(field, spacing=(torch.deg2rad(lon),), dim=-1, edge_order=1)[0]
    east = d_dlon / _cos_lat(lat)[:, None]
    return torch.stack([d_dlat, east], dim=-3) / radius


def horizontal_gradient_metric(
    d_dlat: torch.Tensor,
    d_dlon: torch.Tensor,
    lat_deg: torch.Tensor,
    *,
    degrees: bool = True,
    radius: float = 1.0,
) -> torch.Tensor:
    """Put point derivatives along latitude and longitude in the spherical metric.

    Use it on the autograd derivatives of the model output with respect to its
    latitude and longitude inputs, so that they compare with
    :func:`spherical_gradient` of the TEC map.

    Parameters
    ----------
    d_dlat
        ``df/dlat`` at each point, shape ``(B,)`` (any shape broadcasting with the
        others).
    d_dlon
        ``df/dlon`` at each point, same shape and angle unit as ``d_dlat``.
    lat_deg
        Latitude of each point in degrees north, same shape.
    degrees
        Whether the derivatives are per degree (True) or per radian (False).
    radius
        Sphere radius ``R`` (as in :func:`spherical_gradient`).

    Returns
    -------
    torch.Tensor
        Shape ``(B, 2)``: ``((1/R) df/dlat, (1/(R cos lat)) df/dlon)`` per radian.

    Examples
    --------
    >>> g = horizontal_gradient_metric(torch.tensor([1.0]), torch.tensor([0.5]),
    ...                                torch.tensor([60.0]), degrees=False)
    >>> g
    tensor([[1.0000, 1.0000]])
    """
    per_radian = 180.0 / math.pi if degrees else 1.0
    north = d_dlat * per_radian
    east = d_dlon * per_radian / _cos_lat(lat_deg)
    return torch.stack([north, east], dim=-1) / radius


def chapman_smoothness(
    output: torch.Tensor,
    inputs: torch.Tensor,
    *,
    alt_index: int | None = None,
    km_per_input_unit: float = 1.0,
    scale_km: float = 100.0,
) -> torch.Tensor:
    """Mean squared second altitude derivative of the model output, by double autograd.

    The loss is ``mean((L**2 * d2f/dz2)**2)`` with ``z`` the altitude in km and
    ``L = scale_km``: the curvature of ``f`` per ``L`` squared, in ``f``'s units (dex
    for log10 Ne). A Chapman layer of scale height ``H`` has ``|d2 log10 Ne / dz2|``
    of ``0.22 / H**2`` at its peak, so the loss stays small for smooth Chapman-like
    profiles and grows for vertical oscillations. The derivatives are built with
    ``create_graph=True``, so the loss trains the network.

    The output must be computed point by point (output ``i`` depends on input row
    ``i`` only, as in a SIREN): derivatives are taken of ``output.sum()``.

    Parameters
    ----------
    output
        Network output (log10 Ne or its residual), shape ``(B,)`` or ``(B, 1)``,
        computed from ``inputs``.
    inputs
        The tensor the output was computed from, with ``requires_grad=True``:
        either the altitude itself, shape ``(B,)``, or the model's input rows,
        shape ``(B, D)``, with the altitude in column ``alt_index``.
    alt_index
        Column of ``inputs`` holding the altitude; required when ``inputs`` is 2-D.
    km_per_input_unit
        Kilometres per unit of the altitude input: 1 if it is in km; ``s`` if the
        model feeds ``(alt - a0) / s``.
    scale_km
        The length ``L`` in km per which the curvature is measured (100 km by
        default; pass ``km_per_input_unit`` to measure per normalised input unit).

    Returns
    -------
    torch.Tensor
        Scalar, in ``f`` units squared (per ``L**2``, squared).

    Raises
    ------
    ConfigError
        If ``inputs`` does not require grad, or ``alt_index`` does not match its shape.

    Examples
    --------
    >>> alt = torch.linspace(100.0, 500.0, 5, requires_grad=True)
    >>> loss = chapman_smoothness((alt / 100.0) ** 2, alt)  # d2f/dz2 = 2e-4 per km2
    >>> round(float(loss.detach()), 6)  # (100**2 * 2e-4)**2
    4.0
    """
    if not inputs.requires_grad:
        raise ConfigError(
            "chapman_smoothness: `inputs` does not require grad; create it with "
            "requires_grad=True (or call .requires_grad_()) before computing the output"
        )
    if (inputs.ndim == 2) != (alt_index is not None) or inputs.ndim not in (1, 2):
        raise ConfigError(
            f"chapman_smoothness: inputs of shape {tuple(inputs.shape)} with alt_index="
            f"{alt_index}; pass the altitude (B,) alone, or input rows (B, D) with alt_index"
        )

    def d_dalt(y: torch.Tensor) -> torch.Tensor:
        if not y.requires_grad:  # y does not depend on the inputs: zero derivative
            return torch.zeros(inputs.shape[0], dtype=inputs.dtype, device=inputs.device)
        (g,) = torch.autograd.grad(y.sum(), inputs, create_graph=True, allow_unused=True)
        if g is None:
            return torch.zeros(inputs.shape[0], dtype=inputs.dtype, device=inputs.device)
        return g if alt_index is None else g[:, alt_index]

    curvature = d_dalt(d_dalt(output)) * (scale_km / km_per_input_unit) ** 2
    return (curvature**2).mean()


def direction_consistency(
    grad_ne: torch.Tensor, direction: torch.Tensor, *, eps: float = 1e-12
) -> torch.Tensor:
    """Mean ``1 - cos`` of the angle between two horizontal vector fields.

    Only directions count: scaling either vector by a positive factor leaves the
    loss unchanged. Parallel vectors give 0, orthogonal 1, antiparallel 2. Points
    where either vector's norm is at or below ``eps`` contribute 0 (and a finite,
    zero gradient) but still count in the mean's denominator.

    Parameters
    ----------
    grad_ne
        Horizontal gradient of the model's log10 Ne, shape ``(B, 2)``, in the
        spherical metric (see :func:`horizontal_gradient_metric`).
    direction
        Target direction (e.g. the TEC direction field sampled at the points),
        shape ``(B, 2)``, in the same metric and component order.
    eps
        Norm below which a vector is treated as zero.

    Returns
    -------
    torch.Tensor
        Scalar in [0, 2].

    Examples
    --------
    >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    >>> b = torch.tensor([[5.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> round(float(direction_consistency(a, b)), 4)  # (0 + 1 + 0) / 3
    0.3333
    """
    ua, valid_a = _safe_unit(grad_ne, -1, eps)
    ub, valid_b = _safe_unit(direction, -1, eps)
    cos = (ua * ub).sum(dim=-1)
    return torch.where(valid_a & valid_b, 1.0 - cos, 0.0).mean()

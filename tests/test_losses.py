"""Tests of the losses and spherical-gradient kernels against analytic answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ionofield.errors import ConfigError
from ionofield.nn import Siren
from ionofield.nn.losses import (
    chapman_smoothness,
    direction_consistency,
    gaussian_nll,
    horizontal_gradient_metric,
    mse,
    spherical_gradient,
    unit,
)

LN10 = math.log(10.0)
IONEX_LAT = np.arange(-87.5, 87.6, 2.5)  # 71 rows, ascending
IONEX_LON = np.arange(-180.0, 180.0, 5.0)  # 72 distinct meridians


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


# ------------------------------------------------------------------------ likelihood
def test_gaussian_nll_equals_the_analytic_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(
        50, generator=gen, dtype=torch.float64
    )
    log_var = torch.empty(50, dtype=torch.float64).uniform_(-5.0, 2.0, generator=gen)
    sigma2 = np.exp(_np(log_var))
    r2 = _np(target - pred) ** 2
    # log of the Gaussian density of log10 Ne, averaged and negated
    expected = -np.mean(-0.5 * np.log(2 * np.pi * sigma2) - r2 / (2 * sigma2))
    assert float(gaussian_nll(pred, log_var, target)) == pytest.approx(expected, rel=1e-12)


def test_gaussian_nll_with_observation_variance_is_the_gaussian_of_the_summed_variance() -> None:
    gen = torch.Generator().manual_seed(1)
    pred, target = (torch.randn(40, generator=gen, dtype=torch.float64) for _ in range(2))
    log_var = torch.empty(40, dtype=torch.float64).uniform_(-6.0, 1.0, generator=gen)
    obs_var = torch.empty(40, dtype=torch.float64).uniform_(0.0, 0.5, generator=gen)
    obs_var[:5] = 0.0  # points without an observation error
    total = np.exp(_np(log_var)) + _np(obs_var)
    r2 = _np(target - pred) ** 2
    expected = -np.mean(-0.5 * np.log(2 * np.pi * total) - r2 / (2 * total))
    got = gaussian_nll(pred, log_var, target, obs_var=obs_var)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    zero = gaussian_nll(pred, log_var, target, obs_var=torch.zeros(40, dtype=torch.float64))
    assert float(zero) == pytest.approx(float(gaussian_nll(pred, log_var, target)), rel=1e-12)


def test_a_point_with_a_huge_observation_variance_barely_pulls() -> None:
    """The gradient on pred and log_var of a point falls as 1 / (its total variance)."""
    pred = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    log_var = torch.full((2,), math.log(0.01), dtype=torch.float64, requires_grad=True)
    target = torch.full((2,), 0.3, dtype=torch.float64)
    obs_var = torch.tensor([0.0, 1e4], dtype=torch.float64)
    gaussian_nll(pred, log_var, target, obs_var=obs_var).backward()
    assert torch.isfinite(pred.grad).all() and torch.isfinite(log_var.grad).all()
    # d/dpred = -error / total / n: 0.3 / 0.01 / 2 for the first, ~1e6 times less for the second
    assert float(pred.grad[0]) == pytest.approx(-0.3 / 0.01 / 2, rel=1e-12)
    assert abs(float(pred.grad[1])) < 1e-6 * abs(float(pred.grad[0]))
    assert abs(float(log_var.grad[1])) < 1e-6 * abs(float(log_var.grad[0]))


@pytest.mark.parametrize("error", [1e-2, 0.3, 2.0], ids=["0.01dex", "0.3dex", "2dex"])
def test_gaussian_nll_optimum_log_var_is_log_squared_error(error: float) -> None:
    pred, target = torch.zeros(1, dtype=torch.float64), torch.full((1,), error, dtype=torch.float64)
    best = torch.full((1,), math.log(error**2), dtype=torch.float64, requires_grad=True)
    loss = gaussian_nll(pred, best, target)
    (grad,) = torch.autograd.grad(loss, best)
    assert abs(float(grad)) < 1e-12
    for delta in (-0.5, 0.5):
        assert float(gaussian_nll(pred, best.detach() + delta, target)) > float(loss.detach())


def test_gaussian_nll_clamps_log_var() -> None:
    pred, target = torch.zeros(3), torch.zeros(3)
    tiny = torch.full((3,), -100.0, requires_grad=True)
    loss = gaussian_nll(pred, tiny, target)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(0.5 * math.log(2 * math.pi) - 7.0)  # at -14
    loss.backward()
    assert float(tiny.grad.abs().max()) == 0.0
    custom = gaussian_nll(pred, tiny.detach(), target, log_var_range=(-3.0, 3.0))
    assert float(custom) == pytest.approx(0.5 * math.log(2 * math.pi) - 1.5)


def test_mse_is_the_mean_square() -> None:
    assert float(mse(torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 0.0, 0.0]))) == (
        pytest.approx(10.0 / 3)
    )


# ----------------------------------------------------------------- spherical gradient
def _field(f, lat: np.ndarray, lon: np.ndarray) -> torch.Tensor:
    phi, lam = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    return torch.from_numpy(f(phi, lam))


@pytest.mark.parametrize("radius", [1.0, 6371.0], ids=["unit-sphere", "earth-km"])
def test_spherical_gradient_of_sin_lat(radius: float) -> None:
    f = _field(lambda phi, lam: np.sin(phi) + 0 * lam, IONEX_LAT, IONEX_LON)
    g = _np(spherical_gradient(f, IONEX_LAT, IONEX_LON, radius=radius))
    assert g.shape == (2, 71, 72)
    exact = np.cos(np.deg2rad(IONEX_LAT))[:, None] / radius
    h = np.deg2rad(2.5)
    # centred differences inside: error h^2/6 |f'''| ; one-sided at the edge rows: h/2 |f''|
    exact = np.broadcast_to(exact, g[0].shape)
    np.testing.assert_allclose(g[0, 1:-1] * radius, exact[1:-1] * radius, atol=h**2 / 6)
    np.testing.assert_allclose(g[0, [0, -1]] * radius, exact[[0, -1]] * radius, atol=h / 2)
    np.testing.assert_allclose(g[1], 0.0, atol=1e-12)


def test_spherical_gradient_of_cos_lat_cos_lon_wraps_in_longitude() -> None:
    f = _field(lambda phi, lam: np.cos(phi) * np.cos(lam), IONEX_LAT, IONEX_LON)
    g = _np(spherical_gradient(f, IONEX_LAT, IONEX_LON))
    exact_east = -np.sin(np.deg2rad(IONEX_LON))[None, :].repeat(71, axis=0)
    h = np.deg2rad(5.0)
    np.testing.assert_allclose(g[1], exact_east, atol=h**2 / 6)
    # The wrap columns are as accurate as the others (a non-periodic scheme is not).
    edges = np.abs(g[1][:, [0, -1]] - exact_east[:, [0, -1]]).max()
    assert edges < h**2 / 6
    one_sided = _np(spherical_gradient(f, IONEX_LAT, IONEX_LON, periodic_lon=False))
    assert np.abs(one_sided[1][:, 0] - exact_east[:, 0]).max() > 10 * edges


def test_spherical_gradient_converges_at_second_order() -> None:
    errors = []
    for step in (4.0, 2.0):
        lat = np.arange(-80.0, 80.1, step)
        lon = np.arange(-180.0, 180.0, step)
        f = _field(lambda phi, lam: np.sin(2 * phi) * np.cos(3 * lam), lat, lon)
        g = _np(spherical_gradient(f, lat, lon))
        phi, lam = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
        north = 2 * np.cos(2 * phi) * np.cos(3 * lam)
        east = -3 * np.sin(2 * phi) * np.sin(3 * lam) / np.cos(phi)
        errors.append(
            max(np.abs(g[0, 1:-1] - north[1:-1]).max(), np.abs(g[1] - east).max())
        )
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.1)


def test_spherical_gradient_accepts_the_native_ionex_layout() -> None:
    """73 columns -180..180 (closing meridian repeated) and latitudes descending."""
    lat = IONEX_LAT[::-1].copy()
    lon = np.arange(-180.0, 180.1, 5.0)
    f = _field(lambda phi, lam: np.cos(phi) * np.sin(lam) + np.sin(phi), lat, lon)
    g = _np(spherical_gradient(f, lat, lon))
    assert g.shape == (2, 71, 73)
    np.testing.assert_allclose(g[:, :, -1], g[:, :, 0], atol=1e-12)
    distinct = _np(spherical_gradient(f[:, :-1].flip(0), IONEX_LAT, IONEX_LON))
    np.testing.assert_allclose(g[:, ::-1, :-1], distinct, atol=1e-12)


def test_spherical_gradient_keeps_leading_dimensions() -> None:
    f = torch.randn(3, 4, 71, 72)
    assert spherical_gradient(f, IONEX_LAT, IONEX_LON).shape == (3, 4, 2, 71, 72)


@pytest.mark.parametrize(
    ("lon", "match"),
    [
        pytest.param(np.arange(-180.0, 0.0, 5.0), "not the globe", id="half-globe"),
        pytest.param(np.r_[np.arange(-180.0, 0.0, 5.0), np.arange(0.0, 180.0, 4.0)][:72],
                     "uniform", id="non-uniform"),
        pytest.param(IONEX_LON[::-1].copy(), "increasing", id="decreasing"),
    ],
)
def test_spherical_gradient_rejects_a_non_global_periodic_axis(lon: np.ndarray, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        spherical_gradient(torch.zeros(71, lon.size), IONEX_LAT, lon)


def test_spherical_gradient_rejects_mismatched_coordinates() -> None:
    with pytest.raises(ConfigError, match="shape"):
        spherical_gradient(torch.zeros(71, 72), IONEX_LAT[:-1], IONEX_LON)
    with pytest.raises(ConfigError, match="monotonic"):
        spherical_gradient(torch.zeros(3, 72), [0.0, 2.5, 2.5], IONEX_LON)


def test_point_metric_matches_the_map_metric() -> None:
    """Autograd derivatives at grid nodes, put in the metric, equal the map gradient."""
    lat = torch.tensor(IONEX_LAT[10:60:7], requires_grad=True)
    lon = torch.tensor(IONEX_LON[::9], requires_grad=True)
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    f = torch.cos(torch.deg2rad(la)) * torch.sin(torch.deg2rad(lo)) + torch.sin(
        torch.deg2rad(la)
    ) ** 2
    d_dlat, d_dlon = torch.autograd.grad(f.sum(), (la, lo))
    got = _np(horizontal_gradient_metric(d_dlat.ravel(), d_dlon.ravel(), la.detach().ravel()))
    phi, lam = np.deg2rad(_np(la).ravel()), np.deg2rad(_np(lo).ravel())
    exact = np.stack(
        [-np.sin(phi) * np.sin(lam) + 2 * np.sin(phi) * np.cos(phi), np.cos(lam)], axis=-1
    )
    np.testing.assert_allclose(got, exact, atol=1e-12)
    per_radian = horizontal_gradient_metric(
        d_dlat * 180 / np.pi, d_dlon * 180 / np.pi, la.detach(), degrees=False, radius=2.0
    )
    np.testing.assert_allclose(_np(per_radian).reshape(-1, 2), exact / 2.0, atol=1e-12)


# ------------------------------------------------------------------------ Chapman
H_SCALE, H_PEAK = 60.0, 300.0


def _chapman_log10(alt: torch.Tensor) -> torch.Tensor:
    """log10 of an alpha-Chapman layer with peak 1e12 m-3."""
    u = (alt - H_PEAK) / H_SCALE
    return 12.0 + 0.5 * (1.0 - u - torch.exp(-u)) / LN10


def test_chapman_smoothness_matches_the_analytic_curvature() -> None:
    alt = torch.linspace(250.0, 600.0, 200, dtype=torch.float64, requires_grad=True)
    loss = chapman_smoothness(_chapman_log10(alt), alt, scale_km=100.0)
    u = (_np(alt) - H_PEAK) / H_SCALE
    curvature = -0.5 * np.exp(-u) / (LN10 * H_SCALE**2)  # d2 log10 Ne / dz2 per km^2
    assert _f(loss) == pytest.approx(np.mean((100.0**2 * curvature) ** 2), rel=1e-10)


def test_chapman_smoothness_penalises_vertical_oscillations() -> None:
    alt = torch.linspace(250.0, 600.0, 200, dtype=torch.float64, requires_grad=True)
    smooth = chapman_smoothness(_chapman_log10(alt), alt)
    wavy_profile = _chapman_log10(alt) + 0.05 * torch.sin(2 * math.pi * alt / 20.0)
    wavy = chapman_smoothness(wavy_profile, alt)
    assert _f(wavy) > 100 * _f(smooth)


def test_chapman_smoothness_on_normalised_input_rows() -> None:
    """(B, D) inputs with a normalised altitude column give the per-km answer."""
    alt_km = torch.linspace(250.0, 600.0, 50, dtype=torch.float64)
    rows = torch.stack([torch.zeros(50, dtype=torch.float64), (alt_km - 400.0) / 200.0], dim=1)
    rows.requires_grad_()
    out = _chapman_log10(rows[:, 1] * 200.0 + 400.0 + 0.0 * rows[:, 0])[:, None]
    by_rows = chapman_smoothness(out, rows, alt_index=1, km_per_input_unit=200.0)
    alt = alt_km.clone().requires_grad_()
    by_km = chapman_smoothness(_chapman_log10(alt), alt)
    assert _f(by_rows) == pytest.approx(_f(by_km), rel=1e-10)
    per_unit = chapman_smoothness(out, rows, alt_index=1, km_per_input_unit=200.0, scale_km=200.0)
    assert _f(per_unit) == pytest.approx(_f(by_km) * 2.0**4, rel=1e-10)


def test_chapman_smoothness_of_a_linear_profile_is_zero() -> None:
    alt = torch.linspace(100.0, 900.0, 10, requires_grad=True)
    assert _f(chapman_smoothness(3.0 * alt + 1.0, alt)) == 0.0
    assert _f(chapman_smoothness(torch.ones(10) + 0.0 * alt, alt)) == 0.0


def test_chapman_smoothness_trains_the_network() -> None:
    torch.manual_seed(0)
    net = Siren(2, 16, 1, 1)
    rows = torch.rand(32, 2, requires_grad=True)
    chapman_smoothness(net(rows), rows, alt_index=1).backward()
    output_bias = net.net[-1].bias
    assert output_bias.grad is None  # a constant shift has no curvature
    for name, p in net.named_parameters():
        if p is not output_bias:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(
    ("inputs", "alt_index", "match"),
    [
        pytest.param(torch.ones(4), None, "requires_grad", id="no-grad"),
        pytest.param(torch.ones(4, 2, requires_grad=True), None, "alt_index", id="2d-no-index"),
        pytest.param(torch.ones(4, requires_grad=True), 0, "alt_index", id="1d-with-index"),
    ],
)
def test_chapman_smoothness_rejects_bad_inputs(
    inputs: torch.Tensor, alt_index: int | None, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        chapman_smoothness(inputs.sum(dim=-1) if inputs.ndim == 2 else inputs * 2, inputs,
                           alt_index=alt_index)


# ---------------------------------------------------------------- TEC direction
@pytest.mark.parametrize(
    ("b", "expected"),
    [
        pytest.param([3.0, 4.0], 0.0, id="parallel"),
        pytest.param([-0.3, -0.4], 2.0, id="antiparallel"),
        pytest.param([-4.0, 3.0], 1.0, id="orthogonal"),
        pytest.param([0.0, 5.0], 1.0 - 0.8, id="53-degrees"),
    ],
)
def test_direction_consistency_values(b: list[float], expected: float) -> None:
    a = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    got = direction_consistency(a, torch.tensor([b], dtype=torch.float64))
    assert float(got) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    log_scale=st.lists(st.floats(-6.0, 6.0), min_size=8, max_size=8),
)
def test_direction_consistency_ignores_magnitudes(seed: int, log_scale: list[float]) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    s = torch.tensor(log_scale, dtype=torch.float64).exp()[:, None]
    ref = float(direction_consistency(a, b))
    assert 0.0 <= ref <= 2.0
    assert float(direction_consistency(a * s, b)) == pytest.approx(ref, abs=1e-12)
    assert float(direction_consistency(a, b / s)) == pytest.approx(ref, abs=1e-12)


def test_direction_consistency_masks_zero_vectors_without_nan() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, -1.0]], dtype=torch.float64)
    a.requires_grad_()
    b.requires_grad_()
    loss = direction_consistency(a, b)
    assert _f(loss) == pytest.approx(2.0 / 3)  # only the antiparallel pair counts
    loss.backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert float(a.grad[0].abs().sum()) == 0.0 and float(b.grad[1].abs().sum()) == 0.0


def test_direction_consistency_gradient_is_tangential() -> None:
    """Only the direction is trained: the gradient is orthogonal to the vector."""
    a = torch.tensor([[2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    direction_consistency(a, torch.tensor([[0.0, 1.0]], dtype=torch.float64)).backward()
    assert float((a.grad * a.detach()).sum()) == pytest.approx(0.0, abs=1e-12)
    assert float(a.grad.abs().sum()) > 0


def test_unit_normalises_and_leaves_zeros() -> None:
    v = torch.tensor([[[3.0]], [[4.0]]]).expand(2, 2, 3).clone()  # (2, 2, 3), components dim 0
    v[:, 1, 2] = 0.0
    v.requires_grad_()
    u = unit(v, dim=0)
    np.testing.assert_allclose(_np(u[:, 0, 0]), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(_np(u[:, 1, 2]), [0.0, 0.0])
    u.sum().backward()
    assert torch.isfinite(v.grad).all()


@pytest.mark.parametrize(("log10_ne", "log_var"), [(10.0, math.log(0.05**2)), (9.0, -30.0),
                                                   (8.0, math.log(0.3**2))],
                         ids=["snr-10", "snr-1", "snr-0.1"])
def test_noisy_density_nll_is_a_normalised_density_of_log10_ne(log10_ne, log_var) -> None:
    """exp(-nll) integrates to 1 over the observed log10 Ne, the dropped draws accounted for."""
    observed = torch.linspace(log10_ne - 8.0, log10_ne + 2.0, 400_001, dtype=torch.float64)
    nll = gaussian_nll(torch.full_like(observed, log10_ne), torch.full_like(observed, log_var),
                       observed, log_var_range=(-40.0, 6.0),
                       log10_noise=torch.full_like(observed, 9.0), reduction="none")
    density = torch.exp(-nll)
    assert float(torch.trapezoid(density, observed)) == pytest.approx(1.0, abs=2e-4)


def test_noisy_density_nll_leaves_points_without_noise_to_the_log_normal() -> None:
    pred, log_var, target = (torch.tensor([10.0, 10.0]), torch.full((2,), -4.0),
                             torch.tensor([10.1, 10.1]))
    noise = torch.tensor([math.nan, 9.0])
    each = gaussian_nll(pred, log_var, target, log10_noise=noise, reduction="none")
    plain = gaussian_nll(pred, log_var, target, reduction="none")
    assert float(each[0]) == float(plain[0]) != float(each[1])
    assert float(gaussian_nll(pred, log_var, target, log10_noise=noise)) == pytest.approx(
        float(each.mean()))
    with pytest.raises(ConfigError, match="reduction"):
        gaussian_nll(pred, log_var, target, reduction="sum")


def test_noisy_density_nll_recovers_a_density_buried_in_noise_the_log_normal_does_not() -> None:
    """Ne at 0.3 times the noise, the non-positive draws dropped, as RO readers do.

    The maximum of the truncated likelihood lies at the true density; the log-normal
    form, given each point's sigma relative to the truth, lands well above it, on the
    kept draws' upward lean.
    """
    rng = np.random.default_rng(3)
    noise, truth = 5e9, 1.5e9
    draws = truth + noise * rng.standard_normal(200_000)
    observed = torch.from_numpy(np.log10(draws[draws > 0]))
    candidates = np.arange(8.5, 10.5, 0.005)

    def best(**options) -> float:
        scores = [float(gaussian_nll(torch.full_like(observed, c), torch.full_like(observed, -40.0),
                                     observed, log_var_range=(-40.0, 6.0), **options))
                  for c in candidates]
        return float(candidates[int(np.argmin(scores))])

    truncated = best(log10_noise=torch.full_like(observed, math.log10(noise)))
    log_normal = best(obs_var=torch.full_like(observed, min(noise / truth / math.log(10.0), 1.0)
                                              ** 2))
    assert truncated == pytest.approx(math.log10(truth), abs=0.02)
    assert log_normal - math.log10(truth) > 0.3

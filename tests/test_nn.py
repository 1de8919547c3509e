"""Tests of the torch building blocks: SIREN, the recurrent encoders, direction sampling."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ionofield.errors import ConfigError
from ionofield.features import KP_MEMORY_DECAY_PER_SLOT, driver_features, kp_memory
from ionofield.magnetic import dipole_axis, modip_table
from ionofield.nn import (
    ConvLSTM,
    ConvLSTMCell,
    DirectionHead,
    EnvironmentEncoder,
    SineLayer,
    Siren,
    pad_sphere,
    reference_direction,
    sample_direction,
)
from ionofield.nn.model import (
    MAGNETIC_FEATURES,
    MAX_SHIFT_KM,
    SPATIAL_FEATURES,
    RSTMRFNetwork,
)
from ionofield.sphere import Cells

# A small global grid with the module convention: W distinct meridians, W * dlon = 360.
H, W = 7, 12
LAT0, DLAT, LON0, DLON = -75.0, 25.0, -180.0, 30.0
LATS = LAT0 + DLAT * np.arange(H)
LONS = LON0 + DLON * np.arange(W)


# --------------------------------------------------------------------------- SIREN init
@pytest.mark.parametrize(
    ("is_first", "w0", "bound"),
    [
        pytest.param(True, 30.0, 1.0 / 300, id="first-w0=30"),
        pytest.param(True, 5.0, 1.0 / 300, id="first-w0=5"),
        pytest.param(False, 30.0, math.sqrt(6.0 / 300) / 30.0, id="hidden-w0=30"),
        pytest.param(False, 5.0, math.sqrt(6.0 / 300) / 5.0, id="hidden-w0=5"),
    ],
)
def test_sine_layer_init_matches_sitzmann(is_first: bool, w0: float, bound: float) -> None:
    torch.manual_seed(0)
    weight = SineLayer(300, 400, w0=w0, is_first=is_first).linear.weight.detach()
    assert float(weight.abs().max()) <= bound
    assert float(weight.abs().max()) > 0.99 * bound  # the full range is used
    # U(-b, b) has std b / sqrt(3); 120 000 draws pin it to well under 1 %.
    assert float(weight.std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.01)
    assert abs(float(weight.mean())) < 0.01 * bound


@pytest.mark.parametrize("outermost_linear", [True, False], ids=["linear-out", "sine-out"])
def test_siren_layers_use_first_and_hidden_bounds(outermost_linear: bool) -> None:
    torch.manual_seed(0)
    net = Siren(3, 64, 2, 5, w0=20.0, w0_first=40.0, outermost_linear=outermost_linear)
    layers = list(net.net)
    assert len(layers) == 4
    first, *rest = layers
    assert isinstance(first, SineLayer) and first.is_first and first.w0 == 40.0
    assert float(first.linear.weight.detach().abs().max()) <= 1.0 / 3
    hidden_bound = math.sqrt(6.0 / 64) / 20.0
    for layer in rest:
        linear = layer if isinstance(layer, nn.Linear) else layer.linear
        assert float(linear.weight.detach().abs().max()) <= hidden_bound
        assert float(linear.weight.detach().abs().max()) > 0.9 * hidden_bound
    assert isinstance(layers[-1], nn.Linear) == outermost_linear


def test_siren_hidden_activations_keep_the_arcsine_distribution() -> None:
    """Sitzmann's init keeps every sine layer's output std at 1/sqrt(2) with depth."""
    torch.manual_seed(0)
    net = Siren(3, 256, 4, 2)
    h = torch.rand(4096, 3) * 2 - 1
    with torch.no_grad():
        for layer in list(net.net)[:-1]:
            h = layer(h)
            assert float(h.std()) == pytest.approx(1 / math.sqrt(2), abs=0.03)


# ---------------------------------------------------------- shapes, backward, parameters
def _random_loss(out: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient reaches every output element with a random weight."""
    gen = torch.Generator().manual_seed(1)
    return (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum()


ModuleCase = tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]], tuple[int, ...]]

MODULE_CASES: dict[str, ModuleCase] = {
    "sine-layer": (lambda: SineLayer(3, 8), lambda: (torch.rand(4, 5, 3),), (4, 5, 8)),
    "siren-linear-out": (lambda: Siren(4, 16, 2, 6), lambda: (torch.rand(9, 4),), (9, 6)),
    "siren-sine-out": (
        lambda: Siren(4, 16, 0, 6, outermost_linear=False),
        lambda: (torch.rand(2, 9, 4),),
        (2, 9, 6),
    ),
    "environment": (
        lambda: EnvironmentEncoder(10, n_features=3, hidden=8),
        lambda: (torch.randn(5, 4, 3),),
        (5, 10),
    ),
    "environment-2-layers": (
        lambda: EnvironmentEncoder(6, n_features=2, hidden=4, num_layers=2),
        lambda: (torch.randn(3, 7, 2),),
        (3, 6),
    ),
    "convlstm-cell": (
        lambda: ConvLSTMCell(2, 4),
        lambda: (torch.randn(2, 2, H, W), (torch.randn(2, 4, H, W), torch.randn(2, 4, H, W))),
        (2, 4, H, W),
    ),
    "convlstm": (lambda: ConvLSTM(1, 4), lambda: (torch.randn(2, 3, 1, H, W),), (2, 4, H, W)),
    "convlstm-2-layers-k5": (
        lambda: ConvLSTM(2, 3, num_layers=2, kernel_size=5),
        lambda: (torch.randn(1, 3, 2, H, W),),
        (1, 3, H, W),
    ),
    "direction-head-k3": (
        lambda: DirectionHead(4),
        lambda: (torch.randn(2, 4, H, W), torch.randn(2, 2, H, W), torch.tensor([0.0, 2.0])),
        (2, 2, H, W),
    ),
    "direction-head-k1": (
        lambda: DirectionHead(4, kernel_size=1),
        lambda: (torch.randn(2, 4, H, W), torch.randn(2, 2, H, W), torch.tensor([0.0, 2.0])),
        (2, 2, H, W),
    ),
}


def _first(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("case", list(MODULE_CASES), ids=list(MODULE_CASES))
def test_module_shape_backward_and_no_unused_parameters(case: str) -> None:
    build, make_inputs, shape = MODULE_CASES[case]
    torch.manual_seed(0)
    module = build()
    out = _first(module(*make_inputs()))
    assert out.shape == shape
    _random_loss(out).backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    "case",
    ["siren-linear-out", "convlstm", "convlstm-2-layers-k5", "direction-head-k3"],
)
def test_every_parameter_gets_a_nonzero_gradient(case: str) -> None:
    build, make_inputs, _ = MODULE_CASES[case]
    torch.manual_seed(0)
    module = build()
    _random_loss(_first(module(*make_inputs()))).backward()
    for name, p in module.named_parameters():
        assert float(p.grad.abs().sum()) > 0, f"{name} has an all-zero gradient"


def test_zero_initialised_environment_path_trains_after_one_step() -> None:
    """beta starts at zero (no gradient reaches the LSTM); one step later it does."""
    torch.manual_seed(0)
    enc = EnvironmentEncoder(6, hidden=5)
    history = torch.randn(4, 3, 4)
    assert torch.equal(enc(history), torch.zeros(4, 6))
    assert enc.encode(history).shape == (4, 5)
    for _ in range(2):  # plain gradient descent steps
        enc.zero_grad()
        _random_loss(enc(history)).backward()
        with torch.no_grad():
            for p in enc.parameters():
                p -= 0.1 * p.grad
    for name, p in enc.named_parameters():
        assert float(p.grad.abs().sum()) > 0, name
    with torch.no_grad():
        assert float(enc(history).abs().max()) > 0


# ------------------------------------------------------------------ space-weather drivers
@given(
    before=st.floats(0.0, 9.0), after=st.floats(0.0, 9.0), onset=st.integers(1, 20),
)
def test_kp_memory_is_the_exact_step_response(before: float, after: float, onset: int) -> None:
    """A Kp step relaxes as after + (before - after) * 0.7 ** (hours / 3)."""
    kp = np.r_[np.full(onset, before), np.full(40, after)]
    hours = np.arange(1, 41)
    expected = after + (before - after) * KP_MEMORY_DECAY_PER_SLOT ** (hours / 3.0)
    memory = kp_memory(kp)
    np.testing.assert_allclose(memory[:onset], before, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(memory[onset:], expected, rtol=1e-12, atol=1e-12)


def test_kp_memory_is_causal_and_weights_sum_to_one() -> None:
    """Changing a later Kp leaves earlier memory alone; a constant Kp is its own memory."""
    rng = np.random.default_rng(3)
    kp = rng.uniform(0.0, 9.0, 48)
    changed = kp.copy()
    changed[30:] += 2.0
    np.testing.assert_array_equal(kp_memory(changed)[:30], kp_memory(kp)[:30])
    assert not np.allclose(kp_memory(changed)[30:], kp_memory(kp)[30:])
    np.testing.assert_allclose(kp_memory(np.full(10, 4.333)), 4.333, rtol=1e-12)


def test_driver_features_are_normalised_columns() -> None:
    kp = np.array([0.0, 9.0, 9.0, 3.0])
    features = driver_features(kp, np.full(4, 250.0), np.full(4, 50.0))
    assert features.dtype == np.float32 and features.shape == (4, 4)
    np.testing.assert_allclose(features[:, 0], kp / 9.0)
    np.testing.assert_allclose(features[:, 1], kp_memory(kp) / 9.0, rtol=1e-6)
    np.testing.assert_allclose(features[:, 2:], [[1.0, -1.0]] * 4)


# ------------------------------------------------------------------ spherical padding
def test_pad_sphere_wraps_longitude_and_replicates_latitude() -> None:
    x = torch.arange(H * W, dtype=torch.float64).reshape(1, 1, H, W)
    p = pad_sphere(x, 2)[0, 0]
    assert p.shape == (H + 4, W + 4)
    assert torch.equal(p[2:-2, 0], x[0, 0, :, W - 2])
    assert torch.equal(p[2:-2, -1], x[0, 0, :, 1])
    assert torch.equal(p[0, 2:-2], x[0, 0, 0])
    assert torch.equal(p[-1, 2:-2], x[0, 0, -1])


def test_convlstm_feature_at_last_column_reaches_first_column() -> None:
    torch.manual_seed(0)
    net = ConvLSTM(1, 4).double()
    base = torch.zeros(1, 1, 1, H, W, dtype=torch.float64)
    spike = base.clone()
    spike[..., 3, W - 1] = 5.0
    with torch.no_grad():
        diff = (net(spike) - net(base)).abs().sum(dim=(0, 1))  # (H, W)
    assert float(diff[3, 0]) > 1e-3  # wrapped across the antimeridian
    assert float(diff[3, W - 2]) > 1e-3  # the ordinary neighbour
    assert float(diff[:, 2 : W - 2].abs().max()) == 0.0  # a 3x3 kernel reaches 1 cell
    assert float(diff[0].max()) == 0.0 and float(diff[-1].max()) == 0.0  # no lat wrap


@pytest.mark.parametrize("shift", [1, 5, W - 1], ids=lambda k: f"roll-{k}")
def test_convlstm_is_equivariant_to_longitude_rolls(shift: int) -> None:
    torch.manual_seed(0)
    net = ConvLSTM(1, 4, num_layers=2).double()
    x = torch.randn(2, 3, 1, H, W, dtype=torch.float64)
    with torch.no_grad():
        rolled_out = net(x.roll(shift, dims=-1))
        out_rolled = net(x).roll(shift, dims=-1)
    np.testing.assert_allclose(rolled_out.numpy(), out_rolled.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [0, 2, 4], ids=lambda k: f"k={k}")
def test_even_kernel_sizes_are_refused(kernel_size: int) -> None:
    with pytest.raises(ConfigError, match="odd"):
        ConvLSTM(1, 4, kernel_size=kernel_size)
    with pytest.raises(ConfigError, match="odd"):
        DirectionHead(4, kernel_size=kernel_size)


# --------------------------------------------------------------------- direction head
@pytest.mark.parametrize("kernel_size", [1, 3], ids=lambda k: f"k={k}")
def test_direction_head_starts_exactly_at_the_reference(kernel_size: int) -> None:
    torch.manual_seed(0)
    tec = 20.0 + 10.0 * torch.rand(2, H, W)
    reference = reference_direction(tec, LATS, LONS)
    norms = torch.linalg.vector_norm(reference, dim=1)
    np.testing.assert_allclose(norms.numpy(), 1.0, rtol=1e-6)
    head = DirectionHead(4, kernel_size=kernel_size)
    features = ConvLSTM(1, 4)(tec[:, None, None] / 50.0)
    assert torch.equal(head(features, reference, torch.tensor([0.0, 3.0])), reference)


def test_reference_direction_points_up_the_tec_gradient() -> None:
    lat = torch.as_tensor(LATS)
    tec = (10.0 + lat / 10.0)[:, None].expand(H, W)[None]  # rises to the north
    ref = reference_direction(tec, LATS, LONS)
    np.testing.assert_allclose(ref[0, 0].numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ref[0, 1].numpy(), 0.0, atol=1e-6)


# ------------------------------------------------------------------ direction sampling
def _analytic(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Two smooth periodic channels, shape (..., 2)."""
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.sin(phi) + np.cos(lam), np.cos(phi) * np.sin(2 * lam)], axis=-1)


def _field(n_maps: int = 1) -> torch.Tensor:
    """Maps ``k * analytic`` for k = 1..n_maps on the test grid, shape (n, 2, H, W)."""
    base = _analytic(LATS[:, None], LONS[None, :])  # (H, W, 2)
    maps = np.stack([(k + 1) * base for k in range(n_maps)])
    return torch.from_numpy(maps).permute(0, 3, 1, 2).contiguous()


def _maps(idx: list[int]) -> Cells:
    """Each point reads map ``idx`` (no blend)."""
    idx = np.asarray(idx)
    return Cells(idx, idx, np.zeros(idx.shape))


def _sample(field: torch.Tensor, idx: list[int], lat: list[float], lon: list[float]) -> np.ndarray:
    return sample_direction(field, _maps(idx), np.asarray(lat), np.asarray(lon), LATS,
                            LONS).numpy()


def _bilinear(lat: float, lon: float) -> np.ndarray:
    """Bilinear interpolation of the analytic corner values, computed by hand."""
    r = min(max((lat - LAT0) / DLAT, 0.0), H - 1.0)
    c = ((lon - LON0) % 360.0) / DLON
    r0, c0 = min(int(r), H - 2), int(c)
    tr, tc = r - r0, c - c0
    lat_a, lat_b = LAT0 + r0 * DLAT, LAT0 + (r0 + 1) * DLAT
    lon_a, lon_b = LON0 + c0 * DLON, LON0 + (c0 + 1) * DLON  # lon_b may be +180: same meridian
    return (
        (1 - tr) * (1 - tc) * _analytic(lat_a, lon_a)
        + (1 - tr) * tc * _analytic(lat_a, lon_b)
        + tr * (1 - tc) * _analytic(lat_b, lon_a)
        + tr * tc * _analytic(lat_b, lon_b)
    )


def test_sample_direction_is_exact_at_grid_nodes() -> None:
    lat, lon = np.meshgrid(LATS, LONS, indexing="ij")
    got = _sample(_field(3), [2] * lat.size, lat.ravel().tolist(), lon.ravel().tolist())
    np.testing.assert_allclose(got, 3 * _analytic(lat.ravel(), lon.ravel()), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    lat=st.floats(-90.0, 90.0),
    lon=st.floats(-540.0, 540.0),
    k=st.integers(0, 2),
)
def test_sample_direction_is_bilinear_between_nodes(lat: float, lon: float, k: int) -> None:
    got = _sample(_field(3), [k], [lat], [lon])[0]
    np.testing.assert_allclose(got, (k + 1) * _bilinear(lat, lon), atol=1e-9)


def test_sample_direction_is_continuous_across_the_antimeridian() -> None:
    field = _field()
    eps = 1e-7
    west, east, at = _sample(field, [0, 0, 0], [10.0] * 3, [180.0 - eps, -180.0 + eps, 180.0])
    np.testing.assert_allclose(west, east, atol=1e-6)
    np.testing.assert_allclose(at, _sample(field, [0], [10.0], [-180.0])[0], atol=1e-12)
    # Halfway between the last column (150 E) and the wrapped first one (180 = -180).
    mid = _sample(field, [0], [LATS[3]], [165.0])[0]
    expected = 0.5 * (_analytic(LATS[3], 150.0) + _analytic(LATS[3], -180.0))
    np.testing.assert_allclose(mid, expected, atol=1e-12)


def test_sample_direction_clamps_latitude_and_accepts_descending_rows() -> None:
    field = _field()
    beyond = _sample(field, [0, 0], [90.0, -90.0], [20.0, 20.0])
    edges = _sample(field, [0, 0], [LATS[-1], LATS[0]], [20.0, 20.0])
    np.testing.assert_allclose(beyond, edges, atol=1e-12)
    lat, lon = np.array([12.3, -61.0]), np.array([-170.0, 95.5])
    descending = sample_direction(field.flip(-2), _maps([0, 0]), lat, lon, LATS[::-1], LONS)
    ascending = sample_direction(field, _maps([0, 0]), lat, lon, LATS, LONS)
    np.testing.assert_allclose(descending.numpy(), ascending.numpy(), atol=1e-6)


def test_sample_direction_backpropagates_into_the_field() -> None:
    field = _field(2).requires_grad_()
    out = sample_direction(field, _maps([1, 0, 1]), np.array([0.0, 30.0, -20.0]),
                           np.array([0.0, 100.0, 179.0]), LATS, LONS)
    out.sum().backward()
    assert field.grad is not None and float(field.grad[0].abs().sum()) > 0
    assert float(field.grad[1].abs().sum()) > 0


@pytest.mark.parametrize(
    ("dlon", "dlat", "match"),
    [
        pytest.param(5.0, DLAT, "close the globe", id="ionex-73-columns-spacing"),
        pytest.param(DLON, 0.0, "dlat", id="zero-dlat"),
    ],
)
def test_sample_direction_rejects_a_wrong_grid(dlon: float, dlat: float, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sample_direction(_field(), _maps([0]), np.array([0.0]), np.array([0.0]),
                         LAT0 + dlat * np.arange(H), LON0 + dlon * np.arange(W))


# -- magnetic inputs -------------------------------------------------------------------------

NET = dict(basis_dim=8, siren_hidden=16, siren_layers=1, use_env=False)
#: Points near the dip equator, in the auroral zone and elsewhere (lat, lon, alt, UT).
POINTS = [[-11.95, -76.87, 300.0, 3.0], [67.0, 20.0, 250.0, 22.5], [30.0, 120.0, 450.0, 8.0]]


def _magnetic_network() -> RSTMRFNetwork:
    torch.manual_seed(0)
    net = RSTMRFNetwork(**NET, magnetic_inputs=True).double()
    epoch = np.datetime64("2020-01-01")
    net.set_magnetic_field(torch.tensor(modip_table(epoch)), torch.tensor(dipole_axis(epoch)))
    return net


def _lat_gradient(net: RSTMRFNetwork, code: torch.Tensor) -> torch.Tensor:
    coords = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    residual, *_ = net(coords, code)
    (grad,) = torch.autograd.grad(residual.sum(), coords)
    return grad[:, 0]


@pytest.mark.parametrize("magnetic", [False, True], ids=["geographic", "magnetic"])
def test_network_input_width_follows_magnetic_inputs(magnetic: bool) -> None:
    net = RSTMRFNetwork(**NET, magnetic_inputs=magnetic)
    width = SPATIAL_FEATURES + (MAGNETIC_FEATURES if magnetic else 0)
    assert net.spatial.net[0].linear.in_features == width
    assert ("modip_table" in net.state_dict()) is magnetic
    assert ("dipole_axis" in net.state_dict()) is magnetic


def test_geographic_network_is_unchanged_by_the_option() -> None:
    """Off, the network draws and holds exactly what it did before the option existed."""
    torch.manual_seed(0)
    default = RSTMRFNetwork(**NET)
    torch.manual_seed(0)
    off = RSTMRFNetwork(**NET, magnetic_inputs=False)
    assert default.state_dict().keys() == off.state_dict().keys()
    for name, value in default.state_dict().items():
        torch.testing.assert_close(off.state_dict()[name], value, equal_nan=True)


def test_magnetic_inputs_change_the_latitude_gradient_and_only_through_their_columns() -> None:
    """Zeroing the magnetic columns of the first layer gives the geographic network."""
    net = _magnetic_network()
    code = torch.randn(1, NET["basis_dim"], dtype=torch.float64)
    with_magnetic = _lat_gradient(net, code)
    geographic = RSTMRFNetwork(**NET).double()
    state = {k: v for k, v in net.state_dict().items() if k not in ("modip_table", "dipole_axis")}
    first = "spatial.net.0.linear.weight"
    state[first] = state[first][:, :SPATIAL_FEATURES]
    geographic.load_state_dict(state)
    with torch.no_grad():
        net.spatial.net[0].linear.weight[:, SPATIAL_FEATURES:] = 0.0
    coords = torch.tensor(POINTS, dtype=torch.float64)
    for a, b in zip(net(coords, code), geographic(coords, code), strict=True):
        torch.testing.assert_close(a, b)
    without = _lat_gradient(net, code)
    torch.testing.assert_close(without, _lat_gradient(geographic, code))
    assert torch.isfinite(with_magnetic).all()
    assert float((with_magnetic - without).abs().max()) > 1e-3 * float(without.abs().max())


def test_physics_loss_derivatives_flow_through_the_magnetic_inputs() -> None:
    """Second altitude derivative (Chapman) and a loss on the horizontal gradient (TEC
    direction) backpropagate to the magnetic columns of the first layer."""
    net = _magnetic_network()
    code = torch.randn(1, NET["basis_dim"], dtype=torch.float64)
    coords = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    residual, *_ = net(coords, code)
    (grad,) = torch.autograd.grad(residual.sum(), coords, create_graph=True)
    (curvature,) = torch.autograd.grad(grad[:, 2].sum(), coords, create_graph=True)
    loss = (curvature[:, 2] ** 2).sum() + (1.0 - torch.cosine_similarity(
        grad[:, :2], torch.ones_like(grad[:, :2]), dim=-1)).sum()
    loss.backward()
    magnetic_grad = net.spatial.net[0].linear.weight.grad[:, SPATIAL_FEATURES:]
    assert torch.isfinite(magnetic_grad).all() and float(magnetic_grad.abs().sum()) > 0


# ------------------------------------------------------------------------ profile shift
def test_the_profile_shift_output_is_bounded_and_zero_without_the_option() -> None:
    torch.manual_seed(0)
    coords = torch.tensor(POINTS)
    code = torch.zeros(1, NET["basis_dim"])
    plain = RSTMRFNetwork(**NET)
    assert plain.decoder[-1].out_features == 2
    assert torch.equal(plain(coords, code)[2], torch.zeros(3))
    net = RSTMRFNetwork(**NET, profile_shift=True)
    assert net.decoder[-1].out_features == 3
    with torch.no_grad():
        _, _, shift = net(coords, code)
    assert float(shift.abs().max()) < 0.05 * MAX_SHIFT_KM  # a fresh network: about none
    assert float(shift.abs().max()) > 0.0
    with torch.no_grad():
        net.decoder[-1].bias[2] = 50.0
        _, _, shift = net(coords, code)
    torch.testing.assert_close(shift, torch.full((3,), MAX_SHIFT_KM))

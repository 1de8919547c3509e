"""Magnetic coordinates: IGRF tables, modip, magnetic local time, and their use in the model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import ppigrf
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ionofield.config import FitConfig
from ionofield.errors import ConfigError, CoverageError
from ionofield.magnetic import (
    DEFAULT_MAGNETIC_EPOCH,
    MODIP_ALT_KM,
    MODIP_TABLE_SHAPE,
    dipole_axis,
    modip,
    modip_table,
)
from ionofield.model import RSTMRF, load_model
from ionofield.nn.model import magnetic_features, modip_at, spatial_features

EPOCH = np.datetime64("2020-01-01")
#: WGS-84 first eccentricity squared.
WGS84_E2 = 6.69437999014e-3
SMALL = dict(basis_dim=8, siren_hidden=16, siren_layers=1, use_env=False)


def _unit(lat_deg: float, lon_deg: float) -> torch.Tensor:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    return torch.tensor([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon),
                         math.sin(lat)], dtype=torch.float64)


def _mlt_hours(coords: torch.Tensor, axis: torch.Tensor) -> np.ndarray:
    """MLT (hours) of points from the features' (sin, cos) vector."""
    table = torch.zeros(MODIP_TABLE_SHAPE, dtype=coords.dtype)
    position = spatial_features(coords)[:, :3]
    feats = magnetic_features(coords, position, table, axis)
    angle = torch.atan2(feats[:, 1], feats[:, 2]).numpy()
    return np.mod(angle * 12.0 / math.pi, 24.0)


def _coords(points: list[tuple[float, float]], ut: float) -> torch.Tensor:
    return torch.tensor([[lat, lon, 300.0, ut] for lat, lon in points], dtype=torch.float64)


# -- the IGRF frame -----------------------------------------------------------------------

def test_dipole_pole_of_2020_is_the_published_geomagnetic_pole() -> None:
    """IGRF 2020 centred-dipole north pole: 80.65 N, 72.68 W (geodetic), to 0.02 deg."""
    x, y, z = dipole_axis(EPOCH)
    geocentric = math.atan2(z, math.hypot(x, y))
    geodetic = math.degrees(math.atan(math.tan(geocentric) / (1.0 - WGS84_E2)))
    assert geodetic == pytest.approx(80.65, abs=0.02)
    assert math.degrees(math.atan2(y, x)) == pytest.approx(-72.68, abs=0.02)
    assert math.hypot(x, y, z) == pytest.approx(1.0)


def test_jicamarca_lies_on_the_dip_equator() -> None:
    """Jicamarca (11.95 S, 76.87 W) was built on the dip equator; it is within 3 deg of it."""
    value = modip_at(torch.tensor(modip_table(EPOCH)), torch.tensor([-11.95]),
                     torch.tensor([-76.87]))
    assert abs(float(value)) < 3.0


def test_modip_is_the_poles_latitude_and_has_the_hemispheres_sign() -> None:
    table = modip_table(EPOCH)
    assert table.shape == MODIP_TABLE_SHAPE
    np.testing.assert_array_equal(table[0], -90.0)
    np.testing.assert_array_equal(table[-1], 90.0)
    lat = np.linspace(-90.0, 90.0, MODIP_TABLE_SHAPE[0])
    assert (table[lat >= 30.0] > 0).all() and (table[lat <= -30.0] < 0).all()
    np.testing.assert_array_equal(table[:, 0], table[:, -1])  # -180 and 180 deg


@pytest.mark.parametrize("lat", [0.0, 20.0, 45.0, 70.0], ids=lambda v: f"lat={v:g}")
def test_modip_of_an_axial_dipole(lat: float) -> None:
    """Axial dipole: tan I = 2 tan lat; modip = atan(I / sqrt(cos lat)), odd in latitude."""
    dip = math.atan(2.0 * math.tan(math.radians(lat)))
    expected = math.degrees(math.atan(dip / math.sqrt(math.cos(math.radians(lat)))))
    values = modip(np.degrees([dip, -dip]), np.array([lat, -lat]))
    np.testing.assert_allclose(values, [expected, -expected], atol=1e-12)


def test_interpolated_table_matches_the_igrf_between_its_nodes() -> None:
    """Off the nodes, the bilinear table is within 0.5 deg of modip from the IGRF's own dip."""
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-80.0, 80.0, 300), rng.uniform(-180.0, 180.0, 300)
    east, north, up = (b[0] for b in ppigrf.igrf(lon, lat, MODIP_ALT_KM, pd.Timestamp(EPOCH)))
    dip = np.degrees(np.arctan2(-up, np.hypot(east, north)))
    table = modip_at(torch.tensor(modip_table(EPOCH), dtype=torch.float64),
                     torch.tensor(lat), torch.tensor(lon))
    np.testing.assert_allclose(table.numpy(), modip(dip, lat), atol=0.5)


def test_epochs_outside_the_igrf_are_refused() -> None:
    with pytest.raises(CoverageError, match="IGRF"):
        modip_table(np.datetime64("1850-01-01"))
    with pytest.raises(CoverageError, match="IGRF"):
        dipole_axis(np.datetime64("2040-01-01"))


# -- interpolation ---------------------------------------------------------------------------

def test_modip_at_is_exact_at_nodes_and_periodic_in_longitude() -> None:
    table = torch.tensor(modip_table(EPOCH), dtype=torch.float64)
    n_lat, n_lon = MODIP_TABLE_SHAPE
    rows, cols = torch.tensor([3, 90, 177]), torch.tensor([0, 47, 180])
    lat = -90.0 + rows * 180.0 / (n_lat - 1)
    lon = -180.0 + cols * 360.0 / (n_lon - 1)
    torch.testing.assert_close(modip_at(table, lat.double(), lon.double()), table[rows, cols])
    lon_any = torch.tensor([-179.0, 181.0, 541.0], dtype=torch.float64)
    values = modip_at(table, torch.full((3,), 12.3, dtype=torch.float64), lon_any)
    torch.testing.assert_close(values, values[:1].expand(3))


def test_modip_at_gradient_is_the_cells_slope() -> None:
    table = torch.zeros(MODIP_TABLE_SHAPE, dtype=torch.float64)
    table[91, 90] = 1.0  # 1 deg N, 0 deg E
    lat = torch.tensor([0.25], dtype=torch.float64, requires_grad=True)
    lon = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    value = modip_at(table, lat, lon)
    (d_lat, d_lon) = torch.autograd.grad(value.sum(), (lat, lon))
    # bilinear in the cell [0, 1] deg x [0, 2] deg: value = ty * (1 - tx)
    assert float(value.detach()) == pytest.approx(0.25 * 0.75)
    assert float(d_lat) == pytest.approx(0.75)
    assert float(d_lon) == pytest.approx(-0.25 / 2.0)


# -- magnetic local time ---------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(
    ut=st.floats(0.0, 23.99),
    mlat=st.floats(-80.0, 80.0),
    hours=st.integers(-11, 11),
)
def test_mlt_is_noon_on_the_mean_suns_magnetic_meridian(ut: float, mlat: float,
                                                         hours: int) -> None:
    """Along the magnetic meridian of the subsolar point MLT is 12; 15 deg east, 13."""
    axis = torch.tensor(dipole_axis(EPOCH))
    sun_lon = math.radians(180.0 - 15.0 * ut)
    sun = torch.tensor([math.cos(sun_lon), math.sin(sun_lon), 0.0], dtype=torch.float64)
    noon = sun - (sun @ axis) * axis
    noon /= noon.norm()
    east = torch.linalg.cross(axis, noon)
    turn, lat = math.radians(15.0 * hours), math.radians(mlat)
    point = math.cos(lat) * (math.cos(turn) * noon + math.sin(turn) * east) + math.sin(lat) * axis
    geo_lat = math.degrees(math.asin(float(point[2])))
    geo_lon = math.degrees(math.atan2(float(point[1]), float(point[0])))
    mlt = _mlt_hours(_coords([(geo_lat, geo_lon)], ut), axis)[0]
    assert (mlt - (12.0 + hours) + 12.0) % 24.0 - 12.0 == pytest.approx(0.0, abs=1e-6)


def test_mlt_of_an_axial_dipole_is_local_mean_time() -> None:
    """With the dipole on the rotation axis the MLT code is the local-time code."""
    rng = np.random.default_rng(1)
    coords = torch.tensor(np.c_[rng.uniform(-89, 89, 50), rng.uniform(-180, 180, 50),
                                np.full(50, 300.0), rng.uniform(0, 24, 50)])
    geographic = spatial_features(coords)
    feats = magnetic_features(coords, geographic[:, :3], torch.zeros(MODIP_TABLE_SHAPE,
                              dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0],
                              dtype=torch.float64))
    torch.testing.assert_close(feats[:, 1:], geographic[:, 4:6])


# -- the model -------------------------------------------------------------------------------

def test_fresh_model_reads_the_default_epoch_and_set_epoch_changes_it() -> None:
    model = RSTMRF(FitConfig(**SMALL, magnetic_inputs=True))
    assert model.info["magnetic_epoch"] == str(DEFAULT_MAGNETIC_EPOCH.astype("datetime64[D]"))
    np.testing.assert_array_equal(model.modip_table.numpy(), modip_table(DEFAULT_MAGNETIC_EPOCH))
    model.set_magnetic_epoch("2015-06-01T13:00")
    assert model.info["magnetic_epoch"] == "2015-06-01"
    np.testing.assert_allclose(model.dipole_axis.numpy(), dipole_axis(np.datetime64("2015-06-01")),
                               rtol=1e-6)
    assert not np.array_equal(model.modip_table.numpy(), modip_table(DEFAULT_MAGNETIC_EPOCH))


def test_set_magnetic_epoch_needs_magnetic_inputs() -> None:
    with pytest.raises(ConfigError, match="magnetic_inputs"):
        RSTMRF(FitConfig(**SMALL)).set_magnetic_epoch("2020-01-01")


def test_save_load_round_trip_keeps_the_magnetic_frame(tmp_path) -> None:
    torch.manual_seed(0)
    model = RSTMRF(FitConfig(**SMALL, magnetic_inputs=True))
    model.set_magnetic_epoch("2003-10-29")
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = load_model(path)
    assert loaded.info["magnetic_epoch"] == "2003-10-29"
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, equal_nan=True,
                                   rtol=0, atol=0)
    coords = torch.tensor([[-11.95, -76.87, 300.0, 3.0], [65.0, 20.0, 250.0, 22.5]])
    code = torch.randn(1, SMALL["basis_dim"])
    for a, b in zip(model.eval()(coords, code), loaded(coords, code), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

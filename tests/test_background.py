from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import ionofield.iri as iri_module
from ionofield.background import IRI_F107, NE_FLOOR, BackgroundField, campaign_background
from ionofield.config import FitConfig
from ionofield.errors import (
    CalendarError,
    CoverageError,
    ManyProblemsError,
    TimeOrderError,
    UnitsError,
)
from ionofield.iri import iri_cube

T0 = np.datetime64("2024-05-11T00:00", "ns")
TIMES = pd.date_range("2024-05-11", periods=4, freq="h")
ALT = np.array([100.0, 150.0, 250.0, 400.0, 700.0, 1000.0])  # irregular: the search path
LAT = np.arange(-87.5, 87.6, 17.5)
LON = np.arange(-180.0, 180.0, 30.0)


def background(log10_ne, *, times=TIMES, alt=ALT, lat=LAT, lon=LON) -> xr.DataArray:
    """Background DataArray with Ne = 10**log10_ne(hours, alt, lat, lon) on the grid."""
    hours = (np.asarray(times, dtype="datetime64[ns]") - T0) / np.timedelta64(1, "h")
    values = log10_ne(*np.meshgrid(hours, alt, lat, lon, indexing="ij"))
    return xr.DataArray(
        10.0**values,
        coords={"time": times, "alt": alt, "lat": lat, "lon": lon},
        dims=("time", "alt", "lat", "lon"),
        name="ne_background",
        attrs={"units": "m-3"},
    )


def random_background(seed: int, **grid) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    return background(lambda t, *_: rng.uniform(9.0, 12.5, t.shape), **grid)


def hours_to_time(hours):
    return T0 + (np.asarray(hours) * 3.6e12).astype("timedelta64[ns]")


# --- interpolation -------------------------------------------------------------------


def test_exact_at_grid_nodes():
    da = random_background(1)
    field = BackgroundField(da)
    got = field.log10_at(
        TIMES.values[:, None, None, None],
        ALT[None, :, None, None],
        LAT[None, None, :, None],
        LON[None, None, None, :],
    )
    assert got.shape == da.shape
    np.testing.assert_allclose(got, np.log10(da.values), rtol=0, atol=2e-6)


def _chapman_field() -> BackgroundField:
    """An alpha-Chapman layer (peak 300 km, scale height 60 km) on a 2 km grid."""

    def chapman(t, alt, lat, lon):
        z = (alt - 300.0) / 60.0
        return 11.5 + 0.1 * np.cos(np.radians(lat)) + 0.5 * (1.0 - z - np.exp(-z)) / np.log(10.0)

    return BackgroundField(background(chapman, alt=np.arange(100.0, 600.1, 2.0)))


def test_vertical_slope_of_a_chapman_layer():
    """Against the analytic slope; within a step of the ends, one-sided."""
    field = _chapman_field()
    alt = np.array([150.0, 201.0, 255.5, 300.0, 347.0, 480.0])
    z = (alt - 300.0) / 60.0
    np.testing.assert_allclose(field.vertical_slope(TIMES[1], alt, 10.0, -40.0),
                               0.5 * (np.exp(-z) - 1.0) / (60.0 * np.log(10.0)),
                               rtol=0.02, atol=2e-5)
    at_ends = field.vertical_slope(TIMES[1], np.array([100.0, 600.0]), 10.0, -40.0)
    one_sided = [field.log10_at(TIMES[1], 110.0, 10.0, -40.0)
                 - field.log10_at(TIMES[1], 100.0, 10.0, -40.0),
                 field.log10_at(TIMES[1], 600.0, 10.0, -40.0)
                 - field.log10_at(TIMES[1], 590.0, 10.0, -40.0)]
    np.testing.assert_allclose(at_ends, np.array(one_sided) / 10.0, rtol=1e-12)


def test_a_raised_background_is_the_background_lower_down():
    """Raising by s gives the value s lower (held at the ends); the points as given are
    checked, not the lowered ones."""
    field = _chapman_field()
    alt = np.array([150.0, 300.0, 450.0, 590.0])
    rise = np.array([30.0, -25.0, 80.0, -40.0])
    np.testing.assert_allclose(field.raised(TIMES[1], alt, 10.0, -40.0, rise),
                               field.log10_at(TIMES[1], np.minimum(alt - rise, 600.0), 10.0,
                                              -40.0), rtol=0, atol=1e-12)
    assert field.raised(TIMES[1], 120.0, 10.0, -40.0, 80.0) == field.log10_at(TIMES[1], 100.0,
                                                                              10.0, -40.0)
    peak = field.log10_at(TIMES[1], 300.0, 10.0, -40.0)
    assert field.raised(TIMES[1], 340.0, 10.0, -40.0, 40.0) == pytest.approx(peak, abs=1e-12)
    with pytest.raises(CoverageError, match="alt"):
        field.raised(TIMES[1], 620.0, 10.0, -40.0, 30.0)


def test_the_raised_slope_is_the_change_of_the_raised_background_with_the_rise():
    """Against the analytic Chapman slope at the lowered altitude, and 0 where held."""
    field = _chapman_field()
    alt = np.array([180.0, 300.0, 420.0])
    rise = np.array([30.0, -25.0, 60.0])
    z = (alt - rise - 300.0) / 60.0
    np.testing.assert_allclose(field.raised_slope(TIMES[1], alt, 10.0, -40.0, rise),
                               -0.5 * (np.exp(-z) - 1.0) / (60.0 * np.log(10.0)),
                               rtol=0.02, atol=2e-5)
    # lowered below the field's 100 km or above its 600 km: the value is held there
    held = field.raised_slope(TIMES[1], np.array([150.0, 560.0]), 10.0, -40.0,
                              np.array([70.0, -60.0]))
    np.testing.assert_array_equal(held, [0.0, 0.0])


def test_scattered_and_grid_inputs_agree():
    field = BackgroundField(random_background(2))
    t = TIMES.values[:2] + np.timedelta64(20, "m")
    alt, lat, lon = np.array([120.0, 333.0]), np.array([-89.0, 3.0, 45.0]), np.array([170.0, -7.0])
    grid = field.log10_at(t[:, None, None, None], alt[:, None, None], lat[:, None], lon)
    mesh = np.meshgrid(t, alt, lat, lon, indexing="ij")
    scattered = field.log10_at(*(m.ravel() for m in mesh)).reshape(grid.shape)
    np.testing.assert_array_equal(grid, scattered)


@settings(max_examples=25, deadline=None)
@given(
    coef=st.tuples(*[st.floats(-1e-2, 1e-2)] * 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_exact_for_field_linear_in_each_coordinate(coef, seed):
    a, b, c, d = coef

    def linear(t, alt, lat, lon):
        return 10.5 + a * t + b * alt / 100 + c * lat + d * lon

    field = BackgroundField(background(linear))
    rng = np.random.default_rng(seed)
    n = 50
    hours = rng.uniform(0, 3, n)
    alt, lat = rng.uniform(ALT[0], ALT[-1], n), rng.uniform(LAT[0], LAT[-1], n)
    lon = rng.uniform(LON[0], LON[-1], n)  # within one period: the seam cell is not linear
    got = field.log10_at(hours_to_time(hours), alt, lat, lon)
    np.testing.assert_allclose(got, linear(hours, alt, lat, lon), rtol=0, atol=1e-5)


def test_lon_is_periodic():
    field = BackgroundField(random_background(3))
    t, alt, lat = TIMES.values[1], 321.0, 12.3
    at = [field.log10_at(t, alt, lat, lon) for lon in (-180.0, 180.0, 540.0, -540.0)]
    assert at[0] == at[1] == at[2] == at[3]
    np.testing.assert_allclose(
        field.log10_at(t, alt, lat, np.array([17.0, 377.0, -343.0])),
        field.log10_at(t, alt, lat, 17.0),
        atol=1e-12,
    )


def test_seam_cell_interpolates_linearly_between_last_and_first_column():
    lon = np.arange(-177.5, 180.0, 5.0)  # the seam falls inside a cell
    field = BackgroundField(random_background(4, lon=lon))
    t, alt, lat = TIMES.values[2], 250.0, LAT[3]
    west, east = field.log10_at(t, alt, lat, np.array([177.5, -177.5]))
    np.testing.assert_allclose(field.log10_at(t, alt, lat, 180.0), (west + east) / 2, atol=1e-12)
    np.testing.assert_allclose(field.log10_at(t, alt, lat, 178.75), 0.75 * west + 0.25 * east)


@pytest.mark.parametrize(
    "lon",
    [np.arange(-180.0, 180.1, 30.0), np.arange(0.0, 360.0, 30.0)],
    ids=["both-180-and-180", "0-to-360"],
)
def test_lon_grid_conventions_give_the_same_field(lon):
    def periodic(t, alt, lat, x):
        return 11.0 + 0.3 * np.sin(np.radians(x)) + 0.1 * np.cos(np.radians(lat)) + 0.01 * t

    reference = BackgroundField(background(periodic))
    field = BackgroundField(background(periodic, lon=lon))
    assert field.lon.size == 12
    rng = np.random.default_rng(5)
    points = (
        hours_to_time(rng.uniform(0, 3, 200)),
        rng.uniform(100, 1000, 200),
        rng.uniform(-90, 90, 200),
        rng.uniform(-400, 400, 200),
    )
    np.testing.assert_allclose(field.log10_at(*points), reference.log10_at(*points), atol=1e-12)


def test_continuous_across_the_antimeridian():
    def periodic(t, alt, lat, x):
        return 11.0 + 0.5 * np.sin(np.radians(x) + 0.3)

    field = BackgroundField(background(periodic))
    eps = 1e-7
    west, east = field.log10_at(TIMES.values[0], 300.0, 0.0, np.array([180.0 - eps, -180.0 + eps]))
    assert abs(west - east) < 1e-6


def test_poles_are_single_valued_and_continuous():
    field = BackgroundField(random_background(6))
    t, alt = TIMES.values[3], 500.0
    lon = np.linspace(-180.0, 180.0, 37)
    for pole, edge in ((90.0, 87.5), (-90.0, -87.5)):
        at_pole = field.log10_at(t, alt, pole, lon)
        edge_row = field.log10_at(t, alt, edge, lon)
        assert np.ptp(at_pole) < 1e-6  # one value at the pole, whatever the longitude
        assert at_pole[0] == pytest.approx(edge_row[:-1].mean(), abs=1e-5)  # zonal mean
        halfway = field.log10_at(t, alt, (pole + edge) / 2, lon)
        np.testing.assert_allclose(halfway, (at_pole + edge_row) / 2, atol=1e-5)


def test_regional_latitudes_are_not_clamped():
    field = BackgroundField(random_background(7, lat=np.arange(-30.0, 31.0, 10.0)))
    field.log10_at(TIMES.values[0], 300.0, 30.0, 0.0)
    with pytest.raises(CoverageError, match=r"lat.*-30\.\.30"):
        field.log10_at(TIMES.values[0], 300.0, 45.0, 0.0)


@pytest.mark.parametrize(
    ("time", "alt", "match"),
    [
        (np.datetime64("2024-05-11T03:30"), 300.0, "time.*2024-05-11T00:00.*2024-05-11T03:00"),
        (np.datetime64("2024-05-10T23:59"), 300.0, "2024-05-10T23:59"),
        (np.datetime64("2024-05-11T01:00"), 1000.01, r"alt.*100\.\.1000 km"),
        (np.datetime64("2024-05-11T01:00"), 99.0, "alt"),
        (np.datetime64("2024-05-11T01:00"), np.nan, "alt"),
        (np.datetime64("NaT"), 300.0, "time"),
    ],
    ids=["time-after", "time-before", "alt-above", "alt-below", "alt-nan", "time-nat"],
)
def test_outside_the_cube_raises(time, alt, match):
    field = BackgroundField(random_background(8))
    with pytest.raises(CoverageError, match=match):
        field.log10_at(np.array([TIMES.values[0], time]), np.array([300.0, alt]), 0.0, 0.0)


def test_alt_tolerance_and_single_time_cube():
    field = BackgroundField(random_background(9, times=TIMES[:1]))
    top = field.log10_at(TIMES.values[0], 1000.0, 0.0, 0.0)
    assert field.log10_at(TIMES.values[0], 1000.0 + 5e-7, 0.0, 0.0) == top
    with pytest.raises(CoverageError, match="time"):
        field.log10_at(TIMES.values[0] + np.timedelta64(1, "m"), 1000.0, 0.0, 0.0)


def test_cftime_query_times_equal_datetime64():
    field = BackgroundField(random_background(10))
    when = np.array(
        [cftime.DatetimeGregorian(2024, 5, 11, 1, 40), cftime.DatetimeGregorian(2024, 5, 11, 2, 5)]
    )
    same = np.array(["2024-05-11T01:40", "2024-05-11T02:05"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(
        field.log10_at(when, 300.0, 5.0, 5.0), field.log10_at(same, 300.0, 5.0, 5.0)
    )


def test_cftime_background_coordinate_equals_datetime64():
    da = random_background(18)
    cf_times = [cftime.DatetimeProlepticGregorian(2024, 5, 11, h) for h in range(4)]
    field = BackgroundField(da.assign_coords(time=cf_times))
    when = np.datetime64("2024-05-11T02:30")
    assert field.log10_at(when, 300.0, 1.0, 2.0) == BackgroundField(da).log10_at(
        when, 300.0, 1.0, 2.0
    )


def test_background_in_a_model_calendar_is_refused():
    """A 'noleap' time axis is not real days (2024-05-11 noleap is not 2024-05-11)."""
    da = random_background(18)
    cf_times = [cftime.DatetimeNoLeap(2024, 5, 11, h) for h in range(4)]
    with pytest.raises(CalendarError, match=r"'noleap' calendar.*convert_calendar"):
        BackgroundField(da.assign_coords(time=cf_times))


def test_floor_applies_before_log10():
    da = random_background(11)
    da[0, 0, 0, 0] = 0.0
    da[0, 0, 0, 1] = -5.0
    field = BackgroundField(da)
    got = field.log10_at(TIMES.values[0], ALT[0], LAT[0], LON[:2])
    np.testing.assert_allclose(got, np.log10(NE_FLOOR))


# --- user-supplied backgrounds -------------------------------------------------------


def test_user_dataset_in_any_dim_order_and_coordinate_order():
    da = random_background(12)
    ds = xr.Dataset({"ne_background": da, "other": da.isel(alt=0)})
    shuffled = da.transpose("lon", "lat", "time", "alt").isel(lat=slice(None, None, -1))
    reference = BackgroundField(ds)
    rng = np.random.default_rng(13)
    points = (
        hours_to_time(rng.uniform(0, 3, 100)),
        rng.uniform(100, 1000, 100),
        rng.uniform(-90, 90, 100),
        rng.uniform(-180, 180, 100),
    )
    np.testing.assert_array_equal(
        BackgroundField(shuffled).log10_at(*points), reference.log10_at(*points)
    )
    named = BackgroundField(ds.rename(ne_background="ne_iri"), name="ne_iri")
    np.testing.assert_array_equal(named.log10_at(*points), reference.log10_at(*points))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda da: da.rename(alt="height"), "dims"),
        (lambda da: da.assign_attrs(units="cm-3") / 1e6, "units"),
        (lambda da: da.assign_attrs(units=None), "units"),
        (lambda da: da.assign_coords(alt=da.alt * 1000.0), "metres"),
        (lambda da: da.isel(lon=slice(0, 6)), "round the globe"),
        (lambda da: da.where(da.alt < 900), "NaN"),
        (lambda da: da.drop_vars("lat"), "coordinate"),
        (lambda da: (da / 1e6).assign_attrs(units="m-3"), "el/cm3"),
        (lambda da: da.isel(time=[0, 1, 1, 2]), "duplicate"),
    ],
    ids=[
        "dims",
        "cm-3",
        "no-units",
        "alt-metres",
        "regional-lon",
        "nan",
        "no-coord",
        "tiny",
        "duplicate-time",
    ],
)
def test_bad_user_background_raises(change, match):
    da = change(random_background(14))
    with pytest.raises(ManyProblemsError, match=match):
        BackgroundField(da)


def test_problems_are_reported_together():
    da = random_background(15)
    da = da.assign_coords(alt=da.alt * 1000.0).isel(lon=slice(0, 3)).assign_attrs(units="m-3")
    with pytest.raises(ManyProblemsError) as info:
        BackgroundField(da)
    assert len(info.value.problems) == 2


def test_dataset_without_the_variable_raises():
    with pytest.raises(ManyProblemsError, match="name="):
        BackgroundField(xr.Dataset({"ne": random_background(16)}))


# --- IRI cube (PyIRI) ----------------------------------------------------------------

IRI_TIME = pd.to_datetime(["2024-03-20T12:00"])  # 12 UT: noon at lon 0, 04 LT at lon -120
IRI_ALT = np.arange(100.0, 1001.0, 50.0)
IRI_LAT = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
IRI_LON = np.arange(-180.0, 180.1, 60.0)


def assert_same_cube(a: xr.Dataset, b: xr.Dataset) -> None:
    """Identical but for ``history``, which dates the assembly of each cube."""
    xr.testing.assert_identical(a.assign_attrs(history=""), b.assign_attrs(history=""))


@pytest.fixture(scope="module")
def iri(tmp_path_factory):
    cache = tmp_path_factory.mktemp("iri")
    return iri_cube(IRI_TIME, IRI_ALT, IRI_LAT, IRI_LON, f107=150.0, cache_dir=cache), cache


def test_pyiri_in_latitude_bands_equals_one_call(iri, tmp_path, monkeypatch):

    cube, _ = iri
    monkeypatch.setattr(iri_module, "PYIRI_VALUES_PER_CALL", 1)  # one row per call
    banded = iri_cube(IRI_TIME, IRI_ALT, IRI_LAT, IRI_LON, f107=150.0, cache_dir=tmp_path)
    # PyIRI 0.1.7's F1 region (near 150 km) is not strictly pointwise: it depends a
    # little on the other points of the call. The F2 layer and topside are exact.
    above = dict(alt=slice(200.0, None))
    np.testing.assert_array_equal(
        banded["ne_background"].sel(above).values, cube["ne_background"].sel(above).values
    )
    np.testing.assert_array_equal(banded["nmf2"].values, cube["nmf2"].values)
    np.testing.assert_array_equal(banded["hmf2"].values, cube["hmf2"].values)


def test_pyiri_once_per_time_equals_one_call_for_the_day(tmp_path):
    """One call per time (bounded memory) gives what one call for all the times gives."""
    from PyIRI import sh_library

    times = pd.to_datetime(["2024-03-20T03:00", "2024-03-20T15:00"])
    cube = iri_cube(times, IRI_ALT, IRI_LAT, IRI_LON, f107=150.0, cache_dir=tmp_path)
    grid_lat, grid_lon = (g.ravel() for g in np.meshgrid(IRI_LAT, IRI_LON, indexing="ij"))
    f2, *_, edp = sh_library.IRI_density_1day(
        2024, 3, 20, np.array([3.0, 15.0]), grid_lon, grid_lat, IRI_ALT, 150.0,
        foF2_coeff="URSI", hmF2_model="SHU2015", old_output=False)
    shape = (2, IRI_ALT.size, IRI_LAT.size, IRI_LON.size)
    # Equal to float32 precision but for a few F1-region values (PyIRI's F1 depends a
    # little on the other points of a call), which move by < 0.05 %.
    ne = cube["ne_background"].values
    assert np.mean(np.isclose(ne, edp.reshape(shape), rtol=1e-6)) > 0.98
    np.testing.assert_allclose(ne, edp.reshape(shape), rtol=5e-4)
    np.testing.assert_allclose(cube["hmf2"].values, f2["hm"].reshape(2, *shape[2:]), rtol=1e-6)


def test_iri_cube_is_physical(iri):
    cube, _ = iri
    ne = cube["ne_background"]
    assert ne.dims == ("time", "alt", "lat", "lon")
    assert ne.dtype == np.float32 and ne.attrs["units"] == "m-3"
    assert cube["lon"].values.tolist() == IRI_LON.tolist()  # both -180 and 180 kept
    assert np.all((cube.nmf2 > 1e10) & (cube.nmf2 < 1e13))
    assert np.all((cube.hmf2 > 200) & (cube.hmf2 < 500))
    assert np.all(ne > 0)
    # The profile's largest value on the grid is the F2 peak, seen from at most 25 km.
    ratio = ne.max("alt") / cube.nmf2
    assert np.all((ratio > 0.8) & (ratio < 1.0 + 1e-5))
    equator = cube.nmf2.sel(lat=0.0).isel(time=0)
    assert equator.sel(lon=0.0) > 1.5 * equator.sel(lon=-120.0)  # local noon vs 04 LT
    assert cube.attrs["iri_fof2_model"] == "URSI" and cube.attrs["iri_hmf2_model"] == "SHU2015"
    assert cube.attrs["iri_f107"] == "2024-03-20=150"
    assert cube.attrs["Conventions"] == "CF-1.11"


def test_iri_cube_feeds_background_field(iri):
    cube, _ = iri
    field = BackgroundField(cube)
    got = field.log10_at(IRI_TIME.values[0], IRI_ALT[:, None, None], IRI_LAT[:, None], IRI_LON)
    expected = np.log10(np.maximum(cube.ne_background.values[0], NE_FLOOR))
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_cache_hit_does_not_run_pyiri(iri, pyiri_calls, caplog):
    cube, cache = iri
    with caplog.at_level(logging.INFO, logger="ionofield.iri"):
        again = iri_cube(IRI_TIME, IRI_ALT, IRI_LAT, IRI_LON, f107=150.0, cache_dir=cache)
    assert pyiri_calls == []
    assert "1 of 1 times read from the cache" in caplog.text
    assert_same_cube(again, cube)
    assert [p.suffix for p in cache.iterdir()] == [".nc"]  # no temporary file left
    # netCDF-3, not HDF5: the cube is written from a dask task, maybe while a volume is
    # being written through HDF5, which is not thread-safe.
    assert next(cache.iterdir()).read_bytes()[:3] == b"CDF"


def test_cftime_times_hit_the_same_cache(iri, pyiri_calls):
    cube, cache = iri
    when = [cftime.DatetimeProlepticGregorian(2024, 3, 20, 12)]
    again = iri_cube(when, IRI_ALT, IRI_LAT, IRI_LON, f107=150.0, cache_dir=cache)
    assert pyiri_calls == []
    assert_same_cube(again, cube)


def test_one_pyiri_call_per_time_with_that_days_f107(tmp_path, pyiri_calls, caplog):
    times = pd.to_datetime(["2024-03-20T22:00", "2024-03-20T23:00", "2024-03-21T00:00"])
    hourly = pd.date_range("2024-03-20", "2024-03-21T23:00", freq="h")
    f107 = xr.DataArray(
        np.where(hourly.day == 20, 140.0, 160.0), coords={"time": hourly}, dims="time"
    )
    alt, lat, lon = np.array([200.0, 300.0, 400.0]), np.array([0.0, 10.0]), np.array([-90.0, 90.0])
    with caplog.at_level(logging.INFO, logger="ionofield.iri"):
        cube = iri_cube(times, alt, lat, lon, f107=f107, cache_dir=tmp_path)
    assert "cache miss" in caplog.text
    assert [(args[:3], args[7]) for args, _ in pyiri_calls] == [
        ((2024, 3, 20), 140.0),
        ((2024, 3, 20), 140.0),
        ((2024, 3, 21), 160.0),
    ]
    assert [list(args[3]) for args, _ in pyiri_calls] == [[22.0], [23.0], [0.0]]
    # PyIRI's flattened horizontal grid is latitude-major.
    np.testing.assert_array_equal(pyiri_calls[0][0][4], [-90.0, 90.0, -90.0, 90.0])
    np.testing.assert_array_equal(pyiri_calls[0][0][5], [0.0, 0.0, 10.0, 10.0])
    assert pyiri_calls[0][1] == {"foF2_coeff": "URSI", "hmF2_model": "SHU2015", "old_output": False}
    expected = np.array([140e9 + 22e6, 140e9 + 23e6, 160e9], dtype=np.float32)
    np.testing.assert_array_equal(cube.ne_background.max(["alt", "lat", "lon"]), expected)
    np.testing.assert_array_equal(cube.ne_background.min(["alt", "lat", "lon"]), expected)
    assert cube.attrs["iri_f107"] == "2024-03-20=140 2024-03-21=160"
    iri_cube(times, alt, lat, lon, f107=f107, cache_dir=tmp_path)
    assert len(pyiri_calls) == 3


def test_cache_key_covers_every_input(tmp_path, monkeypatch, pyiri_calls):
    base = {"times": IRI_TIME, "alt": IRI_ALT, "lat": IRI_LAT, "lon": IRI_LON, "f107": 150.0}
    variants = [
        {},
        {"times": IRI_TIME + pd.Timedelta(hours=1)},
        {"alt": IRI_ALT + 1.0},
        {"lat": IRI_LAT + 1.0},
        {"lon": IRI_LON - 1.0},
        {"f107": 150.5},
    ]
    for changes in variants + variants:
        iri_cube(**{**base, **changes}, cache_dir=tmp_path)
    monkeypatch.setattr(iri_module.importlib.metadata, "version", lambda name: "99.0")
    iri_cube(**base, cache_dir=tmp_path)
    assert len(pyiri_calls) == len(variants) + 1
    assert len(list(tmp_path.glob("iri_*.nc"))) == len(variants) + 1


def test_times_already_cached_are_not_recomputed(tmp_path, pyiri_calls):
    """Requests share the cache time by time: a chunk of hours reads a fit's day."""
    alt, lat, lon = np.array([200.0, 300.0]), np.array([0.0]), np.array([0.0, 180.0])
    first = pd.date_range("2024-03-20", periods=24, freq="h")
    one = iri_cube(first, alt, lat, lon, f107=150.0, cache_dir=tmp_path)
    both = iri_cube(
        first.append(first + pd.Timedelta(days=1)), alt, lat, lon, f107=150.0, cache_dir=tmp_path
    )
    assert [args[:3] for args, _ in pyiri_calls] == [(2024, 3, 20)] * 24 + [(2024, 3, 21)] * 24
    xr.testing.assert_equal(both.isel(time=slice(0, 24)), one)
    assert both.sizes["time"] == 48
    chunk = iri_cube(first[20:] + pd.Timedelta(hours=2), alt, lat, lon, f107=150.0,
                     cache_dir=tmp_path)
    assert len(pyiri_calls) == 48
    xr.testing.assert_equal(chunk["ne_background"], both["ne_background"].isel(time=slice(22, 26)))
    assert chunk.attrs["iri_f107"] == "2024-03-20=150 2024-03-21=150"


def test_campaign_background_spans_whole_hours_on_the_config_grid(tmp_path, pyiri_calls):
    config = FitConfig(
        background_alt=(100.0, 500.0, 100.0), background_lat_step=30.0, background_lon_step=90.0
    )
    hours = np.array(["2024-03-20T05:00", "2024-03-20T06:20"], dtype="datetime64[ns]")
    field, info = campaign_background(hours, 150.0, config=config, cache_dir=tmp_path)
    np.testing.assert_array_equal(
        field.time, np.array(["2024-03-20T05", "2024-03-20T06", "2024-03-20T07"], "M8[ns]")
    )
    np.testing.assert_array_equal(field.alt, [100.0, 200.0, 300.0, 400.0, 500.0])
    np.testing.assert_array_equal(field.lat, [-60.0, -30.0, 0.0, 30.0, 60.0])
    np.testing.assert_array_equal(field.lon, [-180.0, -90.0, 0.0, 90.0])
    assert info["kind"] == "iri" and info["fof2_model"] == "URSI"
    assert np.isfinite(field.log10_at(hours[0], 250.0, -90.0, 179.0))
    campaign_background(hours, 150.0, config=config, cache_dir=tmp_path)
    assert len(pyiri_calls) == 3  # one per hour; the same hours again: the cached cube


def test_campaign_background_records_which_f107_pyiri_was_given(tmp_path, pyiri_calls):
    """A fit gives PyIRI the campaign's 81-day mean and records it for reconstruct."""
    config = FitConfig(
        background_alt=(100.0, 500.0, 200.0), background_lat_step=60.0, background_lon_step=180.0
    )
    hours = pd.date_range("2024-03-20T05:00", periods=2, freq="h")
    smoothed = xr.DataArray(np.full(hours.size, 171.0), {"time": hours}, "time", name=IRI_F107,
                            attrs={"long_name": "81-day centred mean of observed F10.7"})
    field, info = campaign_background(hours.values, smoothed, config=config, cache_dir=tmp_path)
    assert IRI_F107 == "f107_81"
    assert info["f107_variable"] == "f107_81" and info["f107"] == "2024-03-20=171"
    assert "f107_daily" not in info
    assert {args[7] for args, _ in pyiri_calls} == {171.0}
    cube = iri_cube(hours, [100.0, 300.0], [0.0], [0.0, 180.0], f107=smoothed,
                    cache_dir=tmp_path)
    assert cube.attrs["iri_f107"] == "2024-03-20=171"
    assert cube.attrs["iri_f107_source"] == (
        "the daily mean of 'f107_81' (81-day centred mean of observed F10.7)")
    _, info = campaign_background(hours.values, 150.0, config=config, cache_dir=tmp_path)
    assert info["f107_variable"] == "constant"


def test_campaign_background_takes_a_user_background(pyiri_calls):
    user = random_background(17)
    field, info = campaign_background(TIMES.values, 150.0, config=FitConfig(), background=user)
    assert info == {
        "kind": "user",
        "time": ["2024-05-11T00:00:00.000000000", "2024-05-11T03:00:00.000000000"],
        "shape": [4, 6, 11, 12],
    }
    np.testing.assert_array_equal(
        field.log10_at(TIMES.values[1], ALT, 0.0, 0.0),
        BackgroundField(user).log10_at(TIMES.values[1], ALT, 0.0, 0.0),
    )
    assert pyiri_calls == []


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path))
    assert iri_module.default_cache_dir() == tmp_path
    monkeypatch.delenv("IONOFIELD_CACHE")
    assert iri_module.default_cache_dir().parts[-2:] == (".cache", "ionofield")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"f107": 1.5e-20}, UnitsError, "solar flux units"),
        ({"f107": float("nan")}, UnitsError, "nan"),
        (
            {
                "f107": xr.DataArray(
                    [150.0], coords={"time": pd.to_datetime(["2024-03-19"])}, dims="time"
                )
            },
            CoverageError,
            "2024-03-20",
        ),
        ({"times": IRI_TIME[::-1].append(IRI_TIME)}, TimeOrderError, "times"),
        ({"alt": IRI_ALT * 1000.0}, UnitsError, "metres"),
    ],
    ids=["f107-units", "f107-nan", "f107-missing-day", "times-order", "alt-metres"],
)
def test_iri_cube_rejects_bad_inputs_before_running_pyiri(
    kwargs, error, match, tmp_path, pyiri_calls
):
    args = {"times": IRI_TIME, "alt": IRI_ALT, "lat": IRI_LAT, "lon": IRI_LON, "f107": 150.0}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        iri_cube(**args, cache_dir=tmp_path)
    assert pyiri_calls == []


@pytest.mark.slow
def test_cached_cube_passes_the_cf_checker(tmp_path, pyiri_calls):
    checker = shutil.which("compliance-checker", path=str(Path(sys.executable).parent))
    if checker is None:
        pytest.skip("compliance-checker not installed (pip install ionofield[cf])")
    iri_cube(IRI_TIME, IRI_ALT, IRI_LAT, IRI_LON, f107=150.0, cache_dir=tmp_path)
    (path,) = tmp_path.glob("iri_*.nc")
    result = subprocess.run(
        [checker, "--test=cf:1.11", "--criteria=strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_iri_field_keeps_a_few_hours_and_reads_the_others_back_from_the_cache(pyiri_calls,
                                                                              tmp_path):
    """A field kept to 3 hours gives what the whole cube gives, without running PyIRI again."""
    times = pd.date_range("2024-05-10", periods=10, freq="h").values
    alt, lat, lon = np.arange(100.0, 1001.0, 100.0), np.arange(-80.0, 81.0, 20.0), \
        np.arange(-180.0, 180.0, 30.0)
    hour_mb = 4 * alt.size * (lat.size + 2) * lon.size / 2**20
    lazy = BackgroundField.from_iri(times, alt, lat, lon, f107=150.0, cache_dir=tmp_path,
                                    memory_mb=3.5 * hour_mb)
    assert len(pyiri_calls) == 10  # every hour computed once, when the field was built
    cube = iri_cube(times, alt, lat, lon, f107=150.0, cache_dir=tmp_path)
    whole = BackgroundField(cube)
    rng = np.random.default_rng(0)
    n = 2000
    points = (times[0] + (rng.uniform(0, 9, n) * 3.6e12).astype("timedelta64[ns]"),
              rng.uniform(100, 1000, n), rng.uniform(-90, 90, n), rng.uniform(-180, 180, n))
    np.testing.assert_array_equal(lazy.log10_at(*points), whole.log10_at(*points))
    grid = (times[:, None, None, None], alt[:, None, None], lat[:, None], lon)
    np.testing.assert_array_equal(lazy.log10_at(*grid), whole.log10_at(*grid))
    assert len(lazy._slabs.kept) == 3 and len(pyiri_calls) == 10  # read back, not computed
    assert lazy.attrs["iri_f107"] == cube.attrs["iri_f107"]
    assert lazy.time.size == 10 and np.array_equal(lazy.time, whole.time)


def test_campaign_background_info_is_that_of_every_hour(pyiri_calls, tmp_path):
    """Built a day at a time, the field still describes the F10.7 of every UT day."""
    hours = pd.date_range("2024-05-10", periods=60, freq="h").values
    f107 = xr.DataArray(np.repeat([150.0, 160.0, 170.0], 24)[:60], dims="time",
                        coords={"time": hours}, name="f107_81")
    config = FitConfig(background_alt=(100.0, 1000.0, 300.0), background_lat_step=30.0,
                       background_lon_step=60.0)
    _, info = campaign_background(hours, f107, config=config, cache_dir=tmp_path)
    assert info["f107"] == "2024-05-10=150 2024-05-11=160 2024-05-12=170"

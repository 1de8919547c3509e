from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ionofield.errors import (
    ConfigError,
    DataWarning,
    ManyProblemsError,
    ROFormatError,
    UnitsError,
)
from ionofield.io.ro import open_ro_profiles, write_ionprf, write_ro_table
from tests.conftest import plant

T0 = np.datetime64("2024-05-08T20:54:51.250", "ns")


def chapman(alt: np.ndarray, nmf2: float = 1e12, hmf2: float = 300.0) -> np.ndarray:
    z = (alt - hmf2) / 60.0
    return nmf2 * np.exp(0.5 * (1.0 - z - np.exp(-z)))


def profile_file(directory: Path, k: int = 0, *, n: int = 12, lon: float = -114.6,
                 time: np.datetime64 = T0, ne: np.ndarray | None = None) -> Path:
    alt = np.linspace(100.0, 600.0, n)
    return write_ionprf(
        directory / f"ionPrf_C2E{k % 6 + 1}.2024.129.20.{k % 60:02d}.G{k % 32:02d}_0001.0001_nc",
        time=time + np.timedelta64(k, "m"), alt=alt, lat=np.linspace(30.0, 33.0, n),
        lon=lon, ne=chapman(alt) if ne is None else ne, mission="COSEQ")


# ------------------------------------------------------------------- ionPrf format


def test_write_ionprf_is_cdaac_format_in_el_per_cm3(tmp_path):
    path = write_ionprf(tmp_path / "ionPrf_SYN1.2024.129.20.57.G31_0001.0001_nc", time=T0,
                        alt=[200.0, 300.0, 400.0], lat=10.0, lon=20.0, ne=[5e10, 1e11, 2e10])
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        assert ds.file_format == "NETCDF3_CLASSIC"
        assert list(ds.dimensions) == ["MSL_alt"]
        dens = ds["ELEC_dens"]
        assert dens.dtype == np.float32 and dens.units == "el/cm3"
        assert dens._FillValue == np.float32(-999.0)
        np.testing.assert_array_equal(dens[:], np.float32([5e4, 1e5, 2e4]))
        assert (ds.year, ds.month, ds.day, ds.hour, ds.minute) == (2024, 5, 8, 20, 54)
        assert ds.second == pytest.approx(51.25)
        assert ds.edmax == pytest.approx(1e5) and ds.edmaxalt == 300.0
        assert (ds.edmaxlat, ds.edmaxlon) == (10.0, 20.0)
        assert ds.mission == "SYNTH" and ds.fileStamp == "SYN1.2024.129.20.57.G31"
    assert not list(tmp_path.glob(".*"))  # no temporary file left

    obs = open_ro_profiles(path)
    np.testing.assert_array_equal(obs.ne.values, [5e10, 1e11, 2e10])
    assert obs.ne.dtype == np.float64 and obs.ne.attrs["units"] == "m-3"
    assert obs.ne.attrs["long_name"] == "electron number density"
    assert obs.time.dtype == np.dtype("datetime64[ns]")
    assert (obs.time.values == T0).all()
    assert set(obs.profile.values) == {"SYN1.2024.129.20.57.G31"}
    assert set(obs.mission.values) == {"SYNTH"}


def test_dropped_points_are_counted_exactly(tmp_path, caplog):
    path = profile_file(tmp_path, n=14)
    plant(path, ELEC_dens=(slice(0, 3), -999.0))  # 3 fill
    plant(path, ELEC_dens=(slice(3, 5), -12.5))  # 2 negative
    plant(path, ELEC_dens=(5, 0.0))  # 1 zero
    plant(path, ELEC_dens=(slice(6, 8), np.nan))  # 2 NaN
    plant(path, MSL_alt=(8, -999.0))  # 1 fill in a position variable
    plant(path, GEO_lon=(9, np.nan))  # 1 NaN in a position variable
    with caplog.at_level(logging.DEBUG, logger="ionofield.io.ro"):
        obs = open_ro_profiles(path)
    assert obs.sizes["obs"] == 4
    assert obs.attrs["dropped_fill"] == 4
    assert obs.attrs["dropped_nan"] == 3
    assert obs.attrs["dropped_nonpositive"] == 3
    assert (obs.attrs["n_files"], obs.attrs["n_profiles"]) == (1, 1)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("4 fill, 3 NaN, 3 non-positive" in m for m in info)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(str(path) in m and "'nonpositive': 3" in m for m in debug)


@pytest.mark.parametrize(("lon", "folded"), [(190.0, -170.0), (180.0, -180.0),
                                             (-180.0, -180.0), (359.5, -0.5), (12.0, 12.0)])
def test_longitude_is_folded(tmp_path, lon, folded):
    obs = open_ro_profiles(profile_file(tmp_path, lon=lon))
    np.testing.assert_allclose(obs.lon.values, folded, atol=1e-4)


def test_altitude_window_drops_and_counts(tmp_path):
    obs = open_ro_profiles(profile_file(tmp_path, n=11), min_alt=200.0, max_alt=400.0)
    assert obs.alt.min() >= 200.0 and obs.alt.max() <= 400.0
    assert obs.sizes["obs"] == 5 and obs.attrs["dropped_alt_range"] == 6


def test_glob_of_many_files_sorted_and_deduplicated(tmp_path):
    for k in range(30, 0, -1):
        profile_file(tmp_path, k, n=5)
    pattern = str(tmp_path / "ionPrf_*_nc")
    obs = open_ro_profiles([pattern, tmp_path / "ionPrf_*", next(tmp_path.glob("*G03*"))])
    assert (obs.attrs["n_files"], obs.attrs["n_profiles"], obs.sizes["obs"]) == (30, 30, 150)
    keys = pd.DataFrame({"t": obs.time.values, "p": obs.profile.values, "a": obs.alt.values})
    assert keys.equals(keys.sort_values(["t", "p", "a"]).reset_index(drop=True))
    assert obs.profile.values[0] == "C2E2.2024.129.20.01.G01"


def test_folder_reads_its_files(tmp_path):
    for k in (3, 1, 2):
        profile_file(tmp_path, k, n=5)
    obs = open_ro_profiles(tmp_path)
    assert (obs.attrs["n_files"], obs.sizes["obs"]) == (3, 15)
    assert obs.attrs["source"] == str(tmp_path)


def test_observation_coordinates_carry_cf_attributes_without_axis(tmp_path):
    obs = open_ro_profiles(profile_file(tmp_path, n=3))
    assert obs.lat.attrs == {"standard_name": "latitude", "long_name": "latitude",
                             "units": "degrees_north"}
    assert obs.lon.attrs["standard_name"] == "longitude"
    assert obs.lon.attrs["units"] == "degrees_east"
    assert obs.alt.attrs["units"] == "km" and obs.alt.attrs["positive"] == "up"
    assert obs.time.attrs == {"standard_name": "time", "long_name": "time (UTC)"}
    assert not any("axis" in obs[name].attrs for name in obs.variables)


def test_real_cdaac_name_variants_give_the_occultation_id(tmp_path):
    names = ["ionPrf_C001.2013.213.00.08.G29_2013.3520_nc", "ionPrf_C006.2008.319.07.40.G28.nc",
             "ionPrf_C2E2.2024.129.20.57.G31_0001.nc", "custom_profile_7.nc"]
    alt = np.array([250.0, 300.0])
    for k, name in enumerate(names):
        path = write_ionprf(tmp_path / name, time=T0 + np.timedelta64(k, "h"), alt=alt, lat=0.0,
                            lon=0.0, ne=chapman(alt))
        with netCDF4.Dataset(path, "a") as ds:
            ds.delncattr("fileStamp")  # only the file name is left to name the profile
    obs = open_ro_profiles(tmp_path / "*")
    assert list(dict.fromkeys(obs.profile.values)) == [
        "C001.2013.213.00.08.G29", "C006.2008.319.07.40.G28", "C2E2.2024.129.20.57.G31",
        "custom_profile_7"]


def test_mission_argument_only_fills_in_a_missing_attribute(tmp_path):
    path = profile_file(tmp_path)
    assert set(open_ro_profiles(path, mission="FY3D").mission.values) == {"COSEQ"}
    with netCDF4.Dataset(path, "a") as ds:
        ds.delncattr("mission")
    assert set(open_ro_profiles(path, mission="FY3D").mission.values) == {"FY3D"}
    assert set(open_ro_profiles(path).mission.values) == {"unknown"}


# ------------------------------------------------------------------- tables


@pytest.fixture
def two_profiles(tmp_path):
    profile_file(tmp_path, 1, n=6)
    profile_file(tmp_path, 2, n=7, lon=170.0)
    obs = open_ro_profiles(tmp_path / "ionPrf_*")
    return obs.assign(ne_err=0.1 * obs.ne)


@pytest.mark.parametrize("suffix", [".csv", ".nc"])
def test_table_round_trip(tmp_path, two_profiles, suffix):
    path = write_ro_table(two_profiles, tmp_path / f"table{suffix}")
    back = open_ro_profiles(path)
    xr.testing.assert_equal(back, two_profiles)
    for name in back.variables:
        assert back[name].dtype == two_profiles[name].dtype, name
    assert back.ne_err.attrs["units"] == "m-3"
    assert (back.attrs["n_files"], back.attrs["n_profiles"]) == (1, 2)


def test_netcdf3_table_with_char_strings(tmp_path, two_profiles):
    path = tmp_path / "table3.nc"
    two_profiles.reset_coords().to_netcdf(path, format="NETCDF3_64BIT")
    xr.testing.assert_equal(open_ro_profiles(path), two_profiles)


def test_csv_without_profile_column_groups_rows_by_time(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("time,lat,lon,alt,ne\n"
                    "2024-05-08T20:00:00Z,1,2,300,1e11\n"
                    "2024-05-08T20:00:00Z,1,2,310,2e11\n"
                    "2024-05-08T21:30:00Z,1,2,300,3e11\n"
                    "2024-05-08T21:30:00Z,1,2,310,-999\n")
    obs = open_ro_profiles(path)
    assert list(obs.profile.values) == ["flat@2024-05-08T20:00:00"] * 2 + [
        "flat@2024-05-08T21:30:00"]
    assert obs.attrs["dropped_fill"] == 1 and set(obs.mission.values) == {"unknown"}


def test_variables_mapping_on_a_custom_netcdf(tmp_path):
    path = tmp_path / "my_profile.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("level", 4)
        for name, units, values in [("height", "m", [2e5, 3e5, 4e5, 5e5]),
                                    ("latitude", "degrees_north", [10, 11, 12, 13]),
                                    ("Ne", "cm-3", [1e5, 1e6, 5e5, -1.0])]:
            ds.createVariable(name, "f8", ("level",))[:] = values
            ds[name].units = units
        ds.createVariable("longitude", "f8", ())[...] = 200.0
        epoch = ds.createVariable("epoch", "f8", ())
        epoch.units = "hours since 2024-05-08 00:00:00"
        epoch[...] = 20.5
    names = {"alt": "height", "lat": "latitude", "lon": "longitude", "ne": "Ne", "time": "epoch"}
    obs = open_ro_profiles(path, variables=names)
    np.testing.assert_array_equal(obs.ne.values, [1e11, 1e12, 5e11])
    np.testing.assert_array_equal(obs.alt.values, [200.0, 300.0, 400.0])
    np.testing.assert_array_equal(obs.lon.values, [-160.0] * 3)
    assert (obs.time.values == np.datetime64("2024-05-08T20:30", "ns")).all()
    assert set(obs.profile.values) == {"my_profile"}
    assert obs.attrs["dropped_nonpositive"] == 1
    # ne_units overrides the units attribute
    with pytest.raises(UnitsError, match="ne_units='cm-3'"):
        open_ro_profiles(path, variables=names, ne_units="m-3")
    with pytest.raises(ROFormatError, match="'when'"):
        open_ro_profiles(path, variables={**names, "time": "when"})


# ------------------------------------------------------------------- bad input


def test_netcdf_without_elec_dens_names_variables_and_the_fix(tmp_path):
    path = tmp_path / "other.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("z", 2)
        ds.createVariable("Ne", "f4", ("z",))
    with pytest.raises(ROFormatError, match="ELEC_dens") as info:
        open_ro_profiles(path)
    message = str(info.value)
    assert str(path) in message and "'Ne'" in message and "variables=" in message


def test_table_in_el_per_cm3_raises_units_error(tmp_path):
    path = tmp_path / "cm3.csv"
    path.write_text("time,lat,lon,alt,ne\n2024-05-08T20:00:00,1,2,300,1e5\n"
                    "2024-05-08T20:00:00,1,2,310,2e5\n")
    with pytest.raises(UnitsError, match="1e6") as info:
        open_ro_profiles(path)
    assert str(path) in str(info.value)


def test_ionprf_holding_m3_raises_units_error(tmp_path):
    path = profile_file(tmp_path, n=4)
    plant(path, ELEC_dens=(slice(None), 1e11))
    with pytest.raises(UnitsError, match="ne_units='m-3'") as info:
        open_ro_profiles(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [3, 200, -10, -1], ids=["magic", "header", "data", "last-byte"])
def test_truncated_ionprf_is_refused(tmp_path, keep):
    path = profile_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(ROFormatError, match="truncated|cannot be read") as info:
        open_ro_profiles(path)
    assert str(path) in str(info.value)


def test_netcdf3_record_variables_truncation(tmp_path):
    path = tmp_path / "records.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("obs", None)
        for name, values in [("lat", [1.0, 2.0]), ("lon", [3.0, 4.0]), ("alt", [300.0, 310.0]),
                             ("ne", [1e11, 2e11])]:
            ds.createVariable(name, "f8", ("obs",))[:] = values
        time = ds.createVariable("time", "f8", ("obs",))
        time.units = "seconds since 2024-05-08"
        time[:] = [0.0, 1.0]
    assert open_ro_profiles(path).sizes["obs"] == 2
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ROFormatError, match="truncated"):
        open_ro_profiles(path)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "ionPrf_C2E2.2024.129.20.57.G31_0001.0001_nc"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(ROFormatError, match="cannot be read as netCDF"):
        open_ro_profiles(path)


def test_missing_files_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="ionPrf_\\*"):
        open_ro_profiles(str(tmp_path / "ionPrf_*"))
    with pytest.raises(FileNotFoundError, match="nothere.nc"):
        open_ro_profiles(tmp_path / "nothere.nc")


def test_unparseable_times(tmp_path):
    csv = tmp_path / "times.csv"
    csv.write_text("time,lat,lon,alt,ne\nyesterday,1,2,300,1e11\n")
    with pytest.raises(ROFormatError, match="yesterday") as info:
        open_ro_profiles(csv)
    assert str(csv) in str(info.value)
    path = profile_file(tmp_path)
    with netCDF4.Dataset(path, "a") as ds:
        ds.month = np.int32(13)
    with pytest.raises(ROFormatError, match="not a valid time"):
        open_ro_profiles(path)


def test_several_bad_files_are_reported_together(tmp_path):
    good = profile_file(tmp_path, 1)
    bad1 = tmp_path / "bad1.csv"
    bad1.write_text("time,lat,lon,alt\n2024-05-08,1,2,300\n")
    bad2 = tmp_path / "bad2.nc"
    bad2.write_bytes(b"CDF\x01\x00")
    with pytest.raises(ManyProblemsError) as info:
        open_ro_profiles([good, bad1, bad2])
    assert len(info.value.problems) == 2
    assert str(bad1) in str(info.value) and str(bad2) in str(info.value)


def test_duplicate_profile_is_refused(tmp_path):
    first = profile_file(tmp_path, 1)
    copy = tmp_path / "copy" / first.name
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    with pytest.raises(ROFormatError, match="already read from"):
        open_ro_profiles([first, copy])


def test_bad_options(tmp_path):
    path = profile_file(tmp_path)
    with pytest.raises(ConfigError, match="height"):
        open_ro_profiles(path, variables={"height": "MSL_alt"})
    with pytest.raises(ConfigError, match="furlongs"):
        open_ro_profiles(path, ne_units="furlongs")
    with pytest.raises(ConfigError, match=".txt"):
        write_ro_table(open_ro_profiles(path), tmp_path / "t.txt")
    with pytest.raises(ConfigError, match="shape"):
        write_ionprf(tmp_path / "x_nc", time=T0, alt=[1.0, 2.0], lat=[1.0, 2.0, 3.0], lon=0.0,
                     ne=[1e11, 1e11])


def test_sample_files_read_without_a_data_warning():
    samples = Path(__file__).resolve().parents[1] / "data_samples"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        obs = open_ro_profiles([samples / "ionprf" / "*", samples / "ro_profiles.nc"])
    assert obs.attrs["dropped_infinite"] == obs.attrs["dropped_implausible"] == 0
    assert obs.attrs["dropped_nonpositive"] > 0  # routine: logged, not warned


def test_damage_in_many_files_gives_one_warning_with_the_totals(tmp_path, caplog):
    paths = [profile_file(tmp_path, k, n=6) for k in range(8)]
    for path in paths:
        plant(path, ELEC_dens=(2, np.inf))
    plant(paths[0], MSL_alt=(4, 1e30))
    with pytest.warns(DataWarning) as record, caplog.at_level(logging.INFO, "ionofield.io.ro"):
        obs = open_ro_profiles(tmp_path / "ionPrf_*")
    assert len(record) == 1
    message = str(record[0].message)
    assert "dropped 8 infinite and 1 implausible points" in message
    assert "in 8 of 8 files" in message and "; and 3 more" in message
    assert f"{paths[0]} (1 infinite, 1 implausible)" in message
    assert (obs.attrs["dropped_infinite"], obs.attrs["dropped_implausible"]) == (8, 1)
    assert obs.sizes["obs"] == 8 * 6 - 9
    assert any("8 infinite, 1 implausible" in r.getMessage() for r in caplog.records)


def test_ne_err_from_some_files_is_kept_with_nan_for_the_others(tmp_path, two_profiles):
    table = write_ro_table(two_profiles.isel(obs=slice(0, 6)), tmp_path / "t" / "table.csv")
    ionprf = profile_file(tmp_path, 9, n=5)
    obs = open_ro_profiles([table, ionprf])
    assert obs.sizes["obs"] == 11
    assert obs.ne_err.attrs["units"] == "m-3"
    unknown = obs.profile.values[obs.ne_err.isnull().values]
    assert set(unknown) == {"C2E4.2024.129.20.09.G09"} and unknown.size == 5


# ------------------------------------------------------------------- properties


@st.composite
def profiles(draw):
    n = draw(st.integers(1, 25))
    alt = np.sort(draw(st.lists(st.floats(60.0, 1500.0), min_size=n, max_size=n, unique=True)))
    lat = draw(st.lists(st.floats(-90.0, 90.0), min_size=n, max_size=n))
    lon = draw(st.lists(st.floats(-180.0, 360.0), min_size=n, max_size=n))
    log_ne = draw(st.lists(st.floats(8.5, 12.8), min_size=n, max_size=n))
    seconds = draw(st.integers(0, 30 * 365 * 86400))
    micro = draw(st.integers(0, 999_999))
    time = (np.datetime64("2000-01-01", "ns") + np.timedelta64(seconds, "s")
            + np.timedelta64(micro, "us"))
    return time, alt, np.array(lat), np.array(lon), 10.0 ** np.array(log_ne)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=profiles())
def test_write_ionprf_round_trip_property(profile):
    time, alt, lat, lon, ne = profile
    with tempfile.TemporaryDirectory() as tmp:
        path = write_ionprf(Path(tmp) / "ionPrf_P001.2000.001.00.00.G01_0001_nc", time=time,
                            alt=alt, lat=lat, lon=lon, ne=ne)
        obs = open_ro_profiles(path)
        back = open_ro_profiles(write_ro_table(obs, Path(tmp) / "t.csv"))
    assert obs.sizes["obs"] == alt.size
    assert (obs.time.values == time).all()
    np.testing.assert_array_equal(obs.alt.values, alt.astype(np.float32))
    np.testing.assert_array_equal(obs.lat.values, lat.astype(np.float32))
    folded_diff = (obs.lon.values - lon.astype(np.float32) + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(folded_diff, 0.0, atol=1e-4)
    assert ((obs.lon >= -180.0) & (obs.lon < 180.0)).all()
    np.testing.assert_allclose(obs.ne.values, ne, rtol=1e-7)
    xr.testing.assert_equal(back, obs)

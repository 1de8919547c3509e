"""Tests of the IONEX reader and writer on tiny hand-written files."""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from ionofield.errors import DataWarning, IONEXFormatError, TimeOrderError, UnitsError
from ionofield.io.cf import attributes
from ionofield.io.ionex import open_ionex, write_ionex

LATS = (2.5, 0.0, -2.5)  # file order: north to south, as the centres write
LONS = (-10.0, -5.0, 0.0, 5.0, 10.0)


def rec(content: str, label: str, *, pad: bool = True) -> str:
    line = f"{content:<60}{label}"
    return line.ljust(80) if pad else line


def value_lines(row) -> list[str]:
    text = "".join(f"{int(v):5d}" for v in row)
    return [text[i : i + 80] for i in range(0, len(text), 80)]


def epoch(time: str) -> str:
    t = pd.Timestamp(time)
    return "".join(f"{v:6d}" for v in (t.year, t.month, t.day, t.hour, t.minute, t.second))


def ionex_text(
    maps,
    *,
    lats=LATS,
    lons=LONS,
    rms=None,
    n_maps=None,
    exponent=-1,
    map_exponents=None,
    pad=True,
    pgm="TESTPGM             TESTCENTRE          01-JAN-20 00:00",
) -> str:
    """An IONEX 1.0 file, written here by hand (independently of write_ionex).

    maps: list of (time, int array [len(lats), len(lons)]) in file order.
    """
    dlat, dlon = lats[1] - lats[0], lons[1] - lons[0]
    lines = [
        rec("     1.0            IONOSPHERE MAPS     GPS", "IONEX VERSION / TYPE", pad=pad),
        rec(pgm, "PGM / RUN BY / DATE", pad=pad),
        rec("a tiny test file", "DESCRIPTION", pad=pad),
        rec(epoch(maps[0][0]), "EPOCH OF FIRST MAP", pad=pad),
        rec(epoch(maps[-1][0]), "EPOCH OF LAST MAP", pad=pad),
        rec("  3600", "INTERVAL", pad=pad),
        rec(f"{len(maps) if n_maps is None else n_maps:6d}", "# OF MAPS IN FILE", pad=pad),
        rec("  COSZ", "MAPPING FUNCTION", pad=pad),
        rec("  6371.0", "BASE RADIUS", pad=pad),
        rec("     2", "MAP DIMENSION", pad=pad),
        rec("   450.0 450.0   0.0", "HGT1 / HGT2 / DHGT", pad=pad),
        rec(f"  {lats[0]:6.1f}{lats[-1]:6.1f}{dlat:6.1f}", "LAT1 / LAT2 / DLAT", pad=pad),
        rec(f"  {lons[0]:6.1f}{lons[-1]:6.1f}{dlon:6.1f}", "LON1 / LON2 / DLON", pad=pad),
        rec(f"{exponent:6d}", "EXPONENT", pad=pad),
        rec("DIFFERENTIAL CODE BIASES", "START OF AUX DATA", pad=pad),
        rec("   G01     2.005     0.231", "PRN / BIAS / RMS", pad=pad),
        rec("   G  ALBH 40129M003          16.059     0.025", "STATION / BIAS / RMS", pad=pad),
        rec("DIFFERENTIAL CODE BIASES", "END OF AUX DATA", pad=pad),
        rec("", "END OF HEADER", pad=pad),
    ]
    blocks = [("TEC", maps)] + ([("RMS", rms)] if rms is not None else [])
    for kind, block_maps in blocks:
        for k, (time, values) in enumerate(block_maps):
            lines.append(rec(f"{k + 1:6d}", f"START OF {kind} MAP"))
            lines.append(rec(epoch(time), "EPOCH OF CURRENT MAP"))
            if map_exponents is not None and map_exponents[k] is not None:
                lines.append(rec(f"{map_exponents[k]:6d}", "EXPONENT"))
            for lat, row in zip(lats, values, strict=True):
                lines.append(
                    rec(
                        f"  {lat:6.1f}{lons[0]:6.1f}{lons[-1]:6.1f}{dlon:6.1f} 450.0",
                        "LAT/LON1/LON2/DLON/H",
                    )
                )
                lines.extend(value_lines(row))
            lines.append(rec(f"{k + 1:6d}", f"END OF {kind} MAP"))
    lines.append(rec("", "END OF FILE"))
    return "\n".join(lines) + "\n"


def grid_values(offset: int = 0) -> np.ndarray:
    """Distinct integers per cell: 100 * row + col + offset (units of 0.1 TECU)."""
    return 100 * np.arange(len(LATS))[:, None] + np.arange(len(LONS))[None, :] + offset


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hand_computed_values(tmp_path):
    values = grid_values(offset=100)
    values[1, 3] = 123  # lat 0.0, lon 5.0
    values[2, 0] = 9999  # lat -2.5, lon -10.0: missing
    path = write(tmp_path, "tiny.20i", ionex_text([("2020-01-01T01:00", values)]))
    with pytest.warns(DataWarning, match=r"tiny.20i: 1 of 15 TEC values .* are 9999"):
        ds = open_ionex(path)
    assert ds.tec.dims == ("time", "lat", "lon")
    assert ds.tec.dtype == np.float32
    assert ds.time.values[0] == np.datetime64("2020-01-01T01:00", "ns")
    np.testing.assert_array_equal(ds.lat, [-2.5, 0.0, 2.5])
    np.testing.assert_array_equal(ds.lon, LONS)
    at = ds.tec.isel(time=0)
    assert at.sel(lat=0.0, lon=5.0).item() == np.float32(12.3)
    assert np.isnan(at.sel(lat=-2.5, lon=-10.0).item())
    assert at.sel(lat=2.5, lon=10.0).item() == np.float32(10.4)  # row 0, col 4: 104
    assert int(ds.tec.isnull().sum()) == 1


def test_in_map_exponent_overrides_header_for_that_map_only(tmp_path):
    values = np.full((len(LATS), len(LONS)), 123)
    maps = [(f"2020-01-01T0{h}:00", values) for h in range(3)]
    path = write(tmp_path, "exp.20i", ionex_text(maps, map_exponents=[None, -2, None]))
    tec = open_ionex(path).tec.values
    np.testing.assert_array_equal(tec[0], np.float32(12.3))
    np.testing.assert_array_equal(tec[1], np.float32(1.23))
    np.testing.assert_array_equal(tec[2], np.float32(12.3))


def test_touching_and_negative_fields(tmp_path):
    values = 1000 + grid_values()
    values[0, :3] = [10000, 99999, -12]  # "1000099999  -12": the fields touch
    path = write(tmp_path, "touch.20i", ionex_text([("2020-01-01", values)], exponent=-3))
    # the minus sign is read: -0.012 TECU is no TEC and is dropped (read as 12 it would stay)
    with pytest.warns(DataWarning, match="1 negative TEC value"):
        north = open_ionex(path).tec.sel(lat=2.5).isel(time=0).values
    np.testing.assert_array_equal(north[:3], np.float32([10.0, 99.999, np.nan]))


def test_unpadded_and_overflowing_header_lines(tmp_path):
    maps = [("2020-01-01", grid_values())]
    padded = open_ionex(write(tmp_path, "padded.20i", ionex_text(maps)))
    # CAS writes a 21-character date that pushes its label to column 62.
    pgm = "GIM_AOE V1.0        LZSH                2015-11-16 22:06:30.0"
    text = ionex_text(maps, pad=False, pgm=pgm)
    assert all(len(line) < 80 for line in text.splitlines()[2:14])
    unpadded = open_ionex(write(tmp_path, "unpadded.20i", text))
    xr.testing.assert_identical(padded.tec, unpadded.tec)
    assert unpadded.attrs["institution"] == "LZSH"
    assert unpadded.attrs["ionex_program"] == "GIM_AOE V1.0"


def test_dataset_attributes(tmp_path):
    path = write(tmp_path, "attrs.20i", ionex_text([("2020-01-01", grid_values())]))
    ds = open_ionex(path)
    assert ds.tec.attrs["units"] == "TECU"
    assert ds.tec.attrs["long_name"] == "vertical total electron content"
    assert "1e16" in ds.tec.attrs["comment"]
    assert ds.lat.attrs["units"] == "degrees_north"
    assert ds.lon.attrs["units"] == "degrees_east"
    assert (ds.lat.attrs["axis"], ds.lon.attrs["axis"], ds.time.attrs["axis"]) == ("Y", "X", "T")
    assert ds.time.attrs["long_name"] == "epoch of the map (UTC)"
    assert ds.tec.attrs == attributes("tec")
    assert ds.attrs["ionex_height_km"] == 450.0
    assert ds.attrs["base_radius_km"] == 6371.0
    assert ds.attrs["source_files"] == "attrs.20i"
    assert ds.attrs["mapping_function"] == "COSZ"
    assert ds.attrs["institution"] == "TESTCENTRE"
    assert "tec_rms" not in ds


def test_rms_maps(tmp_path):
    maps = [("2020-01-01", grid_values()), ("2020-01-01T02:00", grid_values(5))]
    rms = [("2020-01-01", grid_values(1)), ("2020-01-01T02:00", grid_values(2))]
    path = write(tmp_path, "rms.20i", ionex_text(maps, rms=rms))
    ds = open_ionex(path)
    np.testing.assert_allclose(ds.tec_rms.values[1, ::-1], grid_values(2) / 10, rtol=1e-6)
    assert ds.tec_rms.attrs["units"] == "TECU"
    assert "tec_rms" not in open_ionex(path, with_rms=False)
    # a file without RMS maps next to one with them: NaN where the RMS is unknown
    other = write(tmp_path, "norms.20i", ionex_text([("2020-01-02", grid_values())]))
    both = open_ionex([path, other])
    assert both.tec_rms.isel(time=-1).isnull().all()
    assert both.tec_rms.isel(time=0).notnull().all()


@pytest.mark.parametrize("name", ["packed.20i", "packed.20i.gz"], ids=["no-suffix", "gz-suffix"])
def test_gzip_found_by_magic_bytes(tmp_path, name):
    text = ionex_text([("2020-01-01", grid_values())])
    plain = open_ionex(write(tmp_path, "plain.20i", text))
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()))
    xr.testing.assert_identical(open_ionex(path).tec, plain.tec)


def daily_maps(day: str, offset: int) -> list:
    times = pd.date_range(day, periods=25, freq="h")  # 00:00 .. 24:00, CODE style
    return [(t, grid_values(offset + k)) for k, t in enumerate(times)]


def test_consecutive_daily_files_drop_the_repeated_midnight(tmp_path, caplog):
    day1 = write(tmp_path, "codg0010.20i", ionex_text(daily_maps("2020-01-01", 0)))
    day2 = write(tmp_path, "codg0020.20i", ionex_text(daily_maps("2020-01-02", 500)))
    with caplog.at_level(logging.INFO, logger="ionofield.io.ionex"):
        ds = open_ionex(str(tmp_path / "codg*.20i"))
    assert ds.sizes["time"] == 49
    np.testing.assert_array_equal(
        ds.time.values, pd.date_range("2020-01-01", periods=49, freq="h").values
    )
    # the first occurrence (day 1's 24:00 map) is kept, not day 2's 00:00 map
    midnight = ds.tec.sel(time="2020-01-02T00:00").values
    np.testing.assert_allclose(midnight[::-1], grid_values(24) / 10, rtol=1e-6)
    assert "dropped 1 map" in caplog.text
    assert "read 49 TEC maps from 2" in caplog.text
    assert ds.attrs["source_files"] == "codg0010.20i, codg0020.20i"
    # a list in the other order keeps day 2's 00:00 map instead
    reverse = open_ionex([day2, day1])
    np.testing.assert_allclose(
        reverse.tec.sel(time="2020-01-02T00:00").values[::-1], grid_values(500) / 10, rtol=1e-6
    )


def test_times_out_of_order_are_sorted(tmp_path):
    maps = [(f"2020-01-01T{h:02d}:15", grid_values(h)) for h in (2, 0, 1)]
    with pytest.warns(DataWarning, match=r"order.20i: 1 map\(s\) out of time order"):
        ds = open_ionex(write(tmp_path, "order.20i", ionex_text(maps)))
    assert list(pd.DatetimeIndex(ds.time.values).hour) == [0, 1, 2]
    np.testing.assert_allclose(ds.tec.values[:, -1, 0], [0.0, 0.1, 0.2], atol=1e-6)


def test_longitudes_0_360_are_folded(tmp_path):
    lons = tuple(float(x) for x in range(0, 361, 90))  # 0, 90, 180, 270, 360
    values = 100 * np.arange(len(LATS))[:, None] + np.arange(len(lons))[None, :]
    path = write(tmp_path, "east.20i", ionex_text([("2020-01-01", values)], lons=lons))
    ds = open_ionex(path)
    np.testing.assert_array_equal(ds.lon, [-90.0, 0.0, 90.0, 180.0])
    # north row holds 0, 1, 2, 3, 4 at 0, 90, 180, 270, 360 east; 360 repeats 0 east
    np.testing.assert_allclose(ds.tec.sel(lat=2.5).values[0], [0.3, 0.0, 0.1, 0.2], atol=1e-6)


def round_trip_case():
    @st.composite
    def case(draw):
        n_time = draw(st.integers(1, 3))
        n_lat = draw(st.integers(2, 4))
        n_lon = draw(st.integers(2, 20))  # > 16 spans two value lines per row
        dlat = draw(st.sampled_from([0.5, 1.0, 2.5]))
        dlon = draw(st.sampled_from([0.3, 2.5, 5.0]))
        lat0 = draw(st.integers(-20, 20)) * 0.5
        lon0 = draw(st.integers(-100, 100)) * 0.3
        step = draw(st.sampled_from(["15min", "1h", "2h"]))
        ints = draw(
            st.lists(
                st.integers(-1, 5000),  # 0..500 TECU, the range open_ionex accepts
                min_size=n_time * n_lat * n_lon,
                max_size=n_time * n_lat * n_lon,
            )
        )
        tec = np.array(ints, dtype=np.float64).reshape(n_time, n_lat, n_lon) / 10
        tec[tec < 0] = np.nan  # some missing values
        tec.flat[0] = 12.3  # a file without any value is refused
        with_rms = draw(st.booleans())
        gz = draw(st.booleans())
        coords = {
            "time": pd.date_range("2021-03-04T01:00", periods=n_time, freq=step),
            "lat": np.round(lat0 + dlat * np.arange(n_lat), 6),
            "lon": np.round(lon0 + dlon * np.arange(n_lon), 6),
        }
        data = {"tec": (("time", "lat", "lon"), tec.astype(np.float32))}
        if with_rms:
            data["tec_rms"] = (("time", "lat", "lon"), np.abs(tec[::-1]).astype(np.float32))
        return xr.Dataset(data, coords=coords), gz

    return case()


@settings(max_examples=30, deadline=None)
@given(round_trip_case())
def test_write_read_round_trip(case):
    ds, gz = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("maps.21i.gz" if gz else "maps.21i")
        write_ionex(ds, path)
        assert os.listdir(folder) == [path.name]  # no temporary file left behind
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # the NaN cells, counted
            back = open_ionex(path)
        if gz:
            assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(back.time.values, ds.time.values)
    np.testing.assert_allclose(back.lat.values, ds.lat.values, atol=1e-9)
    np.testing.assert_allclose(back.lon.values, ds.lon.values, atol=1e-9)
    for name in ds.data_vars:
        got = back[name].values
        assert got.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ds[name].values))
        np.testing.assert_array_equal(
            np.round(got.astype(np.float64) * 10), np.round(ds[name].values * 10.0)
        )
    assert set(back.data_vars) == set(ds.data_vars)


def test_written_file_layout(tmp_path):
    values = np.arange(2 * 3 * 20, dtype=np.float32).reshape(2, 3, 20) / 10
    values[0, 2, 0] = np.nan  # north-west corner of the first map
    ds = xr.Dataset(
        {"tec": (("time", "lat", "lon"), values)},
        coords={
            "time": pd.date_range("2024-02-04", periods=2, freq="2h"),
            "lat": [-2.5, 0.0, 2.5],
            "lon": np.arange(-50.0, 50.0, 5.0),
        },
        attrs={"ionex_height_km": 350.0, "mapping_function": "COSZ"},
    )
    path = tmp_path / "out.24i"
    write_ionex(ds, path)
    lines = path.read_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = lines[: lines.index(f"{'':60}END OF HEADER       ") + 1]
    assert all(len(line) == 80 for line in header)
    assert lines[0][60:].strip() == "IONEX VERSION / TYPE"
    assert lines[-1].strip() == "END OF FILE"
    assert any(line.startswith("    -1") and "EXPONENT" in line for line in header)
    assert any(line.startswith("  7200") and "INTERVAL" in line for line in header)
    north = rec(
        f"  {2.5:6.1f}{-50.0:6.1f}{45.0:6.1f}{5.0:6.1f}{350.0:6.1f}", "LAT/LON1/LON2/DLON/H"
    )
    first_row = lines.index(north)  # the first row written is the northernmost
    assert lines[first_row + 1] == "".join(f"{v:5d}" for v in [9999, *range(41, 56)])
    assert lines[first_row + 2] == "".join(f"{v:5d}" for v in range(56, 60))
    with pytest.warns(DataWarning, match=r"1 of 120 TEC values \(in 1 of 2 maps\)"):
        back = open_ionex(path)
    assert back.attrs["ionex_height_km"] == 350.0
    assert back.attrs["mapping_function"] == "COSZ"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ds: ds.assign_coords(lat=[0.0, 1.0, 3.0]), "evenly spaced"),
        (lambda ds: ds.assign_coords(lon=[0.0, 0.05]), "multiples of 0.1"),
        (lambda ds: ds.assign(tec=ds.tec * 1e4), "do not fit"),
        (lambda ds: ds.rename(tec="vtec"), r"tec\(time, lat, lon\)"),
    ],
    ids=["irregular-lat", "fine-lon", "too-large", "no-tec"],
)
def test_write_refuses_what_ionex_cannot_hold(tmp_path, change, message):
    ds = xr.Dataset(
        {"tec": (("time", "lat", "lon"), np.ones((1, 3, 2), dtype=np.float32))},
        coords={"time": pd.to_datetime(["2024-02-04"]), "lat": [-2.5, 0.0, 2.5], "lon": [0.0, 5.0]},
    )
    path = tmp_path / "bad.24i"
    with pytest.raises(IONEXFormatError, match=message) as info:
        write_ionex(change(ds), path)
    assert "bad.24i" in str(info.value)
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_write_refuses_wrong_units_and_repeated_times(tmp_path):
    ds = xr.Dataset(
        {"tec": (("time", "lat", "lon"), np.ones((2, 2, 2), dtype=np.float32), {"units": "m-2"})},
        coords={"time": pd.to_datetime(["2024-02-04"] * 2), "lat": [0.0, 2.5], "lon": [0.0, 5.0]},
    )
    with pytest.raises(UnitsError, match="TECU"):
        write_ionex(ds, tmp_path / "x.24i")
    ds.tec.attrs["units"] = "TECU"
    with pytest.raises(TimeOrderError, match="repeated"):
        write_ionex(ds, tmp_path / "x.24i")


def replace_line(text: str, label: str, content: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line[60:].strip() == label)
    lines[index] = rec(content, label)
    return "\n".join(lines) + "\n"


def bad_files():
    two = [("2020-01-01", grid_values()), ("2020-01-01T01:00", grid_values(1))]
    good = ionex_text(two)
    lines = good.splitlines()
    end_first = lines.index(rec("     1", "END OF TEC MAP"))
    row_record = next(i for i, line in enumerate(lines) if "LAT/LON1" in line)
    short_row = lines[: row_record + 1] + [lines[row_record + 1][:-5]] + lines[row_record + 2 :]
    wrong_lat = list(lines)
    wrong_lat[row_record] = rec("     3.0-180.0 180.0   5.0 450.0", "LAT/LON1/LON2/DLON/H")
    return {
        "not-ionex": ("just some text\n" + good, "not an IONEX file"),
        "empty": ("", "not an IONEX file"),
        "no-end-of-header": (good.split(rec("", "END OF HEADER"))[0], "END OF HEADER"),
        "missing-grid-record": (
            "\n".join(line for line in lines if "LAT1 / LAT2" not in line),
            "LAT1 / LAT2 / DLAT",
        ),
        "cut-in-a-map": ("\n".join(lines[: end_first + 6]), "truncated"),
        "missing-end-of-map": ("\n".join(lines[:end_first] + lines[end_first + 1 :]), "without"),
        "fewer-maps-than-header": (ionex_text(two[:1], n_maps=2), "says 2"),
        "short-row": ("\n".join(short_row), "holds 4 I5 fields"),
        "row-at-wrong-lat": ("\n".join(wrong_lat), "grid is inconsistent"),
        "header-lon-disagrees": (
            replace_line(good, "LON1 / LON2 / DLON", "   -10.0  15.0   5.0"),
            "holds 5 I5 fields",
        ),
        "uneven-lat-record": (
            replace_line(good, "LAT1 / LAT2 / DLAT", "     2.5  -2.0  -2.5"),
            "whole steps",
        ),
        "letters-in-values": (good.replace("  101  102", "  1x1  102", 1), "not an I5 integer"),
        "repeated-epoch": (
            ionex_text([("2020-01-01", grid_values()), ("2020-01-01", grid_values(1))]),
            "two different TEC maps",
        ),
        "rms-fewer-than-tec": (ionex_text(two, rms=two[:1]), "1 RMS maps"),
    }


BAD = bad_files()


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_files_raise_naming_the_file(tmp_path, case):
    text, message = BAD[case]
    path = write(tmp_path, f"{case}.20i", text)
    with pytest.raises(IONEXFormatError, match=message) as info:
        open_ionex(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_repeated_epoch_with_equal_maps_is_accepted(tmp_path):
    maps = [("2020-01-01", grid_values()), ("2020-01-01", grid_values())]
    assert open_ionex(write(tmp_path, "twice.20i", ionex_text(maps))).sizes["time"] == 1


def test_files_on_different_grids(tmp_path):
    first = write(tmp_path, "a.20i", ionex_text([("2020-01-01", grid_values())]))
    lons = (-10.0, -7.5, -5.0, -2.5, 0.0)
    other = ionex_text([("2020-01-02", grid_values())], lons=lons)
    second = write(tmp_path, "b.20i", other)
    with pytest.raises(IONEXFormatError, match="differs from") as info:
        open_ionex([first, second])
    assert info.value.path == str(second)


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        open_ionex(tmp_path / "*.20i")
    with pytest.raises(FileNotFoundError, match="absent.20i"):
        open_ionex(tmp_path / "absent.20i")
    with pytest.raises(FileNotFoundError, match="no path"):
        open_ionex([])


def test_folder_and_a_file_named_twice(tmp_path):
    day1 = write(tmp_path, "codg0010.20i", ionex_text([("2020-01-01", grid_values())]))
    write(tmp_path, "codg0020.20i", ionex_text([("2020-01-02", grid_values(1))]))
    write(tmp_path, ".codg0030.20i.part", "an unfinished download")  # hidden: skipped
    ds = open_ionex(tmp_path)
    assert ds.attrs["source_files"] == "codg0010.20i, codg0020.20i"
    assert ds.sizes["time"] == 2
    assert open_ionex([day1, str(day1)]).attrs["source_files"] == "codg0010.20i"


@pytest.mark.parametrize(
    "raw", [b"\x1f\x8b\x08\x00garbage", b"\x1f\x9d\x90abc\xff\xff\xff\xff"], ids=["gz", "Z"]
)
def test_damaged_compressed_data(tmp_path, raw):
    path = tmp_path / "damaged.20i"
    path.write_bytes(raw)
    with pytest.raises(IONEXFormatError, match="damaged") as info:
        open_ionex(path)
    assert info.value.path == str(path)


def test_source_date_epoch_makes_identical_files(tmp_path, monkeypatch):
    ds = open_ionex(write(tmp_path, "src.24i", ionex_text([("2024-05-11T00:00", grid_values())])))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    write_ionex(ds, tmp_path / "a.24i")
    write_ionex(ds, tmp_path / "b.24i")
    assert (tmp_path / "a.24i").read_bytes() == (tmp_path / "b.24i").read_bytes()
    assert "14-NOV-23 22:13" in (tmp_path / "a.24i").read_text()

"""Bad-input catalogue of the radio-occultation reader and writers (issue 17).

One parametrised test per public entry point: ``open_ro_profiles``, ``write_ionprf``
and ``write_ro_table``. Each case builds one bad input in ``tmp_path`` from a small
real-format file (written by the package's own writers, then damaged) and states what
must happen: a named error (class and message fragments, the file or call named), or a
``DataWarning`` with the counts and a correct result. The cases use the public API
only, so that they also run against older versions of the package.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ionofield as iof
import ionofield.errors as errors
from tests.conftest import plant

T0 = "2024-05-08T20:54:51"
N = 12
ALT = np.linspace(100.0, 650.0, N)
NE = 1e11 + 9e11 * np.exp(-(((ALT - 300.0) / 80.0) ** 2))  # m-3, a plausible F layer


# --------------------------------------------------------------------------- inputs


def ionprf(folder: Path, k: int = 1, **kwargs: Any) -> Path:
    """A small CDAAC-format profile written by the package (12 points)."""
    values = {"time": T0, "alt": ALT, "lat": 30.0, "lon": -114.6, "ne": NE,
              "mission": "COSEQ", **kwargs}
    return iof.write_ionprf(folder / f"ionPrf_C2E{k}.2024.129.20.5{k}.G3{k}_0001.0001_nc",
                            **values)


def set_attrs(path: Path, variable: str | None = None, **attrs: Any) -> Path:
    """Set global attributes (or those of ``variable``) of a netCDF file."""
    with netCDF4.Dataset(path, "a") as ds:
        (ds[variable] if variable else ds).setncatts(attrs)
    return path


def replace_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Replace the one occurrence of ``old`` in the file by ``new`` (same length)."""
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    return path


def csv(folder: Path, rows: list[str], name: str = "table.csv",
        header: str = "time,lat,lon,alt,ne") -> Path:
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def good_rows(ne: np.ndarray = NE, alt: np.ndarray = ALT, time: str = T0) -> list[str]:
    return [f"{time},30,10,{float(a)!r},{float(n)!r}" for a, n in zip(alt, ne, strict=True)]


def mapped_netcdf(folder: Path, epoch: float, units: str = "days since 2000-01-01") -> Path:
    """A per-profile netCDF file read through ``variables=`` (time as a CF number)."""
    path = folder / "my_profile.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("level", N)
        for name, values in (("height", ALT), ("latitude", np.full(N, 10.0)),
                             ("longitude", np.full(N, 20.0)), ("Ne", NE)):
            ds.createVariable(name, "f8", ("level",))[:] = values
        var = ds.createVariable("epoch", "f8", ())
        var.units = units
        var[...] = epoch
    return path


MAPPED = {"alt": "height", "lat": "latitude", "lon": "longitude", "ne": "Ne", "time": "epoch"}


def observations(n: int = N) -> xr.Dataset:
    """A small observations Dataset as open_ro_profiles returns it."""
    time = np.full(n, np.datetime64(T0, "ns"))
    return xr.Dataset({"ne": ("obs", NE[:n])},
                      coords={"time": ("obs", time), "lat": ("obs", np.full(n, 30.0)),
                              "lon": ("obs", np.full(n, 10.0)), "alt": ("obs", ALT[:n]),
                              "profile": ("obs", np.full(n, "P1"))})


# --------------------------------------------------------------------------- outcomes


@dataclass
class Raises:
    """The call raises ``error``; its message holds the named paths and ``fragments``."""

    error: type[Exception]
    fragments: tuple[str, ...]


@dataclass
class Warns:
    """The call warns (DataWarning, one message holding the names and ``fragments``)."""

    fragments: tuple[str, ...]
    check: Callable[[Any], None]


@dataclass
class Quiet:
    """The call succeeds without a DataWarning and ``check`` accepts the result."""

    check: Callable[[Any], None]


@dataclass
class Case:
    """One bad input: ``build(tmp_path)`` gives the call and the texts it must name."""

    id: str
    build: Callable[[Path], tuple[Callable[[], Any], tuple[str, ...]]]
    expect: Raises | Warns | Quiet


def all_of(texts: tuple[str, ...]) -> str:
    """A regular expression matching a text that holds every one of ``texts``."""
    return "(?s)" + "".join(f"(?=.*{re.escape(t)})" for t in texts)


def run_case(case: Case, tmp_path: Path) -> None:
    call, names = case.build(tmp_path)
    expect = case.expect
    if isinstance(expect, Raises):
        with pytest.raises(expect.error, match=all_of((*names, *expect.fragments))):
            call()
    elif isinstance(expect, Warns):
        with pytest.warns(errors.DataWarning, match=all_of((*names, *expect.fragments))):
            result = call()
        expect.check(result)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", errors.DataWarning)
            result = call()
        expect.check(result)


def reader(path_or_paths: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: iof.open_ro_profiles(path_or_paths, **kwargs)


# --------------------------------------------------------------------------- checks


def valid_obs(n: int, **dropped: int) -> Callable[[xr.Dataset], None]:
    """The result holds ``n`` finite, plausible points and the given drop counts."""

    def check(obs: xr.Dataset) -> None:
        assert obs.sizes["obs"] == n
        assert np.isfinite(obs.ne).all() and (obs.ne > 0).all() and (obs.ne <= 1e14).all()
        for name in ("alt", "lat", "lon"):
            assert np.isfinite(obs[name]).all(), name
        assert ((obs.lon >= -180) & (obs.lon < 180)).all()
        for kind, count in dropped.items():
            assert obs.attrs[f"dropped_{kind}"] == count, kind

    return check


def sorted_by_altitude(obs: xr.Dataset) -> None:
    valid_obs(N)(obs)
    np.testing.assert_allclose(obs.alt.values, np.sort(ALT), rtol=1e-6)


def ne_err_kept_as_nan(obs: xr.Dataset) -> None:
    assert obs.sizes["obs"] == 2 * N and "ne_err" in obs
    assert int(obs.ne_err.isnull().sum()) == N  # the ionPrf points: no uncertainty given
    np.testing.assert_allclose(np.sort(obs.ne_err.values[obs.ne_err.notnull().values]),
                               np.sort(0.1 * NE))


# --------------------------------------------------------------------------- open_ro_profiles


def _one(make: Callable[[Path], Path], **kwargs: Any):
    """Build a one-file case: the call reads the file, the message must name it."""

    def build(tmp: Path) -> tuple[Callable[[], Any], tuple[str, ...]]:
        path = make(tmp)
        return reader(path, **kwargs), (str(path),)

    return build


def _two_files_one_utf8_bad(tmp: Path):
    good = ionprf(tmp, 1)
    bad = replace_bytes(ionprf(tmp, 2), b"center", b"c\xffnter")
    return reader([good, bad]), (str(bad), "corrupt")


def _two_bad_files(tmp: Path):
    good = ionprf(tmp, 1)
    utf8 = replace_bytes(ionprf(tmp, 2), b"center", b"c\xffnter")
    cut = ionprf(tmp, 3)
    cut.write_bytes(cut.read_bytes()[:-40])
    return reader([good, utf8, cut]), (str(utf8), str(cut), "2 of 3 files")


def _duplicate(tmp: Path):
    first = ionprf(tmp)
    (tmp / "copy").mkdir()
    copy = ionprf(tmp / "copy")
    return reader([first, copy]), (str(copy), str(first))


def _good_and_all_fill(tmp: Path):
    good = ionprf(tmp, 1)
    empty = plant(ionprf(tmp, 2), ELEC_dens=(slice(None), -999.0))
    return reader([good, empty]), (str(empty), "no valid point", f"{N} fill")


def _two_all_fill(tmp: Path):
    first = plant(ionprf(tmp, 1), ELEC_dens=(slice(None), -999.0))
    second = plant(ionprf(tmp, 2), ELEC_dens=(slice(None), -999.0))
    return reader([first, second]), (str(first), str(second))


def _ne_err_in_some_files(tmp: Path):
    rows = [row + f",P1,{float(0.1 * n)!r}" for row, n in zip(good_rows(), NE, strict=True)]
    table = csv(tmp, rows, header="time,lat,lon,alt,ne,profile,ne_err")
    return reader([ionprf(tmp, 1), table]), ()


def _units_mixed_in_table(tmp: Path):
    rows = []
    for k in range(4):
        scale = 1e-6 if k == 3 else 1.0  # profile P3 written in el/cm3
        rows += [f"{T0},{k},10,{float(a)!r},{float(n * scale)!r},P{k}"
                 for a, n in zip(ALT, NE, strict=True)]
    path = csv(tmp, rows, header="time,lat,lon,alt,ne,profile")
    return reader(path), (str(path), "'P3'", "ne_units='cm-3'")


def _csv_with(*cells: tuple[int, str, str]) -> Callable[[Path], Path]:
    """A CSV table of one profile with some cells replaced: (row, column, text)."""

    def make(tmp: Path) -> Path:
        frame = pd.DataFrame({"time": T0, "lat": 30.0, "lon": 10.0, "alt": ALT, "ne": NE})
        frame = frame.astype(object)
        for row, column, text in cells:
            frame.loc[row, column] = text
        path = tmp / "table.csv"
        frame.to_csv(path, index=False)
        return path

    return make


def _text_file(text: bytes, name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(text)
        return path

    return make


def _cut(keep: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = ionprf(tmp)
        path.write_bytes(path.read_bytes()[:keep])
        return path

    return make


def _flip_dimension_length(tmp: Path) -> Path:
    """The length of the one dimension (12, big-endian int32 after its name) made 1036."""
    path = ionprf(tmp)
    return replace_bytes(path, b"MSL_alt\x00\x00\x00\x00\x0c", b"MSL_alt\x00\x00\x00\x04\x0c")


READER_CASES = [
    # non-finite values
    Case("ionprf-ne-plus-inf",
         _one(lambda t: plant(ionprf(t), ELEC_dens=(3, np.inf))),
         Warns(("1 infinite",), valid_obs(N - 1, infinite=1))),
    Case("csv-ne-plus-inf", _one(_csv_with((3, "ne", "inf"))),
         Warns(("1 infinite",), valid_obs(N - 1, infinite=1))),
    Case("csv-ne-overflowing-1e400", _one(_csv_with((2, "ne", "1e400"))),
         Warns(("1 infinite",), valid_obs(N - 1, infinite=1))),
    Case("ionprf-msl-alt-inf",
         _one(lambda t: plant(ionprf(t), MSL_alt=(2, np.inf))),
         Warns(("1 infinite",), valid_obs(N - 1, infinite=1))),
    Case("ionprf-geo-lon-minus-inf",
         _one(lambda t: plant(ionprf(t), GEO_lon=(4, -np.inf))),
         Warns(("1 infinite",), valid_obs(N - 1, infinite=1, nan=0))),
    Case("csv-ne-err-inf",
         _one(lambda t: csv(t, [r + ",1e9" for r in good_rows()[:-1]] + [good_rows()[-1] + ",inf"],
                            header="time,lat,lon,alt,ne,ne_err")),
         Warns(("1 infinite",), valid_obs(N - 1, infinite=1))),
    # absurd values
    Case("ionprf-one-ne-1e24-el-cm3",
         _one(lambda t: plant(ionprf(t), ELEC_dens=(5, 1e24))),
         Warns(("1 implausible", "1e+14 m-3"), valid_obs(N - 1, implausible=1))),
    Case("ionprf-one-alt-1e30-km",
         _one(lambda t: plant(ionprf(t), MSL_alt=(5, 1e30))),
         Warns(("1 implausible",), valid_obs(N - 1, implausible=1))),
    Case("ionprf-alt-metres-labelled-km",
         _one(lambda t: plant(ionprf(t), MSL_alt=(slice(None), ALT * 1000.0))),
         Raises(errors.UnitsError, ("metres", "'MSL_alt'", "units attribute"))),
    Case("csv-alt-in-metres", _one(lambda t: csv(t, good_rows(alt=ALT * 1000.0))),
         Raises(errors.UnitsError, ("metres", "column 'alt'", "divide it by 1000"))),
    Case("ionprf-ne-in-m3-labelled-el-cm3",
         _one(lambda t: plant(ionprf(t), ELEC_dens=(slice(None), NE))),
         Raises(errors.UnitsError, ("above 1e+14", "ne_units='m-3'"))),
    Case("csv-ne-in-el-cm3", _one(lambda t: csv(t, good_rows(ne=NE / 1e6))),
         Raises(errors.UnitsError, ("below 1e+08", "ne_units='cm-3'"))),
    Case("csv-one-profile-of-four-in-el-cm3", _units_mixed_in_table,
         Raises(errors.UnitsError, ("below 1e+08",))),
    Case("ionprf-latitude-100",
         _one(lambda t: plant(ionprf(t), GEO_lat=(slice(None), 100.0))),
         Raises(errors.ROFormatError, ("latitude", "outside [-90, 90]", "'lat'"))),
    Case("ionprf-longitude-1e30",
         _one(lambda t: plant(ionprf(t), GEO_lon=(slice(None), 1e30))),
         Raises(errors.ROFormatError, ("longitude", "outside [-720, 720]", "'lon'"))),
    # profile shape
    Case("ionprf-altitudes-not-monotonic",
         _one(lambda t: plant(ionprf(t), MSL_alt=([3, 4], ALT[[4, 3]]))),
         Warns(("not monotonic", "sorted by altitude"), sorted_by_altitude)),
    Case("ionprf-every-ne-fill",
         _one(lambda t: plant(ionprf(t), ELEC_dens=(slice(None), -999.0))),
         Raises(errors.ROFormatError, ("no valid point", f"{N} fill"))),
    Case("good-file-and-all-fill-file", _good_and_all_fill,
         Warns(("1 of 2 files",), valid_obs(N, fill=N))),
    Case("two-all-fill-files", _two_all_fill,
         Raises(errors.ManyProblemsError, ("no valid point in any of the 2 files",))),
    Case("alt-window-excludes-every-point", _one(ionprf, min_alt=2000.0),
         Raises(errors.ROFormatError, ("no valid point", "widen min_alt"))),
    Case("csv-header-only", _one(lambda t: csv(t, [])),
         Raises(errors.ROFormatError, ("no valid point",))),
    # damaged files
    Case("ionprf-attribute-name-invalid-utf8",
         _one(lambda t: replace_bytes(ionprf(t), b"center", b"c\xffnter")),
         Raises(errors.ROFormatError, ("corrupt", "download it again"))),
    Case("ionprf-mission-value-invalid-utf8",
         _one(lambda t: replace_bytes(ionprf(t), b"COSEQ", b"C\xc3(EQ")),
         Raises(errors.ROFormatError, ("'mission'", "not UTF-8"))),
    Case("ionprf-filestamp-invalid-utf8",
         _one(lambda t: replace_bytes(ionprf(t), b"C2E1.2024", b"C\xffE1.2024")),
         Raises(errors.ROFormatError, ("'fileStamp'", "not UTF-8"))),
    Case("ionprf-density-units-not-text",
         _one(lambda t: set_attrs(ionprf(t), "ELEC_dens", units=5.0)),
         Raises(errors.ROFormatError, ("'units' of 'ELEC_dens'", "not text"))),
    Case("ionprf-truncated-in-data", _one(_cut(-40)),
         Raises(errors.ROFormatError, ("truncated", "download the file again"))),
    Case("ionprf-truncated-in-header", _one(_cut(200)),
         Raises(errors.ROFormatError, ("truncated or corrupt",))),
    Case("ionprf-dimension-length-flipped", _one(_flip_dimension_length),
         Raises(errors.ROFormatError, ("truncated",))),
    Case("ionprf-magic-flipped",
         _one(lambda t: replace_bytes(ionprf(t), b"CDF\x01\x00", b"CDG\x01\x00")),
         Raises(errors.ROFormatError, ("cannot be read as netCDF",))),
    Case("ionprf-year-1000",
         _one(lambda t: set_attrs(ionprf(t), year=np.int32(1000))),
         Raises(errors.ROFormatError, ("not a valid time",))),
    Case("ionprf-month-13",
         _one(lambda t: set_attrs(ionprf(t), month=np.int32(13))),
         Raises(errors.ROFormatError, ("not a valid time",))),
    Case("mapped-netcdf-time-in-year-4737",
         _one(lambda t: mapped_netcdf(t, 1e6), variables=MAPPED),
         Raises(errors.ROFormatError, ("year 4737", "'epoch'"))),
    Case("mapped-netcdf-time-inf",
         _one(lambda t: mapped_netcdf(t, np.inf), variables=MAPPED),
         Raises(errors.ROFormatError, ("'epoch'", "infinite"))),
    Case("mapped-netcdf-time-units-garbage",
         _one(lambda t: mapped_netcdf(t, 3.0, units="fortnights after lunch"), variables=MAPPED),
         Raises(errors.ROFormatError, ("'epoch'", "not CF time units", "seconds since"))),
    Case("html-page-saved-as-ionprf",
         _one(_text_file(b"<html>404 Not Found</html>", "ionPrf_C2E1.2024.129.20.51.G31_nc")),
         Raises(errors.ROFormatError, ("cannot be read as netCDF",))),
    Case("csv-binary-garbage", _one(_text_file(bytes(range(256)) * 4, "table.csv")),
         Raises(errors.ROFormatError, ("cannot be read as CSV",))),
    Case("csv-empty-file", _one(_text_file(b"", "table.csv")),
         Raises(errors.ROFormatError, ("cannot be read as CSV",))),
    Case("csv-html-page", _one(_text_file(b"<html>\n<body>gone</body>\n</html>\n", "t.csv")),
         Raises(errors.ROFormatError, ("no column for", "variables="))),
    Case("csv-ne-text", _one(_csv_with((1, "ne", "abc"))),
         Raises(errors.ROFormatError, ("column 'ne' is not numeric",))),
    Case("csv-time-garbage", _one(_csv_with((1, "time", "yesterday"))),
         Raises(errors.ROFormatError, ("'yesterday'", "ISO 8601"))),
    Case("netcdf-without-elec-dens",
         _one(lambda t: mapped_netcdf(t, 3.0)),
         Raises(errors.ROFormatError, ("ELEC_dens", "variables="))),
    # several files
    Case("good-file-and-invalid-utf8-file", _two_files_one_utf8_bad,
         Raises(errors.ROFormatError, ("download it again",))),
    Case("good-file-and-two-damaged-files", _two_bad_files,
         Raises(errors.ManyProblemsError, ("nothing was read", "truncated"))),
    Case("duplicate-profile-in-two-folders", _duplicate,
         Raises(errors.ROFormatError, ("already read from", "remove one of the duplicate"))),
    Case("ne-err-in-only-some-files", _ne_err_in_some_files, Quiet(ne_err_kept_as_nan)),
]


@pytest.mark.parametrize("case", READER_CASES, ids=lambda c: c.id)
def test_open_ro_profiles_bad_input(tmp_path, case):
    run_case(case, tmp_path)


# --------------------------------------------------------------------------- write_ionprf


def _write(**kwargs: Any):
    """Build a write_ionprf case: the message must name the call and the file."""

    def build(tmp: Path) -> tuple[Callable[[], Any], tuple[str, ...]]:
        path = tmp / "ionPrf_C2E1.2024.129.20.51.G31_0001.0001_nc"
        return (lambda: ionprf(tmp, **kwargs)), (f"write_ionprf({path})",)

    return build


def _write_to_folder(tmp: Path):
    return (lambda: iof.write_ionprf(tmp, time=T0, alt=ALT, lat=0.0, lon=0.0, ne=NE),
            (f"write_ionprf({tmp})", "folder"))


WRITE_IONPRF_CASES = [
    Case("alt-empty", _write(alt=[]), Raises(errors.ConfigError, ("alt", "not empty"))),
    Case("lat-of-another-length", _write(lat=[1.0, 2.0]),
         Raises(errors.ConfigError, ("GEO_lat", "like alt"))),
    Case("two-times", _write(time=[T0, T0]), Raises(errors.ConfigError, ("one valid time",))),
    Case("time-garbage", _write(time="yesterday"),
         Raises(errors.ConfigError, ("'yesterday'", "ISO 8601"))),
    Case("alt-strings", _write(alt=["low"] * N), Raises(errors.ConfigError, ("alt", "numeric"))),
    Case("ne-plus-inf", _write(ne=np.where(np.arange(N) == 2, np.inf, NE)),
         Raises(errors.ConfigError, ("ne holds 1 infinite", "NaN"))),
    Case("ne-in-el-cm3", _write(ne=NE / 1e6),
         Raises(errors.UnitsError, ("el/cm3", "multiply by 1e6"))),
    Case("alt-in-metres", _write(alt=ALT * 1000.0),
         Raises(errors.UnitsError, ("metres", "divide by 1000"))),
    Case("latitude-100", _write(lat=100.0), Raises(errors.ConfigError, ("latitude", "'lat'"))),
    Case("path-is-a-folder", _write_to_folder, Raises(errors.ConfigError, ())),
    Case("attribute-of-no-netcdf-type", _write(extra=object()),
         Raises(errors.ConfigError, ("extra=", "text or numbers"))),
]


@pytest.mark.parametrize("case", WRITE_IONPRF_CASES, ids=lambda c: c.id)
def test_write_ionprf_bad_input(tmp_path, case):
    run_case(case, tmp_path)


# --------------------------------------------------------------------------- write_ro_table


def _table(obs: Callable[[], Any], name: str = "table.csv"):
    """Build a write_ro_table case: the message must name the call and the file."""

    def build(tmp: Path) -> tuple[Callable[[], Any], tuple[str, ...]]:
        path = tmp / name
        return (lambda: iof.write_ro_table(obs(), path)), (f"write_ro_table({path})",)

    return build


def _volume() -> xr.Dataset:
    shape = (1, 2, 2, 2)
    return xr.Dataset({"ne": (("time", "alt", "lat", "lon"), np.full(shape, 1e11))},
                      coords={"time": [np.datetime64(T0, "ns")], "alt": [300.0, 400.0],
                              "lat": [0.0, 5.0], "lon": [0.0, 5.0]})


def _folder_named_csv(tmp: Path):
    folder = tmp / "out.csv"
    folder.mkdir()
    return ((lambda: iof.write_ro_table(observations(), folder)),
            (f"write_ro_table({folder})", "folder"))


WRITE_RO_TABLE_CASES = [
    Case("suffix-txt", _table(observations, "table.txt"),
         Raises(errors.ConfigError, ("'.txt'", ".csv or .nc"))),
    Case("without-ne", _table(lambda: observations().drop_vars("ne")),
         Raises(errors.ConfigError, ("lacks ['ne']",))),
    Case("volume-as-csv", _table(_volume), Raises(errors.ConfigError, ("1-D on 'obs'",))),
    Case("volume-as-netcdf", _table(_volume, "table.nc"),
         Raises(errors.ConfigError, ("1-D on 'obs'", "ionofield.to_netcdf"))),
    Case("dataarray", _table(lambda: observations().ne),
         Raises(errors.ConfigError, ("DataArray", "open_ro_profiles"))),
    Case("no-observation", _table(lambda: observations().isel(obs=slice(0, 0))),
         Raises(errors.ConfigError, ("no observation",))),
    Case("numeric-times",
         _table(lambda: observations().assign_coords(time=("obs", np.arange(N, dtype=float)))),
         Raises(errors.ConfigError, ("'time' holds numbers", "decode_cf"))),
    Case("ne-infinite", _table(lambda: observations().assign(ne=observations().ne * np.inf)),
         Raises(errors.ConfigError, (f"ne holds {N} infinite",))),
    Case("ne-in-el-cm3", _table(lambda: observations().assign(ne=observations().ne / 1e6)),
         Raises(errors.UnitsError, ("'P1'", "multiply by 1e6"))),
    Case("path-is-a-folder", _folder_named_csv, Raises(errors.ConfigError, ())),
]


@pytest.mark.parametrize("case", WRITE_RO_TABLE_CASES, ids=lambda c: c.id)
def test_write_ro_table_bad_input(tmp_path, case):
    run_case(case, tmp_path)

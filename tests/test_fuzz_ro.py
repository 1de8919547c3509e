"""Property-based fuzzing of the radio-occultation readers (issue 17).

Real-format files are damaged at random: the bytes of ``ionPrf`` netCDF-3 files (one
written by :func:`ionofield.write_ionprf`, one CDAAC-format sample of
``data_samples/ionprf``) and of a netCDF-4 table are flipped, overwritten, replaced by
special float32 values or cut short; the cells and lines of a CSV table are replaced by
nasty text, duplicated or removed. Whatever the damage, ``open_ro_profiles`` either
raises an :class:`~ionofield.errors.IonofieldError` or returns a valid observations
Dataset (finite positive plausible ``ne``, finite coordinates in range, dimension
``obs``): never a foreign exception, never a hang.
"""

from __future__ import annotations

import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ionofield as iof
from ionofield.errors import DataWarning, IonofieldError
from ionofield.io.ro import ALT_PLAUSIBLE_KM, NE_PLAUSIBLE_M3
from tests.conftest import time_limit

SAMPLE = (Path(__file__).resolve().parents[1] / "data_samples" / "ionprf"
          / "ionPrf_C2E1.2024.131.16.07.G05_0001.nc")
SECONDS = 20  # a read of these small files takes milliseconds; longer is a hang
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


def _originals() -> dict[str, bytes]:
    """The undamaged files, by name: two ionPrf files, a CSV table, a netCDF-4 table."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        alt = np.linspace(90.0, 700.0, 10)
        written = iof.write_ionprf(
            folder / "ionPrf_C2E1.2024.129.20.57.G31_0001.0001_nc", time="2024-05-08T20:57:10",
            alt=alt, lat=np.linspace(30.0, 32.0, 10), lon=245.4,
            ne=1e10 + 1e12 * np.exp(-(((alt - 300.0) / 70.0) ** 2)))
        obs = iof.open_ro_profiles([written, SAMPLE]).isel(obs=slice(0, 40))
        obs = obs.assign(ne_err=0.1 * obs.ne)
        files = {written.name: written, SAMPLE.name: SAMPLE,
                 "table.csv": iof.write_ro_table(obs, folder / "table.csv"),
                 "table.nc": iof.write_ro_table(obs, folder / "table.nc")}
        return {name: path.read_bytes() for name, path in files.items()}


ORIGINALS = _originals()
IONPRF = [name for name in ORIGINALS if "ionPrf" in name]


def assert_valid(obs: xr.Dataset) -> None:
    """An observations Dataset as DESIGN.md section 2 defines it, with plausible values."""
    assert obs.sizes["obs"] > 0
    assert all(obs[name].dims == ("obs",) for name in obs.variables)
    ne = obs.ne.values
    assert np.isfinite(ne).all() and (ne > 0).all() and (ne <= NE_PLAUSIBLE_M3[1]).all()
    alt = obs.alt.values
    assert np.isfinite(alt).all()
    assert ((alt >= ALT_PLAUSIBLE_KM[0]) & (alt <= ALT_PLAUSIBLE_KM[1])).all()
    assert (np.abs(obs.lat.values) <= 90.0).all()
    assert ((obs.lon.values >= -180.0) & (obs.lon.values < 180.0)).all()
    assert not np.isnat(obs.time.values).any()
    assert all(obs.attrs[key] >= 0 for key in obs.attrs if key.startswith("dropped_"))


def read_damaged(name: str, data: bytes) -> None:
    """Read ``data`` saved as ``name``: an ionofield error or a valid Dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        with time_limit(SECONDS, "open_ro_profiles"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            try:
                obs = iof.open_ro_profiles(path)
            except IonofieldError as exc:
                assert str(path) in str(exc)
                return
    assert_valid(obs)


SPECIAL = [np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 0.0, -0.0, 1e-45, 1e24, -999.0, 1e6]


@st.composite
def damaged_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with bytes flipped, overwritten, set to a float32, or cut short."""
    data = bytearray(original)
    kind = draw(st.sampled_from(["flip", "overwrite", "float", "truncate"]))
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 4))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            data[at:at + 4] = draw(st.binary(min_size=4, max_size=4))
        else:
            data[at:at + 4] = struct.pack(">f", draw(st.sampled_from(SPECIAL)))
    return bytes(data)


@st.composite
def damaged_ionprf(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(IONPRF))
    return name, draw(damaged_bytes(ORIGINALS[name]))


CELLS = ["inf", "-inf", "nan", "", "1e400", "-1e400", "-999", "abc", "1e24", "0", "-1",
         "2024-13-45T00:00", "NaT", "\x00", "\u00e9", '"', ",", "1e-320", "9" * 400,
         "2262-04-12T00:00", "1677-01-01", "1e30", "-1e30", "361", "-91", "\ufffd"]


@st.composite
def damaged_csv(draw: st.DrawFn) -> bytes:
    """The CSV table with cells replaced, lines duplicated or removed, or bytes damaged."""
    original = ORIGINALS["table.csv"]
    kind = draw(st.sampled_from(["cells", "lines", "bytes"]))
    if kind == "bytes":
        return draw(damaged_bytes(original))
    lines = original.decode().splitlines()
    for _ in range(draw(st.integers(1, 5))):
        row = draw(st.integers(0, len(lines) - 1))
        if kind == "lines":
            if draw(st.booleans()):
                del lines[row]
            else:
                lines.insert(row, lines[row])
            if not lines:
                break
            continue
        cells = lines[row].split(",")
        column = draw(st.integers(0, len(cells) - 1))
        cells[column] = draw(st.sampled_from(CELLS) | st.text(max_size=12))
        lines[row] = ",".join(cells)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def test_originals_read_back():
    for name in ORIGINALS:
        read_damaged(name, ORIGINALS[name])


@settings(FUZZ, max_examples=200)
@given(damaged=damaged_ionprf())
def test_damaged_ionprf_is_refused_by_name_or_read_validly(damaged):
    read_damaged(*damaged)


@settings(FUZZ, max_examples=150)
@given(data=damaged_csv())
def test_damaged_csv_table_is_refused_by_name_or_read_validly(data):
    read_damaged("table.csv", data)


@settings(FUZZ, max_examples=50)
@given(data=damaged_bytes(ORIGINALS["table.nc"]))
def test_damaged_netcdf4_table_is_refused_by_name_or_read_validly(data):
    read_damaged("table.nc", data)


@pytest.mark.parametrize("keep", range(0, len(ORIGINALS[IONPRF[0]]), 29))
def test_every_truncation_of_an_ionprf_is_refused(keep):
    name = IONPRF[0]
    with pytest.raises(IonofieldError, match="truncated|cannot be read|corrupt"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(ORIGINALS[name][:keep])
            iof.open_ro_profiles(path)

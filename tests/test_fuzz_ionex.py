"""Property-based fuzzing of the IONEX reader on mutated real-format files.

A small, valid IONEX file is written once with :func:`ionofield.write_ionex` (coarse
grid, TEC and RMS maps, rows spanning two value lines) and then damaged: bytes
flipped, the file cut, lines deleted or repeated, digits of header records changed,
with or without gzip (damaging the text or the compressed stream). Whatever comes
in, :func:`ionofield.open_ionex` must either raise an error of :mod:`ionofield.errors`
that names the file, or return a valid Dataset: ``tec(time, lat, lon)`` finite or NaN
within ``0..TEC_MAX``, strictly increasing times, ascending axes on the sphere. It
must never raise a foreign exception nor hang.
"""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import ionofield as iof
from ionofield.errors import DataWarning, IonofieldError, ManyProblemsError
from ionofield.io.ionex import TEC_MAX
from tests.conftest import time_limit
from tests.test_bad_ionex import dataset

SECONDS_PER_READ = 20  # a read of these tiny files takes milliseconds: more is a hang


def base_dataset(day: str) -> xr.Dataset:
    """Three hourly TEC and RMS maps on the catalogue's coarse grid (two lines per row)."""
    return dataset(start=day)


def header_digit_positions(text: bytes) -> list[int]:
    """Byte offsets of the digits in columns 1-60 of the header records."""
    positions = []
    start = 0
    for line in text[: text.index(b"END OF HEADER")].split(b"\n"):
        positions += [start + k for k, c in enumerate(line[:60]) if chr(c).isdigit()]
        start += len(line) + 1
    return positions


@dataclass(frozen=True)
class Mutation:
    """One way of damaging a file; ``at`` is taken modulo the length it indexes."""

    kind: str
    at: int
    byte: int
    gz: bool

    def apply(self, text: bytes) -> bytes:
        """The damaged bytes (gzip-compressed when ``gz``, or for the ``gz-*`` kinds)."""
        if self.kind.startswith("gz-"):
            packed = gzip.compress(text, mtime=0)
            at = self.at % len(packed)
            if self.kind == "gz-flip":
                return packed[:at] + bytes([self.byte]) + packed[at + 1 :]
            return packed[:at]
        lines = text.split(b"\n")
        if self.kind == "flip":
            at = self.at % len(text)
            data = text[:at] + bytes([self.byte]) + text[at + 1 :]
        elif self.kind == "cut":
            data = text[: self.at % len(text)]
        elif self.kind in ("delete", "repeat"):
            at = self.at % len(lines)
            copies = [] if self.kind == "delete" else [lines[at], lines[at]]
            data = b"\n".join(lines[:at] + copies + lines[at + 1 :])
        else:  # header-digit
            digits = header_digit_positions(text)
            at = digits[self.at % len(digits)]
            char = b"0123456789- ."[self.byte % 13]
            data = text[:at] + bytes([char]) + text[at + 1 :]
        return gzip.compress(data, mtime=0) if self.gz else data


MUTATIONS = st.builds(
    Mutation,
    kind=st.sampled_from(["flip", "cut", "delete", "repeat", "header-digit", "gz-flip", "gz-cut"]),
    at=st.integers(0, 2**20),
    byte=st.integers(0, 255),
    gz=st.booleans(),
)


def read(paths: list[Path]) -> xr.Dataset | IonofieldError:
    """open_ionex, quietly: the Dataset, or the ionofield error it raised."""
    with time_limit(SECONDS_PER_READ, "open_ionex"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            return iof.open_ionex(paths)
        except IonofieldError as err:
            return err


def assert_valid(ds: xr.Dataset) -> None:
    """The properties every Dataset open_ionex returns has."""
    assert ds.tec.dims == ("time", "lat", "lon")
    for name in ds.data_vars:
        values = ds[name].values
        assert values.dtype == np.float32
        finite = values[~np.isnan(values)]
        assert ((finite >= 0.0) & (finite <= TEC_MAX)).all(), name
    assert not np.isnan(ds.tec.values).all()
    assert ds.time.dtype == np.dtype("datetime64[ns]")
    assert (np.diff(ds.time.values) > np.timedelta64(0)).all()
    for axis, bound in (("lat", 90.0), ("lon", 180.0)):
        values = ds[axis].values
        assert values.size >= 2 and (np.diff(values) > 0).all()
        assert (np.abs(values) <= bound).all()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes | Path]:
    """The base file's text, a good file of the next day, and where to write."""
    folder = tmp_path_factory.mktemp("fuzz")
    for day, name in (("2024-05-10", "base0010.24i"), ("2024-05-11", "good0020.24i")):
        iof.write_ionex(base_dataset(day), folder / name)
    return {
        "text": (folder / "base0010.24i").read_bytes(),
        "good": folder / "good0020.24i",
        "damaged": folder / "damaged0010.24i",
    }


def test_the_base_file_is_valid(files):
    """The fuzz starts from a valid file (else every case would be an error)."""
    ds = iof.open_ionex(files["damaged"].parent / "base0010.24i")
    assert_valid(ds)
    assert ds.sizes == {"time": 3, "lat": 11, "lon": 19}
    assert "tec_rms" in ds


FUZZ = settings(max_examples=150, deadline=None)


@FUZZ
@given(mutation=MUTATIONS)
def test_a_damaged_file_gives_a_named_error_or_a_valid_dataset(files, mutation):
    path = files["damaged"]
    path.write_bytes(mutation.apply(files["text"]))
    result = read([path])
    if isinstance(result, IonofieldError):
        assert str(path) in str(result), f"{type(result).__name__} lacks the file: {result}"
    else:
        assert_valid(result)


@FUZZ
@given(mutation=MUTATIONS)
def test_a_damaged_file_next_to_a_good_one(files, mutation):
    """In a two-day read, a damaged day gives its own error (not a foreign one) or a
    valid series; the good file is never blamed."""
    path = files["damaged"]
    path.write_bytes(mutation.apply(files["text"]))
    result = read([path, files["good"]])
    if isinstance(result, IonofieldError):
        assert not isinstance(result, ManyProblemsError), result
        assert path.name in str(result), f"{type(result).__name__} lacks the file: {result}"
    else:
        assert_valid(result)

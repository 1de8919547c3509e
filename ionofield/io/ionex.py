"""Read and write IONEX 1.0 global ionosphere maps (vertical TEC).

IONEX is the text format in which the IGS analysis centres (CODE, ESA, JPL, CAS,
UPC, the IGS combination) publish global maps of vertical total electron content.
A file holds an 80-column header (label in columns 61-80), optional auxiliary
blocks (differential code biases), then ``START OF TEC MAP`` blocks: for each
latitude a ``LAT/LON1/LON2/DLON/H`` record followed by the values of that row as
integers in fixed-width ``I5`` fields, 16 per line, scaled by ``10**EXPONENT``,
with 9999 for a missing value. ``START OF RMS MAP`` blocks carry the 1-sigma
errors on the same grid.

:func:`open_ionex` reads one or many files (plain, gzip or Unix-compress) into a
``tec(time, lat, lon)`` Dataset in TECU; :func:`write_ionex` writes such a
Dataset back to IONEX 1.0.

Both check what they carry against the ionosphere: vertical TEC lies in
``0..TEC_MAX`` TECU. A map whose values are off as a whole (a wrong ``EXPONENT``) is
refused, single cells outside the range are dropped to NaN with a
:class:`~ionofield.errors.DataWarning` that gives the counts.

Reader and writer stay in one module (about 1100 lines) because they share the
format's grammar: the header labels, the record layouts and the exponent,
missing-value and TEC-range rules are defined once here and used both ways, which
is what keeps ``write_ionex`` followed by ``open_ionex`` an exact round trip.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import unlzw3
import xarray as xr

from ionofield._files import PathLike, atomic_path, expand_paths
from ionofield._version import __version__
from ionofield.errors import (
    DataWarning,
    IONEXFormatError,
    IonofieldError,
    ManyProblemsError,
    TimeOrderError,
    UnitsError,
)
from ionofield.io.cf import attributes
from ionofield.timeutil import to_datetime64

logger = logging.getLogger(__name__)

__all__ = ["TEC_MAX", "open_ionex", "write_ionex"]

#: The IONEX value that means "no value available".
MISSING = 9999

#: The largest vertical TEC (and TEC RMS) accepted, in TECU. The highest values
#: in the global maps of the strongest storms are about 200-300 TECU; 500 leaves
#: room for any real ionosphere and refuses the 999.8 TECU of a saturated I5 field.
TEC_MAX = 500.0

_GZIP_MAGIC = b"\x1f\x8b"
_COMPRESS_MAGIC = b"\x1f\x9d"
_FIELD = 5  # width of an I5 value field
_PER_LINE = 16  # I5 values per data line
_WRITE_EXPONENT = -1
_EXPONENT_LIMIT = 9  # |EXPONENT| above this is a corrupt record, not a scale
# The years an epoch may hold: GPS time starts in 1980 (no map is older) and
# datetime64[ns] ends in 2262 (later years would wrap around silently).
_YEARS = (1980, 2261)
_AXIS_POINTS = 10_000  # more points on a header axis is a corrupt record

# Every record label of IONEX 1.0, longest first, so that a label can be found at
# the end of a line that is not padded to 80 columns or whose content overflows
# column 60.
_LABELS = tuple(
    sorted(
        (
            "IONEX VERSION / TYPE",
            "PGM / RUN BY / DATE",
            "DESCRIPTION",
            "COMMENT",
            "EPOCH OF FIRST MAP",
            "EPOCH OF LAST MAP",
            "INTERVAL",
            "# OF MAPS IN FILE",
            "MAPPING FUNCTION",
            "ELEVATION CUTOFF",
            "OBSERVABLES USED",
            "# OF STATIONS",
            "# OF SATELLITES",
            "BASE RADIUS",
            "MAP DIMENSION",
            "HGT1 / HGT2 / DHGT",
            "LAT1 / LAT2 / DLAT",
            "LON1 / LON2 / DLON",
            "EXPONENT",
            "START OF AUX DATA",
            "END OF AUX DATA",
            "END OF HEADER",
            "START OF TEC MAP",
            "END OF TEC MAP",
            "START OF RMS MAP",
            "END OF RMS MAP",
            "START OF HEIGHT MAP",
            "END OF HEIGHT MAP",
            "EPOCH OF CURRENT MAP",
            "LAT/LON1/LON2/DLON/H",
            "END OF FILE",
            "PRN / BIAS / RMS",
            "STATION / BIAS / RMS",
        ),
        key=len,
        reverse=True,
    )
)
_LABEL_SET = frozenset(_LABELS)
_PGM = "PGM / RUN BY / DATE"
_REQUIRED = (
    "# OF MAPS IN FILE",
    "BASE RADIUS",
    "HGT1 / HGT2 / DHGT",
    "LAT1 / LAT2 / DLAT",
    "LON1 / LON2 / DLON",
)
@dataclass
class _Grid:
    """The geometry a file's header declares (latitudes in file order)."""

    lat: np.ndarray  # degrees, shape [n_lat]
    lon: np.ndarray  # degrees, shape [n_lon]
    height_km: float
    base_radius_km: float

    def same_as(self, other: _Grid) -> bool:
        return (
            self.lat.shape == other.lat.shape
            and self.lon.shape == other.lon.shape
            and np.allclose(self.lat, other.lat)
            and np.allclose(self.lon, other.lon)
            and np.isclose(self.height_km, other.height_km)
            and np.isclose(self.base_radius_km, other.base_radius_km)
        )

    def describe(self) -> str:
        return (
            f"lat {self.lat[0]:g}..{self.lat[-1]:g} ({self.lat.size}), "
            f"lon {self.lon[0]:g}..{self.lon[-1]:g} ({self.lon.size}), "
            f"height {self.height_km:g} km, base radius {self.base_radius_km:g} km"
        )


@dataclass
class _MapText:
    """One map block as read: its epoch, exponent and the joined I5 value text."""

    epoch: np.datetime64
    exponent: int
    exponent_line: int  # 1-based line of the EXPONENT record in force, 0 for the default
    text: str
    line: int  # 1-based line number of the START OF ... MAP record


@dataclass
class _IonexFile:
    """Everything read from one IONEX file (maps in file order, rows in file order)."""

    path: str
    grid: _Grid
    times: np.ndarray  # datetime64[ns], shape [n_maps]
    tec: np.ndarray  # float32 TECU, shape [n_maps, n_lat, n_lon]
    rms: np.ndarray | None  # like tec, or None when absent or not asked for
    mapping_function: str
    program: str
    run_by: str
    date: str
    repairs: list[str]  # what was dropped or reordered, one clause each, for the warning

    def interval(self) -> np.timedelta64 | None:
        """The most frequent step between distinct map epochs (None for one map)."""
        steps = np.diff(np.unique(self.times))
        if not steps.size:
            return None
        values, counts = np.unique(steps, return_counts=True)
        return values[np.argmax(counts)]


def _split_record(line: str) -> tuple[str, str]:
    """Split a header-style record into (label, content).

    The label sits in columns 61-80; lines that are not padded to 80 columns, or
    whose content spills past column 60, are matched against the known labels at
    the end of the line.
    """
    body = line.rstrip()
    label = body[60:].strip()
    if label in _LABEL_SET:
        return label, body[:60]
    for known in _LABELS:
        if body.endswith(known):
            return known, body[: len(body) - len(known)]
    return label, body[:60]


def _numbers(
    content: str, count: int, *, skip: int, width: int, path: str, line: int, what: str
) -> list[float]:
    """Parse ``count`` numbers of a Fortran fixed-width record.

    Whitespace-separated numbers are accepted when there are exactly ``count`` of
    them (writers that ignore the column layout); otherwise the record is cut
    into fields of ``width`` characters after ``skip`` columns, which also reads
    numbers that touch (``87.5-180.0``).
    """
    tokens = content.split()
    if len(tokens) != count:
        tokens = [content[skip + k * width : skip + (k + 1) * width] for k in range(count)]
    try:
        numbers = [float(t) for t in tokens]
    except ValueError:
        numbers = []
    if len(numbers) != count or not np.isfinite(numbers).all():
        raise IONEXFormatError(
            path,
            f"line {line}: cannot read {count} numbers from the {what} record "
            f"{content.rstrip()!r}; the file is corrupt, replace it",
        )
    return numbers


def _epoch(content: str, *, path: str, line: int, what: str) -> np.datetime64:
    """Parse a ``6I6`` epoch record (year, month, day, hour, minute, second)."""
    year, month, day, hour, minute, second = _numbers(
        content, 6, skip=0, width=6, path=path, line=line, what=what
    )
    if 0 <= year < 100:  # two-digit years of early files: 80-99 -> 19xx, 00-79 -> 20xx
        year += 1900 if year >= 80 else 2000
    invalid = IONEXFormatError(
        path,
        f"line {line}: {what} {content.strip()!r} is not a valid epoch (a year "
        f"{_YEARS[0]}..{_YEARS[1]}, hour 0..24, minute 0..59, second 0..60); the file is "
        "corrupt, replace it",
    )
    if not (
        _YEARS[0] <= year <= _YEARS[1]
        and 0 <= hour <= 24
        and 0 <= minute < 60
        and 0 <= second <= 60
    ):
        raise invalid
    try:
        date = np.datetime64(f"{int(year):04d}-{int(month):02d}-{int(day):02d}", "ns")
    except ValueError:
        raise invalid from None
    offset_ns = round((hour * 3600.0 + minute * 60.0 + second) * 1e9)
    return date + np.timedelta64(offset_ns, "ns")


def _axis(first: float, last: float, step: float, *, path: str, what: str) -> np.ndarray:
    """Return the grid points ``first, first + step, ..., last`` of a header axis record."""
    record = f"{what}1/{what}2/D{what} = {first:g} {last:g} {step:g}"
    if step == 0:
        raise IONEXFormatError(path, f"{record} has a zero step; the header is corrupt")
    count = (last - first) / step
    if count < 0 or abs(count - round(count)) > 1e-6:
        raise IONEXFormatError(
            path,
            f"{record}: {last:g} is not reached from {first:g} in whole steps; "
            "the header is corrupt",
        )
    low, high = (-90.0, 90.0) if what == "LAT" else (-180.0, 360.0)
    if not 1 <= round(count) <= _AXIS_POINTS or min(first, last) < low or max(first, last) > high:
        raise IONEXFormatError(
            path,
            f"{record}: a map axis needs 2..{_AXIS_POINTS + 1} points within {low:g}..{high:g} "
            "degrees; the header is corrupt, replace the file",
        )
    return np.round(first + step * np.arange(round(count) + 1), 6)


def _decompress(raw: bytes, path: str) -> bytes:
    """Undo gzip or Unix ``compress`` (detected by magic bytes, not the name)."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise IONEXFormatError(
                path, f"gzip data is damaged ({err}); download the file again"
            ) from None
    if raw[:2] == _COMPRESS_MAGIC:
        return _uncompress_z(raw, path)
    return raw


def _uncompress_z(raw: bytes, path: str) -> bytes:
    """Undo Unix ``compress`` (LZW).

    The system ``gzip`` reads this format about 40 times faster than the
    pure-Python ``unlzw3``; ``unlzw3`` is the fallback where ``gzip`` is absent
    or fails, and gives the error message for damaged data.
    """
    executable = shutil.which("gzip")
    if executable is not None:
        result = subprocess.run([executable, "-dc"], input=raw, capture_output=True, check=False)
        if result.returncode == 0:
            return result.stdout
    try:
        return unlzw3.unlzw(raw)
    except (ValueError, IndexError) as err:
        raise IONEXFormatError(
            path, f"Unix-compress (.Z) data is damaged ({err}); download the file again"
        ) from None


def _decode_i5(text: str) -> tuple[np.ndarray, int]:
    """Decode concatenated right-justified ``I5`` fields.

    Parameters
    ----------
    text
        The fields, 5 characters each, with no separators (values may touch:
        ``"99999999"`` is two fields when preceded by two spaces).

    Returns
    -------
    values : numpy.ndarray
        int64, shape [len(text) // 5].
    bad : int
        Index of the first field that is not an I5 integer (spaces, an optional
        minus sign, then digits), or -1 when all are.
    """
    chars = np.frombuffer(text.encode("latin-1"), dtype=np.uint8).reshape(-1, _FIELD)
    digit = (chars >= ord("0")) & (chars <= ord("9"))
    minus = chars == ord("-")
    nonblank = chars != ord(" ")
    started = np.logical_or.accumulate(nonblank, axis=1)
    first = nonblank & ~np.pad(started[:, :-1], ((0, 0), (1, 0)))
    allowed = np.where(started, digit | (first & minus), True)
    valid = allowed.all(axis=1) & digit[:, -1]
    weights = 10 ** np.arange(_FIELD - 1, -1, -1, dtype=np.int64)
    values = np.where(digit, chars.astype(np.int64) - ord("0"), 0) @ weights
    values = np.where(minus.any(axis=1), -values, values)
    bad = np.flatnonzero(~valid)
    return values, int(bad[0]) if bad.size else -1


def _exponent(content: str, *, path: str, line: int) -> tuple[int, int]:
    """Parse an ``EXPONENT`` record into (exponent, line)."""
    (value,) = _numbers(content, 1, skip=0, width=6, path=path, line=line, what="EXPONENT")
    if value != round(value) or abs(value) > _EXPONENT_LIMIT:
        raise IONEXFormatError(
            path,
            f"line {line}: EXPONENT {value:g} is not an integer within "
            f"-{_EXPONENT_LIMIT}..{_EXPONENT_LIMIT}: the record is corrupt; global maps use "
            "EXPONENT -1 (values in 0.1 TECU): correct the record or replace the file",
        )
    return int(value), line


def _parse_header(lines: list[str], path: str) -> tuple[dict[str, tuple[str, int]], int]:
    """Collect the header records up to ``END OF HEADER``, skipping aux blocks.

    Returns the first (content, 1-based line) of each label and the index of the
    line after ``END OF HEADER``.
    """
    if not lines or _split_record(lines[0])[0] != "IONEX VERSION / TYPE":
        raise IONEXFormatError(
            path,
            "the first record is not 'IONEX VERSION / TYPE': this is not an IONEX file "
            "(or it is still compressed in a format other than gzip / Unix compress)",
        )
    records: dict[str, tuple[str, int]] = {}
    index = 0
    while index < len(lines):
        label, content = _split_record(lines[index])
        if label == "END OF HEADER":
            return records, index + 1
        if label == "START OF AUX DATA":
            index = _skip_block(lines, index, "END OF AUX DATA", path)
        else:
            records.setdefault(label, (content, index + 1))
        index += 1
    raise IONEXFormatError(
        path, "no 'END OF HEADER' record: the file is truncated or not IONEX; download it again"
    )


def _skip_block(lines: list[str], start: int, end_label: str, path: str) -> int:
    """Return the index of the line that closes the block opened at ``start``."""
    for index in range(start + 1, len(lines)):
        if _split_record(lines[index])[0] == end_label:
            return index
    raise IONEXFormatError(
        path,
        f"the block opened at line {start + 1} has no '{end_label}' record: "
        "the file is truncated; download it again",
    )


def _header_grid(
    records: dict[str, tuple[str, int]], path: str
) -> tuple[_Grid, int, tuple[int, int]]:
    """Return the grid, the number of maps and the default (exponent, line) of the header.

    The line is 0 when the header has no ``EXPONENT`` record (the default -1).
    """
    missing = [label for label in _REQUIRED if label not in records]
    if missing:
        raise IONEXFormatError(
            path,
            f"header lacks the required record(s) {', '.join(missing)}: "
            "the file is damaged or not IONEX 1.0",
        )

    def numbers(label: str, count: int, *, skip: int, width: int) -> list[float]:
        content, line = records[label]
        return _numbers(content, count, skip=skip, width=width, path=path, line=line, what=label)

    has_dimension = "MAP DIMENSION" in records
    dimension = int(numbers("MAP DIMENSION", 1, skip=0, width=6)[0]) if has_dimension else 2
    hgt1, hgt2, _ = numbers("HGT1 / HGT2 / DHGT", 3, skip=2, width=6)
    if dimension != 2 or hgt1 != hgt2:
        raise IONEXFormatError(
            path,
            f"MAP DIMENSION {dimension} with heights {hgt1:g}..{hgt2:g} km: only 2-D "
            "single-shell maps are supported; use a 2-D IONEX product",
        )
    lat = _axis(*numbers("LAT1 / LAT2 / DLAT", 3, skip=2, width=6), path=path, what="LAT")
    lon = _axis(*numbers("LON1 / LON2 / DLON", 3, skip=2, width=6), path=path, what="LON")
    radius = numbers("BASE RADIUS", 1, skip=0, width=8)[0]
    n_maps = int(numbers("# OF MAPS IN FILE", 1, skip=0, width=6)[0])
    exponent = (-1, 0)
    if "EXPONENT" in records:
        content, line = records["EXPONENT"]
        exponent = _exponent(content, path=path, line=line)
    return _Grid(lat, lon, hgt1, radius), n_maps, exponent


def _read_map(
    lines: list[str],
    start: int,
    *,
    kind: str,
    grid: _Grid,
    exponent: tuple[int, int],
    path: str,
) -> tuple[_MapText, int]:
    """Read the map block opened at line index ``start``.

    ``exponent`` is the header's (exponent, line); an ``EXPONENT`` record inside
    the block overrides it for this map. Returns the map and the index of its
    ``END OF ... MAP`` line.
    """
    end_label = f"END OF {kind} MAP"
    n_lines = -(-grid.lon.size // _PER_LINE)
    row_width = _FIELD * grid.lon.size
    where = f"{kind} map at line {start + 1}"
    epoch = None
    rows: list[str] = []
    records: list[tuple[float, ...]] = []  # (line, lat, lon1, lon2, dlon, height) per row
    index = start + 1
    while index < len(lines):
        label, content = _split_record(lines[index])
        if label == end_label:
            break
        if label == "EPOCH OF CURRENT MAP":
            epoch = _epoch(content, path=path, line=index + 1, what=label)
        elif label == "EXPONENT":
            exponent = _exponent(content, path=path, line=index + 1)
        elif label == "LAT/LON1/LON2/DLON/H":
            lat, lon1, lon2, dlon, height = _numbers(
                content, 5, skip=2, width=6, path=path, line=index + 1, what=label
            )
            records.append((index + 1, lat, lon1, lon2, dlon, height))
            text = "".join(line.rstrip() for line in lines[index + 1 : index + 1 + n_lines])
            if len(text) != row_width:
                raise IONEXFormatError(
                    path,
                    f"line {index + 2}: the row at lat {lat:g} of the {where} holds "
                    f"{len(text) / _FIELD:g} I5 fields in {n_lines} lines, the header grid "
                    f"needs {grid.lon.size}: the file is truncated or its grid is "
                    "inconsistent; download it again",
                )
            rows.append(text)
            index += n_lines
        elif label.startswith(("START OF", "END OF")):
            break
        index += 1
    if index >= len(lines) or _split_record(lines[index])[0] != end_label:
        raise IONEXFormatError(
            path,
            f"the {where} ends without '{end_label}': the file is truncated; download it again",
        )
    if epoch is None:
        raise IONEXFormatError(
            path, f"the {where} has no 'EPOCH OF CURRENT MAP' record; the file is damaged"
        )
    if len(rows) != grid.lat.size:
        raise IONEXFormatError(
            path,
            f"the {where} has {len(rows)} latitude rows, the header grid needs "
            f"{grid.lat.size}: the file is truncated or inconsistent; download it again",
        )
    found = np.array(records)
    expected = np.column_stack(
        np.broadcast_arrays(
            grid.lat, grid.lon[0], grid.lon[-1], grid.lon[1] - grid.lon[0], grid.height_km
        )
    )
    wrong = np.flatnonzero(~(np.abs(found[:, 1:] - expected) <= 1e-3).all(axis=1))
    if wrong.size:
        line, lat, lon1, lon2, dlon, height = found[wrong[0]]
        raise IONEXFormatError(
            path,
            f"line {line:.0f}: row {wrong[0] + 1} of the {where} is at lat {lat:g}, lon "
            f"{lon1:g}..{lon2:g} step {dlon:g}, height {height:g} km, but the header "
            f"declares {grid.describe()}: the grid is inconsistent; replace the file",
        )
    return _MapText(epoch, *exponent, "".join(rows), start + 1), index


def _to_array(
    maps: list[_MapText], grid: _Grid, *, kind: str, path: str
) -> tuple[np.ndarray, list[str]]:
    """Decode map texts into float32 TECU, shape [n_maps, n_lat, n_lon].

    9999 becomes NaN. A map whose median lies outside ``0..TEC_MAX`` is refused
    (its scale is wrong); single values outside that range become NaN. Returns the
    values and one clause per kind of repair (counts included) for the warning.
    """
    shape = (len(maps), grid.lat.size, grid.lon.size)
    values, bad = _decode_i5("".join(m.text for m in maps))
    if bad >= 0:
        map_index, cell = divmod(bad, shape[1] * shape[2])
        row, col = divmod(cell, shape[2])
        field = maps[map_index].text[(cell * _FIELD) : (cell + 1) * _FIELD]
        raise IONEXFormatError(
            path,
            f"the {kind} map at line {maps[map_index].line}, lat {grid.lat[row]:g} lon "
            f"{grid.lon[col]:g}: field {field!r} is not an I5 integer; the file is corrupt",
        )
    values = values.reshape(shape)
    missing = values == MISSING
    scale = 10.0 ** np.array([m.exponent for m in maps], dtype=np.float64)[:, None, None]
    tec = np.where(missing, np.nan, values * scale)
    for block, one in zip(maps, tec, strict=True):
        _check_scale(block, one, kind=kind, path=path)
    negative = tec < 0.0
    above = tec > TEC_MAX
    tec[negative | above] = np.nan
    repairs = []
    if missing.any():
        repairs.append(
            f"{missing.sum()} of {missing.size} {kind} values (in {missing.any(axis=(1, 2)).sum()} "
            f"of {shape[0]} maps) are 9999 (no value), kept as NaN"
        )
    if negative.any():
        repairs.append(
            f"{negative.sum()} negative {kind} value(s) (down to {np.min(values * scale):.4g} "
            "TECU) set to NaN"
        )
    if above.any():
        largest = np.max(np.where(missing, -np.inf, values * scale))
        repairs.append(
            f"{above.sum()} {kind} value(s) above {TEC_MAX:g} TECU (up to {largest:.4g}) set to NaN"
        )
    return tec.astype(np.float32), repairs


def _check_scale(block: _MapText, values: np.ndarray, *, kind: str, path: str) -> None:
    """Refuse a map whose median is no vertical TEC: the EXPONENT or the values are wrong."""
    finite = values[np.isfinite(values)]
    median = float(np.median(finite)) if finite.size else 0.0
    if 0.0 <= median <= TEC_MAX:
        return
    record = (
        f"the EXPONENT record at line {block.exponent_line}"
        if block.exponent_line
        else "the default, as the header has no EXPONENT record"
    )
    raise UnitsError(
        f"{path}: the {kind} map at line {block.line} "
        f"({np.datetime_as_string(block.epoch, unit='s')}) has a median of {median:.4g} TECU "
        f"with EXPONENT {block.exponent} ({record}): no ionosphere has that, vertical TEC "
        f"lies in 0..{TEC_MAX:g} TECU. The EXPONENT is wrong or the values are corrupt: "
        "correct the EXPONENT record (global maps use -1, values in 0.1 TECU) or replace "
        "the file"
    )


def _read_file(path: str, *, with_rms: bool) -> _IonexFile:
    """Parse one IONEX file."""
    lines = _decompress(Path(path).read_bytes(), path).decode("latin-1").splitlines()
    records, index = _parse_header(lines, path)
    grid, n_maps, exponent = _header_grid(records, path)
    maps: dict[str, list[_MapText]] = {"TEC": [], "RMS": []}
    while index < len(lines):
        label, _ = _split_record(lines[index])
        if label == "END OF FILE":
            break
        if label in ("START OF TEC MAP", "START OF RMS MAP"):
            kind = label.split()[2]
            block, index = _read_map(
                lines, index, kind=kind, grid=grid, exponent=exponent, path=path
            )
            maps[kind].append(block)
        elif label in ("START OF HEIGHT MAP", "START OF AUX DATA"):
            index = _skip_block(lines, index, label.replace("START", "END"), path)
        index += 1

    n_tec, n_rms = len(maps["TEC"]), len(maps["RMS"])
    if n_tec != n_maps or n_rms not in (0, n_tec):
        raise IONEXFormatError(
            path,
            f"'# OF MAPS IN FILE' says {n_maps} but the file holds {n_tec} complete TEC maps "
            f"and {n_rms} RMS maps: the file is truncated or its header is wrong; "
            "download it again",
        )
    times = np.array([m.epoch for m in maps["TEC"]], dtype="datetime64[ns]")
    if n_rms and not np.array_equal(times, [m.epoch for m in maps["RMS"]]):
        raise IONEXFormatError(
            path, "the RMS map epochs differ from the TEC map epochs; the file is inconsistent"
        )
    tec, repairs = _to_array(maps["TEC"], grid, kind="TEC", path=path)
    if np.isnan(tec).all():
        raise IONEXFormatError(
            path,
            f"every value of its {n_tec} TEC map(s) is 9999 (no value available): the file "
            "holds no data; download it again or use another analysis centre's maps",
        )
    rms = None
    if with_rms and n_rms:
        rms, rms_repairs = _to_array(maps["RMS"], grid, kind="RMS", path=path)
        repairs += rms_repairs
    _check_repeated_epochs(times, tec, path)
    back = np.flatnonzero(np.diff(times) < np.timedelta64(0))
    if back.size:
        first, after = (np.datetime_as_string(t, unit="s") for t in times[back[0] : back[0] + 2])
        repairs.append(
            f"{back.size} map(s) out of time order (the first: {after} after {first}), "
            "sorted by epoch"
        )

    def text(label: str) -> str:
        return records.get(label, ("", 0))[0]

    program = _program_fields(text(_PGM))
    logger.info("%s: read %d TEC and %d RMS maps", Path(path).name, n_tec, n_rms)
    return _IonexFile(
        path=path,
        grid=grid,
        times=times,
        tec=tec,
        rms=rms,
        mapping_function=text("MAPPING FUNCTION").strip(),
        program=program[0],
        run_by=program[1],
        date=program[2],
        repairs=repairs,
    )


def _program_fields(content: str) -> tuple[str, str, str]:
    """Split a ``PGM / RUN BY / DATE`` record into its three ``A20`` fields.

    Writers that shift the columns by one are common; fields separated by two or
    more spaces are taken as such before falling back to the fixed columns.
    """
    parts = re.split(r"\s{2,}", content.strip())
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return content[:20].strip(), content[20:40].strip(), content[40:].strip()


def _check_repeated_epochs(times: np.ndarray, tec: np.ndarray, path: str) -> None:
    """Refuse a file that holds two different maps for one epoch."""
    order = np.argsort(times, kind="stable")
    for k in np.flatnonzero(times[order][1:] == times[order][:-1]):
        if not np.array_equal(tec[order[k]], tec[order[k + 1]], equal_nan=True):
            raise IONEXFormatError(
                path,
                f"two different TEC maps for the epoch {times[order[k]]}: the file is "
                "inconsistent; replace it",
            )


def _joined(values: list[str]) -> str:
    """Distinct non-empty values, in first-seen order, joined by ', '."""
    return ", ".join(dict.fromkeys(v for v in values if v))


def _step_text(step: np.timedelta64) -> str:
    """A map interval in words: ``"2 h"``, ``"15 min"``, ``"30 s"``."""
    seconds = int(step / np.timedelta64(1, "s"))
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _check_same_source(files: list[_IonexFile]) -> None:
    """Refuse files of different analysis centres or map intervals (see ``allow_mixed``)."""

    def source(f: _IonexFile) -> tuple[str, str]:
        step = f.interval()
        return (
            " ".join(re.findall(r"[A-Z0-9/.-]+", f.run_by.upper())) or "no RUN BY",
            "one map" if step is None else f"every {_step_text(step)}",
        )

    def names(group: list[str]) -> str:
        shown = group if len(group) <= 3 else [group[0], "...", group[-1]]
        return f"{len(group)} file(s): {', '.join(shown)}"

    sources = [source(f) for f in files]
    centres = {centre for centre, _ in sources}
    steps = {step for _, step in sources if step != "one map"}
    if len(centres) < 2 and len(steps) < 2:
        return
    groups: dict[tuple[str, str], list[str]] = {}
    for f, key in zip(files, sources, strict=True):
        groups.setdefault(key, []).append(Path(f.path).name)
    listing = "; ".join(f"{c}, {s}, {names(group)}" for (c, s), group in groups.items())
    mixed = {"analysis centres": len(centres) > 1, "map intervals": len(steps) > 1}
    what = " and ".join(label for label, many in mixed.items() if many)
    other = next(f for f, key in zip(files, sources, strict=True) if key != sources[0])
    raise IONEXFormatError(
        other.path,
        f"open_ionex was given files of different {what}, whose maps would be mixed into "
        f"one series (interleaved where they cover the same hours): {listing}. Read each "
        "centre and interval with its own open_ionex call, "
        "or pass allow_mixed=True to combine them anyway (at an epoch that several files "
        "hold, the map of the file given first is kept)",
    )


def _warn_repairs(files: list[_IonexFile]) -> None:
    """One DataWarning for every value dropped and every map reordered, file by file."""
    repaired = [f for f in files if f.repairs]
    if repaired:
        details = "; ".join(f"{f.path}: {', '.join(f.repairs)}" for f in repaired)
        advice = (
            ". NaN cells stay NaN in the Dataset: interpolate or mask them before use "
            "(ionofield.campaign's drivers fill them and say how many)"
            if any("NaN" in clause for f in repaired for clause in f.repairs)
            else ""
        )
        warnings.warn(
            f"open_ionex repaired {len(repaired)} of {len(files)} file(s): {details}{advice}",
            DataWarning,
            stacklevel=3,
        )


def open_ionex(
    paths: PathLike | Iterable[PathLike], *, with_rms: bool = True, allow_mixed: bool = False
) -> xr.Dataset:
    """Read IONEX 1.0 global TEC maps from one or many files.

    Parameters
    ----------
    paths
        A file, a folder (its files, sorted), a glob pattern
        (``"tec/codg*.20i.Z"``, expanded in sorted order; ``**`` spans folders)
        or a list of them; ``~`` is the home folder, hidden files of a folder are
        skipped and a file reached twice is read once (the path rule of every
        ionofield reader). Files may be plain text, gzip or Unix compress
        (``.Z``); the format is found from the file's first bytes, never from its
        name. Several files are concatenated along time (see Notes).
    with_rms
        Also return the RMS maps as ``tec_rms`` when the files hold them
        (files without RMS maps give NaN there).
    allow_mixed
        Combine files of different analysis centres (the ``RUN BY`` field of
        ``PGM / RUN BY / DATE``) or different map intervals. By default this is
        refused: the maps of an IGS and a CODE file of the same day would be
        interleaved map by map, a series whose jumps are the centres'
        differences. With ``True``, at an epoch that several files hold the map
        of the file given first is kept.

    Returns
    -------
    xarray.Dataset
        ``tec(time, lat, lon)``, float32 TECU (1 TECU = 1e16 m-2), NaN where the
        file has 9999; optionally ``tec_rms`` likewise. ``time`` is
        ``datetime64[ns]`` UTC from each map's ``EPOCH OF CURRENT MAP``, sorted;
        ``lat`` ascending in degrees north; ``lon`` in degrees east on the
        native grid (-180..180 inclusive, 73 columns for the usual GIM).
        Attributes: ``ionex_height_km`` (the shell height HGT1),
        ``base_radius_km``, ``source_files``, ``mapping_function`` and the
        producer from ``PGM / RUN BY / DATE`` (``institution``,
        ``ionex_program``, ``ionex_date``).

    Raises
    ------
    IONEXFormatError
        A file is not IONEX, is damaged (compressed data included), truncated,
        inconsistent with its own header, holds two different maps for one epoch
        or no value at all (every cell 9999); the files are on different grids,
        or of different analysis centres or map intervals (see ``allow_mixed``).
    UnitsError
        A map's median is outside ``0..TEC_MAX`` TECU: its ``EXPONENT`` record
        (named in the message) or its values are wrong.
    ManyProblemsError
        Several files failed: one line per file, each naming its file.
    FileNotFoundError
        No path is given, a path does not exist, or a folder or pattern holds no file.

    Warns
    -----
    DataWarning
        Once per call, file by file, with the counts: 9999 cells (kept as NaN),
        negative values or values above :data:`~ionofield.io.ionex.TEC_MAX` (set to
        NaN), maps out of time order in a file (sorted).

    Notes
    -----
    Maps of several files are sorted by time and a repeated epoch keeps its
    first occurrence in file order (the 24:00 map of a CODE daily file and the
    00:00 map of the next day's file); the number dropped is logged at INFO.
    Maps out of order inside one file are sorted too, with a warning: each map
    carries its own epoch record, so the order of the blocks holds no
    information, but a producer does not write them so and the user is told.
    Values outside ``0..TEC_MAX`` in an otherwise plausible map are single bad
    cells, dropped rather than refused so that the rest of the day is kept.
    Longitudes above 180 (a 0..360 grid) are folded to -180..180 and a
    meridian that then appears twice is kept once.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr, tempfile, os
    >>> ds = xr.Dataset(
    ...     {"tec": (("time", "lat", "lon"), np.full((1, 2, 3), 12.3, "float32"))},
    ...     coords={"time": pd.to_datetime(["2024-02-04"]), "lat": [-2.5, 0.0],
    ...             "lon": [-5.0, 0.0, 5.0]},
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.24i")
    >>> write_ionex(ds, path)
    >>> float(open_ionex(path).tec.sel(lat=0.0, lon=5.0).item())  # doctest: +ELLIPSIS
    12.3...
    """
    found = expand_paths(paths, what="open_ionex")
    files: list[_IonexFile] = []
    problems: list[IonofieldError] = []
    for path in found:
        try:
            files.append(_read_file(str(path), with_rms=with_rms))
        except IonofieldError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ManyProblemsError(
            f"open_ionex: {len(problems)} of {len(found)} files", [str(p) for p in problems]
        )
    first = files[0]
    for other in files[1:]:
        if not other.grid.same_as(first.grid):
            raise IONEXFormatError(
                other.path,
                f"grid {other.grid.describe()} differs from {first.grid.describe()} of "
                f"{first.path}: open files on different grids separately and regrid one "
                "before combining",
            )
    if not allow_mixed:
        _check_same_source(files)
    _warn_repairs(files)
    times = np.concatenate([f.times for f in files])
    order = np.argsort(times, kind="stable")
    _, keep = np.unique(times[order], return_index=True)
    keep = order[keep]
    if times.size > keep.size:
        logger.info(
            "dropped %d map(s) whose epoch was already read from an earlier file",
            times.size - keep.size,
        )

    grid = first.grid
    lat_order = np.argsort(grid.lat, kind="stable")
    lon = np.where(grid.lon > 180.0, grid.lon - 360.0, grid.lon)
    lon, lon_order = np.unique(lon, return_index=True)

    def stack(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays)[keep][:, lat_order][:, :, lon_order]

    data = {"tec": stack([f.tec for f in files])}
    if with_rms and any(f.rms is not None for f in files):
        data["tec_rms"] = stack(
            [np.full_like(f.tec, np.nan) if f.rms is None else f.rms for f in files]
        )
    dims = ("time", "lat", "lon")
    ds = xr.Dataset(
        {name: (dims, values, attributes(name)) for name, values in data.items()},
        coords={
            "time": ("time", times[keep], attributes("time", long_name="epoch of the map (UTC)")),
            "lat": ("lat", grid.lat[lat_order], attributes("lat")),
            "lon": ("lon", lon, attributes("lon")),
        },
        attrs={
            "ionex_height_km": float(grid.height_km),
            "base_radius_km": float(grid.base_radius_km),
            "source_files": ", ".join(Path(f.path).name for f in files),
            "mapping_function": _joined([f.mapping_function for f in files]),
            "institution": _joined([f.run_by for f in files]),
            "ionex_program": _joined([f.program for f in files]),
            "ionex_date": _joined([f.date for f in files]),
        },
    )
    logger.info("read %d TEC maps from %d IONEX file(s)", ds.sizes["time"], len(files))
    return ds


def _record(content: str, label: str) -> str:
    """Format an 80-column record: content in columns 1-60, label in 61-80."""
    return f"{content:<60.60}{label:<20}"


def _epoch_text(time: np.datetime64) -> str:
    """Format the body of a ``6I6`` epoch record."""
    t = pd.Timestamp(time)
    return "".join(f"{v:6d}" for v in (t.year, t.month, t.day, t.hour, t.minute, t.second))


def _regular_axis(values: np.ndarray, name: str, path: Path) -> tuple[float, float, float]:
    """Return first, last and step of an evenly spaced axis that F6.1 fields can hold."""
    values = np.asarray(values, dtype=np.float64)
    step = values[1] - values[0] if values.size > 1 else 0.0
    tenths = values * 10.0
    if (
        step == 0
        or not np.allclose(np.diff(values), step, atol=1e-6)
        or not np.allclose(tenths, np.round(tenths), atol=1e-6)
    ):
        raise IONEXFormatError(
            path,
            f"cannot write {name} = {values.tolist()!r}: IONEX needs at least two evenly "
            "spaced points at multiples of 0.1 degree; interpolate to such a grid first",
        )
    return float(values[0]), float(values[-1]), float(step)


def _quantise(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """TECU to the integers of the file (units of 10**EXPONENT TECU), NaN to 9999.

    Values outside ``0..TEC_MAX`` (infinities included) are refused: they are no
    vertical TEC, and :func:`open_ionex` would drop them.
    """
    tecu = np.asarray(values, dtype=np.float64)
    missing = np.isnan(tecu)
    bad = ~missing & ~((tecu >= 0.0) & (tecu <= TEC_MAX))
    if bad.any():
        raise IONEXFormatError(
            path,
            f"cannot write {name}: {bad.sum()} value(s) outside 0..{TEC_MAX:g} TECU (from "
            f"{tecu[bad].min():.4g} to {tecu[bad].max():.4g}) do not fit a vertical TEC map; "
            "check the units (TECU expected, not m-2 or el/cm2) or set the values that are "
            "not TEC to NaN",
        )
    scaled = np.round(tecu * 10.0**-_WRITE_EXPONENT)
    return np.where(missing, MISSING, scaled).astype(np.int64)


def write_ionex(ds: xr.Dataset, path: PathLike) -> None:
    """Write TEC maps to an IONEX 1.0 file, atomically.

    Parameters
    ----------
    ds
        ``tec(time, lat, lon)`` in TECU on an evenly spaced grid of multiples of
        0.1 degree (NaN allowed), optionally ``tec_rms`` likewise; times in
        whole seconds, distinct. The attributes ``ionex_height_km`` (default
        450), ``base_radius_km`` (default 6371) and ``mapping_function``
        (NONE, COSZ or QFAC; default NONE) go into the header, as
        :func:`open_ionex` sets them.
    path
        Output file; gzip-compressed when its name ends in ``.gz``. It is
        written to a temporary file in the same folder and renamed, so a reader
        never sees a partial file.

    Raises
    ------
    IONEXFormatError
        ``ds`` is not a Dataset, ``tec`` is missing or all NaN, ``time`` holds no
        dates, the grid is not regular, or values are outside ``0..TEC_MAX``
        TECU (infinities included).
    UnitsError
        ``tec`` declares units other than TECU.
    TimeOrderError
        Repeated or NaT times.

    Notes
    -----
    Values are written with ``EXPONENT -1`` (0.1 TECU), 16 ``I5`` values per
    line, 9999 for NaN, latitudes from north to south and longitudes from
    west to east; RMS maps follow the TEC maps when ``tec_rms`` exists.
    :func:`open_ionex` reads the file back to the same values rounded to
    0.1 TECU.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr, tempfile, os
    >>> ds = xr.Dataset(
    ...     {"tec": (("time", "lat", "lon"), np.full((2, 2, 3), 5.0, "float32"))},
    ...     coords={"time": pd.date_range("2024-02-04", periods=2, freq="h"),
    ...             "lat": [-2.5, 0.0], "lon": [-5.0, 0.0, 5.0]},
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.24i.gz")
    >>> write_ionex(ds, path)
    >>> open_ionex(path).sizes["time"]
    2
    """
    path = Path(path)
    if not isinstance(ds, xr.Dataset):
        raise IONEXFormatError(
            path,
            f"cannot write a {type(ds).__name__}: pass an xarray.Dataset holding "
            "tec(time, lat, lon) in TECU (from a DataArray: da.to_dataset(name='tec'))",
        )
    if "tec" not in ds.data_vars or set(ds["tec"].dims) != {"time", "lat", "lon"}:
        raise IONEXFormatError(
            path, "cannot write: the Dataset needs a variable tec(time, lat, lon) in TECU"
        )
    if "time" not in ds.coords or ds["time"].dtype.kind in "biufc":
        raise IONEXFormatError(
            path,
            "cannot write: the time coordinate must hold dates (datetime64 or cftime), "
            "not plain numbers; assign them with ds.assign_coords(time=...)",
        )
    if bool(ds["tec"].isnull().all()):
        raise IONEXFormatError(
            path,
            "cannot write: every tec value is NaN, and open_ionex refuses a file without a "
            "value; write maps that hold data",
        )
    if ds["tec"].attrs.get("units", "TECU") != "TECU":
        raise UnitsError(
            f"{path}: tec has units {ds['tec'].attrs['units']!r}: IONEX holds TECU; convert "
            "(1 TECU = 1e16 m-2) and set units='TECU' before writing"
        )
    names = ["tec", "tec_rms"] if "tec_rms" in ds.data_vars else ["tec"]
    ds = ds[names].sortby("time").sortby("lat", ascending=False).sortby("lon")
    times = to_datetime64(ds["time"].values)
    if np.isnat(times).any():
        raise TimeOrderError(f"{path}: {np.isnat(times).sum()} map time(s) are NaT; drop them")
    if np.unique(times).size != times.size:
        raise TimeOrderError(f"{path}: repeated map times; drop duplicates before writing")
    if (times != times.astype("datetime64[s]")).any():
        raise IONEXFormatError(
            path, "cannot write times with fractions of a second: round them first"
        )
    lat1, lat2, dlat = _regular_axis(ds["lat"].values, "lat", path)
    lon1, lon2, dlon = _regular_axis(ds["lon"].values, "lon", path)
    height = float(ds.attrs.get("ionex_height_km", 450.0))
    radius = float(ds.attrs.get("base_radius_km", 6371.0))
    mapping = ds.attrs.get("mapping_function", "NONE")
    mapping = mapping if mapping in ("NONE", "COSZ", "QFAC") else "NONE"
    steps = np.unique(np.diff(times).astype("timedelta64[s]").astype(np.int64))
    interval = int(steps[0]) if steps.size == 1 else 0
    # SOURCE_DATE_EPOCH (reproducible-builds convention) fixes the date for identical files.
    stamp = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(stamp), timezone.utc) if stamp else datetime.now(timezone.utc)
    created = when.strftime("%d-%b-%y %H:%M").upper()

    lines = [
        _record(f"{1.0:8.1f}{'':12}{'IONOSPHERE MAPS':<20}MIX", "IONEX VERSION / TYPE"),
        _record(f"{'ionofield ' + __version__:<20.20}{'ionofield':<20}{created}", _PGM),
        _record("TEC values in 0.1 TECU; 9999 if no value available", "COMMENT"),
        _record(_epoch_text(times[0]), "EPOCH OF FIRST MAP"),
        _record(_epoch_text(times[-1]), "EPOCH OF LAST MAP"),
        _record(f"{interval:6d}", "INTERVAL"),
        _record(f"{times.size:6d}", "# OF MAPS IN FILE"),
        _record(f"  {mapping}", "MAPPING FUNCTION"),
        _record(f"{0.0:8.1f}", "ELEVATION CUTOFF"),
        _record("", "OBSERVABLES USED"),
        _record(f"{radius:8.1f}", "BASE RADIUS"),
        _record(f"{2:6d}", "MAP DIMENSION"),
        _record(f"  {height:6.1f}{height:6.1f}{0.0:6.1f}", "HGT1 / HGT2 / DHGT"),
        _record(f"  {lat1:6.1f}{lat2:6.1f}{dlat:6.1f}", "LAT1 / LAT2 / DLAT"),
        _record(f"  {lon1:6.1f}{lon2:6.1f}{dlon:6.1f}", "LON1 / LON2 / DLON"),
        _record(f"{_WRITE_EXPONENT:6d}", "EXPONENT"),
        _record("", "END OF HEADER"),
    ]
    row_format = "%5d" * ds.sizes["lon"]
    line_width = _FIELD * _PER_LINE
    for name, kind in zip(names, ("TEC", "RMS"), strict=False):
        values = _quantise(ds[name].transpose("time", "lat", "lon").values, name, path)
        for k, time in enumerate(times):
            lines.append(_record(f"{k + 1:6d}", f"START OF {kind} MAP"))
            lines.append(_record(_epoch_text(time), "EPOCH OF CURRENT MAP"))
            for lat, row in zip(ds["lat"].values, values[k].tolist(), strict=True):
                lines.append(
                    _record(
                        f"  {lat:6.1f}{lon1:6.1f}{lon2:6.1f}{dlon:6.1f}{height:6.1f}",
                        "LAT/LON1/LON2/DLON/H",
                    )
                )
                text = row_format % tuple(row)
                lines.extend(text[i : i + line_width] for i in range(0, len(text), line_width))
            lines.append(_record(f"{k + 1:6d}", f"END OF {kind} MAP"))
    lines.append(_record("", "END OF FILE"))
    data = ("\n".join(lines) + "\n").encode("ascii")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    logger.info("wrote %d TEC maps to %s", times.size, path)

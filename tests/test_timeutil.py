"""Time helpers: the day of year and universal time that the network's codes read."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ionofield.timeutil import day_of_year, universal_time_hours


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

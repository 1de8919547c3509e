"""Time conventions shared by every module.

Internally ionofield keeps times as ``datetime64[ns]`` (UTC). Inputs in cftime,
pandas or Python datetimes are converted by :func:`to_datetime64`, at the boundary
(readers, :func:`ionofield.campaign`, :func:`ionofield.grid`); the functions below
it take ``datetime64`` arrays.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ionofield.errors import CalendarError, ConfigError

HOUR = np.timedelta64(3600, "s")
DAY = np.timedelta64(1, "D")
#: cftime calendars whose dates are real days, converted by :func:`to_datetime64`
#: (``gregorian`` is cftime's other name of ``standard``).
REAL_CALENDARS = frozenset({"standard", "gregorian", "proleptic_gregorian", "julian"})
_MICROSECONDS = "microseconds since 1970-01-01 00:00:00"


def to_datetime64(values: object, *, name: str = "times") -> np.ndarray:
    """Convert times to a ``datetime64[ns]`` array.

    Parameters
    ----------
    values
        datetime64, pandas timestamps, Python datetimes or cftime datetimes of a
        real-world calendar (standard, gregorian, proleptic_gregorian, julian);
        scalar or array-like. cftime dates are converted to the (proleptic)
        Gregorian date of the same instant: a Julian date is 13 days behind the
        Gregorian one in the 20th and 21st centuries.
    name
        What the times are, for error messages (e.g. ``"observations 'time'"``).

    Returns
    -------
    numpy.ndarray
        ``datetime64[ns]`` values with the input's shape.

    Raises
    ------
    CalendarError
        When cftime dates are in a model calendar (``360_day``, ``noleap`` /
        ``365_day``, ``all_leap`` / ``366_day`` or none), whose dates are no real
        days, or outside the years 1678-2261 that ``datetime64[ns]`` holds.
    ConfigError
        When other values cannot be read as times (a ValueError, so callers that
        catch pandas' parsing errors still catch it).

    Examples
    --------
    >>> import cftime
    >>> to_datetime64([cftime.DatetimeGregorian(2024, 5, 11, 12)])
    array(['2024-05-11T12:00:00.000000000'], dtype='datetime64[ns]')
    >>> to_datetime64([cftime.DatetimeJulian(2024, 4, 28, 12)])
    array(['2024-05-11T12:00:00.000000000'], dtype='datetime64[ns]')
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]", copy=False)
    if arr.dtype == object and any(hasattr(t, "calendar") for t in arr.flat):
        return _cftime_to_datetime64(arr, name)
    try:
        parsed = pd.to_datetime(arr.ravel())
    except (ValueError, TypeError, OverflowError) as err:
        raise ConfigError(
            f"{name}: {str(values)[:80]!r} cannot be read as times ({err}); give datetime64, "
            "pandas or Python datetimes, cftime dates or ISO 8601 strings."
        ) from err
    return np.asarray(parsed, dtype="datetime64[ns]").reshape(arr.shape)


def _cftime_to_datetime64(arr: np.ndarray, name: str) -> np.ndarray:
    """Convert an object array of cftime dates of real-world calendars to ``datetime64[ns]``.

    Each calendar's dates are counted in microseconds from 1970-01-01 of that
    calendar (``cftime.date2num``: days are 86400 s long in every calendar, so the
    count is the time elapsed), and the instant of that calendar's 1970-01-01 is
    placed on the Gregorian axis once (``change_calendar``).
    """
    import cftime

    flat = arr.ravel()
    calendars = np.array([getattr(t, "calendar", None) for t in flat], dtype=object)
    micro = np.empty(flat.size, dtype=np.int64)
    for calendar in dict.fromkeys(calendars.tolist()):
        if calendar is None:
            raise CalendarError(
                f"{name}: cftime dates mixed with other values; give them all as one kind "
                "(cftime dates of one calendar, or datetime64)."
            )
        if calendar not in REAL_CALENDARS:
            found = "no calendar" if calendar == "" else f"the {calendar!r} calendar"
            raise CalendarError(
                f"{name}: dates in {found}, a model calendar whose dates are not real days "
                "(ionofield needs real-world times: standard, gregorian, "
                "proleptic_gregorian or julian); convert them to a real calendar first, "
                "e.g. xarray's ds.convert_calendar('standard', align_on='date'), or decode "
                "the file's times with their real calendar."
            )
        here = calendars == calendar
        origin = cftime.datetime(1970, 1, 1, calendar=calendar)
        shift = origin.change_calendar("proleptic_gregorian") - cftime.datetime(
            1970, 1, 1, calendar="proleptic_gregorian"
        )
        counts = cftime.date2num(list(flat[here]), _MICROSECONDS, calendar=calendar)
        micro[here] = np.asarray(counts, dtype=np.int64) + shift // dt.timedelta(microseconds=1)
    limit = np.iinfo(np.int64).max // 1000
    outside = np.abs(micro) > limit
    if outside.any():
        raise CalendarError(
            f"{name}: {int(outside.sum())} date(s) (first {flat[outside][0]}) outside the years "
            "1678-2261 that ionofield's datetime64[ns] times hold; select the times inside them."
        )
    return micro.astype("datetime64[us]").astype("datetime64[ns]").reshape(arr.shape)


def hours_since(values: object, epoch: np.datetime64) -> np.ndarray:
    """Hours elapsed from ``epoch`` to each of ``values`` (float64).

    Parameters
    ----------
    values
        datetime64 times (or ISO strings); convert others with :func:`to_datetime64`.
    epoch
        The reference time.

    Returns
    -------
    numpy.ndarray
        Float hours, negative before ``epoch``.
    """
    delta = np.asarray(values, dtype="datetime64[ns]") - np.datetime64(epoch, "ns")
    return delta.astype("timedelta64[ns]").astype(np.float64) / 3.6e12


def day_of_year(values: object) -> np.ndarray:
    """Fractional day of the year of times (1.0 is 1 January, 00:00).

    Parameters
    ----------
    values
        datetime64 times (or ISO strings); convert others with :func:`to_datetime64`.

    Returns
    -------
    numpy.ndarray
        Float days, the shape of ``values`` (a scalar for one time).

    Examples
    --------
    >>> day_of_year(["2024-02-01T12:00", "2024-12-31T00:00"])
    array([ 32.5, 366. ])
    """
    times = np.asarray(values, dtype="datetime64[ns]")
    return (times - times.astype("datetime64[Y]")) / np.timedelta64(1, "D") + 1.0


def universal_time_hours(values: object) -> np.ndarray:
    """Universal time of day of times, in hours [0, 24).

    Parameters
    ----------
    values
        datetime64 times (or ISO strings); convert others with :func:`to_datetime64`.

    Returns
    -------
    numpy.ndarray
        Float hours, the shape of ``values`` (a scalar for one time).

    Examples
    --------
    >>> universal_time_hours(["2024-02-01T13:30", "2024-02-02T00:00"])
    array([13.5,  0. ])
    """
    times = np.asarray(values, dtype="datetime64[ns]")
    return (times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")


def describe_times(times: object, step: np.timedelta64, *, max_runs: int = 8) -> str:
    """Summarise regularly spaced times as runs, e.g. ``"2024-05-10 to 2024-05-12 (3)"``.

    Parameters
    ----------
    times
        The times to describe, in any form :func:`ionofield.timeutil.to_datetime64`
        accepts, shape [N]; they need not be sorted.
    step
        The spacing that makes two times consecutive (one day, one hour, ...).
    max_runs
        How many runs to list before summarising the rest as a count.

    Returns
    -------
    str
        Comma-separated runs; times are written to the day when ``step`` is a whole
        number of days, otherwise to the minute.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array(["2024-05-10T00", "2024-05-10T01", "2024-05-10T05"], dtype="datetime64[ns]")
    >>> describe_times(t, np.timedelta64(1, "h"))
    '2024-05-10T00:00 to 2024-05-10T01:00 (2), 2024-05-10T05:00'
    """
    t = np.unique(to_datetime64(times).ravel())
    if t.size == 0:
        return "none"
    unit = "D" if step % DAY == np.timedelta64(0) else "m"
    breaks = np.flatnonzero(np.diff(t) != step) + 1
    runs = np.split(t, breaks)
    parts = []
    for run in runs[:max_runs]:
        first = np.datetime_as_string(run[0], unit=unit)
        if run.size == 1:
            parts.append(first)
        else:
            last = np.datetime_as_string(run[-1], unit=unit)
            parts.append(f"{first} to {last} ({run.size})")
    if len(runs) > max_runs:
        parts.append(f"and {len(runs) - max_runs} more period(s)")
    return ", ".join(parts)


def hours_from_data(times: np.ndarray, data_hours: np.ndarray) -> np.ndarray:
    """Hours from each time to the nearest whole hour that holds data.

    An hour with data is the interval ``[h, h + 1)`` of a whole UTC hour ``h`` in
    ``data_hours``. A time inside one is 0 hours from the data; a time in an hour
    without data is as far as the nearest edge of one: the distance grows by one hour
    per hour after the last data hour (a forecast) and before the first (a hindcast).

    Parameters
    ----------
    times
        datetime64 times, any shape.
    data_hours
        The hours with data, ``datetime64[h]``, shape [H], sorted and distinct, H >= 1.

    Returns
    -------
    numpy.ndarray
        float64 hours, the shape of ``times``.

    Examples
    --------
    >>> hours = np.array(["2024-05-10T00", "2024-05-10T01", "2024-05-10T05"], "datetime64[h]")
    >>> times = np.array(["2024-05-10T01:30", "2024-05-10T03:15", "2024-05-10T09:00"],
    ...                  "datetime64[m]")
    >>> hours_from_data(times, hours).tolist()
    [0.0, 1.25, 3.0]
    """
    start = np.asarray(data_hours).astype("datetime64[ns]")
    t = np.asarray(times).astype("datetime64[ns]")
    after = np.searchsorted(start, t, side="right")  # the first data hour starting after t
    past_last = (t - start[np.maximum(after - 1, 0)] - HOUR) / HOUR
    to_next = (start[np.minimum(after, start.size - 1)] - t) / HOUR
    distance = np.minimum(np.where(after > 0, past_last, np.inf),
                          np.where(after < start.size, to_next, np.inf))
    return np.maximum(distance, 0.0)

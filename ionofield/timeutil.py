"""Time conventions shared by every module.

Internally ionofield keeps times as ``datetime64[ns]`` (UTC). Inputs in cftime,
pandas or Python datetimes are converted by :func:`to_datetime64`, at the boundary
(readers, :func:`ionofield.campaign`, :func:`ionofield.grid`); the functions below
it take ``datetime64`` arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR = np.timedelta64(3600, "s")
DAY = np.timedelta64(1, "D")


def to_datetime64(values: object) -> np.ndarray:
    """Convert times to a ``datetime64[ns]`` array.

    Parameters
    ----------
    values
        datetime64, pandas timestamps, Python datetimes or cftime datetimes of a
        real-world calendar (standard, gregorian, proleptic_gregorian, julian);
        scalar or array-like.

    Returns
    -------
    numpy.ndarray
        ``datetime64[ns]`` values with the input's shape.

    Examples
    --------
    >>> import cftime
    >>> to_datetime64([cftime.DatetimeGregorian(2024, 5, 11, 12)])
    array(['2024-05-11T12:00:00.000000000'], dtype='datetime64[ns]')
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]", copy=False)
    if arr.dtype == object and arr.size and hasattr(arr.flat[0], "calendar"):
        flat = [
            np.datetime64(
                f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
            )
            + np.timedelta64(int(t.microsecond), "us")
            for t in arr.ravel()
        ]
        return np.asarray(flat, dtype="datetime64[ns]").reshape(arr.shape)
    return np.asarray(pd.to_datetime(arr.ravel()), dtype="datetime64[ns]").reshape(arr.shape)


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

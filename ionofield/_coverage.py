"""Readable descriptions of missing periods, for coverage error messages."""

from __future__ import annotations

import numpy as np

from ionofield.timeutil import to_datetime64

DAY = np.timedelta64(1, "D")


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

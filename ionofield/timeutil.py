"""Time and longitude conventions shared by every module.

Internally ionofield keeps times as ``datetime64[ns]`` (UTC) and longitudes in
[-180, 180). Inputs in cftime or 0..360 are converted here, in one place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

HOUR = np.timedelta64(3600, "s")


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
        return arr.astype("datetime64[ns]")
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
        Times in any form :func:`to_datetime64` accepts.
    epoch
        The reference time.

    Returns
    -------
    numpy.ndarray
        Float hours, negative before ``epoch``.
    """
    delta = to_datetime64(values) - np.datetime64(epoch, "ns")
    return delta.astype("timedelta64[ns]").astype(np.float64) / 3.6e12


def day_of_year(values: object) -> np.ndarray:
    """Fractional day of the year of times (1.0 is 1 January, 00:00).

    Parameters
    ----------
    values
        Times in any form :func:`to_datetime64` accepts.

    Returns
    -------
    numpy.ndarray
        Float days, the shape of ``values`` (a scalar for one time).

    Examples
    --------
    >>> day_of_year(["2024-02-01T12:00", "2024-12-31T00:00"])
    array([ 32.5, 366. ])
    """
    times = to_datetime64(values)
    return (times - times.astype("datetime64[Y]")) / np.timedelta64(1, "D") + 1.0


def universal_time_hours(values: object) -> np.ndarray:
    """Universal time of day of times, in hours [0, 24).

    Parameters
    ----------
    values
        Times in any form :func:`to_datetime64` accepts.

    Returns
    -------
    numpy.ndarray
        Float hours, the shape of ``values`` (a scalar for one time).

    Examples
    --------
    >>> universal_time_hours(["2024-02-01T13:30", "2024-02-02T00:00"])
    array([13.5,  0. ])
    """
    times = to_datetime64(values)
    return (times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")


def fold_longitude(lon: npt.ArrayLike) -> np.ndarray:
    """Fold longitudes in degrees east to [-180, 180).

    Parameters
    ----------
    lon
        Longitudes in degrees, any range (0..360 included).

    Returns
    -------
    numpy.ndarray
        The same meridians in [-180, 180); 180 maps to -180.

    Examples
    --------
    >>> fold_longitude([0.0, 190.0, 360.0, -180.0])
    array([   0., -170.,    0., -180.])
    """
    lon = np.asarray(lon, dtype=np.float64)
    return (lon + 180.0) % 360.0 - 180.0

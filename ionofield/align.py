"""Time alignment: TEC maps and indices on whole hours.

The model sees its drivers on one hourly axis (DESIGN.md section 4):

- TEC (maps every 15 min to 2 h): maps at the hour pass through; other hours are
  interpolated linearly in time between the neighbouring native maps.
- Kp (3 h): a step; the value of [t, t + 3 h) holds for each hour in it.
- F10.7 (1 day) and its 81-day centred mean: a step within the day.
- RO Ne (minutes): kept at its own time; :func:`bracket_hours` gives the two whole
  hours around it and their cosine-squared weights (the TEC maps are blended so).
  The step-valued drivers are not blended across a step: a time takes its slot's
  Kp and its day's F10.7 exactly (:func:`hour_index`, used by
  :func:`ionofield.campaign.drivers_at`), and the model's blend of the hourly
  driver history stays within a 3-hour slot (:func:`bracket_slots`). Blending the
  two whole hours around a time in the last hour of a slot would let the next
  slot's Kp (or the next day's F10.7) in up to an hour before it starts.

The numpy kernels (:func:`cos2_weights`, :func:`bracket_hours`, :func:`bracket_slots`,
:func:`hour_index`) carry no xarray and are reused by the model for its per-point
time weights.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ionofield.errors import (
    CampaignError,
    ConfigError,
    CoverageError,
    TimeOrderError,
    UnitsError,
)
from ionofield.io.indices import SLOT
from ionofield.iri import F107_RANGE
from ionofield.timeutil import HOUR, describe_times, to_datetime64

logger = logging.getLogger(__name__)

__all__ = [
    "align_indices",
    "align_tec",
    "bracket_hours",
    "cos2_weights",
    "hourly_axis",
]

#: Hourly drivers of a campaign that :func:`drivers_at` interpolates.
DRIVERS = ("kp", "f107", "f107_81")
#: Observation coordinates, renamed ``obs_<name>`` in a campaign.
OBS_COORDS = ("time", "lat", "lon", "alt", "profile", "mission")
#: Range of the planetary K index.
KP_RANGE = (0.0, 9.0)
_HOUR_NS = int(HOUR / np.timedelta64(1, "ns"))
_HOURS_PER_SLOT = int(SLOT / HOUR)


def cos2_weights(frac: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Cosine-squared weights of the hours before and after a time.

    For a time ``t = t0 + frac * 1 h`` between whole hours ``t0`` and ``t1 = t0 + 1 h``,
    ``w0 = cos^2(pi * frac / 2)`` and ``w1 = sin^2(pi * frac / 2) = 1 - w0`` (the seed's
    ``cos^2(pi * frac)`` corrected, DESIGN.md section 3): exact at both hours
    (``w0(0) = 1``, ``w0(1) = 0``), summing to 1, with zero slope at the hours.

    Parameters
    ----------
    frac
        Fraction of the hour elapsed since ``t0``, in [0, 1]; any shape.

    Returns
    -------
    w0, w1 : numpy.ndarray
        float64 weights of ``t0`` and ``t1``, shape of ``frac``.

    Examples
    --------
    >>> w0, w1 = cos2_weights([0.0, 0.25, 0.5, 1.0])
    >>> w0.round(6).tolist(), w1.round(6).tolist()
    ([1.0, 0.853553, 0.5, 0.0], [0.0, 0.146447, 0.5, 1.0])
    """
    frac = np.asarray(frac, dtype=np.float64)
    # sin(pi / 2) is exactly 1.0 in float64, so both end points are exact.
    w1 = np.sin(0.5 * np.pi * frac) ** 2
    return 1.0 - w1, w1


def bracket_hours(times: object, hour_axis: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locate times on an hourly axis, with their cosine-squared weights.

    A value ``v`` given at the hours interpolates to the times as
    ``v[i0] * w0 + v[i0 + 1] * w1``; ``i0 + 1`` is always a valid index, and at the
    hours themselves this is exactly the value there.

    Parameters
    ----------
    times
        datetime64 times, shape [N] (convert others with
        :func:`ionofield.timeutil.to_datetime64`).
    hour_axis
        Increasing datetime64 times one hour apart, shape [H] with H >= 2.

    Returns
    -------
    i0 : numpy.ndarray
        int64 index of the hour at or before each time, in [0, H - 2], shape [N]
        (a time on the last hour gets ``H - 2`` with ``w1 = 1``).
    w0, w1 : numpy.ndarray
        float64 weights of hours ``i0`` and ``i0 + 1`` (:func:`cos2_weights`), shape [N].

    Raises
    ------
    TimeOrderError
        When ``hour_axis`` is not one hour apart throughout, or is shorter than 2.
    CoverageError
        When times fall outside the axis (or are NaT).

    Examples
    --------
    >>> import numpy as np
    >>> axis = np.array(["2024-05-11T00", "2024-05-11T01", "2024-05-11T02"], "datetime64[ns]")
    >>> i0, w0, w1 = bracket_hours(np.array(["2024-05-11T01:30"], "datetime64[ns]"), axis)
    >>> int(i0[0]), round(float(w0[0]), 6), round(float(w1[0]), 6)
    (1, 0.5, 0.5)
    """
    axis, delta = _offsets(times, hour_axis)
    i0 = delta // _HOUR_NS
    rem = delta - i0 * _HOUR_NS
    on_last = i0 == axis.size - 1
    i0[on_last] = axis.size - 2
    rem[on_last] = _HOUR_NS
    w0, w1 = cos2_weights(rem / _HOUR_NS)
    return i0, w0, w1


def bracket_slots(times: object, hour_axis: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`bracket_hours`, without blending across the start of a 3-hour slot.

    Kp steps at 00, 03, ..., 21 UT and F10.7 at 00 UT. A time in the last hour of a
    slot, ``[t0, t0 + 1 h)`` with ``t0 + 1 h`` a slot start, takes hour ``t0`` alone
    (``w0 = 1``, ``w1 = 0``): the blend of :func:`bracket_hours` would give it up to
    all of the next slot's value before that slot begins. Elsewhere the weights are
    those of :func:`bracket_hours`, so the blend of anything hourly stays within the
    slot and the day.

    Parameters
    ----------
    times
        datetime64 times, shape [N].
    hour_axis
        Increasing datetime64 times one hour apart, shape [H] with H >= 2.

    Returns
    -------
    i0, w0, w1 : numpy.ndarray
        As in :func:`bracket_hours`.

    Raises
    ------
    TimeOrderError, CoverageError
        As :func:`bracket_hours`.

    Examples
    --------
    >>> import numpy as np
    >>> axis = np.array(["2024-05-11T01", "2024-05-11T02", "2024-05-11T03"], "datetime64[ns]")
    >>> t = np.array(["2024-05-11T01:30", "2024-05-11T02:30"], "datetime64[ns]")
    >>> i0, w0, w1 = bracket_slots(t, axis)
    >>> i0.tolist(), w0.round(6).tolist(), w1.round(6).tolist()
    ([0, 1], [0.5, 1.0], [0.5, 0.0])
    """
    i0, w0, w1 = bracket_hours(times, hour_axis)
    axis = np.asarray(hour_axis, dtype="datetime64[ns]").ravel()
    t = np.asarray(times, dtype="datetime64[ns]").ravel()
    later = axis[i0 + 1]
    hour_of_day = (later - later.astype("datetime64[D]")) // HOUR
    held = (hour_of_day % _HOURS_PER_SLOT == 0) & (t < later)
    return i0, np.where(held, 1.0, w0), np.where(held, 0.0, w1)


def hour_index(times: object, hour_axis: object) -> np.ndarray:
    """Index of the whole hour at or before each time: where step-valued drivers read.

    Kp holds over its 3-hour slot and F10.7 over its day, and the hourly axis
    repeats them over their hours, so the value at this index is the slot's and
    the day's value at any time in them.

    Parameters
    ----------
    times
        datetime64 times, shape [N].
    hour_axis
        Increasing datetime64 times one hour apart, shape [H] with H >= 2.

    Returns
    -------
    numpy.ndarray
        int64 indices in [0, H - 1], shape [N].

    Raises
    ------
    TimeOrderError, CoverageError
        As :func:`bracket_hours`.

    Examples
    --------
    >>> import numpy as np
    >>> axis = np.array(["2024-05-11T00", "2024-05-11T01", "2024-05-11T02"], "datetime64[ns]")
    >>> hour_index(np.array(["2024-05-11T00:59", "2024-05-11T02:00"], "datetime64[ns]"), axis)
    array([0, 2])
    """
    _, delta = _offsets(times, hour_axis)
    return delta // _HOUR_NS


def _offsets(times: object, hour_axis: object) -> tuple[np.ndarray, np.ndarray]:
    """The checked hourly axis and the nanoseconds from its first hour to each time."""
    axis = np.asarray(hour_axis, dtype="datetime64[ns]").ravel()
    if axis.size < 2 or np.any(np.diff(axis) != HOUR):
        raise TimeOrderError(
            f"hour_axis: needs at least 2 times exactly one hour apart, got {axis.size} "
            f"from {describe_times(axis, HOUR)}; build it with ionofield.align.hourly_axis."
        )
    t = np.asarray(times, dtype="datetime64[ns]").ravel()
    delta = (t - axis[0]).astype(np.int64)
    span = (axis.size - 1) * _HOUR_NS
    outside = np.isnat(t) | (delta < 0) | (delta > span)
    if outside.any():
        bad = t[outside]
        raise CoverageError(
            f"{bad.size} time(s) (first {bad[0]}, last {bad[-1]}) lie outside the hourly axis "
            f"{axis[0]} to {axis[-1]}; extend the drivers (a campaign built with a longer "
            "period) or drop those times."
        )
    return axis, delta


def hourly_axis(start: object, end: object) -> np.ndarray:
    """Whole hours covering [start, end].

    Parameters
    ----------
    start, end
        Scalar times (datetime64, pandas, Python datetime, cftime or ISO string).

    Returns
    -------
    numpy.ndarray
        ``datetime64[ns]`` hours from ``start`` rounded down to ``end`` rounded up,
        shape [H].

    Raises
    ------
    TimeOrderError
        When ``end`` is before ``start``.

    Examples
    --------
    >>> hourly_axis("2024-05-11T00:10", "2024-05-11T01:50")
    array(['2024-05-11T00:00:00.000000000', '2024-05-11T01:00:00.000000000',
           '2024-05-11T02:00:00.000000000'], dtype='datetime64[ns]')
    """
    first = timestamp(start).floor("h")
    last = timestamp(end).ceil("h")
    if last < first:
        raise TimeOrderError(f"hourly_axis: end ({end}) is before start ({start}); swap them.")
    return pd.date_range(first, last, freq="h").to_numpy(dtype="datetime64[ns]")


def align_tec(tec: xr.Dataset, hours: object, *, max_gap: str | pd.Timedelta = "2h") -> xr.Dataset:
    """TEC maps on whole hours.

    A map already at an hour passes through unchanged; any other hour is interpolated
    linearly in time between the native maps either side of it (so 15-min maps give
    the maps at the hours, and 2-hour maps give the odd hours as the mean of their
    neighbours).

    Parameters
    ----------
    tec
        Dataset with ``tec(time, lat, lon)`` in TECU (and optionally ``tec_rms`` or
        other variables on ``time``), as read by ``ionofield.open_ionex``.
    hours
        The whole hours wanted, shape [H] (e.g. from :func:`hourly_axis`).
    max_gap
        Widest spacing of two native maps that an hour between them is interpolated
        across; wider gaps (a missing file) count as not covered.

    Returns
    -------
    xarray.Dataset
        Every variable on ``time`` aligned to ``hours`` (floating dtypes kept), other
        variables and coordinates unchanged; ``tec_observed(time)`` (int8) is 1 at the
        hours with a native map and 0 at the interpolated ones, so that the TEC path
        tells measured maps from interpolated ones (a 2-hourly product's odd hours);
        ``attrs["time_alignment"]`` says how many hours were interpolated.

    Raises
    ------
    CampaignError
        When ``tec`` has no ``tec(time, ...)`` variable.
    ConfigError
        When ``max_gap`` is not a positive duration.
    CoverageError
        When the maps do not cover some hours, naming them and the file to add.
    TimeOrderError
        When two maps share a time.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.array(["2024-05-11T00", "2024-05-11T02"], "datetime64[ns]")
    >>> tec = xr.Dataset({"tec": (("time", "lat", "lon"), np.array([10.0, 20.0]).reshape(2, 1, 1))},
    ...                  coords={"time": t, "lat": [0.0], "lon": [0.0]})
    >>> out = align_tec(tec, hourly_axis(t[0], t[1]))
    >>> out.tec.values.ravel().tolist(), out.tec_observed.values.tolist()
    ([10.0, 15.0, 20.0], [1, 0, 1])
    """
    native = tec_times(tec)
    order = np.argsort(native, kind="stable")
    native = native[order]
    repeated = native[1:][np.diff(native) == np.timedelta64(0)]
    if repeated.size:
        raise TimeOrderError(
            f"TEC Dataset: map time(s) {describe_times(repeated, HOUR)} appear more than once "
            "(e.g. the 24:00 map of one daily file and the 00:00 map of the next); keep one "
            "with tec.drop_duplicates('time') before aligning."
        )
    tec = _drop_time_coords(tec).isel(time=order)
    target = to_datetime64(hours).ravel()
    gap = _duration(max_gap, "max_gap")

    last = native.size - 1
    j = np.searchsorted(native, target, side="right") - 1
    i0 = np.clip(j, 0, last)
    nxt = np.clip(j + 1, 0, last)
    exact = (j >= 0) & (native[i0] == target)
    between = (j >= 0) & (j < last) & (native[nxt] - native[i0] <= gap)
    covered = exact | between
    if not covered.all():
        raise CoverageError(_tec_gap_message(tec, native, target[~covered], gap))

    i1 = np.where(exact, i0, nxt)
    width = np.where(exact, 1, (native[i1] - native[i0]).astype(np.int64))
    frac = np.where(exact, 0.0, (target - native[i0]).astype(np.int64) / width)
    w1 = xr.DataArray(frac, dims="time", coords={"time": target})
    w0 = 1.0 - w1
    lo = tec.isel(time=i0).assign_coords(time=target)
    hi = tec.isel(time=i1).assign_coords(time=target)
    out = tec.drop_dims("time").assign_coords(time=target)
    for name, var in tec.data_vars.items():
        if "time" not in var.dims:
            continue
        value = lo[name] * w0 + hi[name] * w1
        if np.issubdtype(var.dtype, np.floating):
            value = value.astype(var.dtype)
        out[name] = value.transpose(*var.dims).assign_attrs(var.attrs)
    out["tec_observed"] = xr.DataArray(
        exact.astype(np.int8),
        dims="time",
        coords={"time": target},
        attrs={
            "long_name": "a native TEC map lies at this hour",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "interpolated_in_time native_map",
        },
    )
    n_interp = int((~exact).sum())
    out.attrs = {
        **tec.attrs,
        "time_alignment": (
            f"{target.size - n_interp} hour(s) from maps at the hour, {n_interp} interpolated "
            f"linearly in time between neighbouring maps ({native.size} native maps)"
        ),
    }
    logger.info(
        "aligned %d TEC maps to %d hours (%d interpolated)", native.size, target.size, n_interp
    )
    return out


def tec_times(tec: xr.Dataset) -> np.ndarray:
    """The map times of a TEC Dataset as ``datetime64[ns]``, in the Dataset's order.

    Parameters
    ----------
    tec
        Dataset with ``tec(time, lat, lon)`` (``ionofield.open_ionex``).

    Returns
    -------
    numpy.ndarray
        Shape [n_maps].

    Raises
    ------
    CampaignError
        When there is no ``tec`` variable on a ``time`` dimension.
    CalendarError
        When the times are in a model calendar.
    """
    if "tec" not in tec.data_vars or "time" not in tec["tec"].dims or "time" not in tec.coords:
        raise CampaignError(
            f"TEC Dataset: needs a 'tec(time, lat, lon)' variable with a 'time' coordinate, "
            f"found data variables {list(tec.data_vars)}; read IONEX files with "
            "ionofield.open_ionex."
        )
    return to_datetime64(tec["time"].values, name="TEC maps 'time'")


def align_indices(idx: xr.Dataset, hours: object) -> xr.Dataset:
    """Kp and F10.7 on whole hours, as steps.

    Each hour takes the value of the 3-hour slot ``[t, t + 3 h)`` it falls in: Kp
    steps every 3 hours, and F10.7 and its 81-day mean (repeated over a day's slots
    by :func:`ionofield.open_indices`) step at midnight.

    Parameters
    ----------
    idx
        Dataset with ``kp``, ``f107`` and ``f107_81`` on a ``time`` axis of
        consecutive 3-hour slot starts (:func:`ionofield.open_indices`).
    hours
        The whole hours wanted, shape [H].

    Returns
    -------
    xarray.Dataset
        Every variable of ``idx`` on ``time`` at ``hours``, attributes kept.

    Raises
    ------
    CampaignError
        When a required variable is missing.
    TimeOrderError
        When the slots are not consecutive 3-hour intervals starting at 00, 03, ...,
        21 UT (the Kp intervals).
    CoverageError
        When the slots do not cover some hours, or values there are missing (NaN).
    UnitsError
        When Kp leaves 0..9, or F10.7 or its 81-day mean leaves
        :data:`ionofield.iri.F107_RANGE` (sfu), at some hours.

    Examples
    --------
    >>> from ionofield.io.indices import open_indices
    >>> idx = open_indices("2024-05-10", "2024-05-10")
    >>> align_indices(idx, hourly_axis("2024-05-10T08", "2024-05-10T09")).kp.values
    array([2.333, 2.   ])
    """
    absent = [name for name in DRIVERS if name not in idx.data_vars]
    if absent:
        raise CampaignError(
            f"indices Dataset: variable(s) {absent} missing (found {list(idx.data_vars)}); "
            "read the indices with ionofield.open_indices."
        )
    slots = to_datetime64(idx["time"].values, name="indices Dataset 'time'")
    if slots.size == 0 or np.any(np.diff(slots) != SLOT):
        raise TimeOrderError(
            f"indices Dataset: the time axis must be consecutive 3-hour slots, got "
            f"{describe_times(slots, SLOT)}; read the indices with ionofield.open_indices."
        )
    if (slots[0] - slots[0].astype("datetime64[D]")) % SLOT != np.timedelta64(0):
        raise TimeOrderError(
            f"indices Dataset: slots start at {slots[0]}, not at 00, 03, ..., 21 UT where the "
            "Kp intervals start; label each value with the start of its interval, or read "
            "the indices with ionofield.open_indices."
        )
    target = to_datetime64(hours).ravel()
    k = np.searchsorted(slots, target, side="right") - 1
    covered = (k >= 0) & (target < slots[-1] + SLOT)
    source = provenance(idx, "the indices Dataset")
    if not covered.all():
        raise CoverageError(
            f"indices from {source} (slots {slots[0]} to {slots[-1] + SLOT}) do not cover "
            f"hour(s) {describe_times(target[~covered], HOUR)}; read them for the whole "
            "period with ionofield.open_indices(start, end) (or pass indices=None to "
            "ionofield.campaign to do so)."
        )
    names = [name for name, var in idx.data_vars.items() if "time" in var.dims]
    out = _drop_time_coords(idx[names]).isel(time=k).assign_coords(time=target)
    problems = [
        f"{name} missing at {describe_times(target[out[name].isnull().values], HOUR)}"
        for name in names
        if out[name].isnull().any()
    ]
    if problems:
        raise CoverageError(f"indices from {source}: {'; '.join(problems)}.")
    check_index_ranges(out, source)
    out.attrs["time_alignment"] = (
        "step: each hour takes the value of the 3-hour slot [t, t + 3 h) it falls in"
    )
    return out


def check_index_ranges(hourly: xr.Dataset, source: str) -> None:
    """Raise UnitsError when hourly Kp, F10.7 or its 81-day mean leave their ranges."""
    limits = {
        "kp": (
            KP_RANGE,
            "Kp is 0-9 in thirds (values up to 90 look like celestrak's tenths: divide by 10)",
        ),
        "f107": (F107_RANGE, "F10.7 must be in solar flux units (1 sfu = 1e-22 W m-2 Hz-1)"),
        "f107_81": (F107_RANGE, "its 81-day mean must be in sfu as well"),
    }
    problems = []
    for name, ((lo, hi), fix) in limits.items():
        values = np.asarray(hourly[name].values, dtype=np.float64)
        bad = ~((values >= lo) & (values <= hi)) & ~np.isnan(values)
        if bad.any():
            hours = to_datetime64(hourly["time"].values)[bad]
            problems.append(
                f"{name} holds {int(bad.sum())} value(s) outside {lo:g}..{hi:g} (from "
                f"{values[bad].min():g} to {values[bad].max():g}, at "
                f"{describe_times(hours, HOUR)}); {fix}"
            )
    if problems:
        raise UnitsError(
            f"indices from {source}: {'; '.join(problems)}. Read the indices with "
            "ionofield.open_indices, or correct these values."
        )


def timestamp(time: object, name: str = "time") -> pd.Timestamp:
    """Convert a scalar time of any accepted kind to a pandas Timestamp (ns).

    ``name`` says what the time is in the messages of
    :func:`ionofield.timeutil.to_datetime64`'s errors.
    """
    return pd.Timestamp(to_datetime64(time, name=name)[()])


def provenance(ds: xr.Dataset, default: str) -> str:
    """Name the files a Dataset was read from (``source_files`` or ``source`` attribute)."""
    return str(ds.attrs.get("source_files", ds.attrs.get("source", default)))


def _duration(value: object, name: str) -> np.timedelta64:
    """A positive duration from a string or timedelta; ConfigError naming ``name`` otherwise."""
    try:
        duration = pd.Timedelta(value)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{name}={value!r} is not a duration ({err}); give e.g. '4h' or pandas.Timedelta."
        ) from err
    if pd.isna(duration) or duration <= pd.Timedelta(0):
        raise ConfigError(f"{name}={value!r} must be a positive duration, e.g. '4h'.")
    return duration.to_timedelta64()


def _drop_time_coords(ds: xr.Dataset) -> xr.Dataset:
    """Drop the non-index coordinates along ``time`` (they would not survive alignment)."""
    stale = [name for name, c in ds.coords.items() if name != "time" and "time" in c.dims]
    return ds.drop_vars(stale)


def _tec_gap_message(
    tec: xr.Dataset, native: np.ndarray, missing: np.ndarray, gap: np.timedelta64
) -> str:
    """Explain which hours the TEC maps miss and which files would cover them."""
    fixes = []
    if (missing < native[0]).any():
        fixes.append(
            "load the previous day's IONEX file as well for the hours before the first map"
        )
    if (missing > native[-1]).any():
        fixes.append("load the next day's IONEX file as well for the hours after the last map")
    if ((missing > native[0]) & (missing < native[-1])).any():
        fixes.append(
            f"between maps more than {pd.Timedelta(gap)} apart hours are not interpolated: add "
            "the missing files, or interpolate across the gap with a larger max_gap= (e.g. "
            "ionofield.campaign(..., max_gap='4h'))"
        )
    return (
        f"TEC maps from {provenance(tec, 'the TEC Dataset')} ({native.size} maps, "
        f"{native[0]} to {native[-1]}) do not cover hour(s) {describe_times(missing, HOUR)}; "
        f"{'; '.join(fixes)} (ionofield.open_ionex reads several files at once)."
    )

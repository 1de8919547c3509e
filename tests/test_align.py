"""Tests of ionofield.align and the .rstmrf accessor's align()."""

from __future__ import annotations

import cftime
import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import ionofield.accessor  # noqa: F401  (registers .rstmrf)
from ionofield.align import (
    align_indices,
    align_tec,
    bracket_hours,
    bracket_slots,
    cos2_weights,
    hour_index,
    hourly_axis,
)
from ionofield.campaign import campaign, drivers_at
from ionofield.drivers import HourlyDrivers
from ionofield.errors import (
    CampaignError,
    ConfigError,
    CoverageError,
    DataWarning,
    ManyProblemsError,
    TimeOrderError,
    UnitsError,
)
from ionofield.timeutil import HOUR, hours_since

EPOCH = np.datetime64("2024-05-11T00:00", "ns")
LAT = np.array([-87.5, -30.0, 0.0, 45.0, 87.5])
LON = np.array([-180.0, -90.0, 0.0, 90.0, 180.0])


def linear_field(t: np.ndarray) -> np.ndarray:
    """TEC in TECU, linear in time at each grid point: shape [time, lat, lon]."""
    hours = hours_since(t, EPOCH)[:, None, None]
    space = 20.0 + 10.0 * np.cos(np.deg2rad(LAT))[:, None] + 0.01 * LON[None, :]
    return (space + (0.5 + 0.001 * LON[None, :]) * hours).astype(np.float32)


def make_tec(times: np.ndarray, values: np.ndarray | None = None) -> xr.Dataset:
    values = linear_field(times) if values is None else values
    return xr.Dataset(
        {"tec": (("time", "lat", "lon"), values, {"units": "TECU"})},
        coords={"time": times, "lat": LAT, "lon": LON},
        attrs={"source": "hand-made maps"},
    )


def make_indices(first_day: str, n_days: int) -> xr.Dataset:
    """Kp = slot number / 3 (mod 28), F10.7 = 100 + 10 * day, on 3-hourly slots."""
    n = 8 * n_days
    time = np.datetime64(first_day, "ns") + np.arange(n) * np.timedelta64(3, "h")
    day = np.repeat(np.arange(n_days), 8)
    return xr.Dataset(
        {
            "kp": ("time", np.round((np.arange(n) % 28) / 3.0, 3), {"units": "1"}),
            "f107": ("time", 100.0 + 10.0 * day, {"units": "sfu"}),
            "f107_81": ("time", 90.0 + 1.0 * day, {"units": "sfu"}),
        },
        coords={"time": time},
        attrs={"source": "hand-made indices"},
    )


def make_obs(times) -> xr.Dataset:
    n = len(times)
    return xr.Dataset(
        {"ne": ("obs", np.linspace(1e10, 1e12, n)), "ne_err": ("obs", np.full(n, 1e9))},
        coords={
            "time": ("obs", times),
            "lat": ("obs", np.linspace(-60.0, 60.0, n)),
            "lon": ("obs", np.linspace(-170.0, 170.0, n)),
            "alt": ("obs", np.linspace(150.0, 600.0, n)),
            "profile": ("obs", [f"p{i // 2}" for i in range(n)]),
            "mission": ("obs", ["COSMIC-2"] * (n - 1) + ["FY-3D"]),
        },
        attrs={"source": "hand-made profiles"},
    )


OBS_TIMES = np.array(
    ["2024-05-11T10:40", "2024-05-11T08:05", "2024-05-11T09:00", "2024-05-11T12:59"],
    dtype="datetime64[ns]",
)


@pytest.fixture
def day_tec() -> xr.Dataset:
    """Hourly maps over 2024-05-11 00:00 .. 2024-05-12 00:00 (25 maps, like CODE)."""
    return make_tec(EPOCH + np.arange(25) * HOUR)


@pytest.fixture
def camp(day_tec) -> xr.Dataset:
    period = ("2024-05-11T02:00", "2024-05-11T13:00")
    return campaign(make_obs(OBS_TIMES), day_tec, make_indices("2024-05-11", 1), period=period)


@pytest.fixture(scope="module")
def shared_camp() -> xr.Dataset:
    """The ``camp`` campaign, built once for the property tests (which do not change it)."""
    period = ("2024-05-11T02:00", "2024-05-11T13:00")
    return campaign(make_obs(OBS_TIMES), make_tec(EPOCH + np.arange(25) * HOUR),
                    make_indices("2024-05-11", 1), period=period)


# --- cosine-squared weights -------------------------------------------------------


def test_cos2_weights_exact_at_hours():
    w0, w1 = cos2_weights([0.0, 1.0])
    assert w0.tolist() == [1.0, 0.0]
    assert w1.tolist() == [0.0, 1.0]


def test_cos2_weights_zero_slope_at_hours():
    h = 1e-4
    for f in (0.0, 1.0 - h):
        w0a, _ = cos2_weights(f)
        w0b, _ = cos2_weights(f + h)
        # The derivative is (pi / 2) sin(pi f), so the difference is O(h^2), not O(h).
        assert abs((w0b - w0a) / h) < 10 * h


def test_cos2_weights_not_the_seed_formula():
    # The seed's cos^2(pi * frac) would give 1 at frac = 1: the value of the wrong hour.
    w0, _ = cos2_weights(1.0)
    assert w0 == 0.0
    assert np.cos(np.pi * 1.0) ** 2 == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_cos2_weights_properties(fracs):
    f = np.array(fracs)
    w0, w1 = cos2_weights(f)
    np.testing.assert_allclose(w0 + w1, 1.0, rtol=0, atol=1e-15)
    assert ((w0 >= 0) & (w0 <= 1) & (w1 >= 0) & (w1 <= 1)).all()
    w0_mirror, w1_mirror = cos2_weights(1.0 - f)
    np.testing.assert_allclose(w0, w1_mirror, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w1, w0_mirror, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w0, np.cos(np.pi * f / 2) ** 2, rtol=0, atol=1e-15)
    # w0 falls monotonically from hour t0 to hour t1.
    order = np.argsort(f)
    assert (np.diff(w0[order]) <= 1e-15).all()


# --- hourly axis and bracketing ---------------------------------------------------


def test_hourly_axis_rounds_out():
    axis = hourly_axis("2024-05-11T00:10", "2024-05-11T02:00")
    np.testing.assert_array_equal(axis, EPOCH + np.arange(3) * HOUR)
    with pytest.raises(TimeOrderError):
        hourly_axis("2024-05-11T02", "2024-05-11T01")


def test_bracket_hours_exact_at_hours():
    axis = EPOCH + np.arange(5) * HOUR
    i0, w0, w1 = bracket_hours(axis, axis)
    assert i0.tolist() == [0, 1, 2, 3, 3]
    assert w0.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert w1.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5 * 3600 * 10**9), min_size=1, max_size=30))
def test_bracket_hours_brackets(offsets_ns):
    axis = EPOCH + np.arange(6) * HOUR
    t = EPOCH + np.array(offsets_ns, dtype="timedelta64[ns]")
    i0, w0, w1 = bracket_hours(t, axis)
    assert ((i0 >= 0) & (i0 <= 4)).all()
    assert ((axis[i0] <= t) & (t <= axis[i0 + 1])).all()
    frac = (t - axis[i0]) / HOUR
    e0, e1 = cos2_weights(frac)
    np.testing.assert_allclose(w0, e0, atol=1e-12)
    np.testing.assert_allclose(w1, e1, atol=1e-12)


def test_bracket_hours_errors():
    axis = EPOCH + np.arange(3) * HOUR
    with pytest.raises(CoverageError, match="outside the hourly axis"):
        bracket_hours(np.array([EPOCH + 3 * HOUR]), axis)
    with pytest.raises(CoverageError):
        bracket_hours(np.array([EPOCH - np.timedelta64(1, "s")]), axis)
    with pytest.raises(TimeOrderError, match="one hour apart"):
        bracket_hours(np.array([EPOCH]), EPOCH + np.arange(3) * 2 * HOUR)


# --- TEC --------------------------------------------------------------------------


def test_align_tec_15min_picks_whole_hour_maps():
    native = EPOCH + np.arange(4 * 6 + 1) * np.timedelta64(15, "m")
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, (native.size, LAT.size, LON.size)).astype(np.float32)
    hours = hourly_axis(native[0], native[-1])
    out = align_tec(make_tec(native, values), hours)
    assert out.tec.dtype == np.float32
    assert out.tec.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(out.time.values, hours)
    np.testing.assert_array_equal(out.tec.values, values[::4])
    assert out.tec.attrs["units"] == "TECU"
    assert out.attrs["source"] == "hand-made maps"
    assert "0 interpolated" in out.attrs["time_alignment"]


@pytest.mark.parametrize("step_min", [15, 30, 60, 120], ids=lambda m: f"{m}min")
def test_align_tec_recovers_linear_field(step_min):
    native = EPOCH + np.arange(0, 12 * 60 + 1, step_min) * np.timedelta64(1, "m")
    hours = hourly_axis(native[0], native[-1])
    out = align_tec(make_tec(native), hours)
    np.testing.assert_allclose(out.tec.values, linear_field(hours), rtol=2e-6)


def test_align_tec_2h_odd_hours_interpolated():
    native = EPOCH + np.arange(13) * 2 * HOUR
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 100, (native.size, LAT.size, LON.size)).astype(np.float32)
    out = align_tec(make_tec(native, values), hourly_axis(native[0], native[-1]))
    assert out.sizes["time"] == 25
    np.testing.assert_array_equal(out.tec.values[::2], values)
    np.testing.assert_allclose(out.tec.values[1::2], 0.5 * (values[:-1] + values[1:]), rtol=1e-6)
    assert "12 interpolated" in out.attrs["time_alignment"]


def test_align_tec_odd_hour_epochs_unsorted():
    # CAS-style maps at 01:00, 03:00, ... given out of order.
    native = EPOCH + (1 + 2 * np.arange(12)) * HOUR
    order = np.random.default_rng(2).permutation(native.size)
    tec = make_tec(native[order])
    hours = hourly_axis(native[0], native[-1])
    out = align_tec(tec, hours)
    np.testing.assert_allclose(out.tec.values, linear_field(hours), rtol=2e-6)


def test_align_tec_stays_lazy():
    native = EPOCH + np.arange(7) * 2 * HOUR
    tec = make_tec(native).chunk({"time": 2})

    def refuse(*args, **kwargs):
        raise AssertionError("align_tec computed a dask array")

    with dask.config.set(scheduler=refuse):
        out = align_tec(tec, hourly_axis(native[0], native[-1]))
    assert isinstance(out.tec.data, da.Array)
    np.testing.assert_allclose(
        out.tec.values, linear_field(hourly_axis(native[0], native[-1])), rtol=2e-6
    )


def test_align_tec_coverage_errors(day_tec):
    with pytest.raises(CoverageError, match=r"2024-05-10T22:00 to 2024-05-10T23:00.*previous day"):
        align_tec(day_tec, hourly_axis("2024-05-10T22", "2024-05-11T02"))
    with pytest.raises(CoverageError, match="next day"):
        align_tec(day_tec, hourly_axis("2024-05-11T23", "2024-05-12T01"))
    gappy = day_tec.isel(time=[0, 1, 2, 6, 7])
    with pytest.raises(CoverageError, match=r"03:00 to 2024-05-11T05:00 \(3\).*max_gap"):
        align_tec(gappy, hourly_axis("2024-05-11T00", "2024-05-11T07"))
    # A wider max_gap interpolates across it.
    out = align_tec(gappy, hourly_axis("2024-05-11T00", "2024-05-11T07"), max_gap="4h")
    np.testing.assert_allclose(out.tec.values, day_tec.tec.values[:8], rtol=2e-6)


def test_align_tec_duplicate_maps(day_tec):
    doubled = xr.concat([day_tec.isel(time=[0, 1]), day_tec.isel(time=[1, 2])], dim="time")
    with pytest.raises(TimeOrderError, match="drop_duplicates"):
        align_tec(doubled, hourly_axis("2024-05-11T00", "2024-05-11T02"))


# --- indices ----------------------------------------------------------------------


def test_align_indices_kp_steps_at_3h_boundaries():
    idx = make_indices("2024-05-11", 1)
    hours = hourly_axis("2024-05-11T00", "2024-05-11T23")
    out = align_indices(idx, hours)
    kp = idx.kp.values
    assert out.kp.sel(time="2024-05-11T02").item() == kp[0]
    assert out.kp.sel(time="2024-05-11T03").item() == kp[1]
    np.testing.assert_array_equal(out.kp.values, np.repeat(kp, 3))
    assert out.kp.attrs["units"] == "1"


def test_align_indices_f107_steps_within_day():
    idx = make_indices("2024-05-10", 2)
    out = align_indices(idx, hourly_axis("2024-05-10T00", "2024-05-11T23"))
    np.testing.assert_array_equal(out.f107.values, np.repeat([100.0, 110.0], 24))
    np.testing.assert_array_equal(out.f107_81.values, np.repeat([90.0, 91.0], 24))
    assert out.f107.sel(time="2024-05-10T23").item() == 100.0
    assert out.f107.sel(time="2024-05-11T00").item() == 110.0


def test_align_indices_errors():
    idx = make_indices("2024-05-11", 1)
    with pytest.raises(CoverageError, match=r"2024-05-12T00:00.*open_indices"):
        align_indices(idx, hourly_axis("2024-05-11T22", "2024-05-12T00"))
    with pytest.raises(CampaignError, match="f107_81"):
        align_indices(idx.drop_vars("f107_81"), hourly_axis("2024-05-11T00", "2024-05-11T01"))
    holed = idx.copy(deep=True)
    holed["kp"][2] = np.nan
    with pytest.raises(CoverageError, match="kp missing at 2024-05-11T06:00"):
        align_indices(holed, hourly_axis("2024-05-11T05", "2024-05-11T07"))


# --- campaign ---------------------------------------------------------------------


def test_campaign_contents(camp, day_tec):
    assert set(camp.dims) == {"obs", "time", "lat", "lon"}
    for name in ("obs_time", "obs_lat", "obs_lon", "obs_alt", "obs_profile", "obs_mission"):
        assert camp[name].dims == ("obs",)
    assert camp.ne.dims == ("obs",) and camp.ne_err.dims == ("obs",)
    # Observations sorted in time, values moved with their times.
    np.testing.assert_array_equal(camp.obs_time.values, np.sort(OBS_TIMES))
    assert camp.ne.values[0] == make_obs(OBS_TIMES).ne.values[1]
    # The period asked for, in whole hours.
    np.testing.assert_array_equal(
        camp.time.values, hourly_axis("2024-05-11T02:00", "2024-05-11T13:00")
    )
    np.testing.assert_array_equal(camp.tec.values, day_tec.tec.sel(time=camp.time).values)
    assert camp.tec.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(camp.kp.values, np.repeat(np.arange(8) / 3.0, 3)[2:14].round(3))
    np.testing.assert_array_equal(camp.f107.values, 100.0)
    assert camp.attrs["n_obs"] == 4
    assert camp.attrs["n_profiles"] == 2
    assert camp.attrs["missions"] == "COSMIC-2, FY-3D"
    assert camp.attrs["tec_source"] == "hand-made maps"
    assert camp.attrs["indices_source"] == "hand-made indices"


def test_campaign_cftime_obs(camp, day_tec):
    stamps = pd.to_datetime(OBS_TIMES)
    cf_times = np.array(
        [cftime.DatetimeGregorian(t.year, t.month, t.day, t.hour, t.minute) for t in stamps]
    )
    period = (cftime.DatetimeGregorian(2024, 5, 11, 2), cftime.DatetimeGregorian(2024, 5, 11, 13))
    cf = campaign(make_obs(cf_times), day_tec, make_indices("2024-05-11", 1), period=period)
    assert cf.obs_time.dtype == np.dtype("datetime64[ns]")
    xr.testing.assert_identical(cf, camp)


def test_campaign_default_indices(day_tec):
    camp = campaign(make_obs(OBS_TIMES), day_tec, period=("2024-05-11T06", "2024-05-11T13"))
    np.testing.assert_array_equal(camp.time.values, hourly_axis("2024-05-11T06", "2024-05-11T13"))
    # 11 May 2024, from the shipped celestrak file: Kp 8.333 (06-09 UT), 9.0 (09-12 UT).
    np.testing.assert_array_equal(camp.kp.values, [8.333] * 3 + [9.0] * 3 + [8.667] * 2)
    np.testing.assert_array_equal(camp.f107.values, 213.7)
    assert "SW-" in camp.attrs["indices_source"]


def test_campaign_default_period_is_the_tec_span(day_tec):
    camp = campaign(make_obs(OBS_TIMES), day_tec, make_indices("2024-05-11", 2))
    np.testing.assert_array_equal(camp.time.values, day_tec.time.values)


def test_campaign_obs_outside_period(day_tec):
    obs = make_obs(OBS_TIMES - 9 * HOUR)  # 23:05 of the day before the TEC maps
    with pytest.raises(CoverageError, match=r"outside the drivers' period.*TEC maps covering"):
        campaign(obs, day_tec, make_indices("2024-05-10", 2))


def test_campaign_tec_not_covering_period(day_tec):
    with pytest.raises(CoverageError, match=r"previous day's IONEX"):
        campaign(make_obs(OBS_TIMES), day_tec, make_indices("2024-05-10", 2),
                 period=("2024-05-10T20", "2024-05-11T13"))


def test_campaign_indices_not_covering(day_tec):
    with pytest.raises(CoverageError, match=r"indices from hand-made indices.*open_indices"):
        campaign(make_obs(OBS_TIMES), day_tec, make_indices("2024-05-11T03", 1))


def test_campaign_bad_observations(day_tec):
    idx = make_indices("2024-05-11", 1)
    with pytest.raises(CampaignError, match="empty"):
        campaign(make_obs(OBS_TIMES).isel(obs=slice(0, 0)), day_tec, idx)
    with pytest.raises(ManyProblemsError, match=r"(?s)2 problem.*'ne'.*'alt'"):
        campaign(make_obs(OBS_TIMES).drop_vars(["ne", "alt"]), day_tec, idx)
    negative = make_obs(OBS_TIMES)
    negative["ne"][[0, 2]] = [-1e9, np.nan]
    with pytest.raises(ManyProblemsError, match=r"'ne' holds 2 zero, negative or NaN.*drop"):
        campaign(negative, day_tec, idx)


# --- drivers at minute times ------------------------------------------------------


def test_drivers_at_exact_at_hours(camp):
    out = drivers_at(camp, camp.time.values)
    for name in ("kp", "f107", "f107_81"):
        np.testing.assert_array_equal(out[name].values, camp[name].values)
    assert "tec" not in out


def test_drivers_at_takes_the_slot_value_up_to_the_slot_end(camp):
    # Kp: 0.333 for 03:00-06:00, 0.667 from 06:00. Blending the whole hours 05:00 and
    # 06:00 gave 05:59 almost all of the next slot's Kp, an hour before that slot.
    t0 = np.datetime64("2024-05-11T05:00", "ns")
    minutes = t0 + np.arange(0, 60) * np.timedelta64(1, "m")
    out = drivers_at(camp, minutes)
    assert camp.kp.sel(time=t0).item() != camp.kp.sel(time=t0 + HOUR).item()
    np.testing.assert_array_equal(out.kp.values, 0.333)
    assert drivers_at(camp, t0 + HOUR).kp.item() == 0.667
    assert out.kp.dims == ("time",)
    assert out.kp.attrs["units"] == "1"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 11 * 60), min_size=1, max_size=20))
def test_drivers_at_equals_the_slot_and_day_values(shared_camp, minutes):
    times = np.datetime64("2024-05-11T02:00", "ns") + np.array(minutes) * np.timedelta64(1, "m")
    out = drivers_at(shared_camp, times)
    idx = make_indices("2024-05-11", 1)
    slot = (times - np.datetime64("2024-05-11", "ns")) // np.timedelta64(3, "h")
    np.testing.assert_array_equal(out.kp.values, idx.kp.values[slot])
    np.testing.assert_array_equal(out.f107.values, idx.f107.values[slot])


def test_drivers_at_f107_steps_at_midnight(day_tec):
    idx = make_indices("2024-05-11", 2)  # F10.7 100 on the 11th, 110 on the 12th
    cp = campaign(make_obs(OBS_TIMES + 10 * HOUR), day_tec, idx,
                  period=("2024-05-11T18", "2024-05-12T00"))
    out = drivers_at(cp, np.array(["2024-05-11T23:00", "2024-05-11T23:59:59",
                                   "2024-05-12T00:00"], "datetime64[ns]"))
    np.testing.assert_array_equal(out.f107.values, [100.0, 100.0, 110.0])
    np.testing.assert_array_equal(out.f107_81.values, [90.0, 90.0, 91.0])


def test_hour_index_and_bracket_slots():
    axis = EPOCH + np.arange(7) * HOUR  # 00:00 .. 06:00; slots start at 00, 03, 06
    t = EPOCH + np.array([0, 30, 90, 150, 179, 180, 330, 360]) * np.timedelta64(1, "m")
    assert hour_index(t, axis).tolist() == [0, 0, 1, 2, 2, 3, 5, 6]
    i0, w0, w1 = bracket_slots(t, axis)
    h0, v0, v1 = bracket_hours(t, axis)
    held = np.array([False, False, False, True, True, False, True, False])
    np.testing.assert_array_equal(i0, h0)
    np.testing.assert_array_equal(w1[held], 0.0)
    np.testing.assert_array_equal(w0[held], 1.0)
    np.testing.assert_array_equal(w0[~held], v0[~held])
    np.testing.assert_array_equal(w1[~held], v1[~held])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 11 * 60 - 1), min_size=1, max_size=20, unique=True))
def test_model_driver_history_never_reads_the_next_slot(shared_camp, minutes):
    # The rows of the LSTM history a time reads with a nonzero weight all end at an
    # hour of the time's own slot: the next slot's Kp and day's F10.7 are not in them.
    drivers = HourlyDrivers.from_campaign(shared_camp)
    times = np.datetime64("2024-05-11T02:00", "ns") + np.array(minutes) * np.timedelta64(1, "m")
    inputs = drivers.time_inputs(np.sort(times), env_len=3)
    i0, i1, w0, w1 = inputs.weights
    assert (w0 + w1 == 1).all()
    last = inputs.history[:, -1, :]  # features of the hour each row ends at
    own = drivers.features[(np.sort(times) - drivers.hours[0]) // HOUR]
    for rows, weight in ((i0, w0), (i1, w1)):
        used = weight > 0
        np.testing.assert_array_equal(last[rows[used]][:, [0, 2, 3]], own[used][:, [0, 2, 3]])
    # Within a slot the two hours are still blended (cosine-squared).
    mid = np.datetime64("2024-05-11T03:30", "ns")
    _, _, b0, b1 = drivers.time_inputs(np.array([mid]), env_len=3).weights
    assert b0[0] == pytest.approx(0.5) and b1[0] == pytest.approx(0.5)


def test_drivers_at_obs_times_and_cftime(camp):
    out = drivers_at(camp)
    assert out.kp.dims == ("obs",)
    np.testing.assert_array_equal(out.obs_time.values, camp.obs_time.values)
    cf = [cftime.DatetimeGregorian(2024, 5, 11, 8, 5), cftime.DatetimeGregorian(2024, 5, 11, 9)]
    out_cf = drivers_at(camp, cf)
    ref = drivers_at(camp, np.array(["2024-05-11T08:05", "2024-05-11T09:00"], "datetime64[ns]"))
    xr.testing.assert_identical(out_cf, ref)
    assert out_cf.kp.values[1] == camp.kp.sel(time="2024-05-11T09").item()


def test_drivers_at_errors(camp):
    with pytest.raises(CoverageError, match="outside the hourly axis"):
        drivers_at(camp, np.array(["2024-05-11T13:01"], "datetime64[ns]"))
    with pytest.raises(CampaignError, match=r"ionofield.campaign\("):
        drivers_at(make_indices("2024-05-11", 1), np.array([EPOCH]))


# --- accessor ---------------------------------------------------------------------


def test_accessor_align_is_drivers_at(camp):
    xr.testing.assert_identical(camp.rstmrf.align(), drivers_at(camp))
    minutes = pd.date_range("2024-05-11T02:00", "2024-05-11T13:00", freq="7min").values
    xr.testing.assert_identical(camp.rstmrf.align(minutes), drivers_at(camp, minutes))
    assert camp.rstmrf._model is None


def test_accessor_rejects_non_campaign(day_tec):
    with pytest.raises(CampaignError, match=r"not an ionofield campaign.*ionofield.campaign\("):
        day_tec.rstmrf.align()


# --- checks and labels of campaign() ----------------------------------------------


def test_campaign_labels_every_variable_from_the_cf_table(camp):
    for name, units in (("ne", "m-3"), ("ne_err", "m-3"), ("tec", "TECU"), ("kp", "1"),
                        ("f107", "sfu"), ("f107_81", "sfu"), ("obs_lat", "degrees_north"),
                        ("obs_lon", "degrees_east"), ("obs_alt", "km"), ("lat", "degrees_north"),
                        ("lon", "degrees_east")):
        assert camp[name].attrs["units"] == units, name
        assert camp[name].attrs["long_name"], name
    assert camp.obs_time.attrs["standard_name"] == "time"
    assert camp.time.attrs["axis"] == "T" and "axis" not in camp.obs_lat.attrs
    assert camp.obs_profile.attrs["long_name"] == "profile"


def test_campaign_refuses_indices_out_of_range(day_tec):
    idx = make_indices("2024-05-11", 1)
    idx["kp"][4] = 50.0
    idx["f107"][:] = -5.0
    message = r"kp holds 2 value.*0..9 \(from 50.*f107 holds 14 value.*solar flux units"
    with pytest.raises(UnitsError, match=message):
        campaign(make_obs(OBS_TIMES), day_tec, idx, period=("2024-05-11T00", "2024-05-11T13"))


def test_align_indices_refuses_slots_off_the_kp_intervals():
    idx = make_indices("2024-05-11", 1)
    late = idx.assign_coords(time=idx.time + np.timedelta64(90, "m"))
    with pytest.raises(TimeOrderError, match=r"01:30.*not at 00, 03, \.\.\., 21 UT"):
        align_indices(late, hourly_axis("2024-05-11T02", "2024-05-11T05"))


def test_campaign_max_gap_bridges_a_missing_map(day_tec):
    gappy = day_tec.isel(time=[0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13])
    period = ("2024-05-11T00", "2024-05-11T13")
    idx = make_indices("2024-05-11", 1)
    # The message points at campaign()'s own option, which now exists.
    with pytest.raises(CoverageError, match=r"ionofield.campaign\(\.\.\., max_gap='4h'\)"):
        campaign(make_obs(OBS_TIMES), gappy, idx, period=period)
    cp = campaign(make_obs(OBS_TIMES), gappy, idx, period=period, max_gap="4h")
    np.testing.assert_allclose(cp.tec.values, day_tec.tec.values[:14], rtol=2e-6)
    with pytest.raises(ConfigError, match=r"max_gap='-1h' must be a positive duration"):
        campaign(make_obs(OBS_TIMES), gappy, idx, period=period, max_gap="-1h")


def test_campaign_converts_declared_cm3_and_drops_exact_duplicates(camp, day_tec):
    obs = make_obs(OBS_TIMES)
    obs["ne"] = obs.ne.assign_attrs(units="el/cm3") / 1e6
    obs["ne_err"] = obs.ne_err.assign_attrs(units="cm-3") / 1e6
    twice = xr.concat([obs, obs], dim="obs")
    period = ("2024-05-11T02:00", "2024-05-11T13:00")
    with pytest.warns(DataWarning) as caught:
        cp = campaign(twice, day_tec, make_indices("2024-05-11", 1), period=period)
    messages = [str(w.message) for w in caught]
    assert any("'ne' (8 values) in 'el/cm3' converted" in m for m in messages)
    assert any("'ne_err' (8 values) in 'cm-3' converted" in m for m in messages)
    assert any("4 duplicate observation(s)" in m and "4 kept" in m for m in messages)
    np.testing.assert_allclose(cp.ne.values, camp.ne.values, rtol=1e-12)
    np.testing.assert_allclose(cp.ne_err.values, camp.ne_err.values, rtol=1e-12)


# --- missing TEC cells: filled for the model, with a warning ------------------------


def test_missing_ionex_cells_are_filled_linearly_and_reported(tmp_path):
    import ionofield as iof

    lat = np.arange(-87.5, 87.6, 35.0)  # 6 rows
    lon = np.arange(-180.0, 180.1, 90.0)  # 5 columns, +180 repeating -180
    hours = EPOCH + np.arange(14) * HOUR
    rng = np.random.default_rng(5)
    maps = rng.uniform(5.0, 60.0, (hours.size, lat.size, lon.size)).round(1)
    maps[..., -1] = maps[..., 0]
    maps[3, 2, 1] = np.nan  # one 9999 cell at 03:00: lon -90, between -180 and 0
    maps[5, 0, :] = np.nan  # the whole southernmost row at 05:00
    path = tmp_path / "hand13120.24i"
    iof.write_ionex(xr.Dataset({"tec": (("time", "lat", "lon"), maps)},
                               coords={"time": hours, "lat": lat, "lon": lon}), path)
    with pytest.warns(DataWarning, match=r"6 of 420 TEC values \(in 2 of 14 maps\)"):
        read = iof.open_ionex(path)
    assert int(read.tec.isnull().sum()) == 1 + lon.size
    cp = campaign(make_obs(OBS_TIMES), read, make_indices("2024-05-11", 1),
                  period=("2024-05-11T00", "2024-05-11T13"))
    assert int(cp.tec.isnull().sum()) == 1 + lon.size  # the campaign keeps them missing
    with pytest.warns(DataWarning, match=r"5 missing cell\(s\) .* 2 hourly map\(s\) at "
                      r"2024-05-11T03:00, 2024-05-11T05:00 .*linearly in longitude"):
        drivers = HourlyDrivers.from_campaign(cp)
    assert np.isfinite(drivers.tec).all()
    np.testing.assert_array_equal(drivers.tec_lat, lat)
    np.testing.assert_array_equal(drivers.tec_lon, lon[:-1])  # +180 copy dropped
    row = cp.tec.sel(time="2024-05-11T03").values[2]
    assert drivers.tec[3, 2, 1] == pytest.approx(0.5 * (row[0] + row[2]), rel=1e-6)
    # The empty row (no row beyond it) takes the nearest filled one.
    np.testing.assert_allclose(drivers.tec[5, 0], cp.tec.values[5, 1, :-1], rtol=1e-6)
    untouched = np.ones(drivers.tec.shape, bool)
    untouched[3, 2, 1] = untouched[5, 0] = False
    np.testing.assert_array_equal(drivers.tec[untouched],
                                  cp.tec.values[:, :, :-1][untouched].astype(np.float32))


def test_a_tec_map_without_any_valid_cell_is_refused(day_tec):
    empty = day_tec.copy(deep=True)
    empty["tec"][4] = np.nan
    with pytest.raises(CoverageError, match=r"no valid cell .* at hour\(s\) 2024-05-11T04:00"):
        campaign(make_obs(OBS_TIMES), empty, make_indices("2024-05-11", 1),
                 period=("2024-05-11T02", "2024-05-11T13"))

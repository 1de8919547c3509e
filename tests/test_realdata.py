"""Checks of the readers against real files (see MANIFEST.md in the real-data folder).

Run with ``IONOFIELD_REALDATA=/path/to/realdata pytest -m realdata``; skipped when the
variable is unset. The files are never copied into the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ionofield.errors import IONEXFormatError
from ionofield.io.ionex import open_ionex, write_ionex

REALDATA = os.environ.get("IONOFIELD_REALDATA") or None

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(REALDATA is None, reason="set IONOFIELD_REALDATA to the real-data folder"),
]


def realdata(name: str) -> Path:
    return Path(REALDATA or "") / name


_IONEX_NAME = re.compile(r"(\.\d\d[iI]|\.INX)(\.gz|\.Z)?$")
IONEX_FILES = (
    sorted(p.name for p in Path(REALDATA).iterdir() if _IONEX_NAME.search(p.name))
    if REALDATA
    else []
)


def expected_maps(name: str) -> int:
    """Map counts from MANIFEST.md: hourly files 25, CAS 12 (odd hours), others 13."""
    if name.startswith(("codg", "COD0", "CKMG0020", "CKMG0090")):
        return 25
    return 12 if name.startswith("casg") else 13


@pytest.mark.parametrize("name", IONEX_FILES)
def test_ionex_every_file(name):
    ds = open_ionex(realdata(name))
    assert ds.sizes == {"time": expected_maps(name), "lat": 71, "lon": 73}
    np.testing.assert_array_equal(ds.lat, np.arange(-87.5, 87.6, 2.5))
    np.testing.assert_array_equal(ds.lon, np.arange(-180.0, 180.1, 5.0))
    assert (np.diff(ds.time.values) > np.timedelta64(0)).all()
    names = ["tec"] if name.startswith("CKMG") else ["tec", "tec_rms"]
    assert sorted(ds.data_vars) == names
    for var in names:
        values = ds[var].values
        assert not np.isnan(values).any()
        assert 0.0 <= values.min() and values.max() <= 300.0
    assert ds.tec.max() > 5.0
    assert ds.attrs["ionex_height_km"] == (350.0 if name.startswith("CKMG") else 450.0)


def test_ionex_cas_odd_hour_epochs():
    ds = open_ionex(realdata("casg0010.99i.Z"))
    np.testing.assert_array_equal(
        ds.time.values, pd.date_range("1999-01-01T01:00", periods=12, freq="2h").values
    )
    assert ds.attrs["base_radius_km"] == 6371.4
    assert ds.attrs["institution"] == "LZSH"


def test_ionex_unpadded_igrg_header():
    path = realdata("igrg3380.10i")
    header = path.read_text().split("END OF HEADER")[0].splitlines()
    assert any(len(line) < 80 for line in header)  # the case this file is here for
    ds = open_ionex(path)
    assert ds.sizes["time"] == 13
    assert ds.attrs["institution"] == "GRL/UWM"
    assert ds.attrs["mapping_function"] == "COSZ"


def test_ionex_code_four_consecutive_days():
    paths = [realdata(f"codg00{d}0.20i.Z") for d in (1, 2, 3, 4)]
    ds = open_ionex(paths, with_rms=False)
    np.testing.assert_array_equal(
        ds.time.values, pd.date_range("2020-01-01", periods=24 * 4 + 1, freq="h").values
    )
    assert not ds.tec.isnull().any()


def test_ionex_code_and_igs_agree_on_the_same_day():
    code = open_ionex(realdata("COD0OPSFIN_20240350000_01D_01H_GIM.INX"))
    igs = open_ionex(realdata("IGS0OPSFIN_20240350000_01D_02H_GIM.INX"))
    assert igs.sizes["time"] == 13 and code.sizes["time"] == 25
    common = np.intersect1d(code.time.values, igs.time.values)
    assert common.size == 13  # every 2-hourly IGS epoch is also a CODE epoch
    diff = code.tec.sel(time=common) - igs.tec.sel(time=common)
    assert float(np.sqrt((diff**2).mean())) < 4.0  # measured 2.3 TECU
    assert abs(float(diff.mean())) < 2.0


@pytest.mark.parametrize("reverse", [False, True], ids=["code-first", "igs-first"])
def test_ionex_code_and_igs_of_one_day_are_not_mixed_unless_asked(reverse):
    files = [realdata("COD0OPSFIN_20240350000_01D_01H_GIM.INX"),
             realdata("IGS0OPSFIN_20240350000_01D_02H_GIM.INX")]
    files = files[::-1] if reverse else files
    with pytest.raises(IONEXFormatError, match="analysis centres and map intervals") as info:
        open_ionex(files)
    message = str(info.value)
    for fragment in ("AIUB, every 1 h, 1 file(s): COD0OPSFIN",
                     "GRL/UWM, every 2 h, 1 file(s): IGS0OPSFIN", "allow_mixed=True"):
        assert fragment in message
    both = open_ionex(files, allow_mixed=True)
    assert both.sizes["time"] == 25
    # every IGS epoch is a CODE epoch: the file given first wins there
    first = open_ionex(files[0]).tec
    xr.testing.assert_equal(both.tec.sel(time=first.time), first)


def test_ionex_real_file_round_trip(tmp_path):
    ds = open_ionex(realdata("COD0OPSFIN_20240350000_01D_01H_GIM.INX"))
    path = tmp_path / "copy.24i"
    write_ionex(ds, path)
    back = open_ionex(path)
    xr.testing.assert_equal(back[["tec", "tec_rms"]], ds[["tec", "tec_rms"]])
    assert back.attrs["ionex_height_km"] == ds.attrs["ionex_height_km"]


def test_ionex_z_without_system_gzip(monkeypatch):
    path = realdata("casg0010.99i.Z")
    with_gzip = open_ionex(path)
    monkeypatch.setattr("ionofield.io.ionex.shutil.which", lambda name: None)
    xr.testing.assert_identical(open_ionex(path), with_gzip)  # the unlzw3 fallback


def test_ionex_truncated_real_file(tmp_path):
    raw = realdata("casg0010.99i.Z").read_bytes()
    path = tmp_path / "casg0010.99i.Z"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IONEXFormatError, match="truncated") as info:
        open_ionex(path)
    assert info.value.path == str(path)


# ------------------------------------------------------------------- RO ionPrf profiles
# (section 2 of MANIFEST.md)

IONPRF_FILES = (
    sorted(p.name for p in Path(REALDATA).iterdir() if p.name.startswith("ionPrf_"))
    if REALDATA
    else []
)
IONPRF_NEGATIVES = {"C006": 22, "C2E2": 50, "C2E6": 0}  # as MANIFEST.md reports them


def _ionprf_attrs(name: str) -> dict:
    import netCDF4

    with netCDF4.Dataset(realdata(name)) as ds:
        ds.set_auto_maskandscale(False)
        attrs = {k: ds.getncattr(k) for k in ("edmax", "edmaxalt", "fileStamp", "mission")}
        attrs["negatives"] = int((ds["ELEC_dens"][:] < 0).sum())
    return attrs


def test_ro_all_ionprf_files_read():
    from ionofield.io.ro import open_ro_profiles

    assert len(IONPRF_FILES) == 5
    obs = open_ro_profiles(realdata("ionPrf_*"))
    assert (obs.attrs["n_files"], obs.attrs["n_profiles"]) == (5, 5)
    assert set(obs.mission.values) == {"COSMIC", "COSEQ"}
    assert (obs.ne > 0).all() and obs.ne.dtype == np.float64
    assert ((obs.lon >= -180) & (obs.lon < 180)).all() and (abs(obs.lat) <= 90).all()
    assert obs.attrs["dropped_fill"] == 0 and obs.attrs["dropped_nan"] == 0
    negatives = sum(_ionprf_attrs(name)["negatives"] for name in IONPRF_FILES)
    assert obs.attrs["dropped_nonpositive"] == negatives
    first = obs.isel(obs=obs.profile == "C2E2.2024.129.20.57.G31")
    assert (first.time.values == np.datetime64("2024-05-08T20:54:51", "ns")).all()


@pytest.mark.parametrize("name", IONPRF_FILES)
def test_ro_ionprf_peak_matches_file_attributes(name):
    from ionofield.io.ro import open_ro_profiles

    attrs = _ionprf_attrs(name)
    obs = open_ro_profiles(realdata(name))
    peak = int(np.argmax(obs.ne.values))
    assert obs.ne.values[peak] == pytest.approx(attrs["edmax"] * 1e6, rel=1e-6)  # float32
    assert obs.alt.values[peak] == pytest.approx(attrs["edmaxalt"], abs=1e-3)
    assert 1e11 < obs.ne.values[peak] < 1e13  # NmF2 in m-3
    assert set(obs.profile.values) == {attrs["fileStamp"]}
    assert obs.attrs["dropped_nonpositive"] == attrs["negatives"]
    satellite = attrs["fileStamp"].split(".")[0]
    if satellite in IONPRF_NEGATIVES:
        assert obs.attrs["dropped_nonpositive"] == IONPRF_NEGATIVES[satellite]


def test_ro_cosmic2_e2_e4_pair_agree():
    from ionofield.io.ro import open_ro_profiles

    obs = open_ro_profiles(realdata("ionPrf_C2E[24].2024.129.*"))
    nmf2 = obs.ne.groupby(obs.profile).max()
    assert nmf2.size == 2
    e2, e4 = (float(v) for v in nmf2.values)
    assert abs(e2 - e4) / max(e2, e4) < 0.2  # 1.59e12 and 1.68e12 m-3

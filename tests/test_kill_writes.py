"""Kill tests of volume writes, and the damaged NetCDF files ionofield reads back.

A subprocess writes a volume (chunks slowed down, so that the write takes seconds)
and is sent SIGKILL half-way: nothing may appear at the target, and the next write
to the same target must leave no stale ``.part`` file beside it. The only NetCDF
files ionofield reads back are the IRI background's cache files: a damaged one is
computed again, with a warning naming it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ionofield as iof
from ionofield.iri import iri_cube
from tests.conftest import START, background_dataset, indices_dataset, observations, tec_dataset

ROOT = Path(__file__).resolve().parents[1]

#: The writing subprocess: argv[1] the target, argv[2] "iof.to_netcdf" or "accessor".
CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd, torch
    import ionofield as iof
    from tests.conftest import (START, background_dataset, indices_dataset, observations,
                                tec_dataset)

    torch.set_num_threads(1)
    campaign = iof.campaign(obs=observations(n_profiles=4), tec=tec_dataset(),
                            indices=indices_dataset())
    target = iof.grid(time=pd.date_range(START, periods=12, freq="h"),
                      alt=np.arange(100.0, 801.0, 50.0), lat=np.arange(-80.0, 81.0, 10.0),
                      lon=np.arange(-180.0, 180.0, 10.0))
    model = iof.RSTMRF(iof.FitConfig(basis_dim=8, siren_hidden=16, siren_layers=1,
                                     env_hidden=8, env_len=4, seq_len=2, tec_feat_dim=4))
    vol = iof.reconstruct(campaign, target, model=model, background=background_dataset(),
                          chunks=1)

    def slow(block):
        time.sleep(0.25)
        return block

    vol = vol.map(lambda v: v.copy(data=v.data.map_blocks(slow, dtype=v.dtype)))
    if sys.argv[2] == "accessor":
        vol.rstmrf.to_netcdf(sys.argv[1])
    else:
        iof.to_netcdf(vol, sys.argv[1])
    print("finished")
    """
)


def stale_parts(folder: Path, name: str = "ne.nc") -> list[Path]:
    return sorted(folder.glob(f".{name}.*.part"))


def small_volume() -> xr.Dataset:
    campaign = iof.campaign(obs=observations(n_profiles=4), tec=tec_dataset(),
                            indices=indices_dataset())
    target = iof.grid(time=pd.date_range(START, periods=2, freq="h"), alt=[200.0, 300.0],
                      lat=[-30.0, 30.0], lon=[-180.0, 0.0, 180.0])
    model = iof.RSTMRF(iof.FitConfig(basis_dim=8, siren_hidden=16, siren_layers=1,
                                     env_hidden=8, env_len=4, seq_len=2, tec_feat_dim=4))
    return iof.reconstruct(campaign, target, model=model, background=background_dataset())


@pytest.fixture(scope="module", params=["iof.to_netcdf", "accessor"])
def killed(request, tmp_path_factory):
    """Kill a subprocess writing ``ne.nc`` once its ``.part`` file has grown."""
    folder = tmp_path_factory.mktemp("kill")
    target = folder / "ne.nc"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), request.param],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180.0
        while not any(p.stat().st_size > 0 for p in stale_parts(folder)):
            if proc.poll() is not None:
                pytest.fail(f"the writer exited ({proc.returncode}) before writing: "
                            f"{proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the writer did not start writing within 180 s")
            time.sleep(0.02)
        time.sleep(0.5)
        assert proc.poll() is None, "the write finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return request.param, folder, proc.returncode


def test_killed_write_leaves_nothing_at_the_target(killed):
    writer, folder, code = killed
    assert code == -signal.SIGKILL
    assert not (folder / "ne.nc").exists()
    assert len(stale_parts(folder)) == 1  # the kill came mid-write


def test_next_write_removes_the_stale_part(killed):
    writer, folder, _ = killed
    vol = small_volume()
    if writer == "accessor":
        vol.rstmrf.to_netcdf(folder / "ne.nc")
    else:
        iof.to_netcdf(vol, folder / "ne.nc")
    with xr.open_dataset(folder / "ne.nc") as back:
        xr.testing.assert_equal(back.load(), vol.compute())
    assert stale_parts(folder) == []


@pytest.mark.parametrize("damage", ["truncated", "zero-bytes", "other-grid"])
def test_damaged_iri_cache_file_is_computed_again(damage, tmp_path, pyiri_calls):
    times = pd.date_range("2024-03-20T06:00", periods=2, freq="h")
    alt, lat, lon = np.array([200.0, 300.0]), np.array([-10.0, 10.0]), np.array([0.0, 90.0])
    first = iri_cube(times, alt, lat, lon, f107=150.0, cache_dir=tmp_path)
    path = sorted(tmp_path.glob("iri_*.nc"))[0]
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zero-bytes":
        path.write_bytes(b"")
    else:  # a readable file of another grid under this name
        other = iri_cube(times[:1], alt[:1], lat, lon, f107=150.0, cache_dir=tmp_path / "o")
        path.write_bytes(next((tmp_path / "o").glob("iri_*.nc")).read_bytes())
        del other
    calls = len(pyiri_calls)
    with pytest.warns(iof.errors.DataWarning, match=rf"{path.name} cannot be read .*computed "
                      r"again with PyIRI and rewritten \(1 file\)"):
        again = iri_cube(times, alt, lat, lon, f107=150.0, cache_dir=tmp_path)
    assert len(pyiri_calls) == calls + 1
    xr.testing.assert_identical(again.drop_attrs(), first.drop_attrs())
    iri_cube(times, alt, lat, lon, f107=150.0, cache_dir=tmp_path)  # rewritten: read back
    assert len(pyiri_calls) == calls + 1

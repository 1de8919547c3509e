"""Zarr output: region writes by blocks of times, resumed after an interruption or a kill.

The volumes here are lazy like those of ``ionofield.reconstruct`` (the three float32
variables stacked in one dask array, chunked over time, with CF attributes) but cheap:
their values are a function of the indices, so two builds are equal, and each chunk
records when it is computed, so a test sees which times a write computed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import ionofield as iof
from ionofield.errors import ConfigError
from ionofield.io.cf import attributes
from ionofield.io.zarr import MARKER, to_zarr
from tests.conftest import START

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("ne", "ne_background", "ne_log10_sigma")
GLOBAL_ATTRS = {"Conventions": "CF-1.11", "title": "a synthetic volume",
                "history": "2024-05-10T00:00:00Z ionofield test", "model_config_hash": "abc"}


def synthetic_volume(n_times: int = 7, *, chunks: int | None = 2, calls: list | None = None,
                     fail_from: int | None = None, delay: float = 0.0,
                     start: np.datetime64 = START) -> xr.Dataset:
    """A lazy volume of ``n_times`` hours on a 3 x 4 x 5 grid, ``chunks`` times per chunk.

    Each computed chunk appends its ``(start, stop)`` time indices to ``calls``; one
    starting at ``fail_from`` or later raises instead. ``chunks=None``: a loaded volume.
    """
    target = iof.grid(time=pd.date_range(start, periods=n_times, freq="h"),
                      alt=[200.0, 300.0, 400.0], lat=[-60.0, -20.0, 20.0, 60.0],
                      lon=[-180.0, -90.0, 0.0, 90.0, 180.0])
    shape = (len(NAMES), n_times, 3, 4, 5)

    def values(block_info=None):
        first, last = block_info[None]["array-location"][1]
        if calls is not None:
            calls.append((first, last))
        if fail_from is not None and first >= fail_from:
            raise RuntimeError(f"interrupted at time {first}")
        time.sleep(delay)
        index = np.indices((len(NAMES), last - first, 3, 4, 5), dtype=np.float64)
        index[1] += first
        log10 = 10.0 + 0.1 * index[1] + 0.5 * index[2] + 0.01 * index[3] + 0.001 * index[4]
        return (10.0 ** (log10 - 8.0 * (index[0] == 2))).astype(np.float32)

    stacked = dsa.map_blocks(values, dtype=np.float32,
                             chunks=((3,), *dsa.core.normalize_chunks(
                                 (chunks or n_times, 3, 4, 5), shape[1:])))
    volume = xr.Dataset(
        {name: (("time", "alt", "lat", "lon"), stacked[k], attributes(name))
         for k, name in enumerate(NAMES)},
        coords={name: target[name] for name in ("time", "alt", "lat", "lon")},
        attrs=GLOBAL_ATTRS,
    )
    return volume if chunks else volume.compute()


def marker(store: Path) -> np.ndarray:
    return zarr.open_array(store, path=MARKER, mode="r")[:]


def files(store: Path) -> dict[str, bytes]:
    """Every file of a store, by its path inside it."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file()}


def test_round_trip_values_attributes_and_time_as_netcdf(tmp_path):
    volume = synthetic_volume()
    to_zarr(volume, tmp_path / "ne.zarr")
    iof.to_netcdf(volume, tmp_path / "ne.nc")
    with xr.open_zarr(tmp_path / "ne.zarr") as back, xr.open_dataset(tmp_path / "ne.nc") as nc:
        xr.testing.assert_identical(back.load(), nc.load())
        xr.testing.assert_equal(back, volume.compute())  # float32, exactly
        assert back.ne.dtype == np.float32
        assert back.attrs == GLOBAL_ATTRS
        assert back.ne.attrs == {"long_name": "electron number density", "units": "m-3"}
        assert back.time.attrs["units_metadata"] == "leap_seconds: none"
        for key in ("units", "calendar", "dtype"):
            assert back.time.encoding[key] == nc.time.encoding[key]
        assert all("_FillValue" not in back[name].encoding for name in back.coords)
        assert np.isnan(back.ne.encoding["_FillValue"])


def test_store_opens_lazily_one_time_per_chunk(tmp_path):
    calls = []
    to_zarr(synthetic_volume(calls=calls), tmp_path / "ne.zarr")
    assert sorted(calls) == [(0, 2), (2, 4), (4, 6), (6, 7)]  # each chunk once
    back = xr.open_dataset(tmp_path / "ne.zarr", engine="zarr", chunks={})
    assert back.ne.chunks == ((1,) * 7, (3,), (4,), (5,))
    assert back.ne.encoding["chunks"] == (1, 3, 4, 5)
    assert back.ne.encoding["compressors"][0].cname.value == "zstd"
    assert "_ionofield" not in back.variables  # the progress marker stays out of sight
    np.testing.assert_array_equal(marker(tmp_path / "ne.zarr"), np.ones(7))


@pytest.mark.parametrize(("n_times", "chunks", "time_block", "regions"), [
    (7, 2, 2, [(0, 2), (2, 4), (4, 6), (6, 7)]),
    (7, 1, 3, [(0, 3), (3, 6), (6, 7)]),
    (7, 2, 10, [(0, 7)]),
    (30, 5, None, [(0, 25), (25, 30)]),   # a day (24 h) rounded up to whole chunks
    (30, None, None, [(0, 24), (24, 30)]),  # loaded: a day
], ids=["block=2", "block=3-partial-last", "block>times", "default-lazy", "default-loaded"])
def test_one_region_write_per_block(n_times, chunks, time_block, regions, tmp_path,
                                    monkeypatch):
    seen = []
    write = xr.Dataset.to_zarr

    def recording(self, *args, **kwargs):
        seen.append(kwargs.get("region"))
        return write(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_zarr", recording)
    volume = synthetic_volume(n_times, chunks=chunks)
    to_zarr(volume, tmp_path / "ne.zarr", time_block=time_block)
    assert seen[0] is None  # the template
    assert [(r["time"].start, r["time"].stop) for r in seen[1:]] == regions
    with xr.open_zarr(tmp_path / "ne.zarr") as back:
        xr.testing.assert_equal(back.load(), volume.compute())


def test_resume_after_an_interruption_skips_finished_blocks(tmp_path):
    store = tmp_path / "ne.zarr"
    with pytest.raises(RuntimeError, match="interrupted at time [45]"):
        to_zarr(synthetic_volume(chunks=1, fail_from=4), store, time_block=3)
    # time 3 may be written, but its block is not complete
    np.testing.assert_array_equal(marker(store), [1, 1, 1, 0, 0, 0, 0])
    calls = []
    to_zarr(synthetic_volume(chunks=1, calls=calls), store, time_block=3)
    assert sorted(calls) == [(3, 4), (4, 5), (5, 6), (6, 7)]
    with xr.open_zarr(store) as back:
        xr.testing.assert_equal(back.load(), synthetic_volume().compute())
    calls.clear()
    to_zarr(synthetic_volume(chunks=1, calls=calls), store, time_block=3)
    assert calls == []  # complete: a no-op


def test_template_write_killed_is_written_anew(tmp_path):
    """A kill between the template and the marker leaves an ``_ionofield`` group with no
    marker: the next run starts again."""
    store = tmp_path / "ne.zarr"
    to_zarr(synthetic_volume(), store)
    for path in sorted((store / "_ionofield" / "written").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (store / "_ionofield" / "written").rmdir()
    calls = []
    to_zarr(synthetic_volume(calls=calls), store)
    assert sorted(calls) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    np.testing.assert_array_equal(marker(store), np.ones(7))


#: The writing subprocess: argv[1] the store. Each chunk of one time takes 0.4 s.
CHILD = textwrap.dedent(
    """
    import sys
    from ionofield.io.zarr import to_zarr
    from tests.test_zarr import synthetic_volume

    to_zarr(synthetic_volume(8, chunks=1, delay=0.4), sys.argv[1], time_block=2)
    print("finished")
    """
)


def test_sigkill_mid_write_then_resume_equals_an_uninterrupted_write(tmp_path):
    store = tmp_path / "ne.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(store)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120.0
        while True:
            try:
                if marker(store).sum() >= 2:  # the first block is written
                    break
            except FileNotFoundError:  # no marker yet
                pass
            if proc.poll() is not None:
                pytest.fail(f"the writer exited ({proc.returncode}) early: "
                            f"{proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the writer wrote no block within 120 s")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = marker(store)
    assert 2 <= done.sum() < 8, "the kill came after the write finished"
    calls = []
    to_zarr(synthetic_volume(8, chunks=1, calls=calls), store, time_block=2)
    assert sorted(first for first, _ in calls) == list(np.flatnonzero(done == 0))
    to_zarr(synthetic_volume(8, chunks=1), tmp_path / "ref.zarr", time_block=2)
    resumed, reference = files(store), files(tmp_path / "ref.zarr")
    assert sorted(resumed) == sorted(reference)  # no .partial file left
    assert resumed == reference


def test_zarr_store_objects_and_progress_lines(capsys):
    store = zarr.storage.MemoryStore()
    to_zarr(synthetic_volume(), store, time_block=4, progress=True)
    out = capsys.readouterr().out
    assert "block 1 of 2: 4 times, 2024-05-10T00:00 to 2024-05-10T03:00" in out
    assert "block 2 of 2: 3 times" in out
    calls = []
    to_zarr(synthetic_volume(calls=calls), store, time_block=4, progress=True)
    assert calls == [] and "block" not in capsys.readouterr().out
    with xr.open_zarr(store) as back:
        xr.testing.assert_equal(back.load(), synthetic_volume().compute())


def test_leftover_partial_files_are_removed_on_resume(tmp_path):
    store = tmp_path / "ne.zarr"
    to_zarr(synthetic_volume(), store)
    leftover = store / "ne" / "c" / "0" / "0" / "0" / f"0.{'ab' * 16}.partial"
    leftover.write_bytes(b"torn")
    to_zarr(synthetic_volume(), store)
    assert not leftover.exists()


def other(**change):
    def build():
        if "attrs" in change:
            return synthetic_volume().assign_attrs(change["attrs"])
        if "drop" in change:
            return synthetic_volume().drop_vars(change["drop"])
        if "alt" in change:
            return synthetic_volume().assign_coords(alt=change["alt"])
        return synthetic_volume(change.get("n_times", 7), start=change.get("start", START))
    return build


@pytest.mark.parametrize(("build", "match"), [
    (other(start=START + np.timedelta64(1, "h")), "other time values"),
    (other(n_times=9), r"ne is float32 on \{'time': 7"),
    (other(drop="ne_log10_sigma"), "variables"),
    (other(alt=[200.0, 300.0, 450.0]), "other alt values"),
    (other(attrs={"model_config_hash": "xyz"}), "model_config_hash 'abc' where the volume has"),
], ids=["times", "length", "variables", "altitudes", "model"])
def test_store_of_another_volume_is_refused_and_left_alone(build, match, tmp_path):
    store = tmp_path / "ne.zarr"
    to_zarr(synthetic_volume(), store)
    before = files(store)
    with pytest.raises(ConfigError, match=rf"ne\.zarr' holds another volume: .*{match}.*"
                                          "overwrite=True"):
        to_zarr(build(), store)
    assert files(store) == before


def test_other_chunk_layout_is_refused(tmp_path, monkeypatch):
    store = tmp_path / "ne.zarr"
    to_zarr(synthetic_volume(), store)
    monkeypatch.setattr("ionofield.io.zarr.VALUES_PER_STORE_CHUNK", 20)
    with pytest.raises(ConfigError, match=r"chunked \(1, 3, 4, 5\) where .* \(1, 1, 4, 5\)"):
        to_zarr(synthetic_volume(), store)


def test_overwrite_writes_another_volume_anew(tmp_path):
    store = tmp_path / "ne.zarr"
    to_zarr(synthetic_volume(), store)
    later = synthetic_volume(5, start=START + np.timedelta64(24, "h"))
    to_zarr(later, store, overwrite=True)
    with xr.open_zarr(store) as back:
        xr.testing.assert_equal(back.load(), later.compute())
    np.testing.assert_array_equal(marker(store), np.ones(5))


def test_foreign_stores_and_folders_are_refused(tmp_path):
    volume = synthetic_volume()
    plain = tmp_path / "plain.zarr"
    volume.to_zarr(plain, consolidated=False)
    with pytest.raises(ConfigError, match=r"plain\.zarr' holds a Zarr group that .* did not "
                                          "write .*overwrite=True"):
        to_zarr(volume, plain)
    to_zarr(volume, plain, overwrite=True)
    np.testing.assert_array_equal(marker(plain), np.ones(7))

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="holds files but no Zarr store"):
            to_zarr(volume, folder, overwrite=overwrite)
    assert (folder / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    to_zarr(volume, empty)  # an empty folder is written into
    np.testing.assert_array_equal(marker(empty), np.ones(7))

    damaged = tmp_path / "damaged.zarr"
    to_zarr(volume, damaged)
    (damaged / "_ionofield" / "written" / "zarr.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"damaged\.zarr' cannot be read as a Zarr store"):
        to_zarr(volume, damaged)


@pytest.mark.parametrize(("volume", "store", "options", "match"), [
    (lambda: synthetic_volume().ne, "ne.zarr", {}, "volume is a DataArray"),
    (lambda: synthetic_volume().isel(time=0), "ne.zarr", {}, "no 1-D 'time' coordinate"),
    (lambda: synthetic_volume().assign_coords(time=np.arange(7.0)), "ne.zarr", {},
     "times are float64, not datetime64"),
    (lambda: synthetic_volume().isel(time=slice(0, 0)), "ne.zarr", {}, "holds no time"),
    (lambda: synthetic_volume().assign(level=("alt", [1.0, 2.0, 3.0])), "ne.zarr", {},
     r"\['level'\] have no 'time' dimension"),
    (lambda: synthetic_volume()[[]], "ne.zarr", {}, "no data variable"),
    (synthetic_volume, 42, {}, "store is a int"),
    (synthetic_volume, "file.txt", {}, "'.*file.txt' is a file"),
    (synthetic_volume, "ne.zarr", {"time_block": 0}, "time_block=0"),
    (synthetic_volume, "ne.zarr", {"time_block": 2.5}, "time_block=2.5"),
    (synthetic_volume, "ne.zarr", {"time_block": True}, "time_block=True"),
    (synthetic_volume, "ne.zarr", {"overwrite": "yes"}, "overwrite='yes'"),
], ids=["dataarray", "no-time", "numeric-time", "empty", "timeless-variable", "no-variable",
        "store-int", "store-file", "block-0", "block-float", "block-bool", "overwrite-str"])
def test_bad_arguments_raise_config_error(volume, store, options, match, tmp_path,
                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file")
    with pytest.raises(ConfigError, match=match):
        to_zarr(volume(), store, **options)
    assert not (tmp_path / "ne.zarr").exists()


def test_without_zarr_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match=r'pip install "ionofield\[zarr\]"'):
        to_zarr(synthetic_volume(), tmp_path / "ne.zarr")


#: Where :func:`record_worker` ran: module-level, so that the workers of an in-process
#: cluster append to this list and not to a copy of a pickled closure's.
WORKERS: list[str] = []


def record_worker(block: np.ndarray) -> np.ndarray:
    import distributed

    try:
        WORKERS.append(distributed.get_worker().address)
    except ValueError:  # not in a worker
        WORKERS.append("client")
    return block


def test_blocks_are_computed_on_the_distributed_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    volume = synthetic_volume().map(lambda v: v.copy(data=v.data.map_blocks(
        record_worker, meta=np.array((), dtype=v.dtype))))
    WORKERS.clear()
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=":0") as client:
        to_zarr(volume, tmp_path / "ne.zarr", time_block=4)
        workers = set(client.scheduler_info()["workers"])
    assert len(WORKERS) == 3 * 4 and set(WORKERS) <= workers  # 3 variables, 4 chunks
    with xr.open_zarr(tmp_path / "ne.zarr") as back:
        xr.testing.assert_equal(back.load(), synthetic_volume().compute())

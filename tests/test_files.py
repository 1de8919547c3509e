"""Tests of ionofield._files: expand_paths, the one path rule of every reader, and atomic_path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ionofield import _files
from ionofield._files import expand_paths


def touch(folder: Path, *names: str) -> list[Path]:
    """Create empty files ``names`` under ``folder`` (sub-folders as needed)."""
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        paths.append(path)
    return paths


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_single_path_str_or_pathlib(tmp_path):
    (path,) = touch(tmp_path, "a.txt")
    assert expand_paths(path, what="t") == [path]
    assert expand_paths(str(path), what="t") == [path]
    assert all(isinstance(p, Path) for p in expand_paths(str(path), what="t"))


def test_glob_expands_sorted_files_only(tmp_path):
    touch(tmp_path, "c.20i", "a.20i", "b.20i", "b.txt", "sub.20i/inner.20i")
    found = expand_paths(str(tmp_path / "*.20i"), what="t")
    assert names(found) == ["a.20i", "b.20i", "c.20i"]  # the folder sub.20i is no match
    assert names(expand_paths(tmp_path / "[ab].*", what="t")) == ["a.20i", "b.20i", "b.txt"]


def test_double_star_spans_folders(tmp_path):
    touch(tmp_path, "top.nc", "x/one.nc", "x/y/two.nc")
    found = expand_paths(str(tmp_path / "**" / "*.nc"), what="t")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == [
        "top.nc", "x/one.nc", "x/y/two.nc"]


def test_list_keeps_order_and_drops_repeats(tmp_path):
    a, b, c = touch(tmp_path, "a.txt", "b.txt", "c.txt")
    found = expand_paths([c, str(tmp_path / "*.txt"), a, str(b)], what="t")
    assert found == [c, a, b]  # first occurrence wins; the pattern adds a and b in order
    generator = (p for p in (b, a))
    assert expand_paths(generator, what="t") == [b, a]


def test_repeat_through_another_spelling_is_dropped(tmp_path):
    (a,) = touch(tmp_path, "a.txt")
    (tmp_path / "sub").mkdir()
    other = tmp_path / "sub" / ".." / "a.txt"
    link = tmp_path / "sub" / "link.txt"
    link.symlink_to(a)
    assert expand_paths([a, other, link], what="t") == [a]


def test_folder_gives_its_regular_files_sorted_not_hidden_not_recursive(tmp_path):
    touch(tmp_path, "b.nc", "a.nc", ".a.nc.x1y2.part", ".hidden", "deeper/c.nc")
    assert names(expand_paths(tmp_path, what="t")) == ["a.nc", "b.nc"]
    assert names(expand_paths(str(tmp_path) + os.sep, what="t")) == ["a.nc", "b.nc"]
    assert names(expand_paths([tmp_path / "deeper", tmp_path], what="t")) == [
        "c.nc", "a.nc", "b.nc"]


def test_existing_file_with_glob_characters_is_taken_literally(tmp_path):
    (odd,) = touch(tmp_path, "map[1].20i")
    touch(tmp_path, "map1.20i")  # what the name would match as a pattern
    assert expand_paths(odd, what="t") == [odd]


def test_tilde_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    a, b = touch(tmp_path, "data/a.nc", "data/b.nc")
    assert expand_paths("~/data/a.nc", what="t") == [a]
    assert expand_paths(["~/data/*.nc"], what="t") == [a, b]
    assert expand_paths(Path("~") / "data", what="t") == [a, b]


def test_missing_file_names_it_and_the_caller(tmp_path):
    missing = tmp_path / "nothere.nc"
    with pytest.raises(FileNotFoundError, match=r"^open_x: .*nothere\.nc.*no such file") as info:
        expand_paths(missing, what="open_x")
    assert str(missing) in str(info.value) and "check the path" in str(info.value)


def test_pattern_matching_nothing_names_the_pattern(tmp_path):
    touch(tmp_path, "a.txt")
    (tmp_path / "only_a_folder.nc").mkdir()
    for pattern in (tmp_path / "*.nc", tmp_path / "nowhere" / "*.txt"):
        with pytest.raises(FileNotFoundError, match="no file matches the pattern") as info:
            expand_paths([tmp_path / "a.txt", pattern], what="open_x")
        assert repr(str(pattern)) in str(info.value)
        assert "check the folder and the pattern" in str(info.value)


def test_empty_folder_and_empty_list(tmp_path):
    (tmp_path / "empty").mkdir()
    touch(tmp_path, "empty/.only_hidden")
    with pytest.raises(FileNotFoundError, match="holds no file") as info:
        expand_paths(tmp_path / "empty", what="open_x")
    assert str(tmp_path / "empty") in str(info.value)
    with pytest.raises(FileNotFoundError, match="^open_x: no path given"):
        expand_paths([], what="open_x")


# ----------------------------------------------------------------- atomic_path (issue 17)
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    probe = subprocess.Popen([sys.executable, "-c", "pass"])
    probe.wait()
    return probe.pid


def temp_name(target: str, host: str, pid: int, letters: str = "abcd1234") -> str:
    return f".{target}.{host}-{pid}.{letters}.part"


def test_atomic_path_removes_stale_parts_of_its_target_only(tmp_path):
    """A killed writer's (dead pid) leftovers go; a live writer's, and other targets', stay."""
    target = tmp_path / "ne.nc"
    dead, alive = dead_pid(), os.getpid()
    (stale,) = touch(tmp_path, temp_name("ne.nc", _files._HOST, dead))
    kept = touch(
        tmp_path,
        temp_name("ne.nc", _files._HOST, alive, "live0001"),  # a write still running
        temp_name("ne.nc", "otherhost", dead, "far00001"),  # another host: its pid says nothing
        temp_name("ne.nc.bak", _files._HOST, dead),  # another target
        temp_name("ne.nc2", _files._HOST, dead),  # another target
        ".ne.nc.abcd1234.tmp",  # not a temporary file of ours
    )
    with _files.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert not stale.exists()
    assert all(path.exists() for path in kept)


def test_parts_of_other_hosts_and_older_versions_go_after_a_day_unchanged(tmp_path):
    target = tmp_path / "model.pt"
    old, recent = touch(tmp_path, temp_name("model.pt", "otherhost", 12, "old00001"),
                        ".model.pt.k2j4x9a1.part")  # the name an older ionofield gave
    legacy_old, = touch(tmp_path, ".model.pt.zz9y8x7w.part")
    day_ago = time.time() - _files.STALE_AFTER_S - 60
    for path in (old, legacy_old):
        os.utime(path, (day_ago, day_ago))
    assert sorted(_files.remove_stale_parts(target)) == sorted([old, legacy_old])
    assert recent.exists() and not old.exists() and not legacy_old.exists()


def test_atomic_path_syncs_the_file_before_and_the_folder_after_the_rename(
    tmp_path, monkeypatch
):
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(
        ("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", str(b)))
                        or replace(a, b))
    target = tmp_path / "out.txt"
    with _files.atomic_path(target) as tmp:
        tmp.write_text("data")
    assert events == [("fsync", str(tmp)), ("replace", str(target)), ("fsync", str(tmp_path))]


def test_atomic_path_on_error_leaves_the_target_and_no_part(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), _files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_refuses_a_folder_before_writing(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give the name of the file"):
        with _files.atomic_path(tmp_path):
            pytest.fail("the block must not run")


def test_record_spool_reads_back_any_rows_in_the_order_asked(monkeypatch):
    import numpy as np

    from ionofield._files import RecordSpool

    dtype = np.dtype([("coords", np.float32, (4,)), ("time", "datetime64[ns]"), ("n", np.int64)])
    records = np.zeros(5000, dtype)
    records["n"] = np.arange(5000)
    records["coords"] = np.random.default_rng(0).normal(size=(5000, 4))
    records["time"] = np.datetime64("2024-05-10", "ns") + np.arange(5000) * np.timedelta64(1, "s")
    spool = RecordSpool(dtype)
    for block in np.array_split(records, 7):  # appended a block at a time
        spool.append(block)
    monkeypatch.setattr(RecordSpool, "READ_GAP", 10)  # many separate reads
    index = np.random.default_rng(1).integers(0, 5000, 3000)  # any order, repeats
    np.testing.assert_array_equal(spool.rows(index), records[index])
    np.testing.assert_array_equal(spool.read(4990, 5000), records[4990:])
    assert len(spool) == 5000 and spool.rows(np.zeros(0, int)).size == 0
    with pytest.raises(IndexError, match="outside 0..4999"):
        spool.rows(np.array([5000]))
    if os.path.exists("/proc/self/fd"):  # Linux: the file has no name left on disk
        name = os.readlink(f"/proc/self/fd/{spool._file.fileno()}")
        assert "(deleted)" in name or not os.path.exists(name)
    spool.close()

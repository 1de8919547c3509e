"""Tests of ionofield._files.expand_paths, the one path rule of every reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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

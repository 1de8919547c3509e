"""File-system helpers: atomic writes and the one path-expansion rule of the readers."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

#: A file name: a ``str`` or any ``os.PathLike`` (``pathlib.Path``).
PathLike = str | os.PathLike[str]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it only on success.

    Write the whole file to the yielded path; when the block ends without an
    exception the file is renamed over ``path`` (atomic on POSIX), otherwise it is
    removed and ``path`` is left untouched: an interrupted write never leaves a
    partial file at ``path``.

    Parameters
    ----------
    path
        The final destination.

    Yields
    ------
    pathlib.Path
        Where to write, in the same directory (so the rename does not cross devices).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def expand_paths(paths: PathLike | Iterable[PathLike], *, what: str) -> list[Path]:
    """Expand the files, folders and glob patterns a reader is given into files.

    Every reader of ionofield takes its ``paths`` argument through this function,
    so they all accept the same things.

    Parameters
    ----------
    paths
        One path or glob pattern (a ``str`` or a ``pathlib.Path``), or any iterable
        of them. In each, a leading ``~`` is the home folder. An existing file is
        taken as it is, even when its name holds glob characters (``*?[``). A folder
        stands for the regular files directly inside it, sorted by name (not
        recursive; names starting with ``.`` are skipped, which also skips the
        temporary files of an unfinished write). Anything else with glob
        characters is a pattern (``**`` spans folders) that stands for the regular
        files it matches, sorted. A file reached twice (also through another
        spelling of its path) is kept once, where it first appears.
    what
        Who asks, e.g. ``"open_ionex"``; it starts every error message.

    Returns
    -------
    list of pathlib.Path
        Existing files, in the order given, each once.

    Raises
    ------
    FileNotFoundError
        ``paths`` is empty, a named file or folder does not exist, a folder holds no
        file or a pattern matches no file; the message names the path or pattern and
        says what to check.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.txt", "a.txt", ".hidden"):
    ...     _ = (folder / name).write_text(name)
    >>> [p.name for p in expand_paths(folder, what="demo")]
    ['a.txt', 'b.txt']
    >>> [p.name for p in expand_paths([folder / "b.txt", str(folder / "*.txt")], what="demo")]
    ['b.txt', 'a.txt']
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise FileNotFoundError(
            f"{what}: no path given; pass a file, a folder, a glob pattern or a list of them"
        )
    found: dict[Path, Path] = {}
    for item in items:
        text = os.path.expanduser(os.fspath(item))
        if os.path.isdir(text):
            matches = sorted(
                entry.path
                for entry in os.scandir(text)
                if not entry.name.startswith(".") and entry.is_file()
            )
            if not matches:
                raise FileNotFoundError(
                    f"{what}: the folder {text!r} holds no file (hidden files are skipped); "
                    "check the folder, or name the files or a glob pattern"
                )
        elif os.path.exists(text):
            matches = [text]
        elif glob.has_magic(text):
            matches = sorted(m for m in glob.glob(text, recursive=True) if os.path.isfile(m))
            if not matches:
                raise FileNotFoundError(
                    f"{what}: no file matches the pattern {text!r}; check the folder and the "
                    "pattern"
                )
        else:
            raise FileNotFoundError(f"{what}: {text!r}: no such file or folder; check the path")
        for match in matches:
            found.setdefault(Path(match).resolve(), Path(match))
    return list(found.values())

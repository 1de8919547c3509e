"""File-system helpers.

Atomic writes, the one path-expansion rule of the readers, and the scratch file a fit
keeps its observations in.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: A file name: a ``str`` or any ``os.PathLike`` (``pathlib.Path``).
PathLike = str | os.PathLike[str]


#: A leftover temporary file of a write whose writer ran elsewhere (another host
#: sharing the folder, or an older ionofield whose names carry no process id) counts
#: as stale once nothing has written to it for this long (seconds): every writer of
#: ionofield writes its file continuously, so one idle for a day is gone.
STALE_AFTER_S = 24 * 3600.0

#: This host's tag in temporary names (letters and digits of its short name).
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname().split(".")[0])[:16] or "host"

#: The part of a temporary name between ``.{target}.`` and ``.part``: the writer's host
#: and process id (absent in names of older versions), then ``mkstemp``'s random letters.
_TEMP_MIDDLE = re.compile(r"(?:(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]+)\.)?[a-z0-9_]+")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it only on success.

    Write the whole file to the yielded path; when the block ends without an
    exception the file is flushed to disk (``fsync``), renamed over ``path`` (atomic on
    POSIX) and the rename itself is flushed (``fsync`` of the folder), so that after a
    crash of the machine ``path`` holds either the old or the new file, whole.
    On an exception the temporary file is removed and ``path`` is left untouched.

    A write killed outright (SIGKILL, power loss) cannot remove its temporary file,
    ``.{name}.{host}-{pid}.{random}.part``. The next write to ``path`` removes those of
    earlier writes that are stale (:func:`remove_stale_parts`) and leaves those of
    writes still running.

    Parameters
    ----------
    path
        The final destination.

    Yields
    ------
    pathlib.Path
        Where to write, in the same directory (so the rename does not cross devices).

    Raises
    ------
    IsADirectoryError
        ``path`` is an existing folder.

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
    if final.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, f"{final} is a folder; give the name of the file to write"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}.{_HOST}-{os.getpid()}.", suffix=".part", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(final.parent)


def remove_stale_parts(path: PathLike) -> list[Path]:
    """Remove the temporary files that killed writes of ``path`` left behind.

    A temporary file of :func:`atomic_path` is stale when its name holds this host
    and a process id that no longer runs (its writer was killed), or, for one
    written elsewhere (another host, whose processes cannot be seen from here) or by
    an older version, when it has not changed for :data:`STALE_AFTER_S`. The
    temporary file of a write still running is never removed: its process runs, or
    it keeps changing. Files that belong to other targets are never touched.

    Parameters
    ----------
    path
        The target whose leftovers to remove.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    final = Path(path)
    prefix = f".{final.name}."
    removed = []
    try:
        entries = list(os.scandir(final.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".part")):
            continue
        middle = _TEMP_MIDDLE.fullmatch(name[len(prefix) : -len(".part")])
        if middle is None or not _is_stale(entry, middle):
            continue
        with contextlib.suppress(FileNotFoundError, PermissionError):  # gone, or not ours
            os.unlink(entry.path)
            removed.append(Path(entry.path))
            logger.info("removed %s, left by an interrupted write of %s", entry.path, final)
    return removed


def _is_stale(entry: os.DirEntry, middle: re.Match) -> bool:
    """Whether a temporary file (its name parsed by ``_TEMP_MIDDLE``) is a dead write's."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        if middle["host"] == _HOST and os.name == "posix":
            return not _running(int(middle["pid"]))
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
    except FileNotFoundError:  # removed meanwhile (its write finished)
        return False


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this (POSIX) host."""
    try:
        os.kill(pid, 0)  # signal 0 only checks
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid)
        return False
    except PermissionError:  # it runs, as another user
        pass
    return True


def _fsync(path: Path) -> None:
    """Flush a written file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to the disk, where the system can."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its rename is flushed with the file
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a folder
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


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


class RecordSpool:
    """Fixed-size records in an anonymous temporary file, appended in order, read by rows.

    What a process must keep for its whole life but reads a few rows at a time (a
    fit's observations) lives here instead of in memory. Rows are read with
    ``pread`` into fresh arrays, not through a memory map, so the pages read do not
    stay in the process's resident memory; the operating system's page cache keeps
    the file fast when memory is free. The file has no name (it lies in
    :func:`tempfile.gettempdir`, ``$TMPDIR``): it vanishes when the spool is closed
    or collected, or when the process dies, killed or not.

    Parameters
    ----------
    dtype
        The numpy dtype of one record (a structured dtype for several fields).

    Examples
    --------
    >>> spool = RecordSpool(np.dtype([("x", "f4"), ("n", "i8")]))
    >>> spool.append(np.array([(1.5, 7), (2.5, 8), (3.5, 9)], dtype=spool.dtype))
    >>> spool.rows(np.array([2, 0]))["n"].tolist(), len(spool)
    ([9, 7], 3)
    """

    #: Rows read with one ``pread`` when the wanted rows lie at most this far apart.
    READ_GAP = 4096

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self._file = tempfile.TemporaryFile(prefix="ionofield-spool-")
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def append(self, records: np.ndarray) -> None:
        """Add ``records`` (of :attr:`dtype`) after the last row."""
        data = np.ascontiguousarray(records, dtype=self.dtype)
        view = memoryview(data.reshape(-1).view(np.uint8))
        offset = self._rows * self.dtype.itemsize
        while view.nbytes:
            written = os.pwrite(self._file.fileno(), view, offset)
            view, offset = view[written:], offset + written
        self._rows += data.size

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (excluded), a new array."""
        out = np.empty(max(0, stop - start), dtype=self.dtype)
        view = memoryview(out.view(np.uint8))
        offset = start * self.dtype.itemsize
        while view.nbytes:
            got = os.preadv(self._file.fileno(), [view], offset)
            if got == 0:
                raise EOFError(f"spool: rows {start}..{stop} beyond its {self._rows} rows")
            view, offset = view[got:], offset + got
        return out

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The rows at ``index`` (any order, repeats allowed), in that order.

        Neighbouring wanted rows (at most :attr:`READ_GAP` apart) are read together.
        """
        index = np.asarray(index, dtype=np.int64)
        out = np.empty(index.size, dtype=self.dtype)
        if index.size == 0:
            return out
        if index.min() < 0 or index.max() >= self._rows:
            raise IndexError(f"spool: rows outside 0..{self._rows - 1}")
        order = np.argsort(index, kind="stable")
        wanted = index[order]
        cuts = np.flatnonzero(np.diff(wanted) > self.READ_GAP) + 1
        for part in np.split(np.arange(wanted.size), cuts):
            first, last = int(wanted[part[0]]), int(wanted[part[-1]])
            out[order[part]] = self.read(first, last + 1)[wanted[part] - first]
        return out

    def close(self) -> None:
        """Drop the file."""
        self._file.close()

"""File-system helpers: atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
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

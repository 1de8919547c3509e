"""Files written with ``torch.save``: tagged payloads, written atomically, checked on reading.

Model files (:meth:`ionofield.RSTMRF.save`) and training checkpoints
(:func:`ionofield.fit`'s ``checkpoint=``) are dictionaries with a ``"format"`` tag and
the ionofield version beside their tensors; they are read with
``weights_only=True`` (no code runs) onto the CPU, whatever device wrote them.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ionofield._files import atomic_path
from ionofield._version import __version__
from ionofield.errors import CheckpointError


def write_payload(path: str | os.PathLike, tag: str, payload: dict[str, Any]) -> None:
    """Write a tagged payload atomically (a partial file never replaces ``path``).

    Parameters
    ----------
    path
        Destination file.
    tag
        The ``"format"`` entry that :func:`read_payload` checks.
    payload
        Tensors and plain values (no objects: the file is read with
        ``weights_only=True``).
    """
    tagged = {"format": tag, "ionofield_version": __version__, **payload}
    with atomic_path(path) as tmp:
        torch.save(tagged, tmp)


def read_payload(path: str | os.PathLike, *, tag: str, what: str, fix: str) -> dict[str, Any]:
    """Read a file written by :func:`write_payload` and check its format tag.

    Parameters
    ----------
    path
        The file.
    tag
        The ``"format"`` entry the payload must carry.
    what
        What the file should be, for messages ("an ionofield model").
    fix
        What to do when the file is of another kind.

    Returns
    -------
    dict
        The payload (loaded with ``weights_only=True``: no code runs).

    Raises
    ------
    CheckpointError
        The file is truncated, damaged, or not ``what``.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path}: cannot be read as {what} ({type(exc).__name__}: {exc}); the file is "
            "truncated or damaged: write it again"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != tag:
        raise CheckpointError(f"{path}: not {what} file (no format tag {tag!r}); {fix}")
    return payload

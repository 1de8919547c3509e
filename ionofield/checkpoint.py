"""Files written with ``torch.save``: tagged payloads, written atomically, checked on reading.

Model files (:meth:`ionofield.RSTMRF.save`) and training checkpoints
(:func:`ionofield.fit`'s ``checkpoint=``) are dictionaries with a ``"format"`` tag,
the ionofield version and a ``"checksum"`` beside their tensors; they are read with
``weights_only=True`` (no code runs) onto the CPU, whatever device wrote them.

The checksum is the SHA-256 of everything else in the payload (:func:`payload_checksum`).
``torch.load`` does not check the CRCs of the zip file it reads, so without it a
flipped bit inside a weight would load as a wrong number (a weight of 8e36) without a
word; with it such a file is refused as damaged.

A training checkpoint also records the campaign it was written for
(:func:`campaign_fingerprint`), so that a resume with other data is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import xarray as xr

from ionofield._files import atomic_path
from ionofield._version import __version__
from ionofield.align import DRIVERS
from ionofield.campaign import observation_blocks
from ionofield.errors import CheckpointError
from ionofield.timeutil import to_datetime64


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
        ``weights_only=True``). Its checksum is added as ``"checksum"``.
    """
    tagged = {"format": tag, "ionofield_version": __version__, **payload}
    tagged["checksum"] = payload_checksum(tagged)
    with atomic_path(path) as tmp:
        torch.save(tagged, tmp)


def read_payload(
    path: str | os.PathLike,
    *,
    tag: str,
    what: str,
    fix: str,
    legacy: Iterable[str] = (),
) -> dict[str, Any]:
    """Read a file written by :func:`write_payload`; check its format tag and checksum.

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
    legacy
        Format tags of earlier versions that are read too: they carry no checksum, so
        damage to them cannot be detected (the caller says so).

    Returns
    -------
    dict
        The payload (loaded with ``weights_only=True``: no code runs).

    Raises
    ------
    CheckpointError
        The file is truncated, damaged (its checksum does not match its content), of
        a format this version does not read, or not ``what``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.pt"
    >>> write_payload(path, "demo/1", {"weight": torch.ones(2)})
    >>> read_payload(path, tag="demo/1", what="a demo", fix="-")["weight"]
    tensor([1., 1.])
    """
    legacy = tuple(legacy)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path}: cannot be read as {what} ({type(exc).__name__}: {exc}); the file is "
            "truncated or damaged: write it again"
        ) from exc
    found = payload.get("format") if isinstance(payload, dict) else None
    if found not in (tag, *legacy):
        family = tag.rsplit("/", 1)[0]
        if isinstance(found, str) and found.rsplit("/", 1)[0] == family:
            raise CheckpointError(
                f"{path}: {what} file in format {found!r} (written by ionofield "
                f"{payload.get('ionofield_version')}), a layout this ionofield does not read "
                f"(it reads {', '.join(repr(t) for t in (tag, *legacy))}); read it with the "
                "release that wrote it, or write it again"
            )
        raise CheckpointError(f"{path}: not {what} file (no format tag {tag!r}); {fix}")
    stored = payload.get("checksum")
    if stored is None and found == tag:
        raise CheckpointError(
            f"{path}: damaged: format {tag!r} always carries a checksum and this file has "
            "none; write it again or restore a copy"
        )
    if stored is not None and stored != payload_checksum(payload):
        raise CheckpointError(
            f"{path}: damaged: checksum mismatch (its content is not what was written: a "
            "changed bit on the disk or in a copy); write it again or restore a copy"
        )
    return payload


def payload_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 of a payload's entries other than ``"checksum"``, in a fixed order.

    Tensors count by dtype, shape and bytes, mappings by their keys in sorted order,
    sequences in order (a tuple as a list: both load back alike), other values by
    ``repr``.

    Parameters
    ----------
    payload
        What :func:`write_payload` writes or :func:`read_payload` has read.

    Returns
    -------
    str
        ``"sha256:"`` and the hex digest.

    Examples
    --------
    >>> a = payload_checksum({"w": torch.tensor([1.0, 2.0]), "checksum": "ignored"})
    >>> a == payload_checksum({"w": torch.tensor([1.0, 2.0])})
    True
    >>> a == payload_checksum({"w": torch.tensor([1.0, 2.5])})
    False
    """
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != "checksum"})
    return "sha256:" + digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add one value (recursively) to a running digest."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}|".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}:".encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"list {len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{value!r}|".encode())


def campaign_fingerprint(ds: xr.Dataset, background: Any = None) -> dict[str, Any]:
    """What identifies a fit's data, stored in its training checkpoints.

    SHA-256 digests of a campaign's observations (``obs_time``, ``obs_lat``,
    ``obs_lon``, ``obs_alt``, ``ne``), of its hourly ``time`` axis and of its drivers
    (``kp``, ``f107``, ``f107_81``, ``tec``) taken from the values as stored (no
    arithmetic, so a resume on another machine computes the same digests), the kind
    of background, and the counts that describe a difference
    (:func:`fingerprint_differences`).

    Parameters
    ----------
    ds
        A campaign (:func:`ionofield.campaign`).
    background
        The background given to the fit (None: IRI).

    Returns
    -------
    dict
        Plain values (a checkpoint is read with ``weights_only=True``).
    """
    tec = ["tec"] if "tec" in ds.data_vars else []
    hours = to_datetime64(ds["time"].values)
    return {
        "observations": _digest(ds, ["obs_time", "obs_lat", "obs_lon", "obs_alt", "ne"]),
        "hours": _digest(ds, ["time"]),
        "drivers": _digest(ds, [*DRIVERS, *tec]),
        "background": "iri" if background is None else f"user {dict(background.sizes)}",
        "n_obs": int(ds.sizes["obs"]),
        "period": [str(hours[0]), str(hours[-1]), int(hours.size)],
    }


def fingerprint_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How two :func:`campaign_fingerprint` results differ, one phrase per part.

    Parameters
    ----------
    saved
        The fingerprint in a checkpoint.
    now
        The fingerprint of the campaign at hand.

    Returns
    -------
    list of str
        Empty when the campaigns are the same.
    """
    differences = []
    if saved["observations"] != now["observations"]:
        counts = f"{saved['n_obs']} then, {now['n_obs']} now"
        same = " (as many, other values)" if saved["n_obs"] == now["n_obs"] else ""
        differences.append(f"other observations: {counts}{same}")
    if saved["hours"] != now["hours"]:
        then, here = (
            f"{first} to {last} ({count} hours)"
            for first, last, count in (saved["period"], now["period"])
        )
        differences.append(f"another hourly axis: {then} then, {here} now")
    if saved["drivers"] != now["drivers"]:
        differences.append("other drivers (kp, f107, f107_81 or tec values)")
    if saved["background"] != now["background"]:
        differences.append(
            f"another background: {saved['background']} then, {now['background']} now"
        )
    return differences


def _digest(ds: xr.Dataset, names: list[str]) -> str:
    """SHA-256 of variables' names, dtypes, shapes and bytes.

    Observation variables are read a block at a time
    (:func:`~ionofield.campaign.observation_blocks`), so a lazily opened campaign is
    hashed without being loaded (the digest is that of the whole bytes either way).
    """
    digest = hashlib.sha256()
    for name in names:
        var = ds[name]
        blocks = (observation_blocks(ds, [name]) if var.dims == ("obs",)
                  else [{name: var.values}])
        header = f"{name} {{}} {var.shape}|"
        for k, block in enumerate(blocks):
            values = block[name]
            if values.dtype.kind == "O":  # cftime times: their bytes are object addresses
                values = to_datetime64(values)
            if k == 0:
                digest.update(header.format(values.dtype.str).encode())
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()

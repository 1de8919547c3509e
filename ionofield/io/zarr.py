"""Writing volumes to Zarr, block of times by block of times, resumable after a kill.

A long period does not fit one atomic NetCDF write: a job killed after hours of
computing would lose everything. :func:`to_zarr` writes instead into a Zarr store
(format 3) in steps that each survive a kill:

1. a *template*: the store's metadata, the coordinates and the attributes of the whole
   period, with no data computed (xarray's ``to_zarr(..., compute=False)``);
2. one *region* write per block of times (``to_zarr(region={"time": ...})``), which
   computes that block only, then sets the block's times in the store's *progress
   marker*, the array ``_ionofield/written`` (one byte per time, 1 once its data are
   written whole).

Run again with the same volume, it checks that the store holds the same volume and
writes only the blocks whose times are not all marked. ``xr.open_zarr(store)`` reads
the volume (the marker lives in a subgroup, which xarray does not open) with the
attributes and time encoding of :func:`ionofield.to_netcdf`'s files.

Zarr's local store writes each file under a temporary name and renames it, so a kill
leaves whole files and, at worst, a few ``*.partial`` temporaries (removed by the next
run). Nothing here forces the files to the disk: the marker guards against a killed
process, not against the machine losing power.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dask.array as dsa
import numpy as np
import xarray as xr
from dask.diagnostics import ProgressBar

from ionofield.errors import ConfigError
from ionofield.io.cf import cf_encoding, time_chunks

logger = logging.getLogger(__name__)

#: Largest number of values in one Zarr chunk (16 MiB of float32): one time, whole
#: (alt, lat, lon) volumes up to this size (:func:`~ionofield.io.cf.time_chunks`).
VALUES_PER_STORE_CHUNK = 4_194_304
#: Path of the progress marker inside the store: uint8, one value per time.
MARKER = "_ionofield/written"
#: Global attributes that tell two volumes on the same grid apart; a store whose
#: values differ from the volume's is another volume's.
IDENTITY_ATTRS = ("model_config_hash", "training_period", "background")
#: Difference tolerated between a volume's times and a store's (float64 seconds since
#: 1970 hold times to about 0.2 microseconds).
TIME_TOLERANCE = np.timedelta64(1, "us")
#: Name of a temporary file of zarr's local store (``<key>.<32 hex>.partial``).
_PARTIAL = re.compile(r".*\.[0-9a-f]{32}\.partial")


def to_zarr(
    volume: xr.Dataset,
    store: str | os.PathLike | Any,
    *,
    time_block: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> None:
    """Write a volume to a Zarr store block by block; a repeated call resumes it.

    The store's metadata and coordinates are written first, then each block of
    ``time_block`` times is computed and written on its own, and marked as complete
    in the store (``_ionofield/written``, one byte per time) once written whole. A
    write that was killed, run again with the same arguments, writes only the blocks
    not yet marked; on a complete store it writes nothing.

    Parameters
    ----------
    volume
        A Dataset from :func:`ionofield.reconstruct` (lazy or loaded): data variables
        on a ``time`` dimension with ``datetime64`` times. A lazy volume is computed
        one block at a time; under a ``dask.distributed`` client the blocks are
        computed and written by the workers, which must see the store's folder.
    store
        Where to write: the path of a folder (``"ne.zarr"``, any path-like), an
        fsspec URL (``"s3://bucket/ne.zarr"``, with fsspec and its file system
        installed) or a ``zarr.abc.store.Store``.
    time_block
        Times per block, a positive whole number. By default one day of times (the
        times within 24 h of the first), rounded up to whole chunks of a lazy volume.
        Give a multiple of the volume's time chunks: a chunk cut by a block boundary
        is computed once for each block it is in.
    overwrite
        Write the store anew, discarding what it holds. Without it, a store that
        holds another volume or that ionofield did not write is refused.
    progress
        Print a line per block and show dask's progress bar while it is computed
        (local schedulers; a ``dask.distributed`` client has its own dashboard).

    Raises
    ------
    ConfigError
        ``volume``, ``store``, ``time_block`` or ``overwrite`` is not what is
        described above, or the store holds another volume, another Zarr group, or
        (a folder) other files; the message names the store and what to do.
    ImportError
        zarr 3.1 or newer is not installed (``pip install "ionofield[zarr]"``).
    DivergenceError
        A chunk of a lazy volume holds unphysical values
        (:func:`ionofield.reconstruct`); the blocks written before it stay written and
        marked.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, pandas as pd, xarray as xr
    >>> times = pd.date_range("2024-05-10", periods=30, freq="h")
    >>> vol = xr.Dataset({"ne": (("time", "alt"), np.ones((30, 2), "f4"))},
    ...                  coords={"time": times, "alt": [200.0, 300.0]})
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "ne.zarr"
    >>> to_zarr(vol, store)              # blocks of 24 and 6 times
    >>> to_zarr(vol, store)              # complete: nothing to do
    >>> xr.open_zarr(store)["ne"].shape
    (30, 2)
    """
    zarr = _import_zarr()
    _check_volume(volume)
    if time_block is not None and (
        isinstance(time_block, bool) or not isinstance(time_block, (int, np.integer))
        or time_block < 1
    ):
        raise ConfigError(
            f"to_zarr: time_block={time_block!r}; give a positive whole number of times per "
            "block, or leave time_block=None for one day of times"
        )
    if not isinstance(overwrite, bool):
        raise ConfigError(f"to_zarr: overwrite={overwrite!r}; give True or False")
    where, folder = _store_target(store, zarr)
    volume, encoding = cf_encoding(volume)
    chunks = {name: time_chunks(var, VALUES_PER_STORE_CHUNK)
              for name, var in volume.data_vars.items()}
    for name in volume.data_vars:
        encoding[name].update(chunks=chunks[name], compressors=_compressor(zarr))
    marker = _open_marker(zarr, volume, where, folder, chunks, overwrite)
    if marker is None:
        marker = _write_template(zarr, volume, where, encoding, chunks)
    written = marker[:]
    blocks = _blocks(volume, time_block)
    todo = [(a, b) for a, b in blocks if not written[a:b].all()]
    logger.info("to_zarr %s: %d of %d blocks to write", _name(where), len(todo), len(blocks))
    bar = ProgressBar() if progress else contextlib.nullcontext()
    with bar:
        for k, (start, stop) in enumerate(todo, 1):
            if progress:
                first, last = np.datetime_as_string(volume["time"].values[[start, stop - 1]],
                                                    unit="m")
                print(f"to_zarr: block {k} of {len(todo)}: {stop - start} times, {first} to "
                      f"{last}", flush=True)
            _write_region(volume, where, start, stop)
            marker[start:stop] = 1


def _import_zarr() -> ModuleType:
    """The zarr package, 3.1 or newer; ImportError saying what to install otherwise."""
    try:
        import zarr
    except ImportError as exc:
        raise ImportError(
            'to_zarr needs the zarr package (3.1 or newer): pip install "ionofield[zarr]"'
        ) from exc
    major, minor = (int(part) for part in re.findall(r"\d+", zarr.__version__)[:2])
    if (major, minor) < (3, 1):
        raise ImportError(
            f"to_zarr needs zarr 3.1 or newer, found {zarr.__version__}: "
            'pip install -U "ionofield[zarr]"'
        )
    return zarr


def _check_volume(volume: Any) -> None:
    """ConfigError unless ``volume`` is a Dataset of variables on a datetime64 time."""
    if not isinstance(volume, xr.Dataset):
        raise ConfigError(
            f"to_zarr: volume is a {type(volume).__name__}; pass the Dataset "
            "ionofield.reconstruct returns (a DataArray: da.to_dataset())"
        )
    problems = []
    if "time" not in volume.coords or volume["time"].dims != ("time",):
        problems.append("it has no 1-D 'time' coordinate")
    elif volume["time"].dtype.kind != "M":
        problems.append(f"its times are {volume['time'].dtype}, not datetime64")
    elif volume.sizes["time"] == 0:
        problems.append("it holds no time")
    if not volume.data_vars:
        problems.append("it has no data variable")
    timeless = [str(name) for name, var in volume.data_vars.items() if "time" not in var.dims]
    if timeless:
        problems.append(f"the variable(s) {timeless} have no 'time' dimension")
    if problems:
        raise ConfigError(
            f"to_zarr: the volume cannot be written by blocks of times: {'; '.join(problems)}; "
            "pass a volume from ionofield.reconstruct (data on time, alt, lat, lon)"
        )


def _store_target(store: Any, zarr: ModuleType) -> tuple[Any, Path | None]:
    """What to hand xarray and zarr for ``store``, and its folder when it is local.

    ConfigError for something that is no store, a path that is a file, or a folder
    that holds other files than a Zarr store (never overwritten, whatever
    ``overwrite`` says).
    """
    if isinstance(store, zarr.abc.store.Store):
        return store, None
    if not isinstance(store, (str, os.PathLike)):
        raise ConfigError(
            f"to_zarr: store is a {type(store).__name__}; give the path of a folder "
            "(e.g. 'ne.zarr'), an fsspec URL or a zarr Store"
        )
    if isinstance(store, str) and "://" in store:
        return store, None
    folder = Path(store)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"to_zarr: {os.fspath(store)!r} is a file; a Zarr store is a folder: give a new "
            "path, e.g. ne.zarr"
        )
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "zarr.json").is_file():
        raise ConfigError(
            f"to_zarr: the folder {os.fspath(store)!r} holds files but no Zarr store (no "
            "zarr.json), and is never overwritten; give a new path, e.g. ne.zarr"
        )
    return os.fspath(store), folder


def _compressor(zarr: ModuleType) -> Any:
    """The codec of the data: zstd level 3 after a byte shuffle (Blosc).

    On a float32 density field the shuffle (the bytes of each value grouped by
    position) compressed 1.33 times where plain zstd, zarr's default, compressed 1.14
    times, at about the same speed (400-500 MB/s on one core).
    """
    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def _open_marker(
    zarr: ModuleType, volume: xr.Dataset, where: Any, folder: Path | None,
    chunks: dict[str, tuple[int, ...]], overwrite: bool,
) -> Any:
    """The progress marker of a store to resume, or None when the store is to be written anew.

    Anew: ``overwrite``, no store yet, an empty group, or a store whose template write
    was killed (its ``_ionofield`` group holds no marker yet). To resume: a store
    with a marker, checked to hold the same volume. Anything else is refused.
    """
    if overwrite:
        return None
    try:
        marker = zarr.open_array(where, path=MARKER, mode="r+")
    except FileNotFoundError:  # no store, or no marker in it
        marker = None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _unreadable(where, exc) from exc
    if marker is None:
        if not _blank_or_started(zarr, where):
            raise ConfigError(
                f"to_zarr: the store {_name(where)!r} holds a Zarr group that ionofield.to_zarr "
                "did not write (no _ionofield/written marker); pass overwrite=True to replace "
                "it, or give another path"
            )
        return None
    problems = _differences(volume, where, chunks, marker)
    if problems:
        raise ConfigError(
            f"to_zarr: the store {_name(where)!r} holds another volume: {'; '.join(problems)}. "
            "To resume its write, pass the same volume; to replace it, pass overwrite=True; "
            "or give another path"
        )
    if folder is not None:
        _remove_partials(folder)
    return marker


def _blank_or_started(zarr: ModuleType, where: Any) -> bool:
    """Whether a store without a marker may be written anew.

    It may when it is absent or empty, or when its write was killed before the marker
    was made (its ``_ionofield`` group exists).
    """
    try:
        group = zarr.open_group(where, mode="r", use_consolidated=False)
    except FileNotFoundError:
        return True
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _unreadable(where, exc) from exc
    members = [name for name, _ in group.members()]
    return not members or MARKER.split("/")[0] in members


def _differences(
    volume: xr.Dataset, where: Any, chunks: dict[str, tuple[int, ...]], marker: Any,
) -> list[str]:
    """How the store's volume differs from ``volume`` (variables, grid, chunks, identity)."""
    try:
        with xr.open_zarr(where, consolidated=True, chunks=None) as stored:
            return _compare(volume, stored, chunks, marker)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _unreadable(where, exc) from exc


def _compare(
    volume: xr.Dataset, stored: xr.Dataset, chunks: dict[str, tuple[int, ...]], marker: Any,
) -> list[str]:
    problems = []
    names, found = set(map(str, volume.data_vars)), set(map(str, stored.data_vars))
    if names != found:
        problems.append(f"variables {sorted(found)} where the volume has {sorted(names)}")
    for name in sorted(names & found):
        var, old = volume[name], stored[name]
        if (old.dims, old.shape, old.dtype) != (var.dims, var.shape, var.dtype):
            problems.append(
                f"{name} is {old.dtype} on {dict(old.sizes)} where the volume's is {var.dtype} "
                f"on {dict(var.sizes)}"
            )
        elif tuple(old.encoding.get("chunks", ())) != chunks[name]:
            problems.append(
                f"{name} is chunked {old.encoding.get('chunks')} where this ionofield writes "
                f"{chunks[name]}"
            )
    names, found = set(map(str, volume.coords)), set(map(str, stored.coords))
    if names != found:
        problems.append(f"coordinates {sorted(found)} where the volume has {sorted(names)}")
    for name in sorted(names & found):
        new, old = volume[name].values, stored[name].values
        if new.shape != old.shape:
            problems.append(f"{name} of shape {old.shape} where the volume's is {new.shape}")
        elif not _same_values(new, old):
            problems.append(f"other {name} values")
    if marker.shape != (volume.sizes["time"],):
        problems.append(f"a progress marker of shape {marker.shape} (damaged store)")
    for attr in IDENTITY_ATTRS:
        if volume.attrs.get(attr) != stored.attrs.get(attr):
            problems.append(
                f"{attr} {stored.attrs.get(attr)!r} where the volume has {volume.attrs.get(attr)!r}"
            )
    return problems


def _same_values(new: np.ndarray, old: np.ndarray) -> bool:
    """Equal coordinate values; times within :data:`TIME_TOLERANCE`."""
    if new.dtype.kind == "M" and old.dtype.kind == "M":
        return bool(np.all(np.abs(new - old) <= TIME_TOLERANCE))
    return bool(np.array_equal(new, old))


def _unreadable(where: Any, exc: Exception) -> ConfigError:
    return ConfigError(
        f"to_zarr: the store {_name(where)!r} cannot be read as a Zarr store "
        f"({type(exc).__name__}: {exc}); pass overwrite=True to write it anew, or give another "
        "path"
    )


def _write_template(
    zarr: ModuleType, volume: xr.Dataset, where: Any, encoding: dict[str, dict[str, Any]],
    chunks: dict[str, tuple[int, ...]],
) -> Any:
    """Write the store anew: metadata and coordinates, no data; return its empty marker.

    The ``_ionofield`` group is made first, so that a store whose template write was
    killed is recognised as ionofield's (and written anew); the marker array is made
    last, so that its presence means the template is whole.
    """
    root = zarr.open_group(where, mode="w")
    root.create_group(MARKER.split("/")[0])
    template = xr.Dataset(
        {name: (var.dims, dsa.empty(var.shape, chunks=chunks[name], dtype=var.dtype), var.attrs)
         for name, var in volume.data_vars.items()},
        coords={name: coord.compute() for name, coord in volume.coords.items()},
        attrs=volume.attrs,
    ).drop_encoding()
    with _quiet_consolidation(zarr):
        template.to_zarr(where, mode="a", compute=False, encoding=encoding, consolidated=True)
        marker = root.create_array(
            MARKER, shape=(volume.sizes["time"],), dtype="uint8", fill_value=0,
            chunks=(volume.sizes["time"],),
            attributes={"long_name": "1 where the data of a time are written whole"},
        )
        zarr.consolidate_metadata(where)
    return marker


@contextlib.contextmanager
def _quiet_consolidation(zarr: ModuleType) -> Iterator[None]:
    """Without zarr's warning that consolidated metadata is not in the Zarr 3 spec.

    xarray reads a store fastest, and without a warning, with consolidated metadata
    (one read instead of one per array); zarr-python writes and reads it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata",
                                category=zarr.errors.ZarrUserWarning)
        yield


def _blocks(volume: xr.Dataset, time_block: int | None) -> list[tuple[int, int]]:
    """(start, stop) time indices of the blocks written one at a time."""
    n = volume.sizes["time"]
    size = time_block or _default_block(volume)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _default_block(volume: xr.Dataset) -> int:
    """The times within a day of the first, rounded up to whole time chunks."""
    times = volume["time"].values
    day = int(np.count_nonzero(times < times[0] + np.timedelta64(1, "D")))
    var = next(iter(volume.data_vars.values()))
    if var.chunks is None:
        return day
    chunk = var.chunksizes["time"][0]
    return -(-day // chunk) * chunk


def _write_region(volume: xr.Dataset, where: Any, start: int, stop: int) -> None:
    """Compute the data of times ``start:stop`` and write them into the store.

    The coordinates are in the store already. A lazy block is rechunked to whole
    (alt, lat, lon) volumes per dask chunk, which therefore hold whole Zarr chunks:
    no two tasks write the same Zarr chunk.
    """
    part = volume.isel(time=slice(start, stop)).drop_vars(list(volume.coords)).drop_encoding()
    for name, var in part.data_vars.items():
        if var.chunks is not None:
            part[name] = var.chunk({dim: -1 for dim in var.dims if dim != "time"})
    part.to_zarr(where, region={"time": slice(start, stop)}, mode="r+", consolidated=False)


def _remove_partials(folder: Path) -> None:
    """Remove the temporary files of zarr writes that a kill interrupted."""
    for path in folder.rglob("*.partial"):
        if _PARTIAL.fullmatch(path.name):
            path.unlink(missing_ok=True)
            logger.info("removed %s, left by an interrupted write", path)


def _name(where: Any) -> str:
    """The store as messages name it."""
    return where if isinstance(where, str) else repr(where)

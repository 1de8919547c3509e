"""Writing volumes to NetCDF-4: atomically, CF-1.11, compressed, in bounded memory.

Atomically: the file is written under a temporary name beside the target
(``.ne.nc.<random>.part``) and renamed over it only once complete, so a write that is
killed, runs out of disk or fails on a chunk leaves the target as it was (absent, or
the previous complete file), never a file that opens and holds fill values where the
unwritten chunks should be. ``Dataset.to_netcdf`` writes in place and does leave
such a file; ``vol.rstmrf.to_netcdf(path)`` is this function.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import xarray as xr
from dask.diagnostics import ProgressBar

from ionofield._files import atomic_path
from ionofield.errors import ConfigError
from ionofield.io.cf import cf_encoding, time_chunks

#: Largest number of values in one NetCDF chunk (2 MB of float32): one time, whole lon
#: rows, as many lat (then alt) rows as fit (:func:`~ionofield.io.cf.time_chunks`), so
#: the writer's buffers stay the same on a bigger grid.
VALUES_PER_FILE_CHUNK = 500_000


def to_netcdf(
    volume: xr.Dataset,
    path: str | os.PathLike,
    *,
    compression: int = 4,
    progress: bool = False,
) -> None:
    """Write a volume to NetCDF-4 atomically, CF-1.11 compliant, compressed.

    Parameters
    ----------
    volume
        A Dataset from :func:`ionofield.reconstruct` (lazy or loaded).
    path
        Destination; written to a temporary file beside it and renamed on success, so
        an interrupted write leaves nothing at ``path`` (or the previous file there).
    compression
        zlib level of the data variables, a whole number from 0 (no compression) to 9.
    progress
        Show dask's progress bar while the volume is computed and written.

    Raises
    ------
    ConfigError
        ``volume`` is not a Dataset, ``path`` is a folder or ``compression`` is not
        0..9.
    DivergenceError
        A chunk of a lazy volume holds unphysical values
        (:func:`ionofield.reconstruct`); nothing is written.
    """
    if not isinstance(volume, xr.Dataset):
        raise ConfigError(
            f"to_netcdf: volume is a {type(volume).__name__}; pass the Dataset "
            "ionofield.reconstruct returns (a DataArray: da.to_dataset())"
        )
    if os.path.isdir(path):
        raise ConfigError(
            f"to_netcdf: {os.fspath(path)!r} is a folder; give the path of a file in it, "
            "e.g. ne.nc"
        )
    if isinstance(compression, bool) or compression not in range(10):
        raise ConfigError(
            f"to_netcdf: compression={compression!r}; give a zlib level 0..9 (0: none)"
        )
    volume, encoding = cf_encoding(volume)
    for name, var in volume.data_vars.items():
        if compression:
            encoding[name].update(zlib=True, complevel=compression,
                                  chunksizes=time_chunks(var, VALUES_PER_FILE_CHUNK))
    bar = ProgressBar() if progress else contextlib.nullcontext()
    with atomic_path(path) as tmp, bar, _no_chunk_cache():
        volume.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


@contextlib.contextmanager
def _no_chunk_cache() -> Iterator[None]:
    """No netCDF chunk cache for the files opened inside.

    Through HDF5's chunk cache (64 MB a variable by default), the resident memory of
    a write grows with the volume's length: 550 MB for 24 times of the perf grid,
    980 MB for 96. Without it, 420 MB for both, and no slower. Each file chunk of a
    time-chunked volume is written whole and once (:func:`_file_chunks` holds one
    time), so there is nothing for a cache to gather.
    """
    import netCDF4

    saved = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(0, saved[1], saved[2])
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(*saved)

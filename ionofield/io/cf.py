"""The one table of CF-1.11 attributes of ionofield's coordinates and variables.

Readers (IONEX maps, RO profiles), the IRI cube, the target grid and the written
volumes all label their coordinates and variables from here, so a quantity reads
the same in every file ionofield writes. CF has no standard name for electron
density: those variables carry ``long_name`` and ``units`` only (an invented
``standard_name`` fails the CF check).

The volume writers (:func:`ionofield.to_netcdf`, :func:`ionofield.to_zarr`) take
their coordinate attributes, time encoding and fill values from :func:`cf_encoding`
and their chunk shapes from :func:`time_chunks`, so a NetCDF file and a Zarr store of
one volume open as the same Dataset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ionofield._version import __version__

#: CF version the written files declare.
CONVENTIONS = "CF-1.11"

_TEC_COMMENT = "1 TECU = 1e16 electrons per square metre (m-2)"

#: Attributes of the gridded coordinates (time, alt, lat, lon).
COORDINATES: Mapping[str, Mapping[str, str]] = {
    "time": {"standard_name": "time", "long_name": "time", "axis": "T"},
    "alt": {
        "standard_name": "altitude",
        "long_name": "altitude above mean sea level",
        "units": "km",
        "positive": "up",
        "axis": "Z",
    },
    "lat": {
        "standard_name": "latitude",
        "long_name": "latitude",
        "units": "degrees_north",
        "axis": "Y",
    },
    "lon": {
        "standard_name": "longitude",
        "long_name": "longitude",
        "units": "degrees_east",
        "axis": "X",
    },
}

#: Attributes of the data variables ionofield reads or writes.
VARIABLES: Mapping[str, Mapping[str, str]] = {
    "ne": {"long_name": "electron number density", "units": "m-3"},
    "ne_err": {"long_name": "uncertainty (1 sigma) of electron number density", "units": "m-3"},
    "ne_background": {
        "long_name": "background electron number density (IRI unless user-supplied)",
        "units": "m-3",
    },
    "ne_log10_sigma": {
        "long_name": "predicted one-sigma uncertainty of log10 electron number density",
        "units": "1",
    },
    "nmf2": {"long_name": "F2-layer peak electron number density", "units": "m-3"},
    "hmf2": {"long_name": "F2-layer peak height", "units": "km"},
    "tec": {
        "long_name": "vertical total electron content",
        "units": "TECU",
        "comment": _TEC_COMMENT,
    },
    "tec_rms": {
        "long_name": "root-mean-square error of the vertical total electron content",
        "units": "TECU",
        "comment": _TEC_COMMENT,
    },
}


def attributes(name: str, **extra: str) -> dict[str, str]:
    """The CF attributes of a coordinate or variable, with ``extra`` added or replacing.

    Parameters
    ----------
    name
        A key of :data:`COORDINATES` or :data:`VARIABLES`.
    **extra
        Attributes to add (a ``comment``, a more precise ``long_name``).

    Returns
    -------
    dict
        A new dict, safe to modify.

    Examples
    --------
    >>> attributes("lat")["units"]
    'degrees_north'
    >>> attributes("time", long_name="epoch of the map (UTC)")["long_name"]
    'epoch of the map (UTC)'
    """
    table = COORDINATES if name in COORDINATES else VARIABLES
    return {**table[name], **extra}


def history_line(action: str) -> str:
    """One CF ``history`` line: a UTC timestamp, the ionofield version and what was done.

    Parameters
    ----------
    action
        The operation, e.g. ``"reconstruct"``.

    Returns
    -------
    str
    """
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ionofield {__version__} {action}"


def cf_encoding(volume: xr.Dataset) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """A volume's CF-1.11 coordinate attributes and its encoding, for a writer.

    Parameters
    ----------
    volume
        A Dataset on a ``time`` coordinate of ``datetime64`` values (a volume from
        :func:`ionofield.reconstruct`).

    Returns
    -------
    volume : xarray.Dataset
        A shallow copy whose coordinates carry the attributes of :data:`COORDINATES`
        (those already there win) and whose ``time`` carries
        ``units_metadata = "leap_seconds: none"``; the data are not copied.
    encoding : dict
        For ``to_netcdf`` or ``to_zarr``: no ``_FillValue`` on the coordinates
        (CF forbids one there; xarray would write NaN), ``time`` as float64 seconds
        since 1970 in the proleptic Gregorian calendar, NaN as the ``_FillValue`` of
        the data variables. A writer adds its own chunking and compression.

    Examples
    --------
    >>> import pandas as pd
    >>> ds = xr.Dataset({"ne": ("time", [1.0])}, coords={"time": pd.to_datetime(["2024"])})
    >>> ds, enc = cf_encoding(ds)
    >>> ds["time"].attrs["axis"], enc["time"]["units"]
    ('T', 'seconds since 1970-01-01 00:00:00')
    """
    volume = volume.copy()
    for name in volume.coords:
        if name in COORDINATES:
            volume[name].attrs = {**COORDINATES[name], **volume[name].attrs}
    encoding: dict[str, dict[str, Any]] = {name: {"_FillValue": None} for name in volume.coords}
    encoding["time"].update(
        units="seconds since 1970-01-01 00:00:00", calendar="proleptic_gregorian", dtype="f8"
    )
    for name in volume.data_vars:
        encoding[name] = {"_FillValue": np.float32(np.nan)}
    volume["time"].attrs["units_metadata"] = "leap_seconds: none"
    return volume, encoding


def time_chunks(var: xr.DataArray, max_values: int) -> tuple[int, ...]:
    """Chunk shape of a written variable: one time, whole rows, up to ``max_values``.

    Along the other dimensions, from the last (lon) backwards, a chunk takes as many
    rows as fit in ``max_values`` values, so that a chunk keeps a bounded size on a
    bigger grid: one time of a 91 x 71 x 73 grid is one chunk of 471,733 values.

    Parameters
    ----------
    var
        The variable, with a ``time`` dimension.
    max_values
        The largest number of values in a chunk (but at least one row of the last
        dimension).

    Returns
    -------
    tuple of int
        One size per dimension of ``var``.

    Examples
    --------
    >>> var = xr.DataArray(np.zeros((5, 91, 71, 73)), dims=("time", "alt", "lat", "lon"))
    >>> time_chunks(var, 500_000), time_chunks(var, 100_000)
    ((1, 91, 71, 73), (1, 19, 71, 73))
    """
    chunks = []
    room = max_values
    for dim, n in reversed(list(zip(var.dims, var.shape, strict=True))):
        size = 1 if dim == "time" else max(1, min(n, room))
        chunks.append(size)
        room //= size
    return tuple(reversed(chunks))

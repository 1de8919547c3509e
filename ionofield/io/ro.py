"""Radio-occultation (RO) electron-density profiles.

Reads UCAR CDAAC ``ionPrf`` netCDF files (COSMIC-1, COSMIC-2, FY-3 GNOS processed by
CDAAC), other per-profile netCDF files through a variable-name mapping, and flat tables
(CSV or netCDF with ``time, lat, lon, alt, ne``) into one observations Dataset on the
dimension ``obs`` (DESIGN.md section 2). Writes synthetic profiles in the ``ionPrf``
format and observation Datasets as flat tables.

Every point whose electron density or position is missing, a fill value, NaN or not
positive is dropped, counted, logged and recorded in the Dataset attributes.

Readers and writers of the RO formats stay in one module (about 850 lines): they
share the ionPrf variable names, units and fill values and the flat-table columns,
defined once here, so that a written profile reads back exactly.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from ionofield._files import PathLike, atomic_path, expand_paths
from ionofield.errors import (
    ConfigError,
    IonofieldError,
    ManyProblemsError,
    ROFormatError,
    UnitsError,
)
from ionofield.io.cf import attributes
from ionofield.sphere import fold_longitude
from ionofield.timeutil import to_datetime64

logger = logging.getLogger(__name__)

FILL_VALUE = -999.0
"""Missing-value marker of CDAAC files; also treated as missing in CSV tables."""

TABLE_COLUMNS = ("time", "lat", "lon", "alt", "ne", "ne_err", "profile", "mission")
"""Names of the quantities a file provides; keys of the ``variables=`` mapping."""

NE_PLAUSIBLE_M3 = (1e8, 1e14)
"""Bounds on the median positive electron density of one file (m-3).

Ionospheric densities lie between about 1e8 and 1e13 m-3: a median outside these
bounds means the values are in other units than declared (el/cm3 read as m-3 or the
reverse, a factor 1e6).
"""

_IONPRF_NAMES = {"alt": "MSL_alt", "lat": "GEO_lat", "lon": "GEO_lon", "ne": "ELEC_dens"}
_TIME_ATTRS = ("year", "month", "day", "hour", "minute", "second")
_REQUIRED = ("alt", "lat", "lon", "ne")
_DENSITY_UNITS = re.compile(r"^(?:el|electrons?|e|1)?(?:/(c?m)3|\.?(c?m)-3)$")
_ALT_FACTORS = {"km": 1.0, "kilometer": 1.0, "kilometers": 1.0, "kilometre": 1.0,
                "kilometres": 1.0, "m": 1e-3, "meter": 1e-3, "meters": 1e-3, "metre": 1e-3,
                "metres": 1e-3}
_CDAAC_NAME = re.compile(r"^[A-Za-z0-9]+Prf_([^_]+?)(?:\.nc)?(?:_.*)?$")
_NC_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_DROP_KINDS = ("fill", "nan", "nonpositive", "alt_range")
_HEADER_CHUNK = 1 << 16


@dataclass
class _Part:
    """Valid points read from one file: 1-D arrays of one length ``n``."""

    time: np.ndarray  # datetime64[ns]
    lat: np.ndarray  # deg N, float64
    lon: np.ndarray  # deg E as in the file, float64
    alt: np.ndarray  # km, float64
    ne: np.ndarray  # m-3, float64
    ne_err: np.ndarray | None  # m-3, float64
    profile_ids: np.ndarray  # str, distinct profile ids of the file
    profile_code: np.ndarray  # int, index into profile_ids per point
    mission: np.ndarray  # str
    dropped: dict[str, int]


def open_ro_profiles(
    paths: PathLike | Iterable[PathLike],
    *,
    variables: Mapping[str, str] | None = None,
    ne_units: str | None = None,
    mission: str | None = None,
    min_alt: float | None = None,
    max_alt: float | None = None,
) -> xr.Dataset:
    """Read radio-occultation electron-density profiles into one observations Dataset.

    Each file is recognised by its content:

    - CDAAC ``ionPrf`` netCDF (any file name): ``MSL_alt`` (km), ``GEO_lat``,
      ``GEO_lon``, ``ELEC_dens`` (el/cm3, converted to m-3); the time comes from the
      global attributes ``year month day hour minute second``, the profile id from the
      ``fileStamp`` attribute (else the file name, e.g. ``C2E2.2024.129.20.57.G31``),
      the mission from the ``mission`` attribute.
    - Flat tables: a ``.csv`` file, or a netCDF file with ``ne`` and ``time`` on one
      dimension, holding ``time, lat, lon, alt, ne`` (ne in m-3) and optionally
      ``ne_err``, ``profile``, ``mission``. In a table without ``profile``, the rows
      sharing one time form one profile, named ``<file stem>@<ISO time>``.
    - Any other per-profile netCDF, through ``variables=``: 1-D variables on one
      dimension, or scalars broadcast along it; the time is a variable (CF-encoded
      numbers or strings, one value or one per level), a global attribute of that name
      (ISO 8601 string), or the ``year ... second`` attributes.

    Points whose ``ne``, ``alt``, ``lat`` or ``lon`` equals the variable's fill value
    (-999 in CDAAC files and CSV tables), is NaN (or whose time is missing), or whose
    ``ne`` is zero or negative, are dropped; the counts are logged (INFO per call,
    DEBUG per file) and kept in the attributes ``dropped_fill``, ``dropped_nan``,
    ``dropped_nonpositive`` and ``dropped_alt_range`` (outside ``min_alt``,
    ``max_alt``), beside ``n_files`` and ``n_profiles``.

    Parameters
    ----------
    paths
        A file, a folder (its files, sorted), a glob pattern (``"ro/ionPrf_*"``, a
        str or a Path; ``**`` spans folders), or a list of them; ``~`` is the home
        folder, hidden files of a folder are skipped and a file reached twice is
        read once (the path rule of every ionofield reader).
    variables
        Names of the file's variables (or CSV columns) for the quantities of
        :data:`TABLE_COLUMNS`, e.g. ``{"alt": "height", "lat": "latitude",
        "lon": "longitude", "ne": "Ne", "time": "epoch"}``; unnamed quantities keep
        their usual name (the CDAAC name in an ``ionPrf`` file).
    ne_units
        Units of the electron density in the files: ``"cm-3"`` (also written
        ``"el/cm3"``) or ``"m-3"``. By default the ``units`` attribute of the
        variable, else el/cm3 for ``ionPrf`` files and m-3 for everything else.
        ``ne_err`` has the units of ``ne``.
    mission
        Mission name for files that name none (no ``mission`` attribute or column);
        by default ``"unknown"``.
    min_alt, max_alt
        Keep only points within these altitudes (km), bounds included.

    Returns
    -------
    xarray.Dataset
        On the dimension ``obs``, sorted by (time, profile, alt): ``ne`` (m-3,
        float64), ``ne_err`` (m-3) when every file provides it; coordinates ``time``
        (datetime64[ns], UTC), ``lat`` (deg N), ``lon`` (deg E in [-180, 180)),
        ``alt`` (km), ``profile`` (str) and ``mission`` (str). Attributes:
        ``n_files``, ``n_profiles``, the ``dropped_*`` counts, and ``source`` (the
        files and patterns given).

    Raises
    ------
    FileNotFoundError
        No path is given, a named file or folder does not exist, or a folder or
        pattern holds no file.
    ROFormatError
        A file is unreadable, truncated, lacks a needed variable, or has unparseable
        times; the message names the file and the fix.
    UnitsError
        A file's median positive density is outside :data:`NE_PLAUSIBLE_M3` once
        converted to m-3 (el/cm3 declared as m-3, or the reverse).
    ManyProblemsError
        Several files failed: one line per file.
    ConfigError
        An unknown key in ``variables`` or unknown ``ne_units``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_ionprf(tmp / "ionPrf_SYN1.2024.129.20.57.G31_0001_nc",
    ...                  time="2024-05-08T20:54:51", alt=[250.0, 300.0, 350.0],
    ...                  lat=31.6, lon=245.4, ne=[5e11, 1e12, -1e9])
    >>> obs = open_ro_profiles(tmp / "ionPrf_*")
    >>> obs.sizes["obs"], obs.attrs["dropped_nonpositive"]
    (2, 1)
    >>> print(obs.profile.values[0], float(obs.lon[0]).__round__(1), obs.ne.values.max())
    SYN1.2024.129.20.57.G31 -114.6 1000000000000.0
    """
    names = _check_variables(variables)
    if ne_units is not None:
        _density_factor(ne_units, where=None)
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = expand_paths(items, what="open_ro_profiles")
    parts: list[_Part] = []
    problems: list[IonofieldError] = []
    owner: dict[str, Path] = {}
    for path in files:
        try:
            part = _read_file(path, names, ne_units=ne_units, mission=mission,
                              min_alt=min_alt, max_alt=max_alt)
            _claim_profile_id(part, path, owner)
        except IonofieldError as exc:
            problems.append(exc)
            continue
        parts.append(part)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ManyProblemsError(f"open_ro_profiles: {len(problems)} of {len(files)} files",
                                [str(p) for p in problems])
    obs = _assemble(parts)
    obs.attrs["source"] = _describe_sources(items)
    logger.info(
        "read %d RO files: %d profiles, %d points; dropped %d fill, %d NaN, "
        "%d non-positive, %d outside the altitude range",
        obs.attrs["n_files"], obs.attrs["n_profiles"], obs.sizes["obs"],
        obs.attrs["dropped_fill"], obs.attrs["dropped_nan"],
        obs.attrs["dropped_nonpositive"], obs.attrs["dropped_alt_range"],
    )
    return obs


def write_ionprf(
    path: PathLike,
    *,
    time: Any,
    alt: Any,
    lat: Any,
    lon: Any,
    ne: Any,
    mission: str = "SYNTH",
    **attrs: Any,
) -> Path:
    """Write one electron-density profile as a CDAAC-style ``ionPrf`` netCDF-3 file.

    The file holds float32 ``MSL_alt`` (km), ``GEO_lat``, ``GEO_lon`` and ``ELEC_dens``
    (el/cm3) on the dimension ``MSL_alt``, with ``_FillValue = -999``, and the global
    attributes ``year month day hour minute second mission edmax edmaxalt edmaxlat
    edmaxlon center fileStamp``, as CDAAC writes them. It reads back through
    :func:`open_ro_profiles` to float32 precision. The write is atomic.

    Parameters
    ----------
    path
        Destination file; its directory must exist. The ``fileStamp`` attribute (the
        profile id) is derived from the name as :func:`open_ro_profiles` does.
    time
        Time of the occultation (UT), one value of any form
        :func:`ionofield.timeutil.to_datetime64` accepts.
    alt
        Altitudes in km, shape (n,).
    lat, lon
        Tangent-point latitude and longitude in degrees, shape (n,) or scalars.
        Longitudes are written as given (0..360 too).
    ne
        Electron density in m-3, shape (n,); written in el/cm3 (divided by 1e6).
        NaN in any variable is written as the fill value -999.
    mission
        The ``mission`` attribute.
    **attrs
        Further global attributes, or replacements of the defaults (e.g.
        ``center="UCAR/CDAAC"``).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ConfigError
        Arrays of different lengths, an empty profile, or not exactly one time.
    """
    path = Path(path)
    alt_km = np.atleast_1d(np.asarray(alt, dtype=np.float64))
    if alt_km.ndim != 1 or alt_km.size == 0:
        raise ConfigError(f"write_ionprf({path}): alt must be 1-D and not empty, "
                          f"got shape {alt_km.shape}")
    columns = {"MSL_alt": alt_km}
    for name, values in (("GEO_lat", lat), ("GEO_lon", lon), ("ELEC_dens", ne)):
        arr = np.asarray(values, dtype=np.float64)
        if arr.size not in (1, alt_km.size) or arr.ndim > 1:
            raise ConfigError(f"write_ionprf({path}): {name} has shape {arr.shape}, "
                              f"expected ({alt_km.size},) like alt, or a scalar")
        columns[name] = np.broadcast_to(arr.reshape(-1), alt_km.shape)
    columns["ELEC_dens"] = columns["ELEC_dens"] / 1e6
    stored = {name: np.where(np.isfinite(v), v, FILL_VALUE).astype(np.float32)
              for name, v in columns.items()}

    t64 = to_datetime64(time)
    if t64.size != 1 or np.isnat(t64.reshape(-1)[0]):
        raise ConfigError(f"write_ionprf({path}): time must be one valid time, got {time!r}")
    stamp = pd.Timestamp(t64.reshape(-1)[0])
    dens = stored["ELEC_dens"]
    valid = (dens > 0) & np.all([v != FILL_VALUE for v in stored.values()], axis=0)
    peak = int(np.argmax(np.where(valid, dens, -np.inf))) if valid.any() else None
    global_attrs: dict[str, Any] = {
        "year": np.int32(stamp.year), "month": np.int32(stamp.month),
        "day": np.int32(stamp.day), "hour": np.int32(stamp.hour),
        "minute": np.int32(stamp.minute),
        "second": stamp.second + stamp.microsecond * 1e-6 + stamp.nanosecond * 1e-9,
        "mission": mission,
        "center": "ionofield",
        "fileStamp": _id_from_name(path),
    }
    for key, name in (("edmax", "ELEC_dens"), ("edmaxalt", "MSL_alt"),
                      ("edmaxlat", "GEO_lat"), ("edmaxlon", "GEO_lon")):
        global_attrs[key] = FILL_VALUE if peak is None else float(stored[name][peak])
    global_attrs.update(attrs)

    meta = {
        "MSL_alt": ("km", (0.0, 9999.0), "Mean sea level altitude of perigee point"),
        "GEO_lat": ("degrees_north", (-90.0, 90.0), "Geographical latitude of perigee point"),
        "GEO_lon": ("degrees_east", (-180.0, 180.0),
                    "Geographical longitude of perigee point"),
        "ELEC_dens": ("el/cm3", (-1e8, 1e8), "Electron density"),
    }
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("MSL_alt", alt_km.size)
        for name, (units, valid_range, long_name) in meta.items():
            var = ds.createVariable(name, "f4", ("MSL_alt",), fill_value=np.float32(FILL_VALUE))
            var.setncatts({"units": units, "valid_range": np.float32(valid_range),
                           "long_name": long_name})
            var.set_auto_maskandscale(False)
            var[:] = stored[name]
        ds.setncatts(global_attrs)
    return path


def write_ro_table(obs: xr.Dataset, path: PathLike) -> Path:
    """Write an observations Dataset as a flat table, atomically.

    Parameters
    ----------
    obs
        Dataset on the dimension ``obs`` with ``ne`` (m-3) and the coordinates
        ``time, lat, lon, alt``; ``ne_err``, ``profile`` and ``mission`` are written
        when present. Other variables are left out.
    path
        Destination: ``.csv`` (ISO 8601 times, full float64 precision) or ``.nc``
        (netCDF-4, one variable per column on ``obs``).

    Returns
    -------
    pathlib.Path
        The written file, readable by :func:`open_ro_profiles`.

    Raises
    ------
    ConfigError
        Another suffix, or a Dataset lacking a needed variable.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> profile = write_ionprf(tmp / "ionPrf_SYN2.2024.129.21.00.G05_0001_nc",
    ...                        time="2024-05-08T21:00", alt=[300.0, 350.0], lat=0.0,
    ...                        lon=0.0, ne=[1e12, 8e11])
    >>> obs = open_ro_profiles(profile)
    >>> back = open_ro_profiles(write_ro_table(obs, tmp / "obs.csv"))
    >>> bool((back.ne == obs.ne).all()), back.profile.values[0]
    (True, np.str_('SYN2.2024.129.21.00.G05'))
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".nc"):
        raise ConfigError(f"write_ro_table({path}): unknown table suffix {suffix!r}; "
                          "use .csv or .nc")
    missing = [name for name in ("time", "lat", "lon", "alt", "ne") if name not in obs.variables]
    if missing:
        raise ConfigError(f"write_ro_table({path}): the Dataset lacks {missing}; "
                          f"it has {sorted(map(str, obs.variables))}")
    columns = [name for name in TABLE_COLUMNS if name in obs.variables]
    table = obs.reset_coords()[columns]
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame = pd.DataFrame({name: table[name].values for name in columns})
            frame.to_csv(tmp, index=False)
        else:
            # Fixed-width strings: netCDF-4 variable-length strings would double the file.
            strings = {name: table[name].astype("S") for name in columns
                       if table[name].dtype.kind in "OU"}
            table = table.assign(strings)
            encoding = {name: {"_FillValue": None, "zlib": True, "complevel": 4}
                        for name in columns if table[name].dtype.kind == "f"}
            table.to_netcdf(tmp, encoding=encoding)
    return path


# --------------------------------------------------------------------------- paths


def _describe_sources(items: list[PathLike], shown: int = 3) -> str:
    """Name what was read (the files and patterns given) for the ``source`` attribute."""
    text = "; ".join(os.fspath(item) for item in items[:shown])
    return text + (f"; and {len(items) - shown} more" if len(items) > shown else "")


def _id_from_name(path: Path) -> str:
    """Profile id from a file name: the CDAAC occultation id, else the bare stem."""
    match = _CDAAC_NAME.match(path.name)
    if match:
        return match.group(1)
    return re.sub(r"(\.nc4?|\.cdf|\.csv|_nc)$", "", path.name, flags=re.IGNORECASE)


# --------------------------------------------------------------------------- units


def _density_factor(units: str, *, where: Path | None) -> float:
    """Factor converting densities in ``units`` to m-3 (1 or 1e6)."""
    text = units.strip().lower().replace(" ", "").replace("^", "").replace("**", "")
    match = _DENSITY_UNITS.match(text)
    if match is None:
        problem = (f"electron density units {units!r} not understood; "
                   "pass ne_units='cm-3' (el/cm3) or ne_units='m-3'")
        if where is None:
            raise ConfigError(f"open_ro_profiles: {problem}")
        raise ROFormatError(where, problem)
    return 1e6 if (match.group(1) or match.group(2)) == "cm" else 1.0


def _check_density_magnitude(path: Path, ne_m3: np.ndarray, declared: str) -> None:
    """Raise UnitsError when the median positive density is off by about 1e6."""
    if ne_m3.size == 0:
        return
    median = float(np.median(ne_m3))
    low, high = NE_PLAUSIBLE_M3
    if median < low:
        raise UnitsError(
            f"{path}: median positive electron density {median:.3g} m-3 (read as "
            f"{declared}) is below {low:.0e} m-3, impossible for the ionosphere; the "
            "values look like el/cm3: pass ne_units='cm-3' or multiply them by 1e6")
    if median > high:
        raise UnitsError(
            f"{path}: median positive electron density {median:.3g} m-3 (read as "
            f"{declared}) is above {high:.0e} m-3, impossible for the ionosphere; the "
            "values look like m-3 labelled el/cm3: pass ne_units='m-3' or divide by 1e6")


def _check_variables(variables: Mapping[str, str] | None) -> dict[str, str]:
    """Validate the ``variables=`` mapping."""
    names = dict(variables or {})
    unknown = sorted(set(names) - set(TABLE_COLUMNS))
    if unknown:
        raise ConfigError(f"open_ro_profiles: unknown keys {unknown} in variables=; "
                          f"the keys are {list(TABLE_COLUMNS)}")
    return names


# --------------------------------------------------------------------------- reading


def _read_file(
    path: Path,
    names: dict[str, str],
    *,
    ne_units: str | None,
    mission: str | None,
    min_alt: float | None,
    max_alt: float | None,
) -> _Part:
    """Read one file of any supported kind into valid points."""
    reader = _read_csv if path.suffix.lower() == ".csv" else _read_netcdf
    raw = reader(path, names)
    declared = raw.pop("units")
    units = ne_units or declared
    part = _clean(path, raw, units=units, mission=mission, min_alt=min_alt, max_alt=max_alt)
    logger.debug("%s: %d points kept; dropped %s", path, part.ne.size, part.dropped)
    if part.ne.size == 0:
        logger.warning("%s: no valid point (dropped %s)", path, part.dropped)
    return part


def _read_netcdf(path: Path, names: dict[str, str]) -> dict[str, Any]:
    """Raw columns of a netCDF file (ionPrf, table or mapped per-profile file)."""
    _check_not_truncated(path)
    try:
        ds = netCDF4.Dataset(path)
    except OSError as exc:
        raise ROFormatError(path, f"cannot be read as netCDF ({exc}); the file is corrupt, "
                            "truncated or of another format (tables must end in .csv)") from exc
    try:
        with ds:
            return _netcdf_columns(path, ds, names)
    except (OSError, RuntimeError) as exc:
        raise ROFormatError(path, f"cannot be read ({exc}); the file is corrupt") from exc


def _netcdf_columns(path: Path, ds: netCDF4.Dataset, names: dict[str, str]) -> dict[str, Any]:
    """Raw columns of an open netCDF file."""
    ds.set_auto_maskandscale(False)
    ncvars = ds.variables
    ionprf = "ne" not in names and "ELEC_dens" in ncvars
    name = {**(_IONPRF_NAMES if ionprf else {}), **names}

    def var_name(key: str) -> str:
        return name.get(key, key)

    absent = [f"{k} ({var_name(k)!r})" for k in _REQUIRED if var_name(k) not in ncvars]
    if absent:
        ne_hint = "" if var_name("ne") in ncvars else "no 'ELEC_dens' (CDAAC ionPrf) and "
        raise ROFormatError(
            path, f"{ne_hint}no variable for {', '.join(absent)}; the file has "
            f"{sorted(ncvars)}; pass variables={{'ne': ..., 'alt': ..., 'lat': ..., "
            "'lon': ..., 'time': ...}} naming them")
    raw: dict[str, Any] = {"fill": []}
    for key in (*_REQUIRED, "ne_err"):
        if var_name(key) in ncvars:
            raw[key], is_fill = _nc_numeric(path, ncvars[var_name(key)])
            if key != "ne_err":
                raw["fill"].append(is_fill)
    alt_units = getattr(ncvars[var_name("alt")], "units", "km")
    factor = _ALT_FACTORS.get(str(alt_units).strip().lower())
    if factor is None:
        raise ROFormatError(path, f"altitude {var_name('alt')!r} has units {alt_units!r}; "
                            "expected km or m")
    raw["alt"] = raw["alt"] * factor
    global_names = ds.ncattrs()
    raw["time"] = _nc_time(path, ds, var_name("time"), global_names)
    raw["profile"] = (_nc_strings(ncvars[var_name("profile")])
                      if var_name("profile") in ncvars else None)
    if var_name("mission") in ncvars:
        raw["mission"] = _nc_strings(ncvars[var_name("mission")])
    elif "mission" in global_names:
        raw["mission"] = str(ds.getncattr("mission"))
    raw["default_id"] = (str(ds.getncattr("fileStamp")).strip()
                         if "fileStamp" in global_names else _id_from_name(path))
    raw["units"] = getattr(ncvars[var_name("ne")], "units",
                           "el/cm3" if ionprf else "m-3")
    return raw


def _nc_numeric(path: Path, var: netCDF4.Variable) -> tuple[np.ndarray, np.ndarray]:
    """Float64 values (unpacked, fill set to NaN) and fill mask of a 0-D/1-D variable."""
    if sum(size > 1 for size in var.shape) > 1:
        raise ROFormatError(path, f"variable {var.name!r} has dimensions {var.dimensions} "
                            f"{var.shape}; expected one dimension")
    attrs = {k: var.getncattr(k) for k in var.ncattrs()
             if k in ("_FillValue", "missing_value", "scale_factor", "add_offset")}
    packed = np.asarray(var[:]).reshape(-1)
    fills = [attrs[k] for k in ("_FillValue", "missing_value") if k in attrs]
    if "_FillValue" not in attrs and packed.dtype.kind == "f":
        fills.append(netCDF4.default_fillvals[packed.dtype.str[1:]])
    is_fill = np.zeros(packed.shape, dtype=bool)
    for fill in fills:
        is_fill |= np.isin(packed, fill)
    values = packed.astype(np.float64)
    if "scale_factor" in attrs or "add_offset" in attrs:
        values *= float(attrs.get("scale_factor", 1.0))
        values += float(attrs.get("add_offset", 0.0))
    values[is_fill] = np.nan
    return values, is_fill


def _nc_strings(var: netCDF4.Variable) -> np.ndarray:
    """Read a string variable (vlen str or char array) as a 1-D str array."""
    values = np.asarray(var[...])
    if values.dtype.kind == "S" and values.ndim > 1:
        values = netCDF4.chartostring(values)
    elif values.dtype.kind == "S":
        values = np.char.decode(values, "utf-8")
    return values.astype(str).reshape(-1)


def _nc_time(path: Path, ds: netCDF4.Dataset, name: str, global_names: list[str]
             ) -> np.ndarray:
    """Read the times of a netCDF file: a variable, an attribute, or year..second."""
    if name in ds.variables:
        var = ds.variables[name]
        if var.dtype == str or np.dtype(var.dtype).kind in "SU":
            return _parse_time_strings(path, _nc_strings(var), name)
        attrs = {k: var.getncattr(k) for k in ("units", "calendar", "_FillValue", "missing_value")
                 if k in var.ncattrs()}
        if "units" not in attrs:
            raise ROFormatError(path, f"time variable {name!r} has no units attribute; "
                                "expected CF units such as 'seconds since 2000-01-01'")
        raw = xr.Dataset({"t": ("n", np.asarray(var[...]).reshape(-1), attrs)})
        try:
            decoded = xr.decode_cf(raw)["t"].values
        except (ValueError, TypeError, OverflowError) as exc:
            raise ROFormatError(path, f"times of {name!r} not parseable with units "
                                f"{attrs['units']!r} ({exc})") from exc
        return to_datetime64(decoded)
    if name in global_names:
        return _parse_time_strings(path, np.asarray([str(ds.getncattr(name))]), name)
    if name != "time":
        raise ROFormatError(path, f"no variable or global attribute {name!r} for the time; "
                            f"the variables are {sorted(ds.variables)}")
    return _attr_time(path, ds, global_names)


def _attr_time(path: Path, ds: netCDF4.Dataset, global_names: list[str]) -> np.ndarray:
    """Read the time of a CDAAC profile from its year, month, day, hour, minute, second."""
    absent = [a for a in _TIME_ATTRS if a not in global_names]
    if absent:
        raise ROFormatError(path, f"no time: no time variable and no global attributes "
                            f"{absent}; pass variables={{'time': <variable name>}}")
    values = {a: ds.getncattr(a) for a in _TIME_ATTRS}
    try:
        second = float(values["second"])
        if not 0.0 <= second < 61.0:
            raise ValueError(f"second={second}")
        start = datetime.datetime(*(int(values[a]) for a in _TIME_ATTRS[:5]))
    except (ValueError, TypeError) as exc:
        raise ROFormatError(path, f"time attributes {values} are not a valid time ({exc})"
                            ) from exc
    time = np.datetime64(start, "ns") + np.timedelta64(round(second * 1e9), "ns")
    return np.asarray([time])


def _parse_time_strings(path: Path, text: np.ndarray, name: str) -> np.ndarray:
    """Parse ISO 8601 strings (blank means missing) into naive UTC datetime64[ns]."""
    series = pd.Series(text, dtype=object)
    series = series.where(series.notna() & (series.astype(str).str.strip() != ""))
    parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna() & series.notna()
    if bad.any():
        raise ROFormatError(path, f"{int(bad.sum())} times of {name!r} not parseable, "
                            f"e.g. {series[bad].iloc[0]!r}; write ISO 8601 "
                            "(2024-05-08T20:54:51Z)")
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")


def _read_csv(path: Path, names: dict[str, str]) -> dict[str, Any]:
    """Raw columns of a CSV table."""
    def col(key: str) -> str:
        return names.get(key, key)

    try:
        frame = pd.read_csv(path, dtype={col("profile"): str, col("mission"): str},
                            skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ROFormatError(path, f"cannot be read as CSV ({exc})") from exc
    absent = [f"{k} ({col(k)!r})" for k in ("time", *_REQUIRED) if col(k) not in frame]
    if absent:
        raise ROFormatError(path, f"no column for {', '.join(absent)}; the columns are "
                            f"{list(frame.columns)}; pass variables={{'ne': ..., ...}}")
    raw: dict[str, Any] = {}
    for key in ("ne", "alt", "lat", "lon", "ne_err"):
        if col(key) in frame:
            try:
                raw[key] = pd.to_numeric(frame[col(key)]).to_numpy(dtype=np.float64)
            except (ValueError, TypeError) as exc:
                raise ROFormatError(path, f"column {col(key)!r} is not numeric ({exc})") from exc
    raw["fill"] = [raw[key] == FILL_VALUE for key in _REQUIRED]
    for key, is_fill in zip(_REQUIRED, raw["fill"], strict=True):
        raw[key] = np.where(is_fill, np.nan, raw[key])
    raw["time"] = _parse_time_strings(path, frame[col("time")].to_numpy(dtype=object),
                                      col("time"))
    raw["profile"] = frame[col("profile")].to_numpy(str) if col("profile") in frame else None
    if col("mission") in frame:
        raw["mission"] = frame[col("mission")].fillna("unknown").to_numpy(str)
    raw["default_id"] = _id_from_name(path)
    raw["units"] = "m-3"
    return raw


# --------------------------------------------------------------------------- cleaning


def _clean(
    path: Path,
    raw: dict[str, Any],
    *,
    units: str,
    mission: str | None,
    min_alt: float | None,
    max_alt: float | None,
) -> _Part:
    """Broadcast, convert to m-3, drop and count invalid points, check magnitudes."""
    n = max(np.size(raw[key]) for key in ("time", *_REQUIRED))

    def column(key: str, values: Any) -> np.ndarray:
        arr = np.asarray(values).reshape(-1)
        if arr.size not in (1, n):
            raise ROFormatError(path, f"{key!r} has {arr.size} values where the others have "
                                f"{n}; map variables of one profile dimension")
        return np.broadcast_to(arr, (n,))

    cols = {key: column(key, raw[key]) for key in ("time", *_REQUIRED, "ne_err") if key in raw}
    fill = np.any([column(key, mask) for key, mask in zip(_REQUIRED, raw["fill"], strict=True)],
                  axis=0)
    factor = _density_factor(units, where=path)
    ne = cols["ne"] * factor

    nan = ~fill & (np.isnat(cols["time"]) | np.isnan(ne)
                   | np.isnan(cols["alt"]) | np.isnan(cols["lat"]) | np.isnan(cols["lon"]))
    nonpositive = ~fill & ~nan & (ne <= 0)
    keep = ~(fill | nan | nonpositive)
    _check_density_magnitude(path, ne[keep], units)
    outside = np.zeros(n, dtype=bool)
    if min_alt is not None:
        outside |= cols["alt"] < min_alt
    if max_alt is not None:
        outside |= cols["alt"] > max_alt
    outside &= keep
    keep &= ~outside
    lat = cols["lat"][keep]
    if lat.size and np.abs(lat).max() > 90.0:
        raise ROFormatError(path, f"latitude {lat[np.argmax(np.abs(lat))]} outside "
                            "[-90, 90]; check which variable is mapped to 'lat'")

    time = cols["time"][keep]
    profile = raw.get("profile")
    if profile is not None:
        ids, codes = np.unique(np.broadcast_to(np.asarray(profile).reshape(-1), (n,))[keep],
                               return_inverse=True)
    elif np.size(raw["time"]) == 1:
        ids, codes = np.asarray([raw["default_id"]]), np.zeros(time.size, dtype=np.intp)
    else:
        times, codes = np.unique(time, return_inverse=True)
        ids = [f"{raw['default_id']}@{pd.Timestamp(t).isoformat()}" for t in times]
    missions = raw.get("mission", mission or "unknown")
    return _Part(
        time=time,
        lat=lat,
        lon=cols["lon"][keep],
        alt=cols["alt"][keep],
        ne=ne[keep],
        ne_err=cols["ne_err"][keep] * factor if "ne_err" in cols else None,
        profile_ids=np.asarray(ids, dtype=str),
        profile_code=codes.reshape(-1),
        mission=np.broadcast_to(np.asarray(missions, dtype=str).reshape(-1), (n,))[keep],
        dropped={"fill": int(fill.sum()), "nan": int(nan.sum()),
                 "nonpositive": int(nonpositive.sum()), "alt_range": int(outside.sum())},
    )


def _claim_profile_id(part: _Part, path: Path, owner: dict[str, Path]) -> None:
    """Refuse a single-profile file whose profile id another file already holds."""
    if part.profile_ids.size != 1:
        return
    pid = str(part.profile_ids[0])
    if pid in owner:
        raise ROFormatError(path, f"holds profile {pid!r}, already read from {owner[pid]}; "
                            "remove one of the duplicate files")
    owner[pid] = path


def _obs_attributes(name: str, **extra: str) -> dict[str, str]:
    """CF attributes of a coordinate on ``obs``: those of :mod:`ionofield.io.cf` less ``axis``.

    The observations are scattered points, so their time and position are auxiliary
    coordinates, not axes of a grid.
    """
    return {k: v for k, v in attributes(name, **extra).items() if k != "axis"}


def _assemble(parts: list[_Part]) -> xr.Dataset:
    """Concatenate the parts into the observations Dataset, sorted by (time, profile, alt)."""
    def cat(field: str, dtype: Any) -> np.ndarray:
        arrays = [getattr(p, field) for p in parts]
        return np.concatenate(arrays).astype(dtype) if arrays else np.empty(0, dtype)

    offsets = np.cumsum([0] + [p.profile_ids.size for p in parts])[:-1]
    codes = [np.empty(0, dtype=np.intp)]
    codes += [p.profile_code + offset for p, offset in zip(parts, offsets, strict=True)]
    ids, rank = np.unique(cat("profile_ids", str), return_inverse=True)
    profile_rank = rank.reshape(-1)[np.concatenate(codes)]
    time = cat("time", "datetime64[ns]")
    alt = cat("alt", np.float64)
    order = np.lexsort((alt, profile_rank, time))

    with_err = bool(parts) and all(p.ne_err is not None for p in parts)
    if not with_err and any(p.ne_err is not None for p in parts):
        logger.warning("ne_err dropped: only some of the files provide it")
    data_vars = {"ne": ("obs", cat("ne", np.float64)[order], attributes("ne"))}
    if with_err:
        data_vars["ne_err"] = ("obs", cat("ne_err", np.float64)[order], attributes("ne_err"))
    dropped = {kind: sum(p.dropped[kind] for p in parts) for kind in _DROP_KINDS}
    coords = {
        "time": ("obs", time[order], _obs_attributes("time", long_name="time (UTC)")),
        "lat": ("obs", cat("lat", np.float64)[order], _obs_attributes("lat")),
        "lon": ("obs", fold_longitude(cat("lon", np.float64)[order]), _obs_attributes("lon")),
        "alt": ("obs", alt[order], _obs_attributes("alt")),
        "profile": ("obs", ids[profile_rank[order]] if ids.size else np.empty(0, str),
                    {"long_name": "radio-occultation profile id"}),
        "mission": ("obs", cat("mission", str)[order], {"long_name": "mission"}),
    }
    attrs = {"n_files": len(parts), "n_profiles": int(np.unique(profile_rank).size)}
    attrs.update({f"dropped_{kind}": count for kind, count in dropped.items()})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- files


def _check_not_truncated(path: Path) -> None:
    """Raise ROFormatError when a netCDF-3 file is shorter than its header says.

    The netCDF library reads the missing tail of a truncated classic file as zeros,
    which would pass for non-positive densities; the header gives the exact size.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(_HEADER_CHUNK)
            try:
                required = _classic_required_size(head)
            except struct.error:
                if size <= len(head):
                    raise
                required = _classic_required_size(head + fh.read())
    except (struct.error, IndexError, KeyError) as exc:
        raise ROFormatError(path, "netCDF-3 header is truncated or corrupt; download the "
                            "file again") from exc
    except OSError as exc:
        raise ROFormatError(path, f"cannot be read ({exc})") from exc
    if required is not None and size < required:
        raise ROFormatError(path, f"is truncated: {size} bytes where its netCDF-3 header "
                            f"needs {required}; download the file again")


def _classic_required_size(head: bytes) -> int | None:
    """Bytes a netCDF-3 file needs to hold all its data, or None if not netCDF-3.

    Walks the CDF-1/2/5 header at the start of ``head`` (the netCDF classic format
    specification): dimensions, attributes, then each variable's shape, type and
    start offset. Raises ``struct.error`` when ``head`` ends inside the header.
    """
    if len(head) < 4 or head[:3] != b"CDF" or head[3] not in (1, 2, 5):
        return None
    count = struct.Struct(">q" if head[3] == 5 else ">i")
    offset = struct.Struct(">i" if head[3] == 1 else ">q")
    int32 = struct.Struct(">i")
    pos = 4

    def read(fmt: struct.Struct) -> int:
        nonlocal pos
        value = fmt.unpack_from(head, pos)[0]
        pos += fmt.size
        return value

    def skip(nbytes: int) -> None:
        nonlocal pos
        pos += -(-nbytes // 4) * 4

    def skip_attributes() -> None:
        read(int32)
        for _ in range(read(count)):
            skip(read(count))
            nc_type = read(int32)
            skip(read(count) * _NC_TYPE_BYTES[nc_type])

    numrecs = read(count)
    read(int32)
    dims = []
    for _ in range(read(count)):
        skip(read(count))
        dims.append(read(count))
    skip_attributes()
    read(int32)
    fixed_end, records = 0, []
    for _ in range(read(count)):
        skip(read(count))
        shape = [dims[read(count)] for _ in range(read(count))]
        skip_attributes()
        nbytes = _NC_TYPE_BYTES[read(int32)]
        vsize = read(count)
        begin = read(offset)
        if shape and shape[0] == 0:
            records.append((begin, vsize, nbytes * math.prod(shape[1:])))
        else:
            fixed_end = max(fixed_end, begin + nbytes * math.prod(shape))
    if pos > len(head):
        raise struct.error("header runs past the end of the data")
    if not records or numrecs <= 0:
        return fixed_end
    record_size = records[0][2] if len(records) == 1 else sum(r[1] for r in records)
    last_record = (numrecs - 1) * record_size
    return max(fixed_end, max(begin + last_record + size for begin, _, size in records))

"""Radio-occultation (RO) electron-density profiles.

Reads UCAR CDAAC ``ionPrf`` netCDF files (COSMIC-1, COSMIC-2, FY-3 GNOS processed by
CDAAC), other per-profile netCDF files through a variable-name mapping, and flat tables
(CSV or netCDF with ``time, lat, lon, alt, ne``) into one observations Dataset on the
dimension ``obs`` (DESIGN.md section 2). Writes synthetic profiles in the ``ionPrf``
format and observation Datasets as flat tables.

Every point whose electron density or position is missing, a fill value, NaN, infinite,
not positive or beyond any ionosphere is dropped, counted, logged and recorded in the
Dataset attributes; the unusual drops (infinite, implausible), files without a valid
point and profiles out of altitude order also raise a :class:`~ionofield.errors.DataWarning`.

Readers and writers of the RO formats stay in one module (about 1200 lines): they
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
import warnings
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
    DataWarning,
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
"""Bounds on plausible ionospheric electron densities (m-3).

Ionospheric densities lie between about 1e8 and 1e13 m-3 (the largest F2 peaks are
below 1e13). A profile whose median positive density is outside these bounds is in
other units than declared (el/cm3 read as m-3 or the reverse, a factor 1e6): it is
refused. A single point above the upper bound, in a profile whose median is plausible,
is a corrupt value: it is dropped and counted.
"""

ALT_PLAUSIBLE_KM = (-10.0, 10000.0)
"""Bounds on plausible altitudes of radio-occultation points (km).

Tangent points lie between the ground and the orbit of the receiving satellite, below
about 1500 km for every RO mission; the bounds are wide so that only corrupt values
fall outside. A profile whose median altitude is above the upper bound is in metres
labelled km (RO profiles span about 90-800 km, 90 000-800 000 m): it is refused. A
single point outside the bounds, in a profile whose median is plausible, is dropped and
counted.
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
_DROP_KINDS = ("fill", "nan", "infinite", "nonpositive", "implausible", "alt_range")
_WARNED_KINDS = ("infinite", "implausible")
_HEADER_CHUNK = 1 << 16
_SHOWN = 5
_YEARS_NS = (1678, 2261)  # whole years within the range of datetime64[ns]


@dataclass
class _Part:
    """Valid points read from one file: 1-D arrays of one length ``n``."""

    path: Path
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
    unordered: bool  # one profile whose altitudes are not monotonic in file order


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
    (-999 in CDAAC files and CSV tables), is NaN (or whose time is missing), is
    infinite (also ``ne_err``), whose ``ne`` is zero or negative, or is implausible
    (``ne`` above the upper bound of :data:`NE_PLAUSIBLE_M3`, ``alt`` outside
    :data:`ALT_PLAUSIBLE_KM`, in a profile whose median is plausible) are dropped; the
    counts are logged (INFO per call, DEBUG per file) and kept in the attributes
    ``dropped_fill``, ``dropped_nan``, ``dropped_infinite``, ``dropped_nonpositive``,
    ``dropped_implausible`` and ``dropped_alt_range`` (outside ``min_alt``,
    ``max_alt``), beside ``n_files`` and ``n_profiles``. Fill, NaN and negative values
    are routine in Abel-inverted profiles and are only logged; the others are signs of
    damage and also raise a :class:`~ionofield.errors.DataWarning` naming the files.

    A :class:`~ionofield.errors.DataWarning` also names the files without any valid
    point (they add no observation), the files holding one profile whose altitudes are
    not monotonic in file order (their points are kept, sorted by altitude as all the
    points are).

    Reading is all or nothing: when a file cannot be read or holds impossible values,
    no Dataset is returned; every such file is reported at once, so that one pass of
    fixing or removing them suffices. A read that yields no valid point at all raises.

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
        float64), ``ne_err`` (m-3) when a file provides it (NaN, unknown, for the
        points of the files that do not); coordinates ``time``
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
        A file is unreadable, truncated, corrupt, lacks a needed variable, has
        unparseable or impossible times, latitudes outside [-90, 90] or longitudes
        outside [-720, 720], or the only file read holds no valid point; the message
        names the file and the fix.
    UnitsError
        A profile's median positive density is outside :data:`NE_PLAUSIBLE_M3` once
        converted to m-3 (el/cm3 declared as m-3, or the reverse), or its median
        altitude is above :data:`ALT_PLAUSIBLE_KM` (metres labelled km).
    ManyProblemsError
        Several files failed (one line per file), or none of several files holds a
        valid point.
    ConfigError
        An unknown key in ``variables`` or unknown ``ne_units``.

    Warns
    -----
    DataWarning
        Infinite or implausible points dropped, files without a valid point, a
        profile out of altitude order: with the counts and the files.

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
        raise ManyProblemsError(
            f"open_ro_profiles: {len(problems)} of {len(files)} files cannot be read, so "
            "nothing was read (fix or remove them)", [str(p) for p in problems])
    _check_some_valid(parts)
    _warn_about_parts(parts)
    obs = _assemble(parts)
    obs.attrs["source"] = _some(list(map(os.fspath, items)), shown=3)
    logger.info(
        "read %d RO files: %d profiles, %d points; dropped %d fill, %d NaN, "
        "%d non-positive, %d outside the altitude range, %d infinite, %d implausible",
        obs.attrs["n_files"], obs.attrs["n_profiles"], obs.sizes["obs"],
        obs.attrs["dropped_fill"], obs.attrs["dropped_nan"],
        obs.attrs["dropped_nonpositive"], obs.attrs["dropped_alt_range"],
        obs.attrs["dropped_infinite"], obs.attrs["dropped_implausible"],
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
        Destination file; missing folders are created. The ``fileStamp`` attribute (the
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
        NaN in any variable is written as the fill value -999; infinite values are
        refused.
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
        Arrays of different lengths or not numeric, an empty profile, infinite
        values, latitudes or longitudes out of range, not exactly one time, a
        global attribute netCDF cannot store, or a folder as ``path``.
    UnitsError
        The profile's median density is outside :data:`NE_PLAUSIBLE_M3` (el/cm3 given
        for m-3) or its median altitude above :data:`ALT_PLAUSIBLE_KM` (metres given
        for km): the file would not read back.
    """
    path = Path(path)
    what = f"write_ionprf({path})"
    _check_destination(what, path)
    alt_km = np.atleast_1d(_as_float(what, "alt", alt))
    if alt_km.ndim != 1 or alt_km.size == 0:
        raise ConfigError(f"{what}: alt must be 1-D and not empty, got shape {alt_km.shape}")
    columns = {"MSL_alt": alt_km}
    for name, key, values in (("GEO_lat", "lat", lat), ("GEO_lon", "lon", lon),
                              ("ELEC_dens", "ne", ne)):
        arr = _as_float(what, key, values)
        if arr.size not in (1, alt_km.size) or arr.ndim > 1:
            raise ConfigError(f"{what}: {name} has shape {arr.shape}, "
                              f"expected ({alt_km.size},) like alt, or a scalar")
        columns[name] = np.broadcast_to(arr.reshape(-1), alt_km.shape)
    _check_to_write(what, {key: columns[name] for key, name in _IONPRF_NAMES.items()},
                    np.asarray([_id_from_name(path)]))
    columns["ELEC_dens"] = columns["ELEC_dens"] / 1e6
    stored = {name: np.where(np.isfinite(v), v, FILL_VALUE).astype(np.float32)
              for name, v in columns.items()}

    t64 = to_datetime64(time, name=f"{what}: time")
    if t64.size != 1 or np.isnat(t64.reshape(-1)[0]):
        raise ConfigError(f"{what}: time must be one valid time, got {time!r}")
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
        for key, value in global_attrs.items():
            try:
                ds.setncattr(key, value)
            except (TypeError, ValueError, AttributeError) as exc:
                raise ConfigError(f"{what}: global attribute {key}={value!r} cannot be "
                                  f"stored in netCDF ({exc}); pass text or numbers") from exc
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
        Another suffix, a folder as ``path``, something else than a Dataset, a Dataset
        lacking a needed variable, with a variable not 1-D on ``obs`` (a volume), with
        no observation, with numeric times, with infinite values, or with latitudes or
        longitudes out of range.
    UnitsError
        A profile's median density is outside :data:`NE_PLAUSIBLE_M3` (el/cm3 given
        for m-3) or its median altitude above :data:`ALT_PLAUSIBLE_KM` (metres given
        for km): the table would not read back.

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
    what = f"write_ro_table({path})"
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".nc"):
        raise ConfigError(f"{what}: unknown table suffix {suffix!r}; use .csv or .nc")
    _check_destination(what, path)
    if not isinstance(obs, xr.Dataset):
        raise ConfigError(f"{what}: obs is a {type(obs).__name__}, not an observations "
                          "Dataset; read one with ionofield.open_ro_profiles")
    missing = [name for name in ("time", "lat", "lon", "alt", "ne") if name not in obs.variables]
    if missing:
        raise ConfigError(f"{what}: the Dataset lacks {missing}; "
                          f"it has {sorted(map(str, obs.variables))}")
    columns = [name for name in TABLE_COLUMNS if name in obs.variables]
    table = obs.reset_coords()[columns]
    not_obs = {name: table[name].dims for name in columns if table[name].dims != ("obs",)}
    if not_obs:
        raise ConfigError(f"{what}: every column must be 1-D on 'obs', but the dimensions "
                          f"are {not_obs}; write_ro_table writes observations, not volumes "
                          "(for those use ionofield.to_netcdf)")
    if table.sizes["obs"] == 0:
        raise ConfigError(f"{what}: the Dataset holds no observation; nothing to write")
    if table["time"].dtype.kind in "iufb":
        raise ConfigError(f"{what}: 'time' holds numbers ({table['time'].dtype}), not times; "
                          "decode them first (xarray.decode_cf) or convert to datetime64")
    numbers = {name: _as_float(what, name, table[name].values)
               for name in ("ne", "alt", "lat", "lon", "ne_err") if name in columns}
    by = "profile" if "profile" in columns else "time"
    _check_to_write(what, numbers, table[by].values.astype(str))
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


def _check_destination(what: str, path: Path) -> None:
    """Raise ConfigError when the destination of a writer is a folder."""
    if path.is_dir():
        raise ConfigError(f"{what}: is a folder; give the name of the file to write in it")


def _as_float(what: str, name: str, values: Any) -> np.ndarray:
    """``values`` as a float64 array; ConfigError naming ``name`` when not numeric."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: {name} is not numeric ({exc}); pass numbers") from exc


def _check_to_write(what: str, columns: dict[str, np.ndarray], profile: np.ndarray) -> None:
    """Refuse values that would not read back: infinite, out of range, in other units.

    ``columns`` maps ``ne`` (m-3), ``alt`` (km), ``lat``, ``lon`` and optionally
    ``ne_err`` to arrays of one length; ``profile`` gives the profile of each point,
    or is one id for all. NaN (a missing value, written as such) passes.
    """
    for name, values in columns.items():
        count = int(np.isinf(values).sum())
        if count:
            raise ConfigError(f"{what}: {name} holds {count} infinite value(s); pass NaN for "
                              "a missing value or drop those points")
    ne, alt, lat, lon = (columns[key] for key in ("ne", "alt", "lat", "lon"))
    problem = _position_problem(lat[np.isfinite(lat)], lon[np.isfinite(lon)])
    if problem is not None:
        key, text = problem
        raise ConfigError(f"{what}: {text}; check what is given as {key!r}")
    valid = np.isfinite(ne) & np.isfinite(alt) & (ne > 0)
    ids, codes = np.unique(np.broadcast_to(profile, ne.shape), return_inverse=True)
    problem = _magnitude_problem(ne[valid], alt[valid], codes.reshape(-1)[valid], ids)
    if problem is not None:
        kind, text = problem
        fix = {"el/cm3": "these look like el/cm3: give ne in m-3 (multiply by 1e6)",
               "m-3": "give ne in m-3 (these look 1e6 times too large)",
               "m": "these look like metres: give alt in km (divide by 1000)"}[kind]
        raise UnitsError(f"{what}: {text}; {fix}")


# --------------------------------------------------------------------------- paths


def _some(texts: list[str], shown: int = _SHOWN) -> str:
    """Join the first ``shown`` of ``texts`` with "; ", saying how many more there are."""
    text = "; ".join(texts[:shown])
    return text + (f"; and {len(texts) - shown} more" if len(texts) > shown else "")


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


def _magnitude_problem(ne_m3: np.ndarray, alt_km: np.ndarray, codes: np.ndarray,
                       ids: np.ndarray) -> tuple[str, str] | None:
    """The first profile whose median density or altitude is in other units, if any.

    Parameters
    ----------
    ne_m3, alt_km
        Valid points: finite, ``ne_m3 > 0``.
    codes
        The profile of each point, an index into ``ids``.
    ids
        The profile ids.

    Returns
    -------
    tuple of str, or None
        ``(kind, description)`` with ``kind`` one of ``"el/cm3"`` (median density
        below :data:`NE_PLAUSIBLE_M3`), ``"m-3"`` (above) or ``"m"`` (median altitude
        above :data:`ALT_PLAUSIBLE_KM`); None when every profile is plausible.
    """
    if ne_m3.size == 0:
        return None
    order = np.argsort(codes, kind="stable")
    profiles, starts = np.unique(codes[order], return_index=True)
    medians = {name: np.array([np.median(chunk) for chunk in np.split(values[order], starts[1:])])
               for name, values in (("ne", ne_m3), ("alt", alt_km))}
    low, high = NE_PLAUSIBLE_M3
    checks = (
        ("el/cm3", "ne", medians["ne"] < low, "median positive electron density {:.3g} m-3",
         f"below {low:.0e} m-3, impossible for the ionosphere"),
        ("m-3", "ne", medians["ne"] > high, "median positive electron density {:.3g} m-3",
         f"above {high:.0e} m-3, impossible for the ionosphere"),
        ("m", "alt", medians["alt"] > ALT_PLAUSIBLE_KM[1], "median altitude {:.6g} km",
         f"above {ALT_PLAUSIBLE_KM[1]:g} km, beyond any RO profile (about 90-800 km)"),
    )
    for kind, name, bad, quantity, problem in checks:
        if bad.any():
            first = int(np.argmax(bad))
            more = (f" (and {int(bad.sum()) - 1} more of the {bad.size} profiles)"
                    if bad.sum() > 1 else "")
            value = quantity.format(medians[name][first])
            return kind, f"{value} of profile {str(ids[profiles[first]])!r}{more} is {problem}"
    return None


def _position_problem(lat: np.ndarray, lon: np.ndarray) -> tuple[str, str] | None:
    """``(key, description)`` of the first latitude or longitude out of range, if any.

    Latitudes must lie in [-90, 90] and longitudes in [-720, 720]: longitudes are
    folded, so any turn around the Earth is accepted (-180..180, 0..360, a track that
    runs past 360), but not values that no longitude convention gives.
    """
    for key, name, values, bound in (("lat", "latitude", lat, 90.0),
                                     ("lon", "longitude", lon, 720.0)):
        bad = np.abs(values) > bound
        if bad.any():
            return key, (f"{int(bad.sum())} {name}s outside [{-bound:g}, {bound:g}], e.g. "
                         f"{values[bad][0]:g}")
    return None


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
    return part


def _read_netcdf(path: Path, names: dict[str, str]) -> dict[str, Any]:
    """Raw columns of a netCDF file (ionPrf, table or mapped per-profile file)."""
    _check_not_truncated(path)
    try:
        ds = netCDF4.Dataset(path)
    except (OSError, RuntimeError, UnicodeError) as exc:  # RuntimeError: damaged HDF5
        raise ROFormatError(path, f"cannot be read as netCDF ({exc}); the file is corrupt, "
                            "truncated or of another format (tables must end in .csv)") from exc
    try:
        with ds:
            return _netcdf_columns(path, ds, names)
    # The netCDF library reports a damaged attribute as AttributeError, an undecodable
    # name as UnicodeError, a damaged HDF5 object as RuntimeError or OSError.
    except (OSError, RuntimeError, UnicodeError, AttributeError) as exc:
        raise ROFormatError(path, f"cannot be read ({type(exc).__name__}: {exc}); the file is "
                            "corrupt: download it again") from exc


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
    alt_var = ncvars[var_name("alt")]
    alt_units = _nc_text(path, alt_var, "units", "km")
    factor = _ALT_FACTORS.get(alt_units.strip().lower())
    if factor is None:
        raise ROFormatError(path, f"altitude {alt_var.name!r} has units {alt_units!r}; "
                            "expected km or m")
    raw["alt"] = raw["alt"] * factor
    raw["alt_fix"] = f"the units attribute of {alt_var.name!r} says {alt_units!r}: " + (
        f"correct it to 'm' (ncatted -a units,{alt_var.name},o,c,m FILE)" if factor == 1.0
        else "check what the altitudes are")
    raw["time"] = _nc_time(path, ds, var_name("time"), ds.ncattrs())
    raw["profile"] = (_nc_strings(path, ncvars[var_name("profile")])
                      if var_name("profile") in ncvars else None)
    if var_name("mission") in ncvars:
        raw["mission"] = _nc_strings(path, ncvars[var_name("mission")])
    elif "mission" in ds.ncattrs():
        raw["mission"] = _nc_text(path, ds, "mission", None)
    raw["default_id"] = _nc_text(path, ds, "fileStamp", _id_from_name(path)).strip()
    raw["units"] = _nc_text(path, ncvars[var_name("ne")], "units",
                            "el/cm3" if ionprf else "m-3")
    return raw


def _nc_text(path: Path, obj: netCDF4.Dataset | netCDF4.Variable, name: str,
             default: str | None) -> str | None:
    """A text attribute of a netCDF variable or file, or ``default`` when absent.

    Raises ROFormatError when the attribute is not text or holds bytes that are not
    UTF-8 (the netCDF library replaces them with U+FFFD): a corrupt file.
    """
    if name not in obj.ncattrs():
        return default
    value = obj.getncattr(name)
    where = f"attribute {name!r}" + (f" of {obj.name!r}" if isinstance(obj, netCDF4.Variable)
                                      else "")
    if not isinstance(value, str):
        raise ROFormatError(path, f"{where} is {value}, not text; the file is corrupt: "
                            "download it again")
    _check_utf8(path, where, np.asarray([value]))
    return value


def _check_utf8(path: Path, where: str, texts: np.ndarray) -> None:
    """Raise ROFormatError when decoded texts hold U+FFFD, the mark of bytes not UTF-8."""
    bad = np.char.find(texts.astype(str), "\ufffd") >= 0
    if bad.any():
        raise ROFormatError(path, f"{where} holds bytes that are not UTF-8 "
                            f"({str(texts[bad][0])!r}); the file is corrupt: download it again")


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


def _nc_strings(path: Path, var: netCDF4.Variable) -> np.ndarray:
    """Read a string variable (vlen str or char array) as a 1-D str array."""
    values = np.asarray(var[...])
    if values.dtype.kind == "S" and values.ndim > 1:
        values = netCDF4.chartostring(values)
    elif values.dtype.kind == "S":
        values = np.char.decode(values, "utf-8")
    values = values.astype(str).reshape(-1)
    _check_utf8(path, f"variable {var.name!r}", values)
    return values


def _nc_time(path: Path, ds: netCDF4.Dataset, name: str, global_names: list[str]
             ) -> np.ndarray:
    """Read the times of a netCDF file: a variable, an attribute, or year..second."""
    if name in ds.variables:
        var = ds.variables[name]
        if var.dtype == str or np.dtype(var.dtype).kind in "SU":
            return _parse_time_strings(path, _nc_strings(path, var), name)
        attrs = {k: var.getncattr(k) for k in ("units", "calendar", "_FillValue", "missing_value")
                 if k in var.ncattrs()}
        if "units" not in attrs:
            raise ROFormatError(path, f"time variable {name!r} has no units attribute; "
                                "expected CF units such as 'seconds since 2000-01-01'")
        numbers = np.asarray(var[...]).reshape(-1)
        if numbers.dtype.kind == "f" and np.isinf(numbers).any():
            raise ROFormatError(path, f"time variable {name!r} holds "
                                f"{int(np.isinf(numbers).sum())} infinite value(s); the file "
                                "is corrupt: download it again")
        try:
            with warnings.catch_warnings():  # out-of-range times are refused below
                warnings.simplefilter("ignore", xr.SerializationWarning)
                decoded = xr.decode_cf(xr.Dataset({"t": ("n", numbers, attrs)}))["t"].values
        except (ValueError, TypeError, OverflowError) as exc:
            raise ROFormatError(path, f"times of {name!r} not parseable with units "
                                f"{attrs['units']!r} ({exc})") from exc
        if decoded.dtype.kind not in "MO":
            raise ROFormatError(path, f"time variable {name!r} has units {attrs['units']!r}, "
                                "not CF time units; expected e.g. 'seconds since 2000-01-01'")
        years = [t.year for t in decoded if hasattr(t, "year")] if decoded.dtype == object else []
        if years and not _YEARS_NS[0] <= min(years) <= max(years) <= _YEARS_NS[1]:
            raise ROFormatError(path, f"times of {name!r} run from year {min(years)} to "
                                f"{max(years)}, outside {_YEARS_NS[0]}-{_YEARS_NS[1]} (the "
                                f"range of datetime64[ns]); check its units {attrs['units']!r}")
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
        start = pd.Timestamp(datetime.datetime(*(int(values[a]) for a in _TIME_ATTRS[:5])))
        time = start.as_unit("ns").to_datetime64() + np.timedelta64(round(second * 1e9), "ns")
    except (ValueError, TypeError, OverflowError) as exc:
        text = " ".join(f"{a}={values[a]}" for a in _TIME_ATTRS)
        raise ROFormatError(path, f"time attributes {text} are not a valid time ({exc}); "
                            "the file is corrupt: download it again") from exc
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
    raw["alt_fix"] = f"write the column {col('alt')!r} in km (divide it by 1000)"
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
    """Broadcast, convert to m-3, check units and ranges, drop and count invalid points."""
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
    alt = cols["alt"]
    numbers = [ne, alt, cols["lat"], cols["lon"]]
    nan = ~fill & (np.isnat(cols["time"]) | np.any([np.isnan(v) for v in numbers], axis=0))
    if "ne_err" in cols:
        numbers.append(cols["ne_err"])
    infinite = ~fill & ~nan & np.any([np.isinf(v) for v in numbers], axis=0)
    nonpositive = ~fill & ~nan & ~infinite & (ne <= 0)
    valid = ~(fill | nan | infinite | nonpositive)

    ids, codes = _profile_codes(raw, cols["time"], n)
    problem = _magnitude_problem(ne[valid], alt[valid], codes[valid], ids)
    if problem is not None:
        kind, text = problem
        fix = {"el/cm3": f" (read as {units}); the values look like el/cm3: pass "
                         "ne_units='cm-3' or multiply them by 1e6",
               "m-3": f" (read as {units}); the values look like m-3 labelled el/cm3: pass "
                      "ne_units='m-3' or divide them by 1e6",
               "m": f"; the altitudes look like metres labelled km: {raw['alt_fix']}"}[kind]
        raise UnitsError(f"{path}: {text}{fix}")
    low, high = ALT_PLAUSIBLE_KM
    implausible = valid & ((ne > NE_PLAUSIBLE_M3[1]) | (alt < low) | (alt > high))
    keep = valid & ~implausible
    problem = _position_problem(cols["lat"][keep], cols["lon"][keep])
    if problem is not None:
        key, text = problem
        raise ROFormatError(path, f"{text}; check which variable is mapped to {key!r}")
    outside = np.zeros(n, dtype=bool)
    if min_alt is not None:
        outside |= alt < min_alt
    if max_alt is not None:
        outside |= alt > max_alt
    outside &= keep
    keep &= ~outside

    steps = np.diff(alt[keep])
    single = raw.get("profile") is None and np.size(raw["time"]) == 1
    used, kept_codes = np.unique(codes[keep], return_inverse=True)
    missions = raw.get("mission", mission or "unknown")
    return _Part(
        path=path,
        time=cols["time"][keep],
        lat=cols["lat"][keep],
        lon=cols["lon"][keep],
        alt=alt[keep],
        ne=ne[keep],
        ne_err=cols["ne_err"][keep] * factor if "ne_err" in cols else None,
        profile_ids=ids[used],
        profile_code=kept_codes.reshape(-1),
        mission=np.broadcast_to(np.asarray(missions, dtype=str).reshape(-1), (n,))[keep],
        dropped={"fill": int(fill.sum()), "nan": int(nan.sum()),
                 "infinite": int(infinite.sum()), "nonpositive": int(nonpositive.sum()),
                 "implausible": int(implausible.sum()), "alt_range": int(outside.sum())},
        unordered=single and bool((steps > 0).any() and (steps < 0).any()),
    )


def _profile_codes(raw: dict[str, Any], time: np.ndarray, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Profile ids of a file and the index into them of each of its ``n`` points.

    The ``profile`` column when there is one; else the file's id when it has one time;
    else one profile per distinct time, named ``<id>@<ISO time>``.
    """
    profile = raw.get("profile")
    if profile is not None:
        ids, codes = np.unique(np.broadcast_to(np.asarray(profile).reshape(-1), (n,)),
                               return_inverse=True)
    elif np.size(raw["time"]) == 1:
        ids, codes = np.asarray([raw["default_id"]]), np.zeros(n, dtype=np.intp)
    else:
        times, codes = np.unique(time, return_inverse=True)
        ids = np.asarray([f"{raw['default_id']}@{pd.Timestamp(t).isoformat()}"
                          for t in times], dtype=str)
    return np.asarray(ids, dtype=str), codes.reshape(-1)


def _check_some_valid(parts: list[_Part]) -> None:
    """Raise when no file holds a valid point; warn about the files without one."""
    empty = [p for p in parts if p.ne.size == 0]
    if not empty:
        return
    def why(part: _Part) -> str:
        total = sum(part.dropped.values())
        return (f"all {total} points dropped: {_describe_drops(part.dropped)}" if total
                else "the file holds no point")

    fix = ("widen min_alt, max_alt" if any(p.dropped["alt_range"] for p in empty)
           else "check that the files hold electron densities")
    if len(empty) == len(parts) == 1:
        raise ROFormatError(parts[0].path, f"no valid point ({why(parts[0])}); {fix}")
    lines = [f"{p.path} ({why(p)})" for p in empty]
    if len(empty) == len(parts):
        raise ManyProblemsError(f"open_ro_profiles: no valid point in any of the {len(parts)} "
                                f"files ({fix})", lines)
    _warn_files("no valid point (they add no observation)", lines, len(parts))


def _warn_about_parts(parts: list[_Part]) -> None:
    """Issue the DataWarnings of a read: damaged points and unordered profiles."""
    damaged = [p for p in parts if any(p.dropped[kind] for kind in _WARNED_KINDS)]
    if damaged:
        totals = {kind: sum(p.dropped[kind] for p in parts) for kind in _WARNED_KINDS}
        lines = [f"{p.path} ({_describe_drops(p.dropped, _WARNED_KINDS)})" for p in damaged]
        _warn_files(
            f"dropped {totals['infinite']} infinite and {totals['implausible']} implausible "
            f"points (density above {NE_PLAUSIBLE_M3[1]:.0e} m-3 or altitude outside "
            f"[{ALT_PLAUSIBLE_KM[0]:g}, {ALT_PLAUSIBLE_KM[1]:g}] km; counted in the "
            "attributes dropped_infinite, dropped_implausible)", lines, len(parts))
    unordered = [str(p.path) for p in parts if p.unordered]
    if unordered:
        _warn_files("altitudes not monotonic along the profile (a damaged or merged "
                    "profile; its points are kept, sorted by altitude)", unordered, len(parts))


def _describe_drops(dropped: dict[str, int], kinds: Iterable[str] = _DROP_KINDS) -> str:
    """"12 fill, 2 infinite": the counts of dropped points that are not zero."""
    labels = {"fill": "fill", "nan": "NaN", "infinite": "infinite",
              "nonpositive": "non-positive", "implausible": "implausible",
              "alt_range": "outside min_alt..max_alt"}
    text = ", ".join(f"{dropped[kind]} {labels[kind]}" for kind in kinds if dropped[kind])
    return text


def _warn_files(problem: str, lines: list[str], total: int) -> None:
    """Issue one DataWarning naming (some of) the files that show ``problem``."""
    warnings.warn(f"open_ro_profiles: {problem} in {len(lines)} of {total} files: "
                  f"{_some(lines)}", DataWarning, stacklevel=4)


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

    data_vars = {"ne": ("obs", cat("ne", np.float64)[order], attributes("ne"))}
    if any(p.ne_err is not None for p in parts):
        errors = [np.full(p.ne.size, np.nan) if p.ne_err is None else p.ne_err for p in parts]
        data_vars["ne_err"] = ("obs", np.concatenate(errors)[order], attributes("ne_err"))
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
        if nbytes < 0:
            raise struct.error(f"negative size {nbytes} in the header")
        pos += -(-nbytes // 4) * 4

    def items() -> range:
        # Each item of a header list takes 4 bytes or more: a longer list is corrupt.
        number = read(count)
        if not 0 <= number <= len(head) // 4:
            raise struct.error(f"list of {number} items in a header of {len(head)} bytes")
        return range(number)

    def dim_length() -> int:
        index = read(count)
        if not 0 <= index < len(dims):
            raise struct.error(f"dimension {index} of {len(dims)} in the header")
        return dims[index]

    def skip_attributes() -> None:
        read(int32)
        for _ in items():
            skip(read(count))
            nc_type = read(int32)
            skip(read(count) * _NC_TYPE_BYTES[nc_type])

    numrecs = read(count)
    read(int32)
    dims = []
    for _ in items():
        skip(read(count))
        dims.append(read(count))
    skip_attributes()
    read(int32)
    fixed_end, records = 0, []
    for _ in items():
        skip(read(count))
        shape = [dim_length() for _ in items()]
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

"""Ionosonde tables: foF2 and hmF2 of ground stations, as GIRO / DIDBase give them.

:func:`open_ionosonde` reads CSV tables of ionogram-derived characteristics, one row
per sounding: the station (URSI code), the time (ISO 8601, UTC), the station's
latitude and longitude, the F2-layer critical frequency foF2 (MHz) and, optionally,
the peak height hmF2 (km) and the autoscaling confidence score CS (0-100; 100 is the
best autoscaled or a manually scaled value). The F2 peak density follows from the
plasma frequency, ``NmF2 = 1.24e10 * foF2**2`` m-3 with foF2 in MHz
(:func:`nmf2_from_fof2`). The result is what :func:`ionofield.validate` scores a
model or a volume against.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from ionofield._files import PathLike, expand_paths
from ionofield.errors import DataWarning, InputFileError
from ionofield.io.cf import attributes
from ionofield.sphere import fold_longitude

logger = logging.getLogger(__name__)

__all__ = ["FOF2_TO_NMF2", "nmf2_from_fof2", "open_ionosonde"]

FOF2_TO_NMF2 = 1.24e10
"""NmF2 (m-3) per foF2**2 (MHz**2): the plasma frequency of the F2 peak is foF2."""

FOF2_PLAUSIBLE_MHZ = (0.5, 30.0)
"""foF2 (MHz) a sounding may have; a value outside is a fill value (9999, -1) and is
dropped, and a median outside means other units (0.1 MHz, as URSI tables code it, or kHz)."""

HMF2_PLAUSIBLE_KM = (100.0, 800.0)
"""hmF2 (km) a sounding may have; a value outside is a fill value (999.9, 9999) and is
set missing, and a median outside means other units (metres)."""

#: Accepted column names (compared in lower case, spaces and dashes read as "_").
_ALIASES = {
    "station": ("station", "ursi", "ursi_code", "ursicode", "code"),
    "time": ("time", "datetime", "date_time", "timestamp", "epoch", "time_utc"),
    "lat": ("lat", "latitude", "glat"),
    "lon": ("lon", "longitude", "glon", "long"),
    "fof2": ("fof2", "fof2_mhz"),
    "hmf2": ("hmf2", "hmf2_km"),
    "cs": ("cs", "confidence", "confidence_score", "cscore"),
}
_REQUIRED = ("time", "lat", "lon", "fof2")
#: Texts read as a missing value (besides an empty cell).
_MISSING_TEXT = ("---", "--", "-", "/", "//", "nan", "na", "n/a", "null", "none")


def nmf2_from_fof2(fof2: npt.ArrayLike) -> np.ndarray:
    """F2 peak density from the critical frequency.

    Parameters
    ----------
    fof2
        foF2 in MHz, any shape.

    Returns
    -------
    numpy.ndarray
        NmF2 in m-3, :data:`FOF2_TO_NMF2` times foF2 squared.

    Examples
    --------
    >>> float(nmf2_from_fof2(10.0))
    1240000000000.0
    """
    return FOF2_TO_NMF2 * np.asarray(fof2, dtype=np.float64) ** 2


def open_ionosonde(
    paths: PathLike | Iterable[PathLike],
    *,
    min_confidence: float | None = None,
) -> xr.Dataset:
    """Read ionosonde soundings (foF2, hmF2) from GIRO / DIDBase-style CSV tables.

    Parameters
    ----------
    paths
        CSV files, folders or glob patterns (as every reader of ionofield takes
        them). Each file has a header row naming its columns, in any case and order:
        ``station`` (URSI code; the file's name when absent), ``time`` (ISO 8601;
        UTC unless an offset is given), ``lat`` (deg N), ``lon`` (deg E, any range),
        ``foF2`` (MHz) and optionally ``hmF2`` (km) and ``CS``. Lines starting with
        ``#`` are comments. Empty cells, ``---``, ``NaN`` and values outside
        :data:`FOF2_PLAUSIBLE_MHZ` / :data:`HMF2_PLAUSIBLE_KM` (fill values such as
        9999 or -1) are missing.
    min_confidence
        Drop soundings whose confidence score ``CS`` is below this (0-100); the
        tables must then have a CS column. None keeps every sounding.

    Returns
    -------
    xarray.Dataset
        On the dimension ``sounding``, sorted by time: ``fof2`` (MHz), ``nmf2``
        (m-3, :func:`nmf2_from_fof2`), ``hmf2`` (km, NaN where missing) and ``cs``
        when the tables have it; coordinates ``time`` (datetime64[ns]), ``lat``,
        ``lon`` (folded to -180..180) and ``station``. Soundings without foF2 (or
        below ``min_confidence``) are dropped; the attributes give the counts.

    Raises
    ------
    FileNotFoundError
        A path matches no file.
    InputFileError
        A file that is not a CSV table, lacks a required column, holds times that
        are not ISO 8601, latitudes outside -90..90, or a foF2 / hmF2 column in
        other units; every problem of a file is listed in one message that names
        the file, the column and the fix.

    Warns
    -----
    DataWarning
        Soundings dropped for a missing or fill foF2, time or position, or hmF2
        values set missing, with the counts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "giro.csv"
    >>> rows = ["Station,Time,Lat,Lon,foF2,hmF2,CS",
    ...         "JR055,2024-05-10T12:00:00Z,54.6,13.4,10.0,---,90"]
    >>> _ = path.write_text(chr(10).join(rows))
    >>> table = open_ionosonde(path)
    >>> float(table.nmf2[0]), float(table.hmf2[0])
    (1240000000000.0, nan)
    """
    files = expand_paths(paths, what="open_ionosonde")
    frames, dropped, blanked = [], 0, 0
    for path in files:
        frame, lost, blank = _read_table(path, min_confidence)
        frames.append(frame)
        dropped, blanked = dropped + lost, blanked + blank
    table = pd.concat(frames, ignore_index=True).sort_values("time", kind="stable")
    if dropped or blanked:
        warnings.warn(
            f"open_ionosonde: {dropped} sounding(s) dropped (foF2, time or position missing, a "
            f"fill value{', or CS below min_confidence' if min_confidence is not None else ''})"
            f" and {blanked} hmF2 value(s) set missing (fill values) in {len(files)} file(s); "
            f"{len(table)} soundings kept.",
            DataWarning,
            stacklevel=2,
        )
    if table.empty:
        raise InputFileError(
            files[0] if len(files) == 1 else f"{len(files)} files",
            "no sounding with a valid foF2, time and position; check the foF2 column (MHz) "
            "and, with min_confidence=, the CS column",
        )
    n = len(table)
    dims = ("sounding",)
    data = {
        "fof2": (dims, table["fof2"].to_numpy(np.float64),
                 {"long_name": "F2-layer critical frequency (ordinary wave)", "units": "MHz"}),
        "nmf2": (dims, nmf2_from_fof2(table["fof2"].to_numpy()),
                 {**attributes("nmf2"), "comment": f"{FOF2_TO_NMF2:.3g} * foF2**2, foF2 in MHz"}),
        "hmf2": (dims, table["hmf2"].to_numpy(np.float64), dict(attributes("hmf2"))),
    }
    if "cs" in table:
        data["cs"] = (dims, table["cs"].to_numpy(np.float64),
                      {"long_name": "autoscaling confidence score (100: best or manual)",
                       "units": "1"})
    coords = {
        "time": (dims, table["time"].to_numpy("datetime64[ns]"), attributes("time")),
        "lat": (dims, table["lat"].to_numpy(np.float64), attributes("lat")),
        "lon": (dims, fold_longitude(table["lon"].to_numpy()), attributes("lon")),
        "station": (dims, table["station"].to_numpy(str), {"long_name": "URSI station code"}),
    }
    logger.info("open_ionosonde: %d soundings from %d file(s)", n, len(files))
    return xr.Dataset(data, coords=coords, attrs={
        "title": "ionosonde soundings (foF2, hmF2)",
        "source": "; ".join(str(p) for p in files),
        "n_soundings": n,
        "n_stations": int(table["station"].nunique()),
        "n_dropped": dropped,
        "n_hmf2_missing": int(table["hmf2"].isna().sum()),
        "min_confidence": "none" if min_confidence is None else float(min_confidence),
    })


def _read_table(path: Path, min_confidence: float | None) -> tuple[pd.DataFrame, int, int]:
    """One file's valid soundings, the number dropped and the hmF2 values set missing.

    Raises InputFileError listing every problem of the file.
    """
    try:
        raw = pd.read_csv(path, comment="#", dtype=str, skipinitialspace=True,
                          keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot be read as a CSV table ({exc}); give a "
                             "comma-separated table with a header row") from exc
    columns, problems = _columns(raw)
    if min_confidence is not None and "cs" not in columns:
        problems.append(f"no CS column for min_confidence={min_confidence:g}; add the "
                        "confidence scores or leave min_confidence=None")
    if problems:
        raise InputFileError(path, "; ".join(problems))
    values = {key: _numbers(raw[name], name, problems) for key, name in columns.items()
              if key not in ("station", "time")}
    time = _times(raw[columns["time"]], columns["time"], problems)
    lat, lon = values["lat"], values["lon"]
    if np.any(np.abs(lat[np.isfinite(lat)]) > 90.0):
        problems.append(f"column {columns['lat']!r} holds latitudes outside -90..90; check "
                        "which column is latitude")
    fof2 = _plausible(values["fof2"], FOF2_PLAUSIBLE_MHZ, columns["fof2"], problems,
                      "MHz: divide values in 0.1 MHz (URSI coding) by 10, or kHz by 1000")
    hmf2 = values.get("hmf2", np.full(len(raw), np.nan))
    kept_hmf2 = _plausible(hmf2, HMF2_PLAUSIBLE_KM, columns.get("hmf2", "hmF2"), problems,
                           "km: divide metres by 1000")
    if problems:
        raise InputFileError(path, "; ".join(problems))
    keep = np.isfinite(fof2) & ~np.isnat(time) & np.isfinite(lat) & np.isfinite(lon)
    if min_confidence is not None:
        keep &= values["cs"] >= min_confidence
    frame = pd.DataFrame({
        "station": (raw[columns["station"]].str.strip().to_numpy(str) if "station" in columns
                    else np.full(len(raw), path.stem)),
        "time": time, "lat": lat, "lon": lon, "fof2": fof2, "hmf2": kept_hmf2,
    })
    if "cs" in values:
        frame["cs"] = values["cs"]
    blanked = int(np.count_nonzero(keep & np.isfinite(hmf2) & np.isnan(kept_hmf2)))
    return frame[keep], int(np.count_nonzero(~keep)), blanked


def _columns(raw: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """The file's column of each quantity, and the problems (absent or ambiguous ones)."""
    found: dict[str, list[str]] = {}
    for name in raw.columns:
        key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
        for quantity, aliases in _ALIASES.items():
            if key in aliases:
                found.setdefault(quantity, []).append(str(name))
    problems = [f"no column for {quantity} (accepted names: {', '.join(_ALIASES[quantity])})"
                for quantity in _REQUIRED if quantity not in found]
    problems += [f"columns {names} all name {quantity}; keep one"
                 for quantity, names in found.items() if len(names) > 1]
    if problems:
        problems[-1] += f"; the columns are {[str(c) for c in raw.columns]}"
    return {quantity: names[0] for quantity, names in found.items()}, problems


def _numbers(column: pd.Series, name: str, problems: list[str]) -> np.ndarray:
    """A text column as float64, NaN where missing; a problem for text that is no number."""
    text = column.str.strip()
    missing = ((text == "") | text.str.lower().isin(_MISSING_TEXT)).to_numpy()
    values = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) & ~missing
    if bad.any():
        problems.append(
            f"column {name!r} holds {int(bad.sum())} value(s) that are not numbers (e.g. "
            f"{text[bad].iloc[0]!r} in data row {int(np.flatnonzero(bad)[0]) + 1}); write "
            "numbers, and leave missing values empty or write '---'"
        )
    return values


def _times(column: pd.Series, name: str, problems: list[str]) -> np.ndarray:
    """ISO 8601 times as naive UTC datetime64[ns] (NaT where empty); a problem if unparseable."""
    text = column.str.strip()
    text = text.where((text != "") & ~text.str.lower().isin(_MISSING_TEXT))
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna() & text.notna()
    if bad.any():
        problems.append(f"column {name!r} holds {int(bad.sum())} time(s) that are not ISO 8601 "
                        f"(e.g. {text[bad].iloc[0]!r}); write them as 2024-05-10T12:07:30Z")
    return parsed.dt.tz_convert(None).to_numpy("datetime64[ns]")


def _plausible(values: np.ndarray, bounds: tuple[float, float], name: str,
               problems: list[str], units_fix: str) -> np.ndarray:
    """``values`` with those outside ``bounds`` (fill values) set NaN.

    A median of the positive values outside ``bounds`` means other units: a problem.
    """
    low, high = bounds
    positive = values[np.isfinite(values) & (values > 0)]
    median = float(np.median(positive)) if positive.size else float("nan")
    if positive.size and not low <= median <= high:
        problems.append(f"column {name!r} has a median of {median:g}, outside {low:g}..{high:g}: "
                        f"give it in {units_fix}")
    inside = np.isfinite(values) & (values >= low) & (values <= high)
    return np.where(inside, values, np.nan)

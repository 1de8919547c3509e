"""The one table of CF-1.11 attributes of ionofield's coordinates and variables.

Readers (IONEX maps, RO profiles), the IRI cube, the target grid and the written
volumes all label their coordinates and variables from here, so a quantity reads
the same in every file ionofield writes. CF has no standard name for electron
density: those variables carry ``long_name`` and ``units`` only (an invented
``standard_name`` fails the CF check).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

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

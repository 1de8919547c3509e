"""The geomagnetic field's frame, as tables the network reads: modip and the dipole axis.

Storm phases, the equatorial anomaly and the auroral oval follow the magnetic field,
not the geographic grid. The network can read two magnetic coordinates
(``FitConfig.magnetic_inputs``), computed in torch from what this module prepares
with the IGRF (International Geomagnetic Reference Field, 14th generation, through
the pure-Python ``ppigrf`` package) for one epoch:

* the modified dip latitude (modip, Rawer 1963, as in NeQuick):
  ``tan(modip) = I / sqrt(cos(lat))`` with ``I`` the dip angle (radians) at
  :data:`MODIP_ALT_KM`. It is 0 on the dip equator and +-90 deg at the geographic
  poles, and orders the equatorial anomaly along the real, non-dipolar dip equator.
  :func:`modip_table` tabulates it on a global grid, which the network interpolates
  bilinearly (:func:`ionofield.nn.model.magnetic_features`).
* magnetic local time, from the centred dipole's axis (:func:`dipole_axis`).

Plain numpy; the IGRF coefficients are read once per process and epoch.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ionofield.errors import CoverageError
from ionofield.timeutil import to_datetime64

#: Shape of :func:`modip_table`: latitudes -90..90 deg every 1 deg (rows) and
#: longitudes -180..180 deg every 2 deg (columns, both ends kept).
MODIP_TABLE_SHAPE = (181, 181)
#: Altitude (km) of the dip angle that modip is computed from (NeQuick's 300 km).
MODIP_ALT_KM = 300.0
#: Epoch of a model's magnetic tables until :meth:`ionofield.RSTMRF.set_magnetic_epoch`
#: sets the campaign's (the IGRF-14 main-field epoch).
DEFAULT_MAGNETIC_EPOCH = np.datetime64("2025-01-01", "ns")


def modip(dip_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Modified dip latitude (Rawer 1963): ``tan(modip) = I / sqrt(cos(lat))``.

    Parameters
    ----------
    dip_deg
        Dip (inclination) angle of the field, deg, positive downward.
    lat_deg
        Geographic latitude, deg, same shape.

    Returns
    -------
    numpy.ndarray
        Modip in degrees, in [-90, 90]: the dip angle near the dip equator, the
        latitude's sign and +-90 at the poles.

    Examples
    --------
    >>> dip = np.degrees(np.arctan(2 * np.tan(np.radians([0.0, 30.0]))))  # axial dipole
    >>> np.round(modip(dip, np.array([0.0, 30.0])), 2)
    array([ 0.  , 42.64])
    """
    cos_lat = np.clip(np.cos(np.radians(lat_deg)), 0.0, None)
    return np.degrees(np.arctan2(np.radians(dip_deg), np.sqrt(cos_lat)))


@functools.cache
def _coefficients() -> tuple[pd.DataFrame, pd.DataFrame]:
    """IGRF Gauss coefficients g and h (nT), indexed by epoch, columns (n, m)."""
    from ppigrf.ppigrf import read_shc

    return read_shc()


def _igrf_time(epoch: np.datetime64) -> pd.Timestamp:
    """``epoch`` as a timestamp, checked to lie within the IGRF's epochs."""
    when = pd.Timestamp(to_datetime64(epoch, name="magnetic epoch")[()])
    first, last = _coefficients()[0].index[[0, -1]]
    if not first <= when <= last:
        raise CoverageError(
            f"magnetic epoch {when.date()}: the IGRF (ppigrf) covers {first.date()} to "
            f"{last.date()}; set the model's magnetic epoch within it, or fit with "
            "magnetic_inputs=False"
        )
    return when


@functools.lru_cache(maxsize=8)
def modip_table(epoch: np.datetime64) -> np.ndarray:
    """Modip on the global grid of :data:`MODIP_TABLE_SHAPE` at ``epoch``.

    Parameters
    ----------
    epoch
        The date of the field (``datetime64`` or anything :func:`numpy.datetime64`
        reads), within the IGRF's 1900-2030.

    Returns
    -------
    numpy.ndarray
        float32, shape [181, 181], degrees: rows latitudes -90..90, columns
        longitudes -180..180 (the last column repeats the first). Read-only.

    Raises
    ------
    CoverageError
        ``epoch`` lies outside the IGRF's epochs.
    """
    import ppigrf

    when = _igrf_time(epoch)
    n_lat, n_lon = MODIP_TABLE_SHAPE
    lat = np.linspace(-90.0, 90.0, n_lat)[1:-1]  # the poles' field has no east direction
    lon = np.linspace(-180.0, 180.0, n_lon)
    rows = [np.full(n_lon, -90.0)]
    # A few latitude rows at a time: ppigrf's design matrices for the whole grid at
    # once would take some 100 MB more memory.
    for block in np.array_split(lat, 12):
        lon_grid, lat_grid = np.meshgrid(lon, block)
        east, north, up = (b[0] for b in ppigrf.igrf(lon_grid, lat_grid, MODIP_ALT_KM, when))
        rows.extend(modip(np.degrees(np.arctan2(-up, np.hypot(east, north))), lat_grid))
    table = np.vstack([*rows, np.full(n_lon, 90.0)]).astype(np.float32)
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=8)
def dipole_axis(epoch: np.datetime64) -> np.ndarray:
    """Unit vector of the centred dipole's northern (boreal) geomagnetic pole.

    From the IGRF's degree-1 coefficients at ``epoch`` (linear in time between the
    IGRF's epochs): the pole lies along ``-(g11, h11, g10)`` in geocentric Cartesian
    coordinates (x to 0 deg E, y to 90 deg E, z to the north pole).

    Parameters
    ----------
    epoch
        The date of the field, within the IGRF's 1900-2030.

    Returns
    -------
    numpy.ndarray
        float64, shape [3]. Read-only.

    Raises
    ------
    CoverageError
        ``epoch`` lies outside the IGRF's epochs.

    Examples
    --------
    >>> x, y, z = dipole_axis(np.datetime64("2020-01-01"))
    >>> round(float(np.degrees(np.arcsin(z))), 2), round(float(np.degrees(np.arctan2(y, x))), 2)
    (80.59, -72.68)
    """
    when = _igrf_time(epoch)
    g, h = _coefficients()
    at = np.float64(when.value)
    epochs = g.index.as_unit("ns").asi8.astype(np.float64)
    g10, g11, h11 = (np.interp(at, epochs, table[key].to_numpy(np.float64))
                     for table, key in ((g, (1, 0)), (g, (1, 1)), (h, (1, 1))))
    axis = -np.array([g11, h11, g10])
    axis /= np.linalg.norm(axis)
    axis.flags.writeable = False
    return axis

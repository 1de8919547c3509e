"""Quantities derived from electron-density profiles: NmF2, hmF2 and column TEC.

They work on any DataArray with an ``alt`` dimension (km), lazily on dask arrays.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

#: Electrons per m2 in one TEC unit.
TECU = 1e16


def _peak(ne: np.ndarray, alt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak of profiles along the last axis, refined by a parabola through log Ne."""
    k = np.argmax(ne, axis=-1)
    k = np.clip(k, 1, ne.shape[-1] - 2)
    take = np.take_along_axis
    y0, y1, y2 = (np.log(np.maximum(take(ne, (k + d)[..., None], -1)[..., 0], 1e-30))
                  for d in (-1, 0, 1))
    a0, a1, a2 = alt[k - 1], alt[k], alt[k + 1]
    # Vertex of the parabola through the three points (non-uniform spacing allowed).
    denom = (a0 - a1) * (a0 - a2) * (a1 - a2)
    coef_a = (a2 * (y1 - y0) + a1 * (y0 - y2) + a0 * (y2 - y1)) / denom
    coef_b = (a2**2 * (y0 - y1) + a1**2 * (y2 - y0) + a0**2 * (y1 - y2)) / denom
    curved = coef_a < 0
    vertex = np.where(curved, -coef_b / np.where(curved, 2 * coef_a, 1.0), a1)
    vertex = np.clip(vertex, a0, a2)
    coef_c = y1 - coef_a * a1**2 - coef_b * a1
    log_peak = np.where(curved, coef_a * vertex**2 + coef_b * vertex + coef_c, y1)
    return np.exp(np.maximum(log_peak, y1)).astype(ne.dtype), vertex.astype(np.float32)


def peak_parameters(ne: xr.DataArray) -> xr.Dataset:
    """F2-peak density and height of each profile.

    The discrete maximum along ``alt`` is refined by the parabola through log Ne at
    it and its two neighbours (exact for a Chapman layer near its peak).

    Parameters
    ----------
    ne
        Electron density (m-3) with an ``alt`` dimension in km.

    Returns
    -------
    xarray.Dataset
        ``nmf2`` (m-3) and ``hmf2`` (km) on the other dimensions.

    Examples
    --------
    >>> alt = np.arange(100.0, 600.0, 10.0)
    >>> ne = xr.DataArray(1e12 * np.exp(-((alt - 303.0) / 80.0) ** 2), {"alt": alt}, ["alt"])
    >>> round(float(peak_parameters(ne)["hmf2"]), 1)
    303.0
    """
    alt = ne["alt"].values.astype(np.float64)
    nmf2, hmf2 = xr.apply_ufunc(
        _peak,
        ne,
        kwargs={"alt": alt},
        input_core_dims=[["alt"]],
        output_core_dims=[[], []],
        dask="parallelized",
        output_dtypes=[ne.dtype, np.float32],
    )
    nmf2.attrs = {"long_name": "F2-layer peak electron number density", "units": "m-3"}
    hmf2.attrs = {"long_name": "F2-layer peak height", "units": "km"}
    return xr.Dataset({"nmf2": nmf2, "hmf2": hmf2})


def column_tec(ne: xr.DataArray) -> xr.DataArray:
    """Vertical total electron content of profiles (trapezoid rule over ``alt``).

    Parameters
    ----------
    ne
        Electron density (m-3) with an ``alt`` dimension in km.

    Returns
    -------
    xarray.DataArray
        TEC in TECU (1e16 m-2) over the altitudes given (no topside extrapolation).

    Examples
    --------
    >>> alt = np.array([100.0, 200.0])
    >>> float(column_tec(xr.DataArray([1e11, 1e11], {"alt": alt}, ["alt"])))
    1.0
    """
    tec = ne.integrate("alt") * 1e3 / TECU
    tec.attrs = {"long_name": "vertical total electron content", "units": "TECU"}
    return tec

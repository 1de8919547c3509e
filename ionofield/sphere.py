"""Geometry of the sphere: longitudes, and the one interpolator every component uses.

Fields on a latitude-longitude grid (the IRI background, the TEC maps' column
misfit, the TEC path's direction fields, reconstructed volumes) are read at
scattered points in one way: the grid cell around each point is found per axis
(:func:`axis_cells` for an ordinary axis, :func:`longitude_cells` for the periodic
one), and :func:`interpolate` blends the cell corners multilinearly. Longitudes wrap
across the antimeridian whatever their range (0..360 included); a grid whose last
row stops short of a pole can be closed there by :func:`pole_rows` (the zonal mean
of the nearest row), so that the field is single-valued and continuous at the poles.

The kernels are plain numpy; :func:`interpolate` also blends torch tensors (with
gradients), given cells converted to tensors by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt


class Cells(NamedTuple):
    """Where queries fall along one grid axis.

    Attributes
    ----------
    lower, upper
        Integer indices of the grid points either side of each query (``upper`` may
        wrap to 0 on a periodic axis, and equals ``lower`` on a one-point axis).
    weight
        Weight of ``upper`` in [0, 1] (``lower`` takes ``1 - weight``), float64.
    """

    lower: Any
    upper: Any
    weight: Any


def fold_longitude(lon: npt.ArrayLike) -> np.ndarray:
    """Fold longitudes in degrees east to [-180, 180).

    Parameters
    ----------
    lon
        Longitudes in degrees, any range (0..360 included).

    Returns
    -------
    numpy.ndarray
        The same meridians in [-180, 180); 180 maps to -180.

    Examples
    --------
    >>> fold_longitude([0.0, 190.0, 360.0, -180.0])
    array([   0., -170.,    0., -180.])
    """
    lon = np.asarray(lon, dtype=np.float64)
    return (lon + 180.0) % 360.0 - 180.0


def axis_cells(axis: np.ndarray, q: npt.ArrayLike) -> Cells:
    """Cells of queries on an increasing axis; queries beyond its ends take the end value.

    Parameters
    ----------
    axis
        Strictly increasing coordinates, shape [N].
    q
        Query coordinates, any shape.

    Returns
    -------
    Cells
        Arrays of the shape of ``q``.

    Examples
    --------
    >>> axis_cells(np.array([0.0, 10.0, 30.0]), [5.0, 20.0, 40.0])
    Cells(lower=array([0, 1, 1]), upper=array([1, 2, 2]), weight=array([0.5, 0.5, 1. ]))
    """
    axis = np.asarray(axis, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if axis.size == 1:
        zero = np.zeros(q.shape, dtype=np.intp)
        return Cells(zero, zero, np.zeros(q.shape))
    q = np.clip(q, axis[0], axis[-1])
    steps = np.diff(axis)
    if np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        # Regular axis: index arithmetic, several times faster than a search.
        u = (q - axis[0]) / steps[0]
        i = np.minimum(u.astype(np.intp), axis.size - 2)
        return Cells(i, i + 1, u - i)
    i = np.clip(np.searchsorted(axis, q, side="right") - 1, 0, axis.size - 2)
    return Cells(i, i + 1, (q - axis[i]) / steps[i])


def global_meridians(lon: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The distinct meridians of a global longitude axis, folded and sorted.

    Parameters
    ----------
    lon
        Longitudes in degrees east, any range and order, shape [W]; a meridian given
        twice (IONEX's -180 and 180) counts once.

    Returns
    -------
    meridians : numpy.ndarray
        Increasing longitudes in [-180, 180), shape [W'].
    columns : numpy.ndarray
        Index into ``lon`` of each meridian (its first occurrence), shape [W'].

    Examples
    --------
    >>> global_meridians([0.0, 90.0, 180.0, 270.0, 360.0])
    (array([-180.,  -90.,    0.,   90.]), array([2, 3, 0, 1]))
    """
    return np.unique(fold_longitude(lon), return_index=True)


def longitude_cells(meridians: np.ndarray, q: npt.ArrayLike) -> Cells:
    """Cells of longitudes on a periodic axis, across the antimeridian.

    Parameters
    ----------
    meridians
        Distinct, increasing longitudes in degrees east that go round the globe
        (:func:`global_meridians`), shape [W]; they need not be evenly spaced.
    q
        Query longitudes in degrees east, any range and shape.

    Returns
    -------
    Cells
        ``upper`` wraps from the last meridian to the first.

    Examples
    --------
    >>> cells = longitude_cells(np.array([-180.0, -90.0, 0.0, 90.0]), [135.0, 360.0 + 45.0])
    >>> cells.lower.tolist(), cells.upper.tolist(), cells.weight.tolist()
    ([3, 2], [0, 3], [0.5, 0.5])
    """
    meridians = np.asarray(meridians, dtype=np.float64)
    closed = np.append(meridians, meridians[0] + 360.0)
    shifted = np.mod(np.asarray(q, dtype=np.float64) - meridians[0], 360.0) + meridians[0]
    cells = axis_cells(closed, shifted)
    return Cells(cells.lower, np.where(cells.upper == meridians.size, 0, cells.upper),
                 cells.weight)


def pole_rows(lat: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The latitude axis closed at the poles a grid stops within one row of.

    IONEX-like grids stop at +-87.5 degrees. A row added at the pole, holding the
    zonal mean of the nearest row (:func:`fill_pole_rows`), makes any field on the
    grid single-valued and continuous there, and :func:`axis_cells` then reaches
    the pole instead of holding the last row's value.

    Parameters
    ----------
    lat
        Increasing latitudes in degrees north, shape [H].

    Returns
    -------
    lat_closed : numpy.ndarray
        ``lat`` with -90 and / or 90 added, shape [H + south + north].
    south, north : int
        1 where a pole row was added at that end, else 0.

    Examples
    --------
    >>> pole_rows(np.array([-87.5, 0.0, 87.5]))
    (array([-90. , -87.5,   0. ,  87.5,  90. ]), 1, 1)
    """
    lat = np.asarray(lat, dtype=np.float64)
    step = np.diff(lat).max(initial=0.0)
    south = int(-90.0 < lat[0] <= -90.0 + step + 1e-6)
    north = int(90.0 - step - 1e-6 <= lat[-1] < 90.0)
    closed = np.concatenate([[-90.0] * south, lat, [90.0] * north])
    return closed, south, north


def fill_pole_rows(values: np.ndarray, south: int, north: int) -> None:
    """Set the pole rows of a field on a :func:`pole_rows` axis to their neighbours' zonal mean.

    Parameters
    ----------
    values
        Array whose last two axes are (latitude, longitude) on the closed axis; the
        pole rows are written in place.
    south, north
        As returned by :func:`pole_rows`.
    """
    if south:
        values[..., 0, :] = values[..., 1, :].mean(-1, keepdims=True)
    if north:
        values[..., -1, :] = values[..., -2, :].mean(-1, keepdims=True)


def interpolate(values: Any, cells: Sequence[Cells]) -> Any:
    """Multilinear interpolation of gridded values at cell positions.

    Parameters
    ----------
    values
        numpy array (C-contiguous) or torch tensor of shape
        ``[N_0, ..., N_{D-1}, *rest]``: a grid over its first D axes, with trailing
        axes ``rest`` carried along (vector components, say).
    cells
        One :class:`Cells` per grid axis, D in all; the cells of different axes
        broadcast together (scattered points: all of shape [P]; a whole grid: each
        shaped to its own axis, ``[Z, 1, 1]``, ``[Y, 1]``, ``[X]``). For a torch
        ``values`` their members are tensors on its device, the weights of its dtype.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The broadcast shape of the cells followed by ``rest``: float64 for numpy
        input, the input's dtype for torch (differentiable in ``values``).

    Examples
    --------
    >>> grid = np.array([[0.0, 10.0], [20.0, 30.0]])
    >>> axis = np.array([0.0, 1.0])
    >>> float(interpolate(grid, [axis_cells(axis, 0.5), axis_cells(axis, 0.25)]))
    12.5
    """
    dims = len(cells)
    shape = tuple(values.shape)
    rest = shape[dims:]
    strides = [int(np.prod(shape[k + 1 : dims], dtype=np.int64)) for k in range(dims)]
    return _blend(values.reshape(-1, *rest), cells, shape, strides, len(rest), 0, 0)


def _blend(
    flat: Any, cells: Sequence[Cells], shape: tuple[int, ...], strides: list[int], rest: int,
    axis: int, offset: Any,
) -> Any:
    """:func:`interpolate` over the axes from ``axis`` on, at flat offset ``offset``.

    A module function, not a closure calling itself: such a closure is a reference
    cycle that keeps the cells' arrays (tens of MB for a block of points) alive until
    the garbage collector happens to run.
    """
    if axis == len(cells):
        return flat[offset]
    cell = cells[axis]
    low = _blend(flat, cells, shape, strides, rest, axis + 1, offset + cell.lower * strides[axis])
    if shape[axis] == 1:
        return low
    high = _blend(flat, cells, shape, strides, rest, axis + 1, offset + cell.upper * strides[axis])
    weight = cell.weight[(...,) + (None,) * rest] if rest else cell.weight
    return low + weight * (high - low)

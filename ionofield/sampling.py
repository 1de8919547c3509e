"""How a fit draws its points: the held-out periods and the time-binned batches.

Both work on point indices and plain arrays (profile codes, whole hours), so they
are independent of the model and of xarray.
"""

from __future__ import annotations

import numpy as np


def split_by_period(
    profile: np.ndarray,
    hour: np.ndarray,
    fraction: float,
    block_hours: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Split point indices into training and validation sets by whole periods.

    The observation period is cut into blocks of ``block_hours``; a ``fraction`` of
    the blocks is held out, and with it every profile that starts in them. The
    validation error is then that of periods the model has not seen (profiles of
    the same hour share their errors, so a random-profile split would flatter it),
    and no profile has points on both sides.

    Parameters
    ----------
    profile
        Profile code of each point, shape [N].
    hour
        Hours since the first observation of each point, shape [N].
    fraction
        Fraction of the blocks held out (at least one, and one kept, when there
        are two or more).
    block_hours
        Length of a block in hours.
    rng
        Random generator.

    Returns
    -------
    train, val
        Point indices.
    """
    _, first, inverse = np.unique(profile, return_index=True, return_inverse=True)
    block = np.floor(hour[first] / block_hours).astype(np.int64)[inverse]
    blocks = np.unique(block)
    n_val = int(round(fraction * len(blocks)))
    if fraction > 0 and len(blocks) >= 2:
        n_val = min(max(n_val, 1), len(blocks) - 1)
    held = rng.choice(blocks, size=n_val, replace=False)
    is_val = np.isin(block, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def time_binned_batches(
    indices: np.ndarray,
    hour_bin: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    hours_per_batch: int = 1,
) -> list[np.ndarray]:
    """Shuffle points so that each batch holds few distinct hours.

    The whole hours are dealt at random into groups of ``hours_per_batch``; the
    points of a group are shuffled together, and the groups, one after another, are
    cut into batches. A batch then spans about ``hours_per_batch`` hours (one more
    where it straddles two groups), so the ConvLSTM and LSTM run for few hours per
    batch, while the gradient of a step still averages over several hours.

    Parameters
    ----------
    indices
        Point indices to batch, shape [N].
    hour_bin
        Whole hour of every point (indexed by ``indices``).
    batch_size
        Points per batch (the last batch may be smaller).
    rng
        Random generator.
    hours_per_batch
        Hours whose points are mixed together.

    Returns
    -------
    list of numpy.ndarray
        Batches of point indices covering ``indices`` exactly once.
    """
    bins = hour_bin[indices]
    order = rng.permutation(np.unique(bins))
    group = np.empty(bins.max() + 1, dtype=np.int64)
    group[order] = np.arange(len(order)) // hours_per_batch
    shuffled = rng.permutation(len(indices))
    grouped = shuffled[np.argsort(group[bins[shuffled]], kind="stable")]
    ordered = indices[grouped]
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]

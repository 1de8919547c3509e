"""How a fit draws its points: the held-out periods and the batches of each step.

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


class ProfileSampler:
    """Draws batches of points that weigh every profile alike, a few hours per batch.

    A step's batch comes from ``hours_per_batch`` whole hours, drawn with probability
    proportional to the number of profiles in them; each point of the batch then
    draws one of those hours' profiles uniformly and one of its levels uniformly
    (with replacement). Every profile thus weighs the same whatever its number of
    levels (a 400-level COSMIC-2 profile as much as a 100-level one), every step costs
    the same whatever the campaign's density, and the ConvLSTM and LSTM run for few
    hours per step.

    Parameters
    ----------
    indices
        Point indices to draw from, shape [N].
    profile
        Profile code of every point (indexed by ``indices``).
    hour_bin
        Whole hour of every point (indexed by ``indices``). A profile belongs to the
        hour of its first point.

    Examples
    --------
    >>> profile = np.repeat([0, 1, 2], [400, 100, 100])  # one dense profile, two sparse
    >>> sampler = ProfileSampler(np.arange(600), profile, np.zeros(600, dtype=int))
    >>> batch = sampler.batch(np.random.default_rng(0), 30_000)
    >>> np.round(np.bincount(profile[batch]) / batch.size, 1)
    array([0.3, 0.3, 0.3])
    """

    def __init__(self, indices: np.ndarray, profile: np.ndarray, hour_bin: np.ndarray) -> None:
        codes, inverse = np.unique(profile[indices], return_inverse=True)
        first_hour = np.full(codes.size, np.iinfo(np.int64).max)
        np.minimum.at(first_hour, inverse, hour_bin[indices])
        order = np.lexsort((inverse, first_hour[inverse]))
        self.points = indices[order]
        sorted_codes = inverse[order]
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        self.profile_start = starts
        self.profile_size = np.diff(np.r_[starts, sorted_codes.size])
        profile_hour = first_hour[sorted_codes[starts]]
        self.hours, self.hour_first, self.hour_profiles = np.unique(
            profile_hour, return_index=True, return_counts=True
        )
        self.hour_weight = self.hour_profiles / self.hour_profiles.sum()

    @property
    def n_profiles(self) -> int:
        """Number of profiles drawn from."""
        return int(self.profile_start.size)

    def batch(
        self, rng: np.random.Generator, size: int, hours_per_batch: int = 1
    ) -> np.ndarray:
        """One batch: ``size`` point indices from ``hours_per_batch`` random hours."""
        n_hours = min(hours_per_batch, self.hours.size)
        chosen = rng.choice(self.hours.size, size=n_hours, replace=False, p=self.hour_weight)
        counts = self.hour_profiles[chosen]
        # A profile among the chosen hours', uniformly: its hour, then its rank there.
        pick = rng.integers(0, counts.sum(), size)
        bounds = np.cumsum(counts)
        slot = np.searchsorted(bounds, pick, side="right")
        rank = pick - (bounds[slot] - counts[slot])
        profile = self.hour_first[chosen][slot] + rank
        level = (rng.random(size) * self.profile_size[profile]).astype(np.int64)
        return self.points[self.profile_start[profile] + level]

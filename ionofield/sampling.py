"""How a fit draws its points: the held-out periods and the batches of each step.

They work on point indices and plain arrays (runs of points, profile codes, whole
hours), so they are independent of the model and of xarray.
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
    """Split runs of points into training and validation sets by whole periods.

    The observation period is cut into blocks of ``block_hours``; a ``fraction`` of
    the blocks is held out, and with it every profile that starts in them. The
    validation error is then that of periods the model has not seen (profiles of
    the same hour share their errors, so a random-profile split would flatter it),
    and no profile has points on both sides.

    Parameters
    ----------
    profile
        Profile code of each run (:class:`~ionofield.observations.ProfileRuns`; a
        single point is a run too), shape [R].
    hour
        Hours since the first observation of each run's first point, shape [R].
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
        Run indices.
    """
    block = np.floor(_profile_start(profile, hour) / block_hours).astype(np.int64)
    blocks = np.unique(block)
    n_val = int(round(fraction * len(blocks)))
    if fraction > 0 and len(blocks) >= 2:
        n_val = min(max(n_val, 1), len(blocks) - 1)
    held = rng.choice(blocks, size=n_val, replace=False)
    is_val = np.isin(block, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def split_tail(
    profile: np.ndarray, hour: np.ndarray, tail_hours: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split runs of points into those before the last ``tail_hours`` and the tail.

    A profile belongs to the tail when its first point's hour lies in the last
    ``tail_hours`` of the observation period, taken to end with the whole hour of the
    latest such start; every run of the profile goes with it. Held out for
    validation, the tail shows the errors of hours after the data end, those of a
    forecast.

    Parameters
    ----------
    profile
        Profile code of each run (:class:`~ionofield.observations.ProfileRuns`; a
        single point is a run too), shape [R].
    hour
        Hours since the first observation of each run's first point, shape [R].
    tail_hours
        Length of the tail in hours, >= 0 (0: no tail).

    Returns
    -------
    kept, tail
        Run indices.

    Examples
    --------
    >>> profile = np.array([0, 1, 1, 2, 3])
    >>> hour = np.array([0, 40, 43, 44, 47])  # profile 1 starts at 40 h, before the tail
    >>> split_tail(profile, hour, 6.0)  # the hours 42-47
    (array([0, 1, 2]), array([3, 4]))
    """
    start = _profile_start(profile, hour).astype(np.float64)
    end = np.floor(start.max(initial=-np.inf)) + 1.0
    in_tail = start >= end - tail_hours
    return np.flatnonzero(~in_tail), np.flatnonzero(in_tail)


def _profile_start(profile: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """The hour of each run's profile's first run (a profile goes by its start), shape [R]."""
    _, first, inverse = np.unique(profile, return_index=True, return_inverse=True)
    return np.asarray(hour)[first][inverse]


class ProfileSampler:
    """Draws batches of points that weigh every profile alike, a few hours per batch.

    A step's batch comes from ``hours_per_batch`` whole hours, drawn with probability
    proportional to the number of profiles in them; each point of the batch then
    draws one of those hours' profiles uniformly and one of its levels uniformly
    (with replacement). Every profile thus weighs the same whatever its number of
    levels (a 400-level COSMIC-2 profile as much as a 100-level one), every step costs
    the same whatever the campaign's density, and the ConvLSTM and LSTM run for few
    hours per step.

    The sampler knows the points as runs (consecutive point indices of one profile,
    :class:`~ionofield.observations.ProfileRuns`), so its memory follows the number
    of profiles, not of points.

    Parameters
    ----------
    start, length
        First point index and number of points of each run, shape [R].
    profile
        Profile code of each run.
    hour_bin
        Whole hour of each run's first point. A profile belongs to the hour of its
        first point.

    Examples
    --------
    >>> start, length = np.array([0, 400, 500]), np.array([400, 100, 100])
    >>> sampler = ProfileSampler(start, length, np.arange(3), np.zeros(3, dtype=int))
    >>> batch = sampler.batch(np.random.default_rng(0), 30_000)
    >>> np.round(np.bincount(np.searchsorted(start, batch, "right") - 1) / batch.size, 1)
    array([0.3, 0.3, 0.3])
    """

    def __init__(self, start: np.ndarray, length: np.ndarray, profile: np.ndarray,
                 hour_bin: np.ndarray) -> None:
        codes, inverse = np.unique(profile, return_inverse=True)
        first_hour = np.full(codes.size, np.iinfo(np.int64).max)
        np.minimum.at(first_hour, inverse, hour_bin)
        order = np.lexsort((np.asarray(start), inverse, first_hour[inverse]))
        self.run_start = np.asarray(start, dtype=np.int64)[order]
        self.run_length = np.asarray(length, dtype=np.int64)[order]
        run_end = np.cumsum(self.run_length)
        sorted_codes = inverse[order]
        first_run = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        self.profile_start = (run_end - self.run_length)[first_run]
        self.profile_size = np.diff(np.r_[self.profile_start, run_end[-1:]])
        profile_hour = first_hour[sorted_codes[first_run]]
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
        return run_points(self.run_start, self.run_length, self.profile_start[profile] + level)


def run_points(start: np.ndarray, length: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Point indices at ``places`` in runs of consecutive points laid end to end.

    Parameters
    ----------
    start, length
        First point index and number of points of each run, shape [R], in the order
        they are laid.
    places
        Places in 0 .. ``length.sum()`` - 1.

    Examples
    --------
    >>> run_points(np.array([20, 0, 10]), np.array([4, 3, 2]), np.array([0, 3, 4, 8]))
    array([20, 23,  0, 11])
    """
    end = np.cumsum(length)
    run = np.searchsorted(end, places, side="right")
    return start[run] + places - (end[run] - length[run])

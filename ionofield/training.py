"""Fitting R-STMRF to a campaign: :func:`fit`.

The loop minimises, per batch of observed points,

``loss = data + w_chapman * chapman + w_tec_direction * direction + w_tec_anchor * anchor``

* ``data``: heteroscedastic Gaussian NLL (or MSE) of log10 Ne;
* ``chapman``: squared second altitude derivative of the residual (double autograd),
  at random collocation points spread over the globe and the whole campaign period,
  hours without profiles included;
* ``direction``: ``1 - cos`` between the horizontal gradient of the model's log10 Ne
  and the TEC path's direction field, both in the spherical metric, at the same
  points within ``physics_alt_range``;
* ``anchor``: mean squared departure of the direction head from the unit
  finite-difference TEC gradient it starts from, so that the direction loss cannot be
  satisfied by any direction.

Batches come from a time-binned sampler, so each batch holds few distinct hours and
the ConvLSTM and LSTM run once per distinct hour, not per point.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize
import torch
import xarray as xr

from ionofield._files import atomic_path
from ionofield._threads import torch_threads
from ionofield._version import __version__
from ionofield.background import campaign_background
from ionofield.config import FitConfig
from ionofield.drivers import HourlyDrivers, TimeInputs
from ionofield.errors import ConfigError
from ionofield.losses import (
    chapman_smoothness,
    direction_consistency,
    gaussian_nll,
    horizontal_gradient_metric,
    mse,
)
from ionofield.nn.model import RSTMRF, read_payload
from ionofield.nn.recurrent import sample_direction
from ionofield.reconstruct import ColumnMisfit
from ionofield.timeutil import day_of_year, to_datetime64, universal_time_hours

logger = logging.getLogger(__name__)

#: Tag identifying a training checkpoint (model, optimiser, history, random state).
TRAINING_CHECKPOINT_FORMAT = "ionofield-rstmrf-training/2"
#: Step (deg) of the central differences that give the background's horizontal gradient.
_BG_GRADIENT_STEP_DEG = 0.25


@dataclass(frozen=True)
class ObservationArrays:
    """A campaign's observations as arrays, with the background at each point.

    Attributes
    ----------
    coords
        float32 [N, 4]: latitude, longitude (deg), altitude (km), UT (hours).
    time_id
        int64 [N]: index of each point's time in ``times``.
    times
        datetime64[ns] [U]: distinct observation times.
    hour_bin
        int64 [N]: the whole hour at or before each point (for the sampler).
    target
        float32 [N]: observed log10 Ne.
    background
        float32 [N]: log10 of the background Ne.
    profile
        int64 [N]: profile code of each point.
    """

    coords: np.ndarray
    time_id: np.ndarray
    times: np.ndarray
    hour_bin: np.ndarray
    target: np.ndarray
    background: np.ndarray
    profile: np.ndarray

    @classmethod
    def from_campaign(cls, ds: xr.Dataset, bg_field: Any) -> ObservationArrays:
        """Gather the observations of a campaign and the background at them.

        Parameters
        ----------
        ds
            A campaign Dataset (:func:`ionofield.campaign`).
        bg_field
            A :class:`~ionofield.background.BackgroundField`.

        Returns
        -------
        ObservationArrays
        """
        time = to_datetime64(ds["obs_time"].values)
        lat = ds["obs_lat"].values.astype(np.float64)
        lon = ds["obs_lon"].values.astype(np.float64)
        alt = ds["obs_alt"].values.astype(np.float64)
        times, time_id = np.unique(time, return_inverse=True)
        _, profile = np.unique(ds["obs_profile"].values.astype(str), return_inverse=True)
        hours = (time - time.min().astype("datetime64[h]")) // np.timedelta64(1, "h")
        return cls(
            coords=point_coords(time, alt, lat, lon),
            time_id=time_id.astype(np.int64),
            times=times,
            hour_bin=hours.astype(np.int64),
            target=np.log10(ds["ne"].values).astype(np.float32),
            background=bg_field.log10_at(time, alt, lat, lon).astype(np.float32),
            profile=profile.astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.target)


def point_coords(time: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The network's coordinates of points.

    Parameters
    ----------
    time, alt, lat, lon
        The points, each shape [N] (datetime64, km, degrees).

    Returns
    -------
    numpy.ndarray
        float32 [N, 4]: latitude, longitude, altitude and universal time in hours.
    """
    return np.stack([lat, lon, alt, universal_time_hours(time)], axis=-1).astype(np.float32)


def background_gradient(
    bg_field: Any, time: np.ndarray, alt: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Horizontal gradient of the log10 background at points.

    Parameters
    ----------
    bg_field
        A :class:`~ionofield.background.BackgroundField`.
    time, alt, lat, lon
        The points, each shape [N] (datetime64, km, degrees).

    Returns
    -------
    numpy.ndarray
        float32 [N, 2]: d/dlat and d/dlon of log10 Ne per degree (central differences
        of ``_BG_GRADIENT_STEP_DEG``, one-sided at the poles).
    """
    step = _BG_GRADIENT_STEP_DEG
    lat_lo, lat_hi = np.clip(lat - step, -90, 90), np.clip(lat + step, -90, 90)

    def at(lat_q: np.ndarray, lon_q: np.ndarray) -> np.ndarray:
        return bg_field.log10_at(time, alt, lat_q, lon_q)

    gradient = np.stack(
        [
            (at(lat_hi, lon) - at(lat_lo, lon)) / np.maximum(lat_hi - lat_lo, 1e-9),
            (at(lat, lon + step) - at(lat, lon - step)) / (2 * step),
        ],
        axis=-1,
    )
    return gradient.astype(np.float32)


def sigma_scale(
    error: np.ndarray, log_var: np.ndarray, extra_var: np.ndarray | None = None
) -> float:
    """The constant factor on sigma that minimises the Gaussian NLL of errors.

    Without ``extra_var`` it is the root mean square of the z-scores
    ``error / sigma``: after it, sigma is the standard deviation of the errors it is
    fitted on (the "std scaling" calibration of regression uncertainty, Levi et al.
    2019). With it, the variance of each error is ``(factor * sigma)**2 + extra_var``
    (the TEC maps' column misfit squared), and the factor is found numerically.

    Parameters
    ----------
    error
        Observed minus predicted log10 Ne, shape [N].
    log_var
        Predicted log-variance, shape [N].
    extra_var
        Variance added to each point's after the factor, shape [N].

    Returns
    -------
    float

    Examples
    --------
    >>> round(sigma_scale(np.array([0.3, -0.1]), np.log([0.01, 0.01])), 4)  # sqrt((9 + 1) / 2)
    2.2361
    >>> # mean squared error 0.05 = factor**2 * 0.01 + 0.04
    >>> round(sigma_scale(np.array([0.3, -0.1]), np.log([0.01, 0.01]), np.full(2, 0.04)), 3)
    1.0
    """
    error2 = error.astype(np.float64) ** 2
    var = np.exp(np.asarray(log_var, dtype=np.float64))
    if extra_var is None:
        return float(np.sqrt(np.mean(error2 / var)))

    def nll(log_factor: float) -> float:
        total = np.exp(2.0 * log_factor) * var + extra_var
        return float(np.mean(np.log(total) + error2 / total))

    best = scipy.optimize.minimize_scalar(nll, bounds=(-10.0, 10.0), method="bounded")
    return float(np.exp(best.x))


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


class WeightAverage:
    """Exponential moving average of a model's weights over the optimiser's steps.

    The time-binned sampler shows the optimiser a few hours at a time, so the weights
    after any one step lean towards the hours just seen; their average over the last
    ``1 / (1 - decay)`` steps or so has seen them all. The average starts from zero and
    is divided by ``1 - decay**steps`` (as Adam's moments are), so it is the weighted
    mean of the weights seen so far even after a few steps.

    Parameters
    ----------
    model
        The model being trained.
    decay
        Weight of the running average at each step, in [0, 1); 0 keeps the latest
        weights, and then the average costs nothing.

    Examples
    --------
    >>> layer = torch.nn.Linear(1, 1, bias=False)
    >>> average = WeightAverage(layer, decay=0.5)
    >>> for value in (1.0, 3.0):
    ...     _ = layer.weight.data.fill_(value)
    ...     average.update()
    >>> with average.applied():
    ...     round(float(layer.weight), 4)
    2.3333
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = model
        self.decay = decay
        self.steps = 0
        self.shadow = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (after a step)."""
        if not self.decay:
            return
        self.steps += 1
        for name, value in self.model.state_dict().items():
            self.shadow[name].mul_(self.decay).add_(value, alpha=1.0 - self.decay)

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged weights, keyed as the model's ``state_dict``."""
        if not self.steps:
            return copy.deepcopy(self.model.state_dict())
        scale = 1.0 / (1.0 - self.decay**self.steps)
        return {name: value * scale for name, value in self.shadow.items()}

    @contextlib.contextmanager
    def applied(self) -> Any:
        """Put the averaged weights into the model for the duration of the block."""
        if not self.steps:  # nothing averaged: the model's weights are the average
            yield self.model
            return
        current = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(self.weights())
        try:
            yield self.model
        finally:
            self.model.load_state_dict(current)


class _Trainer:
    """One fit: the model, its optimiser and the per-batch loss (internal)."""

    def __init__(
        self, model: RSTMRF, data: ObservationArrays, drivers: HourlyDrivers, bg_field: Any
    ) -> None:
        self.model = model
        self.config = model.config
        self.data = data
        self.drivers = drivers
        self.bg_field = bg_field
        # Collocation points are drawn within the observed latitudes and altitudes.
        lat, alt = data.coords[:, 0], data.coords[:, 2]
        self.sin_lat_range = tuple(np.sin(np.radians([float(lat.min()), float(lat.max())])))
        self.alt_range = (float(alt.min()), float(alt.max()))
        self.use_tec = self.config.w_tec_direction > 0 and drivers.tec is not None
        if self.use_tec:
            self.tec_lat = torch.from_numpy(drivers.tec_lat)
            self.tec_lon = torch.from_numpy(drivers.tec_lon)
            self.grid = drivers.tec_grid

    def network(
        self, coords: torch.Tensor, times: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, TimeInputs, np.ndarray]:
        """Residual and log-variance at points of the given times, with the time inputs."""
        distinct, inverse = np.unique(times, return_inverse=True)
        inputs = self.drivers.time_inputs(distinct, self.config.env_len)
        codes = self.model.time_code(inputs.features, inputs.history, inputs.weights)
        residual, log_var = self.model(coords, codes, torch.from_numpy(inverse))
        return residual, log_var, inputs, inverse

    def predict(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted log10 Ne and log-variance at observed points ``idx``."""
        data = self.data
        residual, log_var, _, _ = self.network(
            torch.from_numpy(data.coords[idx]), data.times[data.time_id[idx]]
        )
        return torch.from_numpy(data.background[idx]) + residual, log_var

    def data_loss(self, pred: torch.Tensor, log_var: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        target = torch.from_numpy(self.data.target[idx])
        if self.config.loss == "nll":
            return gaussian_nll(pred, log_var, target)
        return mse(pred, target)

    def collocation_points(
        self, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Random points where the physics losses run, over the whole campaign.

        ``collocation_fraction * batch_size`` points, uniform on the sphere within the
        observed latitudes and altitudes, at ``collocation_hours`` random whole hours
        of the campaign (the hours of its TEC maps, where the direction field is the
        map's own, so the ConvLSTM runs once per such hour). They include hours
        without profiles, where the TEC maps are the only data.

        Returns
        -------
        coords, times, background_gradient
            float32 [M, 4] network coordinates, datetime64 [M], float32 [M, 2].
        """
        config, hours = self.config, self.drivers.hours
        n = max(1, int(round(config.collocation_fraction * config.batch_size)))
        instants = rng.choice(hours, size=min(config.collocation_hours, len(hours)), replace=False)
        times = instants[rng.integers(0, len(instants), n)]
        lat_q = np.degrees(np.arcsin(rng.uniform(*self.sin_lat_range, n)))
        lon_q = rng.uniform(-180.0, 180.0, n)
        alt_q = rng.uniform(*self.alt_range, n)
        gradient = background_gradient(self.bg_field, times, alt_q, lat_q, lon_q)
        return point_coords(times, alt_q, lat_q, lon_q), times, gradient

    def batch_losses(self, idx: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """All loss terms of one training batch."""
        config = self.config
        pred, log_var = self.predict(idx)
        losses = {"data": self.data_loss(pred, log_var, idx)}
        if config.w_chapman == 0 and not self.use_tec:
            return losses
        points, times, bg_gradient = self.collocation_points(rng)
        coords = torch.from_numpy(points).requires_grad_(True)
        residual, _, inputs, inverse = self.network(coords, times)
        if config.w_chapman > 0:
            losses["chapman"] = chapman_smoothness(
                residual, coords, alt_index=2, scale_km=config.chapman_scale_km
            )
        if self.use_tec:
            losses.update(self.tec_losses(residual, coords, bg_gradient, inputs, inverse))
        return losses

    def tec_losses(
        self,
        residual: torch.Tensor,
        coords: torch.Tensor,
        bg_gradient: np.ndarray,
        inputs: TimeInputs,
        time_index: np.ndarray,
    ) -> dict[str, torch.Tensor]:
        """Direction consistency with the TEC path, and the head's anchor, at points."""
        config = self.config
        (grad,) = torch.autograd.grad(residual.sum(), coords, create_graph=True)
        lat, lon, alt = (coords[:, k].detach() for k in range(3))
        total = grad[:, :2] + torch.from_numpy(bg_gradient)
        metric = horizontal_gradient_metric(total[:, 0], total[:, 1], lat)
        i0, i1, w0, w1 = (w[time_index] for w in inputs.weights)
        # The TEC path runs only for the hours with weight (one per whole-hour point).
        rows = np.concatenate([i0.numpy(), i1.numpy()])
        used = np.concatenate([w0.numpy(), w1.numpy()]) > 0
        hours, local = np.unique(inputs.hours[rows[used]], return_inverse=True)
        slot = np.zeros(len(rows), dtype=np.int64)
        slot[used] = local
        seqs = self.drivers.tec_sequences(hours, config.seq_len)
        direction, reference = self.model.tec_direction(seqs, self.tec_lat, self.tec_lon)
        n = len(time_index)
        k0, k1 = torch.from_numpy(slot[:n]), torch.from_numpy(slot[n:])
        sampled = w0[:, None] * sample_direction(direction, k0, lat, lon, **self.grid) + w1[
            :, None
        ] * sample_direction(direction, k1, lat, lon, **self.grid)
        lo, hi = config.physics_alt_range
        inside = (alt >= lo) & (alt <= hi)
        consistency = (
            direction_consistency(metric[inside], sampled[inside])
            if bool(inside.any())
            else metric.sum() * 0.0
        )
        return {
            "tec_direction": consistency,
            "tec_anchor": ((direction - reference) ** 2).mean(),
        }

    def total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        config = self.config
        weights = {
            "data": 1.0,
            "chapman": config.w_chapman,
            "tec_direction": config.w_tec_direction,
            "tec_anchor": config.w_tec_anchor,
        }
        return sum(weights[name] * value for name, value in losses.items())

    @torch.no_grad()
    def predictions(self, idx: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Predicted log10 Ne and log-variance at points ``idx``, in eval mode."""
        self.model.eval()
        parts = [self.predict(idx[s : s + chunk]) for s in range(0, len(idx), chunk)]
        self.model.train()
        return tuple(np.concatenate([p[k].numpy() for p in parts]) for k in range(2))

    def evaluate(self, idx: np.ndarray) -> dict[str, float]:
        """Validation data loss and RMSE of log10 Ne (model and background).

        The NLL is taken after the constant sigma factor that minimises it (the
        variance times the mean squared z-score): sigma fitted on the training
        hours is too small for unseen ones whatever the epoch, and the factor is
        calibrated after the fit anyway, so the epochs compare by the quality of the
        mean and of sigma's shape, not by how overconfident sigma has grown.
        """
        pred, log_var = self.predictions(idx)
        target = self.data.target[idx]
        if self.config.loss == "nll":
            log_var = log_var + np.float32(2.0 * np.log(sigma_scale(target - pred, log_var)))
        with torch.no_grad():
            loss = self.data_loss(torch.from_numpy(pred), torch.from_numpy(log_var), idx)
        bg_error = self.data.background[idx] - target
        return {
            "val_loss": float(loss),
            "val_rmse": float(np.sqrt(np.mean((pred - target).astype(np.float64) ** 2))),
            "val_rmse_background": float(np.sqrt(np.mean(bg_error.astype(np.float64) ** 2))),
        }

    def sigma_factor(self, idx: np.ndarray, extra_var: np.ndarray | None = None) -> float:
        """:func:`sigma_scale` of the observations at ``idx``."""
        pred, log_var = self.predictions(idx)
        return sigma_scale(self.data.target[idx] - pred, log_var, extra_var)

    def column_misfit_variance(self, idx: np.ndarray) -> tuple[float, np.ndarray]:
        """The campaign's median column misfit, and the misfit's variance at ``idx``.

        The misfit (:class:`~ionofield.reconstruct.ColumnMisfit`) is computed at every
        hour of the campaign; its median is the offset taken off before it enters sigma.
        """
        data, drivers = self.data, self.drivers
        misfit = ColumnMisfit.compute(self.model, drivers, self.bg_field,
                                      np.arange(drivers.n_hours))
        offset = float(np.median(misfit.values))
        return offset, misfit.variance(drivers, data.times[data.time_id[idx]],
                                       data.coords[idx, 0], data.coords[idx, 1], offset)


def fit(
    ds: xr.Dataset,
    *,
    config: FitConfig | None = None,
    background: xr.Dataset | xr.DataArray | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    **options: Any,
) -> RSTMRF:
    """Fit R-STMRF to a campaign's observations.

    Parameters
    ----------
    ds
        A campaign Dataset from :func:`ionofield.campaign`: observations on ``obs``
        and the hourly drivers ``tec``, ``kp``, ``f107``, ``f107_81``.
    config
        Options; the seed's defaults when omitted. ``**options`` override its fields
        (``fit(ds, epochs=10)``).
    background
        Any background electron density on ``(time, alt, lat, lon)`` in m-3 (e.g. another
        model's output); IRI through PyIRI on the config's cube when omitted. Pass the
        same one to :func:`ionofield.reconstruct`.
    seed
        Seeds the initialisation, the split and the batches: two fits with the same
        seed on the same machine give identical models.
    checkpoint
        Path of the training checkpoint, written atomically every
        ``config.checkpoint_every`` epochs and at the end (model, optimiser, history,
        random state).
    resume
        A training checkpoint to continue from; the run then goes on to
        ``config.epochs`` and ends exactly as an uninterrupted run would.
    progress
        Show a tqdm progress bar with the running losses.
    cache_dir
        Disk cache of the IRI background.
    threads
        torch intra-op threads during the fit (default: torch's setting). Batches of a
        few thousand points gain little from several threads, and on a busy machine
        threads waiting for each other can cost far more: 1 is often fastest.
    **options
        :class:`~ionofield.config.FitConfig` fields.

    Returns
    -------
    RSTMRF
        The fitted model (best validation epoch), in eval mode; ``model.history`` is
        the per-epoch loss table (pandas DataFrame).
    """
    config = _resolve_config(config, options)
    with torch_threads(threads):
        return _fit(ds, config, background, seed, checkpoint, resume, progress, cache_dir)


def _fit(
    ds: xr.Dataset,
    config: FitConfig,
    background: Any,
    seed: int,
    checkpoint: Any,
    resume: Any,
    progress: bool,
    cache_dir: Any,
) -> RSTMRF:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    drivers = HourlyDrivers.from_campaign(ds)
    bg_field, background_info = campaign_background(
        drivers.hours, ds["f107"], config=config, background=background, cache_dir=cache_dir
    )
    data = ObservationArrays.from_campaign(ds, bg_field)
    train_idx, val_idx = split_by_period(
        data.profile, data.hour_bin, config.val_fraction, config.val_block_hours, rng
    )
    held_out = len(val_idx) > 0
    if not held_out:
        val_idx = train_idx
    model = RSTMRF(config)
    span = data.times.max() - data.times.min()
    if span / np.timedelta64(1, "D") < config.season_min_days:
        model.pin_season(float(day_of_year(data.times.min() + span / 2)))
    model.train()
    trainer = _Trainer(model, data, drivers, bg_field)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(train_idx) // config.batch_size)
    window = config.weight_average_epochs * steps_per_epoch
    average = WeightAverage(model, decay=max(0.0, 1.0 - 1.0 / window) if window else 0.0)
    state = _FitState()
    if resume is not None:
        state = _load_training_checkpoint(resume, model, optimizer, average, rng, config)
    epochs = range(state.epoch, config.epochs)
    bar = _progress_bar(len(epochs), progress)
    for epoch in epochs:
        sums: dict[str, float] = {}
        batches = time_binned_batches(
            train_idx, data.hour_bin, config.batch_size, rng, config.batch_hours
        )
        for idx in batches:
            losses = trainer.batch_losses(idx, rng)
            total = trainer.total(losses)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            average.update()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(idx)
        row = {"epoch": epoch + 1}
        row.update({name: value / len(train_idx) for name, value in sums.items()})
        with average.applied():
            row.update(trainer.evaluate(val_idx))
        state.history.append(row)
        if row["val_loss"] < state.best_loss:
            state.best_loss, state.best_epoch = row["val_loss"], epoch + 1
            state.best_state = average.weights()
        state.epoch = epoch + 1
        bar.update(1)
        bar.set_postfix(loss=f"{row['data']:.4f}", val_rmse=f"{row['val_rmse']:.4f}")
        stop = config.patience > 0 and state.epoch - state.best_epoch >= config.patience
        if checkpoint is not None and (
            state.epoch % config.checkpoint_every == 0 or stop or state.epoch == config.epochs
        ):
            _save_training_checkpoint(checkpoint, model, optimizer, average, rng, state)
        if stop:
            logger.info("early stop at epoch %d (best %d)", state.epoch, state.best_epoch)
            break
    bar.close()
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    sigma_factor, offset, extra_var = 1.0, float("nan"), None
    if held_out:
        if drivers.tec is not None:
            offset, extra_var = trainer.column_misfit_variance(val_idx)
        sigma_factor = trainer.sigma_factor(val_idx, extra_var)
    model.calibrate_sigma(sigma_factor, offset)
    best = min(state.history, key=lambda r: r["val_loss"]) if state.history else {}
    model.info.update(
        period=[str(drivers.hours[0]), str(drivers.hours[-1])],
        n_obs=len(data),
        n_train=len(train_idx),
        n_val=len(val_idx),
        seed=seed,
        background=background_info,
        best_epoch=state.best_epoch,
        val_rmse=best.get("val_rmse"),
        val_rmse_background=best.get("val_rmse_background"),
        sigma_factor=sigma_factor,
        history=state.history,
        ionofield_version=__version__,
    )
    return model.eval()


def history_table(model: RSTMRF) -> pd.DataFrame:
    """The per-epoch loss history of a fitted model as a table.

    Parameters
    ----------
    model
        A model returned by :func:`fit`.

    Returns
    -------
    pandas.DataFrame
        One row per epoch (index ``epoch``): each training loss term, ``val_loss``,
        ``val_rmse`` and the background's ``val_rmse_background``.
    """
    return pd.DataFrame(model.info.get("history", [])).set_index("epoch")


def _resolve_config(config: FitConfig | None, options: dict[str, Any]) -> FitConfig:
    base = config if config is not None else FitConfig()
    if not options:
        return base
    return FitConfig.from_dict({**base.to_dict(), **options})


@dataclass
class _FitState:
    epoch: int = 0
    best_loss: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fit", unit="epoch", disable=not enabled, leave=False)


def _save_training_checkpoint(
    path: str | os.PathLike,
    model: RSTMRF,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage,
    rng: np.random.Generator,
    state: _FitState,
) -> None:
    payload = {
        "format": TRAINING_CHECKPOINT_FORMAT,
        "ionofield_version": __version__,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "average": average.shadow,
        "average_steps": average.steps,
        "epoch": state.epoch,
        "best_loss": state.best_loss,
        "best_epoch": state.best_epoch,
        "best_state": state.best_state,
        "history": state.history,
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_training_checkpoint(
    path: str | os.PathLike,
    model: RSTMRF,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage,
    rng: np.random.Generator,
    config: FitConfig,
) -> _FitState:
    payload = read_payload(
        path,
        tag=TRAINING_CHECKPOINT_FORMAT,
        what="an ionofield training checkpoint",
        fix="pass the file given as checkpoint= to an earlier fit",
    )
    saved = {k: v for k, v in payload["config"].items() if k not in ("epochs", "patience")}
    now = {k: v for k, v in config.to_dict().items() if k not in ("epochs", "patience")}
    differing = sorted(k for k in saved if k in now and _norm(saved[k]) != _norm(now[k]))
    if differing:
        raise ConfigError(
            f"{path}: the checkpoint was written with different options {differing}; "
            "resume with the same config (only epochs and patience may change)"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    average.shadow = payload["average"]
    average.steps = payload["average_steps"]
    rng.bit_generator.state = payload["numpy_rng"]
    torch.set_rng_state(payload["torch_rng"])
    return _FitState(
        epoch=payload["epoch"],
        best_loss=payload["best_loss"],
        best_epoch=payload["best_epoch"],
        best_state=payload["best_state"],
        history=payload["history"],
    )


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

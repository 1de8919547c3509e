"""Fitting R-STMRF to a campaign: :func:`fit`.

The loop minimises, per batch of observed points,

``loss = data + w_chapman * chapman + w_tec_direction * direction + w_tec_anchor * anchor
+ w_tec_forecast * forecast``

* ``data``: heteroscedastic Gaussian NLL (or MSE) of log10 Ne;
* ``chapman``: squared second altitude derivative of the residual (double autograd),
  at random collocation points spread over the globe and the whole campaign period,
  hours without profiles included;
* ``direction``: ``1 - cos`` between the horizontal gradient of the model's log10 Ne
  and the TEC path's direction field, both in the spherical metric, at the same
  points within ``physics_alt_range``;
* ``anchor``: mean squared departure of the direction head from the unit
  finite-difference TEC gradient it starts from, at the hours whose own map it reads
  (every hour; with ``w_tec_forecast > 0`` the hours with a native map), so that the
  direction loss cannot be satisfied by any direction;
* ``forecast`` (``w_tec_forecast > 0``): ``1 - cos`` between the head's direction at
  the next native map's time, read from the maps strictly before it, and that map's
  unit gradient: the self-supervised job of the ConvLSTM, whose direction the
  ``direction`` loss then uses at the hours without a native map (only in campaigns
  that have such hours).

The budget is a number of optimiser steps (``max_steps``) and optionally a wall-clock
time (``time_limit``), not epochs: each step draws ``batch_size`` points from a few
whole hours, every profile weighing alike (:class:`~ionofield.sampling.ProfileSampler`),
so a step costs the same whatever the campaign's density and the ConvLSTM and LSTM run
once per distinct hour, not per point. The learning rate holds for the first half of
the budget and then decays (half cosine), every ``eval_every`` steps the weight
average is validated on a fixed subsample of the held-out periods, and after the loop
sigma is calibrated there (:mod:`ionofield.calibration`). Everything runs on one torch
device (``device=``), or data-parallel on several ranks of a ``torch.distributed``
process group (:mod:`ionofield._distributed`): every rank draws the same global batch,
computes its share of every loss term, and the gradients are summed over the ranks, so
each rank applies the update of the global batch; rank 0 validates, decides and writes.

Every step checks that the loss terms and the gradient are finite before the weights
change, and every validation that its scores are, so a diverging fit stops with a
:class:`~ionofield.errors.DivergenceError` naming where and why instead of returning
NaN weights; the observations and drivers are checked to be finite before the first
step, so that a divergence means the optimisation, not the data.

Why one module of this size: the loop, the per-batch losses of ``_Trainer`` and the
checks of a fit all act on one fit's state (model, optimiser, weight average, random
generator, checkpoint), and each is read with the others; the pieces that stand alone
are their own modules already (sampler, calibration, checkpoint files, predictions).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.optim.swa_utils import AveragedModel

from ionofield._device import resolve_precision
from ionofield._distributed import World
from ionofield._threads import torch_threads
from ionofield._version import __version__
from ionofield.align import DRIVERS
from ionofield.background import IRI_F107, campaign_background
from ionofield.calibration import errors_by_gap, fit_variance, sigma_scale, standard_scores
from ionofield.campaign import check_campaign
from ionofield.checkpoint import (
    campaign_fingerprint,
    fingerprint_differences,
    read_payload,
    write_payload,
)
from ionofield.config import ADDED_FIELDS, FitConfig, check_option_names, check_retired
from ionofield.drivers import HourlyDrivers, TimeInputs
from ionofield.errors import CampaignError, ConfigError, DataWarning, DivergenceError
from ionofield.model import RSTMRF
from ionofield.nn.losses import (
    chapman_smoothness,
    direction_consistency,
    gaussian_nll,
    horizontal_gradient_metric,
    mse,
)
from ionofield.nn.recurrent import reference_direction, sample_direction
from ionofield.observations import (
    ObservationStore,
    ProfileRuns,
    background_gradient,
    point_coords,
)
from ionofield.prediction import ColumnMisfit
from ionofield.sampling import ProfileSampler, run_points, split_by_period, split_tail
from ionofield.sphere import Cells
from ionofield.timeutil import HOUR, day_of_year

logger = logging.getLogger(__name__)

#: Tag identifying a training checkpoint (model, optimiser, history, random state; 4:
#: with a checksum, the seed and the campaign's fingerprint; 5: a budget of steps; 6: the
#: model's gap_variance_rate buffer).
TRAINING_CHECKPOINT_FORMAT = "ionofield-rstmrf-training/6"
#: Held-out points in hours with training data needed to calibrate sigma's factor on
#: them alone (:func:`_calibrate`).
MIN_LEVEL_POINTS = 1000
#: Options a resumed fit may change: the budget and the early stopping.
RESUMABLE_CHANGES = ("max_steps", "time_limit", "patience")
#: The learning rate at the end of the budget, as a fraction of ``lr``.
LR_FINAL_FRACTION = 0.05
#: Hours, evenly spread over the campaign, whose column misfit gives its median (the
#: offset taken off the misfit in sigma): the network runs over every column of each.
MISFIT_HOURS = 96


class WeightAverage:
    """Exponential moving average of a model's weights over the optimiser's steps.

    The sampler shows the optimiser a few hours at a time, so the weights
    after any one step lean towards the hours just seen; their average over the last
    ``1 / (1 - decay)`` steps or so has seen them all. The average is bias-corrected
    (as Adam's moments are): after ``n`` steps it is
    ``sum(decay**(n - k) * w_k) / sum(decay**(n - k))``, the weighted mean of the
    weights seen so far, even after a few steps. It is kept by torch's
    :class:`~torch.optim.swa_utils.AveragedModel`, updated in the running form
    ``a_n = a_{n-1} + (w_n - a_{n-1}) * (1 - decay) / (1 - decay**n)``.

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
    ...     round(float(layer.weight.detach()), 4)
    2.3333
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = model
        self.decay = decay
        self.averaged = (
            AveragedModel(model, multi_avg_fn=self._update, use_buffers=True) if decay else None
        )

    def _update(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], count: torch.Tensor
    ) -> None:
        weight = (1.0 - self.decay) / (1.0 - self.decay ** (int(count) + 1))
        for mean, value in zip(averaged, current, strict=True):
            mean.lerp_(value, weight)

    @property
    def steps(self) -> int:
        """Steps averaged so far (0 when switched off)."""
        return 0 if self.averaged is None else int(self.averaged.n_averaged)

    def update(self) -> None:
        """Fold the model's current weights into the average (after a step)."""
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged weights, keyed as the model's ``state_dict`` (copies)."""
        source = self.model if not self.steps else self.averaged.module
        return {name: value.detach().clone() for name, value in source.state_dict().items()}

    @contextlib.contextmanager
    def applied(self) -> Iterator[torch.nn.Module]:
        """The model holding the averaged weights, for the duration of the block."""
        if not self.steps:  # nothing averaged: the model's weights are the average
            yield self.model
            return
        current = {name: value.clone() for name, value in self.model.state_dict().items()}
        self.model.load_state_dict(self.averaged.module.state_dict())
        try:
            yield self.model
        finally:
            self.model.load_state_dict(current)

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """The average's state for a training checkpoint (None when switched off)."""
        return None if self.averaged is None else self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> None:
        """Restore :meth:`state_dict`."""
        if self.averaged is not None and state is not None:
            self.averaged.load_state_dict(state)


class _Trainer:
    """One fit: the model, its optimiser and the per-batch loss (internal)."""

    def __init__(
        self,
        model: RSTMRF,
        data: ObservationStore,
        drivers: HourlyDrivers,
        bg_field: Any,
        world: World | None = None,
    ) -> None:
        self.model = model
        self.world = World() if world is None else world
        self.config = model.config
        self.data = data
        self.drivers = drivers.for_tec_path(self.config.w_tec_forecast > 0)
        self.bg_field = bg_field
        self.device = model.device
        self.bfloat16 = resolve_precision(self.config.precision, self.device,
                                          where="fit") == "bfloat16"
        # Collocation points are drawn within the observed latitudes and altitudes.
        self.sin_lat_range = tuple(np.sin(np.radians(data.lat_range)))
        self.alt_range = data.alt_range
        self.use_tec = self.config.w_tec_direction > 0 and drivers.tec is not None
        if self.use_tec:
            self.tec_lat = self.tensor(drivers.tec_lat)
            self.tec_lon = self.tensor(drivers.tec_lon)
        # The forecast loss serves the hours without a native map; there are none
        # when every hour has one.
        self.forecast_tec = self.use_tec and len(self.drivers.map_hours()) < drivers.n_hours

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        """``values`` as a tensor on the fit's device (shared with numpy on the CPU)."""
        return torch.as_tensor(values, device=self.device)

    def network(
        self, coords: torch.Tensor, times: np.ndarray, model: RSTMRF | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, TimeInputs, np.ndarray]:
        """Residual, log-variance, profile shift and the time inputs at points of ``times``.

        ``model`` is the trained model by default (the weight average in validation).
        """
        model = self.model if model is None else model
        distinct, inverse = np.unique(times, return_inverse=True)
        inputs = self.drivers.time_inputs(distinct, self.config.env_len)
        codes = model.encode_time(inputs)
        residual, log_var, shift = model(coords, codes, self.tensor(inverse))
        return residual, log_var, shift, inputs, inverse

    def predict(
        self, points: np.ndarray, model: RSTMRF | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted log10 Ne and log-variance at observed ``points`` (:data:`POINT` rows)."""
        coords = np.ascontiguousarray(points["coords"])
        residual, log_var, shift, _, _ = self.network(self.tensor(coords), points["time"], model)
        if not self.model.profile_shift:
            return self.tensor(points["background"]) + residual, log_var
        rise = shift.detach().float().cpu().numpy()
        raised = self.bg_field.raised(points["time"], coords[:, 2], coords[:, 0], coords[:, 1],
                                      rise)
        background = self.tensor(raised.astype(np.float32))
        gradient = self.shift_gradient(points["time"], coords, shift, rise)
        return background + gradient + residual, log_var

    def shift_gradient(
        self, times: np.ndarray, coords: np.ndarray, shift: torch.Tensor, rise: np.ndarray
    ) -> torch.Tensor:
        """Zero at the points, with the raised background's gradient in ``shift`` (km).

        Added to the background raised by ``shift`` (``rise``, its values on the CPU;
        :meth:`~ionofield.background.BackgroundField.raised`, exact in value, as a
        reconstruction computes it), it gives that value its derivative in the rise
        (:meth:`~ionofield.background.BackgroundField.raised_slope`).
        """
        slope = self.bg_field.raised_slope(times, coords[:, 2], coords[:, 0], coords[:, 1], rise)
        return self.tensor(slope.astype(np.float32)) * (shift - shift.detach())

    def data_loss(
        self, pred: torch.Tensor, log_var: torch.Tensor, points: np.ndarray
    ) -> torch.Tensor:
        """The data term at ``points``: the NLL or the MSE.

        The NLL's variance of a point is the network's plus its observation's
        (``config.observation_errors``), or its observation's additive noise
        (``config.noise_likelihood``).
        """
        target = self.tensor(points["target"])
        if self.config.loss == "mse":
            return mse(pred, target)
        obs_var = None
        if self.config.observation_errors != "none":
            obs_var = self.tensor(_observation_variance(self.config, points).astype(np.float32))
        return gaussian_nll(pred, log_var, target, obs_var=obs_var,
                            log10_noise=self.tensor(_linear_noise(self.config, points)))

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
        n = _collocation_count(config)
        instants = rng.choice(hours, size=min(config.collocation_hours, len(hours)), replace=False)
        times = instants[rng.integers(0, len(instants), n)]
        lat_q = np.degrees(np.arcsin(rng.uniform(*self.sin_lat_range, n)))
        lon_q = rng.uniform(-180.0, 180.0, n)
        alt_q = rng.uniform(*self.alt_range, n)
        gradient = background_gradient(self.bg_field, times, alt_q, lat_q, lon_q)
        return point_coords(times, alt_q, lat_q, lon_q), times, gradient

    def batch_losses(self, idx: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Every loss term of one training step: this rank's part of it.

        ``idx`` is the step's global batch, and the collocation points are drawn for the
        whole step too; the rank computes each term over its share (:meth:`World.take`:
        the points sorted by time, cut into contiguous shares) and weighs it by the
        share's fraction of the term's points, so that the parts sum over the ranks to
        the term of the global batch. In one process the parts are the terms.
        """
        config, world = self.config, self.world
        points = self.data.rows(idx)
        mine = points[world.take(points["time"])]
        pred, log_var = self.predict(mine)
        losses = {"data": self.data_loss(pred, log_var, mine) * _part(len(mine), len(idx))}
        if config.w_chapman == 0 and not self.use_tec:
            return losses
        points, times, bg_gradient = self.collocation_points(rng)
        n_points = len(times)
        lo, hi = config.physics_alt_range
        n_inside = int(((points[:, 2] >= lo) & (points[:, 2] <= hi)).sum())
        hours = self.tec_hours(times) if self.use_tec else None
        share = world.take(times)
        points, times, bg_gradient = points[share], times[share], bg_gradient[share]
        coords = self.tensor(points).requires_grad_(True)
        residual, _, shift, inputs, inverse = self.network(coords, times)
        if config.w_chapman > 0:
            chapman = chapman_smoothness(
                residual, coords, alt_index=2, scale_km=config.chapman_scale_km
            )
            losses["chapman"] = chapman * _part(len(times), n_points)
        if self.use_tec:
            if self.model.profile_shift:  # the direction reads gradients only
                rise = shift.detach().float().cpu().numpy()
                residual = residual + self.shift_gradient(times, points, shift, rise)
            losses.update(self.tec_losses(
                residual, coords, points, bg_gradient, inputs, inverse, hours, n_inside
            ))
        return losses

    def tec_hours(self, times: np.ndarray) -> np.ndarray:
        """The hours (indices of ``drivers.hours``) whose TEC maps points at ``times`` read."""
        distinct, inverse = np.unique(times, return_inverse=True)
        bracket, used = _bracket_hours(
            self.drivers.time_inputs(distinct, self.config.env_len), inverse
        )
        return np.unique(bracket[used])

    def tec_losses(
        self,
        residual: torch.Tensor,
        coords: torch.Tensor,
        points: np.ndarray,
        bg_gradient: np.ndarray,
        inputs: TimeInputs,
        time_index: np.ndarray,
        hours: np.ndarray,
        n_inside: int,
    ) -> dict[str, torch.Tensor]:
        """Direction consistency, the head's anchor and its forecast: this rank's part of each.

        ``coords`` are the rank's ``points`` (numpy, where the direction field is
        sampled) as the tensor the residual was computed from. The TEC path runs for
        the step's ``hours`` (:meth:`tec_hours` of all its points): the ConvLSTM once
        per distinct latest map at or before them
        (:meth:`~ionofield.drivers.HourlyDrivers.latest_map`), the head at each hour's
        lead from it. The anchor averages the hours with a native map, the forecast
        (the head at the next native map's time, from the maps strictly before it,
        against that map's unit gradient) the step's latest maps that have a next
        one; rank 0 carries both. The consistency is the rank's mean over its points
        within ``physics_alt_range``, weighted by their fraction of the step's
        ``n_inside`` such points.
        """
        config, drivers = self.config, self.drivers
        (grad,) = torch.autograd.grad(residual.sum(), coords, create_graph=True)
        lat, alt = coords[:, 0].detach(), coords[:, 2].detach()
        total = grad[:, :2] + self.tensor(bg_gradient)
        metric = horizontal_gradient_metric(total[:, 0], total[:, 1], lat)
        # The TEC path runs only for the hours with weight (one per whole-hour point).
        bracket, used = _bracket_hours(inputs, time_index)
        slot = np.zeros(len(bracket), dtype=np.int64)
        slot[used] = np.searchsorted(hours, bracket[used])
        base, lead = drivers.latest_map(hours)
        bases, which = np.unique(base, return_inverse=True)
        seqs = self.tensor(drivers.tec_sequences(bases, config.seq_len))
        features, reference = self.model.tec_features(seqs, self.tec_lat, self.tec_lon)
        direction = self.model.direction_head(
            features[which], reference[which], self.tensor(lead)
        )
        n = len(time_index)
        w1 = inputs.weights[3][time_index]
        sampled = sample_direction(
            direction,
            Cells(slot[:n], slot[n:], w1.astype(np.float64)),
            points[:, 0],
            points[:, 1],
            drivers.tec_lat,
            drivers.tec_lon,
        )
        lo, hi = config.physics_alt_range
        inside = (alt >= lo) & (alt <= hi)
        consistency = (
            direction_consistency(metric[inside], sampled[inside])
            if bool(inside.any())
            else metric.sum() * 0.0
        )
        main = 1.0 if self.world.main else 0.0
        at_map = self.tensor(lead == 0)
        anchor = (direction - reference[which])[at_map] ** 2
        losses = {
            "tec_direction": consistency * _part(int(inside.sum()), n_inside),
            "tec_anchor": (anchor.mean() if anchor.numel() else anchor.sum()) * main,
        }
        if self.forecast_tec:
            losses["tec_forecast"] = self.tec_forecast(features, reference, bases) * main
        return losses

    def tec_forecast(
        self, features: torch.Tensor, reference: torch.Tensor, bases: np.ndarray
    ) -> torch.Tensor:
        """Mean ``1 - cos`` of the head at the next native map against that map's gradient.

        ``features`` and ``reference`` are the TEC path's at the map hours ``bases``
        (from the maps at or before each, so strictly before the next one); bases
        without a next map are left out (0 when none has one).
        """
        drivers = self.drivers
        maps = drivers.map_hours()
        after = np.searchsorted(maps, bases, side="right")
        has_next = after < len(maps)
        if not has_next.any():
            return features.sum() * 0.0
        upcoming = maps[after[has_next]]
        keep = self.tensor(np.flatnonzero(has_next))
        lead = (drivers.hours[upcoming] - drivers.hours[bases[has_next]]) / HOUR
        predicted = self.model.direction_head(
            features[keep], reference[keep], self.tensor(lead.astype(np.float32))
        )
        target = reference_direction(
            self.tensor(drivers.tec[upcoming]), self.tec_lat, self.tec_lon
        )
        return direction_consistency(_cells(target), _cells(predicted))

    def total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        config = self.config
        weights = {
            "data": 1.0,
            "chapman": config.w_chapman,
            "tec_direction": config.w_tec_direction,
            "tec_anchor": config.w_tec_anchor,
            "tec_forecast": config.w_tec_forecast,
        }
        return sum(weights[name] * value for name, value in losses.items())

    @torch.no_grad()
    def predictions(
        self, points: np.ndarray, model: RSTMRF | None = None, chunk: int = 8192
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted log10 Ne and log-variance at ``points`` (:data:`POINT` rows), in eval mode."""
        model = self.model if model is None else model
        was_training = model.training
        model.eval()
        parts = [self.predict(points[s : s + chunk], model)
                 for s in range(0, len(points), chunk)]
        model.train(was_training)
        return tuple(np.concatenate([p[k].cpu().numpy() for p in parts]) for k in range(2))

    def evaluate(self, points: np.ndarray, model: RSTMRF | None = None) -> dict[str, float]:
        """Validation data loss and RMSE of log10 Ne (model and background).

        The NLL is taken after the constant sigma factor that minimises it (the
        variance times the mean squared z-score): sigma fitted on the training
        hours is too small for unseen ones whatever the step, and the factor is
        calibrated after the fit anyway, so the validations compare by the quality of the
        mean and of sigma's shape, not by how overconfident sigma has grown.
        """
        pred, log_var = self.predictions(points, model)
        target = points["target"]
        if self.config.loss == "nll":
            factor = sigma_scale(target - pred, log_var,
                                 _observation_variance(self.config, points),
                                 pred - _linear_noise(self.config, points))
            log_var = log_var + np.float32(2.0 * np.log(factor))
        with torch.no_grad():
            loss = self.data_loss(self.tensor(pred), self.tensor(log_var), points)
        bg_error = points["background"] - target
        return {
            "val_loss": float(loss),
            "val_rmse": float(np.sqrt(np.mean((pred - target).astype(np.float64) ** 2))),
            "val_rmse_background": float(np.sqrt(np.mean(bg_error.astype(np.float64) ** 2))),
        }

    def held_out_terms(
        self, points: np.ndarray, offset: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """Errors at observed ``points`` and the terms of their variance, in float64.

        Returns the observed minus predicted log10 Ne, the network's variance, the
        column misfit's offset and its variance term (NaN and 0 without TEC maps;
        :meth:`column_misfit_variance` with ``offset``).
        """
        pred, log_var = self.predictions(points)
        misfit = np.zeros(len(points))
        if self.drivers.tec is not None:
            offset, misfit = self.column_misfit_variance(points, offset)
        return ((points["target"] - pred).astype(np.float64),
                np.exp(log_var.astype(np.float64)),
                float("nan") if offset is None else offset, misfit)

    def column_misfit_variance(
        self, points: np.ndarray, offset: float | None = None
    ) -> tuple[float, np.ndarray]:
        """The campaign's median column misfit, and the misfit's variance at ``points``.

        The misfit (:class:`~ionofield.prediction.ColumnMisfit`) is computed at the
        hours around the ``points``. Without an ``offset``, also at up to
        :data:`MISFIT_HOURS` hours spread evenly over the campaign (every hour of a
        campaign up to four days); the median over the latter is the offset taken off
        before it enters sigma. The cost then stops growing with the campaign's
        length. A calibrated model's ``column_misfit_offset`` given as ``offset`` is
        taken as it is, and only the points' hours are computed.
        """
        drivers, times = self.drivers, points["time"]
        around = drivers.hour_cells(times)
        hours = np.union1d(around.lower, around.upper)
        if offset is None:
            spread = np.unique(np.linspace(0, drivers.n_hours - 1,
                                           min(drivers.n_hours, MISFIT_HOURS)).round().astype(int))
            hours = np.union1d(hours, spread)
        misfit = ColumnMisfit.compute(self.model, drivers, self.bg_field, hours)
        if offset is None:
            offset = float(np.median(misfit.values[np.isin(misfit.hours, spread)]))
        return offset, misfit.variance(drivers, times, points["coords"][:, 0],
                                       points["coords"][:, 1], offset)


def fit(
    ds: xr.Dataset,
    *,
    config: FitConfig | Mapping[str, Any] | None = None,
    background: xr.Dataset | xr.DataArray | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    device: str | torch.device | None = "auto",
    **options: Any,
) -> RSTMRF:
    """Fit R-STMRF to a campaign's observations.

    Parameters
    ----------
    ds
        A campaign Dataset from :func:`ionofield.campaign`: observations on ``obs``
        and the hourly drivers ``tec``, ``kp``, ``f107``, ``f107_81``.
    config
        Options, as a :class:`~ionofield.config.FitConfig` or a mapping of its fields
        (``{"max_steps": 2000}``); the defaults when omitted. ``**options`` override
        its fields (``fit(ds, max_steps=2000, time_limit=600)``).
    background
        Any background electron density on ``(time, alt, lat, lon)`` in m-3 (e.g. another
        model's output); IRI through PyIRI on the config's cube when omitted. Pass the
        same one to :func:`ionofield.reconstruct`.
    seed
        Seeds the initialisation, the split and the batches: two fits with the same
        seed on the same machine give identical models.
    checkpoint
        Path of the training checkpoint, written atomically about every
        ``config.checkpoint_every`` steps and at the end (model, optimiser, history,
        random state, the seed and a fingerprint of the campaign, with a checksum).
    resume
        A training checkpoint to continue from; the run then goes on to
        ``config.max_steps`` and, without a ``time_limit``, ends exactly as an
        uninterrupted run would. It must come from a fit of the same campaign
        (observations, hourly axis, drivers, kind of background), seed and options;
        only ``max_steps``, ``time_limit`` and ``patience`` may change (a new budget
        changes the learning-rate schedule from there on).
    progress
        Show a tqdm progress bar with the running losses.
    cache_dir
        Disk cache of the IRI background.
    threads
        torch intra-op threads during the fit (default: torch's setting). Batches of a
        few thousand points gain little from several threads, and on a busy machine
        threads waiting for each other can cost far more: 1 is often fastest.
    device
        The torch device the fit runs on: ``"auto"`` (the first GPU torch sees, else
        the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``. The observations,
        the TEC maps and the model stay there for the whole fit; the returned model is
        on that device (``model.to("cpu")`` moves it). In a process group of several
        ranks, ``"auto"`` and ``"cuda"`` mean ``cuda:LOCAL_RANK`` (one GPU per rank).
    **options
        :class:`~ionofield.config.FitConfig` fields.

    Returns
    -------
    RSTMRF
        The fitted model (the weight average at its best validation), in eval mode;
        ``model.history`` is the loss table, one row per validation (pandas
        DataFrame indexed by step). Its weights are finite.

    Raises
    ------
    CampaignError
        ``ds`` is not a campaign, or its drivers hold non-finite values; the message
        gives the counts.
    ManyProblemsError, UnitsError
        Its observations or indices hold values :func:`ionofield.campaign` refuses
        (edited by hand after it was built).
    ConfigError
        An unknown or retired option (with the closest valid names or what replaced
        it), a value of the wrong type or range, a device this machine cannot use, or
        a ``resume`` checkpoint of another campaign, seed or options. In a process
        group: ranks given different campaigns, seeds or options, fewer points or
        collocation points per step than ranks, NCCL with the CPU, or several
        processes started by torchrun without a process group.
    CheckpointError
        ``resume`` is truncated, damaged (checksum mismatch) or not a training
        checkpoint.
    DivergenceError
        A loss term, the gradient or the validation loss became NaN or infinite: the
        message names the step, the term and the likely cause.

    Warns
    -----
    DataWarning
        Nothing could be held out for validation: the scores are then computed on the
        training data and sigma is not calibrated (``model.info["held_out"]`` is
        False, and the model's summary says so).

    Notes
    -----
    Called in every process of a ``torch.distributed`` process group (e.g. under
    ``torchrun --nproc-per-node N``, after ``torch.distributed.init_process_group()``),
    with the same arguments, ``fit`` trains data-parallel: gloo on the CPU, NCCL on
    GPUs. Every rank draws each step's global batch of ``batch_size`` points (and its
    collocation points) from the same seeded generator and takes a disjoint share of
    it; the loss terms and gradients summed over the ranks are those of the global
    batch, so the fit equals the single-process fit of the same seed within float
    rounding, whatever the number of ranks. Rank 0 validates, decides the early
    stopping, times the ``time_limit`` and alone writes ``checkpoint``; a checkpoint
    holds nothing of the ranks, so ``resume`` works with any number of them (each rank
    reads the file: put it where all can). Every rank returns the same model;
    ``model.info["world_size"]`` and ``model.info["devices"]`` record the ranks.
    """
    if not isinstance(ds, xr.Dataset):
        raise CampaignError(
            f"fit: ds is a {type(ds).__name__} ({ds!r:.80}), not a campaign Dataset; "
            "build one with ionofield.campaign(obs=..., tec=..., indices=...)"
        )
    check_campaign(ds)
    config = _resolve_config(config, options)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"fit: seed = {seed!r} must be an int >= 0, e.g. seed=0")
    if checkpoint is not None and os.path.isdir(checkpoint):
        raise ConfigError(
            f"fit: checkpoint = {os.fspath(checkpoint)!r} is a folder; give the name of the "
            "training checkpoint file to write, e.g. 'fit.ckpt' inside it"
        )
    world = World.current()
    where = world.device(device)
    with torch_threads(threads):
        return _fit(ds, config, background, int(seed), checkpoint, resume, progress, cache_dir,
                    where, world)


def _fit(
    ds: xr.Dataset,
    config: FitConfig,
    background: Any,
    seed: int,
    checkpoint: Any,
    resume: Any,
    progress: bool,
    cache_dir: Any,
    device: torch.device,
    world: World,
) -> RSTMRF:
    begun = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    drivers = HourlyDrivers.from_campaign(ds)
    _check_inputs(ds, drivers)
    fingerprint = None
    if checkpoint is not None or resume is not None or world.size > 1:
        fingerprint = campaign_fingerprint(ds, background)
    if world.size > 1:
        _check_world(config, world)
        world.check_same({"options": config.to_dict(), "seed": seed, "campaign": fingerprint,
                          "checkpoint": checkpoint is not None, "resume": resume is not None})
    saved = None if resume is None else _read_training_checkpoint(resume, config, seed, fingerprint)
    bg_field, background_info = campaign_background(
        drivers.hours, ds[IRI_F107], config=config, background=background, cache_dir=cache_dir
    )
    data = ObservationStore.from_campaign(ds, bg_field, config.observation_errors)
    runs = data.runs
    test_runs, train_runs, val_runs = _split(runs, config, rng)
    train_runs, anchor_runs = _anchor_split(runs, train_runs, val_runs, config, rng)
    n_train, n_val = (int(runs.length[chosen].sum()) for chosen in (train_runs, val_runs))
    held_out = _check_split(config, n_train, n_val)
    val_index = _subsample(runs, val_runs if held_out else train_runs, config.validation_points,
                           rng)
    val_points = data.rows(val_index)
    # The calibration reads the validation points and the anchor profiles (if any).
    anchor_index = _subsample(runs, anchor_runs, config.validation_points, rng)
    model = _new_model(config, np.array(data.time_range)).to(device)
    model.set_data_hours(np.datetime64(data.time_range[0], "h") + runs.hour[train_runs])
    trainer = _Trainer(model, data, drivers, bg_field, world)
    sampler = ProfileSampler(runs.start[train_runs], runs.length[train_runs],
                             runs.profile[train_runs], runs.hour[train_runs])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    average = WeightAverage(model, decay=_average_decay(config))
    state = _FitState() if saved is None else _restore(saved, model, optimizer, average, rng)
    bar = _progress_bar(config.max_steps, state.step, progress and world.main)
    written = state.step // config.checkpoint_every
    prepare_seconds = time.perf_counter() - begun
    started = time.perf_counter() - state.elapsed
    while not state.spent(config):
        steps = min(config.eval_every, config.max_steps - state.step)
        losses = _train_steps(trainer, optimizer, average, sampler, rng, state, steps, started)
        taken = losses.pop("steps")
        row = {"step": state.step, **losses, **_validate(trainer, average, val_points, started)}
        state.elapsed = row.pop("elapsed")  # the validation counts too
        row["elapsed_s"] = round(state.elapsed, 3)
        _check_validation(row, config)
        stop = state.record(row, average)
        bar.update(taken)
        bar.set_postfix(loss=f"{row['data']:.4f}", val_rmse=f"{row['val_rmse']:.4f}")
        finished = stop or state.spent(config)
        if checkpoint is not None and (state.step // config.checkpoint_every > written or finished):
            written = state.step // config.checkpoint_every
            if world.main:
                _save_training_checkpoint(
                    checkpoint, model, optimizer, average, rng, state, seed, fingerprint
                )
            world.barrier()
        if stop and world.main:
            logger.info("early stop at step %d (best %d)", state.step, state.best_step)
        if stop:
            break
    bar.close()
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    calibrating = time.perf_counter()
    calibration = _calibrate(trainer, val_index if held_out else None, anchor_index)
    calibrate_seconds = time.perf_counter() - calibrating
    test = _test(trainer, data, runs, test_runs, rng)
    data.close()
    bad = model.nonfinite_tensors()
    if bad:  # the losses were finite: only the calibration of sigma is left
        raise DivergenceError(
            f"fit: the fitted model's {bad[:5]} are not finite after the calibration of "
            f"sigma ({calibration}): the held-out predictions' variances under- or "
            "overflow; fit again with a lower lr or more steps"
        )
    best = min(state.history, key=lambda r: r["val_loss"]) if state.history else {}
    model.info.update(
        period=[str(drivers.hours[0]), str(drivers.hours[-1])],
        n_obs=len(data),
        n_train=n_train,
        n_val=n_val,
        n_anchor=int(runs.length[anchor_runs].sum()),
        n_profiles_train=sampler.n_profiles,
        held_out=held_out,
        obs_alt_range=[float(v) for v in trainer.alt_range],
        seed=seed,
        background=background_info,
        device=str(device),
        world_size=world.size,
        devices=world.gather(str(device)),
        steps=state.step,
        prepare_seconds=round(prepare_seconds, 3),
        train_seconds=round(state.elapsed, 3),
        calibrate_seconds=round(calibrate_seconds, 3),
        best_step=state.best_step,
        val_rmse=best.get("val_rmse"),
        val_rmse_background=best.get("val_rmse_background"),
        **calibration,
        **test,
        history=state.history,
        ionofield_version=__version__,
    )
    return model.eval()


def _split(
    runs: ProfileRuns, config: FitConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test, training and validation runs: test blocks first, validation blocks of the rest.

    With ``val_tail_hours``, the validation takes the tail of the rest
    (:func:`~ionofield.sampling.split_tail`) and its blocks are drawn from the hours
    before it. The tail draws nothing from the generator, and without
    ``test_fraction`` the generator draws exactly what it drew before the test block
    existed, so fits without either are unchanged.

    Raises
    ------
    ConfigError
        The tail holds every run outside the test blocks.
    """
    everything = np.arange(len(runs.start))
    test_runs = everything[:0]
    if config.test_fraction > 0:
        everything, test_runs = split_by_period(
            runs.profile, runs.hour, config.test_fraction, config.val_block_hours, rng
        )
        if test_runs.size == 0:
            warnings.warn(
                f"fit: test_fraction = {config.test_fraction:g} sets nothing aside (the "
                f"observations lie within one block of val_block_hours = "
                f"{config.val_block_hours:g} h): no test scores; give a smaller "
                "val_block_hours",
                DataWarning,
                stacklevel=4,
            )
    kept, tail = split_tail(runs.profile[everything], runs.hour[everything],
                            config.val_tail_hours)
    if kept.size == 0:
        hours = f"{config.val_tail_hours:g}"
        raise ConfigError(
            f"fit: val_tail_hours = {hours} holds out all {int(runs.length[everything].sum())} "
            f"observations outside the test blocks (their profiles start within the last "
            f"{hours} h of the observations); give a smaller val_tail_hours"
        )
    before = everything[kept]
    train, val = split_by_period(runs.profile[before], runs.hour[before],
                                 config.val_fraction, config.val_block_hours, rng)
    return test_runs, before[train], np.union1d(before[val], everything[tail])


def _anchor_split(
    runs: ProfileRuns, train_runs: np.ndarray, val_runs: np.ndarray, config: FitConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Training runs, and the anchor runs: ``calibration_fraction`` of their profiles.

    The anchor profiles are drawn at random among the training profiles, so they
    share their hours with the profiles trained on (0 hours from the data): the
    calibration sees there the error of hours with data, which the validation blocks
    (hours without any) cannot show. Nothing is drawn when the fraction is 0, or
    when there are no validation blocks (sigma is then not calibrated at all).
    """
    if config.calibration_fraction == 0 or val_runs.size == 0:
        return train_runs, train_runs[:0]
    # each profile its own one-hour "block": whole profiles drawn at random
    profile = runs.profile[train_runs]
    kept, anchor = split_by_period(profile, profile, config.calibration_fraction, 1.0, rng)
    return train_runs[kept], train_runs[anchor]


def _test(
    trainer: _Trainer, data: ObservationStore, runs: ProfileRuns,
    test_runs: np.ndarray, rng: np.random.Generator,
) -> dict[str, float]:
    """Scores of the calibrated model on the test blocks (empty without them).

    The fraction inside one sigma takes sigma as a reconstruction gives it (the
    network's calibrated sigma, the growth with the hours from the training data
    and, with TEC maps, the column misfit's variance), with each observation's own
    noise added, as the calibration does: it is counted against the observations.
    """
    if test_runs.size == 0:
        return {}
    index = _subsample(runs, test_runs, trainer.config.validation_points, rng)
    points = data.rows(index)
    scores: dict[str, float] = {}
    if trainer.world.main:
        error, network, _, misfit = trainer.held_out_terms(
            points, float(trainer.model.column_misfit_offset))
        variance = (network + trainer.model.gap_variance(points["time"]) + misfit
                    + _observation_variance(trainer.config, points))
        bg_error = (points["target"] - points["background"]).astype(np.float64)
        scores = {
            "n_test": int(runs.length[test_runs].sum()),
            "test_rmse": float(np.sqrt(np.mean(error**2))),
            "test_rmse_background": float(np.sqrt(np.mean(bg_error**2))),
            "test_inside_1sigma": float(np.mean(np.abs(standard_scores(
                error, variance, _log10_snr(trainer.config, points, error))) <= 1.0)),
        }
    return trainer.world.object_from_main(scores)


def _observation_variance(config: FitConfig, points: np.ndarray) -> np.ndarray:
    """The observations' own variance of log10 Ne at ``points`` (float64, dex**2).

    ``obs_sigma**2`` (:data:`~ionofield.observations.POINT`); 0 when
    ``config.observation_errors`` is ``"none"``, and at the points whose noise the
    likelihood takes in Ne instead (:func:`_linear_noise`).
    """
    if config.observation_errors == "none":
        return np.zeros(len(points))
    return np.where(np.isnan(_linear_noise(config, points)),
                    np.square(points["obs_sigma"].astype(np.float64)), 0.0)


def _linear_noise(config: FitConfig, points: np.ndarray) -> np.ndarray:
    """log10 of the additive noise (m-3) of the ``points`` the NLL takes in Ne, else NaN.

    The points with a known ``ne_err`` (:data:`~ionofield.observations.POINT`'s
    ``log10_noise``) under ``config.noise_likelihood = "truncated"``
    (:func:`~ionofield.nn.losses.gaussian_nll`'s second form); float32 [N].
    """
    if config.noise_likelihood != "truncated":
        return np.full(len(points), np.nan, np.float32)
    return points["log10_noise"]


def _log10_snr(config: FitConfig, points: np.ndarray, error: np.ndarray) -> np.ndarray:
    """log10 of the prediction over the noise where the NLL takes the noise in Ne, else NaN.

    The prediction is the observation less ``error`` (observed minus predicted
    log10 Ne); float64 [N], as :func:`~ionofield.calibration.fit_variance` takes it.
    """
    return points["target"] - error - _linear_noise(config, points).astype(np.float64)


def _check_inputs(ds: xr.Dataset, drivers: HourlyDrivers) -> None:
    """Refuse drivers that a fit cannot take, with the counts.

    The observations' values and the indices' ranges were checked by
    :func:`~ionofield.campaign.check_campaign`; what is left is that every hour has
    finite drivers (an index edited to NaN by hand) and that the TEC maps are finite
    after their gaps were filled.
    """
    if ds.sizes["obs"] == 0:  # check_campaign has seen to 'ne' and the 'obs' dimension
        raise CampaignError(
            "fit: the campaign holds no observations (no variable 'ne' on a non-empty 'obs' "
            "dimension); build it with ionofield.campaign from observations within its period"
        )
    problems = []
    for name in DRIVERS:
        count = int((~np.isfinite(ds[name].values.astype(np.float64))).sum())
        if count:
            problems.append(f"{name!r} is non-finite at {count} of {drivers.n_hours} hours")
    if drivers.tec is not None and not np.isfinite(drivers.tec).all():
        count = int((~np.isfinite(drivers.tec)).sum())
        problems.append(f"'tec' is non-finite in {count} map cells after its gaps were filled")
    if problems:
        raise CampaignError(
            f"fit: the campaign's {'; '.join(problems)}. A fit needs finite drivers at every "
            "hour: build the campaign again with ionofield.campaign from the files, which "
            "fills short gaps and says how many"
        )


def _check_split(config: FitConfig, n_train: int, n_val: int) -> bool:
    """Whether anything is held out for validation; warn when nothing is.

    Raises
    ------
    ConfigError
        Everything would be held out (nothing left to train on).
    """
    block = f"val_block_hours = {config.val_block_hours:g} h"
    if n_train == 0:
        raise ConfigError(
            f"fit: val_fraction = {config.val_fraction:g} holds out all {n_val} observations "
            f"(they start within one block of {block}); give a smaller val_fraction or "
            "val_block_hours"
        )
    if n_val:
        return True
    reason = (
        "val_fraction = 0"
        if config.val_fraction == 0
        else f"the observations start within one block of {block}"
    )
    warnings.warn(
        f"fit: nothing held out for validation ({reason}): val_loss, val_rmse and early "
        f"stopping use the {n_train} training observations, and sigma is not calibrated "
        f"(model.info['held_out'] is False); give observations spanning more than one block, "
        "a smaller val_block_hours or a val_fraction > 0",
        DataWarning,
        stacklevel=4,
    )
    return False


def _new_model(config: FitConfig, times: np.ndarray) -> RSTMRF:
    """A fresh model in training mode, for the campaign's middle day.

    Its season is pinned for a short campaign; with ``magnetic_inputs`` it reads the
    magnetic field of that day.
    """
    span = times.max() - times.min()
    middle = times.min() + span / 2
    # The epoch goes in at construction, which reads its field (once: an IGRF table
    # takes about half a second).
    model = RSTMRF(config, info={"magnetic_epoch": middle} if config.magnetic_inputs else None)
    if span / np.timedelta64(1, "D") < config.season_min_days:
        model.pin_season(float(day_of_year(middle)))
    return model.train()


def _average_decay(config: FitConfig) -> float:
    """Per-step decay of the weight average spanning ``weight_average_steps`` steps."""
    window = config.weight_average_steps
    return max(0.0, 1.0 - 1.0 / window) if window else 0.0


def _part(mine: int, total: int) -> float:
    """Weight of a term's mean over ``mine`` of its ``total`` points (0 when it has none)."""
    return mine / total if total else 0.0


def _cells(field: torch.Tensor) -> torch.Tensor:
    """Vector maps [N, C, H, W] as one row per cell, [N * H * W, C]."""
    return field.permute(0, 2, 3, 1).reshape(-1, field.shape[1])


def _bracket_hours(inputs: TimeInputs, time_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hours around each point's time and whether they weigh in its drivers.

    Returns
    -------
    hours, used
        Indices of ``drivers.hours``, shape [2N] (the hour before each of the N
        points, then the one after), and whether each has a weight > 0.
    """
    i0, i1, w0, w1 = (w[time_index] for w in inputs.weights)
    return inputs.hours[np.concatenate([i0, i1])], np.concatenate([w0, w1]) > 0


def _subsample(
    runs: ProfileRuns, chosen: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """At most ``size`` points of the runs ``chosen`` (increasing), in order.

    Drawn at random without replacement when the runs hold more.
    """
    length = runs.length[chosen]
    total = int(length.sum())
    places = np.arange(total) if total <= size else np.sort(rng.choice(total, size, replace=False))
    return run_points(runs.start[chosen], length, places)


def learning_rate(config: FitConfig, progress: float) -> float:
    """The learning rate once a fraction ``progress`` of the budget is spent.

    ``lr`` for the first half, then a half cosine down to ``LR_FINAL_FRACTION * lr``
    at the end.

    Examples
    --------
    >>> config = FitConfig(lr=1e-3)
    >>> [round(learning_rate(config, p), 6) for p in (0.0, 0.5, 0.75, 1.0)]
    [0.001, 0.001, 0.000525, 5e-05]
    """
    decay = min(max(2.0 * progress - 1.0, 0.0), 1.0)
    low = LR_FINAL_FRACTION * config.lr
    return low + (config.lr - low) * 0.5 * (1.0 + math.cos(math.pi * decay))


def _train_steps(
    trainer: _Trainer,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage,
    sampler: ProfileSampler,
    rng: np.random.Generator,
    state: _FitState,
    steps: int,
    started: float,
) -> dict[str, float]:
    """Up to ``steps`` optimiser steps (fewer when the time limit comes first).

    With several ranks, each step's loss terms and gradients are summed over them
    (one all-reduce each), so the checks and the update agree on every rank.

    Returns the mean of each loss term over the steps taken, and ``steps`` and
    ``lr`` (the last step's).

    Raises
    ------
    DivergenceError
        A loss term or the gradient is not finite (before the step that would spread
        it to the weights).
    """
    config, model, world = trainer.config, trainer.model, trainer.world
    sums: dict[str, float] = {}
    # Without clipping the norm is still computed (an infinite bound scales by 1, exactly).
    bound = config.grad_clip if config.grad_clip > 0 else math.inf
    taken = 0
    while taken < steps and not (taken and state.spent(config)):
        lr = learning_rate(config, state.progress(config))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = sampler.batch(rng, config.batch_size, config.batch_hours)
        with torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=trainer.bfloat16):
            losses = trainer.batch_losses(idx, rng)
        losses = {name: value.float() for name, value in losses.items()}
        parts = np.array([float(value.detach()) for value in losses.values()])
        values = {name: float(value) for name, value in zip(losses, world.sum(parts), strict=True)}
        where = f"step {state.step + 1} of {config.max_steps}"
        if not all(math.isfinite(v) for v in values.values()):
            term = next(name for name, v in values.items() if not math.isfinite(v))
            raise DivergenceError(
                f"fit diverged at {where}: the loss term {term!r} is {values[term]} "
                f"({_terms(values)}); {_likely_cause(config, state.step + 1)}"
            )
        total = trainer.total(losses)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        world.sum_gradients(model.parameters())
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), bound))
        if not math.isfinite(norm):
            raise DivergenceError(
                f"fit diverged at {where}: the gradient norm is {norm} while the loss terms "
                f"are finite ({_terms(values)}); {_likely_cause(config, state.step + 1)}"
            )
        optimizer.step()
        average.update()
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value
        taken += 1
        state.step += 1
        elapsed = time.perf_counter() - started
        # The time limit stops every rank at the same step: rank 0's clock decides.
        state.elapsed = elapsed if config.time_limit is None else world.from_main(elapsed)
    return {**{name: value / taken for name, value in sums.items()}, "steps": taken, "lr": lr}


def _terms(values: dict[str, float]) -> str:
    return ", ".join(f"{name} = {value:.4g}" for name, value in values.items())


def _likely_cause(config: FitConfig, step: int) -> str:
    """The likely cause of a divergence at ``step`` (1-based), and what to do, for messages."""
    if step == 1:  # no step taken yet: the weights are the fresh ones
        return (
            "this is the first batch, before any update, so the inputs are the likely "
            "cause: the observations' positions and times or the drivers hold values the "
            "network cannot take; check the campaign (ionofield.campaign) and the background"
        )
    default = FitConfig.__dataclass_fields__["lr"].default
    high = f", far above the default {default:g}" if config.lr > 30 * default else ""
    clip = " or grad_clip > 0 (it is 0)" if config.grad_clip == 0 else ""
    return (
        f"likely cause: the learning rate, lr = {config.lr:g}{high}, is too high; fit again "
        f"from the start with a lower lr (e.g. lr={config.lr / 10:g}){clip}"
    )


def _check_validation(row: dict[str, float], config: FitConfig) -> None:
    """Refuse a validation whose scores are not finite (diverged weights)."""
    bad = [name for name in ("val_loss", "val_rmse") if not math.isfinite(row[name])]
    if bad:
        raise DivergenceError(
            f"fit diverged by step {row['step']}: the validation {bad[0]} is {row[bad[0]]} "
            f"though the training losses were finite; {_likely_cause(config, row['step'])}"
        )


def _calibrate(
    trainer: _Trainer, val_index: np.ndarray | None, anchor_index: np.ndarray
) -> dict[str, Any]:
    """Calibrate the fitted model's sigma on the held-out points; its terms.

    The held-out points are the validation points ``val_index`` and the anchor
    points ``anchor_index``. The variance of a held-out error is modelled as
    ``factor**2 * network variance + gap_variance_rate * sqrt(hours from the training
    data) + column misfit term + noise`` (the last two, the TEC maps' misfit about the
    campaign's median and the observation's own noise, with weight 1). ``factor**2``
    and the rate maximise the likelihood of the errors
    (:func:`~ionofield.calibration.fit_variance`) in two stages: the factor on the
    points in hours with training data (the anchors, mostly), where a reanalysis'
    times lie, then the rate on the others (the validation blocks') given the
    factor. Fitted together, the validation blocks' larger errors set the factor
    too, and sigma came out too wide in those hours. With fewer than
    :data:`MIN_LEVEL_POINTS` points in hours with data, or none beyond them, both on
    all the points at once. ``sigma_calibration_by_gap`` then
    scores the calibrated sigma at the validation points by their hours from the
    training data (:func:`~ionofield.calibration.errors_by_gap`). Without validation
    points (``None``), sigma stays as trained. Rank 0 computes the calibration and
    every rank applies it.
    """
    terms: dict[str, Any] = {"sigma_factor": 1.0, "sigma_gap_variance_rate": 0.0}
    offset = float("nan")
    if val_index is not None and trainer.world.main:
        points = trainer.data.rows(np.concatenate([val_index, anchor_index]))
        error, network, offset, misfit = trainer.held_out_terms(points)
        growth = trainer.model.gap_growth(points["time"])
        fixed = misfit + _observation_variance(trainer.config, points)
        snr = _log10_snr(trainer.config, points, error)
        inside = growth == 0.0  # in hours with training data
        beyond = ~inside
        if inside.sum() >= MIN_LEVEL_POINTS and beyond.any():
            (factor2,) = fit_variance(error[inside], network[np.newaxis, inside],
                                      fixed[inside], snr[inside])
            (rate,) = fit_variance(error[beyond], growth[np.newaxis, beyond],
                                   fixed[beyond] + factor2 * network[beyond], snr[beyond])
        else:
            factor2, rate = fit_variance(error, np.stack([network, growth]), fixed, snr)
        val = slice(0, len(val_index))
        z = standard_scores(error[val], (factor2 * network + rate * growth + fixed)[val],
                            snr[val])
        terms = {"sigma_factor": math.sqrt(factor2),
                 "sigma_gap_variance_rate": float(rate), "n_calibration": len(points),
                 "sigma_calibration_by_gap": errors_by_gap(
                     error[val], z, trainer.model.gap_hours(points["time"][val]))}
    terms, offset = trainer.world.object_from_main((terms, offset))
    trainer.model.calibrate_sigma(terms["sigma_factor"], offset, terms["sigma_gap_variance_rate"])
    return terms


def _validate(
    trainer: _Trainer, average: WeightAverage, idx: np.ndarray, started: float
) -> dict[str, float]:
    """The weight average's validation scores at ``idx``, and ``elapsed`` training seconds.

    Rank 0 validates and times; every rank takes its numbers, so that the early
    stopping, the best weights and the time limit are decided alike on all ranks
    (the others wait meanwhile).
    """
    scores: dict[str, float] = {}
    if trainer.world.main:
        with average.applied():
            scores = trainer.evaluate(idx)
        scores["elapsed"] = time.perf_counter() - started
    return trainer.world.object_from_main(scores)


def _collocation_count(config: FitConfig) -> int:
    """Number of collocation points of a step."""
    return max(1, int(round(config.collocation_fraction * config.batch_size)))


def _check_world(config: FitConfig, world: World) -> None:
    """Refuse a data-parallel fit whose steps cannot give every rank a share.

    Raises
    ------
    ConfigError
        Fewer points (or collocation points) per step than ranks.
    """
    physics = config.w_chapman > 0 or config.w_tec_direction > 0
    n_points = _collocation_count(config)
    if config.batch_size < world.size or (physics and n_points < world.size):
        raise ConfigError(
            f"fit: the {world.size} ranks share each step's batch_size = {config.batch_size} "
            f"points and its {n_points} collocation points (collocation_fraction = "
            f"{config.collocation_fraction:g}), so some rank would get none; give a "
            f"batch_size and collocation_fraction that make both >= {world.size}, or start "
            "fewer processes"
        )


def _resolve_config(
    config: FitConfig | Mapping[str, Any] | None, options: dict[str, Any]
) -> FitConfig:
    """The fit's config: ``config`` (a FitConfig or a mapping) with ``options`` on top."""
    fit_keywords = [n for n in inspect.signature(fit).parameters if n not in ("ds", "options")]
    check_retired(options, what="fit")
    check_option_names(
        options, [*FitConfig.__dataclass_fields__, *fit_keywords], what="fit"
    )
    if config is None:
        config = FitConfig()
    elif isinstance(config, Mapping):
        config = FitConfig.from_dict(config)
    elif not isinstance(config, FitConfig):
        raise ConfigError(
            f"fit: config is a {type(config).__name__}; pass an ionofield.FitConfig or a "
            "mapping of its fields, e.g. config={'max_steps': 2000}"
        )
    if not options:
        return config
    return FitConfig.from_dict({**config.to_dict(), **options})


@dataclass
class _FitState:
    """Where a fit is: steps taken, training time, the best validation so far, history."""

    step: int = 0
    elapsed: float = 0.0
    best_loss: float = float("inf")
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def progress(self, config: FitConfig) -> float:
        """Fraction of the budget spent: of the steps or of the time limit, the larger."""
        spent = self.step / config.max_steps
        if config.time_limit is not None:
            spent = max(spent, self.elapsed / config.time_limit)
        return spent

    def spent(self, config: FitConfig) -> bool:
        """Whether the budget is spent."""
        return self.progress(config) >= 1.0

    def record(self, row: dict[str, float], average: WeightAverage) -> bool:
        """Add a validation's row, keep the best weights; whether patience has run out."""
        self.history.append(row)
        if row["val_loss"] < self.best_loss:
            self.best_loss, self.best_step = row["val_loss"], row["step"]
            self.best_state = average.weights()
        patience = average.model.config.patience
        return patience > 0 and self.step - self.best_step >= patience


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="fit", unit="step", disable=not enabled,
                leave=False)


def _save_training_checkpoint(
    path: str | os.PathLike,
    model: RSTMRF,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage,
    rng: np.random.Generator,
    state: _FitState,
    seed: int,
    fingerprint: dict[str, Any],
) -> None:
    write_payload(path, TRAINING_CHECKPOINT_FORMAT, {
        "config": model.config.to_dict(),
        "seed": seed,
        "campaign": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "average": average.state_dict(),
        "step": state.step,
        "elapsed": state.elapsed,
        "best_loss": state.best_loss,
        "best_step": state.best_step,
        "best_state": state.best_state,
        "history": state.history,
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    })


def _read_training_checkpoint(
    path: str | os.PathLike, config: FitConfig, seed: int, fingerprint: dict[str, Any]
) -> dict[str, Any]:
    """Read a training checkpoint and check that it continues this very fit.

    Raises
    ------
    CheckpointError
        The file is truncated, damaged or no training checkpoint.
    ConfigError
        It was written by a fit of another campaign, seed or options (all differences
        are named).
    """
    payload = read_payload(
        path,
        tag=TRAINING_CHECKPOINT_FORMAT,
        what="an ionofield training checkpoint",
        fix="pass the file given as checkpoint= to an earlier fit",
    )
    # A checkpoint without an option added since was written with its ADDED_FIELDS value.
    saved = {k: v for k, v in {**ADDED_FIELDS, **payload["config"]}.items()
             if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    differing = sorted(k for k in saved if k in now and _norm(saved[k]) != _norm(now[k]))
    differences = fingerprint_differences(payload["campaign"], fingerprint)
    if payload["seed"] != seed:
        differences.append(f"another seed: {payload['seed']} then, {seed} now")
    if differing:
        values = ", ".join(f"{k} = {saved[k]!r} then, {now[k]!r} now" for k in differing)
        differences.append(f"different options {differing} ({values})")
    if differences:
        raise ConfigError(
            f"{path}: cannot resume: the checkpoint was written by a fit with "
            f"{'; '.join(differences)}. Resume with the campaign, seed and options it was "
            f"written with (only {', '.join(RESUMABLE_CHANGES)} may change), or start a new "
            "fit without resume="
        )
    return payload


def _restore(
    payload: dict[str, Any],
    model: RSTMRF,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage,
    rng: np.random.Generator,
) -> _FitState:
    """Put a training checkpoint's state into a fit's objects; the loop's state."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    average.load_state_dict(payload["average"])
    rng.bit_generator.state = payload["numpy_rng"]
    torch.set_rng_state(payload["torch_rng"])
    return _FitState(
        step=payload["step"],
        elapsed=payload["elapsed"],
        best_loss=payload["best_loss"],
        best_step=payload["best_step"],
        best_state=payload["best_state"],
        history=payload["history"],
    )


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

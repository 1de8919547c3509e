"""The fitted model users hold: :class:`RSTMRF`, and :func:`load_model`.

:class:`RSTMRF` is the torch network of :mod:`ionofield.nn.model` together with the
:class:`~ionofield.config.FitConfig` it was built from, the provenance of its fit
(``info``: period, observations, scores, loss history) and its persistence: a model
file stores the config and the ionofield version beside the weights
(:mod:`ionofield.checkpoint`), so that :func:`load_model` rebuilds it with no other
input, on any torch device (model files hold CPU tensors, whatever device wrote them).
"""

from __future__ import annotations

import html
import os
import textwrap
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from ionofield._device import resolve_device
from ionofield.checkpoint import read_payload, write_payload
from ionofield.config import ADDED_FIELDS, NETWORK_FIELDS, RETIRED_FIELDS, FitConfig
from ionofield.drivers import TimeInputs
from ionofield.errors import CheckpointError, ConfigError, IonofieldError, IonofieldWarning
from ionofield.features import temporal_features
from ionofield.magnetic import DEFAULT_MAGNETIC_EPOCH, dipole_axis, modip_table
from ionofield.nn.model import RSTMRFNetwork
from ionofield.timeutil import hours_from_data, to_datetime64

#: Tag identifying a model file written by :meth:`RSTMRF.save` (2: with a checksum).
MODEL_FORMAT = "ionofield-rstmrf-model/2"
#: Tags of model files of earlier versions that :func:`load_model` still reads.
LEGACY_MODEL_FORMATS = ("ionofield-rstmrf-model/1",)


class RSTMRF(RSTMRFNetwork):
    """A fitted (or fresh) R-STMRF model: the network, its config and its provenance.

    Build it with :func:`ionofield.fit` (or ``ds.rstmrf.fit``); rebuild a saved one
    with :func:`ionofield.load_model`.

    Parameters
    ----------
    config
        The :class:`~ionofield.config.FitConfig` whose architecture fields shape the
        network; the default config when omitted.
    info
        Provenance: training period, background settings, validation scores, loss
        history (JSON-serialisable values).

    Examples
    --------
    >>> model = RSTMRF(FitConfig(basis_dim=8, siren_hidden=16, siren_layers=1, use_env=False))
    >>> coords = torch.tensor([[10.0, 20.0, 300.0, 12.0]])
    >>> code = model.time_code(torch.zeros(1, 4), None, None)
    >>> [t.shape for t in model(coords, code)]
    [torch.Size([1]), torch.Size([1]), torch.Size([1])]
    """

    def __init__(self, config: FitConfig | None = None, *, info: dict[str, Any] | None = None):
        self_config = config if config is not None else FitConfig()
        super().__init__(**{name: getattr(self_config, name) for name in NETWORK_FIELDS})
        self.config = self_config
        self.info: dict[str, Any] = dict(info or {})
        if self_config.magnetic_inputs:
            self.set_magnetic_epoch(self.info.get("magnetic_epoch", DEFAULT_MAGNETIC_EPOCH))

    def encode_time(self, inputs: TimeInputs) -> torch.Tensor:
        """Temporal codes of distinct times from their driver arrays.

        Parameters
        ----------
        inputs
            From :meth:`ionofield.drivers.HourlyDrivers.time_inputs`.

        Returns
        -------
        torch.Tensor
            Shape [U, basis_dim], on the model's device (:meth:`time_code`).
        """
        param = next(self.parameters())
        weights = tuple(torch.as_tensor(w, device=param.device) for w in inputs.weights)
        return self.time_code(
            torch.as_tensor(inputs.features, dtype=param.dtype, device=param.device),
            torch.as_tensor(inputs.history, dtype=param.dtype, device=param.device),
            weights,
        )

    @property
    def device(self) -> torch.device:
        """The torch device the model's weights live on (read-only: move it with ``.to``).

        Returns
        -------
        torch.device
            ``device(type='cpu')``, ``device(type='cuda', index=0)``, ...
        """
        return next(self.parameters()).device

    def pin_season(self, day_of_year: float) -> None:
        """Give every time the season of ``day_of_year`` in the temporal code.

        :func:`ionofield.fit` pins the season to the middle of a campaign shorter than
        ``config.season_min_days``. Over a few days the residual's seasonal change
        is far below its day-to-day change, so the only thing a day-of-year input
        can teach the network there is which day is which: it then learns each
        day's storm as a function of the date, and carries that trend, not the
        response to the drivers, to the days it has not seen.

        Parameters
        ----------
        day_of_year
            Fractional day of the year (1.0 is 1 January, 00:00).
        """
        angle = temporal_features(np.zeros(1), np.array([day_of_year]))[0, 2:]
        super().pin_season(torch.from_numpy(angle))

    def set_magnetic_epoch(self, epoch: object) -> None:
        """Read the magnetic coordinates of the field of ``epoch`` (``magnetic_inputs``).

        Fills the modip table and the dipole axis of the spatial path
        (:meth:`set_magnetic_field`) from the IGRF on the day of ``epoch``, and records
        the day in ``info["magnetic_epoch"]``. A fresh model reads the field of
        :data:`~ionofield.magnetic.DEFAULT_MAGNETIC_EPOCH`; :func:`ionofield.fit` sets
        the middle of the campaign. The tables travel with the model's weights, so a
        saved model reconstructs with the field it was fitted with.

        Parameters
        ----------
        epoch
            A date within the IGRF's 1900-2030 (``datetime64``, ISO string, ...).

        Raises
        ------
        ConfigError
            The model was built without ``magnetic_inputs``.
        CoverageError
            ``epoch`` lies outside the IGRF's epochs.
        """
        if not self.config.magnetic_inputs:
            raise ConfigError(
                "set_magnetic_epoch: this model was built with magnetic_inputs=False and reads "
                "no magnetic coordinates; fit with magnetic_inputs=True to use them"
            )
        day = to_datetime64(epoch, name="magnetic epoch")[()].astype("datetime64[D]")
        self.set_magnetic_field(torch.tensor(modip_table(day)), torch.tensor(dipole_axis(day)))
        self.info["magnetic_epoch"] = str(day)

    def set_data_hours(self, hours: np.ndarray) -> None:
        """Record the whole hours that held training data (``info["data_hours"]``).

        They are kept as runs of consecutive hours, ``[first, last]`` ISO hours each
        (``[["2024-05-10T00", "2024-05-11T23"]]``), so a month costs a few entries.

        Parameters
        ----------
        hours
            datetime64 hours, any order, repeats allowed.
        """
        hours = np.unique(np.asarray(hours).astype("datetime64[h]"))
        breaks = np.flatnonzero(np.diff(hours) != np.timedelta64(1, "h")) + 1
        self.info["data_hours"] = [[str(run[0]), str(run[-1])]
                                   for run in np.split(hours, breaks) if run.size]

    @property
    def data_hours(self) -> np.ndarray:
        """The whole hours that held training data, ``datetime64[h]``, sorted.

        Empty for a model fitted before they were recorded, or not fitted.

        Returns
        -------
        numpy.ndarray
        """
        runs = [np.arange(np.datetime64(first, "h"), np.datetime64(last, "h") + 1)
                for first, last in self.info.get("data_hours", [])]
        return np.concatenate(runs) if runs else np.array([], dtype="datetime64[h]")

    def gap_hours(self, times: np.ndarray) -> np.ndarray:
        """Hours from times to the nearest hour that held training data.

        0 within those hours, the hours to the nearest of them elsewhere
        (:func:`~ionofield.timeutil.hours_from_data`), after the last one (a forecast)
        as between two of them. 0 everywhere for a model without the hours (files of
        earlier versions).

        Parameters
        ----------
        times
            datetime64 times, any shape.

        Returns
        -------
        numpy.ndarray
            float64, the shape of ``times``.
        """
        hours = self.data_hours
        if hours.size == 0:
            return np.zeros(np.shape(times))
        return hours_from_data(times, hours)

    def gap_growth(self, times: np.ndarray) -> np.ndarray:
        """How far times are from the training data, as the variance grows with it.

        ``sqrt(gap_hours(times))`` (:meth:`gap_hours`): 0 within the hours that held
        training data, growing as the square root of the hours to the nearest of them.
        ``gap_variance_rate`` is the variance per unit of it.

        Parameters
        ----------
        times
            datetime64 times, any shape.

        Returns
        -------
        numpy.ndarray
            float64, the shape of ``times``.
        """
        return np.sqrt(self.gap_hours(times))

    def gap_variance(self, times: np.ndarray) -> np.ndarray:
        """The term of ``ne_log10_sigma**2`` of times away from the training data.

        ``gap_variance_rate * gap_growth(times)`` (dex**2, :meth:`gap_growth`); 0
        everywhere for a model without the rate (files of earlier versions).

        Parameters
        ----------
        times
            datetime64 times, any shape.

        Returns
        -------
        numpy.ndarray
            float64, the shape of ``times``.
        """
        rate = float(self.gap_variance_rate)
        if rate == 0.0:
            return np.zeros(np.shape(times))
        return rate * self.gap_growth(times)

    @property
    def history(self) -> pd.DataFrame:
        """The loss history of the fit, one row per validation.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``step`` (optimiser steps taken; ``epoch`` for a model fitted
            by ionofield 0.1): ``elapsed_s`` (training seconds), each training loss
            term (mean over the steps since the previous row), ``lr``, ``val_loss``,
            ``val_rmse`` and the background's ``val_rmse_background``; empty for a
            model that was not fitted.
        """
        rows = self.info.get("history", [])
        if not rows:
            return pd.DataFrame(index=pd.Index([], name="step"))
        return pd.DataFrame(rows).set_index("step" if "step" in rows[0] else "epoch")

    def nonfinite_tensors(self) -> list[str]:
        """Names of the weights and buffers that hold NaN or infinite values.

        The buffers that are NaN by design (``column_misfit_offset`` and
        ``pinned_season`` when unset) are left out.

        Returns
        -------
        list of str
            Empty for a healthy model.
        """
        optional_nan = {"column_misfit_offset", "pinned_season"}
        bad = []
        for name, value in self.state_dict().items():
            values = value[~torch.isnan(value)] if name in optional_nan else value
            if value.is_floating_point() and not bool(torch.isfinite(values).all()):
                bad.append(name)
        return bad

    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically: weights, config, provenance, ionofield version.

        The file carries a checksum of its content, which :func:`load_model` verifies.
        It works from any device: the weights are written as CPU tensors, so the file
        loads on any machine, onto any device.

        Parameters
        ----------
        path
            Destination file (``.pt`` by convention).

        Raises
        ------
        CheckpointError
            Weights or buffers hold NaN or infinite values (nothing is written).
        """
        bad = self.nonfinite_tensors()
        if bad:
            raise CheckpointError(
                f"{path}: not written: the model's {_nonfinite(bad)}, so it predicts nothing; "
                "fit it again (ionofield.fit stops with a DivergenceError instead of returning "
                "such a model)"
            )
        write_payload(path, MODEL_FORMAT, {
            "config": self.config.to_dict(),
            "info": self.info,
            "state_dict": {name: value.cpu() for name, value in self.state_dict().items()},
        })

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _summary(self) -> dict[str, str]:
        info = self.info
        rows = {
            "training period": " to ".join(info["period"]) if "period" in info else "not fitted",
            "observations": str(info.get("n_obs", "-")),
            "parameters": f"{self.n_parameters():,}",
            "validation RMSE (log10 Ne)": _fmt(info.get("val_rmse")),
            "background RMSE (log10 Ne)": _fmt(info.get("val_rmse_background")),
            "background": str(info.get("background", {}).get("kind", "-")),
            **({"magnetic epoch": info["magnetic_epoch"]} if "magnetic_epoch" in info else {}),
            **_validation_row(info),
            "config": ", ".join(f"{k}={v}" for k, v in self.config.architecture().items()),
        }
        return rows

    def extra_repr(self) -> str:
        """Summary lines shown in the repr: period, data, scores, architecture."""
        return "\n".join(f"{k}: {v}" for k, v in self._summary().items())

    def __repr__(self) -> str:
        return "<ionofield.RSTMRF>\n" + textwrap.indent(self.extra_repr(), "  ")

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._summary().items()
        )
        return f"<div><strong>ionofield.RSTMRF</strong><table>{rows}</table></div>"


def _fmt(value: object) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _validation_row(info: dict[str, Any]) -> dict[str, str]:
    """The summary's lines on what the validation scores were computed on, and the test's."""
    if "held_out" not in info:  # not fitted, or fitted before this was recorded
        return {}
    test = {}
    if "test_rmse" in info:
        test = {"test (untouched by the fit)": (
            f"{info['n_test']} observations: RMSE {_fmt(info['test_rmse'])} (background "
            f"{_fmt(info['test_rmse_background'])}), {info['test_inside_1sigma']:.3f} "
            "within 1 sigma"
        )}
    validation = (
        f"{info['n_val']} held-out observations" if info["held_out"]
        else "NONE held out: scores are on the training data, sigma uncalibrated"
    )
    return {"validation": validation, **test}


def _nonfinite(names: list[str], limit: int = 5) -> str:
    """``tensors 'a', 'b' and 3 more hold NaN or infinite values`` (``limit`` names shown)."""
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    subject = f"tensors {shown}{more} hold" if len(names) > 1 else f"tensor {shown} holds"
    return f"{subject} NaN or infinite values"


def load_model(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> RSTMRF:
    """Rebuild a model written by :meth:`RSTMRF.save`, with no other input.

    The file is read and checked (format, checksum, finite weights) on the CPU, then
    the model is moved to ``device``; a file written on a GPU loads on a CPU-only
    machine and the other way round.

    Parameters
    ----------
    path
        The model file.
    device
        Where the model goes: ``"cpu"`` (the default), ``"auto"`` (the first GPU when
        torch sees one, else Apple's MPS when available, else the CPU), ``"cuda"``,
        ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`.

    Returns
    -------
    RSTMRF
        In eval mode, on ``device``.

    Raises
    ------
    ConfigError
        ``device`` is not a device, or this machine's torch cannot use it (checked
        before the file is read; the message says how to install a build that can).
    CheckpointError
        The file is truncated, damaged (its checksum does not match), not an
        ionofield model, its weights do not match its recorded config, or they hold
        NaN or infinite values.

    Warns
    -----
    IonofieldWarning
        The file was written by ionofield 0.1 (format ``ionofield-rstmrf-model/1``),
        without a checksum: damage to it cannot be detected. Saving it again adds one.
    """
    target = resolve_device(device)
    payload = read_payload(
        path,
        tag=MODEL_FORMAT,
        legacy=LEGACY_MODEL_FORMATS,
        what="an ionofield model",
        fix="training checkpoints are resumed with fit(..., resume=path), models are "
        "written by model.save(path)",
    )
    try:
        # Budget options of earlier versions did not shape the network: dropped.
        kept = {k: v for k, v in payload["config"].items() if k not in RETIRED_FIELDS}
        config = FitConfig.from_dict({**ADDED_FIELDS, **kept})
        model = RSTMRF(config, info=payload["info"])
        state = dict(payload["state_dict"])
        state.setdefault("log_var_shift", torch.zeros(()))  # files of 0.1.0: uncalibrated
        state.setdefault("column_misfit_offset", torch.tensor(float("nan")))
        state.setdefault("gap_variance_rate", torch.zeros(()))  # earlier files: no growth
        state.setdefault("pinned_season", torch.full((2,), float("nan")))
        for part in ("weight", "bias"):  # files before the head's tendency: persistence
            correction = state[f"direction_head.correction.{part}"]
            state.setdefault(f"direction_head.tendency.{part}", torch.zeros_like(correction))
        model.load_state_dict(state)
    except (KeyError, RuntimeError, IonofieldError) as exc:
        raise CheckpointError(
            f"{path}: written by ionofield {payload.get('ionofield_version')}, its weights "
            f"do not match its config ({exc}); refit or use the matching ionofield version"
        ) from exc
    bad = model.nonfinite_tensors()
    if bad:
        raise CheckpointError(
            f"{path}: the model's {_nonfinite(bad)} (a fit that diverged, saved by an "
            "ionofield that did not check): it predicts nothing; fit it again"
        )
    if "checksum" not in payload:
        warnings.warn(
            f"{path}: written by ionofield {payload.get('ionofield_version')} in format "
            f"{payload['format']!r}, which has no checksum: damage to the file cannot be "
            "detected (its weights were checked to be finite); save it again with "
            "model.save(path) to add one",
            IonofieldWarning,
            stacklevel=2,
        )
    return model.to(target).eval()

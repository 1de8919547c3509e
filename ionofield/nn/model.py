"""The R-STMRF network: IRI background plus a learned log10 residual.

``log10 Ne(x, t) = log10 Ne_background(x, t) + residual(x, t)``

* spatial path: SIREN over the unit-sphere position, altitude and local time;
* temporal path: SIREN over universal time and day of year (held at the campaign's
  middle day for short campaigns, :meth:`RSTMRF.pin_season`), plus the additive shift
  ``beta(z_env)`` of an LSTM over the recent Kp / F10.7 history;
* decoder: ``concat(h_spatial, h_temporal + beta(z_env))`` -> residual, log-variance;
* TEC path (loss only): ConvLSTM over the last ``seq_len`` hourly TEC maps and a
  direction head anchored to the finite-difference TEC gradient. It never enters the
  forward value of Ne.

Everything here is plain torch on tensors; xarray lives one layer up.
"""

from __future__ import annotations

import html
import math
import os
import textwrap
from typing import Any

import numpy as np
import torch
from torch import nn

from ionofield._files import atomic_path
from ionofield._version import __version__
from ionofield.config import FitConfig
from ionofield.errors import CheckpointError, IonofieldError
from ionofield.nn.recurrent import (
    ConvLSTM,
    DirectionHead,
    EnvironmentEncoder,
    reference_direction,
)
from ionofield.nn.siren import Siren

#: Altitude normalisation (km): the network sees ``(alt - ALT_CENTER) / ALT_SCALE``.
ALT_CENTER_KM = 350.0
ALT_SCALE_KM = 250.0
#: TEC normalisation (TECU) of the ConvLSTM input.
TEC_SCALE = 50.0
#: Number of spatial input features (unit sphere 3, altitude 1, local time 2).
SPATIAL_FEATURES = 6
#: Number of temporal input features (UT angle 2, day-of-year angle 2).
TEMPORAL_FEATURES = 4
#: Number of space-weather drivers read by the LSTM (Kp, Kp memory, F10.7, F10.7
#: 81-day mean).
DRIVER_FEATURES = 4
#: Weight of the previous 3-hour slot in the Kp memory (Wrenn 1987's ap(tau), tau =
#: 0.7): an e-folding time of -3 h / ln 0.7 = 8.4 h.
KP_MEMORY_DECAY_PER_SLOT = 0.7
#: log-variance offset so that the initial predicted sigma of log10 Ne is about 0.1.
LOG_VAR_OFFSET = 2.0 * math.log(0.1)
#: Tag identifying a model file written by :meth:`RSTMRF.save`.
CHECKPOINT_FORMAT = "ionofield-rstmrf-model/1"


def kp_memory(kp: np.ndarray) -> np.ndarray:
    """Exponentially weighted past Kp of an hourly series (Wrenn's ap(tau) on Kp).

    ``m[t] = a * m[t - 1] + (1 - a) * kp[t]`` with ``a = 0.7 ** (1 / 3)``, the hourly
    form of Wrenn's (1987) weight 0.7 per 3-hour slot: an e-folding time of 8.4 h.
    The storm-time composition change that depletes the F region (the negative
    phase) builds up and decays on this scale, and so outlasts Kp itself; the
    memory gives the LSTM that state however short its window. Before the first
    hour Kp is taken to have been steady at its first value, so a campaign that
    opens during or just after a storm should start its driver axis a day
    earlier (``ionofield.campaign(..., period=...)``) for the memory to know of it.

    Parameters
    ----------
    kp
        Hourly Kp, shape [T].

    Returns
    -------
    numpy.ndarray
        float64, shape [T].

    Examples
    --------
    >>> m = kp_memory(np.r_[np.zeros(3), np.full(30, 9.0)])
    >>> float(m[2]), round(float(m[3]), 2), round(float(m[-1]), 2)
    (0.0, 1.01, 8.75)
    """
    kp = np.asarray(kp, dtype=np.float64)
    decay = KP_MEMORY_DECAY_PER_SLOT ** (1.0 / 3.0)
    memory = np.empty_like(kp)
    state = kp[0] if kp.size else 0.0
    for t, value in enumerate(kp):
        state = decay * state + (1.0 - decay) * value
        memory[t] = state
    return memory


def driver_features(kp: np.ndarray, f107: np.ndarray, f107_81: np.ndarray) -> np.ndarray:
    """Normalise hourly Kp / F10.7 drivers for the LSTM.

    Parameters
    ----------
    kp, f107, f107_81
        Hourly Kp (0-9), F10.7 and its 81-day mean (sfu), shape [T], in time order.

    Returns
    -------
    numpy.ndarray
        float32, shape [T, 4]: ``kp / 9``, ``kp_memory(kp) / 9`` (:func:`kp_memory`),
        ``(f107 - 150) / 100``, ``(f107_81 - 150) / 100``.
    """
    return np.stack(
        [np.asarray(kp) / 9.0, kp_memory(kp) / 9.0, (np.asarray(f107) - 150.0) / 100.0,
         (np.asarray(f107_81) - 150.0) / 100.0],
        axis=-1,
    ).astype(np.float32)


def temporal_features(ut_hours: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Periodic time code of the temporal SIREN.

    Universal time and season enter as angles, so the code is defined on any day,
    including days outside the training period.

    Parameters
    ----------
    ut_hours
        Universal time in hours [0, 24), shape [N].
    day_of_year
        Fractional day of year (1 = 1 January 00:00), shape [N].

    Returns
    -------
    numpy.ndarray
        float32, shape [N, 4]: sin/cos of the UT angle and of the day-of-year angle.
    """
    ut = 2.0 * np.pi * np.asarray(ut_hours) / 24.0
    season = 2.0 * np.pi * (np.asarray(day_of_year) - 1.0) / 365.25
    return np.stack([np.sin(ut), np.cos(ut), np.sin(season), np.cos(season)], -1).astype(
        np.float32
    )


def spatial_features(coords: torch.Tensor) -> torch.Tensor:
    """Spatial code of the SIREN, continuous across the antimeridian and at the poles.

    Parameters
    ----------
    coords
        Shape [N, 4]: latitude (deg N), longitude (deg E), altitude (km), universal
        time (hours). Gradients flow to latitude, longitude and altitude.

    Returns
    -------
    torch.Tensor
        Shape [N, 6]: the unit-sphere position (x, y, z), the normalised altitude, and
        the local-time angle as a vector ``cos(lat) * (sin LT, cos LT)`` (it shrinks to
        zero at the poles, where local time is undefined, so the code is single-valued
        there).
    """
    lat = torch.deg2rad(coords[:, 0])
    lon = torch.deg2rad(coords[:, 1])
    alt = (coords[:, 2] - ALT_CENTER_KM) / ALT_SCALE_KM
    local_time = 2.0 * math.pi * coords[:, 3] / 24.0 + lon
    cos_lat = torch.cos(lat)
    return torch.stack(
        [
            cos_lat * torch.cos(lon),
            cos_lat * torch.sin(lon),
            torch.sin(lat),
            alt,
            cos_lat * torch.sin(local_time),
            cos_lat * torch.cos(local_time),
        ],
        dim=-1,
    )


class RSTMRF(nn.Module):
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
    [torch.Size([1]), torch.Size([1])]
    """

    def __init__(self, config: FitConfig | None = None, *, info: dict[str, Any] | None = None):
        super().__init__()
        self.config = config if config is not None else FitConfig()
        self.info: dict[str, Any] = dict(info or {})
        c = self.config
        self.spatial = Siren(SPATIAL_FEATURES, c.siren_hidden, c.siren_layers, c.basis_dim,
                             w0=c.w0, w0_first=c.w0)
        self.temporal = Siren(TEMPORAL_FEATURES, c.siren_hidden, c.siren_layers, c.basis_dim,
                              w0=c.w0, w0_first=c.w0)
        self.environment = (
            EnvironmentEncoder(c.basis_dim, n_features=DRIVER_FEATURES, hidden=c.env_hidden)
            if c.use_env
            else None
        )
        self.decoder = nn.Sequential(
            nn.Linear(2 * c.basis_dim, c.siren_hidden),
            nn.SiLU(),
            nn.Linear(c.siren_hidden, c.siren_hidden),
            nn.SiLU(),
            nn.Linear(c.siren_hidden, 2),
        )
        with torch.no_grad():  # start at the background: residual ~0, sigma ~0.1
            self.decoder[-1].weight.mul_(0.01)
            self.decoder[-1].bias.zero_()
        # ln of the squared sigma calibration factor, set after a fit (calibrate_sigma).
        self.register_buffer("log_var_shift", torch.zeros(()))
        # Campaign median of the TEC maps' column misfit, subtracted before it enters
        # sigma (ionofield.reconstruct.ColumnMisfit); NaN: sigma does not take it.
        self.register_buffer("column_misfit_offset", torch.tensor(float("nan")))
        # sin/cos of the day-of-year angle that every time takes in the temporal code,
        # set by pin_season for campaigns too short to show a seasonal change; NaN:
        # each time its own.
        self.register_buffer("pinned_season", torch.full((2,), float("nan")))
        self.convlstm = ConvLSTM(1, c.tec_feat_dim, c.convlstm_layers)
        self.direction_head = DirectionHead(c.tec_feat_dim)

    # -- temporal path ---------------------------------------------------------------
    def time_code(
        self,
        time_feats: torch.Tensor,
        history: torch.Tensor | None,
        weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Temporal code ``h_temporal + beta(z_env)`` of distinct times.

        The LSTM runs once per distinct whole hour; a time between two hours gets
        the cosine-squared blend of their shifts (DESIGN.md §3).

        Parameters
        ----------
        time_feats
            Shape [U, 4], from :func:`temporal_features`.
        history
            Driver history ending at each distinct hour, shape [H, env_len, 4];
            ignored (may be None) without an environment encoder.
        weights
            ``(i0, i1, w0, w1)``, each shape [U]: for each time, the rows of
            ``history`` of the hours before and after it and their weights.

        Returns
        -------
        torch.Tensor
            Shape [U, basis_dim].
        """
        if bool(torch.isfinite(self.pinned_season).all()):
            season = self.pinned_season.expand(len(time_feats), 2)
            time_feats = torch.cat([time_feats[:, :2], season], dim=1)
        code = self.temporal(time_feats)
        if self.environment is None:
            return code
        shift = self.environment(history)
        i0, i1, w0, w1 = weights
        return code + w0[:, None] * shift[i0] + w1[:, None] * shift[i1]

    # -- main path -------------------------------------------------------------------
    def forward(
        self,
        coords: torch.Tensor,
        time_code: torch.Tensor,
        time_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Residual of log10 Ne over the background and its log-variance at points.

        The decoder's first layer acts on ``concat(h_spatial, time_code)``; its time
        half is computed once per row of ``time_code`` (once per distinct time), not
        once per point.

        Parameters
        ----------
        coords
            Shape [N, 4]: latitude (deg), longitude (deg), altitude (km), UT (hours).
        time_code
            :meth:`time_code` rows: shape [N, basis_dim] (one per point), [1,
            basis_dim] (shared by all points), or [U, basis_dim] with ``time_index``.
        time_index
            Shape [N]: the row of ``time_code`` of each point.

        Returns
        -------
        residual, log_var
            Each shape [N].
        """
        first = self.decoder[0]
        n_space = self.config.basis_dim
        time_half = nn.functional.linear(time_code, first.weight[:, n_space:], first.bias)
        if time_index is not None:
            time_half = time_half[time_index]
        h_spatial = self.spatial(spatial_features(coords))
        hidden = nn.functional.linear(h_spatial, first.weight[:, :n_space]) + time_half
        out = self.decoder[1:](hidden)
        return out[:, 0], out[:, 1] + (LOG_VAR_OFFSET + self.log_var_shift)

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
        with torch.no_grad():
            self.pinned_season.copy_(torch.from_numpy(angle))

    def calibrate_sigma(self, factor: float, column_misfit_offset: float = math.nan) -> None:
        """Multiply the network's sigma by ``factor`` from now on.

        :func:`ionofield.fit` calls it with the factor that, together with the TEC
        maps' column misfit, best describes the held-out periods' errors
        (:func:`~ionofield.training.sigma_scale`).

        Parameters
        ----------
        factor
            Positive factor.
        column_misfit_offset
            The campaign's median column misfit: ``ne_log10_sigma**2`` is then the
            network's variance plus ``(misfit - offset)**2``
            (:class:`~ionofield.reconstruct.ColumnMisfit`). NaN leaves the misfit out.
        """
        with torch.no_grad():
            self.log_var_shift.add_(2.0 * math.log(factor))
            self.column_misfit_offset.fill_(column_misfit_offset)

    # -- TEC path (loss only) --------------------------------------------------------
    def tec_direction(
        self, tec_seq: torch.Tensor, lat_deg: torch.Tensor, lon_deg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Horizontal direction field of the TEC path, one per map sequence.

        Parameters
        ----------
        tec_seq
            Hourly TEC maps in TECU, oldest first, shape [U, seq_len, H, W], on a grid of
            W distinct meridians (without the duplicated 180 deg column).
        lat_deg, lon_deg
            The maps' latitudes (ascending) and longitudes, shapes [H] and [W].

        Returns
        -------
        direction, reference
            Each shape [U, 2, H, W], (north, east) components in the spherical
            metric: the head's field and the unit finite-difference gradient of the
            latest map it is anchored to.
        """
        reference = reference_direction(tec_seq[:, -1], lat_deg, lon_deg)
        features = self.convlstm((tec_seq / TEC_SCALE).unsqueeze(2))
        return self.direction_head(features, reference), reference

    # -- persistence and display -----------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically: weights, config, provenance, ionofield version.

        Parameters
        ----------
        path
            Destination file (``.pt`` by convention).
        """
        payload = {
            "format": CHECKPOINT_FORMAT,
            "ionofield_version": __version__,
            "config": self.config.to_dict(),
            "info": self.info,
            "state_dict": self.state_dict(),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

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


def read_payload(path: str | os.PathLike, *, tag: str, what: str, fix: str) -> dict[str, Any]:
    """Read a file written with ``torch.save`` and check its format tag.

    Parameters
    ----------
    path
        The file.
    tag
        The ``"format"`` entry the payload must carry.
    what
        What the file should be, for messages ("an ionofield model").
    fix
        What to do when the file is of another kind.

    Returns
    -------
    dict
        The payload (loaded with ``weights_only=True``: no code runs).

    Raises
    ------
    CheckpointError
        The file is truncated, damaged, or not ``what``.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path}: cannot be read as {what} ({type(exc).__name__}: {exc}); the file is "
            "truncated or damaged: write it again"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != tag:
        raise CheckpointError(f"{path}: not {what} file (no format tag {tag!r}); {fix}")
    return payload


def load_model(path: str | os.PathLike) -> RSTMRF:
    """Rebuild a model written by :meth:`RSTMRF.save`, with no other input.

    Parameters
    ----------
    path
        The model file.

    Returns
    -------
    RSTMRF
        In eval mode.

    Raises
    ------
    CheckpointError
        The file is truncated, not an ionofield model, or its weights do not match
        its recorded config.
    """
    payload = read_payload(
        path,
        tag=CHECKPOINT_FORMAT,
        what="an ionofield model",
        fix="training checkpoints are resumed with fit(..., resume=path), models are "
        "written by model.save(path)",
    )
    try:
        config = FitConfig.from_dict(payload["config"])
        model = RSTMRF(config, info=payload["info"])
        state = dict(payload["state_dict"])
        state.setdefault("log_var_shift", torch.zeros(()))  # files of 0.1.0: uncalibrated
        state.setdefault("column_misfit_offset", torch.tensor(float("nan")))
        state.setdefault("pinned_season", torch.full((2,), float("nan")))
        model.load_state_dict(state)
    except (KeyError, RuntimeError, IonofieldError) as exc:
        raise CheckpointError(
            f"{path}: written by ionofield {payload.get('ionofield_version')}, its weights "
            f"do not match its config ({exc}); refit or use the matching ionofield version"
        ) from exc
    return model.eval()

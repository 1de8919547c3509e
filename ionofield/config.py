"""Configuration of an R-STMRF fit: one documented dataclass.

The defaults are the seed's (``basis_dim`` 64, ``siren_hidden`` 128, ``seq_len`` 6,
``tec_feat_dim`` 16, ``convlstm_layers`` 1, ``w_chapman`` 0.1, ``w_tec_direction``
0.03, ``batch_size`` 2048, ``lr`` 3e-4, ``grad_clip`` 1.0). The seed's budget of 50
epochs is replaced by a budget of optimiser steps (``max_steps``) and, optionally,
wall-clock time (``time_limit``): see :class:`FitConfig`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ionofield.errors import ConfigError

#: Fields of :class:`FitConfig` that are the network's constructor arguments
#: (:class:`ionofield.nn.model.RSTMRFNetwork`).
NETWORK_FIELDS = (
    "basis_dim",
    "siren_hidden",
    "siren_layers",
    "w0",
    "env_hidden",
    "tec_feat_dim",
    "convlstm_layers",
    "use_env",
    "magnetic_inputs",
    "profile_shift",
)
#: Fields of :class:`FitConfig` that shape the model (its network and the driver
#: windows it reads), shown in its summary.
ARCHITECTURE_FIELDS = (*NETWORK_FIELDS[:5], "env_len", "seq_len", *NETWORK_FIELDS[5:])
#: Fields added since the first model files, and the value of each that files
#: without it were written with.
ADDED_FIELDS = {"observation_errors": "none", "val_tail_hours": 0.0, "profile_shift": False,
                "noise_likelihood": "log"}
#: Fields of earlier versions, and what replaced them (their values are refused with
#: this advice; a model file that records them loads, as they did not shape it).
RETIRED_FIELDS = {
    "epochs": "max_steps (optimiser steps; a step draws batch_size points) or time_limit "
    "(seconds)",
    "weight_average_epochs": "weight_average_steps",
}


#: Floating-point precisions of the network's matrix products: ``"bfloat16"`` runs
#: them under :func:`torch.autocast` (the weights, the reductions and the output
#: layer stay float32); ``"auto"`` is bfloat16 where the device computes it natively,
#: float32 elsewhere (:func:`ionofield._device.resolve_precision`).
Precision = Literal["auto", "float32", "bfloat16"]


@dataclass(frozen=True)
class FitConfig:
    """Options of :func:`ionofield.fit`.

    Attributes
    ----------
    basis_dim
        Width of the spatial and temporal codes ``h_spatial`` and ``h_temporal``.
    siren_hidden
        Width of the hidden SIREN layers.
    siren_layers
        Number of hidden SIREN layers in each path.
    w0
        SIREN frequency factor (Sitzmann et al. use 30 for images). Our inputs are
        unit-sphere coordinates, so 30 gives structures a few degrees wide that sparse
        profiles cannot constrain; 5 generalised best in the OSSE
        (``benchmarks/osse.py``: held-out skill 0.41 against 0.10 for 30).
    env_hidden
        Hidden size of the LSTM over the Kp / F10.7 history.
    env_len
        Hours of Kp / F10.7 history the LSTM reads (storm responses lag Kp by hours;
        older storms reach it through the Kp memory,
        :func:`~ionofield.features.kp_memory`). 12 generalised best to the recovery
        of the OSSE's held-out day (``benchmarks/osse.py``, two worlds): 24 let the
        fit carry the storm's hmF2 uplift into the recovery, 6 lost part of the
        negative phase.
    seq_len
        Hourly TEC maps the ConvLSTM reads.
    tec_feat_dim
        ConvLSTM channels.
    convlstm_layers
        ConvLSTM layers.
    loss
        ``"nll"`` (heteroscedastic Gaussian on log10 Ne) or ``"mse"``.
    observation_errors
        The observations' own errors in the NLL (``loss = "nll"``): each point's
        variance of log10 Ne is the network's plus the observation's ``sigma_obs**2``
        (the user guide's "Observation errors"). ``"auto"`` takes ``sigma_obs`` from
        the campaign's ``ne_err`` (``ne_err / (ne ln 10)``) where it is given, and from
        the RO error model of :mod:`ionofield.ro_errors` (by altitude relative to the
        background's hmF2, latitude and local time) elsewhere; ``"model"`` uses the
        model everywhere; ``"none"`` leaves the network's variance alone (the
        behaviour before the option existed, which model files and training
        checkpoints without it are read with). The reconstructed
        ``ne_log10_sigma`` stays the network's: the uncertainty of the field, not of
        an observation of it.
    noise_likelihood
        How a point with a known ``ne_err`` enters the NLL (with ``observation_errors
        = "auto"``). ``"truncated"``: as Ne observed with additive Gaussian noise of
        standard deviation ``ne_err``, only its positive values kept, which is how RO
        retrievals and the readers' dropping of non-positive values make it
        (:func:`~ionofield.nn.losses.gaussian_nll`'s second form); the sigma
        calibration after the fit uses the same likelihood. ``"log"``: as log10 Ne
        with ``sigma_obs`` as above, which leans towards the noise's upward draws
        where the noise is comparable to Ne (the bottomside at night, depletions;
        the behaviour before the option existed, which model files and training
        checkpoints without it are read with).
    w_chapman
        Weight of the Chapman smoothness loss (second altitude derivative of the residual).
    chapman_scale_km
        Length L over which that curvature is measured: the loss is
        ``mean((L**2 d2r/dz2)**2)``. 100 km penalises vertical wiggles while leaving
        the residual of a moved or reshaped Chapman layer (scale heights ~50-70 km)
        learnable; longer lengths weight the penalty up as L**4.
    w_tec_direction
        Weight of the TEC gradient-direction consistency loss ``1 - cos``.
    w_tec_anchor
        Weight that keeps the direction head near the finite-difference TEC gradient
        of the map at its hour (every hour; with ``w_tec_forecast > 0``, the hours
        with a native map).
    w_tec_forecast
        Weight of the TEC path's self-supervised forecast. 0 (the default): every
        hour's aligned TEC map is the hour's own (the odd hours of a 2-hourly product
        interpolated in time, :func:`~ionofield.align.align_tec`) and the head is
        anchored to its gradient. Above 0: the ConvLSTM reads the native maps only,
        at an hour without one the direction is the head's at its lead after the
        latest map, and the head learns that from the maps themselves: its direction
        at the next native map's time, from the maps strictly before it, against
        that map's finite-difference direction (``1 - cos``). Off by default: on the
        ``structured`` OSSE world with 2-hourly maps (``benchmarks/tec_path.py``) the
        learnt direction at the hours between maps agreed with the truth's no better
        than persistence of the latest map (mean cosine 0.827 against 0.826), while
        the interpolated map's gradient agreed at 0.905. Runs only with the
        direction loss and in campaigns with hours without a native map.
    use_env
        Use the LSTM environment shift (``False`` is the ablation without it).
    magnetic_inputs
        Give the spatial path two magnetic coordinates besides the geographic ones:
        the modified dip latitude (modip) of the IGRF at the campaign's epoch, which
        orders the equatorial anomaly along the real dip equator, and magnetic local
        time about the centred dipole's axis, which orders the auroral oval and storm
        phases (:mod:`ionofield.magnetic`, :func:`ionofield.nn.model.magnetic_features`).
        Off by default: on ``benchmarks/osse.py`` (seeds 0-2) it changed the held-out
        skill within the seeds' scatter (0.457 against 0.454; per seed -0.011,
        +0.012, +0.008), hmF2 RMSE (23.1 against 23.3 km) and sigma coverage (0.604
        against 0.598), for 1.16x the network's cost per step. That world is ordered
        by a centred dipole and geographic local time, so it cannot show what
        real data ordered by the dip equator and MLT may gain.
    profile_shift
        Let the network raise or lower the background's profile at each point
        (:meth:`ionofield.background.BackgroundField.raised`), besides adding its
        residual: a storm's uplift of hmF2, or a background whose hmF2 is off, changes
        the bottomside by tenths of a dex, following the background's steep slope
        there, which one shift per place and time describes and an additive residual
        must learn point by point. On by default; files of earlier versions load
        without it.
    collocation_fraction
        Number of collocation points of each step, as a fraction of ``batch_size``:
        the physics losses (double backward) run there. They are drawn uniformly on
        the sphere within the observed latitudes and altitudes and over the whole
        campaign period, so the TEC maps constrain the hours without profiles too.
    collocation_hours
        The collocation points of a step lie at this many random whole hours of the
        campaign, so the ConvLSTM runs for few hours per step.
    season_min_days
        A fit whose profiles span fewer days than this holds the day-of-year part of
        the temporal code at the middle of their period
        (:meth:`~ionofield.RSTMRF.pin_season`): within a few days a changing season
        code only tells the days apart, and the network learns each day's storm as a
        trend in the date instead of a response to the drivers (``benchmarks/osse.py``,
        mean of seeds 0-2, latest weights: held-out skill 0.345 with the date's season,
        0.479 pinned). 0 always uses each time's own season.
    physics_alt_range
        Altitudes (km) where the TEC direction loss applies (the F region the TEC
        gradient speaks for).
    precision
        ``"float32"`` (the default), or ``"bfloat16"`` to run the training steps'
        network and losses under :func:`torch.autocast` with bfloat16 (matrix products
        in bfloat16, reductions and the weights in float32), or ``"auto"`` for
        bfloat16 where the device computes it natively and float32 elsewhere. On a CPU with AVX-512
        BF16 it made a step 1.35x faster (0.066-0.071 against 0.089-0.096 s, all
        terms, one thread), and kept the skill on ``benchmarks/osse.py`` (0.458 against
        0.455 in float32, mean of seeds 0-2). Validation and calibration run in
        float32 whatever it is; a reconstruction takes its own ``precision=``
        (:func:`ionofield.reconstruct`).
    batch_size, lr, grad_clip, weight_decay
        Optimiser settings (Adam). The learning rate is ``lr`` for the first half of
        the budget, then decays along a half cosine to ``lr / 20`` at its end, so the
        weights settle within the budget whatever its length.
    max_steps
        The fit's budget in optimiser steps. Each step draws ``batch_size`` points
        that weigh every profile alike (:class:`~ionofield.sampling.ProfileSampler`),
        so the budget does not grow with the number of levels or profiles: the
        information is in the profiles and hours, not in the 400th level of a
        profile. 4000 steps reached the skill of the former 50-epoch default on
        ``benchmarks/osse.py`` (0.542 against 0.525, mean of seeds 0-2) in half its
        time there, and in a fraction of it on denser campaigns; see the user guide's
        "How long will my fit take".
    time_limit
        Optional wall-clock budget of the training loop in seconds (the preparation
        of the background and the data comes before it). The fit ends at whichever
        of ``max_steps`` and ``time_limit`` comes first, and the learning-rate
        schedule follows the larger fraction of the two spent. A fit under a time
        limit is not bit-for-bit reproducible (the number of steps depends on the
        machine).
    eval_every
        Steps between two validations (one row of ``model.history`` each, and the
        points where the best weights are kept, checkpoints written and the time
        limit checked).
    validation_points
        The validation scores, early stopping and the calibration of sigma use a
        fixed random subsample of at most this many held-out points, so that they
        cost the same whatever the campaign's size.
    weight_average_steps
        The model kept and validated is the exponential moving average of the
        weights over about this many of the optimiser's last steps; 0 keeps the
        latest weights (``benchmarks/osse.py``, mean of seeds 0-2, measured with
        ``env_len`` 24: held-out skill 0.479 with the latest weights, 0.506 averaged
        over 5 epochs, some 450 steps).
    batch_hours
        Whole hours each batch draws its points from: more hours average a step's
        gradient over more of the storm, at the cost of running the environment
        LSTM for more hours per batch. Four cost no measurable time over one, and
        lifted the OSSE's reanalysis skill at the default budget (docs/benchmarks.rst,
        "Hours per batch").
    val_fraction
        Fraction of the observation period held out for validation, in whole
        blocks of ``val_block_hours`` (with every profile in them). Early stopping
        and the calibration of the predicted sigma use it.
    test_fraction
        Fraction of the observation period set aside as an independent test, in
        whole blocks of ``val_block_hours`` drawn before the validation blocks (which
        are then a ``val_fraction`` of the blocks left). Neither training, early
        stopping nor the calibration of sigma sees it; after the fit, the calibrated
        model is scored on it (``model.info["test_rmse"]``, ``"test_rmse_background"``,
        ``"test_inside_1sigma"``, ``"n_test"``), so that score is not flattered by the
        choices the validation steered. 0 (the default) sets nothing aside.
    calibration_fraction
        Fraction of the training profiles, drawn at random (whole profiles), kept out
        of the training for the calibration of sigma alone. They lie in hours the fit
        has data in, where the validation blocks have none: with both, the
        calibration sees errors at 0 hours from the data and further, and fits how
        sigma grows with that distance (user guide, "Uncertainty"). 0 calibrates on
        the validation blocks alone.
    val_block_hours
        Length (hours) of the held-out blocks.
    val_tail_hours
        Hours at the end of the observation period (after the test blocks are set
        aside) held out for validation as well, with every profile that starts in
        them; the ``val_fraction`` blocks are then drawn from the hours before. The
        validation blocks lie between hours with data, at most ``val_block_hours`` / 2
        from them; the tail lets the calibration of sigma see how errors grow after
        the data end, as in a forecast (user guide, "Uncertainty"). Its profiles are
        not trained on, so a reconstruction of the observed period loses them. 0 (the
        default) holds out no tail.
    patience
        Steps without validation improvement before early stopping (0 disables it).
        The validation loss of single validations scatters by more than its trend
        over a few hundred steps (each step sees few hours), so a short patience
        stops on a lucky validation.
    checkpoint_every
        Write the training checkpoint at the first validation after every this many
        steps (when a path is given), and at the end.
    background_alt, background_lat_step, background_lon_step
        The IRI background cube: altitudes ``(start, stop, step)`` in km and the
        horizontal steps in degrees. Hourly in time.
    """

    basis_dim: int = 64
    siren_hidden: int = 128
    siren_layers: int = 3
    w0: float = 5.0
    env_hidden: int = 32
    env_len: int = 12
    seq_len: int = 6
    tec_feat_dim: int = 16
    convlstm_layers: int = 1
    loss: Literal["nll", "mse"] = "nll"
    observation_errors: Literal["auto", "model", "none"] = "auto"
    noise_likelihood: Literal["truncated", "log"] = "truncated"
    w_chapman: float = 0.1
    chapman_scale_km: float = 100.0
    w_tec_direction: float = 0.03
    w_tec_anchor: float = 1.0
    w_tec_forecast: float = 0.0
    use_env: bool = True
    magnetic_inputs: bool = False
    profile_shift: bool = True
    collocation_fraction: float = 0.1
    collocation_hours: int = 1
    physics_alt_range: tuple[float, float] = (150.0, 600.0)
    season_min_days: float = 30.0
    batch_size: int = 2048
    batch_hours: int = 4
    max_steps: int = 4000
    time_limit: float | None = None
    eval_every: int = 200
    validation_points: int = 32768
    weight_average_steps: int = 500
    lr: float = 3e-4
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    precision: Precision = "float32"
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    calibration_fraction: float = 0.05
    val_block_hours: float = 3.0
    val_tail_hours: float = 0.0
    patience: int = 1500
    checkpoint_every: int = 1000
    background_alt: tuple[float, float, float] = (60.0, 1000.0, 10.0)
    background_lat_step: float = 2.5
    background_lon_step: float = 5.0

    def __new__(cls, *args: Any, **options: Any) -> FitConfig:
        """Refuse unknown and retired option names, which ``__init__`` would take as a TypeError."""
        check_retired(options, what="FitConfig")
        check_option_names(options, [f.name for f in dataclasses.fields(cls)], what="FitConfig")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        problems = []
        for item in dataclasses.fields(self):
            value, problem = _coerce(item.name, _field_types()[item.name], getattr(self, item.name))
            if problem:
                problems.append(problem)
            else:
                object.__setattr__(self, item.name, value)  # frozen: set the normalised value
        if not problems:
            problems = self._range_problems()
        if problems:
            raise ConfigError("FitConfig: " + "; ".join(problems))

    def _range_problems(self) -> list[str]:
        """What is out of range among fields of the right types."""
        problems = []
        for name in ("basis_dim", "siren_hidden", "siren_layers", "env_len", "seq_len",
                     "tec_feat_dim", "convlstm_layers", "batch_size", "batch_hours",
                     "max_steps", "eval_every", "validation_points", "collocation_hours",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} = {getattr(self, name)} must be >= 1")
        for name in ("w_chapman", "w_tec_direction", "w_tec_anchor", "w_tec_forecast",
                     "weight_decay", "patience",
                     "weight_average_steps", "season_min_days", "grad_clip", "val_tail_hours"):
            if getattr(self, name) < 0:
                problems.append(f"{name} = {getattr(self, name)} must be >= 0")
        for name in ("lr", "w0", "chapman_scale_km", "val_block_hours", "background_lat_step",
                     "background_lon_step"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} = {getattr(self, name)} must be > 0")
        if self.time_limit is not None and self.time_limit <= 0:
            problems.append(f"time_limit = {self.time_limit} must be > 0 seconds, or None")
        if not 0 < self.collocation_fraction <= 1:
            problems.append(f"collocation_fraction = {self.collocation_fraction} must be in (0, 1]")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction = {self.val_fraction} must be in [0, 1)")
        if not 0 <= self.test_fraction < 1:
            problems.append(f"test_fraction = {self.test_fraction} must be in [0, 1)")
        if not 0 <= self.calibration_fraction < 1:
            problems.append(
                f"calibration_fraction = {self.calibration_fraction} must be in [0, 1)")
        if self.physics_alt_range[0] > self.physics_alt_range[1]:
            problems.append(f"physics_alt_range = {self.physics_alt_range} must be (low, high)")
        start, stop, step = self.background_alt
        if not (start < stop and step > 0):
            problems.append(
                f"background_alt = {self.background_alt} must be (start, stop, step) with "
                "start < stop and step > 0"
            )
        return problems

    @classmethod
    def memory_constrained(cls, **overrides: Any) -> FitConfig:
        """Preset for machines with little memory (the seed's "< 8 GB" settings).

        Parameters
        ----------
        **overrides
            Any field to set on top of the preset.

        Returns
        -------
        FitConfig
        """
        preset = dict(batch_size=512, seq_len=4, basis_dim=48, siren_hidden=96)
        return cls(**{**preset, **overrides})

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> FitConfig:
        """Build a config from a mapping (e.g. a JSON or TOML file), rejecting unknown keys.

        Parameters
        ----------
        options
            Field names and values (lists are taken for the tuple fields).

        Returns
        -------
        FitConfig

        Raises
        ------
        ConfigError
            A key is not a field (the message suggests the closest field names), or a
            value has the wrong type or is out of range.

        Examples
        --------
        >>> FitConfig.from_dict({"max_steps": 300, "physics_alt_range": [150, 500]}).max_steps
        300
        """
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"FitConfig options must be a mapping of field names to values; got "
                f"{type(options).__name__}: pass a dict such as {{'max_steps': 2000}}"
            )
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping of every field (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def architecture(self) -> dict[str, Any]:
        """The keyword arguments that build the network."""
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS}

    def digest(self) -> str:
        """Short stable hash of the config, recorded in outputs for provenance."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_option_names(given: Iterable[str], valid: Iterable[str], *, what: str) -> None:
    """Refuse option names that are not among ``valid``, suggesting the closest ones.

    Parameters
    ----------
    given
        The names passed.
    valid
        The names accepted.
    what
        Who takes the options, e.g. ``"fit"``; it starts the message.

    Raises
    ------
    ConfigError
        Naming each unknown option, the valid names closest to it (``difflib``) and
        every valid name.

    Examples
    --------
    >>> try:
    ...     check_option_names(["epoch"], ["epochs", "lr"], what="fit")
    ... except ConfigError as exc:
    ...     print(exc)
    fit: unknown option 'epoch' (did you mean 'epochs'?); valid options: 'epochs', 'lr'
    """
    valid = sorted(valid)
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        described.append(f"{name!r}{hint}")
    raise ConfigError(
        f"{what}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(described)}; "
        f"valid options: {', '.join(repr(v) for v in valid)}"
    )


def check_retired(given: Iterable[str], *, what: str) -> None:
    """Refuse options of earlier versions (:data:`RETIRED_FIELDS`), naming what replaced them.

    Raises
    ------
    ConfigError
        Naming each retired option and its replacement.

    Examples
    --------
    >>> try:
    ...     check_retired(["epochs"], what="fit")
    ... except ConfigError as exc:
    ...     print(str(exc)[:60])
    fit: 'epochs' was retired in ionofield 0.2: use max_steps (o
    """
    retired = [name for name in given if name in RETIRED_FIELDS]
    if retired:
        raise ConfigError(
            f"{what}: "
            + "; ".join(f"{name!r} was retired in ionofield 0.2: use {RETIRED_FIELDS[name]}"
                        for name in retired)
            + " (the user guide's 'How long will my fit take' gives the budgets)"
        )


@functools.cache
def _field_types() -> dict[str, Any]:
    """The resolved type annotation of every :class:`FitConfig` field."""
    return typing.get_type_hints(FitConfig)


def _coerce(name: str, kind: Any, value: Any) -> tuple[Any, str | None]:
    """A field's value in its canonical type, or what is wrong with it.

    ints stay ints (numpy integers become ``int``), numbers become finite ``float``,
    flags ``bool``, pairs and triples of numbers ``tuple`` of ``float``; ``bool`` is
    no number here, and neither is text.
    """
    default = {f.name: f.default for f in dataclasses.fields(FitConfig)}[name]
    if isinstance(kind, types.UnionType):  # X | None
        if value is None:
            return None, None
        (kind,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
    wrong = f"{name} = {value!r} ({type(value).__name__}) must be"
    is_flag = isinstance(value, (bool, np.bool_))
    if kind is bool:
        return (bool(value), None) if is_flag else (value, f"{wrong} True or False")
    if kind is int:
        if isinstance(value, numbers.Integral) and not is_flag:
            return int(value), None
        return value, f"{wrong} an int, e.g. {default}"
    if kind is float:
        if not isinstance(value, numbers.Real) or is_flag:
            return value, f"{wrong} a number, e.g. {default}"
        if not math.isfinite(value):
            return value, f"{wrong} a finite number, e.g. {default}"
        return float(value), None
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if value in choices:
            return value, None
        return value, f"{wrong} one of {', '.join(repr(c) for c in choices)}"
    # tuple[float, ...] of a fixed length
    size = len(typing.get_args(kind))
    expected = f"{wrong} {size} finite numbers, e.g. {default}"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        return value, expected
    items = [_coerce(name, float, item) for item in value]
    if len(items) != size or any(problem for _, problem in items):
        return value, expected
    return tuple(item for item, _ in items), None

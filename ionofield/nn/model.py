"""The R-STMRF network: a learned log10 residual over the background, in plain torch.

``log10 Ne(x, t) = log10 Ne_background(alt - shift(x, t), ...) + residual(x, t)``
(``shift`` is zero without the profile shift)

* spatial path: SIREN over the unit-sphere position, altitude and local time, and
  optionally modip and magnetic local time (:func:`magnetic_features`);
* temporal path: SIREN over universal time and day of year (held at the campaign's
  middle day for short campaigns, :meth:`ionofield.RSTMRF.pin_season`), plus the additive shift
  ``beta(z_env)`` of an LSTM over the recent Kp / F10.7 history;
* decoder: ``concat(h_spatial, h_temporal + beta(z_env))`` -> residual, log-variance
  and, optionally, a profile shift: the height (km) by which the background's profile
  rises at the point (:meth:`ionofield.background.BackgroundField.raised`), so that the
  whole bottomside follows a change of hmF2;
* TEC path (loss only): ConvLSTM over the last ``seq_len`` hourly TEC maps and a
  direction head anchored to the finite-difference TEC gradient. It never enters the
  forward value of Ne.

Everything here is plain torch on tensors, built from keyword arguments: no
configuration object, no files, no xarray. :class:`ionofield.RSTMRF` adds the fit's
configuration, provenance and persistence on top.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ionofield.features import DRIVER_FEATURES, TEMPORAL_FEATURES
from ionofield.magnetic import MODIP_TABLE_SHAPE
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
#: Number of magnetic input features added to them (modip 1, magnetic local time 2).
MAGNETIC_FEATURES = 3
#: log-variance offset so that the initial predicted sigma of log10 Ne is about 0.1.
LOG_VAR_OFFSET = 2.0 * math.log(0.1)
#: The network's sigma of log10 Ne (dex) lies within these bounds (before the
#: calibration factor): below 1e-3 dex (0.2 %) is finer than any retrieval, above 3 dex
#: (a factor 1000) says nothing. Unbounded, the log-variance head extrapolated to
#: 6 dex and more at a few points of an unseen storm day (``benchmarks/osse.py``).
SIGMA_BOUNDS_DEX = (1.0e-3, 3.0)
#: The profile shift's bound (km): ``shift = MAX_SHIFT_KM * tanh(output)``. Storms move
#: hmF2 by tens of km, up to about 100.
MAX_SHIFT_KM = 100.0


def bounded_log_var(raw: torch.Tensor) -> torch.Tensor:
    """``raw`` log-variance softly clamped to ``2 ln SIGMA_BOUNDS_DEX``.

    Within the bounds the clamp is the identity to within ``exp(-distance)`` (1e-3 at
    sigma 0.1 dex); beyond them it flattens smoothly, so the gradient never vanishes
    abruptly.

    Examples
    --------
    >>> values = bounded_log_var(torch.tensor([-100.0, 2 * math.log(0.1), 100.0]))
    >>> [round(float(v), 3) for v in (values / 2).exp()]
    [0.001, 0.1, 3.0]
    """
    low, high = (2.0 * math.log(bound) for bound in SIGMA_BOUNDS_DEX)
    above_low = low + nn.functional.softplus(raw - low)
    return high - nn.functional.softplus(high - above_low)


def spatial_features(
    coords: torch.Tensor, magnetic: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Spatial code of the SIREN, continuous across the antimeridian and at the poles.

    Parameters
    ----------
    coords
        Shape [N, 4]: latitude (deg N), longitude (deg E), altitude (km), universal
        time (hours). Gradients flow to latitude, longitude and altitude.
    magnetic
        The modip table and dipole axis (:func:`magnetic_features`), to append the
        magnetic features; None leaves them out.

    Returns
    -------
    torch.Tensor
        Shape [N, 6] (``SPATIAL_FEATURES``), or [N, 9] with ``magnetic``: the
        unit-sphere position (x, y, z), the normalised altitude, and the local-time
        angle as a vector ``cos(lat) * (sin LT, cos LT)`` (it shrinks to zero at the
        poles, where local time is undefined, so the code is single-valued there);
        then :func:`magnetic_features`.
    """
    lat = torch.deg2rad(coords[:, 0])
    lon = torch.deg2rad(coords[:, 1])
    alt = (coords[:, 2] - ALT_CENTER_KM) / ALT_SCALE_KM
    local_time = 2.0 * math.pi * coords[:, 3] / 24.0 + lon
    cos_lat = torch.cos(lat)
    position = torch.stack([cos_lat * torch.cos(lon), cos_lat * torch.sin(lon), torch.sin(lat)],
                           dim=-1)
    features = [
        position,
        alt[:, None],
        (cos_lat * torch.sin(local_time))[:, None],
        (cos_lat * torch.cos(local_time))[:, None],
    ]
    if magnetic is not None:
        features.append(magnetic_features(coords, position, *magnetic))
    return torch.cat(features, dim=-1)


def modip_at(table: torch.Tensor, lat_deg: torch.Tensor, lon_deg: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of a global modip table at points.

    Gradients flow to ``lat_deg`` and ``lon_deg`` (and to second order, through
    plain tensor operations).

    Parameters
    ----------
    table
        Shape [H, W]: rows latitudes -90..90 deg, columns longitudes -180..180 deg
        (both ends), evenly spaced (:func:`ionofield.magnetic.modip_table`).
    lat_deg, lon_deg
        Shape [N], degrees; longitudes in any range.

    Returns
    -------
    torch.Tensor
        Shape [N], the table's units.

    Examples
    --------
    >>> table = torch.tensor([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0], [8.0, 8.0, 8.0]])
    >>> modip_at(table, torch.tensor([0.0, 45.0, -90.0]), torch.tensor([0.0, 0.0, 540.0]))
    tensor([4., 6., 0.])
    """
    n_lat, n_lon = table.shape
    y = (lat_deg + 90.0) * ((n_lat - 1) / 180.0)
    x = torch.remainder(lon_deg + 180.0, 360.0) * ((n_lon - 1) / 360.0)
    row = y.detach().floor().clamp(0, n_lat - 2)
    col = x.detach().floor().clamp(0, n_lon - 2)
    ty, tx = y - row, x - col
    corner = (row * n_lon + col).long()
    flat = table.reshape(-1)
    south = flat[corner] * (1.0 - tx) + flat[corner + 1] * tx
    north = flat[corner + n_lon] * (1.0 - tx) + flat[corner + n_lon + 1] * tx
    return south * (1.0 - ty) + north * ty


def magnetic_features(
    coords: torch.Tensor, position: torch.Tensor, modip_table: torch.Tensor,
    dipole_axis: torch.Tensor,
) -> torch.Tensor:
    """Modip and magnetic local time of points, as network inputs.

    Magnetic local time (MLT) is the angle, about the centred dipole's axis, between
    a point and the mean sun (the sun on the equator at 12 h local mean time; the
    declination and the equation of time, left out, move the subsolar magnetic
    meridian by up to 27 min of MLT, 12 min RMS over a year). It enters as the
    vector ``cos(mlat) * (sin MLT, cos MLT)`` with ``mlat`` the dipole latitude,
    polynomial in the position (no angle is taken), which shrinks to zero at the
    dipole's poles where MLT is undefined, as the local-time code does at the
    geographic ones.

    Parameters
    ----------
    coords
        Shape [N, 4]: latitude (deg), longitude (deg), altitude (km), UT (hours).
    position
        Shape [N, 3]: the points' unit vectors (x to 0 deg E, y to 90 deg E, z north).
    modip_table
        Shape [H, W], degrees (:func:`modip_at`).
    dipole_axis
        Shape [3]: unit vector of the northern geomagnetic pole
        (:func:`ionofield.magnetic.dipole_axis`).

    Returns
    -------
    torch.Tensor
        Shape [N, 3]: ``modip / 90``, then ``cos(mlat) * sin(2 pi MLT / 24)`` and
        ``cos(mlat) * cos(2 pi MLT / 24)`` (MLT 0 at magnetic midnight, 12 on the
        magnetic meridian of the mean sun).
    """
    modip = modip_at(modip_table, coords[:, 0], coords[:, 1]) / 90.0
    sun_lon = math.pi * (1.0 - coords[:, 3] / 12.0)  # the mean sun's meridian
    sun = torch.stack([torch.cos(sun_lon), torch.sin(sun_lon), torch.zeros_like(sun_lon)], -1)
    noon = sun - (sun * dipole_axis).sum(-1, keepdim=True) * dipole_axis
    noon = noon / noon.norm(dim=-1, keepdim=True)
    dusk = torch.linalg.cross(dipole_axis.expand_as(noon), noon, dim=-1)
    # MLT angle from midnight: pi + the angle from noon towards dusk (eastward).
    sin_mlt = -(position * dusk).sum(-1)
    cos_mlt = -(position * noon).sum(-1)
    return torch.stack([modip, sin_mlt, cos_mlt], dim=-1)


class RSTMRFNetwork(nn.Module):
    """The R-STMRF network: spatial and temporal SIRENs, environment LSTM, decoder, TEC path.

    Parameters
    ----------
    basis_dim
        Width of the spatial and temporal codes ``h_spatial`` and ``h_temporal``.
    siren_hidden
        Width of the hidden SIREN and decoder layers.
    siren_layers
        Hidden SIREN layers in each path.
    w0
        SIREN frequency factor of every layer.
    env_hidden
        Hidden size of the LSTM over the drivers.
    tec_feat_dim
        ConvLSTM channels.
    convlstm_layers
        ConvLSTM layers.
    use_env
        Build the environment LSTM (``False``: the temporal code is the SIREN's alone).
    magnetic_inputs
        Add modip and magnetic local time to the spatial path's inputs
        (:func:`magnetic_features`), from the buffers ``modip_table`` and
        ``dipole_axis``, NaN until :meth:`set_magnetic_field` fills them; ``False``
        builds the geographic-only network, without those buffers.
    profile_shift
        Give the decoder a third output, the profile shift (km, bounded by
        :data:`MAX_SHIFT_KM`); ``False``: the shift is zero.

    Examples
    --------
    >>> net = RSTMRFNetwork(basis_dim=8, siren_hidden=16, siren_layers=1, use_env=False)
    >>> coords = torch.tensor([[10.0, 20.0, 300.0, 12.0]])
    >>> code = net.time_code(torch.zeros(1, 4), None, None)
    >>> [t.shape for t in net(coords, code)]
    [torch.Size([1]), torch.Size([1]), torch.Size([1])]
    """

    def __init__(
        self,
        *,
        basis_dim: int = 64,
        siren_hidden: int = 128,
        siren_layers: int = 3,
        w0: float = 5.0,
        env_hidden: int = 32,
        tec_feat_dim: int = 16,
        convlstm_layers: int = 1,
        use_env: bool = True,
        magnetic_inputs: bool = False,
        profile_shift: bool = False,
    ) -> None:
        super().__init__()
        self.basis_dim = basis_dim
        self.magnetic_inputs = magnetic_inputs
        self.profile_shift = profile_shift
        n_spatial = SPATIAL_FEATURES + (MAGNETIC_FEATURES if magnetic_inputs else 0)
        self.spatial = Siren(n_spatial, siren_hidden, siren_layers, basis_dim,
                             w0=w0, w0_first=w0)
        self.temporal = Siren(TEMPORAL_FEATURES, siren_hidden, siren_layers, basis_dim,
                              w0=w0, w0_first=w0)
        self.environment = (
            EnvironmentEncoder(basis_dim, n_features=DRIVER_FEATURES, hidden=env_hidden)
            if use_env
            else None
        )
        self.decoder = nn.Sequential(
            nn.Linear(2 * basis_dim, siren_hidden),
            nn.SiLU(),
            nn.Linear(siren_hidden, siren_hidden),
            nn.SiLU(),
            nn.Linear(siren_hidden, 3 if profile_shift else 2),
        )
        with torch.no_grad():  # start at the background: residual ~0, shift ~0, sigma ~0.1
            self.decoder[-1].weight.mul_(0.01)
            self.decoder[-1].bias.zero_()
        # ln of the squared sigma calibration factor, set after a fit (calibrate_sigma).
        self.register_buffer("log_var_shift", torch.zeros(()))
        # Campaign median of the TEC maps' column misfit, subtracted before it enters
        # sigma (ionofield.prediction.ColumnMisfit); NaN: sigma does not take it.
        self.register_buffer("column_misfit_offset", torch.tensor(float("nan")))
        # Variance (dex^2) sigma gains per square-root hour of distance from the hours
        # with training data (ionofield.RSTMRF.gap_variance), set by calibrate_sigma.
        self.register_buffer("gap_variance_rate", torch.zeros(()))
        # sin/cos of the day-of-year angle that every time takes in the temporal code,
        # set by pin_season for campaigns too short to show a seasonal change; NaN:
        # each time its own.
        self.register_buffer("pinned_season", torch.full((2,), float("nan")))
        if magnetic_inputs:
            self.register_buffer("modip_table", torch.full(MODIP_TABLE_SHAPE, float("nan")))
            self.register_buffer("dipole_axis", torch.full((3,), float("nan")))
        self.convlstm = ConvLSTM(1, tec_feat_dim, convlstm_layers)
        self.direction_head = DirectionHead(tec_feat_dim)

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
            Shape [U, 4], from :func:`ionofield.features.temporal_features`.
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
        """Residual of log10 Ne, its log-variance and the profile shift at points.

        The model's log10 Ne is the background's raised by the shift
        (:meth:`ionofield.background.BackgroundField.raised`), plus the residual.

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
        residual, log_var, shift_km
            Each shape [N]; the shift is zeros without ``profile_shift``.
        """
        first = self.decoder[0]
        n_space = self.basis_dim
        time_half = nn.functional.linear(time_code, first.weight[:, n_space:], first.bias)
        if time_index is not None:
            time_half = time_half[time_index]
        magnetic = (self.modip_table, self.dipole_axis) if self.magnetic_inputs else None
        h_spatial = self.spatial(spatial_features(coords, magnetic))
        hidden = nn.functional.linear(h_spatial, first.weight[:, :n_space]) + time_half
        hidden = self.decoder[1:-1](hidden)
        # The output layer in float32 under autocast too: bfloat16's 8 bits would round
        # sigma by up to 0.4 % and the residual by up to 0.002 dex, for a 128 x 2 product.
        last = self.decoder[-1]
        with torch.autocast(hidden.device.type, enabled=False):
            out = last(hidden.to(last.weight.dtype))
        log_var = bounded_log_var(out[:, 1] + LOG_VAR_OFFSET) + self.log_var_shift
        shift = (MAX_SHIFT_KM * torch.tanh(out[:, 2]) if self.profile_shift
                 else torch.zeros_like(out[:, 0]))
        return out[:, 0], log_var, shift

    def pin_season(self, season: torch.Tensor) -> None:
        """Give every time the season ``season`` in the temporal code.

        Parameters
        ----------
        season
            sin and cos of the day-of-year angle, shape [2]
            (:func:`ionofield.features.temporal_features`); NaN unpins.
        """
        with torch.no_grad():
            self.pinned_season.copy_(season)

    def set_magnetic_field(self, modip_table: torch.Tensor, dipole_axis: torch.Tensor) -> None:
        """Set the magnetic frame the spatial path reads (``magnetic_inputs`` only).

        Parameters
        ----------
        modip_table
            Modip in degrees, shape ``MODIP_TABLE_SHAPE`` (:func:`modip_at`).
        dipole_axis
            Unit vector of the northern geomagnetic pole, shape [3].
        """
        with torch.no_grad():
            self.modip_table.copy_(modip_table)
            self.dipole_axis.copy_(dipole_axis)

    def calibrate_sigma(
        self, factor: float, column_misfit_offset: float = math.nan, gap_variance_rate: float = 0.0
    ) -> None:
        """Multiply the network's sigma by ``factor`` from now on, and set the other terms.

        :func:`ionofield.fit` calls it with the terms that best describe the held-out
        errors (:func:`~ionofield.calibration.fit_variance`).

        Parameters
        ----------
        factor
            Positive factor.
        column_misfit_offset
            The campaign's median column misfit: ``ne_log10_sigma**2`` then takes
            ``(misfit - offset)**2`` (:class:`~ionofield.prediction.ColumnMisfit`).
            NaN leaves the misfit out.
        gap_variance_rate
            Variance (dex**2) ``ne_log10_sigma**2`` gains per square-root hour of
            distance from the hours with training data
            (:meth:`ionofield.RSTMRF.gap_variance`), >= 0.
        """
        with torch.no_grad():
            self.log_var_shift.add_(2.0 * math.log(factor))
            self.column_misfit_offset.fill_(column_misfit_offset)
            self.gap_variance_rate.fill_(gap_variance_rate)

    # -- TEC path (loss only) --------------------------------------------------------
    def tec_features(
        self, tec_seq: torch.Tensor, lat_deg: torch.Tensor, lon_deg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ConvLSTM features of map sequences and the latest map's unit gradient.

        Parameters
        ----------
        tec_seq
            TEC maps in TECU, oldest first, shape [U, seq_len, H, W], on a grid of W
            distinct meridians (without the duplicated 180 deg column).
        lat_deg, lon_deg
            The maps' latitudes (ascending) and longitudes, shapes [H] and [W].

        Returns
        -------
        features, reference
            Shapes [U, tec_feat_dim, H, W] and [U, 2, H, W]: what the direction head
            reads, and the unit finite-difference gradient (north, east) of the latest
            map, in the spherical metric.
        """
        reference = reference_direction(tec_seq[:, -1], lat_deg, lon_deg)
        return self.convlstm((tec_seq / TEC_SCALE).unsqueeze(2)), reference

    def direction_field(
        self,
        tec_seq: torch.Tensor,
        lat_deg: torch.Tensor,
        lon_deg: torch.Tensor,
        lead_hours: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Horizontal direction field of the TEC path, one per map sequence.

        Parameters
        ----------
        tec_seq
            TEC maps in TECU, oldest first, shape [U, seq_len, H, W] (see
            :meth:`tec_features`).
        lat_deg, lon_deg
            The maps' latitudes (ascending) and longitudes, shapes [H] and [W].
        lead_hours
            Hours from each sequence's latest map to the field's time, shape [U];
            None: 0, the field at the latest map.

        Returns
        -------
        direction, reference
            Each shape [U, 2, H, W], (north, east) components in the spherical
            metric: the head's field and the unit finite-difference gradient of the
            latest map it is anchored to.
        """
        features, reference = self.tec_features(tec_seq, lat_deg, lon_deg)
        if lead_hours is None:
            lead_hours = tec_seq.new_zeros(tec_seq.shape[0])
        return self.direction_head(features, reference, lead_hours), reference

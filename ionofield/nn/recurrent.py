"""Recurrent encoders of R-STMRF: space-weather LSTM, TEC-map ConvLSTM, direction head.

Grid convention for every map here (ConvLSTM input, features, direction fields):
shape ``(..., H, W)``, rows at latitudes ``lat0 + i * dlat`` (monotonic, IONEX
ascending -87.5..87.5 by 2.5 after a flip of the file's order) and columns at ``W``
*distinct* meridians ``lon0 + j * dlon`` with ``W * dlon = 360``. Native IONEX maps
have 73 columns, -180..180, whose first and last are the same meridian: drop the last
column (``tec[..., :-1]``, 72 meridians) before these modules so that the
longitude wrap is exact.

Padding on the sphere (:func:`pad_sphere`): circular in longitude (the globe wraps)
and replicate in latitude. Replicate is chosen over zero padding because the
inputs (TEC, in TECU) and the hidden states are far from zero at the map's edge
rows (+-87.5 deg): zero padding would put an artificial cliff there that every
convolution would see as a strong poleward gradient. Replicating the edge row
instead gives a zero meridional difference across the boundary, which is close to
the truth near the pole, where a smooth field tends to one value.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from ionofield.errors import ConfigError
from ionofield.nn.losses import ArrayLike, spherical_gradient, unit
from ionofield.sphere import Cells, axis_cells, interpolate, longitude_cells

__all__ = [
    "ConvLSTM",
    "ConvLSTMCell",
    "DirectionHead",
    "EnvironmentEncoder",
    "LEAD_SCALE_H",
    "pad_sphere",
    "reference_direction",
    "sample_direction",
]


def pad_sphere(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad maps by ``pad`` cells: circular in longitude, replicate in latitude.

    Parameters
    ----------
    x
        Maps, shape ``(N, C, H, W)`` with ``W`` distinct meridians.
    pad
        Cells added on each side of both spatial dimensions (0 returns ``x``).

    Returns
    -------
    torch.Tensor
        Shape ``(N, C, H + 2 pad, W + 2 pad)``.

    Examples
    --------
    >>> x = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> pad_sphere(x, 1)[0, 0]
    tensor([[2., 0., 1., 2., 0.],
            [2., 0., 1., 2., 0.],
            [5., 3., 4., 5., 3.],
            [5., 3., 4., 5., 3.]])
    """
    if pad == 0:
        return x
    x = F.pad(x, (0, 0, pad, pad), mode="replicate")
    return F.pad(x, (pad, pad, 0, 0), mode="circular")


def _check_odd(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(
            f"kernel_size={kernel_size}: the spherical padding keeps the map size only for "
            "odd kernel sizes; use 1, 3, 5, ..."
        )


class EnvironmentEncoder(nn.Module):
    """LSTM over the recent space-weather history, giving an additive shift.

    ``z_env`` is the LSTM's hidden state after the last (most recent) step;
    ``beta`` maps it linearly to the shift added to the temporal features
    (``h_temporal + beta(z_env)``, DESIGN.md §3). ``beta``'s weight and bias start
    at zero, so the shift is exactly 0 at initialisation and the environment path
    grows from there (its LSTM receives gradients from the second step on, once
    ``beta``'s weight has moved away from zero).

    Parameters
    ----------
    out_features
        Size of the shift (the width of the temporal features it is added to).
    n_features
        Drivers per time step (R-STMRF's: Kp, Kp memory, F10.7, F10.7 81-day mean),
        expected standardised to order 1 by the caller.
    hidden
        LSTM width, the size of ``z_env``.
    num_layers
        Stacked LSTM layers.

    Examples
    --------
    >>> enc = EnvironmentEncoder(64)
    >>> shift = enc(torch.randn(8, 6, 4))
    >>> shift.shape, bool((shift == 0).all())
    (torch.Size([8, 64]), True)
    """

    def __init__(
        self, out_features: int, *, n_features: int = 4, hidden: int = 32, num_layers: int = 1
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=num_layers, batch_first=True)
        self.beta = nn.Linear(hidden, out_features)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """Environment state ``z_env``.

        Parameters
        ----------
        history
            Driver history, shape ``(batch, seq, n_features)``, oldest step first.

        Returns
        -------
        torch.Tensor
            ``z_env``, shape ``(batch, hidden)``.
        """
        out, _ = self.lstm(history)
        return out[:, -1]

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Additive shift ``beta(z_env)``.

        Parameters
        ----------
        history
            Driver history, shape ``(batch, seq, n_features)``, oldest step first.

        Returns
        -------
        torch.Tensor
            Shape ``(batch, out_features)``.
        """
        return self.beta(self.encode(history))


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step on spherical maps (Shi et al. 2015 gates, no peepholes).

    The four gates come from one convolution of ``concat(x, h)`` after
    :func:`pad_sphere`, so the map size is kept and longitude wraps.

    Parameters
    ----------
    in_ch
        Input channels.
    hidden_ch
        Hidden and cell-state channels.
    kernel_size
        Odd convolution size.

    Examples
    --------
    >>> cell = ConvLSTMCell(1, 4)
    >>> h, c = cell(torch.zeros(2, 1, 5, 8))
    >>> h.shape
    torch.Size([2, 4, 5, 8])
    """

    def __init__(self, in_ch: int, hidden_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        _check_odd(kernel_size)
        self.hidden_ch = hidden_ch
        self.pad = kernel_size // 2
        self.gates = nn.Conv2d(in_ch + hidden_ch, 4 * hidden_ch, kernel_size, padding=0)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance one step.

        Parameters
        ----------
        x
            Input maps, shape ``(N, in_ch, H, W)``.
        state
            ``(h, c)``, each ``(N, hidden_ch, H, W)``; zeros when None.

        Returns
        -------
        tuple of torch.Tensor
            The new ``(h, c)``, each ``(N, hidden_ch, H, W)``.
        """
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_ch, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        z = self.gates(pad_sphere(torch.cat([x, h], dim=1), self.pad))
        i, f, o, g = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM over a sequence of maps; returns the last hidden state.

    Parameters
    ----------
    in_ch
        Channels per input map (1 for TEC, scaled to order 1 by the caller, e.g.
        TECU / 50).
    hidden_ch
        Channels of every layer.
    num_layers
        Stacked layers; layer ``k > 0`` reads layer ``k - 1``'s hidden states.
    kernel_size
        Odd convolution size.

    Notes
    -----
    Input maps follow the module's grid convention: ``W`` distinct meridians (72 for
    IONEX after dropping the repeated +180 column), so that the circular padding
    joins -180 to +175 exactly. The result is then equivariant to longitude shifts:
    rolling the input by ``k`` columns rolls the output by ``k`` columns.

    Examples
    --------
    >>> net = ConvLSTM(hidden_ch=4)
    >>> net(torch.zeros(2, 3, 1, 5, 8)).shape
    torch.Size([2, 4, 5, 8])
    """

    def __init__(
        self, in_ch: int = 1, hidden_ch: int = 16, num_layers: int = 1, kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.hidden_ch = hidden_ch
        self.cells = nn.ModuleList(
            ConvLSTMCell(in_ch if k == 0 else hidden_ch, hidden_ch, kernel_size)
            for k in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the sequence.

        Parameters
        ----------
        x
            Map sequences, shape ``(N, seq, in_ch, H, W)``, oldest first.

        Returns
        -------
        torch.Tensor
            Last hidden state of the last layer, shape ``(N, hidden_ch, H, W)``.
        """
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.cells)
        for t in range(x.shape[1]):
            inp = x[:, t]
            for k, cell in enumerate(self.cells):
                states[k] = cell(inp, states[k])
                inp = states[k][0]
        return inp


def reference_direction(
    tec: torch.Tensor, lat_deg: ArrayLike, lon_deg: ArrayLike, *, eps: float = 1e-12
) -> torch.Tensor:
    """Compute the unit spherical TEC-gradient direction, the anchor of :class:`DirectionHead`.

    Parameters
    ----------
    tec
        TEC maps (the latest of each window), shape ``(N, H, W)``, any units.
    lat_deg
        Row latitudes in degrees, shape ``(H,)``.
    lon_deg
        Column longitudes in degrees, shape ``(W,)``: a global uniform axis
        (see :func:`ionofield.nn.losses.spherical_gradient`).
    eps
        Gradient norms at or below this give a zero direction.

    Returns
    -------
    torch.Tensor
        Shape ``(N, 2, H, W)``: (north, east) components of
        ``grad TEC / |grad TEC|``, in the metric of
        :func:`ionofield.nn.losses.spherical_gradient`.
    """
    return unit(spherical_gradient(tec, lat_deg, lon_deg), dim=-3, eps=eps)


LEAD_SCALE_H = 2.0
"""Hours of lead that the direction head's tendency is scaled by (a 2-hourly product's gap)."""


class DirectionHead(nn.Module):
    """Horizontal direction field from ConvLSTM features, anchored to the TEC gradient.

    ``direction = reference + offset(features) + lead / LEAD_SCALE_H * tendency(features)``,
    where ``reference`` is the unit TEC-gradient direction of the latest map
    (:func:`reference_direction`), ``lead`` the hours from that map to the time the
    field is wanted (0 at the map itself), and ``offset`` and ``tendency`` two
    convolutions (spherical padding) whose weights and biases start at zero: the head
    starts exactly at the data gradient (persistence at any lead) and learns departures
    from it. The tendency is the ConvLSTM's job: how the gradient direction evolves
    after the latest map, learnt from the maps' own sequence (the direction of a later
    map: the fit's ``tec_forecast`` loss, :class:`ionofield.FitConfig` ``w_tec_forecast``).
    The output is not normalised (the direction loss normalises).

    Parameters
    ----------
    hidden_ch
        Feature channels (the ConvLSTM's ``hidden_ch``).
    kernel_size
        Odd size of the two convolutions (1 or 3 typically).

    Examples
    --------
    >>> head = DirectionHead(4)
    >>> ref = torch.randn(2, 2, 5, 8)
    >>> bool(torch.equal(head(torch.randn(2, 4, 5, 8), ref, torch.tensor([0.0, 3.0])), ref))
    True
    """

    def __init__(self, hidden_ch: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        _check_odd(kernel_size)
        self.pad = kernel_size // 2
        self.correction = nn.Conv2d(hidden_ch, 2, kernel_size, padding=0)
        self.tendency = nn.Conv2d(hidden_ch, 2, kernel_size, padding=0)
        for conv in (self.correction, self.tendency):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(
        self, features: torch.Tensor, reference: torch.Tensor, lead_hours: torch.Tensor
    ) -> torch.Tensor:
        """Direction field.

        Parameters
        ----------
        features
            ConvLSTM features, shape ``(N, hidden_ch, H, W)``.
        reference
            Unit TEC-gradient direction of the latest map, shape ``(N, 2, H, W)`` (or
            broadcastable), components (north, east).
        lead_hours
            Hours from the latest map to the field's time, shape ``(N,)``, >= 0.

        Returns
        -------
        torch.Tensor
            Shape ``(N, 2, H, W)``, components (north, east) in the spherical metric.
        """
        padded = pad_sphere(features, self.pad)
        lead = (lead_hours / LEAD_SCALE_H).to(features.dtype)[:, None, None, None]
        return reference + self.correction(padded) + lead * self.tendency(padded)


def sample_direction(
    field: torch.Tensor,
    maps: Cells,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    grid_lat: npt.ArrayLike,
    grid_lon: npt.ArrayLike,
) -> torch.Tensor:
    """Sample direction fields at points, bilinearly, blending two fields per point.

    Point ``b`` reads ``(1 - w) * field[lower[b]] + w * field[upper[b]]`` at
    ``(lat[b], lon[b])`` (``maps``: two hours and the cosine-squared weight of the
    later, or one map twice with weight 0), through :func:`ionofield.sphere.interpolate`:
    longitudes wrap across the antimeridian whatever their range, latitudes beyond
    the first or last row take that row's value. Gradients flow into ``field``.

    Parameters
    ----------
    field
        Direction fields, shape ``(N, C, H, W)`` (``C = 2``).
    maps
        :class:`~ionofield.sphere.Cells` over the N fields, numpy arrays of shape [B].
    lat, lon
        Latitude and longitude of each point in degrees, shape [B] (numpy).
    grid_lat
        Latitudes of the rows in degrees, shape [H], strictly monotonic.
    grid_lon
        Longitudes of the columns in degrees, shape [W]: distinct meridians that go
        round the globe evenly (IONEX's repeated +180 column dropped).

    Returns
    -------
    torch.Tensor
        Shape ``(B, C)``, the dtype and device of ``field``.

    Raises
    ------
    ConfigError
        If the grid does not match the field, the rows are not monotonic, or the
        columns do not close the globe evenly.

    Examples
    --------
    >>> field = torch.zeros(1, 2, 71, 72)
    >>> field[0, 1] = 1.0
    >>> one = Cells(np.array([0]), np.array([0]), np.array([0.0]))
    >>> sample_direction(field, one, [10.0], [179.0], np.arange(-87.5, 88.0, 2.5),
    ...                  np.arange(-180.0, 180.0, 5.0))
    tensor([[0., 1.]])
    """
    grid_lat = np.asarray(grid_lat, dtype=np.float64)
    grid_lon = np.asarray(grid_lon, dtype=np.float64)
    _, _, height, width = field.shape
    steps = np.diff(grid_lat)
    if height < 2 or grid_lat.shape != (height,) or not (np.all(steps > 0) or np.all(steps < 0)):
        raise ConfigError(
            f"sample_direction: need >= 2 strictly monotonic row latitudes matching the "
            f"field's {height} rows (dlat != 0), got {grid_lat.tolist()[:5]}..."
        )
    spacing = np.diff(np.append(grid_lon, grid_lon[0] + 360.0))
    if grid_lon.shape != (width,) or not np.allclose(spacing, 360.0 / width, atol=1e-6):
        raise ConfigError(
            f"sample_direction: {width} columns at {grid_lon.tolist()[:3]}... do not close the "
            "globe evenly; pass W distinct meridians with W * dlon = 360 (drop IONEX's "
            "repeated +180 column)"
        )
    if steps[0] < 0:
        field, grid_lat = field.flip(-2), grid_lat[::-1].copy()
    cells = [maps, axis_cells(grid_lat, lat), longitude_cells(grid_lon, lon)]
    as_tensors = [
        Cells(
            torch.as_tensor(c.lower, device=field.device),
            torch.as_tensor(c.upper, device=field.device),
            torch.as_tensor(c.weight, dtype=field.dtype, device=field.device),
        )
        for c in cells
    ]
    return interpolate(field.permute(0, 2, 3, 1), as_tensors)

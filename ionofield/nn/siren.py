"""Sinusoidal representation networks (SIREN).

A SIREN is a multilayer perceptron whose activations are ``sin(w0 * (W x + b))``.
With the initialisation of Sitzmann et al. (2020, "Implicit Neural Representations
with Periodic Activation Functions", NeurIPS), every hidden layer's pre-activation is
close to standard normal whatever the depth, so the network can fit fine detail
without the spectral bias of ReLU networks:

- first layer, fan-in ``n``: ``W ~ U(-1/n, 1/n)`` (its inputs are expected in
  [-1, 1]; ``w0_first`` sets the frequencies it can express);
- later layers: ``W ~ U(-sqrt(6/n)/w0, sqrt(6/n)/w0)``;
- biases keep PyTorch's default ``U(-1/sqrt(n), 1/sqrt(n))``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SineLayer", "Siren", "siren_bound"]


def siren_bound(in_features: int, *, w0: float, is_first: bool) -> float:
    """Half-width of the uniform SIREN weight initialisation.

    Parameters
    ----------
    in_features
        Fan-in ``n`` of the layer.
    w0
        Frequency factor of the layer (ignored for the first layer).
    is_first
        Whether the layer reads the network's input.

    Returns
    -------
    float
        ``1/n`` for the first layer, ``sqrt(6/n)/w0`` otherwise.

    Examples
    --------
    >>> siren_bound(4, w0=30.0, is_first=True)
    0.25
    >>> round(siren_bound(6, w0=30.0, is_first=False), 6)
    0.033333
    """
    if is_first:
        return 1.0 / in_features
    return math.sqrt(6.0 / in_features) / w0


class SineLayer(nn.Module):
    """Linear map followed by a sine: ``y = sin(w0 * (W x + b))``.

    Parameters
    ----------
    in_features
        Size of the last input dimension.
    out_features
        Size of the last output dimension.
    w0
        Frequency factor (30 in Sitzmann et al.).
    is_first
        Use the first-layer initialisation ``U(-1/n, 1/n)`` instead of
        ``U(-sqrt(6/n)/w0, sqrt(6/n)/w0)``.

    Examples
    --------
    >>> layer = SineLayer(3, 8, is_first=True)
    >>> layer(torch.zeros(5, 3)).shape
    torch.Size([5, 8])
    """

    def __init__(
        self, in_features: int, out_features: int, *, w0: float = 30.0, is_first: bool = False
    ) -> None:
        super().__init__()
        self.w0 = float(w0)
        self.is_first = bool(is_first)
        self.linear = nn.Linear(in_features, out_features)
        bound = siren_bound(in_features, w0=self.w0, is_first=self.is_first)
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer.

        Parameters
        ----------
        x
            Input, shape ``(..., in_features)``.

        Returns
        -------
        torch.Tensor
            Output in [-1, 1], shape ``(..., out_features)``.
        """
        # w0 folded into the weights: one pass over the activations fewer.
        linear = self.linear
        y = nn.functional.linear(x, self.w0 * linear.weight, self.w0 * linear.bias)
        return torch.sin(y) if torch.is_grad_enabled() else y.sin_()

    def extra_repr(self) -> str:
        """Describe the frequency factor and the initialisation in ``repr``."""
        return f"w0={self.w0}, is_first={self.is_first}"


class Siren(nn.Module):
    """A SIREN: one first sine layer, ``hidden_layers`` hidden sine layers, an output layer.

    Parameters
    ----------
    in_features
        Size of the input's last dimension. Inputs should be scaled to about [-1, 1].
    hidden_features
        Width of every hidden layer.
    hidden_layers
        Number of hidden-to-hidden sine layers after the first layer (0 allowed).
    out_features
        Size of the output's last dimension.
    w0
        Frequency factor of the hidden layers (and of a sine output layer).
    w0_first
        Frequency factor of the first layer.
    outermost_linear
        End with a plain linear layer instead of a sine layer. It is initialised
        like a hidden layer, so at initialisation its outputs have a standard
        deviation of about ``1/w0`` (plus the bias).

    Examples
    --------
    >>> net = Siren(4, 32, 2, 16)
    >>> net(torch.zeros(10, 7, 4)).shape
    torch.Size([10, 7, 16])
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        hidden_layers: int,
        out_features: int,
        *,
        w0: float = 30.0,
        w0_first: float = 30.0,
        outermost_linear: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            SineLayer(in_features, hidden_features, w0=w0_first, is_first=True)
        ]
        layers += [
            SineLayer(hidden_features, hidden_features, w0=w0) for _ in range(hidden_layers)
        ]
        if outermost_linear:
            last = nn.Linear(hidden_features, out_features)
            bound = siren_bound(hidden_features, w0=w0, is_first=False)
            with torch.no_grad():
                last.weight.uniform_(-bound, bound)
            layers.append(last)
        else:
            layers.append(SineLayer(hidden_features, out_features, w0=w0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the network.

        Parameters
        ----------
        x
            Input coordinates, shape ``(..., in_features)``.

        Returns
        -------
        torch.Tensor
            Shape ``(..., out_features)``.
        """
        return self.net(x)

"""Torch building blocks of the R-STMRF model.

- :mod:`ionofield.nn.siren`: sine-activated networks for the spatial and temporal paths.
- :mod:`ionofield.nn.recurrent`: the space-weather LSTM (additive shift), the TEC-map
  ConvLSTM, the direction head anchored to the TEC gradient, and point sampling of
  direction fields.
"""

from __future__ import annotations

from ionofield.nn.recurrent import (
    ConvLSTM,
    ConvLSTMCell,
    DirectionHead,
    EnvironmentEncoder,
    pad_sphere,
    reference_direction,
    sample_direction,
)
from ionofield.nn.siren import SineLayer, Siren, siren_bound

__all__ = [
    "ConvLSTM",
    "ConvLSTMCell",
    "DirectionHead",
    "EnvironmentEncoder",
    "SineLayer",
    "Siren",
    "pad_sphere",
    "reference_direction",
    "sample_direction",
    "siren_bound",
]

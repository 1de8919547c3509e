"""ionofield: 3-D ionospheric electron density from RO profiles, TEC maps and indices.

The R-STMRF model: an IRI background (PyIRI) plus a learned log10 residual, fitted
to radio-occultation profiles with Kp / F10.7 and TEC maps as drivers. Data are
labelled xarray Datasets; the model is reached through the ``.rstmrf`` accessor.

``ionofield.plot`` (matplotlib) and ``ionofield.osse`` (the synthetic world of the
observing-system simulation experiments) are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from ionofield import accessor as _accessor  # noqa: F401  (registers Dataset.rstmrf)
from ionofield._version import __version__
from ionofield.campaign import campaign, drivers_at
from ionofield.config import FitConfig
from ionofield.diagnostics import column_tec, peak_parameters
from ionofield.io.indices import open_indices
from ionofield.io.ionex import open_ionex, write_ionex
from ionofield.io.ionosonde import open_ionosonde
from ionofield.io.netcdf import to_netcdf
from ionofield.io.ro import open_ro_profiles, write_ionprf, write_ro_table
from ionofield.io.zarr import to_zarr
from ionofield.model import RSTMRF, load_model
from ionofield.reconstruction import grid, reconstruct
from ionofield.tec_cache import HourlyTECCache, tec_direction
from ionofield.training import fit
from ionofield.validation import split_profiles, validate

#: Subpackages imported on first access (``ionofield.plot.coverage(...)``).
_ON_DEMAND = ("plot", "osse")

__all__ = [
    "FitConfig",
    "HourlyTECCache",
    "RSTMRF",
    "__version__",
    "campaign",
    "column_tec",
    "drivers_at",
    "fit",
    "grid",
    "load_model",
    "open_indices",
    "open_ionex",
    "open_ionosonde",
    "open_ro_profiles",
    "peak_parameters",
    "reconstruct",
    "split_profiles",
    "tec_direction",
    "to_netcdf",
    "to_zarr",
    "validate",
    "write_ionex",
    "write_ionprf",
    "write_ro_table",
]


def __getattr__(name: str) -> Any:
    """Import :mod:`ionofield.plot` and :mod:`ionofield.osse` when first used."""
    if name in _ON_DEMAND:
        return importlib.import_module(f"ionofield.{name}")
    raise AttributeError(f"module 'ionofield' has no attribute {name!r}")

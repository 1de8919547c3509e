"""The ``.rstmrf`` Dataset accessor: a thin layer over ionofield's public functions.

Importing :mod:`ionofield` registers it. Each method forwards to one public function
with the Dataset as its first argument, so ``ds.rstmrf.align(t)`` is
``ionofield.drivers_at(ds, t)``. On a campaign: ``align``, ``fit``, ``reconstruct``,
``tec_direction``, ``validate``, ``plot``; on a volume: ``to_netcdf``, ``validate``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from ionofield.campaign import check_campaign, drivers_at
from ionofield.config import Precision
from ionofield.errors import ConfigError
from ionofield.io.netcdf import to_netcdf
from ionofield.model import RSTMRF
from ionofield.reconstruction import reconstruct
from ionofield.tec_cache import tec_direction
from ionofield.training import fit
from ionofield.validation import validate

if TYPE_CHECKING:
    import torch

    from ionofield.plot import CampaignPlots

__all__ = ["RSTMRFAccessor"]


@xr.register_dataset_accessor("rstmrf")
class RSTMRFAccessor:
    """R-STMRF methods on a campaign (:func:`ionofield.campaign`) or a volume.

    Parameters
    ----------
    xarray_obj
        The campaign Dataset, or a volume from :func:`ionofield.reconstruct` (for
        :meth:`to_netcdf`).

    Notes
    -----
    xarray builds a new accessor for every new Dataset, so state kept here (the
    fitted model, ``_model``) does not survive ``copy()`` or ``isel()``.
    """

    def __init__(self, xarray_obj: xr.Dataset) -> None:
        self._obj = xarray_obj
        self._model: RSTMRF | None = None

    def align(self, times: object = None) -> xr.Dataset:
        """Hourly drivers (Kp, F10.7, F10.7 81-day mean) at arbitrary times.

        Forwards to :func:`ionofield.drivers_at`: cosine-squared interpolation
        between the neighbouring whole hours, exact at the hours.

        Parameters
        ----------
        times
            Times within the campaign's hourly axis (DataArray, 1-D array or scalar;
            datetime64 or cftime). ``None`` means the observation times, giving the
            drivers on the ``obs`` dimension.

        Returns
        -------
        xarray.Dataset
            ``kp``, ``f107``, ``f107_81`` at ``times``.

        Raises
        ------
        CampaignError
            When the Dataset is not a campaign (build it with ``ionofield.campaign``).
        CoverageError
            When times fall outside the campaign's hourly axis.
        """
        return drivers_at(self._obj, times)

    def fit(self, **options: Any) -> RSTMRF:
        """Fit R-STMRF to this campaign; forwards to :func:`ionofield.fit`.

        Parameters
        ----------
        **options
            Any keyword of :func:`ionofield.fit` (``config``, ``background``, ``seed``,
            ``checkpoint``, ``resume``, ``progress``) or
            :class:`~ionofield.config.FitConfig` field (``max_steps=2000``).

        Returns
        -------
        RSTMRF
            The fitted model, also kept on this accessor for :meth:`reconstruct`
            (on this Dataset object only: a copy gets a new accessor).
        """
        check_campaign(self._obj)
        self._model = fit(self._obj, **options)
        return self._model

    def reconstruct(
        self,
        grid: xr.Dataset,
        model: RSTMRF | str | os.PathLike | None = None,
        *,
        background: xr.Dataset | xr.DataArray | None = None,
        chunks: int | None = None,
        cache_dir: str | None = None,
        device: str | torch.device | None = "auto",
        precision: Precision = "auto",
        compile: bool = False,
    ) -> xr.Dataset:
        """Reconstruct Ne on a grid; forwards to :func:`ionofield.reconstruct`.

        Parameters
        ----------
        grid
            The target grid, from :func:`ionofield.grid`.
        model
            The fitted model or the path of a model file; by default the one
            :meth:`fit` left on this accessor.
        background, chunks, cache_dir, device, precision, compile
            As in :func:`ionofield.reconstruct` (``device="cuda"`` runs the network on
            the first GPU; the default ``"auto"`` takes it when torch sees one;
            the default ``precision="auto"`` runs its matrix products in bfloat16
            where the device computes it natively, ``"float32"`` always in float32;
            ``compile=True`` runs it through :func:`torch.compile`).

        Returns
        -------
        xarray.Dataset
            The lazy volume ``ne``, ``ne_background``, ``ne_log10_sigma``.
        """
        check_campaign(self._obj)
        return reconstruct(
            self._obj, grid, model=self._fitted(model), background=background, chunks=chunks,
            cache_dir=cache_dir, device=device, precision=precision, compile=compile,
        )

    def to_netcdf(
        self, path: str | os.PathLike, *, compression: int = 4, progress: bool = False
    ) -> None:
        """Write this volume to NetCDF-4 atomically; forwards to :func:`ionofield.to_netcdf`.

        Use this, not ``Dataset.to_netcdf``. The file is written under a temporary
        name beside ``path`` and renamed over it only when complete, so a write that
        is killed, fills the disk or fails on a chunk leaves nothing at ``path`` (or
        the previous file, untouched). ``Dataset.to_netcdf`` writes in place: killed
        half-way it leaves a file at ``path`` that opens normally and holds fill
        values (NaN) where the unwritten chunks should be. The file is also compressed,
        CF-1.11, and written in bounded memory.

        Parameters
        ----------
        path
            Destination file.
        compression, progress
            As in :func:`ionofield.to_netcdf`.
        """
        to_netcdf(self._obj, path, compression=compression, progress=progress)

    def validate(
        self,
        observations: xr.Dataset,
        *,
        model: RSTMRF | str | os.PathLike | None = None,
        **options: Any,
    ) -> xr.Dataset:
        """Skill on independent observations; forwards to :func:`ionofield.validate`.

        On a volume (a Dataset without the ``obs`` dimension) it is
        ``ionofield.validate(volume, observations, **options)``; on a campaign,
        ``ionofield.validate(model, observations, campaign=campaign, **options)``.

        Parameters
        ----------
        observations
            RO profiles held out of the fit, or ionosonde soundings
            (:func:`ionofield.open_ionosonde`).
        model
            On a campaign: the fitted model or the path of a model file; by default
            the one :meth:`fit` left on this accessor. Not taken on a volume.
        **options
            Any keyword of :func:`ionofield.validate` (``campaign=`` on a volume, for
            the Kp classes; ``background``, ``lat_bands``, ``device``, ...).

        Returns
        -------
        xarray.Dataset
            The table of scores by group (:func:`ionofield.validate`).

        Raises
        ------
        ConfigError
            On a campaign, when there is no model here and none is passed; on a
            volume, when ``model`` is passed.
        """
        if "obs" not in self._obj.dims:
            if model is not None:
                raise ConfigError(
                    "validate: this Dataset is a volume, which is scored itself; model= is "
                    "taken on a campaign's accessor (ds.rstmrf.validate(obs, model=...))"
                )
            return validate(self._obj, observations, **options)
        check_campaign(self._obj)
        return validate(self._fitted(model), observations, campaign=self._obj, **options)

    def _fitted(self, model: RSTMRF | str | os.PathLike | None) -> RSTMRF | str | os.PathLike:
        """``model``, else the one :meth:`fit` left here; ConfigError when neither."""
        model = model if model is not None else self._model
        if model is None:
            raise ConfigError(
                "no fitted model on this Dataset's accessor (xarray makes a new accessor for "
                "every Dataset object); pass model= (from ds.rstmrf.fit(...) or "
                "ionofield.load_model(path))"
            )
        return model

    def tec_direction(
        self,
        times: object = None,
        *,
        model: RSTMRF | None = None,
        source: Literal["model", "data"] = "model",
    ) -> xr.Dataset:
        """TEC direction field on the TEC grid; forwards to :func:`ionofield.tec_direction`.

        Parameters
        ----------
        times
            Times within the campaign's hourly axis; ``None`` means its whole hours.
        model
            For ``source="model"``: the model, by default the one :meth:`fit` left on
            this accessor. Unused for ``source="data"``.
        source
            ``"model"`` (the direction head's field) or ``"data"`` (the unit
            finite-difference TEC gradient).

        Returns
        -------
        xarray.Dataset
            ``north``, ``east`` on ``(time, lat, lon)``.

        Raises
        ------
        ConfigError
            When ``source="model"`` and there is no model here and none is passed.
        """
        if source == "model":
            model = self._fitted(model)
        return tec_direction(self._obj, times, model=model, source=source)

    @property
    def plot(self) -> CampaignPlots:
        """Plots of this campaign: ``ds.rstmrf.plot.coverage()``, ``.drivers()``, ...

        Each method forwards to the function of the same name in
        :mod:`ionofield.plot` with this Dataset as the campaign.

        Returns
        -------
        ionofield.plot.CampaignPlots
            ``coverage``, ``drivers``, ``direction_map`` and ``profile``, bound to
            this Dataset. matplotlib is imported on first use.
        """
        from ionofield.plot import CampaignPlots

        return CampaignPlots(self._obj)

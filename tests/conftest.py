"""Shared fixtures: a tiny campaign whose truth is an analytic Chapman world.

The background handed to the model is a Chapman layer; the truth differs from it in
a learnable way (a latitude-dependent peak density and a higher peak), so a fit must
beat the background. Nothing here calls PyIRI, so the fixtures are fast.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from hypothesis import settings

import ionofield as iof

START = np.datetime64("2024-05-10T00:00", "ns")
HOURS = 13


def chapman_log10(alt, nm, hm, scale_height=60.0):
    """log10 of an alpha-Chapman layer (m-3)."""
    z = (np.asarray(alt) - hm) / scale_height
    return np.log10(nm) + 0.5 * (1.0 - z - np.exp(-z)) / np.log(10.0)


def truth_log10(time, alt, lat, lon):
    """The tiny world's truth: denser at low latitudes, peak 40 km higher than background."""
    hours = (np.asarray(time) - START) / np.timedelta64(1, "h")
    nm = 5e11 * (1.0 + 0.8 * np.cos(np.deg2rad(lat)) ** 2) * (1.0 + 0.1 * np.sin(
        2 * np.pi * hours / 24.0 + np.deg2rad(lon)))
    return chapman_log10(alt, nm, 340.0)


def background_dataset() -> xr.Dataset:
    time = START + np.arange(HOURS) * np.timedelta64(1, "h")
    alt = np.arange(80.0, 801.0, 20.0)
    lat = np.arange(-90.0, 90.1, 15.0)
    lon = np.arange(-180.0, 180.0, 30.0)
    log10 = chapman_log10(alt, 5e11, 300.0)
    values = np.broadcast_to(10.0 ** log10[None, :, None, None],
                             (time.size, alt.size, lat.size, lon.size))
    ne = xr.DataArray(
        values.astype(np.float32), {"time": time, "alt": alt, "lat": lat, "lon": lon},
        ("time", "alt", "lat", "lon"), attrs={"units": "m-3"},
    )
    return xr.Dataset({"ne_background": ne})


def tec_dataset() -> xr.Dataset:
    time = START + np.arange(HOURS) * np.timedelta64(1, "h")
    lat = np.arange(-87.5, 87.6, 17.5)
    lon = np.arange(-180.0, 180.1, 30.0)
    hours = np.arange(HOURS)[:, None, None]
    tec = 20 + 30 * np.cos(np.deg2rad(lat))[None, :, None] ** 2 * (
        1 + 0.3 * np.sin(np.deg2rad(lon)[None, None, :] + 2 * np.pi * hours / 24)
    )
    return xr.Dataset(
        {"tec": (("time", "lat", "lon"), tec.astype(np.float32), {"units": "TECU"})},
        coords={"time": time, "lat": lat, "lon": lon},
    )


def indices_dataset() -> xr.Dataset:
    time = pd.date_range("2024-05-10", periods=8, freq="3h").values
    kp = np.array([2.0, 3.0, 5.0, 7.0, 6.0, 4.0, 3.0, 2.0])
    return xr.Dataset(
        {"kp": ("time", kp), "f107": ("time", np.full(8, 180.0)),
         "f107_81": ("time", np.full(8, 170.0))},
        coords={"time": time},
    )


def observations(n_profiles: int = 36, seed: int = 1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    alt = np.arange(150.0, 601.0, 15.0)
    parts = []
    for k in range(n_profiles):
        t = START + np.timedelta64(int(rng.uniform(0, (HOURS - 1) * 60)), "m")
        lat0, lon0 = rng.uniform(-70, 70), rng.uniform(-180, 180)
        lat = lat0 + np.linspace(0, 3, alt.size)
        lon = lon0 + np.linspace(0, 4, alt.size)
        log10 = truth_log10(t, alt, lat, lon) + rng.normal(0, 0.02, alt.size)
        parts.append(xr.Dataset(
            {"ne": ("obs", 10.0 ** log10)},
            coords={"time": ("obs", np.full(alt.size, t)), "lat": ("obs", lat),
                    "lon": ("obs", (lon + 180) % 360 - 180), "alt": ("obs", alt),
                    "profile": ("obs", np.full(alt.size, f"P{k:03d}")),
                    "mission": ("obs", np.full(alt.size, "TEST"))},
        ))
    return xr.concat(parts, "obs")


def write_input_files(folder: Path) -> None:
    """The tiny world's TEC maps as an IONEX file and its profiles as ionPrf files in ``folder``."""
    iof.write_ionex(tec_dataset(), folder / "tiny0010.24i")
    obs = observations(n_profiles=12)
    for pid in np.unique(obs.profile.values):
        one = obs.isel(obs=np.flatnonzero(obs.profile.values == pid))
        iof.write_ionprf(folder / "ro" / f"ionPrf_{pid}.nc", time=one.time.values[0],
                         alt=one.alt.values, lat=one.lat.values, lon=one.lon.values,
                         ne=one.ne.values)


def plant(path: Path, **values: tuple[object, float]) -> Path:
    """Overwrite raw values of a netCDF variable in place: name=(index, value)."""
    with netCDF4.Dataset(path, "a") as ds:
        ds.set_auto_maskandscale(False)
        for name, (index, value) in values.items():
            raw = ds[name][:]
            raw[index] = value
            ds[name][:] = raw
    return path


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds``: a hang fails the test."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} still runs after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny networks run fastest on one thread (no thread hand-offs per small op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_campaign() -> xr.Dataset:
    return iof.campaign(obs=observations(), tec=tec_dataset(), indices=indices_dataset())


@pytest.fixture(scope="session")
def chapman_background() -> xr.Dataset:
    return background_dataset()


# Fuzzing and property tests draw the same examples on every run (CI included), so a
# result is reproducible; run with --hypothesis-profile=explore to draw new ones.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("ci")

#: Small, fast settings for fits in tests.
#: A coarse IRI cube (PyIRI, or its fake, on few nodes).
COARSE_IRI = dict(background_alt=(80.0, 1000.0, 40.0), background_lat_step=15.0,
                  background_lon_step=30.0)
#: A tiny network, validated every 8 steps (about one pass over the tiny campaign's
#: training points): ``max_steps=8 * n`` is n such passes.
TINY = dict(basis_dim=16, siren_hidden=32, siren_layers=1, env_hidden=8, env_len=4, seq_len=2,
            tec_feat_dim=4, batch_size=128, lr=3e-3, w0=10.0, patience=0, eval_every=8,
            weight_average_steps=40, progress=False)


@pytest.fixture(scope="session")
def model(tiny_campaign, chapman_background) -> iof.RSTMRF:
    """A model fitted for 16 steps on the tiny campaign over the Chapman background.

    Shared by the test modules: a test that changes it works on a ``copy.deepcopy``.
    """
    return iof.fit(tiny_campaign, background=chapman_background, max_steps=16, **TINY)


@pytest.fixture
def pyiri_calls(monkeypatch):
    """Replace PyIRI by a fast fake; return the list of its calls' arguments.

    The fake's densities encode the call: Ne = F10.7 * 1e9 + UT hour * 1e6 m-3. It
    fails unless called under xarray's HDF5 lock: PyIRI reads its coefficients through
    HDF5, which must not run beside a volume being written by another thread.
    """
    from PyIRI import sh_library
    from xarray.backends.locks import HDF5_LOCK

    calls = []

    def fake(year, month, day, ut, glon, glat, alt, f107, **options):
        assert HDF5_LOCK.locked(), "PyIRI called without xarray's HDF5 lock"
        calls.append(((year, month, day, ut, glon, glat, alt, f107), options))
        shape = (ut.size, glon.size)
        f2 = {"Nm": np.full(shape, 1e12), "hm": np.full(shape, 300.0)}
        ne = f107 * 1e9 + ut[:, None, None] * 1e6 + np.zeros((1, alt.size, glon.size))
        return f2, {}, {}, {}, {}, {}, ne

    monkeypatch.setattr(sh_library, "IRI_density_1day", fake)
    return calls

from __future__ import annotations

import copy
import dataclasses
import json
import time
import warnings

import dask
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import ionofield as iof
from ionofield._threads import torch_threads, worker_threads
from ionofield.background import BackgroundField
from ionofield.drivers import HourlyDrivers
from ionofield.errors import ConfigError, CoverageError, PerformanceWarning
from ionofield.prediction import ColumnMisfit, predict_residual
from ionofield.reconstruction import _rebuilt_model
from tests.conftest import COARSE_IRI, START


def small_grid(**overrides):
    axes = dict(
        time=pd.date_range(START, periods=4, freq="97min"),
        alt=np.arange(150.0, 601.0, 50.0),
        lat=np.arange(-90.0, 90.1, 30.0),
        lon=np.arange(-180.0, 180.0, 45.0),
    )
    return iof.grid(**{**axes, **overrides})


@pytest.fixture(scope="module")
def volume(tiny_campaign, model, chapman_background):
    # float32 whatever the CPU: the tests compare it with predict_residual's float32
    return iof.reconstruct(tiny_campaign, small_grid(), model=model,
                           background=chapman_background, chunks=2, precision="float32")


def _raise_if_computed(dsk, keys, **kwargs):
    raise AssertionError("dask computed while building the volume")


def test_grid_folds_longitudes_and_checks_axes():
    g = iof.grid(time=[np.datetime64("2024-05-10T01")], alt=[100.0], lat=[0.0],
                 lon=[0.0, 90.0, 270.0, 359.0])
    np.testing.assert_array_equal(g.lon.values, [-90.0, -1.0, 0.0, 90.0])
    assert g.alt.attrs["units"] == "km" and g.alt.attrs["positive"] == "up"
    with pytest.raises(ConfigError, match="metres"):
        iof.grid(time=[START], alt=[300e3], lat=[0.0], lon=[0.0])
    with pytest.raises(ConfigError, match="lat"):
        iof.grid(time=[START], alt=[300.0], lat=[95.0], lon=[0.0])


def test_reconstruct_is_lazy(tiny_campaign, model, chapman_background):
    with dask.config.set(scheduler=_raise_if_computed):
        vol = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                              background=chapman_background)
    assert all(isinstance(vol[name].data, dask.array.Array) for name in vol.data_vars)
    assert vol.ne.dims == ("time", "alt", "lat", "lon") and vol.ne.dtype == np.float32


def test_volume_values(volume, tiny_campaign, model, chapman_background):
    vol = volume.compute()
    assert np.all(vol.ne > 0) and np.all(np.isfinite(vol.ne))
    times = vol.time.values
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    residual, log_var, shift = predict_residual(model, drivers, times, vol.alt.values,
                                                vol.lat.values, vol.lon.values)
    field = BackgroundField(chapman_background)
    where = (times[:, None, None, None], vol.alt.values[:, None, None], vol.lat.values[:, None],
             vol.lon.values)
    raised = field.raised(*where, shift)
    assert np.abs(shift).max() > 0.1  # the shift acts
    assert np.abs(raised - field.log10_at(*where)).max() > 1e-3
    np.testing.assert_allclose(np.log10(vol.ne), raised + residual, atol=2e-5)
    misfit = ColumnMisfit.compute(model, drivers, field, np.arange(drivers.n_hours))
    excess = misfit.at(drivers, times[:, None, None], vol.lat.values[:, None], vol.lon.values)
    excess -= float(model.column_misfit_offset)
    np.testing.assert_allclose(vol.ne_log10_sigma, np.sqrt(np.exp(log_var) + excess[:, None]**2),
                               rtol=1e-5)
    np.testing.assert_allclose(np.log10(vol.ne_background), field.log10_at(*where), atol=2e-6)


def test_tec_maps_change_sigma_never_ne(volume, tiny_campaign, model, chapman_background):
    vol = volume.compute()
    options = dict(model=model, background=chapman_background, chunks=2,
                   precision="float32")  # as `volume`
    doubled = tiny_campaign.assign(tec=tiny_campaign.tec * 2.0)
    other = iof.reconstruct(doubled, small_grid(), **options).compute()
    without = iof.reconstruct(tiny_campaign.drop_vars("tec"), small_grid(), **options).compute()
    xr.testing.assert_equal(other.ne, vol.ne)
    xr.testing.assert_equal(without.ne, vol.ne)
    assert not np.allclose(other.ne_log10_sigma, vol.ne_log10_sigma)
    _, log_var, _ = predict_residual(model, HourlyDrivers.from_campaign(tiny_campaign),
                                  vol.time.values, vol.alt.values, vol.lat.values, vol.lon.values)
    np.testing.assert_allclose(without.ne_log10_sigma, np.exp(0.5 * log_var), rtol=1e-6)
    assert np.all(vol.ne_log10_sigma >= without.ne_log10_sigma)


def test_column_misfit_of_a_known_column(tiny_campaign, chapman_background):
    """Zero residual over a Chapman background, against maps of its column / 10**0.2."""
    model = iof.RSTMRF(iof.FitConfig(basis_dim=16, siren_hidden=32, siren_layers=1,
                                     env_hidden=8, env_len=4, seq_len=2, tec_feat_dim=4))
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()
    field = BackgroundField(chapman_background)
    fine = np.arange(80.0, 800.01, 0.5)
    ne = 10.0 ** field.log10_at(np.datetime64(START, "ns"), fine, 0.0, 0.0)
    column = float(iof.column_tec(xr.DataArray(ne, {"alt": fine}, ["alt"])))
    maps = xr.full_like(tiny_campaign.tec, column / 10**0.2)
    drivers = HourlyDrivers.from_campaign(tiny_campaign.assign(tec=maps))
    misfit = ColumnMisfit.compute(model, drivers, field, np.array([0, 1, 5]))
    assert misfit.values.shape == (3, 6, 6)  # every other row and column of 11 x 12
    np.testing.assert_allclose(misfit.values, 0.2, atol=0.01)


def test_column_misfit_interpolates_in_time_and_across_the_antimeridian(tiny_campaign):
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    lat, lon = np.array([-10.0, 10.0]), np.arange(-180.0, 180.0, 60.0)
    values = (np.array([1.0, 3.0])[:, None, None] + 0.01 * lat[:, None]
              + np.cos(np.deg2rad(lon)))
    misfit = ColumnMisfit(np.array([2, 3]), lat, lon, values.astype(np.float32))
    half_past = drivers.hours[2] + np.timedelta64(30, "m")  # cosine-squared weights 1/2, 1/2
    assert misfit.at(drivers, half_past, 0.0, 180.0) == pytest.approx(2.0 - 1.0)
    # 150 E lies halfway between the columns at 120 E and 180 (stored as -180)
    assert misfit.at(drivers, half_past, 0.0, 150.0) == pytest.approx(2.0 - 0.75, abs=1e-6)
    assert misfit.at(drivers, drivers.hours[3], 10.0, 0.0) == pytest.approx(3.0 + 0.1 + 1.0)
    with pytest.raises(CoverageError, match="column misfit"):
        misfit.at(drivers, drivers.hours[4] + np.timedelta64(10, "m"), 0.0, 0.0)


def test_chunkings_and_schedulers_agree(volume, tiny_campaign, model, chapman_background):
    reference = volume.compute(scheduler="threads")
    one_by_one = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                                 background=chapman_background, chunks=1, precision="float32")
    # Equal to float32 rounding: the network's matrix products see other batch sizes.
    xr.testing.assert_allclose(one_by_one.compute(scheduler="synchronous"), reference, rtol=1e-5)


@pytest.fixture(scope="module")
def worker_processes():
    """A dask.distributed client of two worker processes of one thread each.

    Not the default scheduler: a test uses it inside ``with client.as_current()``.
    """
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        yield client


def _models_built() -> int:
    return _rebuilt_model.cache_info().misses


def test_worker_processes_compute_and_write_the_volume(volume, worker_processes, tmp_path):
    """Chunks run on the workers, each of which rebuilds the model once for all the
    graphs it computes, and the values equal the threaded scheduler's."""
    reference = volume.compute(scheduler="threads")
    here = _models_built()
    with worker_processes.as_current():
        xr.testing.assert_allclose(volume.compute(), reference, rtol=1e-5)
        iof.to_netcdf(volume, tmp_path / "ne.nc")
    with xr.open_dataset(tmp_path / "ne.nc") as back:
        xr.testing.assert_allclose(back.load(), reference, rtol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["ne.nc"]
    assert _models_built() == here  # nothing computed in this process
    built = worker_processes.run(_models_built)
    assert sorted(built.values()) in ([0, 1], [1, 1]), built
    threads = [worker_processes.submit(worker_threads, workers=[address], pure=False)
               for address in built]
    assert worker_processes.gather(threads) == [1, 1]  # each worker's threads_per_worker
    assert worker_threads() is None


def test_worker_processes_share_the_iri_cache(tiny_campaign, model, worker_processes, tmp_path):
    """Two chunks sharing an hour run on two workers at once: the cache they both
    write stays whole, and the volume equals that of the threaded scheduler."""
    iri_model = copy.deepcopy(model)
    iri_model.config = dataclasses.replace(model.config, **COARSE_IRI)
    iri_model.info["background"] = {"kind": "iri"}
    target = small_grid(time=START + np.array([30, 90], "timedelta64[m]"))  # hours 00-01, 01-02
    options = dict(model=iri_model, chunks=1)
    with worker_processes.as_current():
        shared = iof.reconstruct(tiny_campaign, target, cache_dir=tmp_path / "shared",
                                 **options).compute()
    cached = sorted((tmp_path / "shared").iterdir())
    assert [p.suffix for p in cached] == [".nc"] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unreadable cache file warns
        again = iof.reconstruct(tiny_campaign, target, cache_dir=tmp_path / "shared",
                                **options).compute(scheduler="threads")
        alone = iof.reconstruct(tiny_campaign, target, cache_dir=tmp_path / "alone",
                                **options).compute(scheduler="threads")
    xr.testing.assert_allclose(shared, alone, rtol=1e-5)
    xr.testing.assert_equal(again.ne_background, alone.ne_background)


def test_iri_of_each_chunk_comes_once_per_hour(tiny_campaign, model, pyiri_calls, tmp_path):
    """Each chunk takes the IRI of its own hours; hours shared by chunks come from the
    cache, and the background does not depend on the chunking."""
    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = {"kind": "iri"}
    target = small_grid()  # 4 times 97 minutes apart: hours 00 to 05
    whole = iof.reconstruct(tiny_campaign, target, model=iri_model, chunks=4,
                            cache_dir=tmp_path / "whole").compute()
    assert len(pyiri_calls) == 6
    apart = iof.reconstruct(tiny_campaign, target, model=iri_model, chunks=1,
                            cache_dir=tmp_path / "apart").compute()
    assert len(pyiri_calls) == 12  # chunks 3:14 and 4:51 share hour 04
    xr.testing.assert_equal(apart.ne_background, whole.ne_background)


def test_uncovered_times_fail_early(tiny_campaign, model, chapman_background):
    late = small_grid(time=[START + np.timedelta64(30, "h")])
    with pytest.raises(CoverageError):
        iof.reconstruct(tiny_campaign, late, model=model, background=chapman_background)


def test_user_background_must_be_passed_again(tiny_campaign, model):
    with pytest.raises(ConfigError, match="background="):
        iof.reconstruct(tiny_campaign, small_grid(), model=model)


def test_antimeridian_and_poles(tiny_campaign, model, chapman_background):
    drivers = HourlyDrivers.from_campaign(tiny_campaign)
    times = np.array([START + np.timedelta64(150, "m")])
    alt = np.array([200.0, 400.0])
    residual, *_ = predict_residual(model, drivers, times, alt, np.array([-40.0, 10.0]),
                                   np.array([-180.0, 180.0]))
    np.testing.assert_allclose(residual[..., 0], residual[..., 1], atol=1e-6)
    lons = np.linspace(-180.0, 180.0, 13)
    for pole in (-90.0, 90.0):
        at_pole, *_ = predict_residual(model, drivers, times, alt, np.array([pole]), lons)
        assert np.ptp(at_pole, axis=-1).max() < 1e-5
    field = BackgroundField(chapman_background)
    assert field.log10_at(times[0], 300.0, 20.0, -180.0) == pytest.approx(
        field.log10_at(times[0], 300.0, 20.0, 180.0), abs=1e-9)


def test_netcdf_round_trip_and_cf_attributes(volume, tmp_path):
    path = tmp_path / "ne.nc"
    iof.to_netcdf(volume, path)
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back.load(), volume.compute(), rtol=0, atol=0)
        assert back.attrs["Conventions"] == "CF-1.11"
        assert back.attrs["history"][:4].isdigit()
        assert back.time.encoding["units"].startswith("seconds since")
        for name in back.coords:
            assert "_FillValue" not in back[name].encoding or np.isnan(
                back[name].encoding["_FillValue"]) is False
        assert back.ne.attrs == {"long_name": "electron number density", "units": "m-3"}
        assert "standard_name" not in back.ne.attrs
        assert back.ne.encoding["zlib"]


def test_atomic_write_leaves_nothing_on_failure(volume, tmp_path, monkeypatch):
    path = tmp_path / "ne.nc"

    def failing_write(self, target, *args, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"CDF partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing_write)
    with pytest.raises(OSError, match="disk full"):
        iof.to_netcdf(volume, path)
    assert list(tmp_path.iterdir()) == []


def test_write_goes_without_chunk_cache_and_restores_it(volume, tmp_path, monkeypatch):
    """Through HDF5's chunk cache a volume's write memory grows with its length; it is
    off during the write only."""
    import netCDF4

    before = netCDF4.get_chunk_cache()
    seen = []
    write = xr.Dataset.to_netcdf

    def recording_write(self, *args, **kwargs):
        seen.append(netCDF4.get_chunk_cache())
        return write(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", recording_write)
    iof.to_netcdf(volume, tmp_path / "ne.nc")
    assert seen[0][0] == 0 < before[0]
    assert netCDF4.get_chunk_cache() == before
    with xr.open_dataset(tmp_path / "ne.nc") as back:
        xr.testing.assert_equal(back.load(), volume.compute())


@pytest.mark.slow
def test_volume_passes_the_cf_checker(volume, tmp_path):
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    path = tmp_path / "ne.nc"
    iof.to_netcdf(volume, path)
    report = tmp_path / "report.json"
    CheckSuite.load_all_available_checkers()
    passed, errors = ComplianceChecker.run_checker(
        str(path), ["cf:1.11"], 0, "strict", output_filename=str(report), output_format="json"
    )
    assert not errors
    results = json.loads(report.read_text())["cf:1.11"]
    failures = [m for m in results.get("all_priorities", []) if m["value"][0] < m["value"][1]]
    assert passed, failures


def test_accessor_reconstruct_equals_function(tiny_campaign, model, chapman_background):
    ds = tiny_campaign.copy()
    options = dict(model=model, background=chapman_background, chunks=2)  # default precision
    via_accessor = ds.rstmrf.reconstruct(small_grid(), **options)
    via_function = iof.reconstruct(tiny_campaign, small_grid(), **options)
    assert via_accessor.attrs["precision"] == via_function.attrs["precision"]
    xr.testing.assert_equal(via_accessor.compute(), via_function.compute())  # history differs
    with pytest.raises(ConfigError, match="model="):
        ds.rstmrf.reconstruct(small_grid())


def test_ionex_longitudes_survive_reconstruct_write_and_plots(tiny_campaign, model,
                                                              chapman_background, tmp_path):
    """The IONEX grid keeps -180 and 180; both columns are equal, written and drawn."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lon = np.arange(-180, 180.1, 45)
    vol = iof.reconstruct(tiny_campaign, small_grid(lon=lon), model=model,
                          background=chapman_background)
    np.testing.assert_array_equal(vol.lon.values, lon)
    path = tmp_path / "ne.nc"
    vol.rstmrf.to_netcdf(path)
    with xr.open_dataset(path) as back:
        back = back.load()
    np.testing.assert_array_equal(back.lon.values, lon)
    for name in back.data_vars:
        np.testing.assert_array_equal(back[name].sel(lon=-180.0), back[name].sel(lon=180.0))
    ax = iof.plot.volume_map(back, alt=300.0)
    assert ax.get_xlim() == (-180.0, 180.0)
    assert "180" in iof.plot.volume_section(back, lon=180.0).get_title()
    assert len(iof.plot.peak_maps(back).axes) == 4  # two maps, two colorbars
    plt.close("all")


@pytest.mark.parametrize(
    ("recorded", "given"),
    [({"kind": "iri", "f107_variable": "f107_81"}, 170.0),  # fitted now: the 81-day mean
     ({"kind": "iri"}, 180.0)],  # fitted before the choice was recorded: the daily value
    ids=["f107_81-recorded", "older-model-daily"],
)
def test_iri_background_is_given_the_f107_of_the_fit(tiny_campaign, model, pyiri_calls, tmp_path,
                                                     recorded, given):
    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = recorded
    vol = iof.reconstruct(tiny_campaign, small_grid(), model=iri_model, cache_dir=tmp_path)
    vol.compute()
    assert {args[7] for args, _ in pyiri_calls} == {given}
    name = recorded.get("f107_variable", "f107")
    assert vol.attrs["iri_f107"].startswith(f"{name} (")  # then the campaign's long name
    assert vol.attrs["iri_f107"].endswith("), sfu, the mean of each UT day, from the campaign")
    assert vol.attrs["source"].startswith(f"ionofield {iof.__version__} R-STMRF on the IRI via "
                                          "PyIRI")
    assert "user-supplied" not in vol.attrs["source"]


def test_volume_records_what_the_model_was_fitted_on(volume, model):
    assert volume.attrs["extrapolation"] == "none"
    assert volume.attrs["training_period"] == " to ".join(model.info["period"])
    assert volume.attrs["background"].startswith("user-supplied background")
    assert "iri_f107" not in volume.attrs


def test_a_chunks_network_runs_while_its_iri_is_computed(tiny_campaign, model, pyiri_calls,
                                                         tmp_path, monkeypatch):
    """The network does not wait for the background: PyIRI (here a fake that holds its
    core while it waits for the network to finish the chunk's grid and its TEC
    columns on the other) and the network of the same, single chunk run side by side."""
    import ionofield.prediction as prediction
    import ionofield.reconstruction as reconstruction

    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = {"kind": "iri"}
    iri_model.calibrate_sigma(1.0, column_misfit_offset=0.0)  # sigma takes the column misfit
    grids = []
    network = prediction.predict_residual

    def counting_network(model, drivers, times, alt, *args, **kwargs):
        grids.append(alt.size)
        return network(model, drivers, times, alt, *args, **kwargs)

    field = reconstruction._IriHours.field

    def waiting_field(self, times, cores):
        with cores:  # as PyIRI holds it
            for _ in range(3000):  # 30 s
                if len(grids) == 2:
                    break
                time.sleep(0.01)
        assert len(grids) == 2, "the chunk's network did not run first, on the other core"
        return field(self, times, cores)

    monkeypatch.setattr(reconstruction, "predict_residual", counting_network)
    monkeypatch.setattr(prediction, "predict_residual", counting_network)
    monkeypatch.setattr(reconstruction._IriHours, "field", waiting_field)
    with torch_threads(2):
        volume = iof.reconstruct(tiny_campaign, small_grid(), model=iri_model, chunks=4,
                                 cache_dir=tmp_path).compute(scheduler="synchronous")
    assert grids[0] == small_grid().alt.size and len(pyiri_calls) == 6
    assert np.isfinite(volume.ne_log10_sigma.values).all()


def test_pyiri_runs_on_one_blas_thread_and_leaves_the_setting_as_it_was(
    tiny_campaign, model, pyiri_calls, tmp_path, monkeypatch
):
    """PyIRI holds one core of the chunk, so its BLAS (numpy's) runs on one thread
    while it computes; the process's setting is back afterwards."""
    from threadpoolctl import threadpool_info

    import ionofield.reconstruction as reconstruction

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen = []
    background = reconstruction.campaign_background

    def recording_background(*args, **kwargs):
        seen.append(blas_threads())
        return background(*args, **kwargs)

    monkeypatch.setattr(reconstruction, "campaign_background", recording_background)
    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = {"kind": "iri"}
    before = blas_threads()
    iof.reconstruct(tiny_campaign, small_grid(), model=iri_model, chunks=2,
                    cache_dir=tmp_path).compute()
    assert blas_threads() == before
    assert len(seen) == 2 and all(threads == {1} for threads in seen) and pyiri_calls


def test_bfloat16_precision_stays_within_a_hundredth_of_a_dex(volume, tiny_campaign, model,
                                                              chapman_background):
    """precision="bfloat16" runs the network's products in bfloat16; the volume stays
    within 0.01 dex of float32's (sigma within 1 %) and says which precision it used."""
    fast = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                           background=chapman_background, chunks=2, precision="bfloat16")
    assert fast.attrs["precision"] == "bfloat16" and volume.attrs["precision"] == "float32"
    log_ratio = np.log10(fast.ne.values / volume.ne.values)
    assert 0 < np.abs(log_ratio).max() < 0.01  # it did change precision, and little
    np.testing.assert_allclose(fast.ne_log10_sigma, volume.ne_log10_sigma, rtol=0.01)
    xr.testing.assert_equal(fast.ne_background, volume.ne_background)
    with pytest.raises(ConfigError, match="precision='float16'"):
        iof.reconstruct(tiny_campaign, small_grid(), model=model,
                        background=chapman_background, precision="float16")


def test_a_compiled_network_gives_the_eager_volume_from_one_graph(volume, tiny_campaign,
                                                                  model, chapman_background):
    """compile=True: the same volume to float rounding, from a single compiled graph
    although the chunks' grids and TEC columns are of other sizes (calls are padded)."""
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    compiled = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                               background=chapman_background, chunks=2, precision="float32",
                               compile=True).compute()
    assert counters["stats"]["unique_graphs"] == graphs + 1
    np.testing.assert_allclose(np.log10(compiled.ne), np.log10(volume.ne), atol=1e-5)
    np.testing.assert_allclose(compiled.ne_log10_sigma, volume.ne_log10_sigma, rtol=1e-5)
    with pytest.raises(ConfigError, match="compile='yes'"):
        iof.reconstruct(tiny_campaign, small_grid(), model=model,
                        background=chapman_background, compile="yes")


def test_a_failed_compilation_warns_and_runs_the_network_as_it_is(volume, tiny_campaign, model,
                                                                  chapman_background,
                                                                  monkeypatch):
    def failing_compile(module, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler here\nsecond line")
        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    with pytest.warns(PerformanceWarning, match="RuntimeError: no C[+][+] compiler here[)]"):
        fallback = iof.reconstruct(tiny_campaign, small_grid(), model=model,
                                   background=chapman_background, chunks=2,
                                   precision="float32",
                                   compile=True).compute(scheduler="synchronous")
    xr.testing.assert_equal(fallback, volume.compute())


def test_the_output_layer_stays_float32_under_autocast(model):
    coords = torch.tensor([[10.0, 20.0, 300.0, 12.0], [-40.0, 170.0, 500.0, 3.0]])
    code = torch.zeros(1, model.basis_dim)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        residual, log_var, _ = model(coords, code)
        hidden = model.decoder[-1].weight.new_ones(1, model.decoder[-1].in_features)
        assert model.decoder[-1](hidden).dtype == torch.bfloat16  # autocast is on
    assert residual.dtype == torch.float32 and log_var.dtype == torch.float32

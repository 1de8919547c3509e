"""Validation against independent observations: analytic truths, groups, splits, readers.

A volume built from the tiny world's analytic truth (conftest) and observed at its grid
nodes scores exactly zero; offset by a known number of dex it scores that bias and
RMSE; the background's scores are recomputed here with pandas, group by group.
"""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import ionofield as iof  # noqa: E402
from ionofield import plot  # noqa: E402
from ionofield.background import BackgroundField  # noqa: E402
from ionofield.errors import (  # noqa: E402
    CampaignError,
    ConfigError,
    CoverageError,
    DataWarning,
    InputFileError,
)
from ionofield.io.ionosonde import FOF2_TO_NMF2, nmf2_from_fof2, open_ionosonde  # noqa: E402
from ionofield.validation import (  # noqa: E402
    split_profiles,
    validate,
    validate_command,
    volume_at,
)
from tests.conftest import (  # noqa: E402
    HOURS,
    START,
    chapman_log10,
    indices_dataset,
    observations,
    truth_log10,
)

HOUR = np.timedelta64(1, "h")
#: Kp of each 3-hour slot of the tiny campaign (conftest.indices_dataset).
KP = indices_dataset()["kp"].values
ALT = np.arange(100.0, 801.0, 10.0)
LAT = np.arange(-90.0, 90.1, 10.0)
LON = np.arange(-180.0, 180.0, 10.0)


def background_log10(alt):
    """The conftest background: a Chapman layer of 5e11 m-3 at 300 km everywhere."""
    return chapman_log10(alt, 5e11, 300.0)


def truth_volume(offset: float = 0.0) -> xr.Dataset:
    """The truth (plus ``offset`` dex) and the background on a grid over the campaign."""
    times = START + np.arange(HOURS) * HOUR
    t, z, y, x = np.meshgrid(times, ALT, LAT, LON, indexing="ij")
    dims = ("time", "alt", "lat", "lon")
    return xr.Dataset(
        {"ne": (dims, 10.0 ** (truth_log10(t, z, y, x) + offset), {"units": "m-3"}),
         "ne_background": (dims, 10.0 ** background_log10(z), {"units": "m-3"})},
        coords={"time": times, "alt": ALT, "lat": LAT, "lon": LON},
    )


def node_profiles(n: int = 40, seed: int = 3) -> xr.Dataset:
    """Vertical profiles at grid nodes and whole hours, 150-600 km, of the exact truth."""
    rng = np.random.default_rng(seed)
    alt = np.arange(150.0, 601.0, 10.0)
    parts = []
    for k in range(n):
        t = START + int(rng.integers(0, HOURS)) * HOUR
        lat, lon = rng.choice(LAT[1:-1]), rng.choice(LON)
        parts.append(xr.Dataset(
            {"ne": ("obs", 10.0 ** truth_log10(t, alt, lat, lon))},
            coords={"time": ("obs", np.full(alt.size, t)), "lat": ("obs", np.full(alt.size, lat)),
                    "lon": ("obs", np.full(alt.size, lon)), "alt": ("obs", alt),
                    "profile": ("obs", np.full(alt.size, f"N{k:02d}"))},
        ))
    return xr.concat(parts, "obs")


def soundings(n: int = 30, seed: int = 5, *, hmf2: bool = True) -> xr.Dataset:
    """Ionosonde soundings of the truth at grid nodes and whole hours (peak at 340 km)."""
    rng = np.random.default_rng(seed)
    time = START + rng.integers(0, HOURS, n) * HOUR
    lat, lon = rng.choice(LAT[1:-1], n), rng.choice(LON, n)
    nm = 10.0 ** truth_log10(time, 340.0, lat, lon)
    data = {"fof2": ("sounding", np.sqrt(nm / FOF2_TO_NMF2))}
    if hmf2:
        data["hmf2"] = ("sounding", np.full(n, 340.0))
    return xr.Dataset(data, coords={"time": ("sounding", time), "lat": ("sounding", lat),
                                    "lon": ("sounding", lon),
                                    "station": ("sounding", [f"S{k % 7}" for k in range(n)])})


def by_group(table: xr.Dataset, grouping: str) -> xr.Dataset:
    return table.isel(group=table.grouping.values == grouping)


# -- analytic truths ---------------------------------------------------------------------


def test_the_truth_scores_zero_and_skill_one(tiny_campaign):
    table = validate(truth_volume(), node_profiles(), campaign=tiny_campaign)
    every = table.sel(group="all", estimate="model")
    assert int(every.n_points) == 40 * 46 and int(every.n_nmf2) == 40
    for name in ("log10_ne_rmse", "log10_ne_bias", "log10_nmf2_rmse", "hmf2_rmse"):
        assert abs(float(every[name])) < 1e-9, name
    scored = table.n_points > 0
    np.testing.assert_allclose(table.log10_ne_skill.where(scored, drop=True), 1.0, atol=1e-9)
    assert float(table.log10_ne_rmse.sel(group="all", estimate="background")) > 0.05


@pytest.mark.parametrize("offset", [0.05, -0.2], ids=["plus-0.05-dex", "minus-0.2-dex"])
def test_an_offset_volume_scores_its_offset(tiny_campaign, offset):
    table = validate(truth_volume(offset), node_profiles(), campaign=tiny_campaign)
    model = table.sel(estimate="model").where(table.n_points > 0, drop=True)
    np.testing.assert_allclose(model.log10_ne_bias, offset, atol=1e-9)
    np.testing.assert_allclose(model.log10_ne_rmse, abs(offset), atol=1e-9)
    # The whole profile moves by the offset: the peak's density too, not its height.
    np.testing.assert_allclose(model.log10_nmf2_bias.dropna("group"), offset, atol=1e-9)
    np.testing.assert_allclose(model.hmf2_bias.dropna("group"), 0.0, atol=1e-6)


def test_background_scores_and_counts_match_an_independent_computation(tiny_campaign):
    obs = node_profiles()
    table = validate(truth_volume(), obs, campaign=tiny_campaign)
    hours = ((obs.time.values - START) / HOUR).astype(int)
    frame = pd.DataFrame({
        "error": background_log10(obs.alt.values) - np.log10(obs.ne.values),
        "lat_band": pd.cut(obs.lat.values, [-90, -60, -30, 0, 30, 60, 90], right=False),
        "local_time": pd.cut((hours + obs.lon.values / 15.0) % 24, [0, 6, 12, 18, 24],
                             right=False),
        "kp_class": pd.cut(KP[hours // 3], [0, 3, 5, 9.01], right=False),
    })
    background = table.sel(estimate="background")
    for grouping in ("lat_band", "local_time", "kp_class"):
        groups = frame.groupby(grouping, observed=False)["error"]
        part = by_group(background, grouping)
        np.testing.assert_array_equal(part.n_points, groups.size().to_numpy())
        assert int(part.n_points.sum()) == int(table.n_points.sel(group="all")) == len(frame)
        assert int(by_group(table, grouping).n_nmf2.sum()) == int(table.n_nmf2.sel(group="all"))
        expected = np.sqrt(groups.apply(lambda e: np.mean(e**2)).to_numpy())
        np.testing.assert_allclose(part.log10_ne_rmse, expected, rtol=1e-12)
        np.testing.assert_allclose(part.log10_ne_bias, groups.mean().to_numpy(), rtol=1e-12)
    every = background.sel(group="all")
    assert float(every.log10_ne_rmse) == pytest.approx(np.sqrt(np.mean(frame.error**2)))
    # The background's peak is the Chapman layer's: 5e11 m-3 at 300 km; the truth's at 340.
    nm = [10.0 ** truth_log10(p.time.values[0], 340.0, p.lat.values[0], p.lon.values[0])
          for _, p in obs.groupby("profile")]
    assert float(every.log10_nmf2_bias) == pytest.approx(np.mean(np.log10(5e11 / np.array(nm))),
                                                         abs=1e-4)
    assert float(every.hmf2_bias) == pytest.approx(-40.0, abs=1.0)


def test_volume_at_is_multilinear_in_log10_and_nan_outside():
    vol = truth_volume()
    t = START + np.array([90, 30], "timedelta64[m]")
    at = volume_at(vol, t, [305.0, 900.0], [15.0, 0.0], [-175.0, 0.0])
    # Between nodes: the mean of the corners' log10, weighted by the distances.
    corners = [truth_log10(START + h * HOUR, a, y, x) for h in (1, 2) for a in (300.0, 310.0)
               for y in (10.0, 20.0) for x in (-180.0, -170.0)]
    weights = [wh * wa * 0.25 for wh in (0.5, 0.5) for wa in (0.5, 0.5) for _ in range(4)]
    assert at["ne"][0] == pytest.approx(np.dot(weights, corners), abs=1e-12)
    assert np.isnan(at["ne"][1]) and np.isnan(at["ne_background"][1])  # above the grid


def test_volume_at_reads_each_chunk_of_a_lazy_volume_once():
    read = []

    def block(values, block_info=None):
        read.append(block_info[None]["chunk-location"][0])
        return values

    vol = truth_volume().chunk(time=4)  # chunks of hours 0-3, 4-7, 8-11, 12
    vol["ne"] = vol.ne.copy(data=vol.ne.data.map_blocks(block, dtype=vol.ne.dtype))
    t = START + np.array([30, 200, 230, 400, 405], "timedelta64[m]")  # chunks 0, 0-1, 1
    at = volume_at(vol, t, 300.0, 0.0, 0.0)
    assert sorted(read) == [0, 1]
    eager = volume_at(truth_volume(), t, 300.0, 0.0, 0.0)
    np.testing.assert_allclose(at["ne"], eager["ne"], rtol=1e-14)


# -- ionosondes ----------------------------------------------------------------------------


def test_nmf2_from_fof2():
    assert float(nmf2_from_fof2(10.0)) == pytest.approx(1.24e12)
    np.testing.assert_allclose(nmf2_from_fof2([1.0, 3.0]), [1.24e10, 9 * 1.24e10])


def test_ionosondes_score_the_truth_volume(tiny_campaign):
    table = validate(truth_volume(), soundings(), campaign=tiny_campaign)
    every = table.sel(group="all")
    assert int(every.n_points) == 0 and int(every.n_nmf2) == 30 == int(every.n_hmf2)
    assert float(every.log10_nmf2_rmse.sel(estimate="model")) < 1e-4
    assert float(every.hmf2_rmse.sel(estimate="model")) < 1.0
    assert float(every.hmf2_bias.sel(estimate="background")) == pytest.approx(-40.0, abs=1.0)
    assert np.isnan(float(every.log10_ne_rmse.sel(estimate="model")))
    kp = by_group(table, "kp_class")
    assert int(kp.n_nmf2.sum()) == 30
    without = validate(truth_volume(), soundings(hmf2=False), campaign=tiny_campaign)
    assert int(without.n_hmf2.sel(group="all")) == 0
    assert float(without.log10_nmf2_rmse.sel(group="all", estimate="model")) < 1e-4


def write(path, text):
    path.write_text(text)
    return path


def test_open_ionosonde_reads_giro_style_tables(tmp_path):
    path = write(tmp_path / "giro.csv", "\n".join([
        "# GIRO DIDBase export",
        " STATION , Time , LAT , LON , foF2 , HMF2 , cs",
        "JR055,2024-05-10T12:00:00.000Z,54.6,13.4,10.0,280.5,90",
        "JR055,2024-05-10T12:15:00Z,54.6,13.4,9999,250,90",
        "JR055,2024-05-10T12:30:00Z,54.6,13.4,8.0,---,40",
        "AT138,2024-05-10T11:00:00,37.9,383.7,5.0,999.9,100",
    ]))
    with pytest.warns(DataWarning, match="1 sounding.*dropped.*1 hmF2"):
        table = open_ionosonde(path)
    assert table.sizes["sounding"] == 3
    np.testing.assert_array_equal(table.station, ["AT138", "JR055", "JR055"])  # by time
    np.testing.assert_allclose(table.fof2, [5.0, 10.0, 8.0])
    np.testing.assert_allclose(table.nmf2, FOF2_TO_NMF2 * np.array([25.0, 100.0, 64.0]))
    np.testing.assert_array_equal(np.isnan(table.hmf2), [True, False, True])
    assert table.lon.values[0] == pytest.approx(23.7)
    assert table.nmf2.attrs["units"] == "m-3" and table.hmf2.attrs["units"] == "km"
    with pytest.warns(DataWarning):
        assert open_ionosonde(path, min_confidence=50).sizes["sounding"] == 2
    plain = write(tmp_path / "plain.csv",
                  "time,lat,lon,fof2\n2024-05-10T01:00Z,10,20,6.0\n")
    table = open_ionosonde(plain)
    assert np.isnan(table.hmf2.values).all() and table.station.values[0] == "plain"


BAD_TABLES = {
    "no-fof2-column": ("station,time,lat,lon,hmf2\nA,2024-05-10T00:00Z,1,2,300\n",
                       "no column for fof2"),
    "bad-time": ("station,time,lat,lon,fof2\nA,10/05/2024 noon,1,2,6\n", "'time'.*ISO 8601"),
    "fof2-in-0.1-MHz": ("station,time,lat,lon,fof2\nA,2024-05-10T00:00Z,1,2,65\n"
                        "A,2024-05-10T01:00Z,1,2,71\n", "'fof2'.*median of 68.*divide"),
    "hmf2-in-metres": ("time,lat,lon,fof2,hmf2\n2024-05-10T00:00Z,1,2,6,300000\n",
                       "'hmf2'.*metres"),
    "text-latitude": ("time,lat,lon,fof2\n2024-05-10T00:00Z,north,2,6\n",
                      "'lat'.*not numbers.*'north'"),
    "latitude-out-of-range": ("time,lat,lon,fof2\n2024-05-10T00:00Z,95,2,6\n", "outside -90..90"),
    "two-time-columns": ("time,Time,lat,lon,fof2\nx,y,1,2,6\n", "all name time"),
    "empty": ("", "cannot be read as a CSV"),
}


@pytest.mark.parametrize("name", BAD_TABLES)
def test_bad_ionosonde_tables_raise_naming_file_and_column(tmp_path, name):
    text, message = BAD_TABLES[name]
    path = write(tmp_path / f"{name}.csv", text)
    with pytest.raises(InputFileError, match=message) as caught:
        open_ionosonde(path)
    assert str(path) in str(caught.value)


def test_min_confidence_needs_a_cs_column(tmp_path):
    path = write(tmp_path / "t.csv", "time,lat,lon,fof2\n2024-05-10T00:00Z,1,2,6\n")
    with pytest.raises(InputFileError, match="no CS column"):
        open_ionosonde(path, min_confidence=70)


# -- splits --------------------------------------------------------------------------------


def test_split_profiles_keeps_whole_profiles_disjoint_and_reproducible(tiny_campaign):
    fit_part, held = split_profiles(tiny_campaign, 0.25, seed=4)
    ids = tiny_campaign.obs_profile.values
    fit_ids, held_ids = set(fit_part.obs_profile.values), set(held.obs_profile.values)
    assert fit_ids.isdisjoint(held_ids) and fit_ids | held_ids == set(ids)
    assert len(held_ids) == 9  # a quarter of 36
    assert fit_part.sizes["obs"] + held.sizes["obs"] == tiny_campaign.sizes["obs"]
    for part, wanted in ((held, held_ids), (fit_part, fit_ids)):  # every point of each
        assert part.sizes["obs"] == int(np.isin(ids, list(wanted)).sum())
        assert part.attrs["n_profiles"] == len(wanted)
        iof.drivers_at(part)  # still a campaign with its drivers
    again, _ = split_profiles(tiny_campaign, 0.25, seed=4)
    xr.testing.assert_identical(again, fit_part)
    other, _ = split_profiles(tiny_campaign, 0.25, seed=5)
    assert set(other.obs_profile.values) != fit_ids


def test_split_profiles_by_time_blocks(tiny_campaign):
    fit_part, held = split_profiles(tiny_campaign, 0.5, seed=0, block="3h")
    start = pd.DataFrame({"profile": tiny_campaign.obs_profile.values,
                          "time": tiny_campaign.obs_time.values}).groupby("profile").time.min()
    blocks = start.dt.floor("3h")
    held_blocks = set(blocks[list(set(held.obs_profile.values))])
    fit_blocks = set(blocks[list(set(fit_part.obs_profile.values))])
    assert held_blocks.isdisjoint(fit_blocks) and len(held_blocks) == 2  # half of 4 blocks
    assert "blocks of 3h" in held.attrs["split"]


@pytest.mark.parametrize("options", [dict(fraction=0.0), dict(fraction=1.0), dict(fraction=True),
                                     dict(block="soon")], ids=str)
def test_split_profiles_refuses_bad_options(tiny_campaign, options):
    with pytest.raises(ConfigError):
        split_profiles(tiny_campaign, **options)


# -- the model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def held_out() -> xr.Dataset:
    return observations(n_profiles=8, seed=11)


@pytest.fixture(scope="module")
def model_volume(tiny_campaign, model, chapman_background) -> xr.Dataset:
    grid = iof.grid(time=tiny_campaign.time.values, alt=np.arange(150.0, 601.0, 15.0),
                    lat=np.arange(-90.0, 90.1, 10.0), lon=np.arange(-180.0, 180.0, 10.0))
    return iof.reconstruct(tiny_campaign, grid, model=model, background=chapman_background,
                           device="cpu").compute()


def test_volume_and_model_that_made_it_agree(tiny_campaign, model, chapman_background,
                                             held_out, model_volume):
    of_model = validate(model, held_out, campaign=tiny_campaign, background=chapman_background,
                        device="cpu")
    of_volume = validate(model_volume, held_out, campaign=tiny_campaign)
    for name in ("n_points", "n_nmf2", "n_hmf2"):
        np.testing.assert_array_equal(of_model[name], of_volume[name])
    assert int(of_model.n_points.sel(group="all")) == held_out.sizes["obs"]
    np.testing.assert_allclose(of_volume.log10_ne_rmse, of_model.log10_ne_rmse, atol=2e-3)
    np.testing.assert_allclose(of_volume.log10_ne_bias, of_model.log10_ne_bias, atol=2e-3)
    np.testing.assert_allclose(of_volume.log10_nmf2_rmse, of_model.log10_nmf2_rmse, atol=5e-3)
    np.testing.assert_allclose(of_volume.hmf2_rmse, of_model.hmf2_rmse, atol=1.0)
    assert "R-STMRF model" in of_model.attrs["source"]
    assert "interpolation" in of_volume.attrs


def test_the_model_is_scored_on_the_background_it_was_fitted_with(tiny_campaign, model,
                                                                   chapman_background):
    table = validate(model, tiny_campaign, background=chapman_background, device="cpu")
    ds = tiny_campaign
    background = BackgroundField(chapman_background).log10_at(
        ds.obs_time.values, ds.obs_alt.values, ds.obs_lat.values, ds.obs_lon.values)
    expected = np.sqrt(np.mean((background - np.log10(ds.ne.values)) ** 2))
    got = float(table.log10_ne_rmse.sel(group="all", estimate="background"))
    assert got == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match="user-supplied background"):
        validate(model, tiny_campaign, device="cpu")


def test_an_iri_model_reads_the_iri_it_was_fitted_on(tiny_campaign, model, pyiri_calls,
                                                     tmp_path, held_out):
    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = {"kind": "iri", "f107_variable": "f107_81"}
    table = validate(iri_model, held_out, campaign=tiny_campaign, cache_dir=tmp_path,
                     device="cpu")
    assert {args[7] for args, _ in pyiri_calls} == {170.0}  # the campaign's f107_81
    # The fake PyIRI's Ne is 170e9 + UT hours * 1e6 m-3: log10 1.7e11 within 3e-5.
    expected = np.sqrt(np.mean((np.log10(1.7e11) - np.log10(held_out.ne.values)) ** 2))
    got = float(table.log10_ne_rmse.sel(group="all", estimate="background"))
    assert got == pytest.approx(expected, abs=1e-4)


def test_accessor_forwards_to_validate(tiny_campaign, model, chapman_background, held_out,
                                       model_volume):
    direct = validate(model, held_out, campaign=tiny_campaign, background=chapman_background,
                      device="cpu")
    through = tiny_campaign.rstmrf.validate(held_out, model=model, background=chapman_background,
                                            device="cpu")
    xr.testing.assert_equal(direct, through)
    xr.testing.assert_equal(validate(model_volume, held_out),
                            model_volume.rstmrf.validate(held_out))
    with pytest.raises(ConfigError, match="no fitted model"):
        tiny_campaign.copy().rstmrf.validate(held_out)
    with pytest.raises(ConfigError, match="volume"):
        model_volume.rstmrf.validate(held_out, model=model)


# -- what is refused -----------------------------------------------------------------------


def test_points_outside_the_volume_are_left_out_with_a_count(tiny_campaign):
    obs = node_profiles(n=6)
    low = truth_volume().sel(alt=slice(None, 400.0))
    with pytest.warns(DataWarning, match=r"\d+ of 276 RO observation\(s\) outside .*alt 100 to "
                                          r"400 km"):
        table = validate(low, obs, campaign=tiny_campaign)
    assert int(table.n_points.sel(group="all")) == int((obs.alt <= 400).sum())
    assert f"{int((obs.alt > 400).sum())} outside the volume's grid" in table.attrs["observations"]
    with pytest.raises(CoverageError, match="none of the"):
        validate(truth_volume().sel(alt=slice(700.0, None)), obs)
    late = truth_volume().assign_coords(time=truth_volume().time + 48 * HOUR)
    with pytest.raises(CoverageError, match="campaign's hours"):
        validate(late, obs, campaign=tiny_campaign)


def test_bad_sources_observations_and_groups_are_refused(tiny_campaign, model, held_out):
    with pytest.raises(ConfigError, match="needs the hourly drivers"):
        validate(model, held_out)
    with pytest.raises(ConfigError, match="source is a list"):
        validate([1, 2], held_out)
    with pytest.raises(ConfigError, match="no variable"):
        validate(truth_volume()[["ne"]], held_out)
    with pytest.raises(CampaignError, match="neither 'ne'"):
        validate(truth_volume(), held_out.rename(ne="density"))
    with pytest.raises(ConfigError, match="lat_band edges"):
        validate(truth_volume(), held_out, lat_bands=(0.0, -30.0))
    negative = held_out.copy()
    negative["ne"] = -negative.ne
    with pytest.raises(iof.errors.ManyProblemsError, match="'ne' holds 248"):
        validate(truth_volume(), negative)


def test_without_a_campaign_there_are_no_kp_classes():
    table = validate(truth_volume(), node_profiles(n=5))
    assert "kp_class" not in table.grouping.values
    assert "no campaign" in table.attrs["kp"]


def test_snr_classes_split_the_scores_by_ne_over_ne_err(tiny_campaign):
    """Each class holds the points whose ne / ne_err lies in it; its scores are theirs."""
    obs = node_profiles()
    snr = np.random.default_rng(11).choice([0.5, 2.0, 5.0, 50.0], obs.sizes["obs"])
    obs["ne_err"] = obs.ne / snr
    offset = 0.05 + 0.1 * (snr < 1)  # the noise-dominated points err more
    vol = truth_volume()
    table = validate(vol, obs, campaign=tiny_campaign)
    classes = by_group(table, "snr_class")
    assert classes.group.values.tolist() == ["SNR 0-1", "SNR 1-3", "SNR 3-10", "SNR 10-inf"]
    expected = [int(((snr >= lo) & (snr < hi)).sum()) for lo, hi in
                [(0, 1), (1, 3), (3, 10), (10, np.inf)]]
    np.testing.assert_array_equal(classes.n_points, expected)
    assert int(classes.n_nmf2.sum()) == int(table.n_nmf2.sel(group="all")) > 0
    # A volume off by the offset of each point's class scores that class's offset.
    moved = validate(vol, obs.assign(ne=obs.ne / 10.0 ** offset), campaign=tiny_campaign)
    rmse = by_group(moved, "snr_class").log10_ne_rmse.sel(estimate="model").values
    np.testing.assert_allclose(rmse, [0.15, 0.05, 0.05, 0.05], atol=1e-9)
    assert "ne / ne_err" in table.attrs["snr"]


def test_without_ne_err_there_are_no_snr_classes_and_a_bad_one_is_named(tiny_campaign):
    obs = node_profiles(n=5)
    table = validate(truth_volume(), obs, campaign=tiny_campaign)
    assert "snr_class" not in table.grouping.values
    assert "no ne_err" in table.attrs["snr"]
    obs["ne_err"] = obs.ne * 0.1
    obs["ne_err"][3] = 0.0
    with pytest.raises(iof.errors.ManyProblemsError, match="'ne_err' holds 1 zero"):
        validate(truth_volume(), obs, campaign=tiny_campaign)
    with pytest.raises(ConfigError, match="snr_class edges"):
        validate(truth_volume(), obs, snr_classes=(3.0, 1.0))


# -- command, files and plot -------------------------------------------------------------


def test_validate_command_writes_netcdf_and_csv(tmp_path, tiny_campaign, model, pyiri_calls,
                                                monkeypatch):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path / "cache"))  # the fake IRI stays here
    iof.to_netcdf(truth_volume(0.05), tmp_path / "ne.nc")
    iof.write_ro_table(node_profiles(n=6), tmp_path / "held.csv")
    table = validate_command(tmp_path / "scores.nc", campaign=tiny_campaign,
                             volume=tmp_path / "ne.nc", held_out=[tmp_path / "held.csv"])
    back = xr.open_dataset(tmp_path / "scores.nc")
    xr.testing.assert_allclose(back.load(), table)
    assert float(back.log10_ne_bias.sel(group="all", estimate="model")) == pytest.approx(0.05)
    validate_command(tmp_path / "scores.csv", campaign=tiny_campaign, volume=tmp_path / "ne.nc",
                     held_out=[tmp_path / "held.csv"])
    frame = pd.read_csv(tmp_path / "scores.csv", index_col="group")
    assert frame.loc["all", "log10_ne_bias_model"] == pytest.approx(0.05)
    assert frame.loc["all", "grouping"] == "all" and "log10_ne_skill" in frame
    iri_model = copy.deepcopy(model)
    iri_model.info["background"] = {"kind": "iri", "f107_variable": "f107_81"}
    iri_model.save(tmp_path / "model.pt")
    of_model = validate_command(tmp_path / "model.csv", campaign=tiny_campaign, device="cpu",
                                model=tmp_path / "model.pt", held_out=[tmp_path / "held.csv"])
    assert "R-STMRF model" in of_model.attrs["source"] and pyiri_calls
    with pytest.raises(ConfigError, match="exactly one of --model"):
        validate_command(tmp_path / "x.nc", campaign=tiny_campaign, held_out=["a"])
    with pytest.raises(ConfigError, match="end it in .nc or .csv"):
        validate_command(tmp_path / "x.txt", campaign=tiny_campaign, volume="v", held_out=["a"])


def test_validation_plot_draws_the_table(tiny_campaign):
    table = validate(truth_volume(0.05), node_profiles(), campaign=tiny_campaign)
    fig = plot.validation(table)
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 3
    lat = by_group(table, "lat_band")
    heights = [patch.get_height() for patch in panels[0].patches]
    np.testing.assert_allclose(heights, np.concatenate(
        [lat.log10_ne_rmse.sel(estimate=e).values for e in ("model", "background")]))
    assert "n=" in panels[0].get_xticklabels()[0].get_text()
    assert "skill" in fig._suptitle.get_text()
    hm = plot.validation(table, variable="hmf2_rmse")
    assert "(km)" in hm.axes[0].get_ylabel()
    with pytest.raises(ConfigError, match="not a score"):
        plot.validation(table, variable="log10_ne_skill")
    plt.close("all")

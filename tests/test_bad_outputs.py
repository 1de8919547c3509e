"""Bad-input catalogue of the outputs: grid, reconstruct, to_netcdf and the command line.

One parametrised test per public entry point; each case names the bad input and
what ionofield must do with it: raise the named ``ionofield.errors`` class with a
message naming the variable or file and the fix, warn with the count and return the
right result, or simply do what was asked. The cases call the public API only
(``import ionofield as iof``) and name error classes as strings, so that the same
cases run against older versions of ionofield.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import dataclasses
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import ionofield as iof
from ionofield import cli
from tests.conftest import COARSE_IRI, START, TINY, observations, write_input_files

#: IRI grid of the models here: coarse, so that a background of a few hours is quick.
IONEX_LON = np.arange(-180, 180.1, 5)


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input and what must come of it.

    ``call(ctx)`` does the bad thing. Then exactly one of: ``error`` (the name of an
    ``ionofield.errors`` class, or of a built-in one such as ``FileNotFoundError``)
    raised with a message matching ``match``; ``warning`` (a class name) issued
    matching ``match``, and ``check(result, ctx)`` passes on the result; or, with
    neither, ``check(result, ctx)`` passes. With ``error``, ``check(None, ctx)``
    (when given) looks at what the failure left.
    """

    id: str
    input: str
    call: Callable[[Any], Any]
    error: str | None = None
    warning: str | None = None
    match: str = ""
    check: Callable[[Any, Any], None] | None = None


@dataclasses.dataclass(frozen=True)
class Context:
    """What the cases work on: a campaign, a model fitted on it, its background."""

    campaign: xr.Dataset
    model: Any
    background: xr.Dataset
    folder: Path
    entry: str = "iof.reconstruct"


def exception(name: str) -> type[BaseException]:
    """The class ``ionofield.errors.<name>``, or the built-in one of that name."""
    return getattr(iof.errors, name, None) or getattr(builtins, name)


def run_case(case: Case, ctx: Context) -> None:
    """Assert what ``case`` says must happen."""
    if case.error is not None:
        with pytest.raises(exception(case.error), match=case.match):
            case.call(ctx)
        if case.check is not None:  # what the failure left behind
            case.check(None, ctx)
        return
    if case.warning is not None:
        with pytest.warns(exception(case.warning), match=case.match):
            result = case.call(ctx)
    else:
        result = case.call(ctx)
    case.check(result, ctx)


@pytest.fixture(scope="module")
def ctx(tiny_campaign, chapman_background, tmp_path_factory):
    model = iof.fit(tiny_campaign, background=chapman_background, max_steps=16, **TINY,
                    **COARSE_IRI)
    return Context(tiny_campaign, model, chapman_background, tmp_path_factory.mktemp("bad"))


def case_folder(ctx: Context, name: str) -> Path:
    folder = ctx.folder / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- grid -----------------------------------------------------------------------------

TIMES = pd.date_range(START, periods=2, freq="h")


def grid_with(**axes: Any) -> Callable[[Any], xr.Dataset]:
    base = dict(time=TIMES, alt=[200.0, 300.0], lat=[0.0], lon=[0.0, 90.0])
    return lambda ctx: iof.grid(**{**base, **axes})


def lon_is(expected: Any) -> Callable[[xr.Dataset, Any], None]:
    def check(g: xr.Dataset, ctx: Any) -> None:
        np.testing.assert_array_equal(g["lon"].values, expected)
    return check


GRID_CASES = [
    Case("lon-ionex-grid-keeps-180", "lon = np.arange(-180, 180.1, 5), the IONEX grid",
         grid_with(lon=IONEX_LON), check=lon_is(IONEX_LON)),
    Case("lon-0-360-inclusive", "lon = 0, 90, ..., 360: 360 is the meridian 0 again",
         grid_with(lon=np.arange(0.0, 360.1, 90.0)), warning="DataWarning",
         match=r"1 of 5 longitude\(s\).*dropped", check=lon_is([-90.0, 0.0, 90.0, 180.0])),
    Case("lon-given-twice", "lon = [0, 0, 10]", grid_with(lon=[0.0, 0.0, 10.0]),
         warning="DataWarning", match=r"1 of 3 longitude", check=lon_is([0.0, 10.0])),
    Case("lon-nan", "lon = [0, NaN]", grid_with(lon=[0.0, np.nan]), error="ConfigError",
         match=r"grid: lon holds NaN"),
    Case("lat-nan", "lat = [NaN]", grid_with(lat=[np.nan]), error="ConfigError",
         match=r"grid: lat holds NaN"),
    Case("lat-beyond-pole", "lat = [95]", grid_with(lat=[95.0]), error="ConfigError",
         match=r"lat must lie within \[-90, 90\]"),
    Case("alt-empty", "alt = []", grid_with(alt=[]), error="ConfigError",
         match=r"grid: alt is empty"),
    Case("alt-metres", "alt = [300000] (metres)", grid_with(alt=[300e3]), error="ConfigError",
         match=r"alt must be in km.*metres"),
    Case("alt-decreasing", "alt = [300, 200]", grid_with(alt=[300.0, 200.0]),
         error="ConfigError", match=r"alt must be strictly increasing"),
    Case("time-repeated", "time = [t, t]", grid_with(time=[START, START]),
         error="ConfigError", match=r"time must be strictly increasing"),
    Case("time-nat", "time = [t, NaT]", grid_with(time=[START, np.datetime64("NaT")]),
         error="ConfigError", match=r"time holds NaT"),
]


@pytest.mark.parametrize("case", GRID_CASES, ids=[c.id for c in GRID_CASES])
def test_grid(case, ctx):
    run_case(case, ctx)


# -- reconstruct ----------------------------------------------------------------------


def small_grid(**axes: Any) -> xr.Dataset:
    base = dict(time=pd.date_range(START, periods=3, freq="97min"),
                alt=np.arange(150.0, 601.0, 150.0), lat=np.arange(-60.0, 60.1, 60.0),
                lon=np.arange(-180.0, 180.0, 90.0))
    return iof.grid(**{**base, **axes})


def changed(model: Any, change: Callable[[Any], None]) -> Any:
    """A copy of ``model`` with ``change`` applied to it (without autograd)."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        change(model)
    return model


def via(ctx: Context, **options: Any) -> xr.Dataset:
    """Reconstruct through the function or through the accessor (``entry``)."""
    options.setdefault("model", ctx.model)
    options.setdefault("background", ctx.background)
    target = options.pop("target", None)
    target = small_grid() if target is None else target
    ds = options.pop("ds", ctx.campaign)
    if ctx.entry == "accessor":
        return ds.rstmrf.reconstruct(target, **options)
    return iof.reconstruct(ds, target, **options)


def set_decoder(row: int, what: str, value: float) -> Callable[[Any], None]:
    def change(model: Any) -> None:
        getattr(model.decoder[-1], what)[row] = value
    return change


def nan_weight(model: Any) -> None:
    model.decoder[-1].weight[0, 0] = float("nan")


def infinite_shift(model: Any) -> None:
    model.log_var_shift.fill_(float("inf"))


def set_info(**info: Any) -> Callable[[Any], None]:
    return lambda model: model.info.update(info)


def saved(ctx: Context) -> str:
    path = case_folder(ctx, "saved") / "model.pt"
    ctx.model.save(path)
    return str(path)


def equals_reference(vol: xr.Dataset, ctx: Context) -> None:
    reference = iof.reconstruct(ctx.campaign, small_grid(), model=ctx.model,
                                background=ctx.background)
    xr.testing.assert_equal(vol.compute(), reference.compute())


def antimeridian_columns_equal(vol: xr.Dataset, ctx: Context) -> None:
    np.testing.assert_array_equal(vol.lon.values, IONEX_LON[::18])
    vol = vol.compute()
    for name in vol.data_vars:
        np.testing.assert_array_equal(vol[name].sel(lon=-180.0), vol[name].sel(lon=180.0))


def extrapolation_recorded(pattern: str) -> Callable[[xr.Dataset, Any], None]:
    def check(vol: xr.Dataset, ctx: Any) -> None:
        assert re.search(pattern, vol.attrs["extrapolation"]), vol.attrs
    return check


def names_user_background(vol: xr.Dataset, ctx: Context) -> None:
    assert "user-supplied background" in vol.attrs["source"]
    assert "PyIRI" not in vol.attrs["source"] + vol.attrs["references"]


def iri_given_f107_81(vol: xr.Dataset, ctx: Context) -> None:
    assert "IRI via PyIRI" in vol.attrs["source"]
    assert vol.attrs["iri_f107"].startswith("f107_81")
    # The fake PyIRI's density is F10.7 * 1e9 + UT hours * 1e6: 170 sfu is the 81-day mean.
    level = vol.ne_background.isel(time=0).max().values
    assert level == pytest.approx(170e9, rel=1e-3)


RECONSTRUCT_CASES = [
    Case("model-nan-weight", "a model with one NaN decoder weight",
         lambda ctx: via(ctx, model=changed(ctx.model, nan_weight)),
         error="DivergenceError", match=r"NaN or infinite values in 1 tensor\(s\) "
         r"\(decoder\.\d+\.weight\).*refit"),
    Case("model-inf-buffer", "a model whose log_var_shift is +inf",
         lambda ctx: via(ctx, model=changed(ctx.model, infinite_shift)),
         error="DivergenceError", match=r"log_var_shift.*refit"),
    Case("bias-huge", "a model whose decoder bias gives a residual of 1e4 dex (finite)",
         lambda ctx: via(ctx, model=changed(
             ctx.model, set_decoder(0, "bias", 1.0e4))).compute(),
         error="DivergenceError",
         match=r"chunk of 3 time\(s\) 2024-05-10T00:00.*log10 residual outside \+-6 dex"
         r".*refit"),
    Case("log-variance-huge", "a model whose decoder bias gives log-variance +300",
         lambda ctx: via(ctx, model=changed(
             ctx.model, set_decoder(1, "bias", 300.0))).compute(),
         error="DivergenceError", match=r"ne_log10_sigma outside 0.0001\.\.6 dex.*refit"),
    Case("model-path", "model='model.pt', a path instead of a model",
         lambda ctx: via(ctx, model=saved(ctx)), check=equals_reference),
    Case("model-missing-file", "model='nothere.pt'",
         lambda ctx: via(ctx, model=str(ctx.folder / "nothere.pt")),
         error="FileNotFoundError", match=r"nothere\.pt"),
    Case("model-dict", "model={} (not a model)",
         lambda ctx: via(ctx, model={}), error="ConfigError",
         match=r"model= is a dict; pass a fitted ionofield.RSTMRF"),
    Case("chunks-negative", "chunks=-1", lambda ctx: via(ctx, chunks=-1),
         error="ConfigError", match=r"chunks=-1; give a positive whole number"),
    Case("chunks-zero", "chunks=0", lambda ctx: via(ctx, chunks=0),
         error="ConfigError", match=r"chunks=0; give a positive"),
    Case("chunks-text", "chunks='a'", lambda ctx: via(ctx, chunks="a"),
         error="ConfigError", match=r"chunks='a'; give a positive"),
    Case("chunks-fraction", "chunks=1.5", lambda ctx: via(ctx, chunks=1.5),
         error="ConfigError", match=r"chunks=1.5; give a positive"),
    Case("target-not-a-grid", "target=xr.Dataset() (no coordinates)",
         lambda ctx: via(ctx, target=xr.Dataset()), error="ConfigError",
         match=r"target grid.*lacks.*ionofield.grid"),
    Case("ds-not-a-campaign", "the observations instead of a campaign",
         lambda ctx: via(ctx, ds=observations(n_profiles=2)),
         error="CampaignError", match=r"not an ionofield campaign.*ionofield.campaign"),
    Case("times-uncovered", "grid 30 h after the campaign's drivers",
         lambda ctx: via(ctx, target=small_grid(
             time=[START + np.timedelta64(30, "h")])),
         error="CoverageError", match=r"outside the hourly axis"),
    Case("user-background-not-passed", "model fitted on a user background, none passed",
         lambda ctx: via(ctx, background=None), error="ConfigError",
         match=r"pass the same one as background="),
    Case("lon-ionex-grid", "target lon = np.arange(-180, 180.1, 90): -180 and 180",
         lambda ctx: via(ctx, target=small_grid(lon=IONEX_LON[::18])),
         check=antimeridian_columns_equal),
    Case("far-after-training", "a model fitted 5 days before the grid's times",
         lambda ctx: via(ctx, model=changed(ctx.model, set_info(
             period=["2024-05-04T00:00", "2024-05-05T00:00"]))),
         warning="ExtrapolationWarning", match=r"5\.1 days \(123 h\) after the training period "
         r"2024-05-04T00:00 to 2024-05-05T00:00",
         check=extrapolation_recorded(r"5\.1 days \(123 h\) after")),
    Case("far-above-observations", "a model fitted on 150..300 km, grid up to 600 km",
         lambda ctx: via(ctx, model=changed(ctx.model, set_info(
             obs_alt_range=[150.0, 300.0]))),
         warning="ExtrapolationWarning", match=r"300 km above the observed altitudes",
         check=extrapolation_recorded(r"300 km above")),
    Case("source-user-background", "a user background: the volume's source must say so",
         lambda ctx: via(ctx), check=names_user_background),
    Case("source-iri-f107", "an IRI model: the F10.7 given to PyIRI is the 81-day mean",
         lambda ctx: via(ctx, background=None, model=changed(ctx.model, set_info(
             background={"kind": "iri", "f107_variable": "f107_81"}))),
         check=iri_given_f107_81),
]


@pytest.mark.parametrize("entry", ["iof.reconstruct", "accessor"])
@pytest.mark.parametrize("case", RECONSTRUCT_CASES, ids=[c.id for c in RECONSTRUCT_CASES])
def test_reconstruct(case, entry, ctx, pyiri_calls, monkeypatch, tmp_path):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path / "cache"))
    run_case(case, dataclasses.replace(ctx, folder=tmp_path, entry=entry))


# -- to_netcdf ------------------------------------------------------------------------


def volume(ctx: Context, model: Any = None, **axes: Any) -> xr.Dataset:
    return iof.reconstruct(ctx.campaign, small_grid(**axes), model=model or ctx.model,
                           background=ctx.background)


def write(ctx: Context, vol: Any, **options: Any) -> Path:
    """Write ``vol`` to ``ne.nc`` in the case's folder, through ``ctx.entry``."""
    path = options.pop("path", ctx.folder / "ne.nc")
    if ctx.entry == "accessor":
        vol.rstmrf.to_netcdf(path, **options)
    else:
        iof.to_netcdf(vol, path, **options)
    return path


def written_as(vol_of: Callable[[Context], xr.Dataset]) -> Callable[[Path, Context], None]:
    def check(path: Path, ctx: Context) -> None:
        with xr.open_dataset(path) as back:
            xr.testing.assert_equal(back.load(), vol_of(ctx).compute())
        assert sorted(p.name for p in ctx.folder.iterdir()) == ["ne.nc"]
    return check


def only_the_old_file(path: Any, ctx: Context) -> None:
    assert sorted(p.name for p in ctx.folder.iterdir()) == ["ne.nc"]
    assert (ctx.folder / "ne.nc").read_bytes() == b"the previous volume"


def diverged_over_old_file(ctx: Context) -> Path:
    (ctx.folder / "ne.nc").write_bytes(b"the previous volume")
    broken = changed(ctx.model, set_decoder(0, "bias", 1.0e4))
    return write(ctx, volume(ctx, model=broken))


def ionex_volume(ctx: Context) -> xr.Dataset:
    return volume(ctx, lon=IONEX_LON[::18])


TO_NETCDF_CASES = [
    Case("volume-is-dataarray", "to_netcdf(vol.ne, path): a DataArray",
         lambda ctx: iof.to_netcdf(volume(ctx).ne, ctx.folder / "ne.nc"), error="ConfigError",
         match=r"volume is a DataArray; pass the Dataset.*to_dataset"),
    Case("path-is-folder", "path = an existing folder",
         lambda ctx: write(ctx, volume(ctx), path=ctx.folder), error="ConfigError",
         match=r"is a folder; give the path of a file"),
    Case("compression-negative", "compression=-1",
         lambda ctx: write(ctx, volume(ctx), compression=-1), error="ConfigError",
         match=r"compression=-1; give a zlib level 0\.\.9"),
    Case("compression-too-high", "compression=12",
         lambda ctx: write(ctx, volume(ctx), compression=12), error="ConfigError",
         match=r"compression=12; give a zlib level"),
    Case("compression-text", "compression='high'",
         lambda ctx: write(ctx, volume(ctx), compression="high"), error="ConfigError",
         match=r"compression='high'; give a zlib level"),
    Case("diverged-model-over-old-file", "a volume of a model with a 1e4 dex bias, written "
         "over an earlier file", diverged_over_old_file, error="DivergenceError",
         match=r"chunk of 3 time\(s\).*log10 residual outside.*refit", check=only_the_old_file),
    Case("plain-volume", "a volume (the accessor's write must exist and be atomic)",
         lambda ctx: write(ctx, volume(ctx)), check=written_as(volume)),
    Case("lon-ionex-grid", "a volume on lon -180..180 (both ends)",
         lambda ctx: write(ctx, ionex_volume(ctx)), check=written_as(ionex_volume)),
]


@pytest.mark.parametrize("entry", ["iof.to_netcdf", "accessor"])
@pytest.mark.parametrize("case", TO_NETCDF_CASES, ids=[c.id for c in TO_NETCDF_CASES])
def test_to_netcdf(case, entry, ctx, tmp_path):
    run_case(case, dataclasses.replace(ctx, folder=tmp_path, entry=entry))


# -- command line ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """What one ``ionofield`` command did: exit status, stderr, the folder it wrote in."""

    code: int
    err: str
    folder: Path


@pytest.fixture(scope="module")
def cli_inputs(ctx, tmp_path_factory):
    """IONEX and ionPrf files of the tiny world, a model on IRI and a config of a fit."""
    folder = tmp_path_factory.mktemp("cli_inputs")
    write_input_files(folder)
    iri_model = changed(ctx.model, set_info(background={"kind": "iri",
                                                        "f107_variable": "f107_81"}))
    iri_model.save(folder / "model.pt")
    config = {k: v for k, v in TINY.items() if k != "progress"} | COARSE_IRI | {"max_steps": 8}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def command(*args: str) -> Callable[[Context], Run]:
    """Run ``ionofield reconstruct`` (or ``fit`` when ``args`` start with it) on the inputs.

    ``{in}`` and ``{out}`` in ``args`` are the inputs' folder and the case's folder.
    """
    def call(ctx: Context) -> Run:
        inputs = ctx.folder.parent / "inputs"
        words = [a.format(**{"in": inputs, "out": ctx.folder}) for a in args]
        name, rest = (words[0], words[1:]) if words[:1] == ["fit"] else ("reconstruct", words)
        common = ["--ro", str(inputs / "ro" / "ionPrf_*"), "--tec", str(inputs / "*.24i")]
        if name == "reconstruct":
            common += ["--model", str(inputs / "model.pt"), "--start", "2024-05-10T02:00",
                       "--end", "2024-05-10T04:00", "--alt", "150:450:150",
                       "--out", str(ctx.folder / "ne.nc")]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(["-q", name, *common, *rest])
            except SystemExit as exc:  # argparse
                code = int(exc.code)
        return Run(code, stderr.getvalue(), ctx.folder)
    return call


def volume_lon(expected: Any) -> Callable[[Run, Any], None]:
    def check(run: Run, ctx: Any) -> None:
        assert run.code == 0, run.err
        with xr.open_dataset(run.folder / "ne.nc") as vol:
            np.testing.assert_array_equal(vol.lon.values, expected)
    return check


def fails_with(pattern: str) -> Callable[[Run, Any], None]:
    def check(run: Run, ctx: Any) -> None:
        assert run.code == 2 and re.search(pattern, run.err), run.err
        assert "Traceback" not in run.err
    return check


def fitted_on(first: str, last: str) -> Callable[[Run, Any], None]:
    def check(run: Run, ctx: Any) -> None:
        assert run.code == 0, run.err
        period = iof.load_model(run.folder / "m.pt").info["period"]
        assert [str(np.datetime64(p, "m")) for p in period] == [first, last]
    return check


CLI_CASES = [
    Case("lon-negative-value", "--lon -180:180:90 (a value that starts with '-')",
         command("--lon", "-180:180:90"), check=volume_lon(IONEX_LON[::18])),
    Case("lon-equals-form", "--lon=-180:180:90, the IONEX-like grid",
         command("--lon=-180:180:90"), check=volume_lon(IONEX_LON[::18])),
    Case("lat-negative-list", "--lat -60,0,60 --lon -90,90",
         command("--lat", "-60,0,60", "--lon", "-90,90"), check=volume_lon([-90.0, 90.0])),
    Case("period-option", "fit --period START END (the option campaign errors point to)",
         command("fit", "--config", "{in}/config.json", "--period", "2024-05-10T00:00",
                 "2024-05-10T12:00", "--out", "{out}/m.pt"),
         check=fitted_on("2024-05-10T00:00", "2024-05-10T12:00")),
    Case("period-short-of-observations", "--period ending before the last observation",
         command("--period", "2024-05-10T00:00", "2024-05-10T04:00", "--lon", "0"),
         check=fails_with(r"observations span .* outside the drivers' period")),
    Case("chunks-negative", "--chunks -1", command("--chunks", "-1", "--lon", "0"),
         check=fails_with(r"chunks=-1; give a positive whole number")),
    Case("chunks-zero", "--chunks 0", command("--chunks", "0", "--lon", "0"),
         check=fails_with(r"chunks=0; give a positive whole number")),
    Case("model-missing", "--model nothere.pt",
         command("--model", "{out}/nothere.pt", "--lon", "0"),
         check=fails_with(r"nothere\.pt")),
    Case("out-is-folder", "--out an existing folder", command("--lon", "0", "--out", "{out}"),
         check=fails_with(r"is a folder; give the path of a file")),
    Case("axis-unreadable", "--alt 100:x:10", command("--alt", "100:x:10"),
         check=fails_with(r"cannot read axis '100:x:10': use start:stop:step")),
    Case("times-reversed", "--start after --end",
         command("--start", "2024-05-10T05:00", "--end", "2024-05-10T02:00", "--lon", "0"),
         check=fails_with(r"grid: time is empty")),
    Case("start-unreadable", "--start yesterday",
         command("--start", "yesterday", "--lon", "0"),
         check=fails_with(r"cannot make the grid's times from --start 'yesterday'")),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli(case, ctx, cli_inputs, pyiri_calls, monkeypatch, tmp_path):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path.parent / "cache"))
    folder = tmp_path / "case"
    folder.mkdir()
    (tmp_path / "inputs").symlink_to(cli_inputs)
    run_case(case, dataclasses.replace(ctx, folder=folder))

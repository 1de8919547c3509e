from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import ionofield as iof
from ionofield.cli import _axis, build_parser, main
from tests.conftest import COARSE_IRI, TINY, write_input_files


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    write_input_files(folder)
    config = {k: v for k, v in TINY.items() if k != "progress"} | COARSE_IRI | {"max_steps": 16}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_fit_then_reconstruct_end_to_end(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path / "cache"))
    common = ["--ro", str(inputs / "ro" / "ionPrf_*"), "--tec", str(inputs / "*.24i")]
    model_path = tmp_path / "model.pt"
    assert main(["-q", "fit", *common, "--config", str(inputs / "config.json"),
                 "--checkpoint", str(tmp_path / "fit.ckpt"), "--out", str(model_path)]) == 0
    model = iof.load_model(model_path)
    assert model.config.max_steps == 16 and model.info["n_obs"] > 0
    assert (tmp_path / "fit.ckpt").exists()
    out = tmp_path / "ne.nc"
    assert main(["reconstruct", *common, "--model", str(model_path),
                 "--start", "2024-05-10T02:00", "--end", "2024-05-10T04:00",
                 "--alt", "150:600:150", "--lat=-60,0,60", "--lon=-180:90:90",
                 "--out", str(out)]) == 0
    with xr.open_dataset(out) as vol:
        assert dict(vol.ne.sizes) == {"time": 3, "alt": 4, "lat": 3, "lon": 4}
        assert bool((vol.ne > 0).all())
        assert vol.attrs["Conventions"] == "CF-1.11"
    assert "volume written to" in capsys.readouterr().out
    store = tmp_path / "ne.zarr"
    assert main(["-q", "reconstruct", *common, "--model", str(model_path),
                 "--start", "2024-05-10T02:00", "--end", "2024-05-10T04:00",
                 "--alt", "150:600:150", "--lat=-60,0,60", "--lon=-180:90:90",
                 "--zarr", str(store)]) == 0
    with xr.open_dataset(out) as vol, xr.open_zarr(store) as stored:
        for volume in (stored, vol):  # a line stamped with the second of each run
            volume.attrs.pop("history")
        xr.testing.assert_identical(stored.load(), vol.load())


def test_fit_in_two_processes_then_validate(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IONOFIELD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = ["--ro", str(inputs / "ro" / "ionPrf_*"), "--tec", str(inputs / "*.24i")]
    model_path = tmp_path / "model.pt"
    assert main(["-q", "fit", *common, "--config", str(inputs / "config.json"),
                 "--nproc", "2", "--device", "cpu", "--out", str(model_path)]) == 0
    model = iof.load_model(model_path)
    assert model.info["world_size"] == 2 and model.config.max_steps == 16
    scores = tmp_path / "scores.csv"
    assert main(["validate", *common, "--model", str(model_path),
                 "--held-out", str(inputs / "ro" / "ionPrf_*"), "--out", str(scores)]) == 0
    assert scores.exists() and "scores written to" in capsys.readouterr().out


def test_nproc_below_one_is_refused(inputs, tmp_path, capsys):
    code = main(["fit", "--ro", str(inputs / "ro" / "ionPrf_*"), "--tec", str(inputs / "*.24i"),
                 "--nproc", "0", "--out", str(tmp_path / "m.pt")])
    assert code == 2 and "--nproc 0" in capsys.readouterr().err


def test_errors_exit_2_with_a_message(inputs, tmp_path, capsys):
    code = main(["fit", "--ro", str(tmp_path / "nothing*"), "--tec", str(inputs / "*.24i"),
                 "--out", str(tmp_path / "m.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "ionofield fit: error" in err and "nothing*" in err


def test_help_documents_every_command(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("fit", "reconstruct", "validate", "demo"):
        assert command in text
    with pytest.raises(SystemExit):
        parser.parse_args(["reconstruct", "--help"])
    assert "--chunks" in capsys.readouterr().out


@pytest.mark.parametrize(
    "words",
    [["--lon", "-180:180:20"], ["--lon=-180:180:20"], ["--lon", "-180:180:20", "--lat", "-60,0,60",
                                                      "--alt", "100:300:100"]],
    ids=["lon-space", "lon-equals", "every-axis-space"],
)
def test_axis_options_take_negative_values(words):
    """argparse takes "-180:180:20" for an option; the axis options read it as a value."""
    args = build_parser().parse_args(["reconstruct", "--ro", "r", "--tec", "t", "--model", "m",
                                      "--start", "2024-05-10", "--end", "2024-05-10T02",
                                      "--out", "o", *words])
    assert args.lon == "-180:180:20"
    if "--lat" in words:
        assert (args.lat, args.alt) == ("-60,0,60", "100:300:100")
    lon = iof.grid(time=[np.datetime64("2024-05-10")], alt=[300.0], lat=[0.0],
                   lon=_axis(args.lon)).lon.values
    assert lon[0] == -180.0 and lon[-1] == 180.0 and lon.size == 19


@pytest.mark.parametrize("command", ["fit", "reconstruct"])
def test_period_option_is_documented(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--period START END" in text and "period=" in text

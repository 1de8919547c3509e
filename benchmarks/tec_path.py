"""What the TEC path of fitted OSSE models adds over a single map.

Reads the folders ``benchmarks/osse.py --work DIR`` wrote for one world in forecast
mode (``DIR/<world>/forecast``: ``campaign.nc``, ``truth.nc`` with the truth's hourly
TEC maps of the scored day, ``model_default_seed<N>.pt``) and, for each fitted model,
scores the direction field of its TEC path on the scored day:

- at the hours with a native map: the head's departure from the finite-difference
  reference it is anchored to (relative RMS difference and minimum cosine);
- at the hours without one (the odd hours of ``--tec-cadence 2``): the mean cosine,
  against the unit gradient of the truth's own map at that hour, of the head's
  direction (with ``w_tec_forecast > 0`` the ConvLSTM's forecast from the maps before
  the hour, else the head on the interpolated map), of persistence
  (the latest native map's gradient) and of the campaign's map interpolated in time
  (which reads the next map too), and of the cosine-squared blend in time of the
  head's (normalised) direction and the next map's gradient direction. Cosines are
  means over the cells within 60 degrees
  of the equator, weighted by the truth's gradient norm (where a direction means
  something).

Prints one JSON document: per folder and seed, and the mean over seeds.

    python benchmarks/tec_path.py DIR [DIR ...] [--world structured]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import ionofield as iof
from ionofield.drivers import HourlyDrivers
from ionofield.nn.losses import spherical_gradient
from ionofield.nn.recurrent import reference_direction

#: Cells farther from the equator than this (deg) are left out of the cosines.
MAX_LAT = 60.0


def weighted_cosine(direction: torch.Tensor, truth_gradient: torch.Tensor,
                    weight_rows: torch.Tensor) -> float:
    """Mean cosine of two vector maps [N, 2, H, W], weighted by the truth's norm per cell."""
    norm = torch.linalg.vector_norm(truth_gradient, dim=1)
    cos = torch.nn.functional.cosine_similarity(direction, truth_gradient, dim=1, eps=1e-12)
    weight = norm * weight_rows[None, :, None]
    return float((cos * weight).sum() / weight.sum())


def score_model(folder: Path, seed_file: Path) -> dict:
    """The direction scores of one fitted model (see the module's docstring)."""
    campaign = xr.open_dataset(folder / "campaign.nc").load()
    truth_tec = xr.open_dataset(folder / "truth.nc")["tec"].load()
    model = iof.load_model(seed_file, device="cpu").double().eval()
    drivers = HourlyDrivers.from_campaign(campaign)
    path = drivers.for_tec_path(model.config.w_tec_forecast > 0)  # what the model reads
    lat = torch.from_numpy(drivers.tec_lat)
    lon = torch.from_numpy(drivers.tec_lon)
    rows = torch.from_numpy((np.abs(drivers.tec_lat) <= MAX_LAT).astype(np.float64))
    hours = np.flatnonzero(np.isin(drivers.hours, truth_tec.time.values))
    base, lead = drivers.latest_map(hours)
    with torch.no_grad():
        seqs = torch.from_numpy(path.tec_sequences(hours, model.config.seq_len)).double()
        path_lead = torch.from_numpy(path.latest_map(hours)[1]).double()
        direction, reference = model.direction_field(seqs, lat, lon, path_lead)
    persistence = reference_direction(torch.from_numpy(drivers.tec[base]).double(), lat, lon)
    out: dict = {"model": seed_file.name}
    at_map = lead == 0
    if at_map.any():
        d, r = direction[at_map], reference[at_map]
        out["map_hours"] = int(at_map.sum())
        out["head_rel_departure"] = float(torch.linalg.vector_norm(d - r)
                                          / torch.linalg.vector_norm(r))
        cos = torch.nn.functional.cosine_similarity(d, r, dim=1)
        out["head_min_cos"] = float(cos[torch.linalg.vector_norm(r, dim=1) > 0.5].min())
    gap = ~at_map
    if gap.any():
        truth = truth_tec.sel(time=drivers.hours[hours[gap]], lat=drivers.tec_lat,
                              lon=drivers.tec_lon).values.astype(np.float64)
        truth_gradient = spherical_gradient(torch.from_numpy(truth), lat, lon)
        interpolated = reference_direction(torch.from_numpy(drivers.tec[hours[gap]]).double(),
                                           lat, lon)
        maps = drivers.map_hours()
        upcoming = maps[np.searchsorted(maps, base[gap], side="right")]
        next_reference = reference_direction(torch.from_numpy(drivers.tec[upcoming]).double(),
                                             lat, lon)
        share = np.sin(0.5 * np.pi * (hours[gap] - base[gap]) / (upcoming - base[gap])) ** 2
        later = torch.from_numpy(share)[:, None, None, None]
        two_sided = (1.0 - later) * torch.nn.functional.normalize(direction[gap], dim=1)
        out["gap_hours"] = int(gap.sum())
        out["gap_cos_head"] = weighted_cosine(direction[gap], truth_gradient, rows)
        out["gap_cos_head_and_next_map"] = weighted_cosine(two_sided + later * next_reference,
                                                           truth_gradient, rows)
        out["gap_cos_persistence"] = weighted_cosine(persistence[gap], truth_gradient, rows)
        out["gap_cos_interpolated_map"] = weighted_cosine(interpolated, truth_gradient, rows)
        out["gap_head_rel_departure"] = float(
            torch.linalg.vector_norm(direction[gap] - persistence[gap])
            / torch.linalg.vector_norm(persistence[gap]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="+", help="osse.py --work folders")
    parser.add_argument("--world", default="structured")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {}
    for work in args.work:
        folder = Path(work) / args.world / "forecast"
        runs = [score_model(folder, path)
                for path in sorted(folder.glob("model_default_seed*.pt"))]
        keys = [k for k in runs[0] if k != "model"] if runs else []
        report[work] = {"runs": runs,
                        "mean": {k: round(float(np.mean([r[k] for r in runs])), 4)
                                 for k in keys}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

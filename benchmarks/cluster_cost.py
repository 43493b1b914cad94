"""The paper profile's training cost per table, in GPU-hours: an ESTIMATE from counted FLOPs, not a measurement.

    python benchmarks/cluster_cost.py [--peak-tflops 312] [--utilisation 0.35] [--json out.json]

For every experiment a table of ``params.yaml`` names (the paper profile, as ``stage resolve`` resolves it), the
FLOPs of one training iteration are counted on the meta device (``torch.utils.flop_counter``: convolutions and
matrix products, forward and backward, both networks; what ``latentseg bench`` counts), with the experiment's own
batch, crop and draws (an unlabeled batch where the method draws one, the discriminator's own labeled draw). GPU
time = iterations x FLOPs / (peak x utilisation). Evaluation, data loading, checkpoints and the classifiers
(Mittal et al.'s MLMT) are not counted.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentseg import datasets, methods
from latentseg.config import RunConfig, to_dict
from latentseg.registry.experiments import resolve
from latentseg.registry.params import load_params
from latentseg.train.step import Batch, Networks, build_networks, build_objective, make_optimizers, one_update

ROOT = Path(__file__).resolve().parents[1]


def flops_per_iteration(cfg: RunConfig, classes: list[str], full: bool) -> int:
    meta = torch.device("meta")
    with meta:
        model, disc = build_networks(cfg, len(classes))
        nets = Networks(cfg, model, disc, build_objective(cfg, classes, num_labeled=1464)).train()
    sgd, adam = make_optimizers(cfg, model, disc)
    n, (h, w) = cfg.optim.batch_size, cfg.data.crop_size
    draws = methods.get(cfg.objective).draws(cfg)
    image = lambda: torch.empty(n, 3, h, w, device=meta)  # noqa: E731
    mask = lambda: torch.zeros(n, h, w, dtype=torch.long, device=meta)  # noqa: E731
    unlabeled = draws.unlabeled and not (full and cfg.data.full_unlabeled == "none")
    batch = Batch(image(), mask(), image() if unlabeled else None, *((image(), mask()) if draws.real else ()))
    counter = FlopCounterMode(display=False)
    with counter:
        one_update(nets, batch, 0, sgd, adam)
    return counter.get_total_flops()


def table_experiments(params: dict) -> dict[str, list[str]]:
    """The training runs behind each table's cells (``x+classifier`` is run ``x`` filtered; ``x:metric`` is ``x``)."""
    out = {}
    for name, table in params["tables"].items():
        ids = {cell.split(":")[0].removesuffix("+classifier") for row in table["rows"].values() for cell in row
               if cell}
        out[name] = sorted(i for i in ids if i in params["experiments"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peak-tflops", type=float, default=312.0, help="dense bf16 peak (A100: 312)")
    parser.add_argument("--utilisation", type=float, default=0.35, help="assumed fraction of the peak achieved")
    parser.add_argument("--gpus", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--tables", nargs="+", help="only these tables (default: all)")
    parser.add_argument("--experiments", nargs="+", help="only these experiments of them (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    params = {**load_params(ROOT / "params.yaml"), "profile": "paper"}
    if args.tables:
        params["tables"] = {name: params["tables"][name] for name in args.tables}
    rate = args.peak_tflops * 1e12 * args.utilisation
    cache: dict[str, int] = {}
    hours: dict[str, float] = {}
    wanted = sorted({e for ids in table_experiments(params).values() for e in ids})
    for exp_id in [e for e in wanted if not args.experiments or e in args.experiments]:
        exp, cfg = resolve(params, exp_id)
        key = json.dumps({**to_dict(cfg), "optim": {"batch_size": cfg.optim.batch_size}, "runtime": None,
                          "full": exp.fraction == "full", "dataset": exp.dataset}, sort_keys=True)
        if key not in cache:
            cache[key] = flops_per_iteration(cfg, list(datasets.get(exp.dataset).classes), exp.fraction == "full")
        hours[exp_id] = cfg.optim.iterations * cache[key] / rate / 3600
        print(f"{exp_id}: {cache[key] / 1e12:.2f} TFLOP/iteration x {cfg.optim.iterations} = {hours[exp_id]:.1f} "
              "GPU-h", flush=True)
    rows = [(name, len(ids), sum(hours.get(i, 0.0) for i in ids)) for name, ids in table_experiments(params).items()]
    total = sum(hours.values())
    print(f"\nESTIMATE: {args.peak_tflops:g} TFLOP/s peak x {args.utilisation:.0%} utilisation")
    print("| table | runs (1 seed) | GPU-h, 1 seed | GPU-h, 3 seeds |\n|---|---:|---:|---:|")
    for name, count, h in rows:
        print(f"| {name} | {count} | {h:.0f} | {3 * h:.0f} |")
    print(f"| whole paper (shared runs once) | {len(hours)} | {total:.0f} | {3 * total:.0f} |")
    longest = max(hours.values())
    for gpus in args.gpus:
        for seeds in (1, 3):  # whole runs per GPU: the wall time is at least the longest run
            wall = max(seeds * total / gpus, longest)
            print(f"{gpus} GPUs, {seeds} seed(s): >= {wall:.1f} h ({math.ceil(wall / 24 * 10) / 10} days)")
    if args.json:
        args.json.write_text(json.dumps({"peak_tflops": args.peak_tflops, "utilisation": args.utilisation,
                                         "gpu_hours": hours, "tables": {n: h for n, _, h in rows}}, indent=2))


if __name__ == "__main__":
    main()

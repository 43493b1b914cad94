"""Where one demo run's time goes, inside the training stage's worker: setup (networks, optimisers, initial weights),
drawing the batches (reading and augmenting images), the training steps, the final evaluation, and writing (the
checkpoint, the evaluation record, the experiment's results).

    python benchmarks/run_breakdown.py [--experiment voc-1_8-proposed] [--json out.json]
    python benchmarks/run_breakdown.py --smoke      # seconds

The run is params.yaml's demo profile's (its schedule, crops, batch, one thread), on the VOC stand-in generated
into a temporary folder; its initial weights are random (the demo's COCO weights change no timing). Each part is
timed apart, in one process: the batches are drawn first, then the steps run on them, as the trainer interleaves
them. Prints the machine with the table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from latentseg.bench.machine import cpu_model
from latentseg.data.layout import TrainData, read_list
from latentseg.data.splits import split_labeled
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.registry.experiments import resolve
from latentseg.registry.params import load_params
from latentseg.run.evaluation import evaluated
from latentseg.run.jobs import RunOutcome
from latentseg.run.outputs import Outputs, run_label
from latentseg.train.checkpoint import save_run
from latentseg.train.identity import identity
from latentseg.train.step import Batch, one_update
from latentseg.train.streams import streams
from latentseg.train.trainer import setup


def timed(parts: dict[str, float], name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    parts[name] = parts.get(name, 0.0) + time.perf_counter() - t0
    return out


def breakdown(experiment: str, work: Path, smoke: bool) -> tuple[dict[str, float], int]:
    params = load_params()
    params["profile"] = "demo"
    exp, cfg = resolve(params, experiment)
    cfg = replace(cfg, init="none", runtime=replace(cfg.runtime, threads=1))
    if smoke:
        cfg = replace(cfg, optim=replace(cfg.optim, iterations=2))
    spec = params["profiles"]["demo"]["datasets"]["voc"]["synthetic"]
    n_train, n_val = (40, 8) if smoke else (spec["num_train"], spec["num_val"])
    parts: dict[str, float] = {}
    meta = timed(parts, "data: generate the stand-in (stage prepare)", lambda: generate(
        SyntheticSpec("voc", n_train, n_val, tuple(spec["size"]), spec["seed"]), work / "voc"))
    labeled, unlabeled = split_labeled(read_list(work / "voc" / "train.txt"), exp.fraction, 0)
    data = TrainData(work / "voc", meta, labeled, unlabeled)
    checkpoint = Outputs(runs=work / "runs").run_folder("voc", experiment, cfg.optim.seed) / "checkpoint.pt"
    s = timed(parts, "setup: networks, optimisers", lambda: setup(cfg, checkpoint, data, None, 1))
    batches = iter(streams(cfg, data, 0, False, 0, 1))
    drawn = [timed(parts, "data: read and augment the batches", lambda: next(batches))
             for _ in range(cfg.optim.iterations)]
    t0 = time.perf_counter()
    for step, (img, mask, unl, real) in enumerate(drawn):
        one_update(s.nets, Batch(img, mask, unl, *real), step, s.sgd, s.adam, None)
    parts["training steps"] = time.perf_counter() - t0
    ident = identity(cfg, data, None)
    timed(parts, "writing: checkpoint", lambda: save_run(checkpoint, cfg, ident, s.nets, s.sgd, s.adam,
                                                          cfg.optim.iterations))
    (metrics, p, p_val), _ = timed(parts, "evaluation (and its record)", lambda: evaluated(
        checkpoint, data, ident, cfg.optim.iterations))
    from latentseg.run.results import write_experiment  # dvclive: timed apart from the import

    outcome = RunOutcome(experiment, run_label(cfg.optim.seed), metrics, p, p_val, "")
    timed(parts, "writing: metrics, P(l|c), curves", lambda: write_experiment(
        Outputs(runs=work / "runs", results=work / "results"), "voc", experiment, "demo", [outcome],
        meta.classes, None))
    return parts, cfg.optim.iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="voc-1_8-proposed")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="2 steps on a tiny stand-in")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        parts, steps = breakdown(args.experiment, Path(tmp), args.smoke)
    table = pd.DataFrame([{"part": k, "seconds": round(v, 2)} for k, v in parts.items()])
    print(f"{args.experiment}, {steps} steps, one thread, {cpu_model()}:\n\n{table.to_markdown(index=False)}")
    if args.json:
        args.json.write_text(json.dumps({"experiment": args.experiment, "steps": steps, "cpu": cpu_model(),
                                         "parts_s": table.set_index("part")["seconds"].to_dict()}, indent=2) + "\n")


if __name__ == "__main__":
    main()

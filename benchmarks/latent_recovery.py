"""The mechanism study: do latent classes recover the planted groups of the demo's data, and what does each loss
term buy? Table 3's rows (L_ce, + L_latent, + L_cons, + L_adv on labeled images, + L_adv, all terms) and Table 4's
k, trained as the demo profile trains them but with the schedule the question needs, over several data seeds (the
embedded VOC stand-in drawn anew) and training seeds.

    python benchmarks/latent_recovery.py                                  # 3 data seeds x 2 training seeds, 400 steps
    python benchmarks/latent_recovery.py --data-seeds 0 1 2 --seeds 1234 1 2 --iterations 400 \\
        --json benchmarks/results/latent-recovery.json
    python benchmarks/latent_recovery.py --smoke                           # seconds: the script still runs

Every run is the pipeline's own: params.yaml's demo profile resolved (latentseg/registry/experiments.py) with the
study's data seed, schedule and seeds, the VOC stand-in generated, split and COCO-pretrained as stages prepare,
split and weights make them, and the runs trained side by side by the training stage's pool
(latentseg/run/jobs.py). Reported per row, over every (data seed, training seed): mIoU, effective latent
classes at t = 0.9 (eq. 8's P(l|c) from training's co-occurrence matrix) and the adjusted Rand index of
argmax_l P(l|c) against the planted groups, mean ± std. Whatever comes out is printed; nothing is tuned to hold.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from latentseg.bench.machine import cpu_model
from latentseg.data.splits import write_splits
from latentseg.evaluate import recovery_metrics
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.registry.experiments import resolve, resolve_weights
from latentseg.registry.params import load_params
from latentseg.registry.planted import planted_groups
from latentseg.run.jobs import run_all
from latentseg.run.outputs import Outputs
from latentseg.run.stage import Inputs, ResolvedExperiment, build_jobs
from latentseg.weights import make_weights

ROWS = {  # Table 3's rows, then Table 4's k (the experiments of params.yaml)
    "L_ce": "voc-1_8-ce", "L_ce + L_latent": "voc-1_8-ce-latent", "L_ce + L_latent + L_cons": "voc-1_8-ce-latent-cons",
    "L_ce + L_adv (labeled only)": "voc-1_8-ce-adv-labeled", "L_ce + L_adv": "voc-1_8-ce-adv",
    "all (k = 20)": "voc-1_8-proposed", "all, k = 10": "voc-1_8-k10", "all, k = 50": "voc-1_8-k50",
}
SMOKE_ROWS = ("L_ce", "all (k = 20)")


def study_params(params: dict, data_seed: int, seeds: list[int], iterations: int, smoke: bool) -> dict:
    """The demo profile with the study's data seed, training seeds and schedule (and, smoke, tiny sizes)."""
    p = copy.deepcopy({**params, "profile": "demo"})
    demo = p["profiles"]["demo"]
    demo["datasets"]["voc"]["synthetic"]["seed"] = data_seed
    demo["optim"]["iterations"] = iterations
    demo["runtime"].update({"checkpoint_every": iterations, "log_every": max(1, iterations // 4)})
    demo["methods"]["hung"]["hung"]["semi_start"] = iterations // 4
    demo["repeats"] = {"seeds": seeds, "experiments": "all"}
    if smoke:
        demo["datasets"]["voc"]["synthetic"].update({"num_train": 48, "num_val": 8})
        demo["weights"]["coco"]["pretrain_coco"]["synthetic"]["num_train"] = 24
        demo["weights"]["coco"]["pretrain_coco"]["run"]["optim"]["iterations"] = 2
    return p


def prepare(params: dict, work: Path) -> Path:
    """The VOC stand-in and its splits (stages prepare, split) in ``work``; returns the prepared folder."""
    spec = params["profiles"]["demo"]["datasets"]["voc"]["synthetic"]
    root = work / "data" / "voc"
    generate(SyntheticSpec("voc", spec["num_train"], spec["num_val"], tuple(spec["size"]), spec["seed"]), root)
    write_splits(root, work / "splits" / "voc", ["1/8"], params["datasets"]["voc"]["split_seed"])  # the rows' split
    return root


def train_rows(params: dict, rows: list[str], work: Path, weights: Path, parallel: int) -> list[dict]:
    """Every run of ``rows``, trained in the training stage's pool; one record per run."""
    experiments = []
    for row in rows:
        exp, cfg = resolve(params, ROWS[row])
        experiments.append(ResolvedExperiment(exp.id, "voc", exp.fraction, exp.init, list(exp.seeds), "demo", cfg,
                                              planted_groups(params, "voc")))
    inputs = Inputs(work / "data" / "voc", work / "splits" / "voc", weights)
    jobs = build_jobs(experiments, inputs, Outputs(runs=work / "runs"))
    row_of = {ROWS[r]: r for r in rows}
    classes, groups = inputs.split("1/8").meta.classes, planted_groups(params, "voc")
    records = []
    for o in run_all(jobs, parallel, threads=1):
        recovery = recovery_metrics(o.p_latent, o.p_latent_val, classes, groups)
        records.append({"row": row_of[o.experiment], "seed": o.label, "miou": o.metrics["miou"],
                        "effective_t0.9": o.metrics.get("effective_t0.9"), "ari": recovery.get("recovery_ari")})
        print(o.summary, flush=True)
    return records


def summary(records: list[dict], rows: list[str]) -> pd.DataFrame:
    """Per row: mean ± std over its runs of mIoU, effective classes at t = 0.9 and recovery ARI, and n."""
    frame = pd.DataFrame(records)
    out = []
    for row in rows:
        part = frame[frame["row"] == row]
        cells = {"row": row, "n": len(part)}
        for column in ("miou", "effective_t0.9", "ari"):
            values = [v for v in part[column] if v is not None and not pd.isna(v)]
            cells[column] = ("–" if not values else f"{statistics.fmean(values):.2f}" + (
                f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""))
        out.append(cells)
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--json", type=Path, help="write every run's numbers and the summary here")
    parser.add_argument("--smoke", action="store_true", help="one data seed, one seed, two rows, tiny sizes")
    args = parser.parse_args()
    if args.smoke:
        args.data_seeds, args.seeds, args.iterations, args.rows = args.data_seeds[:1], args.seeds[:1], 2, SMOKE_ROWS
    base, started, records = load_params(), time.perf_counter(), []
    print(f"machine: {cpu_model()}, torch {torch.__version__}; {len(args.rows)} rows x {len(args.data_seeds)} data "
          f"seed(s) x {len(args.seeds)} training seed(s), {args.iterations} iterations", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        weights = None
        for data_seed in args.data_seeds:
            params = study_params(base, data_seed, args.seeds, args.iterations, args.smoke)
            work = Path(tmp) / f"data-seed-{data_seed}"
            prepare(params, work)
            if weights is None:  # COCO pretraining does not see the VOC stand-in: one for every data seed
                weights = Path(tmp) / "weights"
                make_weights(resolve_weights(params), weights, Path(tmp) / "raw", Path(tmp) / "coco-work")
            records += [{**r, "data_seed": data_seed}
                        for r in train_rows(params, list(args.rows), work, weights, args.parallel)]
    table = summary(records, list(args.rows))
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{table.to_markdown(index=False)}\n\n{len(records)} runs in {minutes:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"machine": cpu_model(), "torch": torch.__version__, "args": {
            k: v for k, v in vars(args).items() if k != "json"}, "minutes": round(minutes, 1),
            "runs": records, "summary": table.to_dict("records")}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()

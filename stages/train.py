"""Stage `train@<experiment>`: train one run of the registry (resuming from its checkpoint if it was killed) and
evaluate it on the validation set: mIoU, per-class IoU, P(l|c) and effective latent classes.

Training and evaluation share a stage so that each run costs one start-up; a change that only touches evaluation
re-runs the stage, which finds the finished checkpoint of the same configuration and only evaluates.

Several GPUs for one run: `torchrun --standalone --nproc_per_node N stages/train.py ...`, or set
`LATENTSEG_NPROC_PER_NODE=N` and the stage starts torchrun itself (so `dvc repro`/`dvc exp run` need no other
command). The run is the same run (the batch is split, not multiplied); rank 0 logs, checkpoints and evaluates.
Each process takes a GPU no other latentseg process holds, so `dvc queue start -j N` spreads N runs over GPUs.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml
from dvclive import Live

from latentseg.config import RunConfig, from_dict
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import atomic_write_text, read_list, read_meta
from latentseg.data.splits import fraction_slug
from latentseg.evaluate import evaluate, run_metrics
from latentseg.train import distributed
from latentseg.train.trainer import TrainData, load_trained, resolve_device, resume_step, train
from latentseg.weights import resolve_init


def relaunch_under_torchrun() -> None:
    """With ``LATENTSEG_NPROC_PER_NODE=N`` (N > 1), replace this process by torchrun running N copies of it."""
    nproc = int(os.environ.get("LATENTSEG_NPROC_PER_NODE", "1"))
    if nproc > 1 and not distributed.launched_by_torchrun():
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc_per_node={nproc}", __file__, *sys.argv[1:]])


def main() -> None:
    relaunch_under_torchrun()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="resolved configuration (stage resolve)")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set")
    parser.add_argument("--splits", type=Path, required=True, help="split lists of the data set")
    parser.add_argument("--weights", type=Path, required=True, help="folder of initial weights (stage weights)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder for the training curves")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics.json to write")
    parser.add_argument("--latent", type=Path, required=True, help="CSV of P(l|c) on the validation set")
    args = parser.parse_args()
    doc = yaml.safe_load(args.config.read_text())
    exp = doc["experiment"]
    cfg = from_dict(RunConfig, doc["run"])
    init = resolve_init(args.weights, exp["init"])  # raises, naming the stage, when a file that should be is not
    if exp["init"] != "none" and init is None:
        print(f"the {doc['profile']} profile makes no '{exp['init']}' weights (params.yaml: profiles.{doc['profile']}"
              f".weights.{exp['init']}: null): this run starts from random weights, by design")
    split = args.splits / fraction_slug(exp["fraction"])
    cfg = replace(cfg, init_weights=str(init) if init is not None else "",
                  data=replace(cfg.data, root=str(args.data), labeled_list=str(split / "labeled.txt"),
                               unlabeled_list=str(split / "unlabeled.txt")))
    data = TrainData(args.data, read_meta(args.data), read_list(split / "labeled.txt"),
                     read_list(split / "unlabeled.txt"))
    procs = distributed.init_from_env(cfg.runtime.device)  # torchrun's group if any; a GPU of its own
    resuming = resume_step(args.checkpoint, cfg) > 0
    if procs.is_main and not resuming:
        shutil.rmtree(args.live, ignore_errors=True)  # curves of an older configuration
    live_ctx = (Live(str(args.live), dvcyaml=False, save_dvc_exp=False, resume=resuming, report=None)
                if procs.is_main else contextlib.nullcontext())
    with live_ctx as live:
        def log(metrics: dict[str, float], step: int) -> None:
            live.step = step
            for name, value in metrics.items():
                live.log_metric(f"train/{name}", value)
            live.next_step()

        summary = train(cfg, args.checkpoint, data, log if procs.is_main else None)
    distributed.barrier()  # rank 0 has written the last checkpoint
    distributed.shutdown()
    if not procs.is_main:
        return
    # A finished run re-entered (an evaluation change) logs nothing; its curves persist, or start empty if lost.
    (args.live / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
    print(f"{exp['id']}: {summary.steps_run} steps (from {summary.resumed_from}) in {summary.seconds:.1f} s, "
          f"{summary.images_per_second:.1f} images/s on {procs.world} process(es)"
          f"{', compiled' if summary.compiled else ''}")

    model, cfg, state = load_trained(args.checkpoint)
    device = resolve_device(cfg.runtime.device)
    loader = eval_loader(args.data, cfg.data)
    result = evaluate(model.to(device), loader, data.meta.num_classes, device, autocast=device.type == "cuda")
    metrics = run_metrics(result, data.meta.classes, state["step"])
    p_lc = result.p_latent_given_class
    latent = "" if p_lc is None else pd.DataFrame(
        p_lc.numpy(), index=data.meta.classes, columns=[f"l{i}" for i in range(p_lc.shape[1])]
    ).to_csv(float_format="%.5f")
    atomic_write_text(args.latent, latent)  # empty for a run without a latent branch
    atomic_write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
    print(f"{exp['id']}: mIoU {metrics['miou']:.2f}")


if __name__ == "__main__":
    main()

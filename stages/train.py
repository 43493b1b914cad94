"""Stage `train@<experiment>`: train every run (one per seed) of one experiment of the registry and evaluate each:
mIoU, per-class IoU, P(l|c), effective latent classes and, on data with planted groups (the demo's stand-ins; the
config's `planted_groups`), the adjusted Rand index of argmax_l P(l|c) against them (`recovery_ari`), written to
`<results>/metrics.json` and `latent/`.

A killed run resumes from its checkpoint; a finished one of the same configuration and training code is only
evaluated again (an evaluation change re-runs this stage without re-training), and adding seeds to `repeats`
trains the new runs alone. Seeds train side by side with `runtime.parallel_runs` > 1.

Several GPUs for one run: `torchrun --standalone --nproc_per_node N stages/train.py ...`, or set
`LATENTSEG_NPROC_PER_NODE=N` and the stage starts torchrun itself (so `dvc repro`/`dvc exp run` need no other
command). The run is the same run (the batch is split, not multiplied); rank 0 logs, checkpoints and evaluates.
Each process takes a GPU no other latentseg process holds, so `dvc queue start -j N` spreads N runs over GPUs.
Under `srun -n N` (a Slurm step of N tasks) the tasks are the run's processes, as under torchrun.
"""

from latentseg.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/warm.py)

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from dvclive import Live

from latentseg.cluster.rendezvous import adopt_slurm_rendezvous
from latentseg.data.layout import TrainData
from latentseg.devices import check_device
from latentseg.evaluate import recovery_metrics
from latentseg.files import atomic_write_json, atomic_write_text
from latentseg.methods import run_config
from latentseg.models.init import resolve_init
from latentseg.progress import configure_logging
from latentseg.run_progress import CURVES, read_curves
from latentseg.runs import RunJob, run_all, run_label, summarise, with_seed
from latentseg.train import distributed
from latentseg.train.trainer import Logger


def relaunch_under_torchrun() -> None:
    """With ``LATENTSEG_NPROC_PER_NODE=N`` (N > 1), replace this process by torchrun running N copies of it."""
    nproc = int(os.environ.get("LATENTSEG_NPROC_PER_NODE", "1"))
    if nproc > 1 and not distributed.launched_by_torchrun():
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc_per_node={nproc}", __file__, *sys.argv[1:]])


def latent_csv(p, classes: list[str]) -> str:
    rows = [",".join(["class", *(f"l{i}" for i in range(p.shape[1]))])]
    rows += [",".join([c, *(f"{v:.5f}" for v in row)]) for c, row in zip(classes, p.tolist(), strict=True)]
    return "\n".join(rows) + "\n"


def main() -> None:
    relaunch_under_torchrun()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="resolved configuration (stage resolve)")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set")
    parser.add_argument("--splits", type=Path, required=True, help="split lists of the data set")
    parser.add_argument("--weights", type=Path, required=True, help="folder of initial weights (stage weights)")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the experiment's run checkpoints")
    parser.add_argument("--results", type=Path, required=True, help="folder of its metrics, P(l|c) and curves")
    args = parser.parse_args()
    configure_logging()
    doc = yaml.safe_load(args.config.read_text())
    exp, cfg = doc["experiment"], run_config(doc["run"])
    check_device(cfg.runtime.device)  # one line now if this machine lacks it, not a worker's error later
    init = resolve_init(args.weights, exp["init"])  # raises, naming the stage, when a file that should be is not
    if exp["init"] != "none" and init is None:
        print(f"the {doc['profile']} profile makes no '{exp['init']}' weights (params.yaml: profiles.{doc['profile']}"
              f".weights.{exp['init']}: null): these runs start from random weights, by design")
    data = TrainData.of_split(args.data, args.splits, exp["fraction"])
    adopt_slurm_rendezvous()  # srun's tasks as torchrun's
    procs = distributed.init_from_env(cfg.runtime.device)  # torchrun's group if any; a GPU of its own
    jobs = [RunJob(run_label(s), with_seed(cfg, s), args.runs / run_label(s) / "checkpoint.pt", data, init)
            for s in exp["seeds"]]
    if procs.is_main:  # runs of seeds no longer asked for are not kept
        labels = {job.label for job in jobs}
        for folder in (args.runs, args.results / "live"):
            for old in folder.glob("seed-*"):
                if old.name not in labels:
                    shutil.rmtree(old)

    @contextmanager
    def live(job: RunJob, resuming: bool) -> Iterator[Logger]:
        if not procs.is_main:
            yield lambda values, step: None
            return
        folder = args.results / "live" / job.label
        # a run trained elsewhere (latentseg submit) left its curves beside its checkpoint: they replace ours
        replay = read_curves(job.checkpoint.with_name(CURVES)) if resuming else []
        if not resuming or replay:
            shutil.rmtree(folder, ignore_errors=True)  # curves of an older configuration, or of another process
        with Live(str(folder), dvcyaml=False, save_dvc_exp=False, resume=resuming and not replay,
                  report=None) as sink:
            def log(values: dict[str, float], step: int) -> None:
                sink.step = step
                for name, value in values.items():
                    sink.log_metric(name if "/" in name else f"train/{name}", value)
                sink.next_step()
            for values, step in replay:
                log(values, step)
            yield log

    parallel = cfg.runtime.parallel_runs if procs.world == 1 else 1
    outcomes = list(run_all(jobs, parallel, live))
    distributed.shutdown()
    if not procs.is_main:
        return
    for outcome in outcomes:
        print(f"{exp['id']} {outcome.summary}")
        outcome.metrics.update(recovery_metrics(outcome.p_latent, outcome.p_latent_val, data.meta.classes,
                                                doc.get("planted_groups")))
        for suffix, p in (("", outcome.p_latent), ("-val", outcome.p_latent_val)):
            if p is not None:
                atomic_write_text(args.results / "latent" / f"{outcome.label}{suffix}.csv",
                                  latent_csv(p, data.meta.classes))
    if not any(o.p_latent is not None or o.p_latent_val is not None for o in outcomes):  # git keeps no empty folder
        atomic_write_text(args.results / "latent" / "none.txt", "no latent branch in this experiment's runs\n")
    metrics = {**summarise({o.label: o.metrics for o in outcomes}), "profile": doc["profile"]}
    atomic_write_json(args.results / "metrics.json", metrics)
    print(f"{exp['id']}: mIoU {metrics['miou']:.2f} (mean of {len(outcomes)} run(s))")


if __name__ == "__main__":
    main()

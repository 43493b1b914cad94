"""Train the pending runs on a Slurm cluster: ``latentseg submit``.

    latentseg submit --dry-run               # what would be submitted, and why
    latentseg submit [--experiments 'voc-*'] # submit those runs as one job array (submitit)
    latentseg submit --status                # run, job, state, step/total, ETA, latest validation mIoU
    dvc repro                                # then: finds every run finished and evaluated, trains nothing

A run is pending when it has no checkpoint, an unfinished one, one made with other settings, code, data or
initial weights, or no evaluation by the current evaluation code. Mittal et al.'s image classifiers
(``classifiers:``, and those that filter a selected experiment) are runs too (``classifier-<id>/seed-<n>``):
pending when none of their identity is saved, or when a run they filter, evaluated or submitted now, has no current
filtered evaluation; their jobs wait for the jobs of the runs they filter (``afterok``), then filter them. Each job
runs on the resources of params.yaml's ``cluster:`` section (environment overrides: ``LATENTSEG_CLUSTER_<KEY>``).
Run it from the repository root, after ``dvc repro resolve prepare split weights`` (the resolved configurations,
data and initial weights the runs read; they live where dvc.yaml puts them).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from latentseg.config import SettingsError

if TYPE_CHECKING:
    from latentseg.cluster.layout import Pending
    from latentseg.cluster.settings import ClusterConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiments", nargs="+", metavar="ID",
                        help="experiment or classifier ids, or shell patterns (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="list the pending runs and why; submit nothing")
    parser.add_argument("--status", action="store_true", help="the table of submitted runs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--configs", type=Path, default=Path("configs"), help="stage resolve's output")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="prepared data sets")
    parser.add_argument("--splits", type=Path, default=Path("data/splits"), help="their split lists")
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="stage weights' output")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="the runs' folders")


def slurm_missing() -> str | None:
    """What this machine lacks to submit (``sbatch``) and follow (``squeue``) jobs, or None."""
    missing = [command for command in ("sbatch", "squeue") if shutil.which(command) is None]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not found on PATH: this machine cannot submit or follow Slurm jobs; run "
            "latentseg submit on the cluster's login node")


def classifiers(params: dict, patterns: list[str] | None, experiments: list[str]) -> dict[str, str]:
    """The classifiers to consider (``{id: data set}``): those ``patterns`` select, and those that filter a selected
    experiment (their filtered evaluations of its runs are made on the cluster too)."""
    from latentseg.cluster.pending import select

    chosen = set(select(params, patterns, "classifiers"))
    every = params.get("classifiers") or {}
    chosen |= {c for c, doc in every.items() if set(doc.get("filters") or ()) & set(experiments)}
    return {c: every[c]["dataset"] for c in every if c in chosen}


def status(log_folder: Path) -> int:
    """``--status``: the table of what was submitted (its record in ``log_folder``)."""
    from latentseg.cluster.status import status_table
    from latentseg.cluster.submit import read_record

    try:
        submitted = read_record(log_folder)
        print(status_table(submitted) if submitted else f"nothing submitted yet (no record in {log_folder})")
    except (RuntimeError, ValueError) as err:
        print(f"latentseg submit --status: {err}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    from latentseg.cluster.settings import cluster_settings
    from latentseg.registry.params import load_params

    try:
        params = load_params(args.params)
        cluster = cluster_settings(params)
    except SettingsError as err:
        print("\n".join(f"{args.params}: {k} = {v!r}: {m}" for k, v, m in err.problems), file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"latentseg submit: {err}", file=sys.stderr)
        return 2
    if args.status:
        return status(Path(cluster.log_folder))
    try:
        pending = find_pending(args, params)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"latentseg submit: {err}", file=sys.stderr)
        return 2
    if pending is None:
        return 2
    return submit_pending(pending, cluster, args.dry_run)


def find_pending(args: argparse.Namespace, params: dict) -> list[Pending] | None:
    """The runs and classifiers of ``--experiments`` that need a job, and why; None (said why) if ``configs/`` is
    not ``params.yaml``'s current resolution."""
    from latentseg.cluster.classifiers import pending_classifiers
    from latentseg.cluster.layout import Layout
    from latentseg.cluster.pending import check_configs, pending_runs, select

    experiments = select(params, args.experiments)
    chosen = classifiers(params, args.experiments, experiments)
    stale = check_configs(params, args.configs, experiments, chosen)
    if stale:
        print(f"latentseg submit: {args.configs}/ is older than {args.params} for {', '.join(stale[:3])}"
              f"{' and more' if len(stale) > 3 else ''}: run `dvc repro resolve` first", file=sys.stderr)
        return None
    layout = Layout(args.configs, args.data, args.splits, args.weights, args.runs).absolute()
    pending = pending_runs(layout, {e: params["experiments"][e]["dataset"] for e in experiments})
    return pending + pending_classifiers(layout, chosen, frozenset(p.spec.name for p in pending))


def submit_pending(pending: list[Pending], cluster: ClusterConfig, dry_run: bool) -> int:
    """List ``pending`` with the reasons, then submit it (unless ``dry_run``)."""
    resources = (f"{cluster.nodes} node(s) x {cluster.tasks // cluster.nodes} task(s), {cluster.gpus_per_run} GPU(s), "
                 f"{cluster.time_min} min, partition {cluster.partition or '(default)'}")
    if not pending:
        print("nothing to submit: every run is finished and evaluated")
        return 0
    print(tabulate([(p.spec.name, p.reason) for p in pending], headers=["run", "why"]))
    no_slurm = slurm_missing()
    if dry_run:
        print(f"\n{len(pending)} run(s) would be submitted, each: {resources}")
        if no_slurm:
            print(f"note: {no_slurm}")
        return 0
    if no_slurm:
        print(f"latentseg submit: {no_slurm}", file=sys.stderr)
        return 1
    from latentseg.cluster.submit import submit

    try:
        done = submit([p.spec for p in pending], cluster)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as err:  # no sbatch here, or Slurm refused the job
        print(f"latentseg submit: submitting failed: {err}", file=sys.stderr)
        return 1
    print(f"\nsubmitted {len(done)} job(s) ({resources}): {', '.join(d.job_id for d in done)}")
    print("watch: latentseg submit --status; when they are done: dvc repro")
    return 0

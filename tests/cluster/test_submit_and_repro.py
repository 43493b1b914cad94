"""``latentseg submit`` trains a data set's runs and its classifier as Slurm jobs; ``dvc repro`` then reuses them.

On a copy of the repository whose demo profile is shrunk (a small embedded VOC, 4 steps of 2 images, a classifier of
4 steps, no initial weights to make) and whose registry holds the two experiments Mittal et al.'s classifier
``voc-1_8`` filters, of two seeds each: each classifier job waits for the jobs of the runs it filters (``afterok``),
then filters them; the training stage then trains, evaluates and filters nothing, and its metrics are those of a
local run of the same seeds.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
import yaml

from latentseg.cli import main
from latentseg.cluster.submit import read_record
from latentseg.run.outputs import Outputs
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.run.progress_file import read_progress
from tests.cluster.layout import queued, wait_for
from tests.pipeline.repository import copy_repository, dvc, stage_env

pytestmark = pytest.mark.slurm
EXP = "voc-1_8-proposed"
SEEDS = [1234, 1]


def shrink_demo(params: dict) -> dict:
    params["profile"] = "demo"
    demo = params["profiles"]["demo"]
    demo["datasets"]["voc"] = {"synthetic": {"num_train": 24, "num_val": 4, "size": [32, 32], "seed": 0}}
    params["datasets"]["voc"]["fractions"] = ["1/8"]  # 3 labeled images of 24
    demo["optim"] = {**demo["optim"], "iterations": 4, "batch_size": 2}
    demo["data"] = {**demo["data"], "crop_size": [32, 32]}
    demo["runtime"] = {**demo["runtime"], "log_every": 2, "checkpoint_every": 2, "eval_every": 0,
                              "parallel_runs": 1}
    demo["weights"] = {"coco": None, "imagenet": None}
    demo["repeats"] = {"seeds": SEEDS, "experiments": "all"}
    params["experiments"] = {e: params["experiments"][e] for e in (EXP, "voc-1_8-s4gan")}  # the classifier's two
    params["classifiers"] = {"voc-1_8": params["classifiers"]["voc-1_8"]}
    demo["classifier"] = {**demo["classifier"], "epochs": 2, "steps_per_epoch": 2}
    params["figures"] = {"fig3_voc_k20": EXP}
    params["figure1"]["runs"] = {"voc": EXP}
    return params


def run_stage(repo: Path, name: str, **paths: Path) -> None:
    """Stage ``name`` (``train@<exp>``, ``prepare@voc``) of the copy's dvc.yaml, its command run in this process;
    ``paths`` replace the values of its options (``runs=...``: ``--runs ...``)."""
    stage, _, key = name.partition("@")
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]
    cmd = (spec.get("do") or spec)["cmd"].replace("${key}", key).replace("${item.dataset}", "voc")
    args = shlex.split(cmd)[1:]
    for option, value in paths.items():
        args[args.index(f"--{option}") + 1] = str(value)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with patch.object(sys, "argv", args):
            runpy.run_path(str(repo / args[0]), run_name="__main__")
    finally:
        torch.set_num_threads(threads)


def prepared_copy(tmp_path: Path, slurm, monkeypatch) -> tuple[Path, dict]:
    """A copy of the repository, its demo shrunk, its stages before training run and recorded, as the current
    folder, with the test cluster's site settings in the environment; and its parameters."""
    repo = copy_repository(tmp_path / "repo")
    params = shrink_demo(yaml.safe_load((repo / "params.yaml").read_text()))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(repo)
    # The stages before training, run as dvc.yaml runs them (in this process: each stage's process would import
    # torch again, which takes most of a minute on a busy 2-core machine), then recorded in dvc.lock
    upstream = ["resolve", "prepare@voc", "split@voc", "weights"]
    for name in upstream:
        run_stage(repo, name)
    committed = dvc(repo, "commit", "--force", *upstream, check=False)
    assert committed.returncode == 0, committed.stdout[-3000:] + committed.stderr[-3000:]
    # `latentseg submit` in this process, in the copy; its jobs (sbatch hands them this environment) run the copy's
    # code. The site's settings from the environment: CPU jobs of one core on the test cluster.
    env = {**stage_env(repo), **slurm.env, "OMP_NUM_THREADS": "1", "LATENTSEG_CLUSTER_GPUS_PER_RUN": "0",
           "LATENTSEG_CLUSTER_CPUS_PER_TASK": "1", "LATENTSEG_CLUSTER_MEM_GB": "null",
           "LATENTSEG_CLUSTER_TIME_MIN": "10"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return repo, params


def test_submitted_runs_and_classifiers_are_reused_by_dvc_repro(tmp_path, slurm, monkeypatch, capsys):
    repo, params = prepared_copy(tmp_path, slurm, monkeypatch)

    def submit(*args: str) -> str:
        capsys.readouterr()
        assert main(["submit", *args]) == 0, capsys.readouterr()
        return capsys.readouterr().out

    dry = submit("--dry-run")
    assert dry.count("missing: no checkpoint") == 4 and dry.count("missing: no classifier") == len(SEEDS), dry
    assert f"{4 + len(SEEDS)} run(s) would be submitted" in dry, dry
    assert queued(slurm.env).strip() == ""  # a dry run submits nothing
    out = submit()
    assert f"submitted {4 + len(SEEDS)} job(s)" in out, out
    jobs = {s.run: s.job_id for s in read_record(repo / params["cluster"]["log_folder"])}
    for seed in SEEDS:  # each classifier job waits for the jobs of its seed's runs, and only those
        waits = waiting_for(jobs[f"classifier-voc-1_8/seed-{seed}"], slurm.env)
        assert waits == {jobs[f"{exp}/seed-{seed}"] for exp in params["experiments"]}, (waits, jobs)

    # meanwhile, the same runs trained locally by the training stage's own command, on one thread as the jobs
    run_stage(repo, "train@voc", runs=tmp_path / "local" / "runs", results=tmp_path / "local" / "results")

    def evaluated(folder: Path) -> bool:
        return (read_progress(folder / PROGRESS_FILE) or {}).get("state") == "evaluated"

    folders = [repo / "runs" / "voc" / name for name in jobs]
    wait_for(lambda: queued(slurm.env).strip() == "", 240, "every job to leave the queue",
             lambda: submit("--status") + slurm.logs())
    table = submit("--status")
    assert all(map(evaluated, folders)), table + slurm.logs()
    for name in jobs:
        line = next(row for row in table.splitlines() if row.startswith(name))
        assert "COMPLETED" in line, table
    for seed in SEEDS:  # the classifier jobs recorded the filtered evaluations the stage looks for
        classifier = repo / "runs" / "voc" / "classifier-voc-1_8" / f"seed-{seed}"
        assert sorted(p.name for p in classifier.glob("filtered-*.json")) == [
            f"filtered-{exp}.json" for exp in sorted(params["experiments"])]

    repro = dvc(repo, "repro", "train@voc", check=False)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert_nothing_done(repro.stdout, list(params["experiments"]))
    assert_same_results(Outputs(results=repo / "results"), Outputs(results=tmp_path / "local" / "results"),
                        list(params["experiments"]))
    assert "nothing to submit" in submit("--dry-run")


def assert_nothing_done(out: str, experiments: list[str]) -> None:
    """The training stage's output: every run and classifier found, every evaluation and filtered one reused."""
    for exp in experiments:
        for seed in SEEDS:  # found finished and evaluated: no step trained again, no evaluation redone
            assert f"{exp}/seed-{seed}: finished, evaluation reused" in out, out
    assert out.count("evaluation reused") == 4 and ", evaluated," not in out, out
    assert out.count("trained, reused") == len(SEEDS) and ": trained\n" not in out, out
    assert out.count("filtered reused") == 4 and "filtered evaluated" not in out, out


def assert_same_results(ours: Outputs, theirs: Outputs, experiments: list[str]) -> None:
    """The stage's results from the cluster's runs are those from the local runs of the same seeds."""
    for exp in experiments:
        metrics = json.loads(ours.metrics_file("voc", exp).read_text())
        assert list(metrics["runs"]) == [f"seed-{s}" for s in sorted(SEEDS)]
        assert metrics == json.loads(theirs.metrics_file("voc", exp).read_text())
    assert ours.classifier_file("voc", "voc-1_8").read_text() == theirs.classifier_file("voc", "voc-1_8").read_text()
    for seed in SEEDS:
        latent = [out.latent_folder("voc", EXP) / f"seed-{seed}.csv" for out in (ours, theirs)]
        assert latent[0].read_text() == latent[1].read_text()
        for curve in ("train/total", "val/miou"):  # the jobs' curves, replayed into the stage's logger
            ours_curve = curve_points(ours.curves_folder("voc", EXP) / f"seed-{seed}", curve)
            assert ours_curve and ours_curve == curve_points(theirs.curves_folder("voc", EXP) / f"seed-{seed}",
                                                             curve), curve


def waiting_for(job_id: str, env: dict[str, str]) -> set[str]:
    """The jobs a pending job waits for (squeue's dependency column: ``afterok:12_0(unfulfilled),...``)."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r|%E"], env=env, capture_output=True, text=True)
    state, reason, dependency = out.stdout.strip().split("|")
    assert (state, reason) == ("PENDING", "Dependency"), out.stdout
    return set(re.findall(r"afterok:([\d_]+)", dependency))


def curve_points(live: Path, name: str) -> list[tuple[str, str]]:
    """(step, value) of a dvclive curve (its .tsv also holds wall-clock timestamps, which differ)."""
    path = live / "plots" / "metrics" / f"{name}.tsv"
    if not path.is_file():
        return []
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    step, value = header.index("step"), header.index(name.split("/")[-1])
    return [(row[step], row[value]) for row in rows]

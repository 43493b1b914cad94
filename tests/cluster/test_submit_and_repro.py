"""``latentseg submit`` trains two demo runs as Slurm jobs; ``dvc repro`` then reuses them.

On a copy of the repository whose demo profile is shrunk (a small embedded VOC, 4 steps of 2 images, no initial
weights to make) and whose registry trains one experiment of two seeds: the runs the cluster trained and evaluated
are neither trained nor evaluated again by the training stage, and its metrics are those of a local run of the
same seeds.
"""

from __future__ import annotations

import json
import runpy
import shlex
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
import yaml

from latentseg.cli import main
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


def test_submitted_runs_are_reused_by_dvc_repro(tmp_path, slurm, monkeypatch, capsys):
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

    def submit(*args: str) -> str:
        capsys.readouterr()
        assert main(["submit", *args]) == 0, capsys.readouterr()
        return capsys.readouterr().out

    dry = submit("--dry-run")
    classifiers = dry.count("missing: no classifier")  # Mittal et al.'s classifiers are runs too
    assert classifiers == sum(f"classifier-{c}/" in dry for c in params["classifiers"]) * len(SEEDS), dry
    assert dry.count("missing: no checkpoint") == 4 and f"{4 + classifiers} run(s) would be submitted" in dry, dry
    assert queued(slurm.env).strip() == ""  # a dry run submits nothing
    out = submit("--experiments", EXP)
    assert "submitted 2 job(s)" in out, out

    # meanwhile, the same runs trained locally by the training stage's own command, on one thread as the jobs
    run_stage(repo, f"train@{EXP}", runs=tmp_path / "local" / "runs", results=tmp_path / "local" / "results")

    def evaluated(seed: int) -> bool:
        doc = read_progress(repo / "runs" / EXP / f"seed-{seed}" / PROGRESS_FILE) or {}
        return doc.get("state") == "evaluated"

    wait_for(lambda: all(map(evaluated, SEEDS)) and queued(slurm.env).strip() == "", 240, "both jobs to finish",
             lambda: submit("--status") + slurm.logs())
    table = submit("--status")
    for seed in SEEDS:
        line = next(row for row in table.splitlines() if f"{EXP}/seed-{seed}" in row)
        assert "COMPLETED" in line and "4/4" in line, table

    repro = dvc(repo, "repro", f"train@{EXP}", check=False)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    for seed in SEEDS:  # no step trained twice, no evaluation redone
        assert f"seed-{seed}: 0 steps (from 4)" in repro.stdout, repro.stdout
    assert repro.stdout.count("evaluation reused") == 2 and ", evaluated," not in repro.stdout, repro.stdout
    ours = json.loads((repo / "results" / EXP / "metrics.json").read_text())
    theirs = json.loads((tmp_path / "local" / "results" / "metrics.json").read_text())
    assert list(ours["runs"]) == [f"seed-{s}" for s in SEEDS]
    assert ours == theirs  # the same metrics as the local runs of the same seeds
    for seed in SEEDS:
        name = f"latent/seed-{seed}.csv"
        assert (repo / "results" / EXP / name).read_text() == (tmp_path / "local" / "results" / name).read_text()
        for curve in ("train/total", "val/miou"):  # the jobs' curves, replayed into the stage's logger
            ours_curve = curve_points(repo / "results" / EXP / "live" / f"seed-{seed}", curve)
            assert ours_curve and ours_curve == curve_points(tmp_path / "local" / "results" / "live" / f"seed-{seed}",
                                                             curve), curve
    assert "nothing to submit" in submit("--experiments", EXP, "--dry-run")


def curve_points(live: Path, name: str) -> list[tuple[str, str]]:
    """(step, value) of a dvclive curve (its .tsv also holds wall-clock timestamps, which differ)."""
    path = live / "plots" / "metrics" / f"{name}.tsv"
    if not path.is_file():
        return []
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    step, value = header.index("step"), header.index(name.split("/")[-1])
    return [(row[step], row[value]) for row in rows]

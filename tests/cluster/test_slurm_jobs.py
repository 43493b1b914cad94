"""Runs trained as jobs of a real (one-machine) Slurm cluster: signalled mid-run (they save their step and requeue),
on a 2-task group, and failing (the classifier waiting for them is cancelled).

Each job is a ``latentseg.cluster.runs.TrainRun`` submitted by ``latentseg.cluster.submit`` (submitit), on the CPU,
one thread a task, from the files a pipeline would hold (``layout.make_layout``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from latentseg.cluster.classifiers import ClassifierSpec
from latentseg.cluster.pending import why_pending
from latentseg.cluster.runs import RunSpec
from latentseg.cluster.settings import cluster_settings
from latentseg.cluster.status import status_table
from latentseg.cluster.submit import submit
from latentseg.models.init import load_init
from latentseg.registry.params import load_params
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.run.progress_file import read_progress
from latentseg.train import checkpoint as ckpt
from latentseg.train import trainer
from latentseg.train.step import build_networks
from tests.cluster.layout import REPO, make_layout, queued, wait_for
from tests.train.speed_fixtures import NUM_CLASSES, calibrated_init, make_data, one_thread, tiny_config

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures(one_thread.__name__)]


def cpu_cluster(log_folder: Path, **changes):
    """params.yaml's cluster settings for CPU jobs of one core each on the test cluster."""
    params = load_params(REPO / "params.yaml")
    params["cluster"] = {**params["cluster"], "gpus_per_run": 0, "cpus_per_task": 1, "mem_gb": None,
                         "time_min": 10, "log_folder": str(log_folder), "signal_delay_s": 10, **changes}
    return cluster_settings(params, {})


def job_env(slurm, monkeypatch) -> None:
    """sbatch hands the jobs this process's environment: the cluster's, this checkout's code, one thread."""
    for key, value in {**slurm.env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)


def finished(spec: RunSpec, job_id: str, env: dict[str, str]) -> bool:
    progress = read_progress(spec.folder / PROGRESS_FILE) or {}
    return progress.get("state") == "evaluated" and job_id not in queued(env)


def logs(folder: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.rglob("*.out")) +
                     sorted(folder.rglob("*.err")))


def networks(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load(path)["networks"]


def test_a_signalled_job_saves_its_step_requeues_and_trains_no_step_twice(tmp_path, slurm, monkeypatch):
    """Slurm's warning signal (submitit's USR2, as ``--signal`` sends it before a time limit) mid-run: the job ends
    the step in progress, saves it (no periodic checkpoint falls before the end), requeues itself, and the requeued
    job resumes from that step: every step is logged once, and the run ends as an uninterrupted one."""
    job_env(slurm, monkeypatch)
    data = make_data(tmp_path / "data" / "voc")
    total = 60  # long enough to be signalled mid-run on a fast machine (~40 ms a step)
    cfg = tiny_config(optim={"iterations": total}, runtime={"log_every": 1, "checkpoint_every": 1000})
    layout = make_layout(tmp_path, "tiny-requeue", cfg, data, "1/2", [1234])
    spec = RunSpec("tiny-requeue", "voc", 1234, layout)
    (job,) = submit([spec], cpu_cluster(tmp_path / "logs", max_requeues=2))
    def step() -> int:
        return (read_progress(spec.folder / PROGRESS_FILE) or {}).get("step", 0)

    wait_for(lambda: step() >= 8, 120, "the job to pass step 8", lambda: logs(tmp_path / "logs") + queued(slurm.env),
             every=0.1)
    assert not (spec.folder / "checkpoint.pt").is_file()  # no checkpoint yet: the signal's is the first
    subprocess.run(["scancel", "--signal=USR2", job.job_id], env=slurm.env, check=True, capture_output=True)
    # Slurm holds a requeued job back for two minutes (its begin time); a test need not wait for it
    wait_for(lambda: f"{job.job_id} PENDING" in queued(slurm.env), 60, "the job to requeue itself",
             lambda: logs(tmp_path / "logs") + queued(slurm.env) + slurm.logs())
    stopped = ckpt.load(spec.folder / "checkpoint.pt")["step"]
    assert 8 <= stopped < total
    subprocess.run(["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"], env=slurm.env, check=True,
                   capture_output=True)
    wait_for(lambda: finished(spec, job.job_id, slurm.env), 180, "the requeued job to finish",
             lambda: logs(tmp_path / "logs") + queued(slurm.env) + slurm.logs())

    out = Path(job.stdout).read_text() + Path(job.stderr).read_text()
    assert "restart 1" in out, out[-3000:]  # the job ran again, as Slurm's first requeue
    assert f"seed-1234: {total - stopped} steps (from {stopped})" in out, out[-3000:]
    logged = [int(s) for s in re.findall(rf"seed-1234 step (\d+)/{total}", out)]
    assert logged == list(range(1, total + 1)), logged  # each step trained (and logged) once
    assert why_pending(spec.job()) is None  # finished and evaluated

    straight = trainer.train(spec.job().cfg, tmp_path / "straight.pt", spec.job().data)
    assert straight.steps_run == total
    resumed, reference = networks(spec.folder / "checkpoint.pt"), networks(tmp_path / "straight.pt")
    assert resumed.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(resumed[key], value), key


def _change(state: dict[str, torch.Tensor], initial: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return torch.cat([(state[prefix + k] - v).flatten() for k, v in sorted(initial.items())
                      if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))])


def test_a_run_on_a_two_task_job_equals_the_one_process_run(tmp_path, slurm, monkeypatch):
    """``srun -n 2`` (the job's 2 tasks), gloo on the CPU: a batch of 3 split 1 + 2, as the torchrun test splits it."""
    job_env(slurm, monkeypatch)
    data = make_data(tmp_path / "data" / "voc")
    cfg = tiny_config()
    init = calibrated_init(cfg, data, tmp_path / "init.pt")
    layout = make_layout(tmp_path, "tiny-2-tasks", cfg, data, "1/2", [1234], init)
    spec = RunSpec("tiny-2-tasks", "voc", 1234, layout)
    (job,) = submit([spec], cpu_cluster(tmp_path / "logs", tasks_per_node=2))
    wait_for(lambda: finished(spec, job.job_id, slurm.env), 180, "the 2-task job to finish",
             lambda: logs(tmp_path / "logs") + queued(slurm.env) + slurm.logs())
    out = logs(tmp_path / "logs")
    assert "task 0 of 2" in out and "task 1 of 2" in out, out

    local = replace(spec.job(), checkpoint=tmp_path / "single" / "checkpoint.pt")
    trainer.train(local.cfg, local.checkpoint, local.data, local.init)
    two, one = ckpt.load(spec.folder / "checkpoint.pt"), ckpt.load(local.checkpoint)
    assert two["step"] == one["step"] == cfg.optim.iterations
    matrix = "objective.cooccurrence.matrix"
    assert two["networks"][matrix].sum() > 0
    assert torch.allclose(two["networks"][matrix], one["networks"][matrix], rtol=1e-4, atol=1e-6)
    torch.manual_seed(cfg.optim.seed)  # the initial weights, built as the trainer builds them
    model0, disc0 = build_networks(cfg, NUM_CLASSES)
    load_init(model0, init)
    for prefix, initial in (("model.", model0.state_dict()), ("discriminator.", disc0.state_dict())):
        ddp, single = _change(two["networks"], initial, prefix), _change(one["networks"], initial, prefix)
        assert single.norm() > 1e-3  # the weights moved
        assert (ddp - single).norm() <= 1e-3 * single.norm(), f"{prefix}: the two-task update differs"


def test_a_classifier_job_whose_run_fails_is_cancelled_and_status_tells_them_apart(tmp_path, slurm, monkeypatch):
    """A run's job that fails (its split is gone) cancels the classifier job waiting for it (``afterok``,
    ``--kill-on-invalid-dep``): ``--status`` says FAILED for one, CANCELLED for the other (squeue knows ended jobs
    for ``MinJobAge``; this cluster keeps no accounts for sacct)."""
    job_env(slurm, monkeypatch)
    layout = make_layout(tmp_path, "tiny-fails", tiny_config(), make_data(tmp_path / "data" / "voc"), "1/2", [1234])
    path = layout.outputs.classifier_config("voc", "voc-1_2")
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"classifier": "voc-1_2", "filters": ["tiny-fails"], "seeds": [1234]}))
    shutil.rmtree(layout.splits)  # what the run's job reads first
    run, classifier = RunSpec("tiny-fails", "voc", 1234, layout), ClassifierSpec("voc-1_2", "voc", 1234, layout)
    submitted = submit([run, classifier], cpu_cluster(tmp_path / "logs"))
    ended = {"FAILED", "CANCELLED"}

    def states() -> dict[str, str]:
        table = status_table(submitted).split("\n\n")[0]  # then the logs of those that ended badly
        return {row.split()[0]: row.split()[2] for row in table.splitlines() if "seed-" in row}

    wait_for(lambda: set(states().values()) <= ended, 60, "both jobs to end", lambda: logs(tmp_path / "logs"))
    assert states() == {run.name: "FAILED", classifier.name: "CANCELLED"}

"""A segmentation run as a cluster job: what a job needs to rebuild the run exactly as the training stage does
(``RunSpec``), and the callable it runs (``TrainRun``): train the run, or resume it, and evaluate it.

Every task of the job (``srun`` starts ``nodes x tasks_per_node``) calls it; the tasks form the run's process group
(``rendezvous``), rank 0 writes the checkpoint, the progress file, the evaluation record and the training curves
(``curves.json``, which the training stage replays into its logger), all atomically, as the training stage's own
workers do (``run.jobs.train_and_evaluate``).

Preemption and time limits: Slurm signals the job ``cluster.signal_delay_s`` before it ends (submitit's signal,
``USR2``). While the run trains, the signal waits for the step in progress to end (``train/stopping.py``); the trainer
then writes the checkpoint of that step, and submitit's handler calls ``checkpoint``, which hands back the same
call, and requeues the job. The requeued job calls it again, and the trainer resumes from that checkpoint
bit-exactly, as a killed local run does: no step is trained twice. (Set up or evaluating, the job requeues at once:
nothing is half-done.) Under several tasks rank 0, which writes the checkpoints, waits for its step; the other
tasks end with the job. A run requeued more than ``cluster.max_requeues`` times (by signals, ``scontrol requeue`` or
node failures: Slurm counts them in ``SLURM_RESTART_COUNT``) gives up, naming itself, rather than loop.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
import yaml

from latentseg.cluster.job import RequeuedJob, restarts
from latentseg.cluster.layout import Layout
from latentseg.data.layout import TrainData
from latentseg.methods import run_config
from latentseg.models.init import resolve_init
from latentseg.run.jobs import RunJob, run_label, train_and_evaluate, with_seed
from latentseg.train import distributed, stopping
from latentseg.train.rendezvous import adopt_slurm_rendezvous

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One run to train on the cluster: what a job needs to rebuild it exactly as the training stage does."""

    experiment: str
    dataset: str
    seed: int
    layout: Layout

    @property
    def name(self) -> str:
        return f"{self.experiment}/{run_label(self.seed)}"

    @property
    def folder(self) -> Path:
        return self.layout.outputs.run_folder(self.dataset, self.experiment, self.seed)

    def job(self) -> RunJob:
        """The stage's ``RunJob`` of this run (``run.stage.build_jobs`` builds the same from the same files)."""
        doc = yaml.safe_load(self.layout.outputs.experiment_config(self.dataset, self.experiment).read_text())
        exp, cfg = doc["experiment"], run_config(doc["run"])
        data = TrainData.of_split(self.layout.data / exp["dataset"], self.layout.splits / exp["dataset"],
                                  exp["fraction"])
        init = resolve_init(self.layout.weights, exp["init"])
        return RunJob(self.experiment, run_label(self.seed), with_seed(cfg, self.seed), self.folder / "checkpoint.pt",
                      data, init)

    def waits_for(self) -> list[str]:
        return []

    def task(self, max_requeues: int) -> TrainRun:
        """The callable its cluster job runs."""
        return TrainRun(self, max_requeues)


class TrainRun(RequeuedJob):
    """Train and evaluate the run of ``spec``; at most ``max_requeues`` requeues."""

    def __init__(self, spec: RunSpec, max_requeues: int) -> None:
        self.spec, self.max_requeues, self.name = spec, max_requeues, spec.name

    def __call__(self) -> dict[str, Any]:
        self.start()
        adopt_slurm_rendezvous()
        job = self.spec.job()
        procs = distributed.init_from_env(job.cfg.runtime.device)
        log.info("run %s: task %d of %d, restart %d", self.spec.name, procs.rank, procs.world, restarts())
        # submitit's handler of its signal, in place since before this call, is what the deferred signal runs
        signum = submitit.JobEnvironment._usr_sig()
        try:
            with stopping.deferred(signum) if procs.is_main else contextlib.nullcontext():
                outcome = train_and_evaluate(job)
        finally:
            distributed.shutdown()
        if procs.is_main:
            log.info("%s %s", self.spec.experiment, outcome.summary)
        return outcome.metrics

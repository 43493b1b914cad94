"""The callable a Slurm job runs (submitit pickles it): train one run, or resume it, and evaluate it.

Every task of the job (``srun`` starts ``nodes x tasks_per_node``) calls it; the tasks form the run's process group
(``rendezvous``), rank 0 writes the checkpoint, the progress file, the evaluation record and the training curves
(``curves.json``, which the training stage replays into its logger), all atomically, as the training stage's own
workers do (``runs.train_and_evaluate``).

Preemption and time limits: Slurm signals the job ``cluster.signal_delay_s`` before it ends (submitit's signal,
``USR2``). While the run trains, the signal waits for the step in progress to end (``train.stopping``); the trainer
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
import os
from typing import Any

import submitit
import torch

from latentseg.cluster.pending import RunSpec
from latentseg.cluster.rendezvous import adopt_slurm_rendezvous
from latentseg.progress import configure_logging
from latentseg.runs import train_and_evaluate
from latentseg.train import distributed, stopping

log = logging.getLogger(__name__)


def restarts(env: dict[str, str] | None = None) -> int:
    """How often Slurm has requeued this job."""
    return int((os.environ if env is None else env).get("SLURM_RESTART_COUNT", "0"))


class TooManyRequeues(RuntimeError):
    pass


class RequeuedJob(submitit.helpers.Checkpointable):
    """What every cluster job shares: a name, at most ``max_requeues`` requeues, the CPUs Slurm gave it."""

    name: str
    max_requeues: int

    def start(self) -> None:
        """Call first in ``__call__``: logging, the requeue limit, torch's threads."""
        configure_logging()
        if restarts() > self.max_requeues:
            raise TooManyRequeues(f"run {self.name}: requeued {restarts()} times, more than cluster.max_requeues"
                                  f" = {self.max_requeues}; giving up. Read this log, then `latentseg submit` again")
        threads = os.environ.get("SLURM_CPUS_PER_TASK")
        if threads:
            torch.set_num_threads(int(threads))

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission | None:
        """Called by submitit on Slurm's signal: the same call again (the run's checkpoint holds its state), or
        None (no requeue) once the run has been requeued ``max_requeues`` times."""
        if restarts() >= self.max_requeues:
            log.error("run %s: requeued %d times (cluster.max_requeues); not requeued again", self.name, restarts())
            return None
        return super().checkpoint(*args, **kwargs)


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

"""What every cluster job shares (submitit pickles the callable a job runs): a name, at most ``cluster.max_requeues``
requeues, the CPUs Slurm gave it, and submitit's requeue on Slurm's signal.

Preemption and time limits: Slurm signals the job ``cluster.signal_delay_s`` before it ends (submitit's signal,
``USR2``); submitit's handler calls ``checkpoint``, which hands back the same call, and requeues the job. A run's job
(``runs.TrainRun``) defers that signal to the end of its training step so that the step is saved first. A job
requeued more than ``cluster.max_requeues`` times (by signals, ``scontrol requeue`` or node failures: Slurm counts
them in ``SLURM_RESTART_COUNT``) gives up, naming itself, rather than loop.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import submitit
import torch

from latentseg.util.progress import configure_logging

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

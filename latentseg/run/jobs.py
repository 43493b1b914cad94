"""The runs of a data set's experiments (one per experiment and training seed): training them, side by side where
asked, and evaluating each. Shared by the training stage and the cluster's jobs.

A run lives in its own folder (``outputs.Outputs.run_folder``)::

    runs/<dataset>/<experiment>/seed-<n>/checkpoint.pt      weights, optimisers, co-occurrence matrix (resumable)
    runs/<dataset>/<experiment>/seed-<n>/evaluation.json    its evaluation, reused while run and evaluation code hold
    runs/<dataset>/<experiment>/seed-<n>/curves.json        its training curves, as logged
    runs/<dataset>/<experiment>/seed-<n>/progress.json      step, total, ETA, latest validation mIoU (--status)

A finished run whose evaluation record matches is not touched again (``finished``): no process, no network. The
others train in worker processes, ``runtime.parallel_runs`` at a time (one thread each on the CPU: the demo's
small networks gain nothing from a second thread; one GPU each on a GPU machine), longest first. The workers
belong to the stage: they end when it ends, however it ends (``_worker_init``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from latentseg.config import RunConfig
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import TrainData
from latentseg.evaluate import evaluate
from latentseg.run.evaluation import FILE as EVALUATION_FILE
from latentseg.run.evaluation import evaluated, evaluation_key, recorded
from latentseg.run.outputs import run_label
from latentseg.run.progress_file import CURVES, CurvesFile, ProgressFile
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.train import distributed
from latentseg.train.identity import identity, resume_step
from latentseg.train.trainer import train
from latentseg.util.progress import configure_logging

_PROC = Path("/proc")
_WATCH_S = 0.5  # how often a worker looks whether its stage still runs

__all__ = ["RunJob", "RunOutcome", "finished", "run_all", "run_label", "train_and_evaluate", "with_seed"]


def with_seed(cfg: RunConfig, seed: int) -> RunConfig:
    return replace(cfg, optim=replace(cfg.optim, seed=seed))


class Job(Protocol):
    """Work for ``run_all``: a run to train, a classifier to train, a run to filter."""

    @property
    def name(self) -> str: ...
    @property
    def device(self) -> str: ...
    def cost(self) -> float: ...  # relative: the longest start first
    def finished(self) -> Any: ...  # its outcome without any work, or None
    def for_worker(self) -> Job: ...  # the same work, as a pool's worker may do it (no processes of its own)
    def __call__(self) -> Any: ...


@dataclass(frozen=True)
class RunJob:
    """One run to train and evaluate."""

    experiment: str
    label: str  # seed-<n>
    cfg: RunConfig
    checkpoint: Path
    data: TrainData
    init: Path | None

    @property
    def name(self) -> str:
        return f"{self.experiment}/{self.label}"

    @property
    def device(self) -> str:
        return self.cfg.runtime.device

    def cost(self) -> float:
        """Steps x images a step x pixels."""
        h, w = self.cfg.data.crop_size
        return self.cfg.optim.iterations * self.cfg.optim.batch_size * h * w

    def finished(self) -> RunOutcome | None:
        return finished(self)

    def for_worker(self) -> RunJob:  # a pool's worker may start no processes: its data loading runs in it
        return replace(self, cfg=replace(self.cfg, data=replace(self.cfg.data, workers=0)))

    def __call__(self) -> RunOutcome:
        return train_and_evaluate(self)


@dataclass
class RunOutcome:
    experiment: str
    label: str
    metrics: dict[str, float]
    p_latent: Tensor | None  # eq. (8) from the training co-occurrence matrix, (C, k)
    p_latent_val: Tensor | None  # the validation set's estimate
    summary: str  # one line: steps, seconds, images/s


def validator(cfg: RunConfig, data: TrainData):
    """The validation mIoU of the network as it is, for the curves during training (``runtime.eval_every``)."""
    loader = eval_loader(data.root, cfg.data, workers=0)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        result = evaluate(model, loader, data.meta.num_classes, device, autocast=device.type == "cuda")
        return {"miou": round(100 * result.miou, 2)}

    return validate


def finished(job: RunJob) -> RunOutcome | None:
    """The recorded evaluation of a run that is finished and evaluated by the current code, or None."""
    if not job.checkpoint.is_file():
        return None
    key = evaluation_key(identity(job.cfg, job.data, job.init), job.cfg.optim.iterations)
    found = recorded(job.checkpoint.with_name(EVALUATION_FILE), key)
    if found is None:
        return None
    metrics, p_latent, p_latent_val = found
    return RunOutcome(job.experiment, job.label, metrics, p_latent, p_latent_val,
                      f"{job.name}: finished, evaluation reused, mIoU {metrics['miou']:.2f}")


def train_and_evaluate(job: RunJob) -> RunOutcome:
    """Train (or resume, or find finished) one run, then evaluate it or reuse its evaluation record
    (``run_evaluation``). Rank 0 keeps the run's progress file and its curves (``curves.json``) as it logs."""
    main = distributed.current().is_main
    curves = CurvesFile(job.checkpoint.with_name(CURVES), resume_step(job.checkpoint, job.cfg, job.data, job.init))
    progress = ProgressFile(job.checkpoint.with_name(PROGRESS_FILE), job.cfg.optim.iterations)

    def logged(values: dict[str, float], step: int) -> None:
        if main:
            curves(values, step)
            progress.report(values, step)

    validate = validator(job.cfg, job.data) if job.cfg.runtime.eval_every else None
    summary = train(job.cfg, job.checkpoint, job.data, job.init, logged, validate, name=job.name)
    if not main:  # rank 0 evaluates (torchrun)
        return RunOutcome(job.experiment, job.label, {}, None, None, "")
    ident = identity(job.cfg, job.data, job.init)
    (metrics, p_latent, p_latent_val), fresh = evaluated(job.checkpoint, job.data, ident, job.cfg.optim.iterations,
                                                         job.cfg.data.workers)
    if summary.steps_run:
        logged({"val/miou": metrics["miou"]}, int(metrics["steps"]))  # the last point of the validation curve
    if fresh or summary.steps_run:
        progress.finished(int(metrics["steps"]), metrics["miou"])
    how = "evaluated" if fresh else "evaluation reused"
    line = (f"{job.name}: {summary.steps_run} steps (from {summary.resumed_from}) in {summary.seconds:.1f} s, "
            f"{summary.images_per_second:.1f} images/s, {how}, mIoU {metrics['miou']:.2f}")
    return RunOutcome(job.experiment, job.label, metrics, p_latent, p_latent_val, line)


def run_all(jobs: list[Job], parallel: int, threads: int | None = None) -> Iterator[Any]:
    """Every job's outcome: the finished ones without any work, then the others, ``parallel`` at a time in worker
    processes (in this process if 1, or under torchrun: every process takes part in each job), as each ends.
    ``threads``: torch's threads in each worker (None: the cores over the workers)."""
    todo = []
    for job in jobs:
        if distributed.current().world == 1 and (done := job.finished()) is not None:
            yield done
        else:
            todo.append(job)
    todo.sort(key=lambda j: -j.cost())  # longest first: the last to start are the short ones
    if parallel <= 1 or len(todo) <= 1 or distributed.current().world > 1:
        for job in todo:
            yield job()
        return
    processes = min(parallel, len(todo))
    threads = threads or max(1, (os.cpu_count() or 1) // processes)
    context = _process_context()
    with _belonging_to_this_process():
        pool = context.Pool(processes, _worker_init, (threads, os.getpid()))
        try:
            yield from pool.imap_unordered(_in_worker, todo)
            pool.close()  # idle workers end on their own: no signal meets one waiting for a task
        except BaseException:  # the stage is ending (a signal, an error, the caller stopped early)
            pool.terminate()
            raise
        finally:
            pool.join()


def _in_worker(job: Job) -> Any:
    distributed.init_from_env(job.device)  # one free GPU of its own, where there are GPUs
    return job.for_worker()()


def _worker_init(threads: int, stage: int) -> None:
    """A worker belongs to the stage (pid ``stage``). SIGTERM, SIGINT or SIGHUP end it through Python, so an
    atomic write in progress removes its temporary file; and so does the stage's end, however it ends (SIGKILL
    too), which a thread watches for. Not the kernel's parent-death signal: a fork server's worker (CUDA) is the
    child of the fork server, which outlives the stage while its workers live."""
    torch.set_num_threads(threads)
    configure_logging()  # a fork server's worker inherits no logging: its runs' progress lines would be lost
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    threading.Thread(target=_end_with, args=(stage,), name="end-with-stage", daemon=True).start()


def _end_with(stage: int) -> None:
    """Wait for process ``stage`` to end, then end this one as SIGTERM would.

    This thread takes none of the stage's signals: a signal the kernel gave it would not wake the main thread where
    that waits in a lock (an idle pool worker), and the worker would never end. Its own goes to the main thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    while _running(stage):
        time.sleep(_WATCH_S)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (ended, its parent not yet told) does not."""
    if not _PROC.is_dir():  # no /proc (macOS): a zombie counts as running until its parent reaps it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class _belonging_to_this_process:
    """While open: SIGTERM and SIGHUP end this process through Python (SystemExit), so that the worker pool's
    context exits and terminates its workers; the handlers before are restored on leaving."""

    def __enter__(self) -> None:
        self.saved = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _process_context() -> multiprocessing.context.BaseContext:
    """How workers start. On the CPU a fork of this process, which has imported torch but computed nothing yet
    (no OpenMP thread pool to inherit): instant. Where CUDA may be in use, a fork would inherit its state, which
    CUDA forbids: a fork server instead, a clean process that imports this module once and forks the workers."""
    if torch.cuda.is_available():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("fork")

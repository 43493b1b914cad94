"""An experiment's runs (one per training seed): training them, side by side where asked, evaluating each, and
the experiment's metrics file. Shared by the training and classifier stages.

Layout, per experiment ``<exp>`` and run label ``seed-<n>`` (``run_label``)::

    <runs>/<exp>/seed-<n>/checkpoint.pt      # weights, optimisers, co-occurrence matrix (resumable)
    <runs>/<exp>/seed-<n>/evaluation.json    # its evaluation, reused while run and evaluation code are the same
    <runs>/<exp>/seed-<n>/progress.json      # step, total, ETA, latest validation mIoU (latentseg submit --status)
    <results>/<exp>/metrics.json             # every run's metrics under "runs", their means at the top
    <results>/<exp>/latent/seed-<n>.csv      # P(l|c) of eq. (8), from the co-occurrence matrix of training
    <results>/<exp>/latent/seed-<n>-val.csv  # the same estimated on the validation set
    <results>/<exp>/live/seed-<n>/           # training and validation curves (the stage's logger)

Several seeds of one experiment train in parallel processes when ``runtime.parallel_runs`` > 1: the CPU's cores
(one thread each: the demo's small networks gain nothing from a second thread, and a second process doubles the
work done), or one GPU each (``train.distributed.claim_free_gpu``).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from latentseg.config import RunConfig
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import TrainData
from latentseg.evaluate import evaluate
from latentseg.run_evaluation import evaluated
from latentseg.run_progress import FILE as PROGRESS_FILE
from latentseg.run_progress import ProgressFile
from latentseg.train import distributed
from latentseg.train.identity import identity, resume_step
from latentseg.train.trainer import Logger, train

LoggerFactory = Callable[["RunJob", bool], AbstractContextManager[Logger]]  # (job, resuming) -> logger context


def run_label(seed: int) -> str:
    """The name of one run of an experiment: its folder and its key in the metrics files."""
    return f"seed-{seed}"


def with_seed(cfg: RunConfig, seed: int) -> RunConfig:
    return replace(cfg, optim=replace(cfg.optim, seed=seed))


@dataclass(frozen=True)
class RunJob:
    """One run to train and evaluate."""

    label: str  # seed-<n>
    cfg: RunConfig
    checkpoint: Path
    data: TrainData
    init: Path | None


@dataclass
class RunOutcome:
    label: str
    metrics: dict[str, float]
    p_latent: Tensor | None  # eq. (8) from the training co-occurrence matrix, (C, k)
    p_latent_val: Tensor | None  # the validation set's estimate
    summary: str  # one line: steps, seconds, images/s
    curves: list[tuple[dict[str, float], int]] = field(default_factory=list)  # logged in a worker process


def validator(cfg: RunConfig, data: TrainData) -> Callable:
    """The validation mIoU of the network as it is, for the curves during training (``runtime.eval_every``)."""
    loader = eval_loader(data.root, cfg.data, workers=0)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        result = evaluate(model, loader, data.meta.num_classes, device, autocast=device.type == "cuda")
        return {"miou": round(100 * result.miou, 2)}

    return validate


def train_and_evaluate(job: RunJob, log: Logger | None = None) -> RunOutcome:
    """Train (or resume, or find finished) one run, then evaluate it, or reuse its evaluation record
    (``run_evaluation``). The run's progress file follows every logged step."""
    curves: list[tuple[dict[str, float], int]] = []
    sink = log if log is not None else (lambda values, step: curves.append((values, step)))
    progress = ProgressFile(job.checkpoint.with_name(PROGRESS_FILE), job.cfg.optim.iterations)

    def logged(values: dict[str, float], step: int) -> None:
        sink(values, step)
        progress.report(values, step)

    validate = validator(job.cfg, job.data) if job.cfg.runtime.eval_every else None
    summary = train(job.cfg, job.checkpoint, job.data, job.init, logged, validate, name=job.label)
    if not distributed.current().is_main:  # rank 0 evaluates (torchrun)
        return RunOutcome(job.label, {}, None, None, "")
    ident = identity(job.cfg, job.data, job.init)
    (metrics, p_latent, p_latent_val), fresh = evaluated(job.checkpoint, job.data, ident, job.cfg.optim.iterations,
                                                         job.cfg.data.workers)
    if summary.steps_run:
        sink({"val/miou": metrics["miou"]}, metrics["steps"])  # the last point of the validation curve
    if fresh or summary.steps_run:
        progress.finished(int(metrics["steps"]), metrics["miou"])
    how = "evaluated" if fresh else "evaluation reused"
    line = (f"{job.label}: {summary.steps_run} steps (from {summary.resumed_from}) in {summary.seconds:.1f} s, "
            f"{summary.images_per_second:.1f} images/s, {how}, mIoU {metrics['miou']:.2f}")
    return RunOutcome(job.label, metrics, p_latent, p_latent_val, line, curves)


def _in_worker(job: RunJob, threads: int) -> RunOutcome:
    torch.set_num_threads(threads)
    distributed.init_from_env(job.cfg.runtime.device)  # one free GPU of its own, where there are GPUs
    # a pool's worker may start no processes of its own: its data loading runs in it
    job = replace(job, cfg=replace(job.cfg, data=replace(job.cfg.data, workers=0)))
    return train_and_evaluate(job)


def resuming(job: RunJob) -> bool:
    """Whether the run continues (or re-enters, finished) a checkpoint of its own: its curves continue too."""
    return resume_step(job.checkpoint, job.cfg, job.data, job.init) > 0


def run_all(jobs: list[RunJob], parallel: int, logger: LoggerFactory) -> Iterator[RunOutcome]:
    """Train and evaluate ``jobs``, ``parallel`` at a time in worker processes (in this one if 1).

    ``logger(job, resuming)`` opens the curves' sink of a run; in worker processes the curves are collected and
    handed to it when the run is done.
    """
    if parallel <= 1 or len(jobs) == 1:
        for job in jobs:
            with logger(job, resuming(job)) as log:
                yield train_and_evaluate(job, log)
        return
    processes = min(parallel, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // processes)
    with _process_context().Pool(processes) as pool:
        flags = [resuming(job) for job in jobs]
        for job, flag, outcome in zip(jobs, flags, pool.starmap(_in_worker, [(j, threads) for j in jobs]),
                                      strict=True):
            with logger(job, flag) as log:
                for values, step in outcome.curves:
                    log(values, step)
            yield outcome


def _process_context() -> multiprocessing.context.BaseContext:
    """How workers start. On the CPU a fork of this process, which has imported torch but computed nothing yet
    (no OpenMP thread pool to inherit): instant. Where CUDA may be in use, a fork would inherit its state, which
    CUDA forbids: a fork server instead, a clean process that imports this module once and forks the workers."""
    if torch.cuda.is_available():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("fork")


def summarise(per_run: dict[str, dict[str, float]]) -> dict:
    """The metrics file of an experiment: every run's metrics under ``runs``, and the mean over the runs of
    each metric at the top (for ``dvc metrics show``; tables read the runs themselves). A metric that is None
    (not applicable: ``recovery_ari`` on data without planted groups) has no mean."""
    names = [k for k in next(iter(per_run.values()))
             if all(k in m and m[k] is not None for m in per_run.values())]
    means = {k: round(statistics.fmean(m[k] for m in per_run.values()), 2) for k in names}
    return {**means, "runs": per_run}

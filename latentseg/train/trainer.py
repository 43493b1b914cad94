"""The training loop of one run: setup, resume, the loop, checkpoints.

``train(cfg, checkpoint, data, init)`` runs ``cfg.optim.iterations`` steps and leaves the ``checkpoint`` file
holding everything needed to resume or evaluate: weights, optimisers, the method's state (the co-occurrence
matrix), the step and random states. A run killed part-way resumes from its last checkpoint when called again. A
checkpoint is resumed (or, finished, reused) only by the same run (``train/identity.py``).

Under torchrun (``distributed.init_from_env``) the same function trains one run on several processes: each
takes a slice of every batch, DistributedDataParallel averages the segmentation network's gradients, and rank 0
alone logs and writes checkpoints. ``optim.batch_size`` stays the whole batch, so the run is the same run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from latentseg import methods
from latentseg.config import RunConfig
from latentseg.data.layout import TrainData
from latentseg.losses import SplitBatch
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.init import load_init
from latentseg.train import distributed, stopping
from latentseg.train.checkpoint import save_run, unwrap
from latentseg.train.identity import identity, resumable_state
from latentseg.train.runtime import StepSpeed, first_step_with_fallback
from latentseg.train.step import Batch, Networks, build_networks, build_objective, make_optimizers, one_update
from latentseg.train.streams import streams
from latentseg.util.devices import resolve_device
from latentseg.util.progress import Progress

Logger = Callable[[dict[str, float], int], None]  # (named values, step): the training curves (dvclive)
Validator = Callable[[DeepLabV2], dict[str, float]]  # validation metrics of the network as it is


@dataclass(frozen=True)
class TrainSummary:
    checkpoint: Path
    resumed_from: int  # 0 for a fresh run
    steps_run: int
    seconds: float
    images_per_second: float  # images of the whole batch (all streams), all processes together
    last_losses: dict[str, float]
    compiled: bool = False  # runtime.compile asked for it and compiling succeeded


@dataclass
class Setup:
    """A run ready to step: its networks on the device, optimisers, first step, speed rules."""

    nets: Networks
    sgd: torch.optim.Optimizer
    adam: torch.optim.Optimizer | None
    start: int
    device: torch.device
    speed: StepSpeed
    eager: nn.Module  # the segmentation network before compilation (the fallback)


def train(cfg: RunConfig, checkpoint: str | Path, data: TrainData, init: Path | None = None,
          log: Logger | None = None, validate: Validator | None = None, name: str = "run") -> TrainSummary:
    """Train (or resume, or find finished) the run of ``cfg`` into ``checkpoint``, starting from ``init``.

    ``log`` receives the loss components every ``runtime.log_every`` steps and the validation metrics of
    ``validate`` every ``runtime.eval_every`` steps (not at the last: the caller evaluates the finished run).
    """
    path, rank, world = Path(checkpoint), distributed.current().rank, distributed.current().world
    s = setup(cfg, path, data, init, world)
    ident, total, rt = identity(cfg, data, init), cfg.optim.iterations, cfg.runtime
    autocast = s.speed.autocast(s.device)
    batches = streams(cfg, data, s.start, s.device.type == "cuda", rank, world)
    progress = Progress(name, s.start, total, cfg.optim.batch_size * batches.images_per_batch)
    last, compiled = {}, s.speed.compile
    with stopping.training():  # a stop asked by a signal waits for the end of the step in progress
        for step, (img, mask, unl, real) in enumerate(batches, s.start):
            batch = Batch(*(None if x is None else s.speed.to_device(x, s.device) for x in (img, mask, unl, *real)))
            update = functools.partial(one_update, s.nets, batch, step, s.sgd, s.adam, autocast)
            if s.speed.compile and step == s.start:  # torch.compile compiles here; eager if that fails
                parts, compiled = first_step_with_fallback(s.nets, "model", s.eager, update)
            else:
                parts = update()
            done = step + 1
            if done % rt.log_every == 0 or done == total:
                last = {**_mean_losses(parts), "lr": s.sgd.param_groups[0]["lr"]}  # every process takes part
                if rank == 0:
                    progress.report(done, last)
                    if log is not None:
                        log(last, done)
            stop = stopping.requested()  # only ever on rank 0 (cluster/runs.py): the others are ended with the job
            if rank == 0 and (done == total or done % rt.checkpoint_every == 0 or stop):
                save_run(path, cfg, ident, s.nets, s.sgd, s.adam, done)
            if stop:
                stopping.handle_now()  # on the cluster: requeue the job and exit
            if validate and rank == 0 and rt.eval_every and done % rt.eval_every == 0 and done != total:
                _validate_now(s, validate, log, done)
    seconds = time.perf_counter() - progress.t0
    images = (total - s.start) * cfg.optim.batch_size * batches.images_per_batch
    return TrainSummary(path, s.start, total - s.start, seconds, images / seconds if seconds > 0 else 0.0, last,
                        compiled)


def setup(cfg: RunConfig, path: Path, data: TrainData, init: Path | None, world: int) -> Setup:
    """Build the run's networks and optimisers, load its initial weights, resume its checkpoint if it has one,
    and wrap it for several processes or compilation."""
    device = resolve_device(cfg.runtime.device)
    if cfg.runtime.threads is not None:
        torch.set_num_threads(cfg.runtime.threads)
    speed = StepSpeed.from_config(cfg.runtime, device)  # bf16, channels-last, cuDNN autotuning, fused: on CUDA
    torch.manual_seed(cfg.optim.seed)
    model, disc = build_networks(cfg, data.meta.num_classes)
    if init is not None:
        load_init(model, init, latent_from_semantic=methods.get(cfg.objective).latent_from_semantic(cfg))
    nets = Networks(cfg, model, disc, build_objective(cfg, data.meta.classes, len(data.labeled))).to(device)
    speed.prepare(nets)
    sgd, adam = make_optimizers(cfg, model, disc, fused=speed.fused_optim)
    state = resumable_state(path, cfg, data, init)
    start = 0 if state is None else int(state["step"])
    if state is not None:
        nets.load_state_dict(state["networks"])
        sgd.load_state_dict(state["sgd"])
        if adam is not None:
            adam.load_state_dict(state["adam"])
        torch.set_rng_state(state["rng"])
    if world > 1:
        _distribute(nets, cfg, device)
    eager = nets.model
    if speed.compile:  # the segmentation network only: the losses and discriminator are small beside it
        nets.model = torch.compile(nets.model)
    nets.train()
    return Setup(nets, sgd, adam, start, device, speed, eager)


def _distribute(nets: Networks, cfg: RunConfig, device: torch.device) -> None:
    """DDP over the segmentation network; the discriminator's gradients: ``step.average_gradients``."""
    if not cfg.model.freeze_bn_stats:  # batch statistics of the whole batch, as on one process
        nets.model = nn.SyncBatchNorm.convert_sync_batchnorm(nets.model)
    # DDP copies rank 0's weights and buffers to every rank once, here. It need not re-send the buffers each
    # forward (broadcast_buffers): frozen batch-norm statistics never change, and SyncBatchNorm updates them
    # identically on every rank. Gradients live in DDP's buckets (no copy in and out).
    nets.model = nn.parallel.DistributedDataParallel(
        nets.model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False,
        gradient_as_bucket_view=True, find_unused_parameters=cfg.model.aspp_branches < 4)
    if nets.discriminator is not None:  # not wrapped in DDP: start every rank from rank 0's discriminator
        for p in nets.discriminator.parameters():
            dist.broadcast(p.data, 0)


def _validate_now(s: Setup, validate: Validator, log: Logger | None, done: int) -> None:
    device = s.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # training's draws stay
        metrics = validate(unwrap(s.nets.model))
    s.nets.train()
    if log is not None:
        log({f"val/{k}": v for k, v in metrics.items()}, done)


def _mean_losses(parts: dict[str, Tensor]) -> dict[str, float]:
    """The loss components as numbers: one host synchronisation; under a split, the whole batch's values."""
    values = torch.stack([v.float() for v in parts.values()])
    split = SplitBatch.current()
    if split is not None:  # each process holds its share of a batch mean (losses.SplitBatch): their mean is it
        values = split.sum(values) / split.world
    return dict(zip(parts, values.tolist(), strict=True))

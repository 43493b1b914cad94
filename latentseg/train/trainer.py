"""The training loop of one run: data streams, the model and its initialisation, the update, progress, checkpoints.

``train(cfg, checkpoint, data, init)`` runs ``cfg.optim.iterations`` steps and leaves the ``checkpoint`` file
holding everything needed to resume or evaluate: weights, optimisers, the co-occurrence matrix, the step and
random states. A run killed part-way resumes from its last checkpoint when called again. A checkpoint is resumed
(or, finished, reused) only by the same run (``identity``): the same configuration, minus the settings that
change how a run is executed but not what it computes (``EXECUTION_ONLY``); the same training code
(``closure.fingerprint``: a change to the losses re-trains, a change to the evaluation does not); the same data
(the prepared set's fingerprint and the split lists) and the same initial weights.

Under torchrun (``distributed.init_from_env``) the same function trains one run on several processes: each
takes a slice of every batch, DistributedDataParallel averages the segmentation network's gradients, and rank 0
alone logs and writes checkpoints. ``optim.batch_size`` stays the whole batch, so the run is the same run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from latentseg.closure import fingerprint
from latentseg.config import RunConfig, from_dict, to_dict
from latentseg.data.augment import train_transform
from latentseg.data.classes import group_index
from latentseg.data.dataset import SegmentationDataset
from latentseg.data.layout import DatasetMeta, Sample, read_list, read_meta, samples_digest, split_folder
from latentseg.devices import resolve_device
from latentseg.files import atomic_torch_save, file_digest
from latentseg.losses import SplitBatch
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.init import load_init
from latentseg.progress import Progress
from latentseg.train import checkpoint as ckpt
from latentseg.train import distributed
from latentseg.train.runtime import StepSpeed, first_step_with_fallback
from latentseg.train.sampling import stream_loader
from latentseg.train.step import Batch, SegmentationStep, build_networks, make_optimizers, one_update, uses_unlabeled

Logger = Callable[[dict[str, float], int], None]  # (named values, step): the training curves (dvclive)
Validator = Callable[[DeepLabV2], dict[str, float]]  # validation metrics of the network as it is
TRAINING_CODE = "latentseg.train.trainer"  # its import closure is the code a checkpoint is made with
# Settings that change how a run is executed (logs, checkpoints, processes), never what it computes.
EXECUTION_ONLY = {"runtime": ("log_every", "checkpoint_every", "eval_every", "parallel_runs"), "data": ("workers",)}
STREAM_LABELED, STREAM_UNLABELED, STREAM_REAL = 0, 1, 2  # independent seeded draws (train/sampling.py)


@dataclass(frozen=True)
class TrainData:
    root: Path
    meta: DatasetMeta
    labeled: list[Sample]
    unlabeled: list[Sample]

    @classmethod
    def of_split(cls, root: Path, splits_root: Path, fraction: str | float | int) -> TrainData:
        """The prepared data set at `root` with the labeled/unlabeled lists of one split fraction."""
        split = split_folder(splits_root, fraction)
        return cls(root, read_meta(root), read_list(split / "labeled.txt"), read_list(split / "unlabeled.txt"))


@dataclass(frozen=True)
class TrainSummary:
    checkpoint: Path
    resumed_from: int  # 0 for a fresh run
    steps_run: int
    seconds: float
    images_per_second: float  # images of the whole batch (all streams), all processes together
    last_losses: dict[str, float]
    compiled: bool = False  # runtime.compile asked for it and compiling succeeded


def identity(cfg: RunConfig, data: TrainData, init: Path | None) -> dict:
    """What a run computes from what: its configuration without the execution-only settings, its training code,
    its data (the prepared set's content fingerprint and its split) and its initial weights."""
    doc = to_dict(cfg)
    for section, keys in EXECUTION_ONLY.items():
        doc[section] = {k: v for k, v in doc[section].items() if k not in keys}
    return {"config": doc, "code": fingerprint(TRAINING_CODE), "data": data.meta.fingerprint,
            "labeled": samples_digest(data.labeled), "unlabeled": samples_digest(data.unlabeled),
            "init": None if init is None else file_digest(init)}


def resumable_state(path: str | Path, cfg: RunConfig, data: TrainData, init: Path | None) -> dict | None:
    """The checkpoint at ``path`` if it is one of this run (``identity``), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    state = ckpt.load(path)
    return state if state.get("identity") == identity(cfg, data, init) else None


def resume_step(path: str | Path, cfg: RunConfig, data: TrainData, init: Path | None) -> int:
    """The step a run of ``cfg`` resumes from: that of a checkpoint of the same run, else 0."""
    state = resumable_state(path, cfg, data, init)
    return 0 if state is None else int(state["step"])


def _mean_losses(parts: dict[str, Tensor]) -> dict[str, float]:
    """The loss components as numbers: one host synchronisation; under a split, the whole batch's values."""
    values = torch.stack([v.float() for v in parts.values()])
    split = SplitBatch.current()
    if split is not None:  # each process holds its share of a batch mean (losses.SplitBatch): their mean is it
        values = split.sum(values) / split.world
    return dict(zip(parts, values.tolist(), strict=True))


def _streams(cfg: RunConfig, data: TrainData, start: int, pin: bool, rank: int, world: int) -> Iterator[tuple]:
    """Per step: (labeled images, masks), unlabeled images or None, the discriminator's own (images, masks) or
    None. Each stream is a seeded, resumable draw of its own (``train/sampling.py``)."""
    o, transform = cfg.optim, train_transform(cfg.data)

    def stream(samples: list[Sample], number: int, with_mask: bool = True) -> Iterator:
        dataset = SegmentationDataset(data.root, samples, transform, with_mask=with_mask)
        return iter(stream_loader(dataset, o.batch_size, o.seed, number, start, o.iterations, cfg.data.workers,
                                  pin, rank, world))

    pool = data.unlabeled
    if not pool and cfg.data.full_unlabeled == "labeled":
        pool = data.labeled  # Mittal et al.'s full-data s4GAN: every image in both streams
    elif not pool and cfg.data.full_unlabeled is None and uses_unlabeled(cfg):
        raise ValueError("the split has no unlabeled image but the run is not configured as a full split "
                         "(data.full_unlabeled); check the split lists")
    unlabeled = stream(pool, STREAM_UNLABELED, with_mask=False) if pool and uses_unlabeled(cfg) else None
    real = None
    if cfg.discriminator is not None and cfg.discriminator.real == "separate":
        real = stream(data.labeled, STREAM_REAL)
    for img, mask, _ in stream(data.labeled, STREAM_LABELED):
        yield (img, mask), (next(unlabeled)[0] if unlabeled else None), (next(real)[:2] if real else None)


def train(cfg: RunConfig, checkpoint: str | Path, data: TrainData, init: Path | None = None,
          log: Logger | None = None, validate: Validator | None = None, name: str = "run") -> TrainSummary:
    """Train (or resume, or find finished) the run of ``cfg`` into ``checkpoint``, starting from ``init``.

    ``log`` receives the loss components every ``runtime.log_every`` steps and the validation metrics of
    ``validate`` every ``runtime.eval_every`` steps (not at the last: the caller evaluates the finished run).
    """
    path = Path(checkpoint)
    procs = distributed.current()
    rank, world = procs.rank, procs.world
    device = resolve_device(cfg.runtime.device)
    speed = StepSpeed.from_config(cfg.runtime, device)  # bf16, channels-last, cuDNN autotuning, fused: on CUDA
    torch.manual_seed(cfg.optim.seed)
    num_classes = data.meta.num_classes
    model, disc = build_networks(cfg, num_classes)
    if init is not None:
        load_init(model, init, latent_from_semantic=cfg.latent is not None and cfg.latent.target == "semantic_kl")
    groups = None
    if cfg.latent is not None and cfg.latent.target == "manual":
        groups = group_index(data.meta.classes, cfg.latent.groups)
    step_module = SegmentationStep(cfg, model, disc, num_classes, len(data.labeled), groups).to(device)
    speed.prepare(step_module)
    sgd, adam = make_optimizers(cfg, model, disc, fused=speed.fused_optim)

    state = resumable_state(path, cfg, data, init)
    start = 0 if state is None else int(state["step"])
    if state is not None:
        step_module.load_state_dict(state["step_module"])
        sgd.load_state_dict(state["sgd"])
        if adam is not None:
            adam.load_state_dict(state["adam"])
        torch.set_rng_state(state["rng"])
    total = cfg.optim.iterations
    if world > 1:  # DDP over the segmentation network; the discriminator's gradients: step.average_gradients
        if not cfg.model.freeze_bn_stats:  # batch statistics of the whole batch, as on one process
            step_module.model = nn.SyncBatchNorm.convert_sync_batchnorm(step_module.model)
        # DDP copies rank 0's weights and buffers to every rank once, here. It need not re-send the buffers
        # each forward (broadcast_buffers): frozen batch-norm statistics never change, and SyncBatchNorm
        # updates them identically on every rank. Gradients live in DDP's buckets (no copy in and out).
        step_module.model = nn.parallel.DistributedDataParallel(
            step_module.model, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False, gradient_as_bucket_view=True,
            find_unused_parameters=cfg.model.aspp_branches < 4)
        if disc is not None:  # not wrapped in DDP: start every rank from rank 0's discriminator
            for p in disc.parameters():
                dist.broadcast(p.data, 0)
    eager = step_module.model
    if speed.compile:  # the segmentation network only: the losses and discriminator are small beside it
        step_module.model = torch.compile(step_module.model)

    def to_dev(x: Tensor | None) -> Tensor | None:
        return None if x is None else speed.to_device(x, device)

    autocast = speed.autocast(device)
    step_module.train()
    batches = _streams(cfg, data, start, device.type == "cuda", rank, world)
    first = next(batches, None)  # (None once the run is finished)
    images_per_step = cfg.optim.batch_size * (1 + sum(x is not None for x in first[1:])) if first else 0
    progress = Progress(name, start, total, images_per_step)
    last, compiled = {}, speed.compile
    for step, ((img, mask), unl, real) in enumerate(_chain(first, batches), start):
        batch = Batch(to_dev(img), to_dev(mask), to_dev(unl), *(map(to_dev, real) if real else (None, None)))
        update = functools.partial(one_update, step_module, batch, step, sgd, adam, autocast)
        if speed.compile and step == start:  # torch.compile compiles here; eager if that fails
            parts, compiled = first_step_with_fallback(step_module, "model", eager, update)
        else:
            parts = update()
        done = step + 1
        if done % cfg.runtime.log_every == 0 or done == total:
            last = _mean_losses(parts)  # the only host synchronisation (every process takes part)
            last["lr"] = sgd.param_groups[0]["lr"]
            if rank == 0:
                progress.report(done, last)
                if log is not None:
                    log(last, done)
        if rank == 0 and (done == total or done % cfg.runtime.checkpoint_every == 0):
            _save(path, cfg, identity(cfg, data, init), step_module, sgd, adam, done)
        if validate is not None and rank == 0 and cfg.runtime.eval_every and done % cfg.runtime.eval_every == 0 \
                and done != total:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # training's draws stay
                metrics = validate(_unwrap(step_module.model))
            step_module.train()
            if log is not None:
                log({f"val/{k}": v for k, v in metrics.items()}, done)
    seconds = time.perf_counter() - progress.t0
    images = (total - start) * images_per_step
    return TrainSummary(path, start, total - start, seconds, images / seconds if seconds > 0 else 0.0, last,
                        compiled)


def _chain(first: tuple | None, rest: Iterator[tuple]) -> Iterator[tuple]:
    if first is not None:
        yield first
        yield from rest


def _unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return getattr(module, "module", module)  # DistributedDataParallel


def _save(path: Path, cfg: RunConfig, ident: dict, step_module: SegmentationStep, sgd: torch.optim.Optimizer,
          adam: torch.optim.Optimizer | None, step: int) -> None:
    model = _unwrap(step_module.model)
    state = {k.replace("model._orig_mod.", "model.").replace("model.module.", "model."): v
             for k, v in step_module.state_dict().items()}
    doc = {
        "format": "latentseg-run", "config": to_dict(cfg), "identity": ident, "step": step,
        "step_module": state, "num_classes": step_module.num_classes,
        "num_latent": model.latent_head.conv2d_list[0].out_channels if model.latent_head is not None else None,
        "sgd": sgd.state_dict(), "adam": adam.state_dict() if adam is not None else None,
        "rng": torch.get_rng_state(),
    }
    atomic_torch_save(path, doc)


def load_trained(path: str | Path) -> tuple[DeepLabV2, RunConfig, dict]:
    """The trained segmentation network of a run checkpoint, its configuration and the raw checkpoint."""
    state = ckpt.load(path)
    if state.get("format") != "latentseg-run":
        raise ValueError(f"{path} is not a training checkpoint of latentseg")
    cfg = from_dict(RunConfig, state["config"])
    model = DeepLabV2(state["num_classes"], state["num_latent"], backbone=cfg.model.backbone,
                      aspp_branches=cfg.model.aspp_branches, freeze_bn_stats=cfg.model.freeze_bn_stats)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state["step_module"].items()
                           if k.startswith("model.")})
    return model, cfg, state

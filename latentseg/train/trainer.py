"""The training loop: data streams, the model and its initialisation, the update, logging, checkpoints.

``train(cfg, checkpoint, data)`` runs ``cfg.optim.iterations`` steps and leaves the ``checkpoint`` file holding
everything needed to resume or evaluate: weights, optimisers, the co-occurrence matrix, the step and random
states. A run killed part-way resumes from its last checkpoint when called again with the same configuration
(a checkpoint of a different configuration is never resumed: the run starts afresh).

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

from latentseg.config import RunConfig, from_dict, to_dict
from latentseg.data.classes import group_index
from latentseg.data.dataset import SegmentationDataset, train_transform
from latentseg.data.layout import DatasetMeta, Sample
from latentseg.losses import SplitBatch
from latentseg.models.checkpoints import load_initialisation
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.discriminator import Discriminator
from latentseg.train import checkpoint as ckpt
from latentseg.train import distributed
from latentseg.train.runtime import StepSpeed, first_step_with_fallback
from latentseg.train.sampling import stream_loader
from latentseg.train.step import (
    Batch,
    SegmentationStep,
    latent_outputs,
    make_optimizers,
    method_needs_unlabeled,
    one_update,
)

Logger = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class TrainData:
    root: Path
    meta: DatasetMeta
    labeled: list[Sample]
    unlabeled: list[Sample]


@dataclass(frozen=True)
class TrainSummary:
    checkpoint: Path
    resumed_from: int  # 0 for a fresh run
    steps_run: int
    seconds: float
    images_per_second: float  # labeled + unlabeled images of the whole batch, all processes together
    last_losses: dict[str, float]
    compiled: bool = False  # runtime.compile asked for it and compiling succeeded


def resolve_device(name: str) -> torch.device:
    """``runtime.device``; "cuda" is this process's GPU (the current device: ``distributed.init_from_env``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if name == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def build_networks(cfg: RunConfig, num_classes: int) -> tuple[DeepLabV2, Discriminator | None]:
    model = DeepLabV2(num_classes, latent_outputs(cfg, num_classes), backbone=cfg.model.backbone,
                      aspp_branches=cfg.model.aspp_branches, freeze_bn_stats=cfg.model.freeze_bn_stats)
    needs_d = cfg.loss.adversarial != "none" or cfg.self_training.enabled
    disc = Discriminator(num_classes, cfg.model.discriminator_width) if needs_d else None
    return model, disc


def initialise(model: DeepLabV2, cfg: RunConfig) -> list[str]:
    """Load ``cfg.init_weights`` (format told by the file: ours, or a published layout named by ``init``)."""
    if cfg.init == "none" or not cfg.init_weights:
        return []
    state = ckpt.load(cfg.init_weights)
    if state.get("format") == "latentseg-init":
        return load_initialisation(model, state["model"], "latentseg")
    source = "deeplab_coco" if cfg.init == "coco" else "torchvision_resnet"
    try:
        return load_initialisation(model, state, source)
    except KeyError as err:
        raise KeyError(f"{cfg.init_weights}: {err.args[0]}") from err


def resumable_state(path: str | Path, cfg: RunConfig) -> dict | None:
    """The checkpoint at ``path`` if it is one of a run of ``cfg`` (the same configuration), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    state = ckpt.load(path)
    return state if state.get("config") == to_dict(cfg) else None


def resume_step(path: str | Path, cfg: RunConfig) -> int:
    """The step a run of ``cfg`` resumes from: that of a checkpoint of the same configuration, else 0."""
    state = resumable_state(path, cfg)
    return 0 if state is None else int(state["step"])


def _mean_losses(parts: dict[str, Tensor]) -> dict[str, float]:
    """The loss components as numbers: one host synchronisation; under a split, the whole batch's values."""
    values = torch.stack([v.float() for v in parts.values()])
    split = SplitBatch.current()
    if split is not None:  # each process holds its share of a batch mean (losses.SplitBatch): their mean is it
        values = split.sum(values) / split.world
    return dict(zip(parts, values.tolist(), strict=True))


def train(cfg: RunConfig, checkpoint: str | Path, data: TrainData, log: Logger | None = None) -> TrainSummary:
    path = Path(checkpoint)
    procs = distributed.current()
    rank, world = procs.rank, procs.world
    device = resolve_device(cfg.runtime.device)
    speed = StepSpeed.from_config(cfg.runtime, device)  # bf16, channels-last, cuDNN autotuning, fused: on CUDA
    torch.manual_seed(cfg.optim.seed)
    num_classes = data.meta.num_classes
    model, disc = build_networks(cfg, num_classes)
    initialise(model, cfg)
    groups = group_index(data.meta.classes, cfg.latent.groups) if cfg.latent.target == "manual" else None
    step_module = SegmentationStep(cfg, model, disc, num_classes, len(data.labeled), groups).to(device)
    speed.prepare(step_module)
    sgd, adam = make_optimizers(cfg, model, disc, fused=speed.fused_optim)

    state = resumable_state(path, cfg)
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

    pin = device.type == "cuda"
    labeled = SegmentationDataset(data.root, data.labeled, train_transform(cfg.data))
    lab_loader = stream_loader(labeled, cfg.optim.batch_size, cfg.optim.seed, 0, start, total,
                               cfg.data.workers, pin, rank, world)
    unl_iter = None
    if method_needs_unlabeled(cfg):
        # A "full" split leaves no unlabeled image: the unlabeled terms then see the labeled images unlabeled.
        pool = data.unlabeled or data.labeled
        unlabeled = SegmentationDataset(data.root, pool, train_transform(cfg.data), with_mask=False)
        unl_iter = iter(stream_loader(unlabeled, cfg.optim.batch_size, cfg.optim.seed, 1, start, total,
                                      cfg.data.workers, pin, rank, world))
    autocast = speed.autocast(device)

    def to_dev(x: torch.Tensor) -> torch.Tensor:
        return speed.to_device(x, device)

    step_module.train()
    t0, last, compiled = time.perf_counter(), {}, speed.compile
    for step, (img, mask, _) in enumerate(lab_loader, start):
        unl = to_dev(next(unl_iter)[0]) if unl_iter is not None else None
        update = functools.partial(one_update, step_module, Batch(to_dev(img), to_dev(mask), unl), step, sgd, adam,
                                   autocast)
        if speed.compile and step == start:  # torch.compile compiles here; eager if that fails
            parts, compiled = first_step_with_fallback(step_module, "model", eager, update)
        else:
            parts = update()
        done = step + 1
        if done % cfg.runtime.log_every == 0 or done == total:
            last = _mean_losses(parts)  # the only host synchronisation (every process takes part)
            last["lr"] = sgd.param_groups[0]["lr"]
            if log is not None and rank == 0:
                log(last, done)
        if rank == 0 and (done == total or done % cfg.runtime.checkpoint_every == 0):
            _save(path, cfg, step_module, sgd, adam, done)
    seconds = time.perf_counter() - t0
    images = (total - start) * cfg.optim.batch_size * (2 if unl_iter is not None else 1)
    return TrainSummary(path, start, total - start, seconds, images / seconds if seconds > 0 else 0.0, last,
                        compiled)


def _unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return getattr(module, "module", module)  # DistributedDataParallel


def _save(path: Path, cfg: RunConfig, step_module: SegmentationStep, sgd: torch.optim.Optimizer,
          adam: torch.optim.Optimizer | None, step: int) -> None:
    model = _unwrap(step_module.model)
    state = {k.replace("model._orig_mod.", "model.").replace("model.module.", "model."): v
             for k, v in step_module.state_dict().items()}
    ckpt.save_atomic({
        "format": "latentseg-run", "config": to_dict(cfg), "step": step, "step_module": state,
        "num_classes": step_module.num_classes,
        "num_latent": model.latent_head.conv2d_list[0].out_channels if model.latent_head is not None else None,
        "sgd": sgd.state_dict(), "adam": adam.state_dict() if adam is not None else None,
        "rng": torch.get_rng_state(),
    }, path)


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

"""The training loop: data streams, the model and its initialisation, the update, logging, checkpoints.

``train(cfg, checkpoint, data)`` runs ``cfg.optim.iterations`` steps and leaves the ``checkpoint`` file holding
everything needed to resume or evaluate: weights, optimisers, the co-occurrence matrix, the step and random
states. A run killed part-way resumes from its last checkpoint when called again with the same configuration
(a checkpoint of a different configuration is never resumed: the run starts afresh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from latentseg.config import RunConfig, from_dict, to_dict
from latentseg.data.classes import group_index
from latentseg.data.dataset import SegmentationDataset, train_transform
from latentseg.data.layout import DatasetMeta, Sample
from latentseg.models.checkpoints import load_initialisation
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.discriminator import Discriminator
from latentseg.train import checkpoint as ckpt
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
    images_per_second: float
    last_losses: dict[str, float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
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


def resume_step(path: str | Path, cfg: RunConfig) -> int:
    """The step a run of ``cfg`` resumes from: that of a checkpoint of the same configuration, else 0."""
    path = Path(path)
    if not path.is_file():
        return 0
    state = ckpt.load(path)
    return int(state["step"]) if state.get("config") == to_dict(cfg) else 0


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(cfg: RunConfig, checkpoint: str | Path, data: TrainData, log: Logger | None = None) -> TrainSummary:
    path = Path(checkpoint)
    rank, world = _dist_info()
    device = resolve_device(cfg.runtime.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.optim.seed)
    num_classes = data.meta.num_classes
    model, disc = build_networks(cfg, num_classes)
    initialise(model, cfg)
    groups = group_index(data.meta.classes, cfg.latent.groups) if cfg.latent.target == "manual" else None
    step_module = SegmentationStep(cfg, model, disc, num_classes, len(data.labeled), groups).to(device)
    if device.type == "cuda" and cfg.runtime.channels_last:
        step_module.to(memory_format=torch.channels_last)
    sgd, adam = make_optimizers(cfg, model, disc, fused=device.type == "cuda")

    start = resume_step(path, cfg)
    if start > 0:  # loads the file a second time; negligible beside a training run
        state = ckpt.load(path)
        step_module.load_state_dict(state["step_module"])
        sgd.load_state_dict(state["sgd"])
        if adam is not None:
            adam.load_state_dict(state["adam"])
        torch.set_rng_state(state["rng"])
    total = cfg.optim.iterations
    if world > 1:  # DDP over the segmentation network; the discriminator's gradients are averaged by hand
        if not cfg.model.freeze_bn_stats:
            step_module.model = nn.SyncBatchNorm.convert_sync_batchnorm(step_module.model)
        step_module.model = nn.parallel.DistributedDataParallel(
            step_module.model, find_unused_parameters=cfg.model.aspp_branches < 4)
    if cfg.runtime.compile and device.type == "cuda":
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
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if device.type == "cuda" and cfg.runtime.amp else None)
    fmt = torch.channels_last if device.type == "cuda" and cfg.runtime.channels_last else torch.contiguous_format

    def to_dev(x: torch.Tensor) -> torch.Tensor:
        return x.to(device, non_blocking=True, memory_format=fmt) if x.ndim == 4 else x.to(device, non_blocking=True)

    step_module.train()
    t0, last = time.perf_counter(), {}
    for step, (img, mask, _) in enumerate(lab_loader, start):
        unl = to_dev(next(unl_iter)[0]) if unl_iter is not None else None
        parts = one_update(step_module, Batch(to_dev(img), to_dev(mask), unl), step, sgd, adam, autocast)
        if adam is not None and world > 1:
            for p in disc.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
        done = step + 1
        if done % cfg.runtime.log_every == 0 or done == total:
            last = {k: float(v) for k, v in parts.items()}  # the only host synchronisation
            last["lr"] = sgd.param_groups[0]["lr"]
            if log is not None and rank == 0:
                log(last, done)
        if rank == 0 and (done == total or done % cfg.runtime.checkpoint_every == 0):
            _save(path, cfg, step_module, sgd, adam, done)
    seconds = time.perf_counter() - t0
    images = (total - start) * cfg.optim.batch_size * world * (2 if unl_iter is not None else 1)
    return TrainSummary(path, start, total - start, seconds, images / seconds if seconds > 0 else 0.0, last)


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

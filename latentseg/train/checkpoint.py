"""A run's checkpoint: written by the trainer (weights, optimisers, the method's state such as eq. (7)'s
co-occurrence matrix, step, random state), read back to resume, to evaluate, to predict, to draw Figure 1.

Written atomically and byte-reproducibly (``files.atomic_torch_save``); read through the project's one reader of
torch files (``files.read_torch``: ``weights_only``, so a checkpoint from a shared ``runs/`` or ``dvc pull`` runs
no code). The one place that builds a network from a run checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from latentseg.config import RunConfig, to_dict
from latentseg.methods import run_config
from latentseg.models.deeplab import DeepLabV2
from latentseg.util.files import UnreadableFile, atomic_torch_save, read_torch

if TYPE_CHECKING:
    from latentseg.train.step import Networks

RUN_FORMAT = "latentseg-run"
COOCCURRENCE_KEY = "objective.cooccurrence.matrix"  # eq. (7)'s M in a checkpoint's "networks" state


def unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return getattr(module, "module", module)  # DistributedDataParallel


def save_run(path: Path, cfg: RunConfig, ident: dict, nets: Networks, sgd: torch.optim.Optimizer,
             adam: torch.optim.Optimizer | None, step: int) -> None:
    model = unwrap(nets.model)
    state = {k.replace("model._orig_mod.", "model.").replace("model.module.", "model."): v
             for k, v in nets.state_dict().items()}
    doc = {
        "format": RUN_FORMAT, "config": to_dict(cfg), "identity": ident, "step": step,
        "networks": state, "num_classes": nets.num_classes,
        "num_latent": model.latent_head.conv2d_list[0].out_channels if model.latent_head is not None else None,
        "sgd": sgd.state_dict(), "adam": adam.state_dict() if adam is not None else None,
        "rng": torch.get_rng_state(),
    }
    atomic_torch_save(path, doc)


def load(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as saved (a mapping), or one line saying why it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; run the training stage that writes it")
    state = read_torch(path, "a run checkpoint", "delete it and re-run its training stage")
    if not isinstance(state, dict):
        raise UnreadableFile(f"{path}: not a run checkpoint (it holds a {type(state).__name__}, not a mapping); "
                             "delete it and re-run its training stage")
    return state


def model_from_state(state: dict[str, Any]) -> tuple[DeepLabV2, RunConfig]:
    """The segmentation network and configuration of a loaded run checkpoint."""
    cfg = run_config(state["config"])
    model = DeepLabV2(state["num_classes"], state["num_latent"], backbone=cfg.model.backbone,
                      aspp_branches=cfg.model.aspp_branches, freeze_bn_stats=cfg.model.freeze_bn_stats)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state["networks"].items()
                           if k.startswith("model.")})
    return model, cfg


def cooccurrence(state: dict[str, Any]) -> Tensor | None:
    """The run's co-occurrence matrix M (C, k) of eq. (7), or None for a run without one."""
    return state["networks"].get(COOCCURRENCE_KEY)


def load_trained(path: str | Path) -> tuple[DeepLabV2, RunConfig, dict]:
    """The trained segmentation network of a run checkpoint, its configuration and the raw checkpoint."""
    state = load(path)
    if state.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint of latentseg")
    model, cfg = model_from_state(state)
    return model, cfg, state

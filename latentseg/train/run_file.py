"""Writing a run's checkpoint: weights, optimisers, the method's state, step and random state, atomically and
byte-reproducibly (``files.atomic_torch_save``); ``latentseg/trained.py`` reads it back."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from latentseg.config import RunConfig, to_dict
from latentseg.files import atomic_torch_save
from latentseg.train.step import Networks
from latentseg.trained import RUN_FORMAT


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

"""A trained run's checkpoint, read back: its segmentation network, its configuration, its P(l|c).

The one place that builds a network from a run checkpoint (``train/trainer.py`` writes them): the training
stage's evaluation, the classifier stage, ``predict``, COCO pretraining and Figure 1 all load through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from latentseg.config import RunConfig
from latentseg.methods import run_config
from latentseg.models.deeplab import DeepLabV2
from latentseg.train import checkpoint as ckpt

RUN_FORMAT = "latentseg-run"
COOCCURRENCE_KEY = "objective.cooccurrence.matrix"  # eq. (7)'s M in a checkpoint's "networks" state


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
    state = ckpt.load(path)
    if state.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint of latentseg")
    model, cfg = model_from_state(state)
    return model, cfg, state

"""A tiny run checkpoint written as the trainer writes one (``train/trainer.py: _save``), without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latentseg.config import RunConfig, to_dict
from latentseg.models.deeplab import DeepLabV2
from latentseg.train.step import Networks, build_networks, build_objective, make_optimizers
from tests.helpers import tiny_config

VOC_PAD = 64  # a tiny stand-in for VOC's 505x505 evaluation padding


def voc_config(**overrides: Any) -> RunConfig:
    return tiny_config("1/8", data={"eval_pad": VOC_PAD}, **overrides)


def cityscapes_config() -> RunConfig:
    return tiny_config("1/8", dataset="cityscapes", data={"resize": [24, 48]})  # evaluated resized, unpadded


def save_tiny_run(path: Path, cfg: RunConfig, num_classes: int, seed: int = 0,
                  identity: dict | None = None) -> DeepLabV2:
    """Random weights (background disfavoured, so that other classes show), a random co-occurrence matrix M and
    the optimisers' states, under the trainer's keys; returns the network in eval mode."""
    torch.manual_seed(seed)
    model, disc = build_networks(cfg, num_classes)
    with torch.no_grad():
        for conv in model.semantic_head.conv2d_list:
            conv.bias.normal_(0.0, 0.5)
        model.semantic_head.conv2d_list[0].bias[0] -= 5.0
    step = Networks(cfg, model, disc, build_objective(cfg, [f"class{i}" for i in range(num_classes)], 10))
    if getattr(step.objective, "cooccurrence", None) is not None:
        step.objective.cooccurrence.matrix.copy_(torch.rand_like(step.objective.cooccurrence.matrix))
    sgd, adam = make_optimizers(cfg, model, disc)
    doc = {
        "format": "latentseg-run", "config": to_dict(cfg), "identity": identity or {"data": "d", "labeled": "l"},
        "step": 6, "networks": step.state_dict(), "num_classes": num_classes,
        "num_latent": model.latent_head.conv2d_list[0].out_channels if model.latent_head is not None else None,
        "sgd": sgd.state_dict(), "adam": adam.state_dict() if adam is not None else None,
        "rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(doc, path)
    return model.eval()

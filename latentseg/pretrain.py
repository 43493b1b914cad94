"""Pretraining the segmentation network on a fully labeled data set, and exporting it as initial weights.

This is how the paper's COCO initialisation is made (DeepLab-v2 trained on MS-COCO's 20 VOC categories + background
from ImageNet weights): a cross-entropy-only run of the same trainer, whose trunk and semantic head are then saved in
the initial-weights format that ``trainer.initialise`` loads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from latentseg.config import LossConfig, RunConfig, SelfTrainingConfig
from latentseg.train import checkpoint as ckpt
from latentseg.train.trainer import Logger, TrainData, load_trained, train

INIT_FORMAT = "latentseg-init"


def pretraining_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every term but the cross-entropy off (no latent branch, no discriminator)."""
    return replace(cfg, loss=LossConfig(latent=False, consistency=False, adversarial="none"),
                   self_training=SelfTrainingConfig(enabled=False))


def export_init(run_checkpoint: str | Path, out: str | Path, classes: list[str]) -> None:
    """Save the trunk and semantic head of a finished run as initial weights (``format: latentseg-init``)."""
    model, cfg, _ = load_trained(run_checkpoint)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("latent_head.")}
    ckpt.save_atomic({"format": INIT_FORMAT, "model": state, "classes": classes, "backbone": cfg.model.backbone},
                     out)


def pretrain(cfg: RunConfig, data: TrainData, work_checkpoint: str | Path, out: str | Path,
             log: Logger | None = None) -> Path:
    """Train ``cfg`` with cross-entropy only on ``data`` (resumable through ``work_checkpoint``), export to ``out``."""
    train(pretraining_config(cfg), work_checkpoint, data, log)
    export_init(work_checkpoint, out, data.meta.classes)
    return Path(out)

"""Mittal et al.'s image-level classifier (their "MLMT" branch), used for Table 1's "Proposed + Classifier".

A ResNet trunk with global average pooling and one sigmoid output per class, trained with binary cross-entropy on
the labeled images (a class is present if any of its pixels is) and a mean-teacher consistency on the unlabeled
images: the student's probabilities on one augmentation follow those of an exponential moving average of the
student (the teacher) on another. At inference, classes the classifier rejects are removed from the segmentation
(``evaluate.filter_by_classifier``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentseg.config import ClassifierConfig, DataConfig
from latentseg.data.dataset import SegmentationDataset, train_transform
from latentseg.data.layout import Sample
from latentseg.models.resnet import build_backbone
from latentseg.train import checkpoint as ckpt
from latentseg.train.sampling import stream_loader
from latentseg.train.step import poly_lr


class ImageClassifier(nn.Module):
    def __init__(self, num_classes: int, backbone: str = "resnet101") -> None:
        super().__init__()
        self.backbone = build_backbone(backbone)  # same trunk and names: the same initial weights load
        self.fc = nn.Linear(self.backbone.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, C)``; sigmoid gives the probability that each class is in the image."""
        return self.fc(self.backbone(x).mean((2, 3)))


def presence(mask: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(N, H, W) masks -> (N, C) multi-hot labels of the classes present."""
    onehot = torch.zeros(mask.shape[0], num_classes + 1, device=mask.device)
    flat = torch.where(mask == ignore_index, num_classes, mask).flatten(1).long()
    return onehot.scatter_(1, flat, 1.0)[:, :num_classes]


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


def train_classifier(cfg: ClassifierConfig, root: Path, labeled: list[Sample], unlabeled: list[Sample],
                     num_classes: int, device: torch.device, seed: int, init: dict[str, Tensor] | None = None,
                     log: Callable[[dict[str, float], int], None] | None = None) -> ImageClassifier:
    torch.manual_seed(seed)
    student = ImageClassifier(num_classes, cfg.backbone)
    if init is not None:
        student.backbone.load_state_dict(init, strict=True)
    student.to(device).train()
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    aug = train_transform(DataConfig(crop_size=(cfg.input_size, cfg.input_size)))
    params = [p for p in student.parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    lab = iter(stream_loader(SegmentationDataset(root, labeled, aug), cfg.batch_size, seed, 2, 0, cfg.iterations,
                             0, False))
    pool = unlabeled or labeled  # a "full" split has no unlabeled images: the teacher then sees labeled ones
    unl = iter(stream_loader(SegmentationDataset(root, pool, aug, with_mask=False), cfg.batch_size, seed, 3, 0,
                             cfg.iterations, 0, False))
    for step in range(cfg.iterations):
        for group in optim.param_groups:
            group["lr"] = poly_lr(cfg.lr, step, cfg.iterations, 0.9)
        img, mask, _ = next(lab)
        # two views of the same unlabeled images: mirrored, each with its own noise (image labels survive both)
        u = next(unl)[0].to(device)
        u1 = u + 8.0 * torch.randn_like(u)
        u2 = torch.flip(u, dims=[3]) + 8.0 * torch.randn_like(u)
        img, mask = img.to(device), mask.to(device)
        bce = F.binary_cross_entropy_with_logits(student(img), presence(mask, num_classes))
        with torch.no_grad():
            target = torch.sigmoid(teacher(u2))
        cons = F.mse_loss(torch.sigmoid(student(u1)), target)
        loss = bce + cfg.lambda_cons * cons
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        ema_update(teacher, student, cfg.ema)
        if log is not None and ((step + 1) % 10 == 0 or step + 1 == cfg.iterations):
            log({"bce": float(bce), "cons": float(cons)}, step + 1)
    return teacher  # the mean teacher is the better classifier (Tarvainen & Valpola)


def save_classifier(model: ImageClassifier, path: str | Path, cfg: ClassifierConfig) -> None:
    ckpt.save_atomic({"format": "latentseg-classifier", "config": cfg.__dict__, "model": model.state_dict(),
                      "num_classes": model.fc.out_features}, path)


def load_classifier(path: str | Path) -> ImageClassifier:
    state = ckpt.load(path)
    model = ImageClassifier(state["num_classes"], state["config"]["backbone"])
    model.load_state_dict(state["model"])
    return model

"""Mittal et al.'s image-level classifier (their "MLMT" branch), used for Table 1's "Proposed + Classifier".

A ResNet trunk with global average pooling and one sigmoid output per class, trained with binary cross-entropy on
the labeled images (a class is present if any of its pixels is) and a mean-teacher consistency on the unlabeled
images: the student's probabilities on one augmentation follow those of an exponential moving average of the
student (the teacher) on another. At inference, classes the classifier rejects are removed from the segmentation
(``evaluate.filter_by_classifier``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentseg.closure import fingerprint
from latentseg.config import ClassifierConfig, DataConfig, to_dict
from latentseg.data.augment import train_transform
from latentseg.data.dataset import SegmentationDataset
from latentseg.data.layout import Sample, TrainData, samples_digest
from latentseg.files import atomic_torch_save, file_digest
from latentseg.models.resnet import build_backbone
from latentseg.progress import Progress
from latentseg.train import checkpoint as ckpt
from latentseg.train.sampling import stream_loader
from latentseg.train.step import poly_lr
from latentseg.train.streams import STREAM_LABELED, STREAM_UNLABELED


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


def train_classifier(cfg: ClassifierConfig, data_cfg: DataConfig, data: TrainData, device: torch.device, seed: int,
                     init: dict[str, Tensor] | None = None, log_every: int = 50) -> ImageClassifier:
    """Train the student on ``data``'s labeled images (BCE on the classes present) and its mean teacher on the
    unlabeled ones; returns the teacher. Augmentation: the run's (``data_cfg``) at ``input_size`` crops."""
    torch.manual_seed(seed)
    num_classes = data.meta.num_classes
    student = ImageClassifier(num_classes, cfg.backbone)
    if init is not None:
        student.backbone.load_state_dict(init, strict=True)
    student.to(device).train()
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    aug = train_transform(replace(data_cfg, crop_size=(cfg.input_size, cfg.input_size)))
    params = [p for p in student.parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def stream(samples: list[Sample], number: int, with_mask: bool) -> Iterator:
        dataset = SegmentationDataset(data.root, samples, aug, with_mask=with_mask)
        return iter(stream_loader(dataset, cfg.batch_size, seed, number, 0, cfg.iterations, 0, False))

    lab = stream(data.labeled, STREAM_LABELED, True)
    unl = stream(data.unlabeled or data.labeled, STREAM_UNLABELED, False)  # full split: the labeled ones
    progress = Progress(f"classifier seed-{seed}", 0, cfg.iterations, 2 * cfg.batch_size)
    for step in range(cfg.iterations):
        for group in optim.param_groups:
            group["lr"] = poly_lr(cfg.lr, step, cfg.iterations, cfg.power)
        img, mask, _ = next(lab)
        # two views of the same unlabeled images: mirrored, each with its own noise (image labels survive both)
        u = next(unl)[0].to(device)
        u1 = u + cfg.noise * torch.randn_like(u)
        u2 = torch.flip(u, dims=[3]) + cfg.noise * torch.randn_like(u)
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
        if (step + 1) % log_every == 0 or step + 1 == cfg.iterations:
            progress.report(step + 1, {"bce": float(bce.detach()), "cons": float(cons.detach()),
                                        "lr": optim.param_groups[0]["lr"]})
    return teacher  # the mean teacher is the better classifier (Tarvainen & Valpola)


def classifier_identity(cfg: ClassifierConfig, data_cfg: DataConfig, data: TrainData, seed: int,
                        init: Path | None) -> dict:
    """What a classifier is trained from: settings, seed, code, data and split, initial weights."""
    return {"config": to_dict(cfg), "data_config": to_dict(data_cfg), "seed": seed,
            "code": fingerprint("latentseg.classifier"), "data": data.meta.fingerprint,
            "labeled": samples_digest(data.labeled), "unlabeled": samples_digest(data.unlabeled),
            "init": None if init is None else file_digest(init)}


def save_classifier(model: ImageClassifier, path: str | Path, identity: dict) -> None:
    doc = {"format": "latentseg-classifier", "identity": identity, "backbone": identity["config"]["backbone"],
           "model": model.state_dict(), "num_classes": model.fc.out_features}
    atomic_torch_save(path, doc)


def load_classifier(path: str | Path, identity: dict | None = None) -> ImageClassifier | None:
    """The classifier saved at ``path``; with ``identity``, None unless it was trained from exactly that."""
    path = Path(path)
    if identity is not None and not path.is_file():
        return None
    state = ckpt.load(path)
    if identity is not None and state.get("identity") != identity:
        return None
    model = ImageClassifier(state["num_classes"], state["backbone"])
    model.load_state_dict(state["model"])
    return model

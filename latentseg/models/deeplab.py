"""The two-branch segmentation network of section 3: one trunk, a semantic and a latent ASPP head.

The latent head is trained only through the latent loss (eq. 3) and is not used at inference.
Logits come out at the feature resolution; callers upsample bilinearly to the input size
(``upsample``), so that losses and evaluation decide the size they need.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentseg.models.aspp import ASPP
from latentseg.models.resnet import build_backbone


class SegOutput(NamedTuple):  # a tuple, so DistributedDataParallel can walk it
    semantic: Tensor  # (N, |C|, h, w) logits
    latent: Tensor | None  # (N, k, h, w) logits, None when the model has no latent head


class DeepLabV2(nn.Module):
    def __init__(self, num_classes: int, num_latent: int | None, backbone: str, aspp_branches: int,
                 freeze_bn_stats: bool, aspp_dilations: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.freeze_bn_stats = freeze_bn_stats
        self.backbone = build_backbone(backbone)
        channels = self.backbone.out_channels
        self.semantic_head = ASPP(channels, num_classes, aspp_dilations, aspp_branches)
        self.latent_head = (
            ASPP(channels, num_latent, aspp_dilations, aspp_branches) if num_latent else None
        )

    def train(self, mode: bool = True) -> DeepLabV2:
        """With ``freeze_bn_stats`` batch norm keeps its statistics (DeepLab-v2's Caffe ``use_global_stats``);
        without, the layers normalise with the batch's statistics and update the running ones, as AdvSemiSeg
        trains (``model.train()``). The affine parameters are frozen either way (``resnet.py``)."""
        super().train(mode)
        if self.freeze_bn_stats:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: Tensor, with_latent: bool = True, passes: list[int] | None = None,
                perturb: tuple[int, int, float] | None = None) -> SegOutput:
        """Logits of ``x``. ``passes`` (batch sizes summing to ``len(x)``) runs the trunk on each part of the batch
        in a pass of its own, so that batch statistics are each part's (a labeled and an unlabeled batch, as the
        reference codes run them), yet in one call: DistributedDataParallel expects one forward per backward.

        ``perturb = (start, stop, p)``: the semantic head also runs on ``Dropout2d(p)`` of the trunk's features of
        rows ``start:stop`` (``channel_dropout``, always active, as UniMatch's feature perturbation), appended after
        ``len(x)`` rows."""
        if passes is not None and len(passes) > 1:
            features = torch.cat([self.backbone(part) for part in x.split(passes)])
        else:
            features = self.backbone(x)
        latent = self.latent_head(features) if (with_latent and self.latent_head is not None) else None
        if perturb is not None:
            start, stop, p = perturb
            features = torch.cat([features, channel_dropout(features[start:stop], p)])
        return SegOutput(self.semantic_head(features), latent)

    def param_groups(self, lr: float, head_lr_mult: float) -> list[dict]:
        """SGD groups as in DeepLab-v2: the trunk at ``lr``, the ASPP heads at ``head_lr_mult * lr``."""
        trunk = [p for p in self.backbone.parameters() if p.requires_grad]
        heads = [p for n, p in self.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
        return [{"params": trunk, "lr": lr, "base_lr": lr},
                {"params": heads, "lr": lr * head_lr_mult, "base_lr": lr * head_lr_mult}]


def channel_dropout(x: Tensor, p: float) -> Tensor:
    """``Dropout2d(p)`` in training mode, its mask drawn from torch's CPU generator: a checkpoint saves that
    generator's state, so a resumed run draws the masks the uninterrupted one would. On CUDA the mask is copied
    from pinned memory, without waiting on the device."""
    keep = (torch.rand(x.shape[0], x.shape[1], 1, 1) >= p).float() * (1 / (1 - p) if p < 1 else 0.0)
    keep = keep.pin_memory().to(x.device, non_blocking=True) if x.device.type == "cuda" else keep.to(x.device)
    return x * keep.to(x.dtype)


def upsample(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling to the input size (``align_corners=True`` as in DeepLab-v2's code)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)


"""The fully convolutional discriminator of section 3.4 (as in Hung et al.)."""

from __future__ import annotations

import itertools

import torch.nn.functional as F
from torch import Tensor, nn


class Discriminator(nn.Module):
    """Five 4x4 stride-2 convolutions (64, 128, 256, 512, 1 channels), LeakyReLU 0.2 between them.

    Input: class-probability maps ``(N, |C|, H, W)``. Output: per-pixel logits of "this is a ground-truth
    map", upsampled bilinearly to ``(N, 1, H, W)``; sigmoid gives ``D(.)`` of eqs. (2) and (10).
    """

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        chans = [num_classes, width, width * 2, width * 4, width * 8]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in itertools.pairwise(chans))
        self.classifier = nn.Conv2d(chans[-1], 1, 4, stride=2, padding=1)

    def forward(self, prob: Tensor) -> Tensor:
        x = prob
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return F.interpolate(self.classifier(x), size=prob.shape[-2:], mode="bilinear", align_corners=True)

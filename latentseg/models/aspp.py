"""The DeepLab-v2 ASPP classifier: parallel dilated 3x3 convolutions whose outputs are summed."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling head of DeepLab-v2 (Chen et al., TPAMI 2017, section 3.3).

    ``summed_branches`` picks how many of the branches enter the sum. DeepLab-v2 sums all four (the default);
    Hung et al.'s AdvSemiSeg returns from inside its loop and so sums only the first two (dilations 6 and 12).
    All four convolutions always exist, so a checkpoint of either code loads strictly.
    """

    def __init__(self, in_channels: int, num_outputs: int, dilations: tuple[int, ...] = (6, 12, 18, 24),
                 summed_branches: int | None = None) -> None:
        super().__init__()
        self.summed_branches = len(dilations) if summed_branches is None else summed_branches
        if not 1 <= self.summed_branches <= len(dilations):
            raise ValueError(f"summed_branches must lie in 1..{len(dilations)}, got {summed_branches}")
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, num_outputs, 3, padding=d, dilation=d, bias=True) for d in dilations
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)  # DeepLab-v2's classifier initialisation
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([conv(x) for conv in self.conv2d_list[: self.summed_branches]]).sum(0)

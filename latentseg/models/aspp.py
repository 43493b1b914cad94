"""The DeepLab-v2 ASPP classifier: parallel dilated 3x3 convolutions whose outputs are summed."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling head of DeepLab-v2 (Chen et al., TPAMI 2017, section 3.3).

    ``summed_branches`` picks how many of the branches enter the sum. DeepLab-v2 sums all four; Hung et al.'s
    AdvSemiSeg (``model/deeplab.py``, ``Classifier_Module.forward``) returns from inside its loop and so sums
    only the first two (dilations 6 and 12). All four convolutions always exist, so a checkpoint of either code
    loads strictly.
    """

    def __init__(self, in_channels: int, num_outputs: int, dilations: tuple[int, ...], summed_branches: int) -> None:
        super().__init__()
        if not 1 <= summed_branches <= len(dilations):
            raise ValueError(f"summed_branches must lie in 1..{len(dilations)}, got {summed_branches}")
        self.summed_branches = summed_branches
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, num_outputs, 3, padding=d, dilation=d, bias=True) for d in dilations
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)  # DeepLab-v2's classifier initialisation
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = None
        for conv in self.conv2d_list[: self.summed_branches]:
            y = dilated_conv(x, conv)
            out = y if out is None else out + y
        return out


def dilated_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` for a 3x3 convolution padded by its dilation, computing only the taps that can see the input.

    A tap ``d`` pixels off centre reads only zero padding when ``d`` is at least the map's size along that axis;
    it adds exactly nothing, and its weights get exactly no gradient. Dropping such taps gives the same output
    and gradients (up to float rounding) at a fraction of the cost: on the demo's 6x6 maps every off-centre tap
    of dilations 6-24 is such a tap. At the paper's 41x41 maps none is, and this is the plain convolution.
    """
    dh, dw = conv.dilation
    h, w = x.shape[-2:]
    rows = slice(1, 2) if dh >= h else slice(0, 3)
    cols = slice(1, 2) if dw >= w else slice(0, 3)
    if rows == slice(0, 3) and cols == slice(0, 3):
        return conv(x)
    weight = conv.weight[:, :, rows, cols]
    padding = (0 if dh >= h else dh, 0 if dw >= w else dw)
    return F.conv2d(x, weight, conv.bias, padding=padding, dilation=(dh, dw))

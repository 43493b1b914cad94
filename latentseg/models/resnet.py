"""The DeepLab-v2 ResNet backbone (Chen et al., 2017) as Hung et al.'s AdvSemiSeg builds it.

Differences from torchvision's ResNet, all needed to load the COCO-pretrained DeepLab-v2 checkpoint and to
reproduce its features: the stride of a downsampling block sits on its first 1x1 convolution (caffe style);
the stem's max-pool uses ``ceil_mode=True``; layer3 and layer4 keep stride 1 and use dilation 2 and 4
(output stride 8); batch-norm affine parameters are frozen (the running statistics still update in
``train()`` mode, as in that code). Module names follow that layout: ``conv1, bn1, layer1..layer4``.
"""

from __future__ import annotations

from torch import Tensor, nn


def _frozen_bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    for p in bn.parameters():
        p.requires_grad_(False)
    return bn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)  # caffe: stride on the 1x1
        self.bn1 = _frozen_bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _frozen_bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _frozen_bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class DeepLabResNet(nn.Module):
    """ResNet trunk at output stride 8; ``forward`` returns the layer4 features ``(N, 4*width*8, H/8, W/8)``."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 23, 3), width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = _frozen_bn(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], dilation=2)
        self.layer4 = self._make_layer(width * 8, layers[3], dilation=4)
        self.out_channels = width * 8 * Bottleneck.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        # DeepLab-v2 gives the first block of a dilated layer a projection even at stride 1.
        if stride != 1 or self.inplanes != planes * 4 or dilation in (2, 4):
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), _frozen_bn(planes * 4)
            )
        blocks_ = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * 4
        blocks_ += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*blocks_)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


BACKBONES: dict[str, dict] = {
    "resnet101": {"layers": (3, 4, 23, 3), "width": 64},
    # A CPU-sized trunk of the same shape (output stride 8, same module names) for the demo profile.
    "tiny": {"layers": (1, 1, 1, 1), "width": 8},
}


def build_backbone(name: str) -> DeepLabResNet:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} (model.backbone)")
    return DeepLabResNet(**BACKBONES[name])

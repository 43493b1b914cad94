"""The published checkpoints' layouts, built at run time: never a file from the internet, always the key names.

- ``HungDeepLab``: a DeepLab-v2 written after Hung et al.'s AdvSemiSeg ``model/deeplab.py`` as METHOD.md describes
  it (module names ``conv1, bn1, layer1..layer4, layer5``; stride on a block's first 1x1 convolution; max-pool with
  ``ceil_mode``; layer3/layer4 dilated 2/4 with a projection on their first block; ``layer5`` an ASPP whose
  ``forward`` returns inside its loop, so only the first two of its four branches are summed). Its
  ``state_dict()`` is the key layout of ``resnet101COCO-41f33a49.pth``.
- ``hung_coco_state``: such a state dict, with random values, unprefixed (that file) or under ``Scale.`` (an
  older conversion of the same weights for another port);
- ``torchvision_resnet_state``: torchvision's ``resnet101``: the trunk's names unprefixed, plus ``fc``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentseg.models.deeplab import DeepLabV2


class HungBottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class HungClassifier(nn.Module):
    """``Classifier_Module``: four dilated 3x3 convolutions; its forward adds the second to the first and returns."""

    def __init__(self, inplanes: int, num_classes: int) -> None:
        super().__init__()
        self.conv2d_list = nn.ModuleList(nn.Conv2d(inplanes, num_classes, 3, padding=d, dilation=d, bias=True)
                                         for d in (6, 12, 18, 24))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2d_list[0](x)
        for i in range(len(self.conv2d_list) - 1):
            out = out + self.conv2d_list[i + 1](x)
            return out  # the early return of their code: two branches
        return out


class HungDeepLab(nn.Module):
    def __init__(self, num_classes: int = 21, layers: tuple[int, ...] = (1, 1, 1, 1), width: int = 8) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], dilation=2)
        self.layer4 = self._make_layer(width * 8, layers[3], dilation=4)
        self.layer5 = HungClassifier(width * 32, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4 or dilation in (2, 4):
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        out = [HungBottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * 4
        out += [HungBottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics (positive variances), so that a wrong mapping shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if name.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                value.copy_(0.1 * torch.randn(value.shape, generator=gen))
            elif name.endswith("weight") and value.ndim == 1:  # batch-norm scale
                value.copy_(1 + 0.1 * torch.randn(value.shape, generator=gen))
            else:  # convolutions: He-like scale keeps the activations finite through the trunk
                fan_in = value[0].numel()
                value.copy_(torch.randn(value.shape, generator=gen) * (2 / fan_in) ** 0.5)
    return model


def hung_coco_state(model: DeepLabV2 | None = None, classes: int = 21, seed: int = 0,
                    prefixed: bool = True, full: bool = False) -> dict[str, Tensor]:
    """A state dict in the layout of Hung et al.'s COCO checkpoint (tiny unless ``full``); random values."""
    replica = randomised(HungDeepLab(classes, (3, 4, 23, 3), 64) if full else HungDeepLab(classes), seed)
    prefix = "Scale." if prefixed else ""
    return {prefix + k: v for k, v in replica.state_dict().items() if not k.endswith("num_batches_tracked")}


def torchvision_resnet_state(model: DeepLabV2, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.backbone.state_dict().items():
        if not v.is_floating_point():
            state[k] = v.clone()
        elif k.endswith("running_var"):  # must stay positive
            state[k] = torch.rand(v.shape, generator=gen) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=gen)
    state["fc.weight"] = torch.randn(1000, model.backbone.out_channels, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state

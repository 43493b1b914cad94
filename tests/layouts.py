"""State dicts in the layouts of the published checkpoints, built at run time from our network's shapes.

- ``hung_coco_state``: Hung et al.'s ``resnet101COCO-41f33a49.pth``: every key under ``Scale.``, the trunk as
  ``conv1, bn1, layer1..layer4``, the 21-way ASPP head as ``layer5.conv2d_list.{0..3}``, no batch-norm
  ``num_batches_tracked`` (a 2017 file);
- ``torchvision_resnet_state``: torchvision's ``resnet101``: the trunk's names unprefixed, plus ``fc``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentseg.models.deeplab import DeepLabV2


def _random_like(key: str, value: Tensor, gen: torch.Generator) -> Tensor:
    if not value.is_floating_point():
        return value.clone()
    if key.endswith("running_var"):  # must stay positive
        return torch.rand(value.shape, generator=gen) + 0.5
    return torch.randn(value.shape, generator=gen)


def hung_coco_state(model: DeepLabV2, classes: int = 21, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {"Scale." + k: _random_like(k, v, gen) for k, v in model.backbone.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    for i in range(4):
        state[f"Scale.layer5.conv2d_list.{i}.weight"] = torch.randn(
            classes, model.backbone.out_channels, 3, 3, generator=gen)
        state[f"Scale.layer5.conv2d_list.{i}.bias"] = torch.randn(classes, generator=gen)
    return state


def torchvision_resnet_state(model: DeepLabV2, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {k: _random_like(k, v, gen) for k, v in model.backbone.state_dict().items()}
    state["fc.weight"] = torch.randn(1000, model.backbone.out_channels, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state

"""The one place where published checkpoint layouts are mapped onto our parameter names.

Sources:

- ``deeplab_coco``: the COCO-pretrained DeepLab-v2 ResNet-101 that Hung et al. released
  (``resnet101COCO-41f33a49.pth``; keys ``Scale.conv1.weight`` ... ``Scale.layer5.conv2d_list.3.bias``).
  ``Scale.layer5`` is a 21-way ASPP classifier; it initialises our semantic head when the class count matches,
  and is dropped otherwise (Cityscapes), as in Hung et al.'s code.
- ``torchvision_resnet``: torchvision's ImageNet ``resnet101`` (``conv1.weight`` ... ``fc.bias``); ``fc`` is
  dropped. Its strides sit on the 3x3 convolutions; shapes are the same, so the weights load unchanged.
- ``latentseg``: our own weights (the COCO pretraining stage's output), keys already ours.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

SOURCES = ("deeplab_coco", "torchvision_resnet", "latentseg")


def map_state_dict(state: Mapping[str, Tensor], source: str, num_classes: int) -> dict[str, Tensor]:
    """Rename the keys of a published ``state`` to ours: ``backbone.*``, ``semantic_head.*``."""
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; choose one of {SOURCES}")
    if source == "latentseg":
        # Our own weights (a pretraining run): the latent head is never carried over, and a semantic head
        # trained for another class count is dropped, as for the published file.
        return {k: v for k, v in state.items() if not k.startswith("latent_head.")
                and not (k.startswith("semantic_head.") and v.shape[0] != num_classes)}
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        if source == "deeplab_coco":
            if not key.startswith("Scale."):
                raise KeyError(f"tensor {key!r} is not in the DeepLab-v2 COCO layout (expected a 'Scale.' prefix)")
            key = key.removeprefix("Scale.")
            if key.startswith("layer5."):
                if value.ndim >= 1 and value.shape[0] != num_classes:
                    continue  # a 21-way classifier cannot start a 19-way head: the head is trained anew
                mapped["semantic_head." + key.removeprefix("layer5.")] = value
                continue
        elif key.startswith("fc."):
            continue
        mapped["backbone." + key] = value
    return mapped


def load_initialisation(model: nn.Module, state: Mapping[str, Tensor], source: str) -> list[str]:
    """Load a published checkpoint into ``model`` with strict key matching on the trunk.

    Every backbone tensor must be present with the right shape; the error names each missing, unexpected or
    mis-shaped tensor. Heads the checkpoint does not carry (the latent head, a re-sized semantic head) keep
    their fresh initialisation and are returned, so callers can log them. Batch-norm ``num_batches_tracked``
    counters (absent from 2017-era files) are not required.
    """
    num_classes = model.semantic_head.conv2d_list[0].out_channels
    mapped = map_state_dict(state, source, num_classes)
    own = model.state_dict()
    unexpected = sorted(k for k in mapped if k not in own)
    mismatched = sorted(f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in mapped if k in own and mapped[k].shape != own[k].shape)
    required = [k for k in own if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    missing = sorted(k for k in required if k not in mapped)
    problems = [f"missing tensor {k}" for k in missing] + [f"unexpected tensor {k}" for k in unexpected]
    problems += [f"wrong shape {m}" for m in mismatched]
    if problems:
        shown = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
        raise KeyError(f"checkpoint ({source}) does not match the model:\n  {shown}")
    with torch.no_grad():
        for key, value in mapped.items():
            own[key].copy_(value)
    return sorted(k for k in own if k not in mapped and not k.endswith("num_batches_tracked"))

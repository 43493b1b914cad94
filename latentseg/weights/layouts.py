"""The one place where published checkpoint layouts are mapped onto our parameter names.

Layouts:

- ``deeplab_coco``: the COCO-pretrained DeepLab-v2 ResNet-101 that Hung et al. released
  (``resnet101COCO-41f33a49.pth``). Their code (AdvSemiSeg ``train.py``) copies the file's tensors into its model
  by exact name, and that model's names carry no prefix, so the file's keys are ``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight`` ... ``layer5.conv2d_list.3.bias``. An older conversion of the same Caffe model for
  another port puts every key under ``Scale.``; both are accepted. ``layer5`` is a 21-way ASPP classifier: it
  becomes our semantic head (the trainer drops it for a data set of another class count, as their code does).
- ``torchvision_resnet``: torchvision's ImageNet ``resnet101`` (``conv1.weight`` ... ``fc.bias``); ``fc`` is
  dropped. Its strides sit on the 3x3 convolutions; shapes are the same, so the weights load unchanged, except
  for the input convention: torchvision's network expects ``(x/255 - mean) / std``, ours gets ``x - caffe_mean``
  (``data/augment.py``), inputs some 58 times larger. ``fold_torchvision_input`` folds the conversion into
  ``conv1`` (scaled by ``1 / (255 std)`` per input channel) and ``bn1``'s running mean (the small difference of
  the two means): the trunk then computes the same features from our input as torchvision's from its own
  (exactly, but for the image border, where zero padding differs by that small difference).

Anything else is a strict error that names the tensors (``models.init.load_strict``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from latentseg.data.augment import MEAN_RGB
from latentseg.models.init import load_strict

LAYOUTS = ("deeplab_coco", "torchvision_resnet")

# torchvision's ImageNet input normalisation (RGB, on x / 255)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
LEGACY_PREFIX = "Scale."


def fold_torchvision_input(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rewrite ``conv1.weight`` and ``bn1.running_mean`` of a torchvision ResNet so that it takes our input.

    Ours is ``o = x - m`` (``m`` = Caffe mean, pixels ``x`` in 0..255); torchvision's is ``t = (o + m - 255 mu)
    / (255 s)``. ``conv1`` (no bias) is linear, so ``W * t = W' * o + b`` with ``W' = W / (255 s)`` per input
    channel and ``b = W' * (m - 255 mu)``, a constant per output channel that ``bn1`` absorbs into its mean.
    A file without these two tensors is returned unchanged (the strict check then names what is missing).
    """
    if "conv1.weight" not in state or "bn1.running_mean" not in state:
        return state
    weight = state["conv1.weight"]
    scale = 255.0 * torch.tensor(TORCHVISION_STD, dtype=weight.dtype).view(1, 3, 1, 1)
    folded = weight / scale
    shift = torch.tensor(MEAN_RGB, dtype=weight.dtype) - 255.0 * torch.tensor(TORCHVISION_MEAN, dtype=weight.dtype)
    bias = (folded * shift.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    out = dict(state)
    out["conv1.weight"] = folded
    out["bn1.running_mean"] = state["bn1.running_mean"] - bias.to(state["bn1.running_mean"].dtype)
    return out


def strip_legacy_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Hung et al.'s key layout from either release: keys as they are, or all under ``Scale.``."""
    prefixed = [k for k in state if k.startswith(LEGACY_PREFIX)]
    if prefixed and len(prefixed) != len(state):
        plain = sorted(k for k in state if not k.startswith(LEGACY_PREFIX))
        raise KeyError(f"tensors with and without the '{LEGACY_PREFIX}' prefix mixed in one file (without: "
                       f"{plain[:5]}); a DeepLab-v2 COCO file names all of them one way")
    return {k.removeprefix(LEGACY_PREFIX): v for k, v in state.items()}


def map_state_dict(state: Mapping[str, Tensor], layout: str) -> dict[str, Tensor]:
    """Rename the keys of a published ``state`` to ours (``backbone.*``, ``semantic_head.*``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; choose one of {LAYOUTS}")
    if layout == "deeplab_coco":
        state = strip_legacy_prefix(state)
    else:
        state = fold_torchvision_input({k: v for k, v in state.items() if not k.startswith("fc.")})
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        if layout == "deeplab_coco" and key.startswith("layer5."):
            mapped["semantic_head." + key.removeprefix("layer5.")] = value
        else:
            mapped["backbone." + key] = value
    return mapped


def load_published(model: nn.Module, state: Mapping[str, Tensor], layout: str) -> list[str]:
    """Load a published checkpoint into ``model`` strictly (every trunk tensor, right shapes, nothing unknown).

    A 21-way COCO head does not start a head of another class count (Hung et al.'s code skips it likewise).
    Returns the tensors left as initialised (the latent head; the semantic head of a torchvision file).
    """
    num_classes = model.semantic_head.conv2d_list[0].out_channels
    mapped = {k: v for k, v in map_state_dict(state, layout).items()
              if not (k.startswith("semantic_head.") and v.shape[0] != num_classes)}
    return load_strict(model, mapped, f"checkpoint ({layout})")

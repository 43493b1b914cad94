"""The one place where published checkpoint layouts are mapped onto our parameter names.

Sources:

- ``deeplab_coco``: the COCO-pretrained DeepLab-v2 ResNet-101 that Hung et al. released
  (``resnet101COCO-41f33a49.pth``; keys ``Scale.conv1.weight`` ... ``Scale.layer5.conv2d_list.3.bias``).
  ``Scale.layer5`` is a 21-way ASPP classifier; it initialises our semantic head when the class count matches,
  and is dropped otherwise (Cityscapes), as in Hung et al.'s code.
- ``torchvision_resnet``: torchvision's ImageNet ``resnet101`` (``conv1.weight`` ... ``fc.bias``); ``fc`` is
  dropped. Its strides sit on the 3x3 convolutions; shapes are the same, so the weights load unchanged, except
  for the input convention: torchvision's network expects ``(x/255 - mean) / std``, ours gets ``x - caffe_mean``
  (``data/dataset.py``), inputs some 58 times larger. With batch-norm statistics frozen (DeepLab-v2, the paper
  profile) that would blow up every activation, so ``fold_torchvision_input`` folds the conversion into
  ``conv1`` (scaled by ``1 / (255 std)`` per input channel) and ``bn1``'s running mean (the small difference of
  the two means): the trunk then computes the same features from our input as torchvision's from its own
  (exactly, but for the image border, where zero padding differs by that small difference).
- ``latentseg``: our own weights (the COCO pretraining stage's output), keys already ours.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from latentseg.data.dataset import MEAN_RGB

SOURCES = ("deeplab_coco", "torchvision_resnet", "latentseg")

# torchvision's ImageNet input normalisation (RGB, on x / 255)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


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


def map_state_dict(state: Mapping[str, Tensor], source: str, num_classes: int) -> dict[str, Tensor]:
    """Rename the keys of a published ``state`` to ours (``backbone.*``, ``semantic_head.*``); a torchvision
    ResNet also gets its input convention folded into ``conv1`` (``fold_torchvision_input``)."""
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; choose one of {SOURCES}")
    if source == "latentseg":
        # Our own weights (a pretraining run): the latent head is never carried over, and a semantic head
        # trained for another class count is dropped, as for the published file.
        return {k: v for k, v in state.items() if not k.startswith("latent_head.")
                and not (k.startswith("semantic_head.") and v.shape[0] != num_classes)}
    if source == "torchvision_resnet":
        state = fold_torchvision_input(dict(state))
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

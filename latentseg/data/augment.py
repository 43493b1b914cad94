"""Paired image/mask transforms of training and evaluation, on tensors.

They follow the DeepLab-v2 code that the COCO weights and the published numbers come from (Hung et al.'s
``dataset/voc_dataset.py``): pixel values 0-255 with the Caffe mean subtracted and no division by a standard
deviation (channels in RGB order, the mean reversed to match); an image smaller than the crop is padded at the
bottom and right with the mean (0 after normalisation) and its mask with the ignore label; scaling is bilinear
for images and nearest for masks. Every random draw comes from the ``torch.Generator`` passed in, so a draw is
reproducible from its seed (``train.sampling``) whatever process makes it.

Written on ``torch.nn.functional`` rather than torchvision's transforms: importing torchvision costs every
training process about 1.3 s (it imports ``torch._dynamo``), paid by each of the pipeline's stage processes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from latentseg.config import DataConfig

# Caffe's ImageNet mean in RGB order (the BGR mean 104.008, 116.669, 122.679 reversed with the channels).
MEAN_RGB = (122.67891434, 116.66876762, 104.00698793)
IGNORE = 255

# (image uint8 (3, H, W), mask uint8 (H, W), generator) -> (image float32 (3, h, w), mask int64 (h, w))
Transform = Callable[[Tensor, Tensor, torch.Generator | None], tuple[Tensor, Tensor]]


def scale_factors(scale_range: tuple[float, float], step: float) -> list[float]:
    """``lo, lo + step, ..., hi``: AdvSemiSeg draws ``0.5 + randint(0, 11) / 10``, i.e. 0.5 to 1.6."""
    lo, hi = scale_range
    return [round(lo + i * step, 6) for i in range(round((hi - lo) / step) + 1)] if step > 0 else [lo]


def resize_pair(image: Tensor, mask: Tensor, size: tuple[int, int], antialias: bool = False) -> tuple[Tensor, Tensor]:
    """Bilinear image (float), nearest mask, to ``size`` = (H, W)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image.float(), mask
    image = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False,
                          antialias=antialias)[0]
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].to(mask.dtype)
    return image, mask


def normalise(image: Tensor) -> Tensor:
    return image.float() - torch.tensor(MEAN_RGB, dtype=torch.float32).view(3, 1, 1)


def pad_bottom_right(image: Tensor, mask: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pad a normalised image with 0 (the mean) and its mask with the ignore label up to at least H x W."""
    pad_h, pad_w = max(height - image.shape[-2], 0), max(width - image.shape[-1], 0)
    if pad_h == 0 and pad_w == 0:
        return image, mask
    return (F.pad(image, (0, pad_w, 0, pad_h), value=0.0),
            F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE))


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (), generator=generator)) if high > 1 else 0


def train_transform(cfg: DataConfig) -> Transform:
    """Resize (Cityscapes' halving), random scale, normalise, pad, random crop, random mirror."""
    factors = scale_factors(cfg.scale_range, cfg.scale_step) if cfg.random_scale else None
    crop_h, crop_w = cfg.crop_size

    def transform(image: Tensor, mask: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if cfg.resize:
            image, mask = resize_pair(image, mask, cfg.resize, antialias=True)
        if factors is not None:
            factor = factors[_randint(len(factors), generator)]
            h, w = image.shape[-2:]
            image, mask = resize_pair(image, mask, (max(1, round(h * factor)), max(1, round(w * factor))))
        image, mask = pad_bottom_right(normalise(image), mask, crop_h, crop_w)
        top = _randint(image.shape[-2] - crop_h + 1, generator)
        left = _randint(image.shape[-1] - crop_w + 1, generator)
        image = image[:, top: top + crop_h, left: left + crop_w]
        mask = mask[top: top + crop_h, left: left + crop_w]
        if cfg.mirror and _randint(2, generator):
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.long().contiguous()

    return transform


def eval_transform(cfg: DataConfig) -> Transform:
    """Resize (if the data set is evaluated resized), normalise, pad to ``eval_pad`` (VOC's 505x505)."""

    def transform(image: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if cfg.resize:
            image, mask = resize_pair(image, mask, cfg.resize, antialias=True)
        image = normalise(image)
        if cfg.eval_pad:
            h, w = image.shape[-2:]
            if h > cfg.eval_pad or w > cfg.eval_pad:
                raise ValueError(f"an image of {h}x{w} is larger than the evaluation padding {cfg.eval_pad} "
                                 "(data.eval_pad)")
            image, mask = pad_bottom_right(image, mask, cfg.eval_pad, cfg.eval_pad)
        return image, mask.long()

    return transform

"""The training augmentation crops before it normalises (cheaper) and gives exactly what normalising first gave."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from latentseg.config import DataConfig
from latentseg.data.dataset import IGNORE, Normalize, RandomScale, train_transform


def _normalise_then_crop(cfg: DataConfig) -> v2.Compose:
    """The augmentation as first written: the whole image normalised, then padded with 0.0 and cropped."""
    return v2.Compose([RandomScale(cfg.scale_range, cfg.scale_step), Normalize(),
                       v2.RandomCrop(list(cfg.crop_size), pad_if_needed=True,
                                     fill={tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE}),
                       v2.RandomHorizontalFlip()])


@pytest.mark.parametrize("size", [(40, 60), (25, 90), (90, 25), (12, 12)])
def test_crop_then_normalise_equals_normalise_then_crop(size):
    cfg = DataConfig(crop_size=(32, 48), scale_range=(0.5, 1.5))
    g = torch.Generator().manual_seed(sum(size))
    image = tv_tensors.Image(torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=g))
    mask = tv_tensors.Mask(torch.randint(0, 21, size, dtype=torch.uint8, generator=g))
    for seed in range(12):
        torch.manual_seed(seed)
        new_image, new_mask = train_transform(cfg)(image, mask)
        torch.manual_seed(seed)
        old_image, old_mask = _normalise_then_crop(cfg)(image, mask)
        assert new_image.dtype == torch.float32 and new_image.shape == (3, 32, 48)
        assert torch.equal(new_image, old_image) and torch.equal(new_mask, old_mask)

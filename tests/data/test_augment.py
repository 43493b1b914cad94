"""The paired training and evaluation transforms (data/augment.py): AdvSemiSeg's geometry, reproducible draws."""

from __future__ import annotations

import pytest
import torch

from latentseg.config import DataConfig, from_dict
from latentseg.data.augment import IGNORE, MEAN_RGB, eval_transform, scale_factors, train_transform
from tests.helpers import tiny_tree


def data_config(**overrides) -> DataConfig:
    return from_dict(DataConfig, {**tiny_tree()["data"], **overrides}, "data.")


def _pair(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    mask = torch.randint(0, 21, (h, w), dtype=torch.uint8, generator=g)
    return image, mask


def test_scale_factors_are_advsemiseg_s():
    assert scale_factors((0.5, 1.6), 0.1) == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]


def test_crop_pads_bottom_right_with_the_mean_and_the_ignore_label():
    cfg = data_config(crop_size=[32, 48], random_scale=False, mirror=False)
    image, mask = _pair(20, 30)
    out_image, out_mask = train_transform(cfg)(image, mask, torch.Generator().manual_seed(0))
    assert out_image.shape == (3, 32, 48) and out_mask.shape == (32, 48) and out_mask.dtype == torch.int64
    # the whole image fits: it sits top-left, the rest is padding
    expected = image.float() - torch.tensor(MEAN_RGB).view(3, 1, 1)
    assert torch.allclose(out_image[:, :20, :30], expected)
    assert (out_image[:, 20:] == 0).all() and (out_image[:, :, 30:] == 0).all()
    assert torch.equal(out_mask[:20, :30], mask.long())
    assert (out_mask[20:] == IGNORE).all() and (out_mask[:, 30:] == IGNORE).all()


def test_crop_of_a_larger_image_keeps_image_and_mask_aligned():
    cfg = data_config(crop_size=[16, 16], random_scale=False, mirror=True)
    image = torch.arange(40 * 50, dtype=torch.float32).view(1, 40, 50).repeat(3, 1, 1).to(torch.uint8)
    mask = (torch.arange(40 * 50).view(40, 50) % 21).to(torch.uint8)
    for seed in range(10):
        out_image, out_mask = train_transform(cfg)(image, mask, torch.Generator().manual_seed(seed))
        # image pixel value v (mod 256) and mask value v (mod 21) come from the same source pixel
        source = (out_image[0] + MEAN_RGB[0]).round().long()
        assert out_image.shape == (3, 16, 16)
        assert torch.equal(out_mask % 21, out_mask) and out_mask.shape == (16, 16)
        assert set(source.unique().tolist()) <= set(range(256))


@pytest.mark.parametrize("size", [(40, 60), (25, 90), (12, 12)])
def test_random_draws_are_reproducible_from_the_seed(size):
    cfg = data_config(crop_size=[32, 48], random_scale=True, scale_range=[0.5, 1.6], scale_step=0.1, mirror=True)
    image, mask = _pair(*size)
    transform = train_transform(cfg)
    first = transform(image, mask, torch.Generator().manual_seed(7))
    again = transform(image, mask, torch.Generator().manual_seed(7))
    other = [transform(image, mask, torch.Generator().manual_seed(s)) for s in range(8)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert any(not torch.equal(first[0], o[0]) for o in other)


def test_mirror_flips_image_and_mask_together():
    cfg = data_config(crop_size=[8, 8], random_scale=False, mirror=True)
    image, mask = _pair(8, 8)
    flips = 0
    for seed in range(20):
        out_image, out_mask = train_transform(cfg)(image, mask, torch.Generator().manual_seed(seed))
        flipped = torch.equal(out_mask, mask.long().flip(-1))
        assert flipped or torch.equal(out_mask, mask.long())
        assert torch.allclose(out_image, (image.float() - torch.tensor(MEAN_RGB).view(3, 1, 1)).flip(-1)
                              if flipped else image.float() - torch.tensor(MEAN_RGB).view(3, 1, 1))
        flips += flipped
    assert 0 < flips < 20


def test_eval_transform_resizes_then_pads():
    cfg = data_config(resize=[16, 32], eval_pad=None)
    image, mask = _pair(32, 64)
    out_image, out_mask = eval_transform(cfg)(image, mask)
    assert out_image.shape == (3, 16, 32) and out_mask.shape == (16, 32)
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())  # nearest: no new labels
    with pytest.raises(ValueError, match="eval_pad"):
        eval_transform(data_config(eval_pad=20))(image, mask)

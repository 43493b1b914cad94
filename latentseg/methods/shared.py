"""Pieces two or more methods share: softmax at the label size, and the pixel-wise adversarial game of Hung et
al. (the paper's ``L_adv`` and eq. 10) with its fully convolutional discriminator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import RunConfig
from latentseg.methods.base import Batch, Generated
from latentseg.models.deeplab import upsample
from latentseg.models.discriminator import Discriminator


def in_float32(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` with autocast off: a discriminator score that decides which pixels or images become
    pseudo-labels is computed in float32, so that bf16 rounding never flips a decision at the threshold."""
    if x.device.type not in ("cpu", "cuda"):  # the meta device (FLOP counts) has no autocast
        return module(x.float())
    with torch.autocast(x.device.type, enabled=False):
        return module(x.float())


def probabilities(logits: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Logits upsampled to the label size, and their softmax in float32."""
    up = upsample(logits, size)
    return up, up.float().softmax(1)


def stack_fakes(fakes: list[tuple[Tensor, Tensor | None]]) -> tuple[Tensor | None, Tensor | None]:
    """The pixel discriminator's fake input and its valid pixels (every pixel of an unlabeled prediction)."""
    if not fakes:
        return None, None
    probs = torch.cat([p for p, _ in fakes])
    valid = torch.cat([v if v is not None else p.new_ones(p.shape[0], *p.shape[2:], dtype=torch.bool)
                       for p, v in fakes])
    return probs, valid


def pixel_discriminator(cfg: RunConfig, num_classes: int) -> nn.Module | None:
    """Hung et al.'s fully convolutional discriminator, where the run has a ``discriminator`` section."""
    d = cfg.discriminator
    return None if d is None else Discriminator(num_classes, d.width)


def pixel_discriminator_loss(discriminator: nn.Module, generated: Generated, batch: Batch,
                             num_classes: int) -> Tensor:
    """Eq. (10) for the pixel-wise discriminator: the detached predictions are fake (their ignored pixels
    masked), the one-hot ground truth of its "real" draw is real."""
    assert generated.fake is not None
    _, real_mask = batch.real()
    d = discriminator
    return L.discriminator_loss(d(generated.fake.detach()), d(L.one_hot_map(real_mask, num_classes)),
                                generated.fake_valid, real_mask != 255, L.SplitBatch.current())

"""The image-level discriminator of s4GAN, the baseline of Tables 1-2.

Mittal, Tatarchenko, Brox, "Semi-Supervised Semantic Segmentation with High- and Low-level Consistency"
(IEEE TPAMI; arXiv:1908.05724); their code: github.com/sud0301/semisup-semseg, ``model/discriminator.py``
(``s4GAN_discriminator``). It judges a whole image: class-probability maps (or one-hot ground truth) stacked with
the image itself, one score per image. Its pooled features also serve the generator's feature-matching loss
(``latentseg.losses.s4gan_feature_matching_loss``).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-12
DROPOUT = 0.5  # Dropout2d after each of the first three convolutions, as in their code


class S4GANDiscriminator(nn.Module):
    """Four 4x4 stride-2 convolutions (padding 1; widths w, 2w, 4w, 8w), LeakyReLU 0.2 after each, Dropout2d 0.5
    after the first three, a global average pool and a linear layer to one output.

    Input ``(N, C + 3, H, W)``: probabilities or one-hot maps, then the image in [0, 1] (``discriminator_input``).
    Returns the logit ``(N, 1)`` (sigmoid gives their ``D``; losses use BCE-with-logits, which equals their
    sigmoid + BCELoss) and the pooled features ``(N, 8w)`` for feature matching.

    Their ``AvgPool2d((20, 20))`` (VOC, 321x321 crops) and ``AvgPool2d((16, 32))`` (Cityscapes, 256x512 crops)
    cover the whole last map at those crops: they are global averages, written here for any crop (16x16 at least).
    ``width`` w is 64 in the paper profile. Dropout follows ``train()``/``eval()``; their training runs the
    discriminator in ``train()`` mode throughout, so both of its passes in an iteration drop channels.
    """

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        chans = [num_classes + 3, width, width * 2, width * 4, width * 8]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in itertools.pairwise(chans))
        self.dropout = nn.Dropout2d(DROPOUT)
        self.fc = nn.Linear(chans[-1], 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.2)
            if i < len(self.convs) - 1:
                x = self.dropout(x)
        features = x.mean((2, 3))  # (N, 8w)
        return self.fc(features), features  # (N, 1), (N, 8w)


def image_to_unit_range(images: Tensor) -> Tensor:
    """Rescale a batch to [0, 1] by its own minimum and maximum (one of each over all images, channels, pixels).

    Their code rescales the unlabeled batch by its own range, but the ground-truth ("real") batch by its own
    minimum and the range of the labeled batch of the cross-entropy term (``train_s4GAN.py``, line 383), a quirk.
    We use each batch's own range: both are affine maps of the same images, and mean-subtracted 8-bit crops of
    a batch nearly always span the same range, so the two differ by little. A constant batch maps to 0, not
    NaN. Under a split batch each process uses its slice's range. No host synchronisation.
    """
    lo, hi = images.amin(), images.amax()
    return (images - lo) / (hi - lo).clamp_min(EPS)


def discriminator_input(prob: Tensor, images: Tensor) -> Tensor:
    """The discriminator's input: ``prob`` (N, C, H, W), probabilities or one-hot ground truth, then the images
    (N, 3, H, W) rescaled to [0, 1] by ``image_to_unit_range``: (N, C + 3, H, W). Gradients reach ``prob``."""
    if prob.shape[0] != images.shape[0] or prob.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"s4GAN discriminator input: probabilities {tuple(prob.shape)} and images "
                         f"{tuple(images.shape)} must have the same batch size and H x W (upsample the prediction)")
    return torch.cat([prob, image_to_unit_range(images).to(prob.dtype)], 1)

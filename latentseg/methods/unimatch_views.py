"""UniMatch's perturbations of an unlabeled batch, on the batch's normalised tensors: two strong views (colour jitter,
grayscale, Gaussian blur: UniMatch ``dataset/semi.py:51-61``) and a CutMix box per image and view
(``dataset/transform.py:66-84``), filled from another image of the same batch.

The photometric transforms are torchvision's (``transforms.v2``), drawn from torch's global generator, image by
image (a v2 transform draws one set of parameters per call). torchvision is imported when a ``StrongView`` first
runs, not when this module is: importing it costs a training process about 1.3 s (``data/augment.py``), which
only UniMatch's runs pay.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor

from latentseg.data.augment import MEAN_RGB


class StrongView:
    """A strong view of each image of a normalised batch (Caffe mean subtracted, 0-255): the transforms run on
    RGB in [0, 1], as theirs run on PIL images, and the view is normalised back."""

    def __init__(self, jitter: tuple[float, float, float, float], jitter_p: float, grayscale_p: float,
                 blur_p: float, blur_sigma: tuple[float, float]) -> None:
        self.jitter, self.jitter_p, self.grayscale_p = jitter, jitter_p, grayscale_p
        self.blur_p, self.blur_sigma = blur_p, blur_sigma
        self.transforms: dict[int, Callable[[Tensor], Tensor]] = {}

    def transform(self, side: int) -> Callable[[Tensor], Tensor]:
        """The composed transforms for images whose shorter side is ``side``. PIL's GaussianBlur(radius=sigma)
        (theirs) reaches about 3 sigma: the odd kernel covers the largest sigma, or the image (its reflection
        padding must be shorter than the image)."""
        if side not in self.transforms:
            from torchvision.transforms import v2

            kernel = min(2 * math.ceil(3 * self.blur_sigma[1]) + 1, 2 * side - 1)
            self.transforms[side] = v2.Compose([
                v2.RandomApply([v2.ColorJitter(*self.jitter)], p=self.jitter_p),
                v2.RandomGrayscale(p=self.grayscale_p),
                v2.RandomApply([v2.GaussianBlur(kernel, sigma=self.blur_sigma)], p=self.blur_p),
            ])
        return self.transforms[side]

    def __call__(self, images: Tensor) -> Tensor:
        """The views in float32 (the blur is a convolution: autocast would take it to bf16)."""
        kind = images.device.type
        with torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else nullcontext():
            mean = images.new_tensor(MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)
            rgb = ((images.float() + mean) / 255).clamp(0, 1)
            transform = self.transform(min(images.shape[-2:]))
            return torch.stack([transform(x) for x in rgb]) * 255 - mean


def cutmix_box(height: int, width: int, p: float, area: tuple[float, float], ratio: tuple[float, float],
               device: torch.device | str = "cpu") -> Tensor:
    """UniMatch's ``obtain_cutmix_box`` on an H x W crop: with probability ``p`` a box of area U(area) x H x W and
    aspect U(ratio), its corner drawn until it fits; else none. A bool (H, W) map, True inside. The draws are
    host-side scalars of torch's generator; the map is built on ``device`` with no copy."""
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    if float(torch.rand(())) >= p:
        return (rows < 0) & (cols < 0)
    size = float(torch.empty(()).uniform_(*area)) * height * width
    while True:
        r = float(torch.empty(()).uniform_(*ratio))
        w, h = int(math.sqrt(size / r)), int(math.sqrt(size * r))
        x, y = int(torch.randint(width, ())), int(torch.randint(height, ()))
        if x + w <= width and y + h <= height:
            break
    return (rows >= y) & (rows < y + h) & (cols >= x) & (cols < x + w)


def cutmix_boxes(n: int, height: int, width: int, p: float, area: tuple[float, float], ratio: tuple[float, float],
                 device: torch.device | str = "cpu") -> Tensor:
    """One box per image: (N, H, W) bool."""
    return torch.stack([cutmix_box(height, width, p, area, ratio, device) for _ in range(n)])


def mix_source(x: Tensor) -> Tensor:
    """The image (or prediction) each image is mixed with: the next one of the batch (a shuffled batch, as the
    UniMatch author allows in their issue #34, instead of a second loader)."""
    return x.roll(1, dims=0)


def cutmix(target: Tensor, source: Tensor, box: Tensor) -> Tensor:
    """``target`` with ``source`` inside ``box`` ((N, H, W)); images (N, C, H, W) or maps (N, H, W)."""
    inside = box if target.dim() == box.dim() else box.unsqueeze(1)
    return torch.where(inside, source, target)

"""UniMatch's perturbations of an unlabeled batch, on the batch's normalised tensors: two strong views (colour jitter,
grayscale, Gaussian blur: UniMatch ``dataset/semi.py:51-61``) and a CutMix box per image and view
(``dataset/transform.py:66-84``), filled from another image of the same batch.

The colour transforms are torchvision's (``transforms.v2``), the blur PIL's algorithm (``pil_gaussian_blur``), all
drawn from torch's global generator, image by image (a v2 transform draws one set of parameters per call).
torchvision is imported when a ``StrongView`` first runs, not when this module is: importing it costs a training
process about 1.3 s (``data/augment.py``), which only UniMatch's runs pay.
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
        self.transform: Callable[[Tensor], Tensor] | None = None

    def compose(self) -> Callable[[Tensor], Tensor]:
        from torchvision.transforms import v2

        return v2.Compose([
            v2.RandomApply([v2.ColorJitter(*self.jitter)], p=self.jitter_p),
            v2.RandomGrayscale(p=self.grayscale_p),
            v2.RandomApply([PILGaussianBlur(self.blur_sigma)], p=self.blur_p),
        ])

    def __call__(self, images: Tensor) -> Tensor:
        """The views in float32, autocast off (their PIL transforms have no lower precision)."""
        kind = images.device.type
        if self.transform is None:
            self.transform = self.compose()
        with torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else nullcontext():
            mean = images.new_tensor(MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)
            rgb = ((images.float() + mean) / 255).clamp(0, 1)
            return torch.stack([self.transform(x) for x in rgb]) * 255 - mean


class PILGaussianBlur:
    """Their blur (``dataset/transform.py:59-63``): PIL's ``GaussianBlur(radius=sigma)``, sigma ~ U(``sigma``), on a
    (C, H, W) image. sigma is drawn as torchvision's ``v2.GaussianBlur`` draws it (one ``uniform_`` of torch's
    generator), so a view consumes the draws it did when it blurred with that."""

    def __init__(self, sigma: tuple[float, float]) -> None:
        self.sigma = sigma

    def __call__(self, image: Tensor) -> Tensor:
        return pil_gaussian_blur(image, torch.empty(1).uniform_(*self.sigma).item())


def pil_box_radius(sigma: float, passes: int) -> float:
    """PIL's ``_gaussian_blur_radius`` (``libImaging/BoxBlur.c``): the radius ``l + a`` of the extended box filter
    whose ``passes``-fold repetition has variance sigma^2 (Gwosdek et al., SSVM 2011, eqs. 7, 11, 14)."""
    var = sigma * sigma / passes
    whole = math.floor((math.sqrt(12 * var + 1) - 1) / 2)
    return whole + (2 * whole + 1) * (whole * (whole + 1) - 3 * var) / (6 * (var - (whole + 1) ** 2))


def pil_gaussian_blur(image: Tensor, sigma: float, passes: int = 3) -> Tensor:
    """PIL's ``ImageFilter.GaussianBlur(radius=sigma)`` on a (..., H, W) float image: ``passes`` extended box
    filters along the rows, then along the columns (``ImagingBoxBlur``). A box of radius ``r = l + a`` weighs the
    2l + 1 pixels around a pixel 1 / (2r + 1) each and the next two a / (2r + 1) each; the image's edge pixels
    extend beyond it (where torchvision's ``GaussianBlur`` reflects). PIL rounds to 8 bits after every pass, this
    does not: the values differ by at most 3 of 255 (``tests/test_unimatch.py``)."""
    radius = pil_box_radius(sigma, passes)
    whole, inner = int(radius), 1 / (2 * radius + 1)
    outer = (1 - (2 * whole + 1) * inner) / 2
    x = image
    for dim in (-1, -2):
        for _ in range(passes):
            x = _box_pass(x, dim, whole, inner, outer)
    return x


def _box_pass(x: Tensor, dim: int, whole: int, inner: float, outer: float) -> Tensor:
    """One extended box filter along ``dim``, as shifted sums (3x faster than a grouped convolution on the CPU)."""
    n, reach = x.shape[dim], whole + 1
    padded = torch.cat([x.narrow(dim, 0, 1)] * reach + [x] + [x.narrow(dim, n - 1, 1)] * reach, dim)
    box = padded.narrow(dim, 1, n)  # the 2l + 1 inner pixels: shifts 1 to 2l + 1 of the padded line
    for shift in range(2, 2 * reach):
        box = box + padded.narrow(dim, shift, n)
    return inner * box + outer * (padded.narrow(dim, 0, n) + padded.narrow(dim, 2 * reach, n))


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

"""Colours of the pictures of a prediction: a categorical palette of latent classes, masks in colour, overlays
(each data set's own mask palette is its descriptor's, ``datasets.classes_and_palette``).

``latentseg predict`` and Figure 1 (``reports/figure1.py``) draw latent class ``l`` in the same colour. Imports
no torch and no matplotlib: the report stages use it too.
"""

from __future__ import annotations

import colorsys

import numpy as np

RGB = tuple[int, int, int]

# matplotlib's tab20, its ten strong colours first, then their light partners: the first ten latent classes (k = 10)
# get ten distinct hues, and latent classes 10-19 a lighter version of them.
_TAB20_STRONG_FIRST: list[RGB] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194),
    (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148),
    (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]
_GOLDEN = 0.618033988749895  # hue step of the colours past twenty: each new hue far from the previous ones


def latent_colours(k: int) -> list[RGB]:
    """One colour per latent class ``0..k-1``."""
    colours = _TAB20_STRONG_FIRST[:k]
    for i in range(len(colours), k):
        r, g, b = colorsys.hsv_to_rgb((i * _GOLDEN) % 1.0, 0.65, 0.9)
        colours.append((round(255 * r), round(255 * g), round(255 * b)))
    return colours


def latent_palette(k: int) -> list[int]:
    """``latent_colours`` as a flat 768-int palette for ``Image.putpalette`` (indices past ``k`` black)."""
    if not 0 < k <= 256:
        raise ValueError(f"a palette image holds 1 to 256 latent classes, not {k}")
    return [v for rgb in latent_colours(k) for v in rgb] + [0] * (3 * (256 - k))


def colourise(labels: np.ndarray, palette: list[int]) -> np.ndarray:
    """(H, W) indices 0-255 -> (H, W, 3) uint8 colours of a flat 768-int palette."""
    table = np.asarray(palette, dtype=np.uint8).reshape(256, 3)
    return table[np.asarray(labels).astype(np.uint8)]


def overlay(image: np.ndarray, labels: np.ndarray, palette: list[int], alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8: the image blended with the colours of ``labels`` (weight ``alpha``)."""
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colourise(labels, palette).astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)

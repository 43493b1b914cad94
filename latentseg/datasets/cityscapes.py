"""Cityscapes (fine annotations): 19 train ids, evaluated at half resolution (512x1024), upsampled back."""

from __future__ import annotations

from latentseg.datasets.base import Dataset

# The 19 Cityscapes train ids, in order (cityscapesscripts' label table).
CITYSCAPES_CLASSES: list[str] = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]


# The official colours of the 19 train ids, in order: the ``color`` column of cityscapesscripts'
# helpers/labels.py (v2.3.0), written out so that reading a mask needs no cityscapesscripts.
_CITYSCAPES_COLOURS: list[tuple[int, int, int]] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
]
# Flat 768 ints for ``Image.putpalette``; indices 19..255 (255 = ignore) are black.
CITYSCAPES_PALETTE: list[int] = [v for rgb in _CITYSCAPES_COLOURS for v in rgb] + [0] * (3 * (256 - 19))

# Cityscapes' own seven categories (cityscapesscripts' ``category`` column).
CITYSCAPES_CATEGORIES: dict[str, list[str]] = {
    "flat": ["road", "sidewalk"],
    "construction": ["building", "wall", "fence"],
    "object": ["pole", "traffic light", "traffic sign"],
    "nature": ["vegetation", "terrain"],
    "sky": ["sky"],
    "human": ["person", "rider"],
    "vehicle": ["car", "truck", "bus", "train", "motorcycle", "bicycle"],
}


DATASET = Dataset("cityscapes", tuple(CITYSCAPES_CLASSES), tuple(CITYSCAPES_PALETTE), 255, "resize",
                  ("1/8", "1/4", "1/2", "full"), CITYSCAPES_CATEGORIES)

"""Class names and mask palettes of the two benchmarks, and groupings of the classes used by the method's variants
and the demo. Imports nothing: the loader, the preparation and a later ``predict`` command all read it."""

from __future__ import annotations

VOC_CLASSES: list[str] = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]

# The 19 Cityscapes train ids, in order (cityscapesscripts' label table).
CITYSCAPES_CLASSES: list[str] = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]


def voc_palette() -> list[int]:
    """VOC's colour map: 256 RGB triples, flat (768 ints, as ``Image.putpalette`` takes them); the bits of the
    index are spread over R, G, B from the high bit down, so the masks look like VOC's in an image viewer."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
        palette += rgb
    return palette


VOC_PALETTE: list[int] = voc_palette()

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


def group_index(classes: list[str], groups: dict[str, list[str]]) -> list[int]:
    """For each class, the index of its group (in the order of ``groups``); every class must be in one group."""
    owner: dict[str, int] = {}
    for g, members in enumerate(groups.values()):
        for name in members:
            if name in owner:
                raise ValueError(f"class {name!r} is in two groups")
            owner[name] = g
    missing = [c for c in classes if c not in owner]
    unknown = sorted(set(owner) - set(classes))
    if missing or unknown:
        raise ValueError(f"groups must cover the classes exactly; missing {missing}, unknown {unknown}")
    return [owner[c] for c in classes]

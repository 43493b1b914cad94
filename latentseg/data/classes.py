"""Class names of the two benchmarks, and groupings of them used by the method's variants and the demo."""

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

# Table 5's "manual supercategories" (10 groups). The paper does not list its grouping; this default follows
# the WordNet-style categories of VOC's own documentation, split so that there are ten groups.
VOC_MANUAL_GROUPS: dict[str, list[str]] = {
    "background": ["background"],
    "person": ["person"],
    "two-wheeler": ["bicycle", "motorbike"],
    "road vehicle": ["bus", "car"],
    "other vehicle": ["aeroplane", "boat", "train"],
    "bird": ["bird"],
    "pet": ["cat", "dog"],
    "farm animal": ["cow", "horse", "sheep"],
    "furniture": ["chair", "diningtable", "sofa"],
    "household object": ["bottle", "pottedplant", "tvmonitor"],
}

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

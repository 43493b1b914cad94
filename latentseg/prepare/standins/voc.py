"""The demo's VOC stand-in: objects on a background, each planted group a silhouette of its own; JPEGs under
``VOCdevkit/VOC2012`` and palette masks with a 1-pixel ignore (255) border around each object, as in VOC, and the
image-set files torchvision's VOC reader looks for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentseg.data.layout import Sample
from latentseg.datasets.voc import DATASET
from latentseg.prepare.standins.base import StandIn, jpeg_and_palette_png
from latentseg.prepare.standins.painter import Painter, Shape, blob, boundary, column, triangle, wide_box

# Each planted group's silhouette (datasets/voc.py: PLANTED_GROUPS); background is the field behind them.
SHAPES: dict[str, Shape] = {"vehicle": wide_box, "animal": blob, "person": column, "indoor": triangle}
SHAPE_OF: dict[int, Shape] = {DATASET.classes.index(name): shape for group, shape in SHAPES.items()
                              for name in DATASET.planted_groups[group]}  # by label value


def render(painter: Painter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = painter.spec.size
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    painter.paint(image, np.ones((h, w), bool), 0, rng)
    outline = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(1, len(DATASET.classes)))
        _, region = painter.shape(SHAPE_OF[cls], rng)
        painter.paint(image, region, cls, rng)
        label[region] = cls
        outline &= ~region
        outline |= boundary(region)
    label[outline] = 255
    return image, label


def paths(split: str, i: int) -> tuple[str, str]:
    sid = f"2000_{split[0]}{i:06d}"
    return f"VOCdevkit/VOC2012/JPEGImages/{sid}.jpg", f"VOCdevkit/VOC2012/SegmentationClass/{sid}.png"


def image_sets(out: Path, lists: dict[str, list[Sample]]) -> None:
    """The image-set files that torchvision's VOC reader looks for."""
    sets = out / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    for split, samples in lists.items():
        sets.mkdir(parents=True, exist_ok=True)
        (sets / f"{split}.txt").write_text("".join(s.id + "\n" for s in samples))


STANDIN = StandIn(DATASET, render, paths, jpeg_and_palette_png(DATASET), image_sets)

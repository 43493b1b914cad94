"""The demo's Cityscapes stand-in: stuff bands (sky, construction, nature, flat: the layout tells these groups)
with things on them, whose groups are silhouettes (objects thin poles, humans upright columns, vehicles wide
boxes), PNGs under ``leftImg8bit/`` and ``*_gtFine_labelTrainIds.png`` under ``gtFine/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.datasets.cityscapes import DATASET
from latentseg.prepare.standins.base import StandIn
from latentseg.prepare.standins.painter import Painter, Shape, column, pole, wide_box

# The silhouette of each group of things (datasets/cityscapes.py: CITYSCAPES_CATEGORIES).
THINGS: dict[str, Shape] = {"object": pole, "human": column, "vehicle": wide_box}


def render(painter: Painter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = painter.spec.size
    idx = {c: i for i, c in enumerate(DATASET.classes)}
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    # Stuff bands from top to bottom with wavy borders: sky, construction, nature, flat.
    bands = [["sky"], ["building", "wall", "fence"], ["vegetation", "terrain"], ["road", "sidewalk"]]
    cuts = np.sort(rng.uniform(0.1, 0.9, 3)) * h
    top = np.zeros(w, np.float32)
    for b, choices in enumerate(bands):
        bottom = np.full(w, h, np.float32) if b == 3 else cuts[b] + 3 * np.sin(painter.xx[0] / rng.uniform(4, 9))
        region = (painter.yy >= top) & (painter.yy < bottom)
        cls = idx[choices[rng.integers(len(choices))]]
        painter.paint(image, region, cls, rng)
        label[region] = cls
        top = bottom
    things = [(name, shape) for group, shape in THINGS.items() for name in DATASET.planted_groups[group]]
    for _ in range(rng.integers(2, 5)):
        name, shape = things[rng.integers(len(things))]
        cls = idx[name]
        _, region = painter.shape(shape, rng)
        painter.paint(image, region, cls, rng)
        label[region] = cls
    return image, label


def paths(split: str, i: int) -> tuple[str, str]:
    city = "synthtown"
    sid = f"{city}_{i // 100:06d}_{i % 100:06d}"
    return f"leftImg8bit/{split}/{city}/{sid}_leftImg8bit.png", f"gtFine/{split}/{city}/{sid}_gtFine_labelTrainIds.png"


def save(rgb: Image.Image, label: np.ndarray, image_path: Path, mask_path: Path) -> None:
    rgb.save(image_path)
    Image.fromarray(label, "L").save(mask_path)


STANDIN = StandIn(DATASET, render, paths, save)

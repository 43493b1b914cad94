"""The demo's IIT Affordances stand-in: one or two tools on a background, each a bar made of parts (a knife's
handle and blade, a cup's body and handle ...) labelled with the parts' affordances, as IIT-AFF's objects are.
JPEGs under ``rgb/`` and palette masks under ``affordances_labels/``, the release's folder names."""

from __future__ import annotations

import numpy as np

from latentseg.datasets.iit import DATASET
from latentseg.prepare.standins.base import StandIn, jpeg_and_palette_png
from latentseg.prepare.standins.painter import Painter

# The release's ten object categories, as the parts along their long axis (one affordance each).
OBJECTS: dict[str, tuple[str, ...]] = {
    "knife": ("grasp", "cut"), "hammer": ("grasp", "pound"), "racket": ("grasp", "hit"),
    "cup": ("w-grasp", "contain"), "bottle": ("w-grasp", "contain"), "bowl": ("contain",),
    "pan": ("grasp", "contain"), "spatula": ("grasp", "support"), "tvm": ("display", "support"),
    "drill": ("grasp", "engine"),
}
_NAMES = sorted(OBJECTS)


def _bar(painter: Painter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A rotated bar: its mask and each pixel's position along its length, in [0, 1]."""
    h, w = painter.spec.size
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    half_len, half_wid = rng.uniform(0.25, 0.45) * min(h, w), rng.uniform(0.08, 0.18) * min(h, w)
    angle = rng.uniform(0, np.pi)
    along = (painter.xx - cx) * np.cos(angle) + (painter.yy - cy) * np.sin(angle)
    across = -(painter.xx - cx) * np.sin(angle) + (painter.yy - cy) * np.cos(angle)
    return (np.abs(along) <= half_len) & (np.abs(across) <= half_wid), (along + half_len) / (2 * half_len)


def render(painter: Painter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = painter.spec.size
    idx = {c: i for i, c in enumerate(DATASET.classes)}
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    painter.paint(image, np.ones((h, w), bool), 0, rng)
    for _ in range(rng.integers(1, 3)):
        parts = OBJECTS[_NAMES[rng.integers(len(_NAMES))]]
        region, position = _bar(painter, rng)
        cuts = [0.0, *sorted(rng.uniform(0.3, 0.7, len(parts) - 1)), 1.0 + 1e-6]
        for part, lo, hi in zip(parts, cuts[:-1], cuts[1:], strict=True):
            piece = region & (position >= lo) & (position < hi)
            painter.paint(image, piece, idx[part], rng)
            label[piece] = idx[part]
    return image, label


def paths(split: str, i: int) -> tuple[str, str]:
    sid = f"synth_{split[0]}{i:05d}"
    return f"rgb/{sid}.jpg", f"affordances_labels/{sid}.png"


STANDIN = StandIn(DATASET, render, paths, jpeg_and_palette_png(DATASET))

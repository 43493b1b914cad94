"""Painting the demo's stand-ins: each semantic class belongs to a planted supercategory, painted in the group's
colour with a faint stripe texture of its own (``prepare/synthetic.py`` says why), plus the shapes they fill."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from latentseg.data.classes import group_index

_GROUP_COLOURS = np.array([  # well separated RGB colours, one per planted group
    [110, 110, 110], [200, 60, 50], [60, 170, 70], [60, 90, 210], [220, 200, 60], [170, 80, 200],
    [60, 200, 200], [240, 140, 40],
], dtype=np.float32)


@dataclass(frozen=True)
class SyntheticSpec:
    name: str  # the data set it stands in for (a module of prepare/standins/)
    num_train: int
    num_val: int
    size: tuple[int, int]  # (H, W)
    seed: int = 0
    cue_strength: float = 30.0  # amplitude of the within-group stripe cue (0-255 scale)
    stripe_periods: tuple[float, ...] = (8.0, 14.0)  # pixels; four orientations per period
    noise: float = 12.0  # per-pixel Gaussian noise


class Painter:
    """Paints class regions with their group colour and class texture."""

    def __init__(self, classes: list[str], groups: dict[str, list[str]], spec: SyntheticSpec) -> None:
        self.group_of = group_index(classes, groups)
        self.spec = spec
        h, w = spec.size
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # Each class gets a distinct (orientation, period) stripe among the members of its group.
        self.stripes: list[tuple[float, float]] = []
        rank: dict[int, int] = {}
        for g in self.group_of:
            r = rank.get(g, 0)
            rank[g] = r + 1
            self.stripes.append((np.pi * (r % 4) / 4, spec.stripe_periods[(r // 4) % len(spec.stripe_periods)]))

    def texture(self, cls: int, phase: float) -> np.ndarray:
        angle, period = self.stripes[cls]
        t = self.xx * np.cos(angle) + self.yy * np.sin(angle)
        return np.sin(2 * np.pi * t / period + phase)

    def paint(self, image: np.ndarray, region: np.ndarray, cls: int, rng: np.random.Generator) -> None:
        colour = _GROUP_COLOURS[self.group_of[cls] % len(_GROUP_COLOURS)] + rng.normal(0, 8, 3)
        stripe = self.spec.cue_strength * self.texture(cls, rng.uniform(0, 2 * np.pi))
        image[region] = colour + stripe[region, None]


def ellipse(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, h: int, w: int) -> np.ndarray:
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
    if rng.random() < 0.5:
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` that touch a pixel outside it (VOC's 255 outline)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def finish(image: np.ndarray, spec: SyntheticSpec, rng: np.random.Generator) -> Image.Image:
    image = image + rng.normal(0, spec.noise, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")



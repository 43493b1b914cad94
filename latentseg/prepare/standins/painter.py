"""Painting the demo's stand-ins (``prepare/synthetic.py`` says why it paints this way): a planted group is a
silhouette (its stand-in chooses which) in a noisy colour of its own, and the classes of a group differ by a faint
stripe texture that recurs in every group."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from latentseg.data.classes import group_index

# One colour per planted group, jittered per region and shifted per image by ``finish`` (lighting): a noisy cue of
# the group, which the group's silhouette makes reliable (``prepare/synthetic.py``: why not colour-free).
_GROUP_COLOURS = np.array([
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
    stripe_periods: tuple[float, ...] = (5.0, 10.0)  # pixels; four orientations per period
    noise: float = 10.0  # per-pixel Gaussian noise
    colour_jitter: float = 20.0  # per-region standard deviation around its palette colour
    colour_cast: float = 25.0  # per-image standard deviation of a global RGB shift (lighting)


Polygon = list[tuple[float, float]]  # (x, y) vertices in pixels


def _centre(rng: np.random.Generator, h: int, w: int) -> tuple[float, float]:
    """A shape's centre, away from the borders so that most of it is in the image."""
    return float(rng.uniform(0.25, 0.75) * h), float(rng.uniform(0.25, 0.75) * w)


def _rectangle(cy: float, cx: float, ry: float, rx: float) -> Polygon:
    return [(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]


def _ellipse(cy: float, cx: float, ry: float, rx: float, n: int = 20) -> Polygon:
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))) for a in angle]


def wide_box(rng: np.random.Generator, h: int, w: int) -> Polygon:
    """A rectangle about twice as wide as tall (VOC's vehicles, Cityscapes' vehicles)."""
    cy, cx = _centre(rng, h, w)
    rx = rng.uniform(0.2, 0.34) * w
    return _rectangle(cy, cx, rx / rng.uniform(1.8, 2.6) * h / w, rx)


def blob(rng: np.random.Generator, h: int, w: int) -> Polygon:
    """A roundish ellipse (VOC's animals)."""
    cy, cx = _centre(rng, h, w)
    r = rng.uniform(0.14, 0.26) * min(h, w)
    a = rng.uniform(0.8, 1.25)
    return _ellipse(cy, cx, r * a, r / a)


def column(rng: np.random.Generator, h: int, w: int) -> Polygon:
    """A narrow upright ellipse, about three times as tall as wide (people)."""
    cy, cx = _centre(rng, h, w)
    ry = rng.uniform(0.22, 0.36) * h
    return _ellipse(cy, cx, ry, ry / rng.uniform(2.6, 3.6))


def triangle(rng: np.random.Generator, h: int, w: int) -> Polygon:
    """An upright triangle, flat side down (VOC's indoor objects)."""
    cy, cx = _centre(rng, h, w)
    half = rng.uniform(0.16, 0.28) * w
    height = rng.uniform(1.5, 2.2) * half * h / w
    return [(cx - half, cy + height / 2), (cx + half, cy + height / 2), (cx, cy - height / 2)]


def pole(rng: np.random.Generator, h: int, w: int) -> Polygon:
    """A thin vertical bar (Cityscapes' poles, lights and signs)."""
    cy, cx = _centre(rng, h, w)
    ry = rng.uniform(0.25, 0.4) * h
    return _rectangle(cy, cx, ry, rng.uniform(0.02, 0.04) * w + 1.0)


Shape = Callable[[np.random.Generator, int, int], Polygon]


def rasterise(polygon: Polygon, h: int, w: int) -> np.ndarray:
    """The pixels inside ``polygon``, as a boolean ``(h, w)`` mask."""
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).polygon([(round(x, 2), round(y, 2)) for x, y in polygon], fill=1)
    return np.asarray(canvas, dtype=bool)


class Painter:
    """Paints class regions: the group's colour, jittered, plus the class's stripe texture."""

    def __init__(self, classes: list[str], groups: dict[str, list[str]], spec: SyntheticSpec) -> None:
        self.group_of = group_index(classes, groups)
        self.spec = spec
        h, w = spec.size
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # The r-th class of every group gets the same (orientation, period) stripe: the texture tells the class
        # only together with the group's silhouette, never the group.
        self.stripes: list[tuple[float, float]] = []
        rank: dict[int, int] = {}
        for g in self.group_of:
            r = rank.get(g, 0)
            rank[g] = r + 1
            self.stripes.append((np.pi * (r % 4) / 4, spec.stripe_periods[(r // 4) % len(spec.stripe_periods)]))
        self.group_size = [self.group_of.count(g) for g in range(max(self.group_of) + 1)]

    def new_image(self) -> None:
        """Start an image (a hook for per-image state; the painter keeps none)."""

    def texture(self, cls: int, phase: float) -> np.ndarray:
        angle, period = self.stripes[cls]
        t = self.xx * np.cos(angle) + self.yy * np.sin(angle)
        return np.sin(2 * np.pi * t / period + phase)

    def paint(self, image: np.ndarray, region: np.ndarray, cls: int, rng: np.random.Generator) -> None:
        colour = _GROUP_COLOURS[self.group_of[cls] % len(_GROUP_COLOURS)] + rng.normal(0, self.spec.colour_jitter, 3)
        if self.group_size[self.group_of[cls]] == 1:  # a group of one (background, person) needs no class cue
            image[region] = colour
            return
        stripe = self.spec.cue_strength * self.texture(cls, rng.uniform(0, 2 * np.pi))
        image[region] = colour + stripe[region, None]

    def shape(self, draw: Shape, rng: np.random.Generator) -> tuple[Polygon, np.ndarray]:
        """A polygon drawn by ``draw`` on this painter's image size, and its mask."""
        h, w = self.spec.size
        polygon = [(float(np.clip(x, 0, w)), float(np.clip(y, 0, h))) for x, y in draw(rng, h, w)]
        return polygon, rasterise(polygon, h, w)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` that touch a pixel outside it (VOC's 255 outline)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def finish(image: np.ndarray, spec: SyntheticSpec, rng: np.random.Generator) -> Image.Image:
    """The image's lighting (a global colour cast and contrast), then sensor noise, as 8-bit RGB."""
    cast = rng.normal(0, spec.colour_cast, 3)
    contrast = rng.uniform(0.75, 1.25)
    image = (image - 128) * contrast + 128 + cast + rng.normal(0, spec.noise, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")

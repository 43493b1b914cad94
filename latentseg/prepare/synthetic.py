"""The embedded demo data sets, generated deterministically from a seed (nothing is stored in the repo).

Each semantic class belongs to a planted supercategory. A supercategory has its own colour, so supercategories
are easy to tell apart; the classes inside one share that colour and differ only by a faint stripe texture
(orientation and period), a subtler cue that a few labeled images teach poorly. That is the situation the paper's
latent classes are made for, and it lets tests check that the learned ``P(l|c)`` recovers the planted groups.

Two stand-ins are written in the prepared layout of ``data/layout.py``:

- ``voc``: 21 VOC class names (background + 20), VOC-like objects on a background, JPEGs under
  ``VOCdevkit/VOC2012`` and palette masks with a 1-pixel ignore (255) border around each object, as in VOC;
- ``cityscapes``: the 19 Cityscapes classes, stuff bands (sky, construction, nature, flat) with things (objects,
  humans, vehicles) on them, PNGs under ``leftImg8bit/`` and ``*_gtFine_labelTrainIds.png`` under ``gtFine/``.

``generate_coco`` writes the demo's stand-in for MS-COCO in COCO's own release format instead (the input of
``prepare/coco.py``, as the paper profile's MS-COCO is): ``<split><year>/*.jpg`` and
``annotations/instances_<split><year>.json``, with the VOC objects of ``voc`` under their COCO category names
and ids, fully visible objects as polygons, occluded ones as compressed RLE of their visible part, some crowd
regions as uncompressed RLE, and a few objects of non-VOC categories (painted like background, which is what
the preparation maps them to).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.data.classes import CITYSCAPES_CATEGORIES, CITYSCAPES_CLASSES, VOC_CLASSES, VOC_PALETTE, group_index
from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.prepare.coco import COCO_IDS, COCO_TO_VOC, decode_segmentation

# The demo's planted VOC groups: background alone, then four supercategories of VOC's classes.
VOC_PLANTED_GROUPS: dict[str, list[str]] = {
    "background": ["background"],
    "vehicle": ["aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"],
    "animal": ["bird", "cat", "cow", "dog", "horse", "sheep"],
    "person": ["person"],
    "indoor": ["bottle", "chair", "diningtable", "pottedplant", "sofa", "tvmonitor"],
}

_GROUP_COLOURS = np.array([  # well separated RGB colours, one per planted group
    [110, 110, 110], [200, 60, 50], [60, 170, 70], [60, 90, 210], [220, 200, 60], [170, 80, 200],
    [60, 200, 200], [240, 140, 40],
], dtype=np.float32)


@dataclass(frozen=True)
class SyntheticSpec:
    name: str  # "voc" or "cityscapes"
    num_train: int
    num_val: int
    size: tuple[int, int]  # (H, W)
    seed: int = 0
    cue_strength: float = 30.0  # amplitude of the within-group stripe cue (0-255 scale)
    stripe_periods: tuple[float, ...] = (8.0, 14.0)  # pixels; four orientations per period
    noise: float = 12.0  # per-pixel Gaussian noise


def planted_groups(name: str) -> dict[str, list[str]]:
    if name == "voc":
        return VOC_PLANTED_GROUPS
    if name == "cityscapes":
        return CITYSCAPES_CATEGORIES
    raise ValueError(f"no embedded data set named {name!r}; choose 'voc' or 'cityscapes'")


def classes_of(name: str) -> list[str]:
    return VOC_CLASSES if name == "voc" else CITYSCAPES_CLASSES


class _Painter:
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


def _ellipse(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, h: int, w: int) -> np.ndarray:
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
    if rng.random() < 0.5:
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` that touch a pixel outside it (VOC's 255 outline)."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def render_voc(painter: _Painter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = painter.spec.size
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    painter.paint(image, np.ones((h, w), bool), 0, rng)
    outline = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(1, len(VOC_CLASSES)))
        region = _ellipse(rng, painter.yy, painter.xx, h, w)
        painter.paint(image, region, cls, rng)
        label[region] = cls
        outline &= ~region
        outline |= _boundary(region)
    label[outline] = 255
    return image, label


def render_cityscapes(painter: _Painter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = painter.spec.size
    idx = {c: i for i, c in enumerate(CITYSCAPES_CLASSES)}
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
    things = ["pole", "traffic light", "traffic sign", "person", "rider", "car", "truck", "bus", "train",
              "motorcycle", "bicycle"]
    for _ in range(rng.integers(2, 5)):
        cls = idx[things[rng.integers(len(things))]]
        region = _ellipse(rng, painter.yy, painter.xx, h, w)
        painter.paint(image, region, cls, rng)
        label[region] = cls
    return image, label


def _finish(image: np.ndarray, spec: SyntheticSpec, rng: np.random.Generator) -> Image.Image:
    image = image + rng.normal(0, spec.noise, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def generate(spec: SyntheticSpec, out_dir: str | Path) -> DatasetMeta:
    """Write the embedded data set ``spec.name`` to ``out_dir`` in the prepared layout; same seed, same bytes."""
    out = Path(out_dir)
    classes = classes_of(spec.name)
    painter = _Painter(classes, planted_groups(spec.name), spec)
    render = render_voc if spec.name == "voc" else render_cityscapes
    lists: dict[str, list[Sample]] = {}
    for split, count in (("train", spec.num_train), ("val", spec.num_val)):
        # One generator per split, so the validation set does not change when the training set grows.
        rng = np.random.default_rng([spec.seed, 0 if split == "train" else 1])
        samples = []
        for i in range(count):
            image, label = render(painter, rng)
            rgb = _finish(image, spec, rng)
            if spec.name == "voc":
                sid = f"2000_{split[0]}{i:06d}"
                img_rel = f"VOCdevkit/VOC2012/JPEGImages/{sid}.jpg"
                mask_rel = f"VOCdevkit/VOC2012/SegmentationClass/{sid}.png"
            else:
                city = "synthtown"
                sid = f"{city}_{i // 100:06d}_{i % 100:06d}"
                img_rel = f"leftImg8bit/{split}/{city}/{sid}_leftImg8bit.png"
                mask_rel = f"gtFine/{split}/{city}/{sid}_gtFine_labelTrainIds.png"
            for rel in (img_rel, mask_rel):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if spec.name == "voc":
                rgb.save(out / img_rel, quality=95, subsampling=0)
                mask = Image.fromarray(label, "P")
                mask.putpalette(VOC_PALETTE)
            else:
                rgb.save(out / img_rel)
                mask = Image.fromarray(label, "L")
            mask.save(out / mask_rel)
            samples.append(Sample(img_rel, mask_rel))
        lists[split] = samples
        write_list(out / f"{split}.txt", samples)
    if spec.name == "voc":  # the image-set files that torchvision's VOC reader looks for
        sets = out / "VOCdevkit/VOC2012/ImageSets/Segmentation"
        for split, samples in lists.items():
            sets.mkdir(parents=True, exist_ok=True)
            (sets / f"{split}.txt").write_text("".join(s.id + "\n" for s in samples))
    meta = DatasetMeta(spec.name, classes, 255, spec.num_train, spec.num_val)
    meta = write_meta(out, meta)  # written last: its presence marks a complete data set
    return meta


# COCO categories that VOC lacks, for the demo's COCO stand-in: the preparation maps them to background.
_NON_VOC_COCO = {"giraffe": 25, "kite": 38}
_VOC_TO_COCO = {voc: coco for coco, voc in COCO_TO_VOC.items()}


def _shape_polygon(rng: np.random.Generator, h: int, w: int) -> list[float]:
    """An ellipse (16 vertices) or a rectangle, as a COCO polygon ``[x0, y0, x1, y1, ...]``."""
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
    if rng.random() < 0.5:
        angle = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        xs, ys = cx + rx * np.cos(angle), cy + ry * np.sin(angle)
    else:
        xs, ys = np.array([cx - rx, cx + rx, cx + rx, cx - rx]), np.array([cy - ry, cy - ry, cy + ry, cy + ry])
    xs, ys = np.clip(xs, 0, w), np.clip(ys, 0, h)
    return [round(float(v), 2) for xy in zip(xs, ys, strict=True) for v in xy]


def _uncompressed_rle(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE counts: run lengths in column-major order, the first run of zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def render_coco(painter: _Painter, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One image and its COCO annotations (without ids): ``category``, ``iscrowd``, ``segmentation``, ``area``."""
    from pycocotools import mask as mask_utils

    h, w = painter.spec.size
    image = np.zeros((h, w, 3), np.float32)
    painter.paint(image, np.ones((h, w), bool), 0, rng)
    objects = []
    for _ in range(rng.integers(1, 4)):
        draw = rng.random()
        if draw < 0.08:
            name = str(rng.choice(sorted(_NON_VOC_COCO)))
            cls = 0
        else:
            cls = int(rng.integers(1, len(VOC_CLASSES)))
            name = _VOC_TO_COCO[VOC_CLASSES[cls]]
        polygon = _shape_polygon(rng, h, w)
        region = decode_segmentation([polygon], h, w)
        painter.paint(image, region, cls, rng)
        objects.append((name, 0.08 <= draw < 0.14, polygon, region))
    annotations = []
    for i, (name, crowd, polygon, region) in enumerate(objects):
        visible = region.copy()
        for *_, later in objects[i + 1:]:
            visible &= ~later
        if not visible.any():
            continue
        if crowd:
            segmentation: list | dict = {"counts": _uncompressed_rle(visible), "size": [h, w]}
        elif (visible == region).all():
            segmentation = [polygon]
        else:
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            segmentation = {"counts": rle["counts"].decode("ascii"), "size": [h, w]}
        ys, xs = np.nonzero(visible)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        annotations.append({"category": name, "iscrowd": int(crowd), "segmentation": segmentation,
                            "area": int(visible.sum()), "bbox": bbox})
    return image, annotations


def coco_file_name(split: str, year: int, image_id: int) -> str:
    """COCO's file names: ``000000000009.jpg`` from 2017 on, ``COCO_train2014_000000000009.jpg`` before."""
    return f"{image_id:012d}.jpg" if year >= 2017 else f"COCO_{split}{year}_{image_id:012d}.jpg"


def generate_coco(spec: SyntheticSpec, out_dir: str | Path, year: int = 2017) -> Path:
    """Write the demo's COCO-format stand-in for MS-COCO to ``out_dir`` (``spec.name`` must be "voc")."""
    if spec.name != "voc":
        raise ValueError("the COCO-format stand-in holds the VOC classes; use a 'voc' spec")
    out = Path(out_dir)
    painter = _Painter(VOC_CLASSES, VOC_PLANTED_GROUPS, spec)
    ids = {**COCO_IDS, **_NON_VOC_COCO}
    categories = [{"id": i, "name": n, "supercategory": "demo"} for n, i in sorted(ids.items(), key=lambda t: t[1])]
    for split, count, first_id in (("train", spec.num_train, 1), ("val", spec.num_val, 1_000_001)):
        rng = np.random.default_rng([spec.seed, 2 if split == "train" else 3])
        folder = out / f"{split}{year}"
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for image_id in range(first_id, first_id + count):
            image, anns = render_coco(painter, rng)
            name = coco_file_name(split, year, image_id)
            _finish(image, spec, rng).save(folder / name, quality=95, subsampling=0)
            images.append({"id": image_id, "file_name": name, "height": spec.size[0], "width": spec.size[1]})
            for ann in anns:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": ids[ann.pop("category")], **ann})
        doc = {"info": {"description": "latentseg demo stand-in for MS-COCO", "year": year}, "licenses": [],
               "images": images, "annotations": annotations, "categories": categories}
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        (out / "annotations" / f"instances_{split}{year}.json").write_text(json.dumps(doc))
    return out

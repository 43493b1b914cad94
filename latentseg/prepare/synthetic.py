"""The embedded demo data sets, generated deterministically from a seed (nothing is stored in the repo).

Design (issue #18): the data are made so that the paper's mechanism has something to do.

- **A planted group is a silhouette or a place, not only a colour.** VOC: vehicles are wide boxes, animals round
  blobs, people narrow upright columns, indoor objects upright triangles, background the field behind them.
  Cityscapes: the stuff groups are bands in a fixed top-to-bottom order (sky, construction, nature, flat), the
  thing groups silhouettes (objects thin poles, humans columns, vehicles wide boxes). IIT: the affordance parts
  keep their place along a tool's bar. A group is learnable from few labels: each group has several classes, so
  a labeled set holds several times more examples of a group than of any one class.
- **The members of a group look alike.** They share the silhouette; what tells them apart is a faint stripe texture
  (orientation and period), of lower contrast than a silhouette's edge against what it covers; the r-th class of
  every group has the same stripe. The texture therefore names a class only together with its group's silhouette:
  it says nothing of the group (so the latent branch, whose coarser task is the group, has no reason to group by
  texture), and a class differs from its group's other members by a subtle cue but from the same-texture members of
  other groups by a bold one.
- **Colour is a noisy cue of the group, and appearance varies from image to image.** Each group keeps a colour,
  jittered per region (``colour_jitter``, 20 on the 0-255 scale, where the old generator's was 8), and each image
  gets its own lighting (a global colour cast, ``colour_cast``, and a contrast), so that neighbouring group colours
  overlap in some images and the silhouette is what tells the groups apart reliably. A colour-free version (one
  palette for all classes) was tried first: with the tiny trunk and the demo's CPU budget, neither the COCO
  stand-in's pretraining nor the runs learned anything but background (VOC 1/8 mIoU 4-6 %, effective latent
  classes 0-1), so the demo could show nothing; the colour stays, made less decisive than before.

Why the semantic branch should confuse groups on unlabeled images where the latent task does not: a 1/8 split of
VOC's 500 images holds ~60 labeled images, about 6 examples per object class, each in one jittered colour and
lighting. Fitting 21 classes to so few examples, the semantic branch can pick up accidental cues (the colour shades
and lightings its few examples of a class happened to have, the stripe alone) that do not carry over to the
unlabeled images, whose shades and lightings are others: on them it mixes classes across groups (a striped box read
as a striped blob of the same stripe, an orange-lit vehicle as an animal). The latent branch's targets are ~5
groups, each with ~6x more labeled examples in many colours, whose one reliable cue is the silhouette: on unlabeled
images its group is more often right, and eq. (9) pulls the semantic prediction's group mass (eq. 6) towards it.
The split is random, so the shift between labeled and unlabeled images is not planted by the generator: it comes
from per-image appearance and the small labeled sample. This is the design's hypothesis; the mechanism study says
whether it holds (benchmarks/README.md: the demo's 30 steps are too few to tell).

Two stand-ins are written in the prepared layout of ``data/layout.py`` (and IIT's, ``standins/iit.py``):

- ``voc``: 21 VOC class names (background + 20), objects on a background, JPEGs under ``VOCdevkit/VOC2012`` and
  palette masks with a 1-pixel ignore (255) border around each object, as in VOC;
- ``cityscapes``: the 19 Cityscapes classes, stuff bands with things on them, PNGs under ``leftImg8bit/`` and
  ``*_gtFine_labelTrainIds.png`` under ``gtFine/``.

``generate_coco`` writes the demo's stand-in for MS-COCO in COCO's own release format instead (the input of
``prepare/coco.py``, as the paper profile's MS-COCO is): ``<split><year>/*.jpg`` and
``annotations/instances_<split><year>.json``, with the VOC objects of ``voc`` (the same painter and silhouettes,
so the pretraining learns what the VOC stand-in shows) under their COCO category names and ids, fully visible
objects as polygons, occluded ones as compressed RLE of their visible part, some crowd regions as uncompressed
RLE, and a few objects of non-VOC categories (painted like background, blobs, which is what the preparation maps
them to).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.datasets.voc import DATASET as VOC
from latentseg.prepare import standins
from latentseg.prepare.coco import COCO_IDS, COCO_TO_VOC, decode_segmentation
from latentseg.prepare.standins.painter import Painter, SyntheticSpec, blob, finish
from latentseg.prepare.standins.voc import SHAPE_OF

__all__ = ["SyntheticSpec", "generate", "generate_coco"]


def generate(spec: SyntheticSpec, out_dir: str | Path) -> DatasetMeta:
    """Write the embedded data set ``spec.name`` to ``out_dir`` in the prepared layout; same seed, same bytes."""
    out = Path(out_dir)
    standin = standins.get(spec.name)
    classes = list(standin.dataset.classes)
    painter = Painter(classes, standin.dataset.planted_groups, spec)
    lists: dict[str, list[Sample]] = {}
    for split, count in (("train", spec.num_train), ("val", spec.num_val)):
        # One generator per split, so the validation set does not change when the training set grows.
        rng = np.random.default_rng([spec.seed, 0 if split == "train" else 1])
        samples = []
        for i in range(count):
            painter.new_image()
            image, label = standin.render(painter, rng)
            rgb = finish(image, spec, rng)
            img_rel, mask_rel = standin.paths(split, i)
            for rel in (img_rel, mask_rel):
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
            standin.save(rgb, label, out / img_rel, out / mask_rel)
            samples.append(Sample(img_rel, mask_rel))
        lists[split] = samples
        write_list(out / f"{split}.txt", samples)
    if standin.extra is not None:
        standin.extra(out, lists)
    meta = DatasetMeta(spec.name, classes, standin.dataset.ignore_index, spec.num_train, spec.num_val)
    meta = write_meta(out, meta)  # written last: its presence marks a complete data set
    return meta


# COCO categories that VOC lacks, for the demo's COCO stand-in: the preparation maps them to background.
_NON_VOC_COCO = {"giraffe": 25, "kite": 38}
_VOC_TO_COCO = {voc: coco for coco, voc in COCO_TO_VOC.items()}


def _uncompressed_rle(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE counts: run lengths in column-major order, the first run of zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def render_coco(painter: Painter, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One image and its COCO annotations (without ids): ``category``, ``iscrowd``, ``segmentation``, ``area``."""
    from pycocotools import mask as mask_utils

    h, w = painter.spec.size
    image = np.zeros((h, w, 3), np.float32)
    painter.new_image()
    painter.paint(image, np.ones((h, w), bool), 0, rng)
    objects = []
    for _ in range(rng.integers(1, 4)):
        draw = rng.random()
        if draw < 0.08:
            name = str(rng.choice(sorted(_NON_VOC_COCO)))
            cls = 0
        else:
            cls = int(rng.integers(1, len(VOC.classes)))
            name = _VOC_TO_COCO[VOC.classes[cls]]
        outline, _ = painter.shape(SHAPE_OF.get(cls, blob), rng)
        polygon = [round(v, 2) for xy in outline for v in xy]
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
    """Write the demo's COCO-format stand-in for MS-COCO to ``out_dir`` (a spec of VOC's stand-in)."""
    if spec.name != VOC.name:
        raise ValueError(f"the COCO-format stand-in holds the VOC classes; use a {VOC.name!r} spec")
    out = Path(out_dir)
    painter = Painter(list(VOC.classes), VOC.planted_groups, spec)
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
            finish(image, spec, rng).save(folder / name, quality=95, subsampling=0)
            images.append({"id": image_id, "file_name": name, "height": spec.size[0], "width": spec.size[1]})
            for ann in anns:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": ids[ann.pop("category")], **ann})
        doc = {"info": {"description": "latentseg demo stand-in for MS-COCO", "year": year}, "licenses": [],
               "images": images, "annotations": annotations, "categories": categories}
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        (out / "annotations" / f"instances_{split}{year}.json").write_text(json.dumps(doc))
    return out

"""MS-COCO as a VOC-class segmentation data set: what the COCO-pretrained DeepLab-v2 was trained on.

The paper starts from Hung et al.'s COCO-pretrained DeepLab-v2, whose 21-way head predicts the VOC classes. To
rebuild those weights when the released file cannot be had, this module turns COCO's instance annotations
into VOC-style class masks, in the prepared layout of ``data/layout.py``; ``latentseg.weights`` then pretrains on it.

Which pixels get which label (**decision**, after DeepLab's COCO pretraining as Chen et al. describe it for
DeepLab-v3, and torchvision's ``references/segmentation`` COCO conversion):

- the 20 COCO categories that are VOC classes (``COCO_TO_VOC``: airplane -> aeroplane, couch -> sofa, tv ->
  tvmonitor, ...) keep their class; every other COCO category, and unannotated pixels, are **background**;
- pixels claimed by instances of two different VOC classes are ignored (255): COCO's polygons overlap where
  objects occlude each other, and neither label is reliably right there;
- crowd regions (``iscrowd=1``) of a VOC class are ignored where no single instance claims them: a crowd's
  outline is coarse and mixes the objects with what lies between them;
- an image is kept only if its non-crowd VOC instances cover at least ``min_area`` pixels (DeepLab-v3:
  1,000), so images without VOC objects do not flood the set with background.

Prepared folder::

    <out>/dataset.json, train.txt, val.txt       # latentseg.data.layout; classes: the 21 VOC names
    <out>/images/<split><year>/<file name>       # hard links to the raw images (or copies)
    <out>/masks/<split><year>/<stem>.png         # palette PNGs: VOC class index or 255

The raw release is a folder holding ``annotations/instances_<split><year>.json`` and ``<split><year>/`` images
(argument ``source``, else ``$LATENTSEG_COCO_ROOT``, else the official zips downloaded into ``raw_dir``).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.datasets.voc import VOC_CLASSES, VOC_PALETTE
from latentseg.prepare.download import Remote
from latentseg.prepare.parallel import link_or_copy, parallel_map, save_png
from latentseg.prepare.releases import Archive, Release, find_release
from latentseg.prepare.validate import DataError, check_prepared

log = logging.getLogger(__name__)

COCO_ENV = "LATENTSEG_COCO_ROOT"
IGNORE = 255

# COCO category name -> VOC class name, for the 20 categories VOC shares with COCO.
COCO_TO_VOC: dict[str, str] = {
    "airplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat", "bottle": "bottle",
    "bus": "bus", "car": "car", "cat": "cat", "chair": "chair", "cow": "cow", "dining table": "diningtable",
    "dog": "dog", "horse": "horse", "motorcycle": "motorbike", "person": "person", "potted plant": "pottedplant",
    "sheep": "sheep", "couch": "sofa", "train": "train", "tv": "tvmonitor",
}
# Their official COCO category ids (the same in the 2014 and 2017 annotations).
COCO_IDS: dict[str, int] = {
    "person": 1, "bicycle": 2, "car": 3, "motorcycle": 4, "airplane": 5, "bus": 6, "train": 7, "boat": 9,
    "bird": 16, "cat": 17, "dog": 18, "horse": 19, "sheep": 20, "cow": 21, "bottle": 44, "chair": 62,
    "couch": 63, "potted plant": 64, "dining table": 67, "tv": 72,
}

# Official archives (cocodataset.org). COCO publishes no checksums; these SHA-256 values (and sizes) are the
# ones TensorFlow Datasets records for the same URLs (tensorflow_datasets/url_checksums/coco.txt).
_HOST = "http://images.cocodataset.org"
COCO_REMOTES: dict[int, dict[str, Remote]] = {
    2014: {
        "train": Remote((f"{_HOST}/zips/train2014.zip",), "train2014.zip",  # 13,510,573,713 bytes
                        sha256="ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775"),
        "val": Remote((f"{_HOST}/zips/val2014.zip",), "val2014.zip",  # 6,645,013,297 bytes
                      sha256="fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0"),
        "annotations": Remote((f"{_HOST}/annotations/annotations_trainval2014.zip",),
                              "annotations_trainval2014.zip",  # 252,872,794 bytes
                              sha256="031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009"),
    },
    2017: {
        "train": Remote((f"{_HOST}/zips/train2017.zip",), "train2017.zip",  # 19,336,861,798 bytes
                        sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929"),
        "val": Remote((f"{_HOST}/zips/val2017.zip",), "val2017.zip",  # 815,585,330 bytes
                      sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05"),
        "annotations": Remote((f"{_HOST}/annotations/annotations_trainval2017.zip",),
                              "annotations_trainval2017.zip",  # 252,907,541 bytes
                              sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268"),
    },
}

SPLITS = ("train", "val")


def voc_index(category_name: str) -> int | None:
    """The VOC class index of a COCO category (by its COCO name, or its VOC name), None for non-VOC ones."""
    name = COCO_TO_VOC.get(category_name, category_name)
    return VOC_CLASSES.index(name) if name in VOC_CLASSES and name != "background" else None


def decode_segmentation(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, uncompressed RLE or compressed RLE) as a (H, W) bool mask."""
    from pycocotools import mask as mask_utils  # imported here: only preparation needs it

    if isinstance(segmentation, list):  # polygons: [x0, y0, x1, y1, ...] each
        polygons = [p for p in segmentation if len(p) >= 6]  # a polygon needs three points
        if not polygons:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE (crowd regions)
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:  # compressed RLE, counts as a string
        rle = segmentation
    with warnings.catch_warnings():  # pycocotools 2.0 on numpy 2 warns about its own __array__, harmlessly
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def coco_label_map(height: int, width: int, instances: list[tuple[int, bool, list | dict]]) -> np.ndarray:
    """The (H, W) uint8 VOC label map of one image from its ``(voc class, iscrowd, segmentation)`` instances.

    The rules of the module docstring: background where nothing (or a non-VOC object) is, the class where one
    VOC class claims a pixel, 255 where two classes overlap and where only a crowd region claims it.
    """
    label = np.zeros((height, width), np.uint8)
    conflict = np.zeros((height, width), bool)
    crowd = np.zeros((height, width), bool)
    for cls, is_crowd, segmentation in instances:
        mask = decode_segmentation(segmentation, height, width)
        if mask.shape != (height, width):
            raise DataError(f"a segmentation of size {mask.shape} in an image of {height}x{width}")
        if is_crowd:
            crowd |= mask
            continue
        conflict |= mask & (label != 0) & (label != cls)
        label[mask] = cls
    label[conflict] = IGNORE
    label[crowd & (label == 0)] = IGNORE
    return label


@dataclass(frozen=True)
class CocoImage:
    file_name: str
    height: int
    width: int
    instances: list[tuple[int, bool, list | dict]]  # VOC instances only: (class, iscrowd, segmentation)
    voc_area: float  # pixels of its non-crowd VOC instances, from the annotations' ``area``


def read_instances(path: str | Path) -> list[CocoImage]:
    """The images of a COCO ``instances_*.json``, each with its VOC-class instances."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path} cannot be read as COCO annotations ({err}); extract it again") from err
    missing = [k for k in ("images", "annotations", "categories") if k not in doc]
    if missing:
        raise DataError(f"{path} lacks {missing}: not a COCO instances file")
    cat_to_voc = {c["id"]: voc_index(c["name"]) for c in doc["categories"]}
    found = {VOC_CLASSES[i] for i in cat_to_voc.values() if i is not None}
    if len(found) < len(VOC_CLASSES) - 1:
        log.warning("%s: no COCO category for VOC classes %s", path, sorted(set(VOC_CLASSES[1:]) - found))
    instances: dict[int, list[tuple[int, bool, list | dict]]] = {}
    areas: dict[int, float] = {}
    for ann in doc["annotations"]:
        cls = cat_to_voc.get(ann["category_id"])
        if cls is None:
            continue
        crowd = bool(ann.get("iscrowd", 0))
        instances.setdefault(ann["image_id"], []).append((cls, crowd, ann["segmentation"]))
        if not crowd:
            areas[ann["image_id"]] = areas.get(ann["image_id"], 0.0) + float(ann.get("area", 0.0))
    return [CocoImage(img["file_name"], int(img["height"]), int(img["width"]), instances.get(img["id"], []),
                      areas.get(img["id"], 0.0)) for img in doc["images"]]


def coco_release(year: int, remotes: Mapping[str, Remote] | None = None) -> Release:
    """COCO ``year``: the three zips of ``remotes`` (``{"train", "val", "annotations"}``: a mirror, the tests), else
    the official ones; each extracted into ``coco<year>/<part>``, joined in ``coco<year>/root``."""
    remotes = remotes or COCO_REMOTES.get(year, {})
    members = {"annotations": tuple(f"annotations/instances_{s}{year}.json" for s in SPLITS),
               **{s: (f"{s}{year}",) for s in SPLITS}}
    unknown = sorted(set(remotes) - set(members))
    if unknown:
        raise ValueError(f"COCO remotes {unknown} are no COCO archive; name {sorted(members)}")

    def is_root(path: Path) -> bool:
        return all((path / "annotations" / f"instances_{s}{year}.json").is_file() and (path / f"{s}{year}").is_dir()
                   for s in SPLITS)

    return Release(
        name=f"COCO {year} release",
        archives=tuple(Archive(remote, members[part], f"coco{year}/{part}") for part, remote in remotes.items()),
        env=COCO_ENV,
        is_root=is_root,
        layout=f"annotations/instances_{{train,val}}{year}.json, train{year}/ and val{year}/",
        roots=("", "coco", f"coco{year}"),
        joined=f"coco{year}/root",
    )


def _prepare_one(job: tuple[str, str, str, int, int, list]) -> None:
    """Link one image and write its mask; existing outputs are complete (atomic writes) and kept."""
    image_src, image_dst, mask_dst, height, width, instances = job
    link_or_copy(image_src, image_dst)
    if os.path.exists(mask_dst):
        return
    try:
        label = coco_label_map(height, width, instances)
    except (DataError, ValueError) as err:
        raise DataError(f"{image_src}: its COCO annotations do not decode ({err}); extract them again") from err
    png = Image.fromarray(label, "P")
    png.putpalette(VOC_PALETTE)
    save_png(png, mask_dst)


def prepare_coco(out_dir: str | Path, raw_dir: str | Path, *, year: int = 2017, source: str | Path | None = None,
                 min_area: float = 1000, download: bool = True, remotes: dict[str, Remote] | None = None,
                 workers: int | None = None, check: bool = True, verify_checksum: bool = True) -> DatasetMeta:
    """Write COCO's VOC-class masks in the prepared layout in ``out_dir`` (see the module docstring).

    The release is found by ``releases.find_release``: ``source`` (else ``$LATENTSEG_COCO_ROOT``) is the extracted
    release or a folder holding its zips; else the zips in ``raw_dir``, downloaded first if ``download``.
    ``verify_checksum=False`` accepts zips of yours whose checksum is not the official one."""
    out_dir = Path(out_dir)
    root = find_release(coco_release(year, remotes), raw_dir, source, download=download,
                        verify_checksum=verify_checksum)
    lists: dict[str, list[Sample]] = {}
    for split in SPLITS:
        folder = f"{split}{year}"
        images = read_instances(root / "annotations" / f"instances_{folder}.json")
        kept = [im for im in images if im.voc_area >= min_area]
        log.info("COCO %s: %d of %d images have >= %s pixels of VOC objects", folder, len(kept), len(images),
                 min_area)
        for sub in ("images", "masks"):
            (out_dir / sub / folder).mkdir(parents=True, exist_ok=True)
        samples, jobs = [], []
        for im in sorted(kept, key=lambda im: im.file_name):
            sample = Sample(f"images/{folder}/{im.file_name}", f"masks/{folder}/{Path(im.file_name).stem}.png")
            src = root / folder / im.file_name
            if not src.is_file():
                raise FileNotFoundError(f"{src} is named in instances_{folder}.json but missing; the release "
                                        "is incomplete: extract (or download) it again")
            jobs.append((str(src), str(out_dir / sample.image), str(out_dir / sample.mask), im.height, im.width,
                         im.instances))
            samples.append(sample)
        parallel_map(_prepare_one, jobs, workers=workers, desc=f"COCO {folder}")
        write_list(out_dir / f"{split}.txt", samples)
        lists[split] = samples
    if not lists["train"]:
        raise DataError(f"no COCO {year} training image has >= {min_area} pixels of VOC objects")
    meta = DatasetMeta("coco", list(VOC_CLASSES), IGNORE, len(lists["train"]), len(lists["val"]))
    meta = write_meta(out_dir, meta)  # written last: its presence marks a complete data set
    if check:
        check_prepared(out_dir, workers=workers, progress=False)
    return meta

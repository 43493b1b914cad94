"""Small stand-ins for the official release archives, in their exact layouts (for tests and benchmarks).

- ``make_voc_tar``: ``VOCtrainval_11-May-2012.tar`` with ``VOCdevkit/VOC2012/{JPEGImages, SegmentationClass,
  ImageSets/Segmentation/{train,val,trainval}.txt, Annotations}``; masks are palette PNGs with a 255 band
  around each object, as VOC's are.
- ``make_sbd_tgz``: ``benchmark.tgz`` with ``benchmark_RELEASE/dataset/{img, cls/*.mat, train.txt, val.txt}``;
  each ``.mat`` holds the ``GTcls`` struct (``Segmentation``, ``Boundaries``, ``CategoriesPresent``).
- ``make_cityscapes_zips``: ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` with
  ``{leftImg8bit,gtFine}/{train,val,test}/<city>/...`` trees plus the README / license.txt at the top.

Content is random but deterministic (seeded); ids and sizes are the caller's.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.datasets.voc import DATASET as VOC
from latentseg.datasets.voc import VOC_PALETTE


def _seed(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text))  # stable across runs, unlike hash()


def _jpeg(rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    w, h = size
    base = rng.integers(0, 256, size=(1, 1, 3))
    noise = rng.integers(-40, 40, size=(h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _png(array: np.ndarray, palette: list[int] | None = None) -> bytes:
    img = Image.fromarray(array)
    if palette is not None:
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def blob_mask(key: str, size: tuple[int, int], num_classes: int, *, border: int | None = None) -> np.ndarray:
    """A (H, W) uint8 map: background and one rectangle of a class picked from ``key``;
    ``border`` (255 for VOC) draws a 1-pixel band around the rectangle."""
    rng = np.random.default_rng(_seed(key))
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    x0, y0 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
    x1, y1 = int(rng.integers(x0 + 2, w - 1)), int(rng.integers(y0 + 2, h - 1))
    if border is not None:
        mask[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = border
    mask[y0:y1, x0:x1] = int(rng.integers(1, num_classes))
    return mask


class _TarWriter:
    def __init__(self, path: Path, mode: str):
        self.tar = tarfile.open(path, mode)  # noqa: SIM115 - closed in close()

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 1_336_000_000, 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()


def _ids_text(ids: Iterable[str]) -> bytes:
    return "".join(f"{i}\n" for i in ids).encode()


def make_voc_tar(
    path: str | Path,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    *,
    extra_image_ids: Sequence[str] = (),
    size: tuple[int, int] = (48, 40),
) -> Path:
    """VOC 2012 trainval tar: masks for train + val ids, JPEGs also for ``extra_image_ids`` (VOC's
    JPEGImages holds every image of the release, SBD's included)."""
    path = Path(path)
    root = "VOCdevkit/VOC2012"
    tar = _TarWriter(path, "w")
    for image_id in sorted({*train_ids, *val_ids, *extra_image_ids}):
        tar.add(f"{root}/JPEGImages/{image_id}.jpg", _jpeg(np.random.default_rng(_seed(image_id)), size))
        tar.add(f"{root}/Annotations/{image_id}.xml", b"<annotation></annotation>\n")
    for image_id in sorted({*train_ids, *val_ids}):
        mask = blob_mask(VOC.name + image_id, size, 21, border=255)
        tar.add(f"{root}/SegmentationClass/{image_id}.png", _png(mask, VOC_PALETTE))
    sets = f"{root}/ImageSets/Segmentation"
    tar.add(f"{sets}/train.txt", _ids_text(train_ids))
    tar.add(f"{sets}/val.txt", _ids_text(val_ids))
    tar.add(f"{sets}/trainval.txt", _ids_text(sorted({*train_ids, *val_ids})))
    tar.close()
    return path


def sbd_struct(mask: np.ndarray) -> dict:
    """The ``GTcls`` struct of an SBD ``cls/<id>.mat`` file for a class map."""
    from scipy.sparse import csc_matrix

    boundaries = np.empty((20, 1), dtype=object)
    for c in range(20):
        boundaries[c, 0] = csc_matrix(mask.shape, dtype=np.uint8)
    present = np.unique(mask[(mask > 0) & (mask < 255)]).astype(np.uint8)
    return {"Boundaries": boundaries, "Segmentation": mask, "CategoriesPresent": present}


def make_sbd_tgz(
    path: str | Path, train_ids: Sequence[str], val_ids: Sequence[str], *, size: tuple[int, int] = (48, 40)
) -> Path:
    from scipy.io import savemat

    path = Path(path)
    root = "benchmark_RELEASE/dataset"
    tar = _TarWriter(path, "w:gz")
    for image_id in sorted({*train_ids, *val_ids}):
        tar.add(f"{root}/img/{image_id}.jpg", _jpeg(np.random.default_rng(_seed(image_id)), size))
        buf = io.BytesIO()
        savemat(buf, {"GTcls": sbd_struct(blob_mask("sbd" + image_id, size, 21))}, do_compression=True)
        tar.add(f"{root}/cls/{image_id}.mat", buf.getvalue())
    tar.add(f"{root}/train.txt", _ids_text(train_ids))
    tar.add(f"{root}/val.txt", _ids_text(val_ids))
    tar.close()
    return path


def cityscapes_stems(cities: dict[str, Sequence[str]], per_city: int) -> dict[str, list[tuple[str, str]]]:
    """``{split: [(city, stem), ...]}`` with stems ``<city>_000000_0000NN``."""
    return {
        split: [(city, f"{city}_{0:06d}_{19 + k:06d}") for city in names for k in range(per_city)]
        for split, names in cities.items()
    }


def cityscapes_label_ids(stem: str, size: tuple[int, int]) -> np.ndarray:
    """A labelIds map using every kind of id: evaluated (road 7, car 26, ...), ignored (0..6, 9, ...)."""
    rng = np.random.default_rng(_seed(stem))
    w, h = size
    ids = np.array([0, 1, 4, 7, 8, 11, 17, 21, 23, 24, 26, 28, 33], np.uint8)
    return ids[rng.integers(0, len(ids), size=(h // 4 + 1, w // 4 + 1))].repeat(4, 0).repeat(4, 1)[:h, :w]


def make_cityscapes_zips(
    folder: str | Path,
    cities: dict[str, Sequence[str]] | None = None,
    *,
    per_city: int = 2,
    size: tuple[int, int] = (64, 32),
) -> tuple[Path, Path]:
    """The two fine-annotation release zips in ``folder``; returns (leftImg8bit zip, gtFine zip)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cities = cities or {"train": ["aachen", "bochum"], "val": ["frankfurt"], "test": ["berlin"]}
    images = zipfile.ZipFile(folder / "leftImg8bit_trainvaltest.zip", "w", zipfile.ZIP_STORED)
    labels = zipfile.ZipFile(folder / "gtFine_trainvaltest.zip", "w", zipfile.ZIP_STORED)
    with images, labels:
        for archive in (images, labels):
            archive.writestr("README", "mock Cityscapes release\n")
            archive.writestr("license.txt", "for tests only\n")
        w, h = size
        for split, items in cityscapes_stems(cities, per_city).items():
            for city, stem in items:
                rng = np.random.default_rng(_seed(stem))
                rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                images.writestr(f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", _png(rgb))
                base = f"gtFine/{split}/{city}/{stem}_gtFine_"
                ids = cityscapes_label_ids(stem, size)
                labels.writestr(base + "labelIds.png", _png(ids))
                labels.writestr(base + "instanceIds.png", _png(ids.astype(np.uint16) * 1000))
                labels.writestr(base + "color.png", _png(np.stack([ids * 7] * 3, axis=-1)))
                polygons = {"imgHeight": h, "imgWidth": w, "objects": []}
                labels.writestr(base + "polygons.json", json.dumps(polygons))
    return folder / "leftImg8bit_trainvaltest.zip", folder / "gtFine_trainvaltest.zip"


def make_coco_zips(coco_root: str | Path, folder: str | Path, year: int = 2017) -> dict[str, Path]:
    """COCO's three release zips (``<split><year>.zip`` with ``<split><year>/*.jpg``, and
    ``annotations_trainval<year>.zip`` with ``annotations/*.json``) made from a COCO-format folder such as
    ``synthetic.generate_coco`` writes; the annotations zip also holds a captions file, as the real one does."""
    coco_root, folder = Path(coco_root), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "val"):
        out[split] = folder / f"{split}{year}.zip"
        with zipfile.ZipFile(out[split], "w", zipfile.ZIP_STORED) as archive:
            for image in sorted((coco_root / f"{split}{year}").iterdir()):
                archive.write(image, f"{split}{year}/{image.name}")
    out["annotations"] = folder / f"annotations_trainval{year}.zip"
    with zipfile.ZipFile(out["annotations"], "w", zipfile.ZIP_DEFLATED) as archive:
        for split in ("train", "val"):
            name = f"annotations/instances_{split}{year}.json"
            archive.write(coco_root / name, name)
            archive.writestr(f"annotations/captions_{split}{year}.json", json.dumps({"annotations": []}))
    return out

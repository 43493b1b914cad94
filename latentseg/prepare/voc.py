"""Pascal VOC 2012 + SBD ("VOC aug"): download, extract, merge into the prepared layout.

The training set of the field (Hung et al., Mittal et al., the paper) is
``VOC train ∪ SBD train ∪ SBD val`` minus ``VOC val``: 10,582 ids; validation is VOC val (1,449 ids).

Which mask wins when both annotate an image (1,464 VOC train ids, most also in SBD): **VOC's own**
``SegmentationClass`` PNG. It is the official annotation, the one the validation set is scored against,
and it carries the 255 band on object boundaries that training ignores; SBD's masks (converted from
``cls/<id>.mat``, ``GTcls.Segmentation``) are used for the ids VOC does not segment.

Prepared folder::

    <out>/dataset.json, train.txt, val.txt                  # latentseg.data.layout
    <out>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg             # hard links to the raw files (or copies)
    <out>/VOCdevkit/VOC2012/SegmentationClass/<id>.png      # palette PNGs, class index or 255
    <out>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt   # train = the 10,582 aug ids

so ``torchvision.datasets.VOCSegmentation(out, year="2012", image_set="train")`` reads it too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.datasets.voc import DATASET, VOC_CLASSES, VOC_PALETTE
from latentseg.prepare.download import Remote
from latentseg.prepare.parallel import link_or_copy, parallel_map, save_png
from latentseg.prepare.releases import Archive, Release, find_release
from latentseg.prepare.validate import DataError, check_prepared
from latentseg.util.files import atomic_write_text

log = logging.getLogger(__name__)

# URLs and MD5s as recorded by torchvision 0.29 (torchvision/datasets/voc.py, sbd.py); the VOC mirror
# host.robots.ox.ac.uk is the address on the VOC2012 page and is tried second.
VOC2012_TRAINVAL = Remote(
    urls=(
        "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    ),
    filename="VOCtrainval_11-May-2012.tar",
    md5="6cd6e144f989b92b3379bac3b3de84fd",
)
SBD_BENCHMARK = Remote(
    urls=(
        "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
    ),
    filename="benchmark.tgz",
    md5="82b4d87ceb2ed10f6038a1cba92111cb",
)

VOC_ENV, SBD_ENV = "LATENTSEG_VOC_ROOT", "LATENTSEG_SBD_ROOT"
PREPARED_ROOT = Path("VOCdevkit", "VOC2012")


def _is_voc_root(path: Path) -> bool:
    return (path / "JPEGImages").is_dir() and (path / "ImageSets" / "Segmentation").is_dir()


def _is_sbd_root(path: Path) -> bool:
    return (path / "cls").is_dir() and (path / "train.txt").is_file()


VOC2012_RELEASE = Release(
    name="VOC2012 release",
    archives=(
        Archive(
            VOC2012_TRAINVAL,
            members=tuple(
                f"VOCdevkit/VOC2012/{m}" for m in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")
            ),
            folder="VOCtrainval_11-May-2012",
        ),
    ),
    env=VOC_ENV,
    is_root=_is_voc_root,
    layout="JPEGImages/ and ImageSets/Segmentation/",
    roots=("", "VOC2012", "VOCdevkit/VOC2012"),
)
SBD_RELEASE = Release(
    name="SBD release",
    archives=(
        Archive(
            SBD_BENCHMARK,
            members=tuple(f"benchmark_RELEASE/dataset/{m}" for m in ("img", "cls", "train.txt", "val.txt")),  # no inst/
            folder="benchmark",
        ),
    ),
    env=SBD_ENV,
    is_root=_is_sbd_root,
    layout="cls/ and train.txt",
    roots=("", "dataset", "benchmark_RELEASE/dataset"),
)


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"id list {path} is missing; the extracted release is incomplete")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def sbd_mask(mat_path: str | Path) -> np.ndarray:
    """The class-index mask (H, W) uint8 stored in an SBD ``cls/<id>.mat`` file (``GTcls.Segmentation``)."""
    from scipy.io import loadmat  # imported here: only preparation needs scipy

    try:
        gt = loadmat(mat_path, squeeze_me=True, struct_as_record=False, variable_names=["GTcls"])["GTcls"]
        mask = np.asarray(gt.Segmentation)
    except Exception as err:
        raise DataError(
            f"{mat_path}: cannot read GTcls.Segmentation ({err}); the SBD extraction is damaged: "
            "delete the extracted benchmark folder and re-run the preparation"
        ) from err
    if mask.ndim != 2 or mask.size == 0 or mask.max() >= len(VOC_CLASSES):
        raise DataError(f"{mat_path}: GTcls.Segmentation is not a 2-D map of VOC class indices (0..20)")
    return mask.astype(np.uint8)


def _prepare_one(job: tuple[str, str, str, str, str]) -> None:
    """Link one image and write its mask. Existing outputs are complete (atomic writes): skipped."""
    image_src, image_dst, mask_kind, mask_src, mask_dst = job
    link_or_copy(image_src, image_dst)
    if mask_kind == "png":
        link_or_copy(mask_src, mask_dst)
    elif not os.path.exists(mask_dst):
        mask = sbd_mask(mask_src)
        with Image.open(image_src) as img:
            if img.size != (mask.shape[1], mask.shape[0]):
                raise DataError(
                    f"{mask_src}: mask is {mask.shape[1]}x{mask.shape[0]}, image {image_src} is "
                    f"{img.size[0]}x{img.size[1]}; the SBD release is damaged"
                )
        png = Image.fromarray(mask)
        png.putpalette(VOC_PALETTE)
        save_png(png, mask_dst)


RELEASE_KEYS = ("source", "sbd_source", "verify_checksum")  # profiles.<p>.datasets.voc


def prepare_release(out_dir: str | Path, raw_dir: str | Path, release: dict) -> DatasetMeta:
    """Stage ``prepare``'s entry: ``release`` holds the profile's ``RELEASE_KEYS``."""
    return prepare_voc(out_dir, raw_dir, voc_source=release.get("source"), sbd_source=release.get("sbd_source"),
                       verify_checksum=release.get("verify_checksum", True))


def prepare_voc(
    out_dir: str | Path,
    raw_dir: str | Path,
    *,
    voc_source: str | Path | None = None,
    sbd_source: str | Path | None = None,
    download: bool = True,
    voc_remote: Remote = VOC2012_TRAINVAL,
    sbd_remote: Remote = SBD_BENCHMARK,
    workers: int | None = None,
    check: bool = True,
    verify_checksum: bool = True,
) -> DatasetMeta:
    """Prepare VOC 2012 + SBD in ``out_dir``; downloads and extractions live in ``raw_dir``.

    A source (argument, else ``$LATENTSEG_VOC_ROOT`` / ``$LATENTSEG_SBD_ROOT``) is an archive you have, a folder
    holding it, or an extracted folder; without one, the archive in ``raw_dir`` is used, downloaded first if allowed.
    ``*_remote`` override URLs and checksums (mirrors, tests). ``verify_checksum=False`` accepts archives of yours
    whose checksum is not the official one (``releases.find_release``). ``check`` runs ``check_prepared`` at the end.
    """
    out_dir, raw_dir = Path(out_dir), Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    found = {"download": download, "verify_checksum": verify_checksum}
    voc = find_release(VOC2012_RELEASE.with_remotes({VOC2012_TRAINVAL.filename: voc_remote}), raw_dir, voc_source,
                       **found)
    sbd = find_release(SBD_RELEASE.with_remotes({SBD_BENCHMARK.filename: sbd_remote}), raw_dir, sbd_source, **found)
    dst = out_dir / PREPARED_ROOT
    if dst.resolve() == voc.resolve():
        raise ValueError(
            f"out_dir {out_dir} would overwrite the raw VOC release at {voc}; choose another folder"
        )

    train_ids, voc_val = aug_ids(voc, sbd)
    val_set = set(voc_val)
    jobs = [_job(voc, sbd, dst, i, need_voc_mask=i in val_set) for i in [*train_ids, *voc_val]]
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    parallel_map(_prepare_one, jobs, workers=workers, desc="VOC aug")

    atomic_write_text(dst / "ImageSets/Segmentation/train.txt", "".join(f"{i}\n" for i in train_ids))
    atomic_write_text(dst / "ImageSets/Segmentation/val.txt", "".join(f"{i}\n" for i in voc_val))
    write_list(out_dir / "train.txt", [_sample(i) for i in train_ids])
    write_list(out_dir / "val.txt", [_sample(i) for i in voc_val])
    meta = DatasetMeta(DATASET.name, list(VOC_CLASSES), 255, len(train_ids), len(voc_val))
    meta = write_meta(out_dir, meta)
    if check:
        check_prepared(out_dir, workers=workers)
    return meta


def aug_ids(voc: Path, sbd: Path) -> tuple[list[str], list[str]]:
    """VOC aug's training ids (VOC 2012 train and SBD's train and val, less VOC 2012 val), sorted: the order of the
    train_aug.txt that Hung et al. and Mittal et al. index into; and VOC 2012 val's ids."""
    split_dir = voc / "ImageSets" / "Segmentation"
    voc_train, voc_val = _read_ids(split_dir / "train.txt"), _read_ids(split_dir / "val.txt")
    sbd_train, sbd_val = _read_ids(sbd / "train.txt"), _read_ids(sbd / "val.txt")
    train_ids = sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val))
    if (len(train_ids), len(voc_val)) != (10582, 1449):
        log.warning("VOC aug: %d train / %d val ids; the official releases give 10,582 / 1,449", len(train_ids),
                    len(voc_val))
    log.info("VOC aug: %d train (VOC %d + SBD %d + %d, minus VOC val), %d val", len(train_ids), len(voc_train),
             len(sbd_train), len(sbd_val), len(voc_val))
    return train_ids, voc_val


def _sample(image_id: str) -> Sample:
    return Sample(
        f"{PREPARED_ROOT.as_posix()}/JPEGImages/{image_id}.jpg",
        f"{PREPARED_ROOT.as_posix()}/SegmentationClass/{image_id}.png",
    )


def _job(
    voc: Path, sbd: Path, dst: Path, image_id: str, need_voc_mask: bool
) -> tuple[str, str, str, str, str]:
    image = voc / "JPEGImages" / f"{image_id}.jpg"
    if not image.is_file():
        image = sbd / "img" / f"{image_id}.jpg"
    if not image.is_file():
        raise FileNotFoundError(
            f"no image for id {image_id}: neither {voc / 'JPEGImages'} nor {sbd / 'img'} "
            f"holds {image_id}.jpg; the extracted releases are incomplete"
        )
    voc_mask = voc / "SegmentationClass" / f"{image_id}.png"
    if voc_mask.is_file():
        kind, mask = "png", voc_mask
    elif need_voc_mask:
        raise FileNotFoundError(
            f"validation id {image_id} has no mask {voc_mask}; the VOC release is incomplete"
        )
    else:
        kind, mask = "mat", sbd / "cls" / f"{image_id}.mat"
        if not mask.is_file():
            raise FileNotFoundError(
                f"id {image_id} is in the SBD lists but {mask} is missing; the SBD release is incomplete"
            )
    return (
        str(image),
        str(dst / "JPEGImages" / f"{image_id}.jpg"),
        kind,
        str(mask),
        str(dst / "SegmentationClass" / f"{image_id}.png"),
    )

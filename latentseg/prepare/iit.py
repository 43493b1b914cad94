"""IIT Affordances (IIT-AFF, Nguyen et al., IROS 2017): find the official release, convert its label matrices.

The release (https://sites.google.com/site/iitaffdataset/, behind a form, no checksum published) unpacks to
``IIT_Affordances_2017/`` with ``rgb/<name>.jpg``, ``affordances_labels/<name>.txt`` (H lines of W integers 0..9,
single spaces: the affordance of each pixel, no ignore value), ``object_labels/`` and the lists
``train_and_val.txt``, ``val.txt``, ``test.txt`` (one ``<name>.jpg`` a line). Its users train on train_and_val
(6,184 images) and report on test (2,651): our train and val lists.

Sources, first that applies: ``source`` (``profiles.paper.datasets.iit.source``), else ``$LATENTSEG_IIT_ROOT``,
else ``raw_dir`` (``data/raw/iit/``): the zip, or a folder that is the release or holds ``IIT_Affordances_2017/``
(or holds the one zip). A zip is extracted into ``raw_dir/extracted/`` (``archives.extract``).

No checksum is published, so the first preparation from a zip records its SHA-256 in ``raw_dir/release.json``
(beside the archive, which DVC leaves alone when it removes a stage's outputs) and copies the record into the
prepared folder (``release.json``: ``dataset.json`` is ``DatasetMeta``, which has no field for it). A later run
from an archive of another digest stops naming both digests (``verify_checksum: false``: a warning, and the record
is replaced). An unchanged archive (name, size, time) that is already extracted is not hashed again.

Prepared folder::

    <out>/dataset.json, train.txt, val.txt, release.json
    <out>/rgb/<name>.jpg                      # hard links to the raw files (or copies)
    <out>/affordances_labels/<name>.png       # palette PNGs of the label matrices, values 0..9
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.datasets.iit import DATASET, IIT_CLASSES, IIT_PALETTE
from latentseg.prepare.archives import extract, is_current, is_extracted
from latentseg.prepare.parallel import link_or_copy, parallel_map, save_png
from latentseg.prepare.validate import DataError, check_prepared
from latentseg.util.files import atomic_write_text, file_digest

log = logging.getLogger(__name__)

PAGE = "https://sites.google.com/site/iitaffdataset/"
SOURCE_ENV = "LATENTSEG_IIT_ROOT"
TOP = "IIT_Affordances_2017"
ROOTS = ("", TOP)
LISTS = {"train": "train_and_val.txt", "val": "test.txt"}  # train on train_and_val, report on test
EXPECTED = {"train": 6184, "val": 2651}  # the official release; other counts are logged, not refused
RECORD = "release.json"
EXTRACTED = "extracted"

RELEASE_KEYS = ("source", "verify_checksum")  # profiles.<p>.datasets.iit


def _is_root(path: Path) -> bool:
    return (path / "rgb").is_dir() and (path / "affordances_labels").is_dir() and (path / LISTS["train"]).is_file()


def _find_root(folder: Path) -> Path | None:
    return next((folder / sub for sub in ROOTS if _is_root(folder / sub)), None)


def _refuse_voc_copy(folder: Path) -> None:
    """The VOC-formatted copy linked from affordance-net is another thing: say so rather than 'not found'."""
    marks = [p for pattern in ("VOCdevkit*", "*/VOCdevkit*", "JPEGImages", "*/JPEGImages", "Annotations")
             for p in folder.glob(pattern)]
    if marks:
        raise DataError(
            f"{folder} looks like the VOC-formatted copy of IIT-AFF linked from affordance-net ({marks[0].name}: "
            "renamed files, per-object pickled masks, no val list), not the official release; download "
            f"IIT_Affordances_2017 from {PAGE} and name that zip or folder instead"
        )


def _not_found(raw_dir: Path) -> str:
    return (
        f"IIT Affordances release not found: download it from {PAGE} (a form; no checksum is published) and put "
        f"the zip, or its extracted {TOP}/ folder, in {raw_dir}/, or name it in params.yaml "
        f"(profiles.paper.datasets.iit.source) or in ${SOURCE_ENV}"
    )


def _locate(source: Path | None, raw_dir: Path) -> tuple[Path | None, Path | None]:
    """``(root, archive)``: an extracted release to use as it is (archive None), or the zip to extract."""
    where = source if source is not None else raw_dir
    if source is not None and not source.exists():
        raise FileNotFoundError(f"IIT Affordances source {source} (params.yaml or ${SOURCE_ENV}) does not exist")
    if where.is_file():
        return None, where
    root = _find_root(where) if where.is_dir() else None
    if root is not None:
        return root, None
    zips = sorted(where.glob("*.zip")) if where.is_dir() else []
    if len(zips) > 1:
        raise FileNotFoundError(f"{where} holds several zips ({', '.join(z.name for z in zips)}): name one")
    if zips:
        return None, zips[0]
    if where.is_dir():
        _refuse_voc_copy(where)
    if source is None and is_extracted(raw_dir / EXTRACTED):  # the zip was deleted after its extraction
        return _find_root(raw_dir / EXTRACTED), None
    if source is not None:
        raise FileNotFoundError(f"IIT Affordances source {source} holds neither rgb/, affordances_labels/ and "
                                f"{LISTS['train']} (in it or in {TOP}/) nor the release zip")
    raise FileNotFoundError(_not_found(raw_dir))


def _checked_record(archive: Path, raw_dir: Path, verify_checksum: bool) -> dict:
    """The archive's SHA-256 against the one recorded at the first preparation (recorded now if none)."""
    path = raw_dir / RECORD
    recorded = json.loads(path.read_text()) if path.is_file() else None
    if recorded is not None and is_current(archive, raw_dir / EXTRACTED):
        return recorded  # the archive extracted there, hashed then: unchanged
    digest = file_digest(archive, "sha256")
    if recorded is not None and recorded.get("sha256") not in (None, digest):
        message = (f"{archive}: SHA-256 {digest} differs from {recorded['sha256']}, recorded at the first "
                   f"preparation ({path}); the release changed. Delete {path} to accept it")
        if verify_checksum:
            raise DataError(message + ", or set profiles.paper.datasets.iit.verify_checksum: false")
        log.warning("%s (verify_checksum: false: accepted, recorded anew)", message)
    return {"archive": archive.name, "size": archive.stat().st_size, "sha256": digest}


def _record(record: dict, raw_dir: Path) -> None:
    """Keep the SHA-256 of an archive that extracted (a truncated download is never recorded)."""
    path = raw_dir / RECORD
    if not path.is_file() or json.loads(path.read_text()) != record:
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        log.info("IIT Affordances: recorded the SHA-256 of %s in %s", record["archive"], path)


def _extracted_root(archive: Path, raw_dir: Path) -> Path:
    dest = raw_dir / EXTRACTED
    try:
        extract(archive, dest)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(f"{archive} cannot be extracted ({err}): the zip is damaged or truncated; download it "
                        "again") from err
    except ValueError as err:
        raise DataError(str(err)) from err
    root = _find_root(dest)
    if root is None:
        _refuse_voc_copy(dest)
        raise DataError(f"{archive} does not hold rgb/, affordances_labels/ and {LISTS['train']} (at its top or "
                        f"in {TOP}/): it is not the IIT Affordances release of {PAGE}")
    return root


def read_label(path: str | Path) -> np.ndarray:
    """An ``affordances_labels/<name>.txt`` matrix as (H, W) uint8; a bad line is named with its value."""
    text = Path(path).read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty label file")
    width = len(lines[0].split())
    for lineno, line in enumerate(lines, 1):
        tokens = line.split()
        if len(tokens) != width:
            raise DataError(f"{path}:{lineno}: {len(tokens)} values, line 1 has {width}")
        try:
            values = np.array(tokens, dtype=np.int64)
        except ValueError:
            bad = next(t for t in tokens if not t.lstrip("-").isdigit())
            raise DataError(f"{path}:{lineno}: value {bad!r} is no integer (labels are 0..9)") from None
        outside = np.flatnonzero((values < 0) | (values >= len(IIT_CLASSES)))
        if outside.size:
            raise DataError(f"{path}:{lineno}: value {values[outside[0]]} at column {outside[0] + 1} is outside "
                            f"0..{len(IIT_CLASSES) - 1} (the release's affordance labels)")
    return np.array(" ".join(lines).split(), dtype=np.uint8).reshape(len(lines), width)


def _convert_one(job: tuple[str, str, str, str]) -> int:
    """Link one image and write its label as a palette PNG (existing outputs are complete, atomic: skipped);
    return the image's largest side."""
    image_src, image_dst, label_src, mask_dst = job
    with Image.open(image_src) as img:
        width, height = img.size
    if not os.path.exists(mask_dst):
        label = read_label(label_src)
        if label.shape != (height, width):
            turned = " (transposed: never rotated)" if label.shape == (width, height) else ""
            raise DataError(f"{label_src}: label is {label.shape[1]}x{label.shape[0]} (WxH), its image "
                            f"{image_src} is {width}x{height}{turned}; the release is damaged")
        png = Image.fromarray(label, "P")
        png.putpalette(IIT_PALETTE)
        save_png(png, mask_dst)
    link_or_copy(image_src, image_dst)
    return max(width, height)


def _read_names(root: Path, split: str) -> list[str]:
    path = root / LISTS[split]
    if not path.is_file():
        raise DataError(f"{path} is missing: the release is incomplete")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    for lineno, name in enumerate(names, 1):
        if not name.endswith(".jpg") or "/" in name:
            raise DataError(f"{path}:{lineno}: {name!r} is not a file name <name>.jpg of rgb/")
    return names


def _job(root: Path, out: Path, split: str, lineno: int, name: str) -> tuple[str, str, str, str]:
    stem = name.removesuffix(".jpg")
    image, label = root / "rgb" / name, root / "affordances_labels" / f"{stem}.txt"
    for kind, path in (("image", image), ("label", label)):
        if not path.is_file():
            raise DataError(f"{root / LISTS[split]}:{lineno}: {name}'s {kind} {path} does not exist; the release "
                            "is incomplete")
    return str(image), str(out / "rgb" / name), str(label), str(out / "affordances_labels" / f"{stem}.png")


def prepare_release(out_dir: str | Path, raw_dir: str | Path, release: dict) -> DatasetMeta:
    """Stage ``prepare``'s entry: ``release`` holds the profile's ``RELEASE_KEYS``."""
    return prepare_iit(out_dir, raw_dir, source=release.get("source"),
                       verify_checksum=release.get("verify_checksum", True))


def prepare_iit(out_dir: str | Path, raw_dir: str | Path, *, source: str | Path | None = None,
                verify_checksum: bool = True, workers: int | None = None, check: bool = True) -> DatasetMeta:
    """Prepare IIT-AFF in ``out_dir`` from the release (module docstring); ``check`` runs ``check_prepared``."""
    out_dir, raw_dir = Path(out_dir), Path(raw_dir)
    source = source if source is not None else os.environ.get(SOURCE_ENV) or None
    root, archive = _locate(Path(source) if source is not None else None, raw_dir)
    record: dict = {"folder": str(root), "sha256": None}  # an extracted folder: nothing to hash
    if archive is not None:
        raw_dir.mkdir(parents=True, exist_ok=True)
        record = _checked_record(archive, raw_dir, verify_checksum)
        root = _extracted_root(archive, raw_dir)
        _record(record, raw_dir)
    assert root is not None
    if out_dir.resolve() == root.resolve():
        raise ValueError(f"out_dir {out_dir} is the raw release at {root}; choose another folder")
    names = {split: _read_names(root, split) for split in LISTS}
    both = sorted(set(names["train"]) & set(names["val"]))
    if both:
        raise DataError(f"{root}: {len(both)} image(s) in both {LISTS['train']} and {LISTS['val']}, e.g. {both[0]}")
    counts = {split: len(v) for split, v in names.items()}
    if counts != EXPECTED:
        log.warning("IIT Affordances: %d train / %d val images; the official release gives 6,184 / 2,651",
                    counts["train"], counts["val"])
    jobs = [_job(root, out_dir, split, i, name) for split in LISTS for i, name in enumerate(names[split], 1)]
    for sub in ("rgb", "affordances_labels"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    sides = parallel_map(_convert_one, jobs, workers=workers, desc="IIT Affordances")
    log.info("IIT Affordances: the largest test image side is %d px (data.eval_pad must be at least that)",
             max(sides[counts["train"]:], default=0))
    for split in LISTS:
        stems = [n.removesuffix(".jpg") for n in names[split]]
        write_list(out_dir / f"{split}.txt", [Sample(f"rgb/{s}.jpg", f"affordances_labels/{s}.png") for s in stems])
    atomic_write_text(out_dir / RECORD, json.dumps(record, indent=2) + "\n")
    meta = write_meta(out_dir, DatasetMeta(DATASET.name, list(IIT_CLASSES), DATASET.ignore_index,
                                           counts["train"], counts["val"]))
    if check:
        check_prepared(out_dir, workers=workers)
    return meta

"""Checks of prepared data: every error names the file at fault and how to fix it.

``check_image`` / ``check_mask`` / ``check_sample`` are cheap enough for a loader to call when a read
fails; ``check_prepared(root)`` runs them over a whole prepared folder in parallel (VOC aug, 12k
samples: decoding every mask, reading image headers only, takes seconds per core; pass
``decode_images=True`` to decode the images too and catch truncated JPEG data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from latentseg.data.layout import Sample, read_list, read_meta
from latentseg.prepare.parallel import parallel_map

RERUN = "re-run the prepare stage (delete the prepared folder first to rebuild it from the raw data)"


class DataError(ValueError):
    """Bad data; the message names the file and the fix."""


def check_image(path: str | Path, *, decode: bool = True) -> tuple[int, int]:
    """Open an image (decoding all of it unless ``decode=False``) and return its ``(width, height)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist; {RERUN}")
    try:
        with Image.open(path) as img:
            if decode:
                img.load()  # a truncated or damaged file fails here, not in the middle of training
            return img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(
            f"image {path} cannot be read ({err}); the file is corrupt or truncated: delete it and {RERUN} "
            "(if the raw copy is damaged too, delete the raw archive and download it again)"
        ) from err


def check_mask(
    path: str | Path, num_classes: int, *, ignore_index: int = 255, size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Check that a mask is a single-channel PNG with values in ``[0, num_classes) ∪ {ignore_index}``
    (and of ``size`` = (width, height) if given); return its size."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask {path} does not exist; {RERUN}")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "I", "I;16"):
                raise DataError(
                    f"mask {path} has mode {img.mode}: masks must be single-channel (class indices, or a "
                    f"palette image whose indices are classes), not colours; {RERUN}"
                )
            values = np.asarray(img)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"mask {path} cannot be read ({err}); the file is corrupt: delete it and {RERUN}"
        ) from err
    mask_size = (values.shape[1], values.shape[0])
    if size is not None and mask_size != tuple(size):
        raise DataError(
            f"mask {path} is {mask_size[0]}x{mask_size[1]} but its image is {size[0]}x{size[1]}; every "
            f"mask must match its image pixel for pixel: {RERUN}, or drop the sample from the list"
        )
    if values.dtype == np.uint8:  # bincount: several times faster than np.unique on 8-bit masks
        present = np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    else:
        present = np.unique(values)
    bad = [int(v) for v in present if not (0 <= v < num_classes or v == ignore_index)]
    if bad:
        raise DataError(
            f"mask {path} holds values {bad[:10]} outside [0, {num_classes}) ∪ {{{ignore_index}}}: it must "
            f"store class indices (0..{num_classes - 1}) or {ignore_index} = ignore, not label ids or "
            f"colours; {RERUN}"
        )
    return mask_size


def _inside(root: Path, rel: str, where: str) -> Path:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise DataError(f"{where}: path {rel!r} must be relative to the prepared folder and stay inside it")
    return root / path


def check_sample(
    root: str | Path,
    sample: Sample,
    num_classes: int,
    *,
    ignore_index: int = 255,
    decode_image: bool = True,
    where: str = "",
) -> None:
    """Check one ``<image> <mask>`` line: both exist and read, sizes agree, mask values are valid."""
    root = Path(root)
    where = where or str(root)
    image, mask = _inside(root, sample.image, where), _inside(root, sample.mask, where)
    for kind, path in (("image", image), ("mask", mask)):
        if not path.is_file():
            raise DataError(f"{where} names {kind} {path}, which does not exist; {RERUN}, or remove the line")
    size = check_image(image, decode=decode_image)
    check_mask(mask, num_classes, ignore_index=ignore_index, size=size)


@dataclass(frozen=True)
class CheckReport:
    num_train: int
    num_val: int
    seconds: float


def _check_job(job: tuple) -> str | None:
    root, sample, num_classes, ignore_index, decode, where = job
    try:
        check_sample(root, sample, num_classes, ignore_index=ignore_index, decode_image=decode, where=where)
    except DataError as err:
        return str(err)
    return None


def check_prepared(
    root: str | Path,
    *,
    decode_images: bool = False,
    workers: int | None = None,
    max_errors: int = 20,
    progress: bool = True,
) -> CheckReport:
    """Check a prepared data set: ``dataset.json``, both lists, and every sample they name.

    Raises ``DataError`` listing up to ``max_errors`` problems (and how many there are in all).
    """
    start = time.perf_counter()
    root = Path(root)
    meta = read_meta(root)
    jobs, problems, counts = [], [], {}
    for split in ("train", "val"):
        list_path = root / f"{split}.txt"
        try:
            samples = read_list(list_path)
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"{err}; {RERUN}") from err
        counts[split] = len(samples)
        expected = meta.num_train if split == "train" else meta.num_val
        if expected and expected != len(samples):
            problems.append(
                f"{list_path} has {len(samples)} samples but dataset.json says {expected}; {RERUN}"
            )
        seen: set[str] = set()
        for lineno, sample in enumerate(samples, 1):
            if sample.image in seen:
                problems.append(f"{list_path}:{lineno}: {sample.image} is listed twice; {RERUN}")
            seen.add(sample.image)
            jobs.append(
                (root, sample, meta.num_classes, meta.ignore_index, decode_images, f"{list_path}:{lineno}")
            )
    problems += [
        p for p in parallel_map(_check_job, jobs, workers=workers, desc="check", progress=progress) if p
    ]
    if problems:
        shown = "\n  ".join(problems[:max_errors])
        more = f"\n  ... and {len(problems) - max_errors} more" if len(problems) > max_errors else ""
        raise DataError(f"{root}: {len(problems)} problem(s) in the prepared data set:\n  {shown}{more}")
    return CheckReport(counts["train"], counts["val"], time.perf_counter() - start)

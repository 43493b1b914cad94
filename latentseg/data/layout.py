"""The prepared on-disk layout that every data set is written in and the one loader reads.

A prepared data set is a folder holding:

- ``dataset.json``: ``{"name", "classes": [...], "ignore_index": 255, "num_train", "num_val"}``;
- ``train.txt`` and ``val.txt``: one sample a line, ``<image path> <mask path>``, both relative to the folder;
- the images and masks themselves, in the tree of the official release (``VOCdevkit/VOC2012/...`` for VOC,
  ``leftImg8bit/`` + ``gtFine/`` for Cityscapes), so that torchvision's readers open it too.

Masks are single-channel PNGs (palette or grey) whose values are class indices, or ``ignore_index``.
Split lists (labeled / unlabeled) use the same line format, so a split is a subset of ``train.txt``; the split
stage writes them as ``<splits>/<fraction slug>/{labeled,unlabeled}.txt`` (``split_folder``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

from latentseg.util.files import atomic_write_text

META_FILE = "dataset.json"


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    classes: list[str]
    ignore_index: int = 255
    num_train: int = 0
    num_val: int = 0
    # A digest of every image and mask the lists name (``content_fingerprint``), written by the preparation: a
    # training checkpoint records it, so a run is never reused on data that changed under the same file names.
    fingerprint: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Sample:
    image: str  # relative to the prepared folder
    mask: str

    @property
    def id(self) -> str:
        return Path(self.image).stem


def write_meta(root: str | Path, meta: DatasetMeta) -> DatasetMeta:
    """Write ``dataset.json`` with the content fingerprint of the set: the last file a preparation writes."""
    meta = replace(meta, fingerprint=content_fingerprint(root))
    atomic_write_text(Path(root) / META_FILE, json.dumps(asdict(meta), indent=2) + "\n")
    return meta


def read_meta(root: str | Path) -> DatasetMeta:
    path = Path(root) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} is not a prepared data set. Run the prepare stage "
            "(`dvc repro prepare`) or point data.root at a folder it wrote."
        )
    try:
        fields = json.loads(path.read_text())
        return DatasetMeta(**fields)
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(
            f"{path} is not a valid data set description ({err}); re-run the prepare stage"
        ) from err


def write_list(path: str | Path, samples: list[Sample]) -> None:
    atomic_write_text(path, "".join(f"{s.image} {s.mask}\n" for s in samples))


def read_list(path: str | Path) -> list[Sample]:
    """Read a list file of ``<image> <mask>`` lines (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file {path} not found; run the prepare/split stage that writes it")
    samples = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected '<image> <mask>', got {line!r}")
        samples.append(Sample(parts[0], parts[1]))
    return samples


def parse_fraction(text: str | float | int) -> Fraction:
    """``"1/8"`` -> 1/8, ``"full"`` or 1 -> 1. Rejects values outside (0, 1]."""
    if isinstance(text, str) and text.strip().lower() == "full":
        return Fraction(1)
    try:
        value = Fraction(str(text).strip()) if isinstance(text, str) else Fraction(text).limit_denominator(1000)
    except (ValueError, TypeError, ZeroDivisionError):
        value = None
    if value is None or isinstance(text, bool) or not 0 < value <= 1:
        raise ValueError(f"labeled fraction {text!r} must be 'full' or a fraction in (0, 1], such as 1/8")
    return value


def fraction_slug(text: str | float | int) -> str:
    """A file-name-safe name of a fraction: ``1/8`` -> ``1-8``, 1 -> ``full``."""
    value = parse_fraction(text)
    return "full" if value == 1 else f"{value.numerator}-{value.denominator}"


def split_folder(splits_root: str | Path, fraction: str | float | int) -> Path:
    """Where the split stage writes ``labeled.txt`` and ``unlabeled.txt`` of one fraction."""
    return Path(splits_root) / fraction_slug(fraction)


def samples_digest(samples: Iterable[Sample]) -> str:
    """A digest of a list of samples (a split), in order."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.image} {s.mask}\n".encode())
    return digest.hexdigest()[:16]


def content_fingerprint(root: str | Path) -> str:
    """A digest of the prepared set's lists and of the bytes of every image and mask they name."""
    root = Path(root)
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for sample in read_list(root / f"{split}.txt"):
            for rel in (sample.image, sample.mask):
                digest.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TrainData:
    """A prepared data set and the labeled / unlabeled lists of one split: what a run trains on."""

    root: Path
    meta: DatasetMeta
    labeled: list[Sample]
    unlabeled: list[Sample]

    @classmethod
    def of_split(cls, root: Path, splits_root: Path, fraction: str | float | int) -> TrainData:
        """The prepared data set at `root` with the labeled/unlabeled lists of one split fraction."""
        split = split_folder(splits_root, fraction)
        return cls(Path(root), read_meta(root), read_list(split / "labeled.txt"), read_list(split / "unlabeled.txt"))

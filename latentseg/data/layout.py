"""The prepared on-disk layout that every data set is written in and the one loader reads.

A prepared data set is a folder holding:

- ``dataset.json``: ``{"name", "classes": [...], "ignore_index": 255, "num_train", "num_val"}``;
- ``train.txt`` and ``val.txt``: one sample a line, ``<image path> <mask path>``, both relative to the folder;
- the images and masks themselves, in the tree of the official release (``VOCdevkit/VOC2012/...`` for VOC,
  ``leftImg8bit/`` + ``gtFine/`` for Cityscapes), so that torchvision's readers open it too.

Masks are single-channel PNGs (palette or grey) whose values are class indices, or ``ignore_index``.
Split lists (labeled / unlabeled) use the same line format, so a split is a subset of ``train.txt``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

META_FILE = "dataset.json"


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    classes: list[str]
    ignore_index: int = 255
    num_train: int = 0
    num_val: int = 0

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


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so no half file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_meta(root: str | Path, meta: DatasetMeta) -> None:
    atomic_write_text(Path(root) / META_FILE, json.dumps(asdict(meta), indent=2) + "\n")


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

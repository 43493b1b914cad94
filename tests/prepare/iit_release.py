"""A small IIT Affordances release in the official layout, written at test time: ``IIT_Affordances_2017/`` with
``rgb/<name>.jpg``, ``affordances_labels/<name>.txt`` (H lines of W integers), ``object_labels/`` and the three
lists of ``<name>.jpg`` lines, and the zip of that folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

TOP = "IIT_Affordances_2017"
# (name, (height, width)): landscape, portrait and square images of several sizes
TRAIN = [("00_00000001", (24, 32)), ("00_00000002", (40, 18)), ("01_00000003", (20, 20)),
         ("01_00000004", (16, 36)), ("02_00000005", (30, 22)), ("02_00000006", (24, 32))]
VAL = [("00_00000007", (28, 20)), ("03_00000008", (18, 26)), ("03_00000009", (24, 32))]
ALL_BACKGROUND = "01_00000003"


def label_of(name: str, shape: tuple[int, int]) -> np.ndarray:
    """The label matrix of one image: two parts of an object (affordances 1..9) on background."""
    h, w = shape
    label = np.zeros(shape, np.uint8)
    if name == ALL_BACKGROUND:
        return label
    seed = int(name.replace("_", ""))
    a, b = 1 + seed % 9, 1 + (seed * 7 + 3) % 9
    label[h // 4: 3 * h // 4, w // 5: w // 2] = a
    label[h // 4: 3 * h // 4, w // 2: 4 * w // 5] = b
    return label


def write_label(path: Path, label: np.ndarray) -> None:
    path.write_text("".join(" ".join(str(v) for v in row) + "\n" for row in label))


def make_iit_folder(parent: Path, train=TRAIN, val=VAL) -> Path:
    top = parent / TOP
    for sub in ("rgb", "affordances_labels", "object_labels"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, shape in [*train, *val]:
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(top / "rgb" / f"{name}.jpg")
        label = label_of(name, shape)
        write_label(top / "affordances_labels" / f"{name}.txt", label)
        write_label(top / "object_labels" / f"{name}.txt", (label > 0).astype(np.uint8))
    (top / "train_and_val.txt").write_text("".join(f"{n}.jpg\n" for n, _ in train))
    (top / "val.txt").write_text("".join(f"{n}.jpg\n" for n, _ in train[-2:]))
    (top / "test.txt").write_text("".join(f"{n}.jpg\n" for n, _ in val))
    return top


def zip_folder(top: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(top.rglob("*")):
            zf.write(file, file.relative_to(top.parent).as_posix())
    return path

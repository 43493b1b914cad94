"""What a data set's demo stand-in provides: a renderer of one image and its label, its file names, how the files
are written, and any extra files of the release's layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.data.layout import Sample
from latentseg.datasets.base import Dataset
from latentseg.prepare.standins.painter import Painter

Render = Callable[[Painter, np.random.Generator], tuple[np.ndarray, np.ndarray]]  # -> float image, uint8 label
Save = Callable[[Image.Image, np.ndarray, Path, Path], None]  # (image, label, image path, mask path)


@dataclass(frozen=True)
class StandIn:
    dataset: Dataset  # classes, palette and the planted groups the painter colours by
    render: Render
    paths: Callable[[str, int], tuple[str, str]]  # (split, index) -> image and mask paths in the release layout
    save: Save
    extra: Callable[[Path, dict[str, list[Sample]]], None] | None = None  # further files of the layout


def jpeg_and_palette_png(dataset: Dataset) -> Save:
    """How VOC's and IIT Affordances' releases store a sample: a JPEG image and a palette PNG mask in the data set's
    colours (pixel value = class)."""

    def save(rgb: Image.Image, label: np.ndarray, image_path: Path, mask_path: Path) -> None:
        rgb.save(image_path, quality=95, subsampling=0)
        mask = Image.fromarray(label, "P")
        mask.putpalette(list(dataset.palette))
        mask.save(mask_path)

    return save

"""Class names and palettes (the reading side), and the rule that reading never imports the making side."""

from __future__ import annotations

import ast
from pathlib import Path

from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

import latentseg.data
from latentseg.datasets.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from latentseg.datasets.voc import VOC_CLASSES, VOC_PALETTE


def _rgb(palette: list[int], index: int) -> tuple[int, int, int]:
    return tuple(palette[3 * index : 3 * index + 3])


def test_voc_palette_is_voc_colour_map():
    assert len(VOC_PALETTE) == 768 and all(0 <= v < 256 for v in VOC_PALETTE)
    # colours of VOC's devkit (VOClabelcolormap): background, aeroplane, person, tvmonitor, the 255 border
    assert _rgb(VOC_PALETTE, 0) == (0, 0, 0) and _rgb(VOC_PALETTE, 1) == (128, 0, 0)
    assert _rgb(VOC_PALETTE, VOC_CLASSES.index("person")) == (192, 128, 128)
    assert _rgb(VOC_PALETTE, VOC_CLASSES.index("tvmonitor")) == (0, 64, 128)
    assert _rgb(VOC_PALETTE, 255) == (224, 224, 192)


def test_cityscapes_palette_is_the_official_train_id_colours():
    assert len(CITYSCAPES_PALETTE) == 768
    official = {lab.trainId: (lab.name, lab.color) for lab in CS_LABELS if 0 <= lab.trainId < 255}
    assert sorted(official) == list(range(19))
    for train_id, name in enumerate(CITYSCAPES_CLASSES):
        assert official[train_id] == (name, _rgb(CITYSCAPES_PALETTE, train_id))
    assert set(CITYSCAPES_PALETTE[3 * 19 :]) == {0}  # no colour for unused indices or 255 = ignore


def test_palettes_are_ready_for_putpalette():
    for palette in (VOC_PALETTE, CITYSCAPES_PALETTE):
        image = Image.new("P", (2, 1))
        image.putpalette(palette)
        image.putpixel((1, 0), 13)
        assert image.convert("RGB").getpixel((1, 0)) == _rgb(palette, 13)


def test_reading_side_imports_nothing_of_the_making_side():
    """What training imports must not change when a downloader or converter does (DVC would re-train)."""
    for path in sorted(Path(latentseg.data.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n == "latentseg.prepare" or n.startswith("latentseg.prepare.")]
            assert not bad, f"{path}:{node.lineno} imports {bad}; move the shared code into latentseg/data"

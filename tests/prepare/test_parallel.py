"""The per-file jobs of every converter: linking (or copying) raw files and writing masks, atomically."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from latentseg.prepare import parallel
from latentseg.prepare.parallel import link_or_copy, parallel_map, save_png


def test_link_or_copy_links_and_keeps_an_existing_destination(tmp_path):
    src, dst = tmp_path / "a.jpg", tmp_path / "b.jpg"
    src.write_bytes(b"raw")
    link_or_copy(src, dst)
    assert dst.samefile(src)
    other = tmp_path / "c.jpg"
    other.write_bytes(b"other")
    link_or_copy(other, dst)  # an existing destination is complete: kept
    assert dst.read_bytes() == b"raw"


def test_link_or_copy_copies_where_links_fail(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError("cross-device link")

    monkeypatch.setattr(parallel.os, "link", no_links)
    src, dst = tmp_path / "a.jpg", tmp_path / "out" / "b.jpg"
    src.write_bytes(b"raw")
    dst.parent.mkdir()
    link_or_copy(src, dst)
    assert dst.read_bytes() == b"raw" and not dst.samefile(src)
    assert os.listdir(dst.parent) == ["b.jpg"]  # no temporary file left


def test_save_png_leaves_the_old_file_when_writing_fails(tmp_path):
    dst = tmp_path / "m.png"
    save_png(Image.fromarray(np.full((2, 3), 7, np.uint8)), dst)
    assert np.asarray(Image.open(dst)).tolist() == [[7, 7, 7]] * 2

    class Broken:
        def save(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_png(Broken(), dst)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["m.png"] and np.asarray(Image.open(dst)).max() == 7


def test_parallel_map_keeps_the_order():
    assert parallel_map(abs, list(range(-3, 3)), workers=1, progress=False) == [3, 2, 1, 0, 1, 2]

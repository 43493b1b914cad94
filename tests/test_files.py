"""The atomic-write helpers: a torch file's bytes depend on its content only; files and folders get the modes
the umask gives."""

import hashlib
import os
import stat
import tarfile

import pytest
import torch

from latentseg.prepare.archives import extract
from latentseg.util.files import atomic_torch_save, atomic_write_text


def test_the_same_torch_content_gives_the_same_bytes(tmp_path):
    """torch.save by file name puts the (random) temporary name into the archive; the helper must not, or DVC
    would see a changed output, and every run a new initialisation, each time an identical file is re-made."""
    doc = {"format": "x", "model": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}}
    digests = set()
    for name in ("a.pt", "b.pt", "a.pt"):  # two names, and the same name written again
        path = atomic_torch_save(tmp_path / name, doc)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["model"]["w"], doc["model"]["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no temporary file left behind


@pytest.fixture
def umask():
    """Set the process's umask for a test, and restore it."""
    before = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(before)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_and_extracted_folders_honour_the_umask(mask, umask, tmp_path):
    """A shared cluster file system: the group reads what the pipeline writes when the umask says so."""
    umask(mask)
    text = atomic_write_text(tmp_path / "a" / "metrics.json", "{}\n")
    weights = atomic_torch_save(tmp_path / "coco.pt", {"w": torch.ones(2)})
    with tarfile.open(tmp_path / "release.tar", "w") as tar:
        tar.add(text, arcname="release/metrics.json")
    folder = extract(tmp_path / "release.tar", tmp_path / "extracted")
    for path, full in ((text, 0o666), (weights, 0o666), (folder, 0o777), (text.parent, 0o777)):
        assert stat.S_IMODE(path.stat().st_mode) == full & ~mask, path

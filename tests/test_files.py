"""The atomic-write helpers: a torch file's bytes depend on its content only."""

import hashlib

import torch

from latentseg.files import atomic_torch_save


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

"""Published splits: fetched, verified, and every run of a data set trains on their labeled images."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from latentseg.data.layout import Sample, read_list, write_list
from latentseg.data.splits import write_splits
from latentseg.prepare.download import ChecksumError
from latentseg.prepare.published_splits import PUBLISHED_SPLITS, published_split_file


def test_mittals_voc_split_is_pinned_to_a_commit_and_a_checksum():
    split = PUBLISHED_SPLITS["mittal_voc_split_0"]
    assert split.dataset == "voc" and len(split.remote.sha256) == 64
    assert "/586609b7bd4bf851c4b1f2691584ce8b11ba6d50/splits/voc/split_0.pkl" in split.remote.urls[0]


def test_a_published_split_is_fetched_verified_and_used(served, tmp_path):
    train = [Sample(f"JPEGImages/2007_{i:06d}.jpg", f"SegmentationClass/2007_{i:06d}.png") for i in range(50)]
    prepared = tmp_path / "voc"
    write_list(prepared / "train.txt", train)
    order = np.random.default_rng(5).permutation(50)
    (served.state.root / "split.pkl").write_bytes(pickle.dumps(order, protocol=3))  # a numpy array, as theirs
    digest = hashlib.sha256((served.state.root / "split.pkl").read_bytes()).hexdigest()
    remote = served.remote("split.pkl", sha256=digest)
    path = published_split_file("mittal_voc_split_0", "voc", tmp_path / "raw", {"mittal_voc_split_0": remote})
    assert path == tmp_path / "raw" / "splits" / "split.pkl"
    write_splits(prepared, tmp_path / "splits", ["1/8", "full"], seed=0, permutation=path)
    labeled = read_list(tmp_path / "splits" / "1-8" / "labeled.txt")
    assert labeled == [train[i] for i in order[:6]]  # the first int(50 / 8) of their permutation
    assert len(read_list(tmp_path / "splits" / "full" / "labeled.txt")) == 50
    published_split_file("mittal_voc_split_0", "voc", tmp_path / "raw", {"mittal_voc_split_0": remote})
    assert served.count("split.pkl") == 1  # verified once, then taken from raw/splits
    wrong = served.remote("split.pkl", sha256="0" * 64)
    with pytest.raises(ChecksumError):
        published_split_file("mittal_voc_split_0", "voc", tmp_path / "other", {"mittal_voc_split_0": wrong})


def test_a_split_of_another_data_set_or_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="split of voc, not of cityscapes"):
        published_split_file("mittal_voc_split_0", "cityscapes", tmp_path)
    with pytest.raises(FileNotFoundError, match="mittal_voc_split_0"):
        published_split_file(str(tmp_path / "nope.pkl"), "voc", tmp_path)
    own = tmp_path / "mine.pkl"
    own.write_bytes(pickle.dumps(np.arange(10)))
    assert published_split_file(str(own), "voc", tmp_path) == own

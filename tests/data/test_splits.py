from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from latentseg.data.layout import Sample, read_list, write_list
from latentseg.data.splits import (
    load_index_permutation,
    resolve_ids,
    sample_key,
    split_from_permutation,
    split_labeled,
    write_splits,
)

PAPER_FRACTIONS = ["1/50", "1/20", "1/8", "1/4", "1/2", "full"]


def voc_samples(n: int) -> list[Sample]:
    return [
        Sample(
            f"VOCdevkit/VOC2012/JPEGImages/2007_{i:06d}.jpg",
            f"VOCdevkit/VOC2012/SegmentationClass/2007_{i:06d}.png",
        )
        for i in range(n)
    ]


@pytest.fixture
def prepared_voc_sized(tmp_path):
    """A prepared train.txt of the real VOC aug size (the files themselves are not needed here)."""
    write_list(tmp_path / "train.txt", voc_samples(10582))
    return tmp_path


def test_write_splits_sizes_for_every_paper_fraction(prepared_voc_sized, tmp_path):
    sizes = write_splits(prepared_voc_sized, tmp_path / "splits", PAPER_FRACTIONS, seed=1234)
    assert sizes == {
        "1-50": (211, 10371),
        "1-20": (529, 10053),
        "1-8": (1322, 9260),
        "1-4": (2645, 7937),
        "1-2": (5291, 5291),
        "full": (10582, 0),
    }
    train = read_list(prepared_voc_sized / "train.txt")
    for slug, (n_labeled, _) in sizes.items():
        labeled = read_list(tmp_path / "splits" / slug / "labeled.txt")
        unlabeled = read_list(tmp_path / "splits" / slug / "unlabeled.txt")
        assert len(labeled) == n_labeled
        assert not set(labeled) & set(unlabeled) and set(labeled) | set(unlabeled) == set(train)
        assert (labeled, unlabeled) == split_labeled(train, slug.replace("-", "/"), 1234)
    leftovers = [
        name for _, _, files in os.walk(tmp_path / "splits") for name in files if name.endswith(".tmp")
    ]
    assert leftovers == []


def test_same_seed_same_split_other_seed_other_split(prepared_voc_sized, tmp_path):
    write_splits(prepared_voc_sized, tmp_path / "a", ["1/8"], seed=0)
    write_splits(prepared_voc_sized, tmp_path / "b", ["1/8"], seed=0)
    write_splits(prepared_voc_sized, tmp_path / "c", ["1/8"], seed=1)
    text = {k: (tmp_path / k / "1-8" / "labeled.txt").read_text() for k in "abc"}
    assert text["a"] == text["b"] != text["c"]


def test_sample_key():
    assert sample_key("2007_000032") == "2007_000032"
    assert sample_key("JPEGImages/2007_000032.jpg") == "2007_000032"
    assert (
        sample_key("leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png") == "aachen_000000_000019"
    )


def test_cityscapes_pair_lines_resolve(tmp_path):
    train = [
        Sample(
            f"leftImg8bit/train/aachen/aachen_000000_{i:06d}_leftImg8bit.png",
            f"gtFine/train/aachen/aachen_000000_{i:06d}_gtFine_labelTrainIds.png",
        )
        for i in range(3)
    ]
    (tmp_path / "l.txt").write_text(
        "leftImg8bit/train/aachen/aachen_000000_000002_leftImg8bit.png "
        "gtFine/train/aachen/aachen_000000_000002_gtFine_labelTrainIds.png\n"
    )
    assert resolve_ids(["aachen_000000_000002"], train) == [train[2]]


def test_id_not_in_training_set_is_a_clear_error():
    with pytest.raises(ValueError, match=r"1 id\(s\) that are not in the training list.*2007_000033"):
        resolve_ids(["2007_000001", "2007_000033"], voc_samples(10)[:5], source="labeled.txt")
    with pytest.raises(ValueError, match="more than once"):
        resolve_ids(["2007_000001", "2007_000001"], voc_samples(5))


def test_mittal_permutation_pickle(tmp_path, prepared_voc_sized):
    order = np.random.default_rng(0).permutation(10582)
    with open(tmp_path / "split_0.pkl", "wb") as f:
        pickle.dump(order, f)
    train = read_list(prepared_voc_sized / "train.txt")
    labeled, unlabeled = split_from_permutation(
        train, load_index_permutation(tmp_path / "split_0.pkl"), "1/8"
    )
    assert len(labeled) == 1322 and len(unlabeled) == 9260
    assert labeled == [train[i] for i in order[:1322]]
    sizes = write_splits(
        prepared_voc_sized, tmp_path / "splits", ["1/8"], seed=0, permutation=tmp_path / "split_0.pkl"
    )
    assert sizes == {"1-8": (1322, 9260)}
    assert read_list(tmp_path / "splits/1-8/labeled.txt") == labeled


def test_permutation_through_the_publishers_order(tmp_path):
    train = voc_samples(4)
    reference = ["2007_000003", "2007_000002", "2007_000001", "2007_000000"]  # their listing order
    labeled, _ = split_from_permutation(train, [0, 1, 2, 3], "1/2", reference=reference)
    assert [s.id for s in labeled] == ["2007_000003", "2007_000002"]


def test_permutation_for_another_list_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a permutation of the 10 training indices"):
        split_from_permutation(voc_samples(10), np.arange(2975), "1/8")


def test_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(ValueError, match="refusing to load"):
        load_index_permutation(tmp_path / "evil.pkl")


def test_python2_style_list_pickle(tmp_path):
    with open(tmp_path / "p.pkl", "wb") as f:
        pickle.dump([2, 0, 1], f, protocol=2)
    assert load_index_permutation(tmp_path / "p.pkl").tolist() == [2, 0, 1]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("kind", ["array", "list", "int32 array"])
def test_a_permutation_pickled_at_any_protocol_is_read(kind, protocol, tmp_path):
    order = np.random.default_rng(0).permutation(7)
    value = {"array": order, "list": order.tolist(), "int32 array": order.astype(np.int32)}[kind]
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(value, protocol=protocol))
    assert load_index_permutation(tmp_path / "p.pkl").tolist() == order.tolist()


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_payload_beside_an_array_is_refused_without_running(protocol, tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "p.pkl").write_bytes(pickle.dumps([np.arange(3), Payload()], protocol=protocol))
    with pytest.raises(ValueError, match=r"p\.pkl .*refusing to load posix\.system"):
        load_index_permutation(tmp_path / "p.pkl")
    assert not marker.exists()

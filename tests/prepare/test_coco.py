"""MS-COCO to VOC-class masks: the labelling rules, COCO's three segmentation encodings, the demo's COCO-format
stand-in, and preparation from a folder or from the official zips over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from latentseg.data.layout import read_list, read_meta
from latentseg.datasets.voc import VOC_CLASSES
from latentseg.prepare.coco import (
    COCO_IDS,
    COCO_TO_VOC,
    coco_label_map,
    decode_segmentation,
    prepare_coco,
    read_instances,
    voc_index,
)
from latentseg.prepare.download import ChecksumError, Remote, file_digest
from latentseg.prepare.mock_release import make_coco_zips
from latentseg.prepare.synthetic import SyntheticSpec, generate_coco

H, W = 8, 10
PERSON, CAT, SOFA = VOC_CLASSES.index("person"), VOC_CLASSES.index("cat"), VOC_CLASSES.index("sofa")


@pytest.fixture(autouse=True)
def _no_coco_env(monkeypatch) -> None:
    monkeypatch.delenv("LATENTSEG_COCO_ROOT", raising=False)


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _compressed(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [H, W]}


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.ravel(order="F").astype(int)
    runs, value, count = [], 0, 0
    for v in flat:
        if v != value:
            runs.append(count)
            value, count = v, 0
        count += 1
    return {"counts": [*runs, count], "size": [H, W]}


def test_the_three_segmentation_encodings_decode_alike():
    mask = _box(2, 6, 3, 8)
    polygon = [[3, 2, 8, 2, 8, 6, 3, 6]]  # the same box as a polygon (pycocotools' rasteriser decides its edge)
    assert np.array_equal(decode_segmentation(_compressed(mask), H, W), mask)
    assert np.array_equal(decode_segmentation(_uncompressed(mask), H, W), mask)
    assert abs(int(decode_segmentation(polygon, H, W).sum()) - int(mask.sum())) <= 10
    assert not decode_segmentation([[1, 1, 2, 2]], H, W).any()  # a degenerate polygon is nothing


def test_label_map_rules_overlap_crowd_and_same_class():
    person, cat = _box(1, 5, 1, 5), _box(2, 6, 3, 7)
    person_again = _box(0, 2, 0, 3)  # overlaps the first person: same class, no conflict
    crowd = _box(5, 8, 6, 10)  # a crowd of people, partly under the cat
    label = coco_label_map(H, W, [(PERSON, False, _compressed(person)), (CAT, False, _compressed(cat)),
                                  (PERSON, False, _uncompressed(person_again)),
                                  (PERSON, True, _uncompressed(crowd))])
    expected = np.zeros((H, W), np.uint8)
    expected[person | person_again] = PERSON
    expected[cat] = CAT
    expected[person & cat] = 255  # two classes claim it
    expected[crowd & ~cat] = 255  # only a crowd claims it
    assert np.array_equal(label, expected)


def test_coco_names_map_to_voc_classes():
    assert len(COCO_TO_VOC) == 20 and set(COCO_TO_VOC.values()) == set(VOC_CLASSES[1:])
    assert set(COCO_IDS) == set(COCO_TO_VOC)
    assert voc_index("couch") == SOFA and voc_index("tv") == VOC_CLASSES.index("tvmonitor")
    assert voc_index("sofa") == SOFA  # a VOC name is accepted too
    assert voc_index("giraffe") is None and voc_index("background") is None


def test_read_instances_keeps_voc_categories_only(tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W},
                   {"id": 2, "file_name": "b.jpg", "height": H, "width": W}],
        "categories": [{"id": 63, "name": "couch"}, {"id": 25, "name": "giraffe"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 63, "iscrowd": 0, "area": 12.0,
             "segmentation": _compressed(_box(0, 3, 0, 4))},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 30.0,
             "segmentation": _uncompressed(_box(4, 8, 0, 4))},
            {"id": 3, "image_id": 2, "category_id": 25, "iscrowd": 0, "area": 40.0,
             "segmentation": _compressed(_box(0, 8, 0, 5))},
        ],
    }
    path = tmp_path / "instances_train2017.json"
    path.write_text(json.dumps(doc))
    first, second = read_instances(path)
    assert [c for c, _, _ in first.instances] == [SOFA, PERSON] and first.voc_area == 12.0  # crowd not counted
    assert second.instances == [] and second.voc_area == 0.0  # a giraffe is background


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory) -> Path:
    """The demo's COCO-format stand-in, small: 40 training and 6 validation images of 32x32."""
    return generate_coco(SyntheticSpec("voc", 40, 6, (32, 32), seed=3), tmp_path_factory.mktemp("coco") / "raw")


def test_stand_in_is_coco_format_with_every_encoding(coco_folder):
    doc = json.loads((coco_folder / "annotations/instances_train2017.json").read_text())
    assert (coco_folder / "train2017" / doc["images"][0]["file_name"]).is_file()
    assert doc["images"][0]["file_name"] == "000000000001.jpg"
    kinds = Counter("polygon" if isinstance(a["segmentation"], list) else
                    "crowd RLE" if isinstance(a["segmentation"]["counts"], list) else "RLE"
                    for a in doc["annotations"])
    assert set(kinds) == {"polygon", "RLE", "crowd RLE"}
    for a in doc["annotations"]:  # crowd regions come as uncompressed RLE, as in COCO
        seg = a["segmentation"]
        assert (a["iscrowd"] == 1) == (isinstance(seg, dict) and isinstance(seg["counts"], list))
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert {names[a["category_id"]] for a in doc["annotations"]} - set(COCO_TO_VOC)  # some non-VOC objects


def test_prepare_from_a_folder_follows_the_rules(coco_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSEG_COCO_ROOT", str(coco_folder))  # the folder a user has
    out = tmp_path / "prepared"
    meta = prepare_coco(out, tmp_path / "raw", min_area=16, download=False)
    assert read_meta(out) == meta and meta.name == "coco" and meta.classes == VOC_CLASSES
    train = read_list(out / "train.txt")
    doc = json.loads((coco_folder / "annotations/instances_train2017.json").read_text())
    images = {im["file_name"]: im for im in doc["images"]}
    kept = {Path(s.image).name for s in train}
    for im in doc["images"]:  # kept exactly when its non-crowd VOC objects cover >= min_area pixels
        area = sum(a["area"] for a in doc["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]
                   and voc_index({c["id"]: c["name"] for c in doc["categories"]}[a["category_id"]]) is not None)
        assert (im["file_name"] in kept) == (area >= 16)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    checked = Counter()
    for sample in train:
        im = images[Path(sample.image).name]
        assert (out / sample.image).samefile(coco_folder / "train2017" / im["file_name"])  # a hard link
        label = np.asarray(Image.open(out / sample.mask))
        for ann in (a for a in doc["annotations"] if a["image_id"] == im["id"]):
            region = decode_segmentation(ann["segmentation"], im["height"], im["width"])
            cls = voc_index(names[ann["category_id"]])
            want = 255 if ann["iscrowd"] else 0 if cls is None else cls
            # instances of the stand-in do not overlap, so each region carries its own label only
            assert (label[region] == want).all(), (sample.mask, names[ann["category_id"]])
            checked["crowd" if ann["iscrowd"] else "other" if cls is None else "voc"] += 1
    assert checked["crowd"] and checked["other"] and checked["voc"]
    assert len(read_list(out / "val.txt")) == meta.num_val


def test_prepare_from_the_official_zips_over_http(coco_folder, served, tmp_path):
    zips = make_coco_zips(coco_folder, served.state.root)
    remotes = {part: served.remote(path.name, sha256=file_digest(path, "sha256")) for part, path in zips.items()}
    raw = tmp_path / "raw"
    meta = prepare_coco(tmp_path / "a", raw, min_area=16, remotes=remotes)
    assert meta.num_train > 0 and (raw / "annotations_trainval2017.zip").is_file()
    requests = len(served.state.requests)
    again = prepare_coco(tmp_path / "b", raw, min_area=16, remotes=remotes)  # extracted and verified: no download
    assert again == meta and len(served.state.requests) == requests
    assert read_list(tmp_path / "a" / "train.txt") == read_list(tmp_path / "b" / "train.txt")


def test_a_wrong_archive_checksum_or_a_missing_archive_is_reported(coco_folder, served, tmp_path):
    zips = make_coco_zips(coco_folder, served.state.root)
    remotes = {part: served.remote(path.name, sha256="0" * 64) for part, path in zips.items()}
    with pytest.raises(ChecksumError):
        prepare_coco(tmp_path / "out", tmp_path / "raw", remotes=remotes)
    offline = {part: Remote(("http://127.0.0.1:9/x.zip",), path.name, sha256="0" * 64) for part, path in zips.items()}
    with pytest.raises(FileNotFoundError, match="LATENTSEG_COCO_ROOT"):
        prepare_coco(tmp_path / "out", tmp_path / "empty", remotes=offline, download=False)


def test_zips_of_yours_with_another_checksum_need_verify_checksum_false(coco_folder, tmp_path):
    zips = make_coco_zips(coco_folder, tmp_path / "mine")  # the official names, not the official bytes
    with pytest.raises(ChecksumError, match="sha256"):
        prepare_coco(tmp_path / "out", tmp_path / "raw", min_area=16, source=tmp_path / "mine")
    assert all(path.is_file() for path in zips.values())
    meta = prepare_coco(tmp_path / "out", tmp_path / "raw", min_area=16, source=tmp_path / "mine",
                        verify_checksum=False)
    assert meta.num_train > 0 and (tmp_path / "raw/coco2017/root/train2017").is_symlink()

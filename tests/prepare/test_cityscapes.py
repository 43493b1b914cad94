from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torchvision
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

from latentseg.data.layout import read_list, read_meta
from latentseg.prepare import cityscapes
from latentseg.prepare.cityscapes import CITYSCAPES_CLASSES, PACKAGES, prepare_cityscapes, to_train_ids
from latentseg.prepare.download import ChecksumError, DownloadError
from latentseg.prepare.mock_release import cityscapes_label_ids

# From the official label table: road 7 -> 0, sidewalk 8 -> 1, building 11 -> 2, pole 17 -> 5,
# vegetation 21 -> 8, sky 23 -> 10, person 24 -> 11, car 26 -> 13, bus 28 -> 15,
# bicycle 33 -> 18; unlabeled 0, ego vehicle 1, static 4 -> 255.
KNOWN = {7: 0, 8: 1, 11: 2, 17: 5, 21: 8, 23: 10, 24: 11, 26: 13, 28: 15, 33: 18, 0: 255, 1: 255, 4: 255}


@pytest.fixture
def city_server(served, cityscapes_release):
    for name in PACKAGES:
        shutil.copy(cityscapes_release / name, served.state.root / name)
    return served


def test_label_table_matches_the_official_one():
    ids = np.array(list(KNOWN), np.uint8)
    assert to_train_ids(ids).tolist() == list(KNOWN.values())
    assert len(CITYSCAPES_CLASSES) == 19
    official = [lab.name for lab in sorted(CS_LABELS, key=lambda x: x.trainId) if 0 <= lab.trainId < 255]
    assert official == CITYSCAPES_CLASSES  # our literal table is cityscapesscripts' train-id order
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[-1] == "bicycle"


def test_unknown_label_id_is_named():
    with pytest.raises(ValueError, match=r"x_gtFine_labelIds.png: values \[40\]"):
        to_train_ids(np.array([[7, 40]], np.uint8), "x_gtFine_labelIds.png")


def test_prepare_from_served_zips(city_server, tmp_path):
    remotes = [city_server.remote(name) for name in PACKAGES]
    meta = prepare_cityscapes(tmp_path / "city", tmp_path / "raw", remotes=remotes, workers=1)
    out = tmp_path / "city"
    assert (meta.num_train, meta.num_val) == (4, 2)  # 2 cities x 2 train, 1 city x 2 val; test left out
    assert read_meta(out) == meta and meta.classes == CITYSCAPES_CLASSES
    assert not (out / "leftImg8bit/test").exists()
    for sample in read_list(out / "train.txt") + read_list(out / "val.txt"):
        stem = sample.mask.split("/")[-1].removesuffix("_gtFine_labelTrainIds.png")
        train_ids = np.asarray(Image.open(out / sample.mask))
        assert np.array_equal(train_ids, to_train_ids(cityscapes_label_ids(stem, (64, 32))))
        official = out / sample.mask.replace("labelTrainIds", "labelIds")
        assert (
            official.is_file() and (out / sample.mask.replace("labelTrainIds.png", "polygons.json")).is_file()
        )
    # torchvision's reader opens the prepared tree (its "semantic" target is the official labelIds file)
    for split, n in (("train", 4), ("val", 2)):
        ds = torchvision.datasets.Cityscapes(out, split=split, mode="fine", target_type="semantic")
        assert len(ds) == n
        image, target = ds[0]
        assert image.size == target.size == (64, 32)


def test_rerun_is_a_no_op(city_server, tmp_path):
    remotes = [city_server.remote(name) for name in PACKAGES]
    prepare_cityscapes(tmp_path / "city", tmp_path / "raw", remotes=remotes, workers=1)
    before = len(city_server.state.requests)
    prepare_cityscapes(tmp_path / "city", tmp_path / "raw", remotes=remotes, workers=1)
    assert len(city_server.state.requests) == before


def test_zips_of_yours_are_checked_against_the_official_md5(cityscapes_release, tmp_path):
    with pytest.raises(ChecksumError) as err:
        prepare_cityscapes(tmp_path / "city", tmp_path / "raw", source=cityscapes_release, download=False)
    message = str(err.value)
    assert str(cityscapes_release / PACKAGES[0]) in message and "0a6e97e94b616a514066c9e2adb0c97f" in message
    assert all((cityscapes_release / name).is_file() for name in PACKAGES)  # reported, not deleted
    meta = prepare_cityscapes(tmp_path / "city", tmp_path / "raw", source=cityscapes_release, download=False,
                              verify_checksum=False)  # the mock zips are no official ones: accepted on request
    assert (meta.num_train, meta.num_val) == (4, 2)


def test_extracted_tree_from_environment(cityscapes_release, tmp_path, monkeypatch):
    prepare_cityscapes(tmp_path / "first", tmp_path / "raw1", source=cityscapes_release, download=False,
                       verify_checksum=False)
    # a hand-made folder holding leftImg8bit/ and gtFine/ side by side
    tree = tmp_path / "by_hand"
    shutil.copytree(tmp_path / "raw1/leftImg8bit_trainvaltest/leftImg8bit", tree / "leftImg8bit")
    shutil.copytree(tmp_path / "raw1/gtFine_trainvaltest/gtFine", tree / "gtFine")
    monkeypatch.setenv("LATENTSEG_CITYSCAPES_ROOT", str(tree))
    meta = prepare_cityscapes(tmp_path / "city", tmp_path / "raw2", download=False)
    assert (meta.num_train, meta.num_val) == (4, 2)
    assert not list((tmp_path / "raw2").iterdir())


def test_official_downloader_with_credentials_from_the_environment(cityscapes_release, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYSCAPES_USERNAME", "alice")
    monkeypatch.setenv("CITYSCAPES_PASSWORD", "secret")
    from cityscapesscripts.download import downloader

    logged_in = object()
    calls = []
    monkeypatch.setattr(cityscapes, "_login_with", lambda user, password: (calls.append(user), logged_in)[1])

    def fake_download(*, session, package_names, destination_path, resume):
        assert session is logged_in and resume
        for name in package_names:
            shutil.copy(cityscapes_release / name, f"{destination_path}/{name}")

    monkeypatch.setattr(downloader, "download_packages", fake_download)
    meta = prepare_cityscapes(tmp_path / "city", tmp_path / "raw", workers=1)
    assert calls == ["alice"] and meta.num_train == 4
    assert all((tmp_path / "raw" / name).is_file() for name in PACKAGES)
    assert not list((tmp_path / "raw/.download").iterdir())


def test_official_downloader_without_credentials_explains(tmp_path, monkeypatch):
    monkeypatch.setattr(cityscapes, "_stored_credentials", lambda: None)
    with pytest.raises(DownloadError) as err:
        prepare_cityscapes(tmp_path / "city", tmp_path / "raw")
    message = str(err.value)
    assert "CITYSCAPES_USERNAME" in message and "CITYSCAPES_PASSWORD" in message
    assert str(tmp_path / "raw") in message


def test_missing_zips_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        prepare_cityscapes(tmp_path / "city", tmp_path / "raw", download=False)
    assert "gtFine_trainvaltest.zip" in str(err.value) and str(tmp_path / "raw") in str(err.value)


def test_image_without_annotation_is_named(cityscapes_release, tmp_path):
    prepare_cityscapes(tmp_path / "first", tmp_path / "raw", source=cityscapes_release, download=False,
                       verify_checksum=False)
    tree = tmp_path / "by_hand"
    shutil.copytree(tmp_path / "raw/leftImg8bit_trainvaltest/leftImg8bit", tree / "leftImg8bit")
    shutil.copytree(tmp_path / "raw/gtFine_trainvaltest/gtFine", tree / "gtFine")
    (tree / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("frankfurt_000000_000019_gtFine_labelIds.png")):
        prepare_cityscapes(tmp_path / "city", tmp_path / "raw2", source=tree, download=False)

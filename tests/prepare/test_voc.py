from __future__ import annotations

import logging
import re
import shutil

import numpy as np
import pytest
import torchvision
from PIL import Image

from latentseg.data.layout import read_list, read_meta
from latentseg.prepare import download
from latentseg.prepare.download import ChecksumError, Remote, file_digest
from latentseg.prepare.voc import VOC_CLASSES, prepare_voc, sbd_mask


@pytest.fixture
def voc_server(served, voc_release):
    tar, tgz, ids = voc_release
    for path in (tar, tgz):
        shutil.copy(path, served.state.root / path.name)
    return served, ids


def _prepare(server, tmp_path, **kwargs):
    return prepare_voc(
        tmp_path / "voc",
        tmp_path / "raw",
        workers=1,
        voc_remote=server.remote("VOCtrainval_11-May-2012.tar"),
        sbd_remote=server.remote("benchmark.tgz"),
        **kwargs,
    )


def test_prepare_downloads_merges_and_writes_the_layout(voc_server, tmp_path):
    server, ids = voc_server
    meta = _prepare(server, tmp_path)
    out = tmp_path / "voc"
    # scaled-down arithmetic of 10,582 = |VOC train ∪ SBD train ∪ SBD val| - |that ∩ VOC val|
    assert len(ids.aug_train) == 12 + 10 + 5  # VOC train + SBD-only train + SBD-only val
    assert meta.num_train == len(ids.aug_train) and meta.num_val == len(ids.voc_val) == 8
    assert read_meta(out) == meta and meta.classes == VOC_CLASSES and meta.classes[0] == "background"
    train = read_list(out / "train.txt")
    assert [s.id for s in train] == ids.aug_train  # sorted, as train_aug.txt
    assert not {s.id for s in train} & set(ids.voc_val)
    assert [s.id for s in read_list(out / "val.txt")] == ids.voc_val
    sets = out / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    assert (sets / "train.txt").read_text().split() == ids.aug_train
    assert (sets / "val.txt").read_text().split() == ids.voc_val
    for sample in train:
        assert (out / sample.image).is_file() and (out / sample.mask).is_file()


def test_voc_mask_wins_and_sbd_masks_are_converted(voc_server, tmp_path):
    server, ids = voc_server
    _prepare(server, tmp_path)
    masks = tmp_path / "voc/VOCdevkit/VOC2012/SegmentationClass"
    raw_voc = tmp_path / "raw/VOCtrainval_11-May-2012/VOCdevkit/VOC2012/SegmentationClass"
    raw_sbd = tmp_path / "raw/benchmark/benchmark_RELEASE/dataset/cls"
    both = sorted(set(ids.voc_train) & set(ids.sbd_train))
    assert both
    for image_id in both:  # annotated by both: VOC's mask, with its 255 boundary band
        ours = np.asarray(Image.open(masks / f"{image_id}.png"))
        assert np.array_equal(ours, np.asarray(Image.open(raw_voc / f"{image_id}.png")))
        assert 255 in ours
        assert not np.array_equal(ours, sbd_mask(raw_sbd / f"{image_id}.mat"))
    sbd_only = sorted(set(ids.sbd_train) - set(ids.voc_train) - set(ids.voc_val))
    for image_id in sbd_only:
        img = Image.open(masks / f"{image_id}.png")
        assert img.mode == "P"  # palette PNG whose indices are classes
        assert np.array_equal(np.asarray(img), sbd_mask(raw_sbd / f"{image_id}.mat"))


def test_torchvision_reads_the_prepared_folder(voc_server, tmp_path):
    server, ids = voc_server
    _prepare(server, tmp_path)
    for image_set, expected in (("train", ids.aug_train), ("val", ids.voc_val)):
        ds = torchvision.datasets.VOCSegmentation(tmp_path / "voc", year="2012", image_set=image_set)
        assert len(ds) == len(expected)
        image, mask = ds[len(ds) - 1]
        assert image.size == mask.size and mask.mode == "P"


def test_second_run_downloads_extracts_and_hashes_nothing(voc_server, tmp_path, monkeypatch):
    server, _ = voc_server
    _prepare(server, tmp_path)
    marker = tmp_path / "raw/benchmark/.extracted.json"
    stamp = marker.stat().st_mtime_ns
    before = list(server.state.requests)
    hashed = []
    real = download.file_digest
    monkeypatch.setattr(
        download, "file_digest", lambda path, algo: (hashed.append(path), real(path, algo))[1]
    )
    _prepare(server, tmp_path)
    assert server.state.requests == before
    assert marker.stat().st_mtime_ns == stamp
    assert hashed == []  # the archives were verified when extracted; they are not hashed again


def test_extracted_sources_from_environment_without_network(voc_server, tmp_path, monkeypatch):
    server, ids = voc_server
    _prepare(server, tmp_path / "first")
    raw = tmp_path / "first/raw"
    monkeypatch.setenv("LATENTSEG_VOC_ROOT", str(raw / "VOCtrainval_11-May-2012"))  # holds VOCdevkit/VOC2012
    monkeypatch.setenv("LATENTSEG_SBD_ROOT", str(raw / "benchmark/benchmark_RELEASE"))  # holds dataset/
    requests = len(server.state.requests)
    meta = prepare_voc(tmp_path / "voc", tmp_path / "raw", download=False, workers=2)
    assert meta.num_train == len(ids.aug_train)
    assert len(server.state.requests) == requests
    assert not list((tmp_path / "raw").iterdir())  # nothing downloaded or extracted


def test_user_archives_as_sources(voc_release, tmp_path):
    tar, tgz, ids = voc_release
    remotes = {  # the official checksums would not match these mock archives
        "voc_remote": Remote(("http://unused",), tar.name, md5=file_digest(tar, "md5")),
        "sbd_remote": Remote(("http://unused",), tgz.name, md5=file_digest(tgz, "md5")),
    }
    meta = prepare_voc(
        tmp_path / "voc",
        tmp_path / "raw",
        voc_source=tar,
        sbd_source=tgz,
        download=False,
        workers=1,
        **remotes,
    )
    assert meta.num_train == len(ids.aug_train)


def test_hand_placed_archive_with_wrong_checksum_is_reported_and_kept(voc_release, tmp_path):
    tar, _, _ = voc_release
    mine = tmp_path / "my-copy.tar"
    mine.write_bytes(tar.read_bytes()[:-10240])  # truncated
    with pytest.raises(ChecksumError) as err:
        prepare_voc(tmp_path / "voc", tmp_path / "raw", voc_source=mine, download=False)
    assert str(mine) in str(err.value) and "6cd6e144f989b92b3379bac3b3de84fd" in str(err.value)
    assert mine.is_file()


def test_missing_archive_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        prepare_voc(tmp_path / "voc", tmp_path / "raw", download=False)
    message = str(err.value)
    assert (
        str(tmp_path / "raw" / "VOCtrainval_11-May-2012.tar") in message and "LATENTSEG_VOC_ROOT" in message
    )


def test_missing_image_is_named(voc_server, tmp_path):
    server, ids = voc_server
    _prepare(server, tmp_path / "first")
    raw = tmp_path / "first/raw"
    victim = ids.sbd_val[0]
    (raw / f"VOCtrainval_11-May-2012/VOCdevkit/VOC2012/JPEGImages/{victim}.jpg").unlink()
    (raw / f"benchmark/benchmark_RELEASE/dataset/img/{victim}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=victim):
        prepare_voc(
            tmp_path / "voc",
            tmp_path / "raw",
            download=False,
            workers=1,
            voc_source=raw / "VOCtrainval_11-May-2012",
            sbd_source=raw / "benchmark",
        )


def test_damaged_sbd_mat_is_named(tmp_path):
    path = tmp_path / "2008_000001.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(ValueError, match=re.escape("2008_000001.mat")):
        sbd_mask(path)


def test_interrupted_archive_downloads_resume(voc_server, tmp_path, monkeypatch):
    server, ids = voc_server
    server.state.drop_once.update({"VOCtrainval_11-May-2012.tar", "benchmark.tgz"})
    monkeypatch.setattr(download.time, "sleep", lambda seconds: None)  # skip the back-off pause
    meta = _prepare(server, tmp_path)
    assert meta.num_train == len(ids.aug_train)
    ranges = [r for name, r in server.state.requests if r]
    assert len(ranges) == 2  # each archive: one broken transfer, one Range request for the rest


def test_offline_prepare_says_where_to_place_the_archive(refused_url, tmp_path):
    remote = Remote((refused_url,), "VOCtrainval_11-May-2012.tar", md5="6cd6e144f989b92b3379bac3b3de84fd")
    with pytest.raises(download.OfflineError) as err:
        prepare_voc(tmp_path / "voc", tmp_path / "raw", voc_remote=remote)
    message = str(err.value)
    assert refused_url in message
    assert str((tmp_path / "raw" / "VOCtrainval_11-May-2012.tar").resolve()) in message


def test_archives_of_yours_with_another_checksum_are_accepted_with_verify_checksum_false(
    voc_release, tmp_path, caplog
):
    tar, tgz, ids = voc_release  # generated: their MD5s are not the official ones
    with pytest.raises(ChecksumError) as err:
        prepare_voc(tmp_path / "voc", tmp_path / "raw", voc_source=tar, sbd_source=tgz, download=False)
    assert str(tar) in str(err.value) and "6cd6e144f989b92b3379bac3b3de84fd" in str(err.value)
    assert tar.is_file() and not (tmp_path / "raw/VOCtrainval_11-May-2012").exists()  # kept, not extracted
    with caplog.at_level(logging.WARNING, logger="latentseg.prepare.releases"):
        meta = prepare_voc(tmp_path / "voc", tmp_path / "raw", voc_source=tar, sbd_source=tgz, download=False,
                           workers=1, verify_checksum=False)
    assert meta.num_train == len(ids.aug_train) and meta.num_val == len(ids.voc_val)
    skipped = [r.getMessage() for r in caplog.records if "checksum not checked" in r.getMessage()]
    assert len(skipped) == 2 and str(tar) in skipped[0] and str(tgz) in skipped[1]


def test_hand_placed_archives_with_verify_checksum_false(voc_release, tmp_path):
    tar, tgz, ids = voc_release
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(tar, raw / "VOCtrainval_11-May-2012.tar")
    shutil.copy(tgz, raw / "benchmark.tgz")
    with pytest.raises(ChecksumError, match=re.escape(str(raw / "VOCtrainval_11-May-2012.tar"))):
        prepare_voc(tmp_path / "voc", raw, download=False)
    meta = prepare_voc(tmp_path / "voc", raw, download=False, workers=1, verify_checksum=False)
    assert meta.num_train == len(ids.aug_train)


def test_verify_checksum_false_still_checks_the_layout(voc_release, tmp_path):
    _, tgz, _ = voc_release
    with pytest.raises(ValueError, match="VOCdevkit/VOC2012/JPEGImages"):  # SBD's archive named as VOC's
        prepare_voc(tmp_path / "voc", tmp_path / "raw", voc_source=tgz, download=False, verify_checksum=False)

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from latentseg.data.layout import read_list, read_meta
from latentseg.datasets import get
from latentseg.prepare.iit import PAGE, prepare_iit, read_label
from latentseg.prepare.validate import DataError
from tests.prepare import iit_release as fixture
from tests.prepare.iit_release import TOP, TRAIN, VAL, label_of, make_iit_folder, write_label, zip_folder


@pytest.fixture
def release(tmp_path):
    """(folder holding IIT_Affordances_2017/, its zip)."""
    folder = tmp_path / "release"
    top = make_iit_folder(folder)
    return folder, zip_folder(top, tmp_path / "IIT_Affordances_2017.zip")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("LATENTSEG_IIT_ROOT", raising=False)


def expected_counts(items) -> np.ndarray:
    return sum(np.bincount(label_of(n, s).ravel(), minlength=10) for n, s in items)


def class_counts(out, split) -> np.ndarray:
    masks = [np.asarray(Image.open(out / s.mask)) for s in read_list(out / f"{split}.txt")]
    return sum(np.bincount(m.ravel(), minlength=10) for m in masks)


def test_zip_prepares_to_the_right_counts_and_pixels(release, tmp_path):
    _, archive = release
    out = tmp_path / "iit"
    meta = prepare_iit(out, tmp_path / "raw", source=archive, workers=1)
    assert (meta.num_train, meta.num_val) == (len(TRAIN), len(VAL))  # train_and_val / test
    assert read_meta(out) == meta and meta.classes == list(get("iit").classes)
    assert np.array_equal(class_counts(out, "train"), expected_counts(TRAIN))
    assert np.array_equal(class_counts(out, "val"), expected_counts(VAL))
    background = np.asarray(Image.open(out / f"affordances_labels/{fixture.ALL_BACKGROUND}.png"))
    assert background.shape == (20, 20) and not background.any()
    portrait = Image.open(out / "affordances_labels/00_00000002.png")
    assert portrait.size == (18, 40) and portrait.mode == "P"
    record = json.loads((out / "release.json").read_text())
    assert record["sha256"] == json.loads((tmp_path / "raw/release.json").read_text())["sha256"]
    assert len(record["sha256"]) == 64


def test_folder_and_top_folder_and_environment(release, tmp_path, monkeypatch):
    folder, _ = release
    assert prepare_iit(tmp_path / "a", tmp_path / "raw", source=folder, workers=1).num_train == len(TRAIN)
    assert prepare_iit(tmp_path / "b", tmp_path / "raw", source=folder / TOP, workers=1).num_val == len(VAL)
    monkeypatch.setenv("LATENTSEG_IIT_ROOT", str(folder))
    assert prepare_iit(tmp_path / "c", tmp_path / "raw", workers=1).num_train == len(TRAIN)
    assert json.loads((tmp_path / "c/release.json").read_text())["sha256"] is None


def test_zip_in_raw_dir_and_a_changed_zip_is_reported(release, tmp_path):
    folder, archive = release
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(archive, raw / archive.name)
    prepare_iit(tmp_path / "a", raw, workers=1)
    first = json.loads((raw / "release.json").read_text())["sha256"]
    prepare_iit(tmp_path / "a", raw, workers=1)  # unchanged: no report
    with open(folder / TOP / "val.txt", "a") as f:
        f.write("\n")
    zip_folder(folder / TOP, raw / archive.name)
    with pytest.raises(DataError, match=f"differs from {first}") as err:
        prepare_iit(tmp_path / "b", raw, workers=1)
    assert "\n" not in str(err.value) and str(raw / archive.name) in str(err.value)
    prepare_iit(tmp_path / "b", raw, workers=1, verify_checksum=False)  # accepted on request, recorded anew
    assert json.loads((raw / "release.json").read_text())["sha256"] != first


def test_offline_with_nothing_names_the_page(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        prepare_iit(tmp_path / "iit", tmp_path / "raw")
    assert PAGE in str(err.value) and str(tmp_path / "raw") in str(err.value) and "\n" not in str(err.value)


def test_the_voc_formatted_copy_is_refused(tmp_path):
    (tmp_path / "copy/VOCdevkit2012/VOC2012/JPEGImages").mkdir(parents=True)
    with pytest.raises(DataError, match="VOC-formatted copy"):
        prepare_iit(tmp_path / "iit", tmp_path / "raw", source=tmp_path / "copy")


def _one_line_error(tmp_path, source, *names) -> str:
    with pytest.raises(DataError) as err:
        prepare_iit(tmp_path / "iit", tmp_path / "raw", source=source, workers=1)
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in names), message
    return message


def test_a_transposed_label_is_an_error(release, tmp_path):
    folder, _ = release
    path = folder / TOP / "affordances_labels/00_00000001.txt"
    write_label(path, label_of("00_00000001", (24, 32)).T)
    assert "transposed" in _one_line_error(tmp_path, folder, str(path))


def test_a_value_of_10_is_named_with_its_line(release, tmp_path):
    folder, _ = release
    path = folder / TOP / "affordances_labels/02_00000005.txt"
    label = label_of("02_00000005", (30, 22)).astype(int)
    label[6, 3] = 10
    write_label(path, label)
    _one_line_error(tmp_path, folder, f"{path}:7", "value 10")


def test_a_missing_image_is_named(release, tmp_path):
    folder, _ = release
    (folder / TOP / "rgb/03_00000008.jpg").unlink()
    _one_line_error(tmp_path, folder, "test.txt:2", "03_00000008.jpg")


def test_a_truncated_zip_is_named(release, tmp_path):
    _, archive = release
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    _one_line_error(tmp_path, archive, str(archive))


def test_read_label_names_a_short_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 1 2\n0 1\n")
    with pytest.raises(DataError, match=r"x.txt:2: 2 values"):
        read_label(path)


def test_the_demo_stand_in_plants_the_affordance_groups(tmp_path):
    from latentseg.prepare.synthetic import SyntheticSpec, generate
    from latentseg.prepare.validate import check_prepared

    meta = generate(SyntheticSpec("iit", 12, 4, (48, 48), 0), tmp_path / "demo")
    assert (meta.num_train, meta.num_val) == (12, 4) and meta.classes == list(get("iit").classes)
    check_prepared(tmp_path / "demo", workers=1)
    present = class_counts(tmp_path / "demo", "train")
    assert present[0] > 0 and (present[1:] > 0).sum() >= 4  # background and parts of several tools
    groups = get("iit").planted_groups
    assert sorted(c for members in groups.values() for c in members) == sorted(get("iit").classes)


def test_a_truncated_zip_is_not_recorded(release, tmp_path):
    _, archive = release
    good = archive.read_bytes()
    archive.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError):
        prepare_iit(tmp_path / "iit", tmp_path / "raw", source=archive, workers=1)
    assert not (tmp_path / "raw/release.json").exists()
    archive.write_bytes(good)  # downloaded again: accepted, then recorded
    assert prepare_iit(tmp_path / "iit", tmp_path / "raw", source=archive, workers=1).num_val == len(VAL)
    assert (tmp_path / "raw/release.json").is_file()

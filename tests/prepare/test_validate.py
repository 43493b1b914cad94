from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.prepare.validate import DataError, check_image, check_mask, check_prepared

N_CLASSES = 5


def _write_sample(root, name: str, size=(20, 10), values=(0, 1, 4, 255)) -> Sample:
    w, h = size
    image, mask = f"img/{name}.jpg", f"mask/{name}.png"
    (root / "img").mkdir(exist_ok=True)
    (root / "mask").mkdir(exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(root / image)
    Image.fromarray(np.resize(np.array(values, np.uint8), (h, w))).save(root / mask)
    return Sample(image, mask)


@pytest.fixture
def prepared(tmp_path):
    """A valid prepared folder: 4 train and 2 val samples of a 5-class data set."""
    train = [_write_sample(tmp_path, f"t{i}") for i in range(4)]
    val = [_write_sample(tmp_path, f"v{i}") for i in range(2)]
    write_list(tmp_path / "train.txt", train)
    write_list(tmp_path / "val.txt", val)
    write_meta(tmp_path, DatasetMeta("toy", [f"c{i}" for i in range(N_CLASSES)], 255, 4, 2))
    return tmp_path


def test_valid_folder_passes(prepared):
    report = check_prepared(prepared, decode_images=True, progress=False)
    assert (report.num_train, report.num_val) == (4, 2)


def test_corrupt_image_is_named(prepared):
    path = prepared / "img/t2.jpg"
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(DataError, match=re.escape("t2.jpg cannot be read")) as err:
        check_prepared(prepared, decode_images=True, progress=False)
    assert "re-run the prepare stage" in str(err.value)
    path.write_bytes(b"not an image at all")  # caught even without decoding the pixels
    with pytest.raises(DataError, match=re.escape("t2.jpg cannot be read")):
        check_prepared(prepared, progress=False)


def test_mask_value_outside_the_classes_is_named(prepared):
    Image.fromarray(np.full((10, 20), 7, np.uint8)).save(prepared / "mask/v1.png")
    with pytest.raises(DataError) as err:
        check_prepared(prepared, progress=False)
    message = str(err.value)
    assert "v1.png" in message and "[7]" in message and "[0, 5)" in message


def test_colour_mask_is_refused(prepared):
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(prepared / "mask/t0.png")
    with pytest.raises(DataError, match=re.escape("t0.png has mode RGB")):
        check_prepared(prepared, progress=False)


def test_size_mismatch_is_named(prepared):
    Image.fromarray(np.zeros((11, 20), np.uint8)).save(prepared / "mask/t1.png")
    with pytest.raises(DataError, match=r"t1.png is 20x11 but its image is 20x10"):
        check_prepared(prepared, progress=False)


def test_list_naming_a_missing_file(prepared):
    (prepared / "img/t3.jpg").unlink()
    with pytest.raises(DataError) as err:
        check_prepared(prepared, progress=False)
    message = str(err.value)
    assert "train.txt:4" in message and "t3.jpg" in message and "does not exist" in message


def test_all_problems_are_reported_together(prepared):
    (prepared / "img/t0.jpg").unlink()
    Image.fromarray(np.full((10, 20), 9, np.uint8)).save(prepared / "mask/v0.png")
    with pytest.raises(DataError, match="2 problem") as err:
        check_prepared(prepared, progress=False)
    assert "t0.jpg" in str(err.value) and "v0.png" in str(err.value)


def test_path_escaping_the_folder_is_refused(prepared):
    (prepared / "val.txt").write_text("../outside.jpg mask/v0.png\nimg/v1.jpg mask/v1.png\n")
    with pytest.raises(DataError, match="stay inside"):
        check_prepared(prepared, progress=False)


def test_count_disagreeing_with_dataset_json(prepared):
    (prepared / "val.txt").write_text("img/v0.jpg mask/v0.png\n")
    with pytest.raises(DataError, match=re.escape("1 samples but dataset.json says 2")):
        check_prepared(prepared, progress=False)


def test_single_file_checks(prepared):
    assert check_image(prepared / "img/t0.jpg") == (20, 10)
    assert check_mask(prepared / "mask/t0.png", N_CLASSES, size=(20, 10)) == (20, 10)
    with pytest.raises(DataError, match="values \\[4\\]"):
        check_mask(prepared / "mask/t0.png", 4)
    with pytest.raises(DataError, match="does not exist"):
        check_image(prepared / "img/nope.jpg")


def test_parallel_check_finds_the_bad_sample(tmp_path):
    # more samples than the sequential threshold, so the process pool runs
    train = [_write_sample(tmp_path, f"t{i}", size=(8, 6)) for i in range(80)]
    write_list(tmp_path / "train.txt", train)
    write_list(tmp_path / "val.txt", train[:1])
    write_meta(tmp_path, DatasetMeta("toy", [f"c{i}" for i in range(N_CLASSES)], 255, 80, 1))
    assert check_prepared(tmp_path, workers=2, progress=False).num_train == 80
    Image.fromarray(np.full((6, 8), 200, np.uint8)).save(tmp_path / "mask/t77.png")
    with pytest.raises(DataError, match=r"t77.png holds values \[200\]"):
        check_prepared(tmp_path, workers=2, progress=False)

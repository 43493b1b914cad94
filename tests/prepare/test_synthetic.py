import hashlib

import numpy as np
from PIL import Image
from torchvision.datasets import VOCSegmentation

from latentseg.data.layout import read_list, read_meta
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.prepare.validate import check_prepared


def _digest(root):
    h = hashlib.sha256()
    for sample in read_list(root / "train.txt") + read_list(root / "val.txt"):
        h.update((root / sample.image).read_bytes())
        h.update((root / sample.mask).read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    spec = SyntheticSpec("voc", 6, 2, (32, 32), seed=5)
    generate(spec, tmp_path / "a")
    generate(spec, tmp_path / "b")
    generate(SyntheticSpec("voc", 6, 2, (32, 32), seed=6), tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_voc_stand_in_is_a_valid_prepared_set_that_torchvision_reads(tmp_path):
    meta = generate(SyntheticSpec("voc", 8, 3, (40, 48), seed=0), tmp_path)
    assert meta == read_meta(tmp_path) and meta.num_classes == 21
    check_prepared(tmp_path, decode_images=True, progress=False)
    ds = VOCSegmentation(str(tmp_path), year="2012", image_set="train")
    image, mask = ds[0]
    assert image.size == (48, 40) and mask.mode == "P"
    values = set(np.unique(np.asarray(mask)).tolist())
    assert values <= set(range(21)) | {255}


def test_cityscapes_stand_in_layout(tmp_path):
    meta = generate(SyntheticSpec("cityscapes", 5, 2, (32, 64), seed=0), tmp_path)
    assert meta.num_classes == 19
    check_prepared(tmp_path, decode_images=True, progress=False)
    sample = read_list(tmp_path / "val.txt")[0]
    assert sample.image.startswith("leftImg8bit/val/") and sample.mask.endswith("_gtFine_labelTrainIds.png")
    assert np.asarray(Image.open(tmp_path / sample.mask)).max() < 19


def test_voc_groups_are_silhouettes_and_stripes_recur_across_groups(tmp_path):
    """The design of prepare/synthetic.py: a group's objects share a silhouette (vehicles wider than tall, people
    taller than wide), and the r-th class of every group has the same stripe (the texture names no group)."""
    from latentseg.datasets.voc import DATASET as VOC
    from latentseg.prepare.standins.painter import Painter

    painter = Painter(list(VOC.classes), VOC.planted_groups, SyntheticSpec("voc", 1, 1, (64, 64)))
    first = [VOC.classes.index(members[0]) for members in VOC.planted_groups.values() if len(members) > 1]
    assert len({painter.stripes[c] for c in first}) == 1
    generate(SyntheticSpec("voc", 60, 1, (64, 64), seed=1), tmp_path)
    aspect: dict[str, list[float]] = {"vehicle": [], "person": []}
    for sample in read_list(tmp_path / "train.txt"):
        label = np.asarray(Image.open(tmp_path / sample.mask))
        for group in aspect:
            for name in VOC.planted_groups[group]:
                ys, xs = np.nonzero(label == VOC.classes.index(name))
                if len(ys) > 30:
                    aspect[group].append((np.ptp(xs) + 1) / (np.ptp(ys) + 1))
    assert np.median(aspect["vehicle"]) > 1.3 and np.median(aspect["person"]) < 0.7

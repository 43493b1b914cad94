import pytest
import torch
from PIL import Image

from latentseg.data.augment import MEAN_RGB, eval_transform, train_transform
from latentseg.data.dataset import SegmentationDataset
from latentseg.prepare.synthetic import SyntheticSpec, generate
from tests.helpers import data_config


def test_train_transform_pads_with_ignore_and_is_reproducible_from_its_seed(tmp_path):
    generate(SyntheticSpec("voc", 4, 1, (20, 24), seed=0), tmp_path)
    ds = SegmentationDataset(tmp_path, tmp_path / "train.txt", train_transform(data_config(crop_size=[32, 32])))
    image, mask, index = ds[(1, 99)]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and index == 1
    assert (mask == 255).any()  # the padding of a 20x24 image to 32x32
    again, mask2, _ = ds[(1, 99)]
    assert torch.equal(image, again) and torch.equal(mask, mask2)


def test_eval_transform_normalises_and_pads(tmp_path):
    generate(SyntheticSpec("voc", 1, 1, (20, 24), seed=0), tmp_path)
    ds = SegmentationDataset(tmp_path, tmp_path / "val.txt", eval_transform(data_config(eval_pad=30)))
    image, mask, _ = ds[0]
    assert image.shape == (3, 30, 30)
    assert (mask[20:] == 255).all() and (mask[:, 24:] == 255).all()
    assert (image[:, 20:] == 0).all()  # padding is the mean after normalisation
    raw = SegmentationDataset(tmp_path, tmp_path / "val.txt", None)[0][0]
    assert torch.allclose(image[:, :20, :24], raw - torch.tensor(MEAN_RGB).view(3, 1, 1), atol=1e-4)


def test_mask_image_size_mismatch_names_the_files(tmp_path):
    generate(SyntheticSpec("voc", 1, 0, (20, 24), seed=0), tmp_path)
    ds = SegmentationDataset(tmp_path, tmp_path / "train.txt", None)
    sample = ds.samples[0]
    Image.new("L", (5, 5)).save(tmp_path / sample.mask)
    with pytest.raises(ValueError) as err:
        ds[0]
    assert sample.mask in str(err.value) and sample.image in str(err.value)


def test_pad_collate_stacks_different_sizes_with_ignored_padding():
    from latentseg.data.dataset import pad_collate

    a = (torch.ones(3, 4, 5), torch.zeros(4, 5, dtype=torch.long), 0)
    b = (torch.ones(3, 6, 3), torch.ones(6, 3, dtype=torch.long), 1)
    images, masks, index = pad_collate([a, b])
    assert images.shape == (2, 3, 6, 5) and masks.shape == (2, 6, 5) and index.tolist() == [0, 1]
    assert (masks[0, 4:] == 255).all() and (masks[1, :, 3:] == 255).all() and (images[0, :, 4:] == 0).all()

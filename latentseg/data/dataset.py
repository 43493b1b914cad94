"""The one segmentation data set class and its paired image/mask transforms (torchvision transforms v2).

Input normalisation follows the DeepLab-v2 code the COCO weights come from (Hung et al.): pixel values in
0-255, the Caffe mean subtracted, no division by a standard deviation, channels in RGB order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from latentseg.config import DataConfig
from latentseg.data.layout import Sample, read_list

# Caffe's ImageNet mean in RGB order (the BGR mean 104.008, 116.669, 122.679 reversed with the channels).
MEAN_RGB = (122.67891434, 116.66876762, 104.00698793)
IGNORE = 255


def load_image(path: Path) -> Tensor:
    try:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read image {path} ({err}); re-run the prepare stage for this data set") from err


def load_mask(path: Path) -> Tensor:
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"mask {path} has mode {im.mode}; masks are single-channel class-index PNGs")
            return torch.from_numpy(np.asarray(im).copy())
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read mask {path} ({err}); re-run the prepare stage for this data set") from err


class RandomScale(v2.Transform):
    """Rescale image and mask by a factor drawn from ``range`` in steps of ``step`` (Hung et al.'s 0.5-1.5)."""

    def __init__(self, scale_range: tuple[float, float], step: float) -> None:
        super().__init__()
        lo, hi = scale_range
        self.factors = [lo + i * step for i in range(round((hi - lo) / step) + 1)] if step > 0 else [lo]

    def make_params(self, flat_inputs: list) -> dict:
        return {"factor": self.factors[int(torch.randint(len(self.factors), ()))]}

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        h, w = inpt.shape[-2:]
        size = [max(1, round(h * params["factor"])), max(1, round(w * params["factor"]))]
        mode = v2.InterpolationMode.NEAREST if isinstance(inpt, tv_tensors.Mask) else v2.InterpolationMode.BILINEAR
        return TF.resize(inpt, size, interpolation=mode, antialias=False)


class Normalize(v2.Transform):
    """Subtract the Caffe mean from a float image; masks pass through."""

    def transform(self, inpt, params: dict):
        if isinstance(inpt, tv_tensors.Image):
            mean = torch.tensor(MEAN_RGB, dtype=torch.float32).view(3, 1, 1)
            return tv_tensors.wrap(inpt.float() - mean, like=inpt)
        return inpt


class NormalizedRandomCrop(v2.RandomCrop):
    """``Normalize`` then ``RandomCrop`` (padding the image with 0, the mean, and the mask with the ignore label),
    computed in the cheaper order: crop the 8-bit image, then normalise the crop alone and zero its padding.

    Same random draws, same output values as the two transforms in sequence; the augmentation no longer
    converts the pixels the crop throws away (at scale 1.5 most of a VOC image), a third of its cost per image.
    """

    def __init__(self, size: list[int]) -> None:
        super().__init__(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE})

    def transform(self, inpt, params: dict):
        out = super().transform(inpt, params)
        if not isinstance(inpt, tv_tensors.Image):
            return out
        mean = torch.tensor(MEAN_RGB, dtype=torch.float32).view(3, 1, 1)
        image = out.as_subclass(Tensor).float() - mean
        if params["needs_pad"]:  # the crop window in the padded image; the original image inside it
            pad_left, pad_top = params["padding"][:2]
            h, w = inpt.shape[-2:]
            top, left = pad_top - params["top"], pad_left - params["left"]
            inside = torch.zeros(image.shape[-2:], dtype=torch.bool)
            inside[max(top, 0): max(top + h, 0), max(left, 0): max(left + w, 0)] = True
            image = image.masked_fill(~inside, 0.0)
        return tv_tensors.wrap(image, like=inpt)


def train_transform(cfg: DataConfig) -> v2.Compose:
    steps: list = []
    if cfg.resize:
        steps.append(v2.Resize(list(cfg.resize), antialias=True))
    if cfg.scale_range != (1.0, 1.0):
        steps.append(RandomScale(cfg.scale_range, cfg.scale_step))
    # Normalise, pad with 0 (the mean, after normalisation) and the ignore label, then crop, as in DeepLab-v2.
    steps.append(NormalizedRandomCrop(list(cfg.crop_size)))
    if cfg.mirror:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


def eval_transform(cfg: DataConfig) -> v2.Compose:
    steps: list = []
    if cfg.resize:
        steps.append(v2.Resize(list(cfg.resize), antialias=True))
    steps.append(Normalize())
    if cfg.eval_pad:
        steps.append(PadTo(cfg.eval_pad))
    return v2.Compose(steps)


class PadTo(v2.Transform):
    """Pad bottom/right to a square ``size`` (image with 0, mask with the ignore label): VOC's 505x505 evaluation."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt, params: dict):
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        h, w = inpt.shape[-2:]
        if h > self.size or w > self.size:
            raise ValueError(f"an image of {h}x{w} is larger than the evaluation padding {self.size} (data.eval_pad)")
        fill = IGNORE if isinstance(inpt, tv_tensors.Mask) else 0.0
        return TF.pad(inpt, [0, 0, self.size - w, self.size - h], fill=fill)


class SegmentationDataset(Dataset):
    """Samples of a prepared data set: ``(image (3, H, W) float, mask (H, W) int64, index)``.

    ``samples`` is a list file or a list of ``Sample``; paths are relative to ``root``.
    """

    def __init__(self, root: str | Path, samples: str | Path | list[Sample], transform: v2.Transform | None,
                 with_mask: bool = True) -> None:
        self.root = Path(root)
        self.samples = read_list(samples) if isinstance(samples, str | Path) else list(samples)
        self.transform = transform
        self.with_mask = with_mask

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, Tensor, int]:
        """``key`` is an index, or ``(index, seed)``: the seed fixes the random augmentation of this draw, so a
        resumed run sees the same crops as an uninterrupted one, whatever the number of workers."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            return self._load(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._load(index)

    def _load(self, index: int) -> tuple[Tensor, Tensor, int]:
        sample = self.samples[index]
        image = tv_tensors.Image(load_image(self.root / sample.image))
        if self.with_mask:
            mask = tv_tensors.Mask(load_mask(self.root / sample.mask))
            if mask.shape != image.shape[-2:]:
                raise ValueError(f"mask {self.root / sample.mask} is {tuple(mask.shape)} but image "
                                 f"{self.root / sample.image} is {tuple(image.shape[-2:])}; re-run the prepare stage")
        else:  # unlabeled stream: a dummy mask keeps the transforms' geometry identical
            mask = tv_tensors.Mask(torch.zeros(image.shape[-2:], dtype=torch.uint8))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(Tensor).float(), mask.as_subclass(Tensor).long(), index


def pad_collate(batch: list[tuple[Tensor, Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Stack samples of different sizes: pad bottom/right to the largest (image 0 = the mean, mask ignored)."""
    h = max(image.shape[-2] for image, _, _ in batch)
    w = max(image.shape[-1] for image, _, _ in batch)
    images = torch.zeros(len(batch), 3, h, w)
    masks = torch.full((len(batch), h, w), IGNORE, dtype=torch.long)
    for i, (image, mask, _) in enumerate(batch):
        images[i, :, : image.shape[-2], : image.shape[-1]] = image
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks, torch.tensor([index for _, _, index in batch])


def eval_loader(root: str | Path, cfg: DataConfig, batch_size: int = 8) -> DataLoader:
    """The validation set of a prepared data set, batched (padding is ignored by the metrics)."""
    val = SegmentationDataset(root, Path(root) / "val.txt", eval_transform(cfg))
    return DataLoader(val, batch_size=batch_size, num_workers=cfg.workers, collate_fn=pad_collate)

"""The one segmentation data set class of training and evaluation, and its loaders' collation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from latentseg.config import DataConfig
from latentseg.data.augment import IGNORE, Transform, eval_transform
from latentseg.data.layout import Sample, read_list


def load_image(path: Path) -> Tensor:
    """(3, H, W) uint8, RGB."""
    try:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read image {path} ({err}); re-run the prepare stage for this data set") from err


def load_mask(path: Path) -> Tensor:
    """(H, W) uint8 class indices (or 255)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"mask {path} has mode {im.mode}; masks are single-channel class-index PNGs")
            return torch.from_numpy(np.asarray(im).copy())
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read mask {path} ({err}); re-run the prepare stage for this data set") from err


_DECODED: dict[tuple[Path, bool], Tensor] = {}  # this process's decoded files (``in_memory``), by (path, is mask)


def _decoded(path: Path, mask: bool, in_memory: bool) -> Tensor:
    """The decoded image (or mask) at ``path``; with ``in_memory``, decoded once per process and copied out."""
    if not in_memory:
        return load_mask(path) if mask else load_image(path)
    key = (path, mask)
    if key not in _DECODED:
        _DECODED[key] = load_mask(path) if mask else load_image(path)
    return _DECODED[key].clone()


class SegmentationDataset(Dataset):
    """Samples of a prepared data set: ``(image (3, H, W) float, mask (H, W) int64, index)``.

    ``samples`` is a list file or a list of ``Sample``; paths are relative to ``root``. An unlabeled stream
    (``with_mask=False``) reads no mask: it gets an all-zero one of the image's size, so that the transform's
    geometry and random draws are those of a labeled image.
    """

    def __init__(self, root: str | Path, samples: str | Path | list[Sample], transform: Transform | None,
                 with_mask: bool = True, in_memory: bool = False) -> None:
        self.root = Path(root)
        self.samples = read_list(samples) if isinstance(samples, str | Path) else list(samples)
        self.transform = transform
        self.with_mask = with_mask
        self.in_memory = in_memory

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, Tensor, int]:
        """``key`` is an index, or ``(index, seed)``: the seed fixes the random augmentation of this draw, so a
        resumed run sees the same crops as an uninterrupted one, whatever the number of workers."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.samples[index]
        image = _decoded(self.root / sample.image, False, self.in_memory)
        if self.with_mask:
            mask = _decoded(self.root / sample.mask, True, self.in_memory)
            if mask.shape != image.shape[-2:]:
                raise ValueError(f"mask {self.root / sample.mask} is {tuple(mask.shape)} but image "
                                 f"{self.root / sample.image} is {tuple(image.shape[-2:])}; re-run the prepare stage")
        else:
            mask = torch.zeros(image.shape[-2:], dtype=torch.uint8)
        if self.transform is None:
            return image.float(), mask.long(), index
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        image, mask = self.transform(image, mask, generator)
        return image, mask, index


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


def eval_loader(root: str | Path, cfg: DataConfig, batch_size: int = 8, workers: int | None = None) -> DataLoader:
    """The validation set of a prepared data set, batched (padding is ignored by the metrics)."""
    val = SegmentationDataset(root, Path(root) / "val.txt", eval_transform(cfg), in_memory=cfg.in_memory)
    return DataLoader(val, batch_size=batch_size, num_workers=cfg.workers if workers is None else workers,
                      collate_fn=pad_collate)

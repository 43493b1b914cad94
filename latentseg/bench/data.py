"""The data pipeline's cost per image: decoding and the training augmentation, on one thread as a loader worker."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from latentseg.config import DataConfig


@dataclass
class DataResult:
    images: int
    size: tuple[int, int]
    decode_ms: float  # JPEG image + PNG mask, per image
    augment_ms: float  # scale, normalise, pad/crop, mirror (data/dataset.py's train_transform), per image

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.augment_ms


def bench_data(data_cfg: DataConfig, images: int = 16, size: tuple[int, int] = (375, 500)) -> DataResult:
    """Decode and augment VOC-sized synthetic images with ``data_cfg``'s training augmentation, on one CPU thread,
    as one loader worker does."""
    from latentseg.data.augment import train_transform
    from latentseg.data.dataset import load_image, load_mask
    from latentseg.data.layout import read_list
    from latentseg.datasets.voc import DATASET as VOC
    from latentseg.prepare.synthetic import SyntheticSpec, generate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker (sampling._single_thread)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            generate(SyntheticSpec(VOC.name, num_train=images, num_val=1, size=size, seed=0), tmp)
            samples = read_list(Path(tmp) / "train.txt")
            transform = train_transform(data_cfg)
            decode = augment = 0.0
            for rep in range(2):  # the first pass warms the caches and is not counted
                decode = augment = 0.0
                for i, sample in enumerate(samples):
                    t0 = time.perf_counter()
                    image = load_image(Path(tmp) / sample.image)
                    mask = load_mask(Path(tmp) / sample.mask)
                    t1 = time.perf_counter()
                    transform(image, mask, torch.Generator().manual_seed(rep * 1000 + i))
                    t2 = time.perf_counter()
                    decode += t1 - t0
                    augment += t2 - t1
    finally:
        torch.set_num_threads(threads)
    return DataResult(images, size, 1000 * decode / images, 1000 * augment / images)

"""The data an iteration draws: the labeled batch, and what the method asks for besides (``methods.base.Draws``):
an unlabeled batch, the discriminator's own labeled draw. Each stream is a seeded, resumable draw of its own
(``train/sampling.py``), so a resumed run draws what the uninterrupted run would have."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from latentseg import methods
from latentseg.config import RunConfig
from latentseg.data.augment import train_transform
from latentseg.data.dataset import SegmentationDataset
from latentseg.data.layout import Sample, TrainData
from latentseg.train.sampling import stream_loader

STREAM_LABELED, STREAM_UNLABELED, STREAM_REAL = 0, 1, 2  # independent seeded draws (train/sampling.py)


@dataclass
class Streams:
    """Per step: labeled images, their masks, unlabeled images (or None), the discriminator's own (images, masks)
    (or (None, None)), from ``start`` to the last iteration."""

    cfg: RunConfig
    data: TrainData
    start: int
    pin: bool
    rank: int
    world: int

    def __post_init__(self) -> None:
        draws = methods.get(self.cfg.objective).draws(self.cfg)
        pool = self.data.unlabeled
        if not pool and self.cfg.data.full_unlabeled == "labeled":
            pool = self.data.labeled  # Mittal et al.'s full-data s4GAN: every image in both streams
        elif not pool and self.cfg.data.full_unlabeled is None and draws.unlabeled:
            raise ValueError("the split has no unlabeled image but the run is not configured as a full split "
                             "(data.full_unlabeled); check the split lists")
        self.pool = pool if draws.unlabeled else []
        self.real = draws.real

    @property
    def images_per_batch(self) -> int:
        """Batches of ``optim.batch_size`` images an iteration draws (for the images/s of the progress lines)."""
        return 1 + bool(self.pool) + self.real

    def _stream(self, samples: list[Sample], number: int, with_mask: bool = True) -> Iterator:
        o = self.cfg.optim
        dataset = SegmentationDataset(self.data.root, samples, train_transform(self.cfg.data), with_mask=with_mask,
                                      in_memory=self.cfg.data.in_memory)
        return iter(stream_loader(dataset, o.batch_size, o.seed, number, self.start, o.iterations,
                                  self.cfg.data.workers, self.pin, self.rank, self.world))

    def __iter__(self) -> Iterator[tuple]:
        unlabeled = self._stream(self.pool, STREAM_UNLABELED, with_mask=False) if self.pool else None
        real = self._stream(self.data.labeled, STREAM_REAL) if self.real else None
        for img, mask, _ in self._stream(self.data.labeled, STREAM_LABELED):
            yield img, mask, (next(unlabeled)[0] if unlabeled else None), (next(real)[:2] if real else (None, None))


def streams(cfg: RunConfig, data: TrainData, start: int, pin: bool, rank: int, world: int) -> Streams:
    return Streams(cfg, data, start, pin, rank, world)

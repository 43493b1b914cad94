"""Deterministic, resumable data streams: the batch of step ``s`` depends only on (seed, stream, s).

Each stream walks seeded permutations of its list, epoch after epoch; every draw carries its own augmentation
seed. Restarting at step ``s`` therefore reproduces exactly the batches an uninterrupted run would see.
Under ``torch.distributed`` each rank takes its own slice of the batch: ``batch_size`` is the whole batch of an
iteration (the paper's 10), whatever the number of processes, so a run on several GPUs sees exactly the images,
and the augmentations, of the same run on one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def shard(batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """The slice ``[lo, hi)`` of a batch that ``rank`` of ``world_size`` processes takes (sizes differ by <= 1)."""
    if world_size > batch_size:
        raise ValueError(f"a batch of {batch_size} images cannot be split over {world_size} processes; "
                         f"use at most {batch_size} (a divisor of {batch_size} balances the load)")
    return rank * batch_size // world_size, (rank + 1) * batch_size // world_size


class StreamBatchSampler(Sampler[list[tuple[int, int]]]):
    def __init__(self, num_samples: int, batch_size: int, seed: int, stream: int, start_step: int,
                 total_steps: int, rank: int = 0, world_size: int = 1) -> None:
        if num_samples == 0:
            raise ValueError("a training stream has no samples; check the split lists")
        self.n, self.batch, self.seed, self.stream = num_samples, batch_size, seed, stream
        self.start, self.total, self.rank, self.world = start_step, total_steps, rank, world_size
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)
        self._lo, self._hi = shard(batch_size, rank, world_size)

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, self.stream, epoch]).permutation(self.n)
        return int(self._perm[offset])

    def draw_seed(self, position: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.stream, position]).generate_state(1)[0])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            first = step * self.batch
            yield [(self._index(p), self.draw_seed(p)) for p in range(first + self._lo, first + self._hi)]


def stream_loader(dataset: Dataset, batch_size: int, seed: int, stream: int, start_step: int, total_steps: int,
                  workers: int, pin_memory: bool, rank: int = 0, world_size: int = 1) -> DataLoader:
    """The loader of one stream: ``batch_size`` is the whole batch, of which this process gets its slice.

    Workers decode and augment ahead of the GPU (``prefetch_factor`` batches each) into pinned memory, so the
    copy to the device is asynchronous. The sampler spans the whole run in a single pass, so workers start once;
    ``persistent_workers`` (which only keeps them across passes) would change nothing.
    """
    sampler = StreamBatchSampler(len(dataset), batch_size, seed, stream, start_step, total_steps, rank, world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers > 0 else None,
                      worker_init_fn=_single_thread if workers > 0 else None)


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not fight the training process for cores

"""Processes and devices: one run on several GPUs (torchrun), or several runs side by side (``dvc queue``).

One run on ``N`` GPUs: ``torchrun --standalone --nproc_per_node N stages/train.py ...`` starts ``N`` processes
and describes them in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``);
``init_from_env`` joins that group (NCCL on CUDA, gloo on the CPU) with one GPU per process. Every process takes
its slice of each batch (``sampling.shard``) and the losses are those of the whole batch (``losses.SplitBatch``).

Several runs side by side: ``claim_free_gpu`` gives each single-GPU run the first GPU that no other latentseg
process on the machine holds (a lock file per GPU, released when the process ends, even if it crashes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
import torch.distributed as dist

_held_locks: list[IO] = []  # open lock files: the claim lasts as long as the process


@dataclass(frozen=True)
class Processes:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes checkpoints and metrics, and evaluates."""
        return self.rank == 0


def current() -> Processes:
    if dist.is_available() and dist.is_initialized():
        return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Processes(0, 1, 0)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def init_from_env(device: str = "auto") -> Processes:
    """Join the process group that torchrun describes in the environment; a no-op for a single process.

    ``device`` is ``runtime.device``: with CUDA each process takes GPU ``LOCAL_RANK`` and NCCL; otherwise gloo.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return current()
    local = int(os.environ["LOCAL_RANK"])
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"process {local} of this node has no GPU: {torch.cuda.device_count()} visible; "
                               "start at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo")
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def claim_free_gpu(lock_dir: str | Path | None = None) -> int | None:
    """Make the first GPU that no other latentseg process holds the current device; returns its index.

    For several single-GPU runs at once (``dvc queue start -j N``): each run's process claims one GPU by
    locking a file named after the GPU's UUID (so claims agree whatever ``CUDA_VISIBLE_DEVICES`` each process
    sees). Returns None (and claims nothing) without CUDA or when every GPU is taken, in which case the run
    shares the current device.
    """
    if not torch.cuda.is_available():
        return None
    folder = Path(lock_dir or Path(tempfile.gettempdir()) / "latentseg-gpu-locks")
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(torch.cuda.device_count()):
        handle = open(folder / f"{torch.cuda.get_device_properties(index).uuid}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held_locks.append(handle)
        torch.cuda.set_device(index)
        return index
    return None


def release_gpu_claims() -> None:
    while _held_locks:
        with contextlib.suppress(OSError):
            _held_locks.pop().close()

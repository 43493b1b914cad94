"""Processes and devices: one run on several GPUs (torchrun), or several runs side by side (``dvc queue``).

One run on ``N`` GPUs: ``torchrun --standalone --nproc_per_node N stages/train.py ...`` starts ``N`` processes
and describes them in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``);
``init_from_env`` joins that group (NCCL on CUDA, gloo on the CPU) with one GPU per process. Every process takes
its slice of each batch (``sampling.shard``) and the losses are those of the whole batch (``losses.SplitBatch``).

Several runs side by side (``dvc queue start -j N``): every training process, alone or one of a torchrun group,
takes the first GPU that no other latentseg process on the machine holds (``claim_free_gpu``: a lock file per
GPU, released when the process ends, even if it crashes). N single-GPU runs thus fill N GPUs, and two 2-GPU runs
fill four, with no ``CUDA_VISIBLE_DEVICES`` bookkeeping.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)
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
    """Take a GPU of this process's own, and join the process group torchrun describes in the environment.

    ``device`` is ``runtime.device``. With CUDA the process claims a free GPU (``claim_free_gpu``) and uses NCCL;
    otherwise gloo. A single process that finds every GPU claimed shares the current one; a process of a
    torchrun group cannot (NCCL needs one GPU per process) and fails with the reason.
    """
    cuda = device != "cpu" and torch.cuda.is_available()
    claimed = claim_free_gpu() if cuda and not _held_locks else None
    if not launched_by_torchrun() or dist.is_initialized():
        if cuda and claimed is None and not _held_locks:
            log.warning("every GPU is held by another latentseg process; sharing GPU %d", torch.cuda.current_device())
        return current()
    if cuda:
        if claimed is None and not _held_locks:
            raise RuntimeError(f"no free GPU for process {os.environ.get('RANK')}: all "
                               f"{torch.cuda.device_count()} visible GPUs are held by other latentseg processes "
                               f"(lock files in {_lock_dir()}); start fewer processes (torchrun --nproc_per_node)")
        dist.init_process_group("nccl", device_id=torch.device("cuda", torch.cuda.current_device()))
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

    Each process claims one GPU by locking a file named after the GPU's UUID (so claims agree whatever
    ``CUDA_VISIBLE_DEVICES`` each process sees), in ``$LATENTSEG_GPU_LOCKS`` or the temporary folder. Returns
    None (and claims nothing) without CUDA or when every GPU is taken.
    """
    if not torch.cuda.is_available():
        return None
    folder = Path(lock_dir or _lock_dir())
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


def _lock_dir() -> Path:
    return Path(os.environ.get("LATENTSEG_GPU_LOCKS", Path(tempfile.gettempdir()) / "latentseg-gpu-locks"))


def release_gpu_claims() -> None:
    while _held_locks:
        with contextlib.suppress(OSError):
            _held_locks.pop().close()

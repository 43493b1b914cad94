"""Timing one mode of the training step: the trainer's own ``one_update`` on a fixed batch, after a warm-up."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from latentseg.bench.profiles import Profile, build_step
from latentseg.config import RunConfig
from latentseg.train.runtime import StepSpeed, first_step_with_fallback
from latentseg.train.step import Batch, make_optimizers, one_update


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- one mode ----------------------------------------------------------------------------------------------
@dataclass
class ModeResult:
    mode: str
    precision: str
    layout: str
    compiled: bool
    ms_per_iteration: float
    images_per_second: float
    peak_memory_bytes: int
    memory_kind: str  # "allocated" (CUDA tensors) or "process RSS" (CPU)
    first_loss: float
    achieved_tflops: float
    mfu: float | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_mode(name: str, speed: StepSpeed, cfg: RunConfig, profile: Profile, state: dict, cpu_batch: Batch,
             device: torch.device, tf32: bool) -> tuple[ModeResult, float]:
    """Time ``profile.iterations`` iterations after ``profile.warmup``; returns the result and seconds/iteration."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.empty_cache()
    torch.manual_seed(0)
    step = speed.prepare(build_step(cfg, state, device))
    sgd, adam = make_optimizers(cfg, step.model, step.discriminator, fused=speed.fused_optim)
    batch = Batch(speed.to_device(cpu_batch.image, device), speed.to_device(cpu_batch.mask, device),
                  speed.to_device(cpu_batch.unlabeled, device))
    autocast = speed.autocast(device)
    eager = step.model
    if speed.compile:
        step.model = torch.compile(step.model)
    _sync(device)
    _reset_peak_memory(device)

    def update(i: int) -> dict[str, Tensor]:
        return one_update(step, batch, i, sgd, adam, autocast)

    compiled = speed.compile
    if compiled:
        parts, compiled = first_step_with_fallback(step, "model", eager, lambda: update(0))
    else:
        parts = update(0)
    first_loss = float(parts["total"])
    for i in range(1, profile.warmup):
        update(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(profile.iterations):
        update(profile.warmup + i)
    _sync(device)
    seconds = (time.perf_counter() - start) / profile.iterations
    precision = "bf16" if speed.amp else ("tf32" if tf32 and device.type == "cuda" else "fp32")
    result = ModeResult(name, precision, "NHWC" if speed.channels_last else "NCHW", compiled, 1000 * seconds,
                        2 * profile.batch / seconds, _peak_memory(device),
                        "allocated" if device.type == "cuda" else "process RSS", first_loss, 0.0, None)
    return result, seconds

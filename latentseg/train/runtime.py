"""How a training iteration runs on its device: precision, memory layout, compilation. Never what it computes.

``StepSpeed.from_config`` is the trainer's rule (bf16 autocast, channels-last, cuDNN autotuning and fused
optimisers on CUDA; ``runtime.compile`` anywhere); ``StepSpeed.baseline`` is plain fp32 eager PyTorch. The
benchmark (``latentseg bench``) times both through these same helpers, so it measures the trainer's step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from latentseg.config import RuntimeConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StepSpeed:
    amp: bool  # bf16 autocast around the forward passes (losses are computed in float32 regardless)
    channels_last: bool  # NHWC weights and images: the layout cuDNN's tensor-core convolutions want
    compile: bool  # torch.compile the segmentation network (eager if compiling fails)
    cudnn_benchmark: bool  # let cuDNN time its algorithms once per shape (every iteration has the same shapes)
    fused_optim: bool  # fused SGD/Adam kernels (else foreach)

    @staticmethod
    def from_config(runtime: RuntimeConfig, device: torch.device) -> StepSpeed:
        cuda = device.type == "cuda"
        # amp and channels-last stay CUDA-only: the demo's CPU numbers keep their float32 arithmetic.
        return StepSpeed(amp=cuda and runtime.amp, channels_last=cuda and runtime.channels_last,
                         compile=runtime.compile, cudnn_benchmark=cuda, fused_optim=cuda)

    @staticmethod
    def baseline() -> StepSpeed:
        return StepSpeed(amp=False, channels_last=False, compile=False, cudnn_benchmark=False, fused_optim=False)

    def autocast(self, device: torch.device) -> torch.autocast | None:
        return torch.autocast(device.type, dtype=torch.bfloat16) if self.amp else None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare(self, module: nn.Module) -> nn.Module:
        """Global switches and the module's layout (call once, before building optimisers over it)."""
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        return module.to(memory_format=self.memory_format) if self.channels_last else module

    def to_device(self, x: Tensor, device: torch.device) -> Tensor:
        """Host-to-device copy of a batch tensor; asynchronous from pinned memory (the loader pins on CUDA)."""
        if x.ndim == 4:
            return x.to(device, non_blocking=True, memory_format=self.memory_format)
        return x.to(device, non_blocking=True)


def first_step_with_fallback(owner: nn.Module, attr: str, eager: nn.Module, run: Callable[[], T]) -> tuple[T, bool]:
    """Run the first iteration with the compiled ``owner.<attr>``; if compiling fails, fall back to eager.

    ``torch.compile`` compiles lazily, so a failure (no C++ compiler, an unsupported operator, a backend bug)
    surfaces on the first call, possibly in the backward after the forward ran. The fallback logs the reason,
    puts ``eager`` back, restores every buffer of ``owner`` (batch-norm statistics, the co-occurrence matrix)
    to its state before the attempt and runs the iteration again, so the run is the one eager would give.
    Returns the iteration's result and whether the compiled module ran. A real error (bad data, out of
    memory) fails again in eager mode and is raised from there.
    """
    saved = [(b, b.detach().clone()) for b in owner.buffers()]
    try:
        return run(), True
    except Exception as err:  # dynamo and inductor raise many types; the eager retry re-raises real errors
        log.warning("torch.compile failed on the first iteration (%s: %s); continuing in eager mode",
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        setattr(owner, attr, eager)
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        return run(), False

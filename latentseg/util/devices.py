"""Which torch device a setting names: the one place that reads ``auto``, ``cpu``, ``cuda`` and ``cuda:<n>``."""

from __future__ import annotations

import torch

from latentseg.util.progress import UserError


def check_device(name: str, setting: str = "runtime.device") -> None:
    """A ``UserError`` (one line) naming ``setting`` for a name torch does not know or a CUDA device this process
    cannot see. Selects no device and creates no CUDA context: a stage checks at its start, before it claims a GPU."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"{setting} {name!r}: not a torch device; use auto, cpu, cuda or cuda:<n>") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{setting} {name!r}: no CUDA device is visible; use 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"{setting} {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")


def resolve_device(name: str, setting: str = "runtime.device") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; bare ``cuda`` is this process's GPU (the current device,
    which ``distributed.init_from_env`` sets); else any torch device name, if this process has it
    (``check_device``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(name, setting)
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device

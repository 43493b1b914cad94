"""Reading run checkpoints (written atomically, and byte-reproducibly, by ``files.atomic_torch_save``), through
the project's one reader of torch files (``files.read_torch``: ``weights_only``, so a checkpoint from a shared
``runs/`` or ``dvc pull`` runs no code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentseg.files import UnreadableFile, read_torch


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; run the training stage that writes it")
    state = read_torch(path, "a run checkpoint", "delete it and re-run its training stage")
    if not isinstance(state, dict):
        raise UnreadableFile(f"{path}: not a run checkpoint (it holds a {type(state).__name__}, not a mapping); "
                             "delete it and re-run its training stage")
    return state

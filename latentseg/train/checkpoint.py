"""Reading checkpoints (written atomically, and byte-reproducibly, by ``files.atomic_torch_save``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; run the training stage that writes it")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"checkpoint {path} cannot be read ({err}); delete it and re-run its stage") from err

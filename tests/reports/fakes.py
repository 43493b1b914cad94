"""Metric files in the training stage's format, written at test time: one entry per run (seed) under "runs"."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean


def write_runs(results: Path, exp: str, runs: dict[str, dict[str, float]], file: str = "metrics.json",
               profile: str = "demo") -> Path:
    """``results/<exp>/<file>``: the mean of every metric at the top (for `dvc metrics show`), every run below, and
    the profile that made them."""
    metrics = sorted({m for r in runs.values() for m in r})
    doc = {m: mean(r[m] for r in runs.values() if m in r) for m in metrics}
    path = results / exp / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**doc, "runs": runs, "profile": profile}, indent=2))
    return path


def seeds(miou: list[float], seed_ids: tuple[int, ...] = (1234, 1, 2), **other: list[float]) -> dict[str, dict]:
    """``{"seed-1234": {"miou": miou[0], <metric>: other[metric][0]}, "seed-1": ...}``, one entry per value."""
    return {f"seed-{s}": {"miou": m, "steps": 100, **{k: v[i] for k, v in other.items()}}
            for i, (s, m) in enumerate(zip(seed_ids, miou, strict=False))}

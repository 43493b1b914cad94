"""A run's progress file, ``<run folder>/progress.json``: where it stands, for ``latentseg submit --status``.

Written (atomically) by the process that trains the run each time it logs: the step, the total, the time, the
rate and the ETA, and the latest validation mIoU; and once more when the run is evaluated. A table of many runs
reads these small files rather than any scheduler's log format.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from latentseg.util.files import atomic_write_json

FILE = "progress.json"


class ProgressFile:
    """Writes the progress of one run of ``total`` steps to ``path``."""

    def __init__(self, path: Path, total: int) -> None:
        self.path, self.total = path, total
        self.first: tuple[int, float] | None = None  # (step, time) of the first report: the rate's origin
        self.miou: float | None = None

    def report(self, values: dict[str, float], step: int) -> None:
        now = time.time()
        if "val/miou" in values:
            self.miou = values["val/miou"]
        if self.first is None:
            self.first = (step, now)
        done, seconds = step - self.first[0], now - self.first[1]
        rate = done / seconds if done > 0 and seconds > 0 else None
        self.write({"state": "training", "step": step, "total": self.total, "time": now,
                    "steps_per_second": rate, "eta_s": None if rate is None else (self.total - step) / rate,
                    "val_miou": self.miou})

    def finished(self, step: int, miou: float) -> None:
        self.write({"state": "evaluated", "step": step, "total": self.total, "time": time.time(),
                    "steps_per_second": None, "eta_s": 0.0, "val_miou": miou})

    def write(self, doc: dict[str, Any]) -> None:
        atomic_write_json(self.path, doc)


def read_progress(path: Path) -> dict[str, Any] | None:
    """The progress file at ``path``, or None if the run has not logged yet (or the file is not one)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


CURVES = "curves.json"


class CurvesFile:
    """A run's training curves as its process logs them (``[values, step]`` pairs), rewritten atomically at each
    point: what a job that trains away from the pipeline leaves for the training stage's logger to replay.

    ``resume_from``: the step the run resumes from; points after it (logged before a requeue, trained again) go."""

    def __init__(self, path: Path, resume_from: int) -> None:
        self.path = path
        self.points = [p for p in read_curves(path) if p[1] <= resume_from] if resume_from else []

    def __call__(self, values: dict[str, float], step: int) -> None:
        self.points.append((dict(values), step))
        atomic_write_json(self.path, [[v, s] for v, s in self.points])


def read_curves(path: Path) -> list[tuple[dict[str, float], int]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [(values, int(step)) for values, step in doc]

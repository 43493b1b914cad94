"""A long loop's console: one line every N steps with each loss, the learning rate, throughput and ETA.

In the spirit of torchvision's ``MetricLogger`` (references/segmentation/utils.py), written to the ``logging``
module so that a stage's log alone tells how a run went::

    voc-1_8-proposed/seed-1234 step 50/100 | ce 0.512 latent 0.231 adv_l 0.693 cons 0.102 d 1.386 total 0.790
    | lr 5.4e-03 | 141.2 img/s | ETA 0:00:05
"""

from __future__ import annotations

import datetime
import logging
import time

log = logging.getLogger("latentseg.train")


class Progress:
    """Tracks a loop of ``total`` steps that starts (or resumes) at ``start``; ``images`` per step."""

    def __init__(self, name: str, start: int, total: int, images: int) -> None:
        self.name, self.start, self.total, self.images = name, start, total, images
        self.t0 = time.perf_counter()

    def line(self, step: int, values: dict[str, float]) -> str:
        """The progress line after ``step`` steps (of ``total``), with ``values`` (losses, ``lr``)."""
        elapsed = time.perf_counter() - self.t0
        done = step - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = datetime.timedelta(seconds=round((self.total - step) / rate)) if rate > 0 else "?"
        losses = " ".join(f"{k} {v:.3f}" for k, v in values.items() if k != "lr")
        lr = f" | lr {values['lr']:.1e}" if "lr" in values else ""
        return (f"{self.name} step {step}/{self.total} | {losses}{lr} | {rate * self.images:.1f} img/s "
                f"| ETA {eta}")

    def report(self, step: int, values: dict[str, float]) -> None:
        log.info(self.line(step, values))

"""What a long loop prints: the project's one progress module.

- ``Progress``: a training loop's line every N steps with each loss, the learning rate, throughput and ETA, in
  the spirit of torchvision's ``MetricLogger`` (references/segmentation/utils.py), so that a stage's log alone
  tells how a run went::

      seed-1234 step 50/100 | ce 0.512 latent 0.231 adv_l 0.693 cons 0.102 d 1.386 total 0.790 | lr 5.4e-03
      | 141.2 img/s | ETA 0:00:05

- ``progress``: any other loop (evaluation, data preparation): a tqdm bar on a terminal, plain lines in a log
  (a pipeline stage's output is a log: a bar would fill it with carriage returns).
- ``UserError``: a problem the user fixes (a setting, a file, the machine), which a stage prints as its one line.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

log = logging.getLogger("latentseg")
T = TypeVar("T")


class UserError(ValueError):
    """A problem the user can fix (a setting, a file, the machine): its message is one line that names what and
    where. A stage prints that line alone (``configure_logging``); any other exception is a bug and keeps its
    traceback."""


def report_user_errors(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` of a stage: a ``UserError`` as ``<stage>: <its line>``, anything else as Python would."""
    if isinstance(error, UserError):
        print(f"{Path(sys.argv[0]).stem}: {error}", file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, tb)


def configure_logging() -> None:
    """What every stage calls first: the library's INFO messages (progress, choices it makes) on the console,
    and a ``UserError`` that ends the stage printed as its one line (exit status 1), without a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.excepthook = report_user_errors


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


def progress(items: Iterable[T], total: int, desc: str, unit: str = "items", every: float = 30.0) -> Iterator[T]:
    """``items`` with progress: a tqdm bar on a terminal; else a log line at most every ``every`` seconds (with
    the ETA) and one at the end with the time taken, so that a short loop costs one line."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, leave=False)
        return
    t0 = last = time.perf_counter()
    done = 0
    for done, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= every and done < total:
            eta = datetime.timedelta(seconds=round((now - t0) / done * (total - done)))
            log.info("%s: %d/%d %s | ETA %s", desc, done, total, unit, eta)
            last = now
    log.info("%s: %d %s in %.1f s", desc, done, unit, time.perf_counter() - t0)

"""``latentseg submit --status``: one line per submitted run, from the run's own progress file.

The Slurm state comes from ``squeue`` (queued or running jobs; no accounting database needed); a job that has
left the queue is ``COMPLETED`` if its run was evaluated, else ``FAILED``, shown with its log path and the last
lines of its error log.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from latentseg.cluster.submit import Submitted
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.run.progress_file import read_progress

TAIL = 5  # lines of a failed job's error log


@dataclass(frozen=True)
class RunStatus:
    run: str
    job_id: str
    state: str
    step: str  # step/total
    eta: str
    miou: str
    failure: str | None  # the log path and its last lines, for a failed job


def queue_states() -> dict[str, str]:
    """Job id (``<array>_<index>`` for array tasks) -> Slurm state, of every job in the queue."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise RuntimeError("squeue not found: run --status where Slurm's commands are (a login node)") from None
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"squeue failed: {err.stderr.strip()}") from None
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


def tail(path: Path, lines: int = TAIL) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [f"(no log at {path})"]
    return [line for line in text.splitlines() if line.strip()][-lines:]


def run_status(sub: Submitted, queue: dict[str, str]) -> RunStatus:
    progress = read_progress(Path(sub.folder) / PROGRESS_FILE) or {}
    step = f"{progress['step']}/{progress['total']}" if "step" in progress else "-"
    eta = progress.get("eta_s")
    eta_text = "-" if eta is None else str(datetime.timedelta(seconds=round(eta)))
    miou = "-" if progress.get("val_miou") is None else f"{progress['val_miou']:.2f}"
    state = queue.get(sub.job_id)
    failure = None
    if state is None:
        finished = progress.get("state") == "evaluated" and progress.get("step") == progress.get("total")
        state = "COMPLETED" if finished else "FAILED"
        if not finished:
            failure = "\n".join([f"  log: {sub.stderr}", *(f"    {line}" for line in tail(Path(sub.stderr)))])
    return RunStatus(sub.run, sub.job_id, state, step, eta_text, miou, failure)


def status_table(submitted: list[Submitted], queue: Callable[[], dict[str, str]] = queue_states) -> str:
    """The table of ``submitted`` runs, then the failures' logs."""
    states = queue()
    rows = [run_status(s, states) for s in submitted]
    table = tabulate([(r.run, r.job_id, r.state, r.step, r.eta, r.miou) for r in rows],
                     headers=["run", "job", "state", "step", "ETA", "val mIoU"])
    failures = [f"{r.run} (job {r.job_id}) failed:\n{r.failure}" for r in rows if r.failure]
    return "\n\n".join([table, *failures])

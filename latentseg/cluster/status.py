"""``latentseg submit --status``: one line per submitted run, from the run's own progress file.

The Slurm state of each job comes from, in turn: ``squeue`` (queued and running jobs, and those that ended within
Slurm's ``MinJobAge``; no accounting database needed), ``sacct`` (older ones, where Slurm keeps accounts), the
run's progress file (evaluated: ``COMPLETED``), the job's error log (where Slurm writes a cancelled job's
``CANCELLED AT ... [DUE TO TIME LIMIT]`` line); else ``FAILED``. A failed job is shown with its log path and the last
lines of its error log; a cancelled one (``scancel``, or a run a classifier waits for failed) with its log path.
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from latentseg.cluster.submit import Submitted
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.run.progress_file import read_progress

TAIL = 5  # lines of a failed job's error log
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}
# slurmstepd's line in the job's error log: "*** JOB 12 ON node CANCELLED AT 2026-12-02T10:00:00 DUE TO TIME LIMIT ***"
CANCELLED_LINE = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO ([A-Z ]+?))? \*\*\*")
CAUSES = {"": "CANCELLED", "TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "NODE FAILURE": "NODE_FAIL"}


@dataclass(frozen=True)
class RunStatus:
    run: str
    job_id: str
    state: str
    step: str  # step/total
    eta: str
    miou: str
    failure: str | None  # the log path and its last lines, for a failed or cancelled job


def queue_states() -> dict[str, str]:
    """Job id (``<array>_<index>`` for array tasks) -> Slurm state, of every job slurmctld holds: queued, running,
    or ended less than ``MinJobAge`` ago."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T"], capture_output=True, text=True,
                             check=True).stdout
    except FileNotFoundError:
        raise RuntimeError("squeue not found: run --status where Slurm's commands are (a login node)") from None
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"squeue failed: {err.stderr.strip()}") from None
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


def accounting_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> final Slurm state from its accounting (``sacct``); empty where there is no ``sacct`` or the
    cluster keeps no accounts."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode:
        return {}
    rows = (line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)
    return {job: state.split()[0] for job, state in rows if state.strip()}  # "CANCELLED by 0": CANCELLED


def logged_state(stderr: Path) -> str | None:
    """The state slurmstepd's last cancellation line in a job's error log gives (CANCELLED, TIMEOUT, ...), or None
    (none, or a requeue's, which the job outlived)."""
    try:
        found = CANCELLED_LINE.findall(stderr.read_text(errors="replace"))
    except OSError:
        return None
    return CAUSES.get(found[-1]) if found else None


def tail(path: Path, lines: int = TAIL) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [f"(no log at {path})"]
    return [line for line in text.splitlines() if line.strip()][-lines:]


def run_status(sub: Submitted, states: dict[str, str]) -> RunStatus:
    progress = read_progress(Path(sub.folder) / PROGRESS_FILE) or {}
    step = f"{progress['step']}/{progress['total']}" if "step" in progress else "-"
    eta = progress.get("eta_s")
    eta_text = "-" if eta is None else str(datetime.timedelta(seconds=round(eta)))
    miou = "-" if progress.get("val_miou") is None else f"{progress['val_miou']:.2f}"
    finished = progress.get("state") == "evaluated" and progress.get("step") == progress.get("total")
    state = states.get(sub.job_id) or ("COMPLETED" if finished else logged_state(Path(sub.stderr)) or "FAILED")
    failure = None
    if state == "CANCELLED":
        failure = f"  cancelled (scancel, or a run it waits for failed); log: {sub.stderr}"
    elif state not in ACTIVE and state != "COMPLETED":
        failure = "\n".join([f"  {state}; log: {sub.stderr}", *(f"    {line}" for line in tail(Path(sub.stderr)))])
    return RunStatus(sub.run, sub.job_id, state, step, eta_text, miou, failure)


def status_table(submitted: list[Submitted], queue: Callable[[], dict[str, str]] = queue_states,
                 accounting: Callable[[list[str]], dict[str, str]] = accounting_states) -> str:
    """The table of ``submitted`` runs, then the logs of those that failed or were cancelled."""
    states = queue()
    states = {**accounting([s.job_id for s in submitted if s.job_id not in states]), **states}
    rows = [run_status(s, states) for s in submitted]
    table = tabulate([(r.run, r.job_id, r.state, r.step, r.eta, r.miou) for r in rows],
                     headers=["run", "job", "state", "step", "ETA", "val mIoU"])
    failures = [f"{r.run} (job {r.job_id}):\n{r.failure}" for r in rows if r.failure]
    return "\n\n".join([table, *failures])

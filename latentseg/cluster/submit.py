"""Submitting runs as Slurm jobs (submitit): the segmentation runs as one job array, each classifier as a job that
waits for the runs it filters; and the record of what was submitted.

The record, ``<log_folder>/submissions.json``, maps each run to its job id and log files; ``status`` reads it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentseg.cluster.settings import ClusterConfig, executor_parameters
from latentseg.util.files import atomic_write_json

if TYPE_CHECKING:
    from latentseg.cluster.layout import Spec

RECORD = "submissions.json"


@dataclass(frozen=True)
class Submitted:
    run: str  # <experiment>/seed-<n>
    job_id: str
    stdout: str
    stderr: str
    folder: str  # the run's folder: checkpoint, progress.json, evaluation.json
    time: float

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Submitted:
        return cls(**doc)


def submit(specs: list[Spec], cfg: ClusterConfig, name: str = "latentseg") -> list[Submitted]:
    """Submit one job per run: those that wait for no other run (the segmentation runs) as one array, then each
    that does (a classifier: the runs it filters) as a job of its own after the jobs of those runs (``afterok``;
    cancelled if one fails). Returns (and records) what was submitted."""
    import submitit  # here: --status needs neither submitit nor torch

    folder = Path(cfg.log_folder).resolve()
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=cfg.max_requeues)
    params = executor_parameters(cfg, name)
    executor.update_parameters(**params)
    runs = [s for s in specs if not s.waits_for()]
    jobs: dict[str, Any] = {}
    if runs:
        with executor.batch():
            jobs.update((spec.name, executor.submit(spec.task(cfg.max_requeues))) for spec in runs)
    for spec in specs:
        if spec.waits_for():
            waits = [jobs[run].job_id for run in spec.waits_for() if run in jobs]
            executor.update_parameters(slurm_additional_parameters={**params["slurm_additional_parameters"],
                                                                    **after_ok(waits)})
            jobs[spec.name] = executor.submit(spec.task(cfg.max_requeues))
    now = time.time()
    done = [Submitted(spec.name, jobs[spec.name].job_id, str(jobs[spec.name].paths.stdout),
                      str(jobs[spec.name].paths.stderr), str(spec.folder), now) for spec in specs]
    record(folder, done)
    return done


def after_ok(job_ids: list[str]) -> dict[str, str]:
    """sbatch options of a job that starts once the jobs ``job_ids`` have all succeeded, and is cancelled (not
    left pending forever) if one fails."""
    if not job_ids:
        return {}
    return {"dependency": "afterok:" + ":".join(job_ids), "kill-on-invalid-dep": "yes"}


def record(folder: Path, submitted: list[Submitted]) -> None:
    """Add ``submitted`` to the record in ``folder`` (a run submitted again: its newest job)."""
    runs = {s.run: s for s in read_record(folder)}
    runs.update({s.run: s for s in submitted})
    atomic_write_json(folder / RECORD, [vars(s) for s in runs.values()])


def read_record(folder: Path) -> list[Submitted]:
    path = Path(folder) / RECORD
    if not path.is_file():
        return []
    try:
        return [Submitted.of(doc) for doc in json.loads(path.read_text())]
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} cannot be read ({err}); delete it (it only records what was submitted)") from err

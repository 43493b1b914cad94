"""Submitting runs as one Slurm job array (submitit), and the record of what was submitted.

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
    from latentseg.cluster.classifiers import ClassifierSpec
    from latentseg.cluster.pending import RunSpec

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


def submit(specs: list[RunSpec | ClassifierSpec], cfg: ClusterConfig, name: str = "latentseg") -> list[Submitted]:
    """Submit one job per run (segmentation runs and classifiers), as one array; returns (and records) what was
    submitted."""
    import submitit  # here: --status needs neither submitit nor torch

    folder = Path(cfg.log_folder).resolve()
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=cfg.max_requeues)
    executor.update_parameters(**executor_parameters(cfg, name))
    with executor.batch():
        jobs = [executor.submit(spec.task(cfg.max_requeues)) for spec in specs]
    now = time.time()
    done = [Submitted(spec.name, job.job_id, str(job.paths.stdout), str(job.paths.stderr), str(spec.folder), now)
            for spec, job in zip(specs, jobs, strict=True)]
    record(folder, done)
    return done


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

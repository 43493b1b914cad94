"""What every kind of cluster run shares: where the pipeline's files are (``Layout``), what a run must offer to be
submitted (``Spec``, satisfied by ``runs.RunSpec`` and ``classifiers.ClassifierSpec``), and a pending run with its
reason (``Pending``). A leaf: it imports no other module of ``cluster/``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from latentseg.run.outputs import Outputs


@dataclass(frozen=True)
class Layout:
    """Where the pipeline's files are (dvc.yaml's paths, relative to the repository root, made absolute)."""

    configs: Path
    data: Path  # <data>/<dataset>: prepared data sets
    splits: Path  # <splits>/<dataset>: their split lists
    weights: Path
    runs: Path  # <runs>/<dataset>/<experiment>/seed-<n>

    def absolute(self) -> Layout:
        return Layout(*(p.resolve() for p in (self.configs, self.data, self.splits, self.weights, self.runs)))

    @property
    def outputs(self) -> Outputs:
        return Outputs(configs=self.configs, runs=self.runs)


class Spec(Protocol):
    """A run that ``submit`` can put on the cluster."""

    @property
    def name(self) -> str: ...  # <experiment>/seed-<n>, or classifier-<id>/seed-<n>

    @property
    def folder(self) -> Path: ...  # where its job writes (checkpoint, progress.json, records)

    def waits_for(self) -> list[str]: ...  # the names of the runs whose jobs must succeed first

    def task(self, max_requeues: int) -> Callable[[], Any]: ...  # the callable its job runs (submitit pickles it)


@dataclass(frozen=True)
class Pending:
    spec: Spec
    reason: str

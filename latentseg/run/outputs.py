"""Where the pipeline keeps what it makes (the paths of ``dvc.yaml``), in one place::

    configs/<dataset>/<experiment>.yaml                 an experiment's resolved configuration (stage resolve)
    configs/<dataset>/classifiers/<id>.yaml             a classifier's; configs/weights.yaml, configs/reports.yaml
    runs/<dataset>/<experiment>/seed-<n>/               one run: checkpoint.pt, evaluation.json, curves.json,
                                                        progress.json (stage train@<dataset>, or a cluster job)
    runs/<dataset>/classifier-<id>/seed-<n>/            Mittal et al.'s image classifier of one split
                                                        (classifier.pt) and its filtered evaluations
    results/metrics/<dataset>/<experiment>.json         an experiment's metrics: every run's, and their means
    results/metrics/<dataset>/classifier-<id>.json      the runs a classifier filters, with and without it
    results/latent/<dataset>/<experiment>/seed-<n>.csv  P(l|c) of eq. (8) from training (-val.csv: validation)
    results/curves/<dataset>/<experiment>/seed-<n>/     training curves (dvclive)
    results/figure1/<dataset>.npz                       Figure 1's arrays

One training stage trains every run of a data set (its experiments' and its classifiers'), and DVC's outputs are
folders a stage owns whole: hence a folder per data set under each kind. Everything under ``results/`` is rebuilt
from ``runs/`` by the stages. An experiment may not be named ``classifier-...`` (``experiments.experiment``).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

CLASSIFIER_PREFIX = "classifier-"  # a classifier's folder and results file beside its data set's experiments'


def run_label(seed: int) -> str:
    """The name of one run of an experiment: its folder and its key in the metrics files."""
    return f"seed-{seed}"


def run_order(label: str) -> tuple[int, str]:
    """Sort key of run labels: ``seed-2`` before ``seed-10``."""
    match = re.fullmatch(r"seed-(\d+)", label)
    return (int(match.group(1)) if match else -1, label)


@dataclass(frozen=True)
class Outputs:
    """The pipeline's folders, relative to the repository root or absolute."""

    configs: Path = Path("configs")
    runs: Path = Path("runs")
    results: Path = Path("results")

    def experiment_config(self, dataset: str, experiment: str) -> Path:
        return self.configs / dataset / f"{experiment}.yaml"

    def classifier_config(self, dataset: str, classifier: str) -> Path:
        return self.configs / dataset / "classifiers" / f"{classifier}.yaml"

    def run_folder(self, dataset: str, experiment: str, seed: int) -> Path:
        return self.runs / dataset / experiment / run_label(seed)

    def classifier_folder(self, dataset: str, classifier: str, seed: int) -> Path:
        return self.runs / dataset / f"{CLASSIFIER_PREFIX}{classifier}" / run_label(seed)

    def metrics_file(self, dataset: str, experiment: str) -> Path:
        return self.results / "metrics" / dataset / f"{experiment}.json"

    def latent_folder(self, dataset: str, experiment: str) -> Path:
        return self.results / "latent" / dataset / experiment

    def curves_folder(self, dataset: str, experiment: str) -> Path:
        return self.results / "curves" / dataset / experiment

    def classifier_file(self, dataset: str, classifier: str) -> Path:
        return self.results / "metrics" / dataset / f"{CLASSIFIER_PREFIX}{classifier}.json"

    def figure1_file(self, dataset: str) -> Path:
        return self.results / "figure1" / f"{dataset}.npz"


def summarise(per_run: dict[str, dict[str, float]]) -> dict:
    """The metrics file of an experiment: every run's metrics under ``runs``, and the mean over the runs of
    each metric at the top (for ``dvc metrics show``; tables read the runs themselves). A metric that is None
    (not applicable: ``recovery_ari`` on data without planted groups) has no mean."""
    names = [k for k in next(iter(per_run.values()))
             if all(k in m and m[k] is not None for m in per_run.values())]
    means = {k: round(statistics.fmean(m[k] for m in per_run.values()), 2) for k in names}
    return {**means, "runs": per_run}

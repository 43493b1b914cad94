"""Mittal et al.'s image classifiers (params.yaml ``classifiers:``) as cluster runs: which are pending, and the
job that trains one and filters the runs it filters.

A classifier run is ``classifier-<id>/seed-<n>``: the training stage's ``run.classifiers.ClassifierJob``, saved
where the stage saves it (``runs/<dataset>/classifier-<id>/seed-<n>/classifier.pt``) under its identity, and its
filtered evaluations, the stage's ``run.classifiers.FilterJob``\\ s, recorded beside it (``filtered-<exp>.json``,
keyed by the run's evaluation key, the classifier's identity and the filter's code). The stage then finds both
and evaluates nothing. A filtered evaluation needs its run evaluated: the job waits for the jobs of the runs it
filters (``submit``: Slurm's ``afterok``), and skips, saying so, a run that is not evaluated when it runs.

The classifier trainer keeps no periodic checkpoint (Mittal et al.'s neither), so a requeued classifier job trains
again from its first step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from latentseg.cluster.job import RequeuedJob
from latentseg.cluster.layout import Layout, Pending
from latentseg.cluster.runs import RunSpec
from latentseg.run.outputs import run_label
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.run.progress_file import ProgressFile

if TYPE_CHECKING:
    from latentseg.run.classifiers import ClassifierJob, FilterJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierSpec:
    """One classifier run: classifier ``classifier`` of params.yaml, training seed ``seed``."""

    classifier: str
    dataset: str
    seed: int
    layout: Layout

    @property
    def name(self) -> str:
        return f"classifier-{self.classifier}/seed-{self.seed}"

    @property
    def folder(self) -> Path:
        return self.layout.outputs.classifier_folder(self.dataset, self.classifier, self.seed)

    @property
    def path(self) -> Path:
        return self.folder / "classifier.pt"

    def job(self) -> ClassifierJob:
        """The stage's ``ClassifierJob`` of this run (``run.stage.classifier_jobs`` builds the same from the same
        files): Mittal et al. start from the ImageNet weights."""
        from latentseg.data.layout import TrainData
        from latentseg.models.init import resolve_init
        from latentseg.run.classifiers import ClassifierJob, ResolvedClassifier

        spec = ResolvedClassifier.read(self.layout.outputs.classifier_config(self.dataset, self.classifier))
        data = TrainData.of_split(self.layout.data / self.dataset, self.layout.splits / self.dataset, spec.fraction)
        return ClassifierJob(spec, self.seed, data, resolve_init(self.layout.weights, "imagenet"), self.path)

    def runs(self) -> list[RunSpec]:
        """The runs it filters: the same seed of each experiment it names that has one (``run.stage.filter_jobs``)."""
        filters = _resolved(self.layout, self.dataset, self.classifier)["filters"]
        found = []
        for exp in filters:
            path = self.layout.outputs.experiment_config(self.dataset, exp)
            if path.is_file() and self.seed in yaml.safe_load(path.read_text())["experiment"]["seeds"]:
                found.append(RunSpec(exp, self.dataset, self.seed, self.layout))
        return found

    def filter_jobs(self, job: ClassifierJob) -> list[FilterJob]:
        from latentseg.run.classifiers import FilterJob

        filters = []
        for run in self.runs():
            segmentation = run.job()
            filters.append(FilterJob(job, run.experiment, segmentation.checkpoint, segmentation.cfg,
                                     segmentation.init))
        return filters

    def waits_for(self) -> list[str]:
        return [run.name for run in self.runs()]

    def run_name(self, filtered: FilterJob) -> str:
        return f"{filtered.experiment}/{run_label(self.seed)}"

    def task(self, max_requeues: int) -> TrainClassifier:
        return TrainClassifier(self, max_requeues)


def _resolved(layout: Layout, dataset: str, classifier: str) -> dict[str, Any]:
    """Stage resolve's file of a classifier (what stage ``train@<dataset>`` reads)."""
    return yaml.safe_load(layout.outputs.classifier_config(dataset, classifier).read_text())


def classifier_specs(layout: Layout, classifiers: dict[str, str]) -> list[ClassifierSpec]:
    """Every classifier run of ``classifiers`` (``{id: data set}``), one per seed of its resolved file."""
    return [ClassifierSpec(cid, dataset, seed, layout) for cid, dataset in classifiers.items()
            for seed in _resolved(layout, dataset, cid)["seeds"]]


def why_pending(spec: ClassifierSpec, submitted: frozenset[str] = frozenset()) -> str | None:
    """Why the classifier run needs a job: no classifier of its identity saved, or a run it filters without a
    current filtered evaluation, that run being evaluated or submitted with it (``submitted``: the names of the
    runs submitted now). None if the stage would find everything."""
    job = spec.job()
    if not spec.path.is_file():
        return "missing: no classifier"
    if job.finished() is None:
        return "changed: settings, code, data, split or initial weights"
    for filtered in spec.filter_jobs(job):
        run = spec.run_name(filtered)
        if run in submitted:
            return f"filters {run}, submitted now"
        try:
            if filtered.finished() is None:
                return f"not filtered: {run} (no current filtered evaluation)"
        except FileNotFoundError:  # the run is not evaluated: nothing to filter yet
            continue
    return None


def pending_classifiers(layout: Layout, classifiers: dict[str, str],
                        submitted: frozenset[str] = frozenset()) -> list[Pending]:
    found = []
    for spec in classifier_specs(layout, classifiers):
        reason = why_pending(spec, submitted)
        if reason is not None:
            found.append(Pending(spec, reason))
    return found


class TrainClassifier(RequeuedJob):
    """Train and save the classifier of ``spec`` (or find it saved), then filter the runs it filters and record
    their filtered evaluations; at most ``max_requeues`` requeues (then it starts over)."""

    def __init__(self, spec: ClassifierSpec, max_requeues: int) -> None:
        self.spec, self.max_requeues, self.name = spec, max_requeues, spec.name

    def __call__(self) -> dict[str, Any]:
        self.start()
        job = self.spec.job()
        c = job.spec.cfg
        steps = (c.steps_per_epoch or -(-len(job.data.labeled) // c.batch_size_labeled)) * c.epochs
        progress = ProgressFile(self.spec.folder / PROGRESS_FILE, steps)
        if job.finished() is None:
            progress.report({}, 0)
        log.info(job().summary)
        filtered = {}
        for run in self.spec.filter_jobs(job):
            try:
                outcome = run.finished() or run()
            except FileNotFoundError as err:  # its run's job failed, or the run was not submitted with it
                log.warning("%s: not filtered: %s", run.name, err)
                continue
            log.info(outcome.summary)
            filtered[self.spec.run_name(run)] = outcome.metrics["miou"]
        progress.write({"state": "evaluated", "step": steps, "total": steps, "eta_s": 0.0, "val_miou": None})
        return {"classifier": self.spec.name, "filtered": filtered}

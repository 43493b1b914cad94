"""Mittal et al.'s image classifiers (params.yaml ``classifiers:``) as cluster runs: which are pending, and the
job that trains one.

A classifier run is ``classifier-<id>/seed-<n>``, saved where stage ``classifier@<id>`` saves it
(``runs/<dataset>/classifier-<id>/seed-<n>/classifier.pt``) under its identity (``classifier.classifier_identity``:
settings, seed, code, data, split, initial weights). The stage then finds it and only evaluates the runs it
filters. The classifier trainer keeps no periodic checkpoint (Mittal et al.'s neither), so a requeued classifier
job trains again from its first step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from latentseg.cluster.job import RequeuedJob
from latentseg.cluster.pending import Layout, Pending
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.run.progress_file import ProgressFile

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

    def resolved(self) -> dict[str, Any]:
        return _resolved(self.layout, self.dataset, self.classifier)

    def inputs(self) -> tuple[dict[str, Any], Any, Any, Path | None]:
        """What the classifier is trained from, as the stage reads it: the resolved file, its settings, the
        split's data and the initial weights (Mittal et al. start from ImageNet)."""
        from latentseg.config import ClassifierConfig, from_dict
        from latentseg.data.layout import TrainData
        from latentseg.models.init import resolve_init

        doc = self.resolved()
        data = TrainData.of_split(self.layout.data / doc["dataset"], self.layout.splits / doc["dataset"],
                                  doc["fraction"])
        cfg = from_dict(ClassifierConfig, doc["config"], "classifier.")
        return doc, cfg, data, resolve_init(self.layout.weights, "imagenet")

    def identity(self, inputs: tuple | None = None) -> dict:
        from latentseg.classifier import classifier_identity

        _, cfg, data, init = inputs or self.inputs()
        return classifier_identity(cfg, data.meta, data.labeled, data.unlabeled, self.seed, init)

    def task(self, max_requeues: int) -> TrainClassifier:
        return TrainClassifier(self, max_requeues)


def _resolved(layout: Layout, dataset: str, classifier: str) -> dict[str, Any]:
    """Stage resolve's file of a classifier (what stage ``train@<dataset>`` reads)."""
    return yaml.safe_load(layout.outputs.classifier_config(dataset, classifier).read_text())


def classifier_specs(layout: Layout, classifiers: dict[str, str]) -> list[ClassifierSpec]:
    """Every classifier run of ``classifiers`` (``{id: data set}``), one per seed of its resolved file."""
    return [ClassifierSpec(cid, dataset, seed, layout) for cid, dataset in classifiers.items()
            for seed in _resolved(layout, dataset, cid)["seeds"]]


def why_pending(spec: ClassifierSpec) -> str | None:
    """Why the classifier run needs training; None if one of its identity is saved."""
    from latentseg.classifier import load_classifier

    if not spec.path.is_file():
        return "missing: no classifier"
    if load_classifier(spec.path, spec.identity()) is None:
        return "changed: settings, code, data, split or initial weights"
    return None


def pending_classifiers(layout: Layout, classifiers: dict[str, str]) -> list[Pending]:
    found = []
    for spec in classifier_specs(layout, classifiers):
        reason = why_pending(spec)
        if reason is not None:
            found.append(Pending(spec, reason))
    return found


class TrainClassifier(RequeuedJob):
    """Train and save the classifier of ``spec``; at most ``max_requeues`` requeues (then it starts over)."""

    def __init__(self, spec: ClassifierSpec, max_requeues: int) -> None:
        self.spec, self.max_requeues, self.name = spec, max_requeues, spec.name

    def __call__(self) -> dict[str, Any]:
        from latentseg.classifier import load_classifier, save_classifier, train_classifier
        from latentseg.config import DataConfig, from_dict
        from latentseg.util.devices import resolve_device

        self.start()
        inputs = self.spec.inputs()
        doc, cfg, data, init = inputs
        identity = self.spec.identity(inputs)
        steps = (cfg.steps_per_epoch or -(-len(data.labeled) // cfg.batch_size_labeled)) * cfg.epochs
        progress = ProgressFile(self.spec.folder / PROGRESS_FILE, steps)
        if load_classifier(self.spec.path, identity) is None:
            progress.report({}, 0)
            model = train_classifier(cfg, data.root, data.meta, data.labeled, data.unlabeled, resolve_device("auto"),
                                     self.spec.seed, init,
                                     workers=from_dict(DataConfig, doc["data"], "data.").workers)
            save_classifier(model, self.spec.path, identity)
        progress.write({"state": "evaluated", "step": steps, "total": steps, "eta_s": 0.0, "val_miou": None})
        log.info("classifier %s saved at %s", self.spec.name, self.spec.path)
        return {"classifier": self.spec.name}

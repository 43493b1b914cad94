"""Mittal et al.'s image classifiers as runs of their data set's training stage: training one (or finding it
trained), and filtering a segmentation run with it ("Proposed + Classifier", "s4GAN + MLMT").

A classifier (``params.yaml: classifiers``) is trained on one split, once per seed of the runs it filters, into
``runs/<dataset>/classifier-<id>/seed-<n>/classifier.pt`` under its identity (settings, seed, code, data, split,
initial weights: ``classifier.classifier_identity``); a saved one of the same identity is reused. Each run it
filters (the same seed of each experiment it names) is then evaluated through the filter, and the evaluation is
recorded beside the classifier (``filtered-<experiment>.json``), keyed by the run's evaluation key (its identity,
step and evaluation code), the classifier's identity and the filtered evaluation's code: a record that matches is
reused, so ``dvc repro`` after a cluster filters nothing again. The run's own (unfiltered) mIoU is its evaluation
record's (``run_evaluation``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from latentseg.classifier import (
    class_probabilities,
    classifier_identity,
    load_classifier,
    save_classifier,
    train_classifier,
)
from latentseg.config import ClassifierConfig, DataConfig, from_dict
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import TrainData
from latentseg.evaluate import ClassFilter, evaluate, never_rejected
from latentseg.run.evaluation import FILE as EVALUATION_FILE
from latentseg.run.evaluation import evaluation_key, recorded
from latentseg.run.outputs import Outputs, run_label
from latentseg.train.checkpoint import load_trained
from latentseg.train.identity import identity
from latentseg.util.closure import HELPERS, fingerprint
from latentseg.util.devices import resolve_device
from latentseg.util.files import atomic_write_json


def _digest(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResolvedClassifier:
    """A classifier's resolved file (stage resolve): its settings, split, seeds and the experiments it filters."""

    id: str
    dataset: str
    fraction: str
    filters: list[str]
    seeds: list[int]
    cfg: ClassifierConfig
    data_cfg: DataConfig
    profile: str

    @classmethod
    def read(cls, path: Path) -> ResolvedClassifier:
        doc = yaml.safe_load(path.read_text())
        return cls(doc["classifier"], doc["dataset"], doc["fraction"], list(doc["filters"]), list(doc["seeds"]),
                   from_dict(ClassifierConfig, doc["config"], "classifier."),
                   from_dict(DataConfig, doc["data"], "data."), doc["profile"])


@dataclass(frozen=True)
class ClassifierOutcome:
    name: str
    summary: str


@dataclass(frozen=True)
class ClassifierJob:
    """Train (or find trained) the classifier ``spec`` of one seed."""

    spec: ResolvedClassifier
    seed: int
    data: TrainData
    init: Path | None
    path: Path

    @property
    def name(self) -> str:
        return f"classifier-{self.spec.id}/{run_label(self.seed)}"

    @property
    def device(self) -> str:
        return "auto"

    def cost(self) -> float:
        c = self.spec.cfg
        steps = (c.steps_per_epoch or -(-len(self.data.labeled) // c.batch_size_labeled)) * c.epochs
        return steps * (c.batch_size_labeled + 2 * c.batch_size_unlabeled) * c.input_size ** 2 / 4

    def identity(self) -> dict:
        return classifier_identity(self.spec.cfg, self.data.meta, self.data.labeled, self.data.unlabeled, self.seed,
                                   self.init)

    def finished(self) -> ClassifierOutcome | None:
        if load_classifier(self.path, self.identity()) is None:
            return None
        return ClassifierOutcome(self.name, f"{self.name}: trained, reused")

    def for_worker(self) -> ClassifierJob:
        return replace(self, spec=replace(self.spec, data_cfg=replace(self.spec.data_cfg, workers=0)))

    def __call__(self) -> ClassifierOutcome:
        if (done := self.finished()) is not None:
            return done
        model = train_classifier(self.spec.cfg, self.data.root, self.data.meta, self.data.labeled,
                                 self.data.unlabeled, resolve_device(self.device), self.seed, self.init,
                                 workers=self.spec.data_cfg.workers)
        save_classifier(model, self.path, self.identity())
        return ClassifierOutcome(self.name, f"{self.name}: trained")


def filter_code() -> str:
    """The fingerprint of the filtered evaluation's code (this module and what it imports)."""
    return fingerprint(__name__, HELPERS, plugins=False)


@dataclass(frozen=True)
class FilterOutcome:
    classifier: str
    experiment: str
    label: str
    metrics: dict[str, float]  # miou (filtered), miou_unfiltered (the run's own)
    summary: str


@dataclass(frozen=True)
class FilterJob:
    """Evaluate the run ``checkpoint`` (experiment ``experiment``) through the classifier of ``classifier``."""

    classifier: ClassifierJob
    experiment: str
    checkpoint: Path
    run_cfg: Any  # the run's RunConfig (its identity)
    run_init: Path | None

    @property
    def name(self) -> str:
        return f"{self.classifier.name} on {self.experiment}"

    @property
    def device(self) -> str:
        return "auto"

    @property
    def record(self) -> Path:
        return self.classifier.path.with_name(f"filtered-{self.experiment}.json")

    def cost(self) -> float:
        return 0.0

    def key(self) -> tuple[dict[str, Any], dict[str, float]]:
        """The record's key, and the run's own evaluation (its record, which must exist: the run is evaluated)."""
        run_key = evaluation_key(identity(self.run_cfg, self.classifier.data, self.run_init),
                                 self.run_cfg.optim.iterations)
        found = recorded(self.checkpoint.with_name(EVALUATION_FILE), run_key)
        if found is None:
            raise FileNotFoundError(f"{self.checkpoint.parent} has no evaluation of this run: train it first")
        key = {"run": run_key, "classifier": _digest(self.classifier.identity()), "code": filter_code()}
        return key, found[0]

    def finished(self) -> FilterOutcome | None:
        key, own = self.key()
        try:
            doc = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None
        return self._outcome(doc["miou"], own["miou"], "reused") if doc.get("key") == key else None

    def for_worker(self) -> FilterJob:
        return replace(self, classifier=self.classifier.for_worker())

    def __call__(self) -> FilterOutcome:
        key, own = self.key()
        spec, data = self.classifier.spec, self.classifier.data
        device = resolve_device(self.device)
        classifier = load_classifier(self.classifier.path, self.classifier.identity())
        if classifier is None:
            raise FileNotFoundError(f"{self.classifier.path} is not the classifier of these settings: train it first")
        verdicts = ClassFilter(class_probabilities(classifier, data.root, data.root / "val.txt", device,
                                                   spec.data_cfg.workers), spec.cfg.threshold, spec.cfg.filter,
                               never_rejected(data.meta.classes, spec.cfg.filter))
        model, _, _ = load_trained(self.checkpoint)
        loader = eval_loader(data.root, spec.data_cfg)
        miou = round(100 * evaluate(model.to(device), loader, data.meta.num_classes, device, verdicts).miou, 2)
        atomic_write_json(self.record, {"key": key, "miou": miou})
        return self._outcome(miou, own["miou"], "evaluated")

    def _outcome(self, miou: float, own: float, how: str) -> FilterOutcome:
        return FilterOutcome(self.classifier.spec.id, self.experiment, run_label(self.classifier.seed),
                             {"miou": miou, "miou_unfiltered": own},
                             f"{self.name}: filtered {how}, mIoU {own:.2f} -> {miou:.2f}")


def read_classifiers(configs: Path, dataset: str) -> list[ResolvedClassifier]:
    """The resolved classifiers of ``dataset``, by id."""
    folder = Outputs(configs=configs).classifier_config(dataset, "x").parent
    return [ResolvedClassifier.read(p) for p in sorted(folder.glob("*.yaml"))]

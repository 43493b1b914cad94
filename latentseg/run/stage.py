"""What stage ``train@<dataset>`` does, as a library function: every run of a data set, trained or found
finished (its experiments' runs and Mittal et al.'s image classifiers, side by side), then every classifier's
filtered evaluations, then each experiment's results written from its runs (``experiment_results``) and each
classifier's.

The experiments and classifiers are the resolved files ``configs/<dataset>/<experiment>.yaml`` and
``configs/<dataset>/classifiers/<id>.yaml`` (stage ``resolve``). Runs of seeds, experiments or classifiers no
longer asked for are removed, so ``runs/<dataset>`` holds exactly the registry's runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from latentseg.config import RunConfig
from latentseg.data.layout import TrainData
from latentseg.methods import run_config
from latentseg.models.init import resolve_init
from latentseg.run.classifiers import ClassifierJob, FilterJob, FilterOutcome, ResolvedClassifier, read_classifiers
from latentseg.run.jobs import RunJob, RunOutcome, run_all, with_seed
from latentseg.run.outputs import CLASSIFIER_PREFIX, Outputs, run_label
from latentseg.run.results import write_classifier, write_experiment
from latentseg.train import distributed
from latentseg.train.rendezvous import adopt_slurm_rendezvous
from latentseg.util.devices import check_device
from latentseg.util.progress import configure_logging

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedExperiment:
    """One experiment's resolved file: what it is, its configuration, the planted groups of its data."""

    id: str
    dataset: str
    fraction: str
    init: str
    seeds: list[int]
    profile: str
    cfg: RunConfig
    planted_groups: dict[str, list[str]] | None

    @classmethod
    def read(cls, path: Path) -> ResolvedExperiment:
        doc: dict[str, Any] = yaml.safe_load(path.read_text())
        exp = doc["experiment"]
        return cls(exp["id"], exp["dataset"], str(exp["fraction"]), exp["init"], list(exp["seeds"]), doc["profile"],
                   run_config(doc["run"]), doc.get("planted_groups"))


def read_experiments(configs: Path, dataset: str) -> list[ResolvedExperiment]:
    """The resolved experiments of ``dataset``, by id."""
    folder = Outputs(configs=configs).experiment_config(dataset, "x").parent
    return [ResolvedExperiment.read(p) for p in sorted(folder.glob("*.yaml"))]


def relaunch_under_torchrun() -> None:
    """With ``LATENTSEG_NPROC_PER_NODE=N`` (N > 1), replace this process by torchrun running N copies of it."""
    nproc = int(os.environ.get("LATENTSEG_NPROC_PER_NODE", "1"))
    if nproc > 1 and not distributed.launched_by_torchrun():
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc_per_node={nproc}", *sys.argv])


class Inputs:
    """The data of each split and each initial-weights file of a data set, each read once."""

    def __init__(self, data: Path, splits: Path, weights: Path) -> None:
        self.data, self.splits, self.weights = data, splits, weights
        self._splits: dict[str, TrainData] = {}
        self._inits: dict[str, Path | None] = {}

    def split(self, fraction: str) -> TrainData:
        if fraction not in self._splits:
            self._splits[fraction] = TrainData.of_split(self.data, self.splits, fraction)
        return self._splits[fraction]

    def init(self, init: str, profile: str) -> Path | None:
        if init not in self._inits:  # raises, naming the stage, when a file that should be there is not
            self._inits[init] = resolve_init(self.weights, init)
            if init != "none" and self._inits[init] is None:
                log.info("the %s profile makes no '%s' weights (params.yaml: profiles.%s.weights.%s: null): its "
                         "runs start from random weights, by design", profile, init, profile, init)
        return self._inits[init]


def build_jobs(experiments: list[ResolvedExperiment], inputs: Inputs, out: Outputs) -> list[RunJob]:
    """Every run of ``experiments``."""
    return [RunJob(exp.id, run_label(seed), with_seed(exp.cfg, seed),
                   out.run_folder(exp.dataset, exp.id, seed) / "checkpoint.pt", inputs.split(exp.fraction),
                   inputs.init(exp.init, exp.profile)) for exp in experiments for seed in exp.seeds]


def classifier_jobs(classifiers: list[ResolvedClassifier], inputs: Inputs, out: Outputs) -> list[ClassifierJob]:
    """Every classifier run (one per seed); Mittal et al. start from the ImageNet weights."""
    return [ClassifierJob(spec, seed, inputs.split(spec.fraction), inputs.init("imagenet", spec.profile),
                          out.classifier_folder(spec.dataset, spec.id, seed) / "classifier.pt")
            for spec in classifiers for seed in spec.seeds]


def filter_jobs(trained: list[ClassifierJob], runs: list[RunJob]) -> list[FilterJob]:
    """Each run a classifier filters: the same seed of every experiment it names that has one."""
    by_name = {job.name: job for job in runs}
    jobs = []
    for classifier in trained:
        for exp in classifier.spec.filters:
            run = by_name.get(f"{exp}/{run_label(classifier.seed)}")
            if run is not None:
                jobs.append(FilterJob(classifier, exp, run.checkpoint, run.cfg, run.init))
    return jobs


def remove_stale(out: Outputs, dataset: str, experiments: list[ResolvedExperiment],
                 classifiers: list[ResolvedClassifier]) -> None:
    """Runs of experiments, classifiers or seeds no longer in the registry, and every result of the data set
    (rebuilt)."""
    wanted = {e.id: {run_label(s) for s in e.seeds} for e in experiments}
    wanted.update({f"{CLASSIFIER_PREFIX}{c.id}": {run_label(s) for s in c.seeds} for c in classifiers})
    root = out.runs / dataset
    for folder in sorted(root.glob("*/seed-*")):
        if folder.name not in wanted.get(folder.parent.name, ()):
            shutil.rmtree(folder)
    for folder in sorted(root.glob("*")):
        if folder.is_dir() and folder.name not in wanted:
            shutil.rmtree(folder)
    for folder in (out.metrics_file(dataset, "x").parent, out.latent_folder(dataset, "x").parent,
                   out.curves_folder(dataset, "x").parent):
        shutil.rmtree(folder, ignore_errors=True)


def train_dataset(dataset: str, configs: Path, data: Path, splits: Path, weights: Path, runs: Path,
                  results: Path) -> None:
    """Train (or find finished) every run of ``dataset``'s experiments, then write every experiment's results."""
    relaunch_under_torchrun()
    configure_logging()
    out = Outputs(configs=configs, runs=runs, results=results)
    experiments, classifiers = read_experiments(configs, dataset), read_classifiers(configs, dataset)
    if not experiments:
        raise SystemExit(f"no experiment of data set {dataset} in {configs / dataset}: add one to params.yaml "
                         "(experiments) and run stage resolve, or remove the data set")
    for device in sorted({e.cfg.runtime.device for e in experiments}):
        check_device(device)  # one line now if this machine lacks it, not a worker's error later
    inputs = Inputs(data, splits, weights)
    jobs, trained = build_jobs(experiments, inputs, out), classifier_jobs(classifiers, inputs, out)
    adopt_slurm_rendezvous()  # srun's tasks as torchrun's
    procs = distributed.init_from_env(experiments[0].cfg.runtime.device)
    if procs.is_main:
        remove_stale(out, dataset, experiments, classifiers)
    parallel = max(e.cfg.runtime.parallel_runs for e in experiments) if procs.world == 1 else 1
    threads = experiments[0].cfg.runtime.threads
    outcomes: dict[str, list[RunOutcome]] = {e.id: [] for e in experiments}
    for outcome in run_all([*jobs, *trained] if procs.world == 1 else jobs, parallel, threads):
        if isinstance(outcome, RunOutcome):
            outcomes[outcome.experiment].append(outcome)
        if procs.is_main:
            print(outcome.summary, flush=True)
    distributed.shutdown()
    if not procs.is_main:
        return
    if procs.world > 1:  # the classifiers train after the runs, on this process alone
        for job in trained:
            print(job().summary, flush=True)
    filtered: dict[str, list[FilterOutcome]] = {c.id: [] for c in classifiers}
    for outcome in run_all(filter_jobs(trained, jobs), parallel, threads):
        filtered[outcome.classifier].append(outcome)
        print(outcome.summary, flush=True)
    classes = inputs.split(experiments[0].fraction).meta.classes
    for exp in experiments:
        metrics = write_experiment(out, dataset, exp.id, exp.profile, outcomes[exp.id], classes, exp.planted_groups)
        print(f"{exp.id}: mIoU {metrics['miou']:.2f} (mean of {len(outcomes[exp.id])} run(s))")
    for spec in classifiers:
        write_classifier(out, spec, filtered[spec.id])
    for folder in (out.latent_folder(dataset, "x").parent, out.curves_folder(dataset, "x").parent):
        if not any(folder.glob("*")):  # git keeps no empty folder, and DVC wants the output
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "none.txt").write_text(f"no run of {dataset} has a latent branch or curves\n")

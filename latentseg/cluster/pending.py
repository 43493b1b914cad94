"""Which runs of the registry still need a cluster job, and why: no checkpoint, an unfinished one, one of other
settings, code, data or initial weights (``train/identity.py``), or a finished one without a current evaluation.

A run is named ``<experiment>/seed-<n>`` and laid out as the training stage lays it out (``latentseg/run/outputs.py``):
``<runs>/<dataset>/<experiment>/seed-<n>/``. Its settings are the resolved configuration
``<configs>/<dataset>/<experiment>.yaml`` that the training stage reads, checked first against ``params.yaml`` (a
stale file would train the wrong run).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from latentseg.cluster.layout import Layout, Pending
from latentseg.cluster.runs import RunSpec
from latentseg.config import to_dict
from latentseg.registry.experiments import resolve, resolve_classifier
from latentseg.run.evaluation import FILE as EVALUATION_FILE
from latentseg.run.evaluation import evaluation_key, recorded
from latentseg.run.jobs import RunJob
from latentseg.run.outputs import Outputs
from latentseg.train import checkpoint as ckpt
from latentseg.train.identity import identity

IDENTITY_PARTS = {"code": "training code", "data": "prepared data", "labeled": "labeled split",
                  "unlabeled": "unlabeled split", "init": "initial weights"}


def check_configs(params: dict[str, Any], configs: Path, experiments: Iterable[str],
                  classifiers: Iterable[str] = ()) -> list[str]:
    """The experiments and classifiers whose resolved file is missing or differs from ``params.yaml`` (run ``dvc
    repro resolve``)."""
    stale = []
    for exp_id in experiments:
        exp, cfg = resolve(params, exp_id)
        path = Outputs(configs=configs).experiment_config(exp.dataset, exp_id)
        doc = yaml.safe_load(path.read_text()) if path.is_file() else None
        if doc is None or doc.get("run") != to_dict(cfg) or doc["experiment"]["seeds"] != list(exp.seeds):
            stale.append(exp_id)
    for cls_id in classifiers:
        resolved = yaml.safe_load(yaml.safe_dump(resolve_classifier(params, cls_id)))  # as the file holds it
        path = Outputs(configs=configs).classifier_config(resolved["dataset"], cls_id)
        doc = yaml.safe_load(path.read_text()) if path.is_file() else None
        if doc is None or any(doc.get(key) != value for key, value in resolved.items()):
            stale.append(cls_id)
    return stale


def select(params: dict[str, Any], patterns: list[str] | None,
           section: str = "experiments") -> list[str]:
    """The ids of ``params[section]`` (experiments, or classifiers) matching any of ``patterns`` (shell patterns,
    ``voc-1_8-*``); all without patterns. A pattern that matches neither an experiment nor a classifier is an error."""
    ids = list(params.get(section) or {})
    if not patterns:
        return ids
    every = [*params["experiments"], *(params.get("classifiers") or {})]
    unknown = [p for p in patterns if not fnmatch.filter(every, p)]
    if unknown:
        raise KeyError(f"no experiment or classifier of params.yaml matches {', '.join(unknown)}")
    return [i for i in ids if any(fnmatch.fnmatch(i, p) for p in patterns)]


def specs(layout: Layout, experiments: dict[str, str]) -> list[RunSpec]:
    """Every run (experiment x seed) of ``experiments`` (``{id: data set}``), seeds as the resolved files list
    them."""
    out = []
    for exp_id, dataset in experiments.items():
        doc = yaml.safe_load(layout.outputs.experiment_config(dataset, exp_id).read_text())
        out += [RunSpec(exp_id, dataset, seed, layout) for seed in doc["experiment"]["seeds"]]
    return out


def why_pending(job: RunJob) -> str | None:
    """Why the run of ``job`` needs training or evaluation; None if it is finished and evaluated."""
    if not job.checkpoint.is_file():
        return "missing: no checkpoint"
    state = ckpt.load(job.checkpoint)
    ident, total = identity(job.cfg, job.data, job.init), job.cfg.optim.iterations
    theirs = state.get("identity") or {}
    if theirs != ident:
        changed = [f"settings ({', '.join(changed_keys(theirs.get('config') or {}, ident['config'])[:3])})"
                   if theirs.get("config") != ident["config"] else None]
        changed += [what for key, what in IDENTITY_PARTS.items() if theirs.get(key) != ident[key]]
        return "changed: " + ", ".join(c for c in changed if c)
    if int(state["step"]) < total:
        return f"unfinished: step {int(state['step'])}/{total}"
    if recorded(job.checkpoint.with_name(EVALUATION_FILE), evaluation_key(ident, total)) is None:
        return "not evaluated: no evaluation of this checkpoint by the current evaluation code"
    return None


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested settings trees."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


def pending_runs(layout: Layout, experiments: dict[str, str]) -> list[Pending]:
    found = []
    for spec in specs(layout, experiments):
        reason = why_pending(spec.job())
        if reason is not None:
            found.append(Pending(spec, reason))
    return found




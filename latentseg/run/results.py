"""An experiment's results, rebuilt from its runs' folders: its metrics file, each run's P(l|c) and its curves.

What the training stage writes once its runs are trained (``outputs.Outputs`` has the paths):

- ``results/metrics/<dataset>/<experiment>.json``: every run's metrics under ``runs`` (mIoU, per-class IoU,
  effective latent classes, the recovery ARI of the planted groups where the data has them), their means at the
  top (for ``dvc metrics show``), and the profile;
- ``results/latent/<dataset>/<experiment>/seed-<n>.csv`` (and ``-val.csv``): P(l|c) from training's
  co-occurrence matrix (eq. 8) and estimated on the validation set;
- ``results/curves/<dataset>/<experiment>/seed-<n>/``: the run's ``curves.json`` replayed into dvclive.

All of it follows from ``runs/``: a re-run rewrites it byte for byte.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from dvclive import Live
from torch import Tensor

from latentseg.evaluate import recovery_metrics
from latentseg.run.classifiers import FilterOutcome, ResolvedClassifier
from latentseg.run.jobs import RunOutcome
from latentseg.run.outputs import Outputs, run_order, summarise
from latentseg.run.progress_file import CURVES, read_curves
from latentseg.util.files import atomic_write_json, atomic_write_text


def latent_csv(p: Tensor, classes: list[str]) -> str:
    rows = [",".join(["class", *(f"l{i}" for i in range(p.shape[1]))])]
    rows += [",".join([c, *(f"{v:.5f}" for v in row)]) for c, row in zip(classes, p.tolist(), strict=True)]
    return "\n".join(rows) + "\n"


def write_curves(folder: Path, points: Iterable[tuple[dict[str, float], int]]) -> None:
    """One run's curves as dvclive writes them (``plots/metrics/train/<term>.tsv``, ``val/miou.tsv``)."""
    shutil.rmtree(folder, ignore_errors=True)
    with Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for values, step in points:
            live.step = step
            for name, value in values.items():
                live.log_metric(name if "/" in name else f"train/{name}", value)
            live.next_step()


def write_experiment(out: Outputs, dataset: str, experiment: str, profile: str, outcomes: list[RunOutcome],
                     classes: list[str], planted_groups: dict[str, list[str]] | None) -> dict:
    """Write the experiment's results from the outcomes of its runs (the module's docstring); its metrics."""
    outcomes = sorted(outcomes, key=lambda o: run_order(o.label))
    latent = out.latent_folder(dataset, experiment)
    shutil.rmtree(latent, ignore_errors=True)
    per_run = {}
    for o in outcomes:
        per_run[o.label] = {**o.metrics, **recovery_metrics(o.p_latent, o.p_latent_val, classes, planted_groups)}
        for suffix, p in (("", o.p_latent), ("-val", o.p_latent_val)):
            if p is not None:
                atomic_write_text(latent / f"{o.label}{suffix}.csv", latent_csv(p, classes))
        seed = int(o.label.removeprefix("seed-"))
        points = read_curves(out.run_folder(dataset, experiment, seed) / CURVES)
        write_curves(out.curves_folder(dataset, experiment) / o.label, points)
    metrics = {**summarise(per_run), "profile": profile}
    atomic_write_json(out.metrics_file(dataset, experiment), metrics)
    return metrics


def write_classifier(out: Outputs, spec: ResolvedClassifier, outcomes: list[FilterOutcome]) -> dict:
    """``results/metrics/<dataset>/classifier-<id>.json``: every run the classifier filtered, per experiment, its
    mIoU with the filter (``miou``) and without (``miou_unfiltered``)."""
    per_exp: dict[str, dict[str, dict[str, float]]] = {}
    for o in sorted(outcomes, key=lambda o: run_order(o.label)):
        per_exp.setdefault(o.experiment, {})[o.label] = o.metrics
    missing = [e for e in spec.filters if e not in per_exp]
    if missing:
        raise FileNotFoundError(f"classifier {spec.id} filters {', '.join(missing)}, which has no run of seeds "
                                f"{spec.seeds}: check params.yaml (repeats, classifiers)")
    doc = {"profile": spec.profile, "classifier": spec.id,
           "filtered": {exp: summarise(per_exp[exp]) for exp in spec.filters}}
    atomic_write_json(out.classifier_file(spec.dataset, spec.id), doc)
    return doc

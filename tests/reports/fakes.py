"""Result files in the pipeline's layout (latentseg/outputs.py), written at test time: one entry per run (seed)
under "runs", and the report settings that say where each experiment's file is."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Any

from latentseg.run.outputs import Outputs


def _doc(runs: dict[str, dict[str, float]]) -> dict:
    metrics = sorted({m for r in runs.values() for m in r})
    return {**{m: mean(r[m] for r in runs.values() if m in r) for m in metrics}, "runs": runs}


def write_runs(results: Path, exp: str, runs: dict[str, dict[str, float]], dataset: str = "voc",
               profile: str = "demo") -> Path:
    """``results/metrics/<dataset>/<exp>.json``: the mean of every metric at the top (for `dvc metrics show`),
    every run below, and the profile that made them."""
    path = Outputs(results=results).metrics_file(dataset, exp)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**_doc(runs), "profile": profile}, indent=2))
    return path


def write_filtered(results: Path, classifier: str, per_experiment: dict[str, dict[str, dict[str, float]]],
                   dataset: str = "voc", profile: str = "demo") -> Path:
    """``results/metrics/<dataset>/classifier-<id>.json``: the runs of each experiment the classifier filters."""
    path = Outputs(results=results).classifier_file(dataset, classifier)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"profile": profile, "classifier": classifier,
           "filtered": {exp: _doc(runs) for exp, runs in per_experiment.items()}}
    path.write_text(json.dumps(doc, indent=2))
    return path


def settings(experiments: dict[str, str], classifiers: dict[str, list[str]] | None = None,
             profile: str = "demo", **other: Any) -> dict[str, Any]:
    """Report settings (configs/reports.yaml) for ``experiments`` (``{id: data set}``) and ``classifiers``
    (``{id: [the experiments it filters]}``)."""
    return {"profile": profile, "tables": {}, "figures": {}, "figure1": {"runs": {}},
            "experiments": {e: {"dataset": d, "fraction": "1/8"} for e, d in experiments.items()},
            "classifiers": {c: {"dataset": "voc", "fraction": "1/8", "filters": f}
                            for c, f in (classifiers or {}).items()},
            "planted_groups": {}, **other}


def seeds(miou: list[float], seed_ids: tuple[int, ...] = (1234, 1, 2), **other: list[float]) -> dict[str, dict]:
    """``{"seed-1234": {"miou": miou[0], <metric>: other[metric][0]}, "seed-1": ...}``, one entry per value."""
    return {f"seed-{s}": {"miou": m, "steps": 100, **{k: v[i] for k, v in other.items()}}
            for i, (s, m) in enumerate(zip(seed_ids, miou, strict=False))}

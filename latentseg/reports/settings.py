"""The report stages' settings: ``configs/reports.yaml``, resolved from ``params.yaml`` by stage ``resolve``
(``experiments.report_settings``), so that a report re-runs only when what it shows changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from latentseg.run.outputs import Outputs


def load_reports(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run stage resolve (`dvc repro resolve`) first")
    return yaml.safe_load(path.read_text())


def planted_group_counts(settings: dict[str, Any]) -> dict[str, int | None]:
    """The number of planted groups of every data set in the profile (None: real data, no groups)."""
    return {d: None if g is None else len(g) for d, g in settings["planted_groups"].items()}


def metrics_file(out: Outputs, settings: dict[str, Any], experiment: str) -> Path:
    return out.metrics_file(settings["experiments"][experiment]["dataset"], experiment)


def classifier_file(out: Outputs, settings: dict[str, Any], experiment: str) -> Path | None:
    """The results of the classifier that filters ``experiment`` (None: no classifier filters it)."""
    for cls_id, entry in settings["classifiers"].items():
        if experiment in entry["filters"]:
            return out.classifier_file(entry["dataset"], cls_id)
    return None

"""Every figure of the pipeline as a list of drawing tasks, drawn side by side (matplotlib draws on one core):
Figure 3's heat maps of P(l|c), Figure 1 from stage figure1's arrays, and each table's training curves."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from latentseg.reports.curves import experiment_curves, experiments_of, plot_curves
from latentseg.reports.figure1 import draw_figure1, read_arrays
from latentseg.reports.figures import heatmap
from latentseg.reports.settings import metrics_file
from latentseg.run.outputs import Outputs

Task = tuple[Callable[..., Any], tuple]  # a drawing function and its arguments; it returns the file it wrote


def figure3(settings: dict[str, Any], out: Outputs, name: str, exp_id: str, folder: Path) -> Path:
    """``<folder>/<name>.png``: P(l|c) of the first run of ``exp_id``, rows by planted group where there are."""
    exp = settings["experiments"][exp_id]
    label = next(iter(json.loads(metrics_file(out, settings, exp_id).read_text())["runs"]))  # the first seed
    latent_csv = out.latent_folder(exp["dataset"], exp_id) / f"{label}.csv"
    frame = pd.read_csv(latent_csv, index_col=0)
    groups = settings["planted_groups"][exp["dataset"]]
    if groups is not None and sorted(frame.index) != sorted(c for m in groups.values() for c in m):
        raise SystemExit(f"{latent_csv}: its classes are not those of {exp['dataset']}'s planted groups "
                         f"(latentseg/datasets/); re-run stage train@{exp['dataset']}")
    title = (f"P(l|c), {exp['dataset']} {exp['fraction']}, k = {frame.shape[1]} ({exp_id}, {label}, "
             f"{settings['profile']} profile)")
    path = folder / f"{name}.png"
    heatmap(frame.to_numpy(), list(frame.index), title, path, groups)
    return path


def figure1(settings: dict[str, Any], arrays_file: Path, dataset: str, exp_id: str, folder: Path) -> Path:
    arrays = read_arrays(arrays_file)
    exp = settings["experiments"][exp_id]
    title = (f"Figure 1, {dataset} {exp['fraction']}: {exp_id} ({arrays['run']}, {settings['profile']} profile), "
             f"first {len(arrays['ids'])} validation images")
    return draw_figure1(arrays, folder / f"fig1_{dataset}.png", title, settings["planted_groups"][dataset])


def curves(settings: dict[str, Any], out: Outputs, name: str, folder: Path) -> Path:
    """``<folder>/curves_<name>.png``: the training curves of table ``name``'s experiments (those of the
    registry: a trimmed ``params.yaml`` leaves some out)."""
    layout, registry = settings["tables"][name], settings["experiments"]
    found = {e: experiment_curves(out.curves_folder(registry[e]["dataset"], e))
             for e in experiments_of(layout) if e in registry}
    return plot_curves(found, layout.get("title", name), folder / f"curves_{name}.png")


def figure_tasks(settings: dict[str, Any], out: Outputs, folder: Path) -> list[Task]:
    """Every figure of the report settings (``configs/reports.yaml``); a missing Figure 1 array is skipped."""
    tasks: list[Task] = [(figure3, (settings, out, name, exp_id, folder))
                         for name, exp_id in settings["figures"].items()]
    for dataset, exp_id in settings["figure1"]["runs"].items():
        arrays_file = out.figure1_file(dataset)
        if arrays_file.is_file():
            tasks.append((figure1, (settings, arrays_file, dataset, exp_id, folder)))
        else:
            print(f"figure 1 ({dataset}): {arrays_file} not found (stage figure1@{dataset}); skipped")
    tasks += [(curves, (settings, out, name, folder)) for name in settings["tables"]]
    return tasks


def _draw(task: Task) -> Path:
    function, args = task
    return function(*args)


def draw(tasks: list[Task], processes: int | None = None) -> list[Path]:
    """Draw ``tasks`` in forked processes, one per core (in this one for one), longest (curves) first."""
    processes = min(processes or os.cpu_count() or 1, len(tasks))
    if processes <= 1:
        return [_draw(t) for t in tasks]
    ordered = sorted(tasks, key=lambda t: t[0] is not curves)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return pool.map(_draw, ordered, chunksize=1)

"""The tables (1-6 and the supplement's) from the table layouts of ``params.yaml`` and the per-run metric files,
beside the paper's numbers.

A cell of a layout names where its numbers come from:

- ``"<exp>"``: the mIoU of experiment ``<exp>``, from ``results/metrics/<dataset>/<exp>.json``;
- ``"<exp>:<metric>"``: another metric of it (``voc-1_8-proposed:effective_t0.9``, ``...:recovery_ari``); a run
  whose metric is null (not applicable: no planted groups in its data) gives the cell no value;
- ``"<exp>+classifier"``: its mIoU once its image classifier filters it, from ``results/classifiers/<id>.json``
  (the classifier of ``params.yaml: classifiers`` whose ``filters`` name it);
- ``null``: not reproduced.

Both hold one entry per run (training seed) under ``"runs"``: ``{"runs": {"seed-1234": {"miou": 31.0, ...}}}`` (the
classifier's file one such mapping per filtered experiment, under ``"filtered"``)
(their top-level numbers are means for ``dvc metrics show``, not read here). A cell gets every run's value; a table
shows the mean, the sample standard deviation and the run count, and ``all.csv`` keeps each run's value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from latentseg.reports.settings import classifier_file, metrics_file
from latentseg.reports.stats import CELL_KEY, RUN_COLUMNS, kind_of, summarise
from latentseg.run.outputs import Outputs, run_order
from latentseg.util.files import atomic_write_text

CELL_COLUMNS = [*CELL_KEY, "mean", "std", "n", "paper", "diff", "source"]
CLASSIFIER = "+classifier"


@dataclass(frozen=True)
class CellRef:
    experiment: str
    metric: str = "miou"
    classifier: bool = False  # the classifier-filtered numbers (classifier.json)

    @classmethod
    def parse(cls, cell: str | None) -> CellRef | None:
        if cell is None:
            return None
        head, _, metric = str(cell).partition(":")
        classifier = head.endswith(CLASSIFIER)
        return cls(head.removesuffix(CLASSIFIER), metric or "miou", classifier)


RunsReader = Callable[[CellRef], "dict[str, float]"]


def results_reader(results_dir: str | Path, settings: Mapping[str, Any]) -> RunsReader:
    """``read(ref)``: ``{run label: value}`` of that cell, in seed order; ``{}`` (not run) when its experiment, or
    the classifier that filters it, is not in the registry (a trimmed ``params.yaml``, as a variant or a test
    may have), when its file is missing, or when it holds the results of another profile (a demo result left in
    the workspace is no paper result).
    ``settings``: the report settings (``configs/reports.yaml``), which say each experiment's data set and which
    classifier filters it."""
    out = Outputs(results=Path(results_dir))
    profile = settings["profile"]

    def read(ref: CellRef) -> dict[str, float]:
        if ref.experiment not in settings["experiments"]:
            return {}
        path = (classifier_file(out, settings, ref.experiment) if ref.classifier
                else metrics_file(out, settings, ref.experiment))
        if path is None or not path.is_file():
            return {}
        doc = json.loads(path.read_text())
        if profile is not None and doc.get("profile") != profile:
            return {}
        runs = doc["filtered"].get(ref.experiment, {}).get("runs") if ref.classifier else doc.get("runs")
        if not isinstance(runs, dict):
            raise ValueError(f"{path}: no 'runs' mapping (expected {{\"runs\": {{\"seed-<n>\": {{...}}}}}}, one "
                             "entry per training seed); re-run the stage that wrote it")
        values = {}
        for label in sorted(runs, key=run_order):
            if ref.metric not in runs[label]:
                raise KeyError(f"{path}: run {label!r} has no metric {ref.metric!r} (re-run the training stage "
                               "if the metric is new, else fix the table layout in params.yaml)")
            if runs[label][ref.metric] is not None:  # None: not applicable to this run (no planted groups)
                values[label] = float(runs[label][ref.metric])
        return values

    return read


def paper_cells(name: str, layout: Mapping[str, Any], paper: Mapping[str, list]) -> dict[tuple, float | None]:
    """``{(table, row, column): the paper's number or None}`` for every cell of a layout."""
    columns = [str(c) for c in layout["columns"]]
    out = {}
    for row in layout["rows"]:
        values = list(paper.get(str(row), [None] * len(columns)))
        if len(values) != len(columns):
            raise ValueError(f"the paper's {name}.{row} has {len(values)} numbers for {len(columns)} columns")
        for column, value in zip(columns, values, strict=True):
            out[(name, str(row), column)] = value
    return out


def paper_by_cell(tables: Mapping[str, Mapping[str, Any]], paper: Mapping[str, Mapping[str, list]]) -> dict:
    """``paper_cells`` of every table layout (``params.yaml: tables``; ``paper``: paper.yaml's ``tables``)."""
    out: dict[tuple, float | None] = {}
    for name, layout in tables.items():
        out.update(paper_cells(name, layout, paper.get(name, {})))
    return out


def table_runs(name: str, layout: Mapping[str, Any], read: RunsReader) -> pd.DataFrame:
    """One row per cell and run (``RUN_COLUMNS``); a cell without runs has no row."""
    columns = [str(c) for c in layout["columns"]]
    records = []
    for row, cells in layout["rows"].items():
        if len(cells) != len(columns):
            raise ValueError(f"tables.{name}.rows.{row} has {len(cells)} cells for {len(columns)} columns")
        for column, cell in zip(columns, cells, strict=True):
            ref = CellRef.parse(cell)
            for run, value in (read(ref) if ref is not None else {}).items():
                records.append({"table": name, "row": str(row), "column": column, "source": cell, "run": run,
                                "value": value})
    return pd.DataFrame.from_records(records, columns=RUN_COLUMNS)


def table_cells(name: str, layout: Mapping[str, Any], paper: Mapping[str, list], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the layout (``CELL_COLUMNS``): mean, std, n of its runs, the paper's number, the gap."""
    stats = summarise(runs).set_index(CELL_KEY)
    reference = paper_cells(name, layout, paper)
    records = []
    for row, cells in layout["rows"].items():
        for column, cell in zip([str(c) for c in layout["columns"]], cells, strict=True):
            key = (name, str(row), column)
            built = key in stats.index
            mean = float(stats.at[key, "mean"]) if built else None
            std = stats.at[key, "std"] if built else None
            ref_value = reference[key]
            records.append({"table": name, "row": str(row), "column": column,
                            "mean": None if mean is None else round(mean, 3),
                            "std": None if std is None or pd.isna(std) else round(float(std), 3),
                            "n": int(stats.at[key, "n"]) if built else 0, "paper": ref_value,
                            "diff": None if mean is None or ref_value is None else round(mean - ref_value, 3),
                            "source": cell})
    return pd.DataFrame.from_records(records, columns=CELL_COLUMNS)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def cell_text(mean: Any, std: Any, n: int, paper: Any, diff: Any, count: bool = False, index: bool = False) -> str:
    """``71.1 ± 0.4 (3) / 71.3 (-0.2)`` for several runs, ``71.1 / 71.3 (-0.2)`` for one, ``– / 71.4`` for none.

    ``count``: effective-latent-class counts, whole numbers for one run (and the paper), one decimal for a mean.
    ``index``: a 0-1 index (the recovery ARI), two decimals.
    """
    digits = (1 if n >= 2 else 0) if count else 2 if index else 1
    paper_digits = 0 if count else digits
    if _missing(mean):
        ours = "–"
    elif n >= 2:
        ours = f"{float(mean):.{digits}f} ± {float(std):.{digits}f} ({n})"
    else:
        ours = f"{float(mean):.{digits}f}"
    text = f"{ours} / {'–' if _missing(paper) else f'{float(paper):.{paper_digits}f}'}"
    return text if _missing(diff) else f"{text} ({float(diff):+.{digits}f})"


def markdown(cells: pd.DataFrame, title: str, profile: str) -> str:
    """A table shaped like the paper's; each cell reads ``ours / paper (difference)``."""
    rows = list(dict.fromkeys(cells["row"]))
    columns = list(dict.fromkeys(cells["column"]))
    body = []
    for row in rows:
        part = cells[cells["row"] == row].set_index("column")
        line = [row]
        for col in columns:
            c = part.loc[col]
            # latent-class counts print as whole numbers; a cell without a source goes by its column's name
            if _missing(c["source"]):
                kind = "effective" if col.startswith("effective") else "ari" if "ARI" in col else "miou"
            else:
                kind = kind_of(c["source"])
            line.append(cell_text(c["mean"], c["std"], int(c["n"]), c["paper"], c["diff"], count=kind == "effective",
                                  index=kind == "ari"))
        body.append(line)
    table = tabulate(body, headers=["", *columns], tablefmt="github", disable_numparse=True)
    note = (f"\n\nProfile `{profile}`. Each cell: ours / the paper's (difference of our mean from the paper's). "
            "Ours is mean ± sample standard deviation (number of runs) over training seeds when a cell has several "
            "runs, else the one run's number. – : not reproduced or not run here, or not reported by the paper.")
    if profile != "paper":
        note += (" The demo profile runs on the embedded synthetic data: compare its numbers with each other, not "
                 "with the paper's.")
    return f"# {title}\n\n{table}{note}\n"


def write_table(cells: pd.DataFrame, title: str, profile: str, md_path: str | Path, csv_path: str | Path) -> None:
    atomic_write_text(md_path, markdown(cells, title, profile))
    atomic_write_text(csv_path, cells.to_csv(index=False))

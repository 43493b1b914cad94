"""Tables 1-5 from the table layouts of ``params.yaml`` and per-run metric files, beside the paper's numbers.

A cell of a layout names where its number comes from: ``"<run id>"`` (that run's mIoU), ``"<run id>:<metric>"``,
``"classifier:<id>"`` (the mIoU of a run filtered by that image classifier) or ``null`` (not reproduced).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from latentseg.data.layout import atomic_write_text


@dataclass(frozen=True)
class CellRef:
    source: str  # "run" or "classifier"
    id: str
    metric: str = "miou"

    @classmethod
    def parse(cls, cell: str | None) -> CellRef | None:
        if cell is None:
            return None
        head, _, tail = str(cell).partition(":")
        if head == "classifier":
            return cls("classifier", tail)
        return cls("run", head, tail or "miou")


MetricsReader = Callable[[CellRef], "dict[str, Any] | None"]


def metrics_reader(runs_dir: str | Path) -> MetricsReader:
    """Reads ``<runs>/<id>/metrics.json`` and ``<runs>/classifier-<id>/metrics.json``; None when missing."""
    runs_dir = Path(runs_dir)

    def read(ref: CellRef) -> dict[str, Any] | None:
        folder = ref.id if ref.source == "run" else f"classifier-{ref.id}"
        path = runs_dir / folder / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else None

    return read


def long_table(name: str, layout: Mapping[str, Any], paper: Mapping[str, list], read: MetricsReader) -> pd.DataFrame:
    """One row per cell: table, row, column, ours, paper, diff, source."""
    columns = [str(c) for c in layout["columns"]]
    records = []
    for row, cells in layout["rows"].items():
        if len(cells) != len(columns):
            raise ValueError(f"tables.{name}.rows.{row} has {len(cells)} cells for {len(columns)} columns")
        paper_row = list(paper.get(str(row), [None] * len(columns)))
        for col, cell, ref_value in zip(columns, cells, paper_row, strict=True):
            ref = CellRef.parse(cell)
            ours = None
            if ref is not None:
                metrics = read(ref)
                if metrics is not None:
                    if ref.metric not in metrics:
                        raise KeyError(f"tables.{name}: metric {ref.metric!r} not in the metrics of {ref.id}")
                    ours = metrics[ref.metric]
            diff = None if ours is None or ref_value is None else round(ours - ref_value, 2)
            records.append({"table": name, "row": str(row), "column": col, "ours": ours, "paper": ref_value,
                            "diff": diff, "source": cell})
    return pd.DataFrame.from_records(records)


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _cell(ours: Any, paper: Any, diff: Any, digits: int) -> str:
    """``ours / paper (Δ)``; a cell the pipeline does not reproduce shows only the paper's number."""
    text = f"{_fmt(ours, digits)} / {_fmt(paper, digits)}"
    return text if diff is None or pd.isna(diff) else f"{text} ({float(diff):+.{digits}f})"


def markdown(long: pd.DataFrame, title: str, profile: str) -> str:
    """A table shaped like the paper's; each cell reads ``ours / paper (difference)``."""
    rows = list(dict.fromkeys(long["row"]))
    columns = list(dict.fromkeys(long["column"]))
    body = []
    for row in rows:
        cells = long[long["row"] == row].set_index("column")
        line = [row]
        for col in columns:
            digits = 0 if col.startswith("effective") else 1  # latent-class counts are whole numbers
            line.append(_cell(cells.at[col, "ours"], cells.at[col, "paper"], cells.at[col, "diff"], digits))
        body.append(line)
    table = tabulate(body, headers=["", *columns], tablefmt="github", disable_numparse=True)
    note = (f"\n\nProfile `{profile}`. Each cell: ours / the paper's (difference). – : not reproduced here, or not "
            "reported by the paper.")
    if profile != "paper":
        note += (" The demo profile runs on the embedded synthetic data: compare its numbers with each other, not "
                 "with the paper's.")
    return f"# {title}\n\n{table}{note}\n"


def write_table(long: pd.DataFrame, title: str, profile: str, md_path: str | Path, csv_path: str | Path) -> None:
    atomic_write_text(md_path, markdown(long, title, profile))
    atomic_write_text(csv_path, long.to_csv(index=False))

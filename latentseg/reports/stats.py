"""Per-run table values and their spread: the numbers that tables, claims and the check share.

Every report reads one frame of runs, ``all.csv`` of the tables stage: one row per table cell and run (training
seed), columns ``RUN_COLUMNS``. Nothing there is averaged; means and spreads are computed here when needed.

Three kinds of number have their own noise: ``miou`` (mIoU and other IoU percentages), ``effective`` (counts of
effective latent classes, Table 4) and ``ari`` (the adjusted Rand index of the latent classes against the planted
groups, ``recovery_ari``, on a 0-1 scale). A cell's kind follows from its source (``"<exp>:effective_t0.9"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RUN_COLUMNS = ["table", "row", "column", "source", "run", "value"]
CELL_KEY = ["table", "row", "column"]
KINDS = ("miou", "effective", "ari")


def kind_of(source: str) -> str:
    """``effective`` for an effective-latent-class count, ``ari`` for a recovery index, ``miou`` for the rest."""
    metric = str(source).partition(":")[2]
    return "effective" if metric.startswith("effective") else "ari" if metric.startswith("recovery_ari") else "miou"


def read_runs(path: str | Path) -> pd.DataFrame:
    """``all.csv`` with its labels kept as text (a Table 4 row is ``"2"``, not the number 2)."""
    frame = pd.read_csv(path, dtype={"table": str, "row": str, "column": str, "source": str, "run": str})
    missing = [c for c in RUN_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing; expected {RUN_COLUMNS} (one row per cell and run; "
                         "rebuild it with stages/tables.py)")
    return frame[RUN_COLUMNS]


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per built cell: table, row, column, source, mean, std (sample, ddof=1; NaN for one run), n."""
    if runs.empty:
        return pd.DataFrame(columns=[*CELL_KEY, "source", "mean", "std", "n"])
    grouped = runs.groupby([*CELL_KEY, "source"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["n"] = out["n"].astype(int)
    return out


def cell_stats(runs: pd.DataFrame) -> dict[tuple[str, str, str], dict]:
    """``{(table, row, column): {"source", "mean", "std", "n"}}`` for every built cell."""
    return {(r.table, r.row, r.column): {"source": r.source, "mean": float(r.mean),
                                         "std": None if pd.isna(r.std) else float(r.std), "n": int(r.n)}
            for r in summarise(runs).itertuples(index=False)}


def pooled_std(runs: pd.DataFrame, kind: str) -> tuple[float | None, int]:
    """The pooled within-cell sample std of the cells of ``kind`` with >= 2 runs, and how many cells it pools.

    ``sqrt(sum_i sum_r (x_ir - mean_i)^2 / sum_i (n_i - 1))``. A run that fills several cells (``voc-1_8-proposed``
    is in Tables 1, 3, 4 and 5) counts once: cells are pooled by source, not by position. None when no cell has
    two runs.
    """
    part = runs[runs["source"].map(kind_of) == kind].drop_duplicates(["source", "run"])
    squares, dof, cells = 0.0, 0, 0
    for _, values in part.groupby("source")["value"]:
        if len(values) >= 2:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += len(values) - 1
            cells += 1
    return (math.sqrt(squares / dof) if dof else None), cells


@dataclass(frozen=True)
class Noise:
    """The spread of one run of a kind, and where it came from (for the reports to state)."""

    sigma: float
    cells: int  # how many cells with >= 2 runs it pools; 0: the configured default

    @property
    def origin(self) -> str:
        return f"pooled over {self.cells} cell(s) with >= 2 runs" if self.cells else "default_noise (no repeats)"


def noise_by_kind(runs: pd.DataFrame, default_noise: Mapping[str, float]) -> dict[str, Noise]:
    """Per kind: the pooled within-cell std of ``runs`` where any cell has repeats, else ``default_noise[kind]``
    (a kind without a default and without any cell in ``runs`` is left out: nothing needs its noise)."""
    out = {}
    present = set(runs["source"].map(kind_of)) if not runs.empty else set()
    for kind in KINDS:
        sigma, cells = pooled_std(runs, kind)
        if sigma is None:
            if kind not in default_noise and kind not in present:
                continue
            if kind not in default_noise:
                raise KeyError(f"default_noise.{kind} is not set, and no {kind} cell has two runs to measure it")
            sigma, cells = float(default_noise[kind]), 0
        out[kind] = Noise(sigma, cells)
    return out

"""The tolerance check: built tables against reference numbers (the paper's, or the demo's own)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def tolerance_for(column: str, tolerances: Mapping[str, float]) -> float:
    """Effective-latent-class columns are counts with their own tolerance; everything else is mIoU."""
    return tolerances["effective"] if column.startswith("effective") else tolerances["miou"]


def out_of_tolerance(long: pd.DataFrame, reference: Mapping[str, Mapping[str, list]],
                     tolerances: Mapping[str, float]) -> list[str]:
    """Every cell whose number is missing or differs from ``reference`` by more than its tolerance.

    ``long`` holds all tables (see ``tables.long_table``); ``reference[table][row]`` lists one number per column
    (``None``: not checked). Cells the layout leaves ``null`` (not reproduced) are skipped.
    """
    problems = []
    for table, rows in reference.items():
        part = long[long["table"] == table]
        if part.empty:
            problems.append(f"{table}: not built")
            continue
        columns = list(dict.fromkeys(part["column"]))
        for row, values in rows.items():
            for column, expected in zip(columns, values, strict=False):
                if expected is None:
                    continue
                cell = part[(part["row"] == str(row)) & (part["column"] == column)]
                if not cell.empty and pd.isna(cell["source"].iloc[0]):
                    continue  # a cell the layout does not reproduce (Mittal et al.'s rows)
                ours: Any = None if cell.empty else cell["ours"].iloc[0]
                tol = tolerance_for(column, tolerances)
                if ours is None or pd.isna(ours):
                    problems.append(f"{table} / {row} / {column}: no result (reference {expected})")
                elif abs(float(ours) - float(expected)) > tol:
                    problems.append(f"{table} / {row} / {column}: {float(ours):.2f} vs reference {expected} "
                                    f"(|diff| {abs(float(ours) - float(expected)):.2f} > tolerance {tol})")
    return problems


def reference_from(long: pd.DataFrame) -> dict[str, dict[str, list]]:
    """The reference layout of built tables (to record the demo's own results)."""
    out: dict[str, dict[str, list]] = {}
    for table, part in long.groupby("table", sort=False):
        out[str(table)] = {}
        for row, cells in part.groupby("row", sort=False):
            out[str(table)][str(row)] = [None if pd.isna(v) else round(float(v), 2) for v in cells["ours"]]
    return out

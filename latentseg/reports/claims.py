"""The paper's claims (``reference/claims.yaml``), each checked on the built tables with a verdict that accounts for
the number of runs.

A claim says that one table cell (``higher``) is above another (``lower``), or above or below a number. The rule:

- the difference ``d = mean(higher) - mean(lower)`` over each cell's runs (a number is its own mean);
- each cell's spread ``s`` is the sample std of its runs when it has >= 2 runs, else the pooled within-cell std of
  all cells of the same kind (mIoU, or effective-class counts) that have >= 2 runs in this report, else the
  ``default_noise`` of that kind in ``claims.yaml``; a number has no spread;
- ``se = sqrt(s_higher^2 / n_higher + s_lower^2 / n_lower)``, the standard error of ``d``;
- **holds** if ``d > 2 se``, **reversed** if ``d < -2 se``, **within noise** otherwise (with ``se = 0``: holds if
  ``d > 0``, reversed if ``d < 0``); **not run** when a cell has no runs (not built, or not reproduced).

The factor 2 is about a 95 % interval for normal noise. With 2 or 3 runs a cell's own std is itself uncertain (a
t-test would ask for more), so a verdict drawn from few runs is indicative, not a test at a fixed level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from latentseg.files import atomic_write_text
from latentseg.reports.stats import Noise, cell_stats, kind_of, noise_by_kind

CLAIM_COLUMNS = ["id", "claim", "higher", "lower", "paper_diff", "diff", "se", "n_higher", "n_lower",
                 "spread_higher", "spread_lower", "verdict"]
VERDICTS = ("holds", "within noise", "reversed", "not run")
RULE = ("d = mean(higher) - mean(lower); each side's spread s is the sample std of its runs if it has >= 2, else "
        "the pooled within-cell std of the cells of its kind with >= 2 runs, else default_noise (claims.yaml); a "
        "number has no spread; se = sqrt(s_higher²/n_higher + s_lower²/n_lower). **holds** if d > 2·se, "
        "**reversed** if d < -2·se, **within noise** otherwise (se = 0: the sign of d decides); **not run** when "
        "a cell has no runs.")

Cell = tuple[str, str, str]


@dataclass(frozen=True)
class Claim:
    id: str
    says: str
    higher: Cell | float  # a cell (table, row, column) or a number
    lower: Cell | float


def _side(claim_id: str, value: Any) -> Cell | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping) and set(value) == {"table", "row", "column"}:
        return (str(value["table"]), str(value["row"]), str(value["column"]))
    raise ValueError(f"claim {claim_id}: a side is a number or {{table, row, column}}, not {value!r}")


def parse_claims(doc: Mapping[str, Any]) -> list[Claim]:
    """The ``claims`` list of ``claims.yaml``; ids must be unique."""
    claims, seen = [], set()
    for entry in doc["claims"]:
        unknown = set(entry) - {"id", "says", "higher", "lower"}
        if unknown or "id" not in entry:
            raise ValueError(f"claims.yaml: an entry needs id, says, higher, lower (got {sorted(entry)})")
        if entry["id"] in seen:
            raise ValueError(f"claims.yaml: id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        claims.append(Claim(str(entry["id"]), " ".join(str(entry["says"]).split()),
                            _side(entry["id"], entry["higher"]), _side(entry["id"], entry["lower"])))
    return claims


def describe(side: Cell | float) -> str:
    return f"{side:g}" if isinstance(side, float) else " / ".join(side)


def verdict(d: float, se: float) -> str:
    """holds / reversed / within noise for a difference ``d`` with standard error ``se`` (the module's rule)."""
    if se == 0:
        return "holds" if d > 0 else "reversed" if d < 0 else "within noise"
    return "holds" if d > 2 * se else "reversed" if d < -2 * se else "within noise"


def _ours(side: Cell | float, stats: Mapping[Cell, dict], noise: Mapping[str, Noise]):
    """(mean, spread, n) of a side; n None for a number; None when the cell has no runs."""
    if isinstance(side, float):
        return side, 0.0, None
    if side not in stats:
        return None
    cell = stats[side]
    spread = cell["std"] if cell["n"] >= 2 else noise[kind_of(cell["source"])].sigma
    return cell["mean"], spread, cell["n"]


def _paper(side: Cell | float, paper: Mapping[Cell, float | None]) -> float | None:
    return side if isinstance(side, float) else paper.get(side)


def evaluate(claims: list[Claim], runs: pd.DataFrame, noise: Mapping[str, Noise],
             paper: Mapping[Cell, float | None] | None = None) -> pd.DataFrame:
    """One row per claim (``CLAIM_COLUMNS``), from every run's value (``all.csv``) and the paper's numbers by cell."""
    stats, paper = cell_stats(runs), paper or {}
    records = []
    for claim in claims:
        p_hi, p_lo = _paper(claim.higher, paper), _paper(claim.lower, paper)
        record = {"id": claim.id, "claim": claim.says, "higher": describe(claim.higher),
                  "lower": describe(claim.lower),
                  "paper_diff": None if p_hi is None or p_lo is None else round(p_hi - p_lo, 3)}
        hi, lo = _ours(claim.higher, stats, noise), _ours(claim.lower, stats, noise)
        if hi is None or lo is None:
            records.append({**record, "verdict": "not run"})
            continue
        (m_hi, s_hi, n_hi), (m_lo, s_lo, n_lo) = hi, lo
        d = m_hi - m_lo
        se = math.sqrt((s_hi**2 / n_hi if n_hi else 0.0) + (s_lo**2 / n_lo if n_lo else 0.0))
        records.append({**record, "diff": round(d, 3), "se": round(se, 3), "n_higher": n_hi, "n_lower": n_lo,
                        "spread_higher": None if n_hi is None else round(s_hi, 3),
                        "spread_lower": None if n_lo is None else round(s_lo, 3), "verdict": verdict(d, se)})
    frame = pd.DataFrame.from_records(records, columns=CLAIM_COLUMNS)
    return frame.astype({"n_higher": "Int64", "n_lower": "Int64"})


def evaluate_file(claims_doc: Mapping[str, Any], runs: pd.DataFrame,
                  paper: Mapping[Cell, float | None] | None = None) -> tuple[pd.DataFrame, dict[str, Noise]]:
    """``evaluate`` with the noise measured on ``runs`` (``default_noise`` of ``claims_doc`` as the fallback)."""
    noise = noise_by_kind(runs, claims_doc.get("default_noise", {}))
    return evaluate(parse_claims(claims_doc), runs, noise, paper), noise


def _count(n: Any) -> str:
    return "–" if pd.isna(n) else str(int(n))


def markdown(frame: pd.DataFrame, noise: Mapping[str, Noise], profile: str) -> str:
    body = []
    for r in frame.itertuples(index=False):
        paper = "–" if pd.isna(r.paper_diff) else f"{r.paper_diff:+.1f}"
        ours = "–" if r.verdict == "not run" else (
            f"{r.diff:+.2f} ± {r.se:.2f} (runs {_count(r.n_higher)} vs {_count(r.n_lower)})")
        body.append([f"`{r.id}`", r.claim, paper, ours, r.verdict])
    table = tabulate(body, headers=["id", "claim", "paper", "ours", "verdict"], tablefmt="github",
                     disable_numparse=True)
    counts = frame["verdict"].value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    spreads = "; ".join(f"{kind}: σ = {n.sigma:.3g} ({n.origin})" for kind, n in noise.items())
    text = (f"# The paper's claims on the built tables ({profile} profile)\n\n{table}\n\n{tally}.\n\n"
            "paper: the paper's difference (higher minus lower). ours: our difference of the means ± its standard "
            "error se, with the number of runs of each side (– : a number, not a cell).\n\n"
            f"Verdict rule: {RULE}\n\nSpread of one run where a cell has fewer than two runs: {spreads}.\n")
    if profile != "paper":
        text += ("\nThe demo profile runs on the embedded synthetic data: its verdicts say whether the demo shows "
                 "the paper's orderings, not whether its numbers match the paper's.\n")
    return text


def write_claims(frame: pd.DataFrame, noise: Mapping[str, Noise], profile: str, md_path: str | Path,
                 csv_path: str | Path) -> None:
    atomic_write_text(md_path, markdown(frame, noise, profile))
    atomic_write_text(csv_path, frame.to_csv(index=False))

"""The paper's claims (``reference/claims.yaml``), each checked on the built tables with a verdict that accounts for
the number of runs.

A claim compares two sides, ``higher`` and ``lower``. A side is a table cell ``{table, row, column}``, a number, or
``{planted_groups: <data set>}``: the number of groups planted in that data set's stand-in (the demo's data; real
data has none). A cell or the planted count may carry ``times: <factor>`` (the side is that multiple of it).
``compare`` says what is claimed: ``above`` (the default: higher > lower) or ``at least`` (higher >= lower).
``given: [<id>, ...]`` names earlier claims that are the claim's premises, ``needs_planted_groups: <data set>``
marks a claim about that data set's planted groups. The rule:

- the difference ``d = mean(higher) - mean(lower)`` over each cell's runs (a number is its own mean);
- each cell's spread ``s`` is the sample std of its runs when it has >= 2 runs, else the pooled within-cell std of
  all cells of the same kind (mIoU, effective-class counts, recovery ARI) that have >= 2 runs in this report, else
  the ``default_noise`` of that kind in ``claims.yaml``; a number has no spread; ``times`` scales mean and spread;
- ``se = sqrt(s_higher^2 / n_higher + s_lower^2 / n_lower)``, the standard error of ``d``;
- ``above``: **holds** if ``d > 2 se``; ``at least``: **holds** if ``d >= 2 se``; both: **reversed** if
  ``d < -2 se``, **within noise** otherwise (with ``se = 0``: the sign of ``d`` decides, and ``d = 0`` holds for
  ``at least``); **not run** when a cell has no runs (not built, or not reproduced);
- **not applicable** when the claim is about planted groups (a ``planted_groups`` side, ``needs_planted_groups``)
  and the profile's data set has none (real data), or when a premise's verdict is anything but holds or not
  applicable: a claim that only means something once its premise holds (fewer latent classes than allowed, when
  the latent branch separates at least the planted groups) is not credited where the premise fails. Its ``d`` and
  ``se`` are still reported, and ``note`` says why.

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

from latentseg.reports.stats import Noise, cell_stats, kind_of, noise_by_kind
from latentseg.util.files import atomic_write_text

CLAIM_COLUMNS = ["id", "claim", "higher", "lower", "paper_diff", "diff", "se", "n_higher", "n_lower",
                 "spread_higher", "spread_lower", "verdict", "note"]
VERDICTS = ("holds", "within noise", "reversed", "not run", "not applicable")
COMPARISONS = ("above", "at least")
RULE = ("d = mean(higher) - mean(lower), a side being a cell, a number or the planted groups of a data set (each "
        "possibly times a factor); each side's spread s is the sample std of its runs if it has >= 2, else the "
        "pooled within-cell std of the cells of its kind with >= 2 runs, else default_noise (claims.yaml); a "
        "number has no spread; se = sqrt(s_higher²/n_higher + s_lower²/n_lower). \"above\": **holds** if "
        "d > 2·se; \"at least\": **holds** if d >= 2·se; **reversed** if d < -2·se, **within noise** otherwise "
        "(se = 0: the sign of d decides); **not run** when a cell has no runs; **not applicable** when the claim "
        "is about planted groups and this profile's data has none, or when a premise (given) does not hold.")

Cell = tuple[str, str, str]
FIELDS = {"id", "says", "higher", "lower", "compare", "given", "needs_planted_groups"}


@dataclass(frozen=True)
class Side:
    """One side of a claim: a table cell, a number, or the planted groups of a data set; times a factor."""

    cell: Cell | None = None
    number: float | None = None
    planted: str | None = None  # a data set's name
    times: float = 1.0

    def describe(self) -> str:
        base = (" / ".join(self.cell) if self.cell is not None else f"planted groups of {self.planted}"
                if self.planted is not None else f"{self.number:g}")
        return base if self.times == 1.0 else f"{self.times:g} × {base}"


@dataclass(frozen=True)
class Claim:
    id: str
    says: str
    higher: Side
    lower: Side
    compare: str = "above"
    given: tuple[str, ...] = ()  # premises: ids of earlier claims
    needs_planted_groups: str | None = None  # about this data set's planted groups

    @property
    def planted_datasets(self) -> list[str]:
        """The data sets whose planted groups the claim is about."""
        names = [s.planted for s in (self.higher, self.lower) if s.planted is not None]
        return names + ([self.needs_planted_groups] if self.needs_planted_groups else [])


def _error(claim_id: Any, field: str, message: str) -> ValueError:
    return ValueError(f"claims.yaml: claim {claim_id}, field {field}: {message}")


def _number(claim_id: Any, field: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _error(claim_id, field, f"expected a number, not {value!r}")


def _side(claim_id: Any, field: str, value: Any) -> Side:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Side(number=float(value))
    if isinstance(value, Mapping):
        times = _number(claim_id, f"{field}.times", value.get("times", 1.0))
        keys = set(value) - {"times"}
        if keys == {"table", "row", "column"}:
            return Side(cell=(str(value["table"]), str(value["row"]), str(value["column"])), times=times)
        if keys == {"planted_groups"} and isinstance(value["planted_groups"], str):
            return Side(planted=value["planted_groups"], times=times)
    raise _error(claim_id, field, "a side is a number, {table, row, column} or {planted_groups: <data set>} "
                                  f"(either of the last two with an optional times: <factor>), not {value!r}")


def parse_claims(doc: Mapping[str, Any]) -> list[Claim]:
    """The ``claims`` list of ``claims.yaml``; ids must be unique, premises (``given``) earlier claims."""
    claims: list[Claim] = []
    seen: set[str] = set()
    for entry in doc["claims"]:
        claim_id = entry.get("id", "?") if isinstance(entry, Mapping) else "?"
        if not isinstance(entry, Mapping) or not {"id", "says", "higher", "lower"} <= set(entry):
            got = sorted(entry) if isinstance(entry, Mapping) else entry
            raise _error(claim_id, "id/says/higher/lower", f"every claim needs all four (got {got})")
        unknown = sorted(set(entry) - FIELDS)
        if unknown:
            raise _error(claim_id, unknown[0], f"unknown field; a claim has {', '.join(sorted(FIELDS))}")
        if entry["id"] in seen:
            raise _error(claim_id, "id", "appears twice")
        compare = entry.get("compare", "above")
        if compare not in COMPARISONS:
            raise _error(claim_id, "compare", f"{compare!r} is not one of {', '.join(COMPARISONS)}")
        given = entry.get("given", [])
        if not isinstance(given, list) or any(g not in seen for g in given):
            raise _error(claim_id, "given", f"{given!r}: a list of ids of claims stated before this one")
        needs = entry.get("needs_planted_groups")
        if needs is not None and not isinstance(needs, str):
            raise _error(claim_id, "needs_planted_groups", f"a data set's name, not {needs!r}")
        seen.add(entry["id"])
        claims.append(Claim(str(entry["id"]), " ".join(str(entry["says"]).split()),
                            _side(claim_id, "higher", entry["higher"]), _side(claim_id, "lower", entry["lower"]),
                            compare, tuple(str(g) for g in given), needs))
    return claims


def describe(side: Side) -> str:
    return side.describe()


def verdict(d: float, se: float, compare: str = "above") -> str:
    """holds / reversed / within noise for a difference ``d`` with standard error ``se`` (the module's rule)."""
    at_least = compare == "at least"
    if se == 0:
        return "holds" if d > 0 or (at_least and d == 0) else "reversed" if d < 0 else "within noise"
    return "holds" if d > 2 * se or (at_least and d >= 2 * se) else "reversed" if d < -2 * se else "within noise"


def _ours(side: Side, stats: Mapping[Cell, dict], noise: Mapping[str, Noise], planted: Mapping[str, int | None]):
    """(mean, spread, n) of a side; n None for a number; None when the cell has no runs."""
    if side.number is not None:
        return side.number * side.times, 0.0, None
    if side.planted is not None:
        return float(planted[side.planted] or 0) * side.times, 0.0, None
    if side.cell not in stats:
        return None
    cell = stats[side.cell]
    spread = cell["std"] if cell["n"] >= 2 else noise[kind_of(cell["source"])].sigma
    return cell["mean"] * side.times, spread * side.times, cell["n"]


def _paper(side: Side, paper: Mapping[Cell, float | None]) -> float | None:
    if side.number is not None:
        return side.number * side.times
    if side.planted is not None:
        return None  # the paper's data has no planted groups
    value = paper.get(side.cell)
    return None if value is None else value * side.times


def _premise_note(claim: Claim, verdicts: Mapping[str, str]) -> str | None:
    failed = [f"{g} {verdicts[g]}" for g in claim.given if verdicts[g] not in ("holds", "not applicable")]
    return f"premise not met: {'; '.join(failed)}" if failed else None


def evaluate(claims: list[Claim], runs: pd.DataFrame, noise: Mapping[str, Noise],
             paper: Mapping[Cell, float | None] | None = None,
             planted: Mapping[str, int | None] | None = None) -> pd.DataFrame:
    """One row per claim (``CLAIM_COLUMNS``), from every run's value (``all.csv``), the paper's numbers by cell and
    the number of planted groups of each data set in this profile (``reports.settings.planted_group_counts``;
    None: none)."""
    stats, paper, planted = cell_stats(runs), paper or {}, planted or {}
    records, verdicts = [], {}
    for claim in claims:
        unknown = [d for d in claim.planted_datasets if d not in planted]
        if unknown:
            raise ValueError(f"claims.yaml: claim {claim.id} is about the planted groups of {unknown[0]!r}, which is "
                             f"not a data set of params.yaml ({', '.join(sorted(planted)) or 'none given'})")
        p_hi, p_lo = _paper(claim.higher, paper), _paper(claim.lower, paper)
        record = {"id": claim.id, "claim": claim.says, "higher": describe(claim.higher),
                  "lower": describe(claim.lower),
                  "paper_diff": None if p_hi is None or p_lo is None else round(p_hi - p_lo, 3), "note": None}
        without = [d for d in claim.planted_datasets if planted[d] is None]
        hi, lo = _ours(claim.higher, stats, noise, planted), _ours(claim.lower, stats, noise, planted)
        if without:
            record.update(verdict="not applicable", note=f"{without[0]} has no planted groups in this profile's data")
        elif hi is None or lo is None:
            record["verdict"] = "not run"
        else:
            (m_hi, s_hi, n_hi), (m_lo, s_lo, n_lo) = hi, lo
            d = m_hi - m_lo
            se = math.sqrt((s_hi**2 / n_hi if n_hi else 0.0) + (s_lo**2 / n_lo if n_lo else 0.0))
            note = _premise_note(claim, verdicts)
            record.update(diff=round(d, 3), se=round(se, 3), n_higher=n_hi, n_lower=n_lo,
                          spread_higher=None if n_hi is None else round(s_hi, 3),
                          spread_lower=None if n_lo is None else round(s_lo, 3),
                          verdict="not applicable" if note else verdict(d, se, claim.compare), note=note)
        verdicts[claim.id] = record["verdict"]
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=CLAIM_COLUMNS)
    return frame.astype({"n_higher": "Int64", "n_lower": "Int64"})


def evaluate_file(claims_doc: Mapping[str, Any], runs: pd.DataFrame,
                  paper: Mapping[Cell, float | None] | None = None,
                  planted: Mapping[str, int | None] | None = None) -> tuple[pd.DataFrame, dict[str, Noise]]:
    """``evaluate`` with the noise measured on ``runs`` (``default_noise`` of ``claims_doc`` as the fallback)."""
    noise = noise_by_kind(runs, claims_doc.get("default_noise", {}))
    return evaluate(parse_claims(claims_doc), runs, noise, paper, planted), noise


def _count(n: Any) -> str:
    return "–" if pd.isna(n) else str(int(n))


def markdown(frame: pd.DataFrame, noise: Mapping[str, Noise], profile: str) -> str:
    body = []
    for r in frame.itertuples(index=False):
        paper = "–" if pd.isna(r.paper_diff) else f"{r.paper_diff:+.1f}"
        ours = "–" if pd.isna(r.diff) else (
            f"{r.diff:+.2f} ± {r.se:.2f} (runs {_count(r.n_higher)} vs {_count(r.n_lower)})")
        body.append([f"`{r.id}`", r.claim, paper, ours, r.verdict if pd.isna(r.note) else f"{r.verdict} ({r.note})"])
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

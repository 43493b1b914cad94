"""A profile's reference (``reference/<profile>.yaml``): recording it from built tables (``--write``), and checking
built tables against it. The numbers and rules are ``reports/check.py``'s; this module reads and writes the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentseg.reports.check import (
    broken_claims,
    out_of_tolerance,
    paper_expectations,
    record_reference,
    recorded_expectations,
    with_variants,
)
from latentseg.reports.claims import evaluate_file
from latentseg.reports.settings import planted_group_counts
from latentseg.reports.stats import read_runs
from latentseg.util.files import atomic_write_text
from latentseg.util.progress import UserError

HEADER = """\
# The {profile} profile's own results, recorded with
#   python stages/check.py --settings configs/reports.yaml --tables reports/tables/all.csv --reference reference \\
#       --write{vary_args}
# CI checks every new run against them. noise: the pooled within-cell std of each kind over the cells with >= 2
# values, over the recorded run{vary_text}, else claims.yaml's default_noise. tables: each cell's
# mean over its values in the recorded run and its variants (a run on another machine behaves like a variant),
# n its runs in one build, and its tolerance 3 * sigma * sqrt(2 / n), sigma the larger of its kind's and its own
# std over those values.
# claims_must_hold: the claims of claims.yaml whose verdict was `holds` when this was recorded{also}.
"""


class ReferenceCheck:
    """Built tables (``runs``: all.csv) of the profile of ``settings`` (configs/reports.yaml) against the reference
    in ``folder``, beside ``folder/claims.yaml``."""

    def __init__(self, settings: dict[str, Any], runs: pd.DataFrame, folder: Path) -> None:
        self.settings, self.runs, self.profile = settings, runs, settings["profile"]
        self.path, self.claims_path = folder / f"{self.profile}.yaml", folder / "claims.yaml"
        self.claims = yaml.safe_load(self.claims_path.read_text()) if self.claims_path.is_file() else None
        self.planted = planted_group_counts(settings)

    def record(self, vary: list[Path], hold_also: list[Path]) -> str:
        """Write the reference of the built tables, its tolerances from them and their variants (``vary``: other
        all.csv), its must-hold claims those that hold in each (and in each claims.csv of ``hold_also``)."""
        if self.profile == "paper":
            raise UserError(f"{self.path} holds the paper's numbers: --write records a profile's own results")
        if self.claims is None:
            raise UserError(f"{self.claims_path} is missing: it gives the claims to record and the default noise")
        variants = [read_runs(p) for p in vary]
        spread = with_variants(self.runs, variants)
        verdicts, _ = evaluate_file(self.claims, self.runs, planted=self.planted)
        doc = record_reference(self.runs, evaluate_file(self.claims, spread, planted=self.planted)[1], verdicts,
                               spread)
        frames = [evaluate_file(self.claims, v, planted=self.planted)[0] for v in variants]
        for frame in frames + [pd.read_csv(p) for p in hold_also]:  # hold_also: other data seeds' claims
            held = set(frame.loc[frame["verdict"] == "holds", "id"].astype(str))
            doc["claims_must_hold"] = [c for c in doc["claims_must_hold"] if c in held]
        vary_args = (" --vary" if vary else "") + "".join(f" \\\n#       {p}" for p in vary)
        header = HEADER.format(profile=self.profile, vary_args=vary_args,
                               vary_text=f" and its {len(vary)} variant(s)" if vary else "",
                               also="".join(f"\n#   and in {p}" for p in hold_also)
                               + (" and in every variant" if vary else ""))
        cells = {"noise": doc["noise"], "tables": doc["tables"]}  # one line per cell, one per claim
        atomic_write_text(self.path, header + yaml.safe_dump(cells, sort_keys=False, allow_unicode=True, width=120,
                                                             default_flow_style=None)
                          + yaml.safe_dump({"claims_must_hold": doc["claims_must_hold"]}, default_flow_style=False))
        return (f"wrote {self.path}: {sum(len(c) for r in doc['tables'].values() for c in r.values())} cells, "
                f"{len(doc['claims_must_hold'])} claims that must hold")

    def findings(self) -> tuple[list[str], str]:
        """Every cell out of tolerance and every must-hold claim that no longer holds, and the report's text."""
        if not self.path.is_file():
            message = f"no reference for profile {self.profile!r}: {self.path} is missing (record one with --write)"
            return [message], message + "\n"
        reference = yaml.safe_load(self.path.read_text())
        if "noise" in reference:  # a recorded reference: every built cell must be in it
            problems = out_of_tolerance(self.runs, recorded_expectations(reference), complete=True)
        else:  # the paper's numbers, in the layout's column order
            problems = out_of_tolerance(self.runs, paper_expectations(self.settings["tables"], reference))
        must_hold = reference.get("claims_must_hold") or []
        if must_hold and self.claims is None:
            problems.append(f"{len(must_hold)} claim(s) must hold, but {self.claims_path} is missing")
        elif must_hold:
            problems += broken_claims(evaluate_file(self.claims, self.runs, planted=self.planted)[0], must_hold)
        if problems:
            listed = "".join(f"- {p}\n" for p in problems)
            return problems, f"{len(problems)} problem(s) against {self.path}:\n{listed}"
        text = f"Every table cell is within tolerance of {self.path}"
        return [], text + (f", and all {len(must_hold)} claims that must hold still hold.\n" if must_hold else ".\n")

"""Stage `check`: every table cell against its reference within tolerance, and the claims that must hold; exits 1
naming each cell out of tolerance and each must-hold claim that no longer holds.

    python stages/check.py --settings configs/reports.yaml --tables reports/tables/all.csv --reference reference \
        [--report reports/tolerance.md]
    python stages/check.py ... --write [--vary B.csv ...] [--hold-also A.csv ...]

The paper profile is checked against the paper's numbers (`<reference>/paper.yaml`); the demo profile against the
committed record of the demo's own results (`<reference>/demo.yaml`: each cell's mean, a tolerance derived from the
measured seed spread, the claims that held). `--write` records a new one after a deliberate change: with `--vary`, the
tolerances come from the spread over the recorded run and variants of it (all.csv of the demo run again with other
COCO-pretraining and training seeds: what another machine's rounding does), and a claim must hold in every
variant too (`--hold-also` adds other claims.csv, such as other data seeds'), so that no must-hold claim rests on
one draw. The claims
come from `<reference>/claims.yaml`, evaluated on the same all.csv. With `--report` (as the pipeline runs it) the
findings are written to a file and the exit status stays 0, so that `dvc exp run` of a variant, whose numbers are
meant to differ, still completes; CI runs it without `--report`.
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
import sys
from pathlib import Path

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
from latentseg.reports.settings import load_reports, planted_group_counts
from latentseg.reports.stats import read_runs
from latentseg.util.files import atomic_write_text
from latentseg.util.progress import configure_logging

HEADER = """\
# The {profile} profile's own results, recorded with
#   python stages/check.py --settings configs/reports.yaml --tables reports/tables/all.csv --reference reference \\
#       --write{vary_args}
# CI checks every new run against them. noise: the pooled within-cell std of each kind over the cells with >= 2
# values, over the recorded run{vary_text}, else claims.yaml's default_noise. tables: each cell's
# mean over its n runs (of the recorded run) and its tolerance 3 * sigma * sqrt(2 / n), sigma the larger of its
# kind's and its own std over the runs and variants (a run on another machine behaves like a variant).
# claims_must_hold: the claims of claims.yaml whose verdict was `holds` when this was recorded{also}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--tables", type=Path, required=True, help="all.csv of the tables stage (every run)")
    parser.add_argument("--reference", type=Path, required=True,
                        help="folder holding <profile>.yaml and claims.yaml")
    parser.add_argument("--write", action="store_true", help="record the built tables as the profile's reference")
    parser.add_argument("--vary", type=Path, nargs="*", default=[], metavar="ALL_CSV",
                        help="with --write: all.csv of variants of the demo run (other COCO-pretraining and "
                             "training seeds): the tolerances cover their spread, and a must-hold claim holds in each")
    parser.add_argument("--hold-also", type=Path, nargs="*", default=[], metavar="CLAIMS_CSV",
                        help="with --write: must-hold claims are those that also hold in each of these claims.csv")
    parser.add_argument("--report", type=Path, help="write the findings here and exit 0")
    args = parser.parse_args()
    configure_logging()
    params = load_reports(args.settings)
    profile = params["profile"]
    runs = read_runs(args.tables)
    planted = planted_group_counts(params)
    claims_path = args.reference / "claims.yaml"
    claims_doc = yaml.safe_load(claims_path.read_text()) if claims_path.is_file() else None
    path = args.reference / f"{profile}.yaml"
    if args.write:
        if profile == "paper":
            sys.exit(f"{path} holds the paper's numbers: --write records a profile's own results, not the paper's")
        if claims_doc is None:
            sys.exit(f"{claims_path} is missing: it gives the claims to record and the default noise")
        variants = [read_runs(p) for p in args.vary]
        spread = with_variants(runs, variants)
        verdicts, _ = evaluate_file(claims_doc, runs, planted=planted)
        _, noise = evaluate_file(claims_doc, spread, planted=planted)
        doc = record_reference(runs, noise, verdicts, spread)
        held_each = [evaluate_file(claims_doc, v, planted=planted)[0] for v in variants]
        held_each += [pd.read_csv(other) for other in args.hold_also]  # the same claims on other data seeds' runs
        for frame in held_each:
            held = set(frame.loc[frame["verdict"] == "holds", "id"].astype(str))
            doc["claims_must_hold"] = [c for c in doc["claims_must_hold"] if c in held]
        also = "".join(f"\n#   and in {p}" for p in args.hold_also) + (" and in every variant" if variants else "")
        vary_args = "".join(f" \\\n#       --vary {p}" for p in args.vary)
        vary_text = f" and its {len(variants)} variant(s)" if variants else ""
        cells = {"noise": doc["noise"], "tables": doc["tables"]}  # one line per cell, one per claim
        text = (yaml.safe_dump(cells, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)
                + yaml.safe_dump({"claims_must_hold": doc["claims_must_hold"]}, default_flow_style=False))
        atomic_write_text(path, HEADER.format(profile=profile, also=also, vary_args=vary_args, vary_text=vary_text)
                          + text)
        print(f"wrote {path}: {sum(len(c) for r in doc['tables'].values() for c in r.values())} cells, "
              f"{len(doc['claims_must_hold'])} claims that must hold")
        return
    if not path.is_file():
        message = f"no reference for profile {profile!r}: {path} is missing (record one with --write)"
        if args.report is None:
            sys.exit(message)
        atomic_write_text(args.report, f"# Tolerance check ({profile} profile)\n\n{message}\n")
        print(message, file=sys.stderr)
        return
    reference = yaml.safe_load(path.read_text())
    if "noise" in reference:  # a recorded reference: every built cell must be in it
        problems = out_of_tolerance(runs, recorded_expectations(reference), complete=True)
    else:  # the paper's numbers, in the layout's column order
        problems = out_of_tolerance(runs, paper_expectations(params["tables"], reference))
    must_hold = reference.get("claims_must_hold") or []
    if must_hold and claims_doc is None:
        problems.append(f"{len(must_hold)} claim(s) must hold, but {claims_path} is missing")
    elif must_hold:
        problems += broken_claims(evaluate_file(claims_doc, runs, planted=planted)[0], must_hold)
    if problems:
        text = f"{len(problems)} problem(s) against {path}:\n" + "".join(f"- {p}\n" for p in problems)
    else:
        text = f"Every table cell is within tolerance of {path}"
        text += f", and all {len(must_hold)} claims that must hold still hold.\n" if must_hold else ".\n"
    if args.report is not None:
        atomic_write_text(args.report, f"# Tolerance check ({profile} profile)\n\n{text}")
    print(text, end="", file=sys.stderr if problems else sys.stdout)
    if problems and args.report is None:
        sys.exit(1)


if __name__ == "__main__":
    main()

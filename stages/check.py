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

from latentseg.reports.reference import ReferenceCheck
from latentseg.reports.settings import load_reports
from latentseg.reports.stats import read_runs
from latentseg.util.files import atomic_write_text
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--tables", type=Path, required=True, help="all.csv of the tables stage (every run)")
    parser.add_argument("--reference", type=Path, required=True,
                        help="folder holding <profile>.yaml and claims.yaml")
    parser.add_argument("--write", action="store_true", help="record the built tables as the profile's reference")
    parser.add_argument("--vary", type=Path, nargs="+", action="extend", default=[], metavar="ALL_CSV",
                        help="with --write: all.csv of variants of the demo run (other COCO-pretraining and "
                             "training seeds): the tolerances cover their spread, and a must-hold claim holds in each")
    parser.add_argument("--hold-also", type=Path, nargs="+", action="extend", default=[], metavar="CLAIMS_CSV",
                        help="with --write: must-hold claims are those that also hold in each of these claims.csv")
    parser.add_argument("--report", type=Path, help="write the findings here and exit 0")
    args = parser.parse_args()
    configure_logging()
    check = ReferenceCheck(load_reports(args.settings), read_runs(args.tables), args.reference)
    if args.write:
        print(check.record(args.vary, args.hold_also))
        return
    problems, text = check.findings()
    if args.report is not None:
        atomic_write_text(args.report, f"# Tolerance check ({check.profile} profile)\n\n{text}")
    print(text, end="", file=sys.stderr if problems else sys.stdout)
    if problems and args.report is None:
        sys.exit(1)


if __name__ == "__main__":
    main()

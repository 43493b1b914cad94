"""Stage `check`: every table cell against its reference, within tolerance; exits 1 naming each cell that is not.

The paper profile is checked against the paper's numbers; the demo profile against the committed reference of the
demo's own results (`--write` records a new one after a deliberate change). With `--report` (as the pipeline runs
it) the findings are written to a file and the exit status stays 0, so that `dvc exp run` of a variant, whose
numbers are meant to differ, still completes; CI runs it without `--report`.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from latentseg.data.layout import atomic_write_text
from latentseg.params import load_params
from latentseg.reports.check import out_of_tolerance, reference_from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", type=Path, required=True, help="all.csv of the tables stage")
    parser.add_argument("--reference", type=Path, required=True, help="folder holding <profile>.yaml")
    parser.add_argument("--write", action="store_true", help="record the built tables as the profile's reference")
    parser.add_argument("--report", type=Path, help="write the findings here and exit 0")
    args = parser.parse_args()
    profile = load_params()["profile"]
    long = pd.read_csv(args.tables, dtype={"row": str, "column": str}, keep_default_na=True)
    path = args.reference / f"{profile}.yaml"
    if args.write:
        # keep the tolerance of the reference being replaced; a first one starts at 3 mIoU points, 2 classes
        tolerance = yaml.safe_load(path.read_text())["tolerance"] if path.is_file() else {"miou": 3.0, "effective": 2}
        doc = {"tolerance": tolerance, "tables": reference_from(long)}
        atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        print(f"wrote {path}")
        return
    if not path.is_file():
        message = f"no reference for profile {profile!r}: {path} is missing (record one with --write)"
        if args.report is None:
            sys.exit(message)
        atomic_write_text(args.report, f"# Tolerance check ({profile} profile)\n\n{message}\n")
        print(message, file=sys.stderr)
        return
    reference = yaml.safe_load(path.read_text())
    problems = out_of_tolerance(long, reference["tables"], reference["tolerance"])
    if problems:
        text = f"{len(problems)} cell(s) out of tolerance against {path}:\n" + "".join(f"- {p}\n" for p in problems)
    else:
        text = f"Every table cell is within tolerance of {path}.\n"
    if args.report is not None:
        atomic_write_text(args.report, f"# Tolerance check ({profile} profile)\n\n{text}")
    print(text, end="", file=sys.stderr if problems else sys.stdout)
    if problems and args.report is None:
        sys.exit(1)


if __name__ == "__main__":
    main()

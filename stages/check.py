"""Stage `check`: every table cell against its reference, within tolerance; exits 1 naming each cell that is not.

The paper profile is checked against the paper's numbers; the demo profile against the committed reference of the
demo's own results (`--write` records a new one after a deliberate change).
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
    args = parser.parse_args()
    profile = load_params()["profile"]
    long = pd.read_csv(args.tables, dtype={"row": str, "column": str}, keep_default_na=True)
    long["source"] = long["source"].where(long["source"].notna(), None)
    path = args.reference / f"{profile}.yaml"
    if args.write:
        doc = {"tolerance": {"miou": 2.0, "effective": 1}, "tables": reference_from(long)}
        atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        print(f"wrote {path}")
        return
    if not path.is_file():
        sys.exit(f"no reference for profile {profile!r}: {path} is missing (record one with --write)")
    reference = yaml.safe_load(path.read_text())
    problems = out_of_tolerance(long, reference["tables"], reference["tolerance"])
    if problems:
        print(f"{len(problems)} cell(s) out of tolerance against {path}:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"every table cell is within tolerance of {path}")


if __name__ == "__main__":
    main()

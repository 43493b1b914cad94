"""Stage `claims`: the paper's claims (reference/claims.yaml) on the built tables, with a verdict each. Claims
about planted groups read the number of groups of this profile's data (configs/reports.yaml): none on real data.

    python stages/claims.py --settings configs/reports.yaml --tables reports/tables/all.csv \
        --claims reference/claims.yaml --paper reference/paper.yaml --md reports/claims.md --csv reports/claims.csv
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

import yaml

from latentseg.reports.claims import evaluate_file, write_claims
from latentseg.reports.settings import load_reports, planted_group_counts
from latentseg.reports.stats import read_runs
from latentseg.reports.tables import paper_by_cell
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--tables", type=Path, required=True, help="all.csv of the tables stage (every run)")
    parser.add_argument("--claims", type=Path, required=True, help="the claims (reference/claims.yaml)")
    parser.add_argument("--paper", type=Path, required=True, help="the paper's numbers (reference/paper.yaml)")
    parser.add_argument("--md", type=Path, required=True, help="the report to write (reports/claims.md)")
    parser.add_argument("--csv", type=Path, required=True, help="one row per claim (reports/claims.csv)")
    args = parser.parse_args()
    configure_logging()
    params = load_reports(args.settings)
    paper = paper_by_cell(params["tables"], yaml.safe_load(args.paper.read_text())["tables"])
    frame, noise = evaluate_file(yaml.safe_load(args.claims.read_text()), read_runs(args.tables), paper,
                                 planted_group_counts(params))
    write_claims(frame, noise, params["profile"], args.md, args.csv)


if __name__ == "__main__":
    main()

"""Stage `tables`: Tables 1-5 as Markdown and CSV, our numbers (mean ± spread over seeds) beside the paper's.

    python stages/tables.py --settings configs/reports.yaml --results results --paper reference/paper.yaml \
        --out reports/tables

Writes `<out>/table<N>.md` and `.csv` (one row per cell: mean, std, n, paper, diff, source) and `<out>/all.csv`
(one row per cell and run: table, row, column, source, run, value).
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

import pandas as pd
import yaml

from latentseg.reports.settings import load_reports
from latentseg.reports.stats import RUN_COLUMNS
from latentseg.reports.tables import results_reader, table_cells, table_runs, write_table
from latentseg.util.files import atomic_write_text
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--results", type=Path, required=True,
                        help="results folder: metrics/<dataset>/<exp>.json and classifiers/<id>.json")
    parser.add_argument("--paper", type=Path, required=True, help="the paper's numbers (reference/paper.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="folder for table<N>.md / .csv and all.csv")
    args = parser.parse_args()
    configure_logging()
    params = load_reports(args.settings)
    paper = yaml.safe_load(args.paper.read_text())["tables"]
    read = results_reader(args.results, params)
    every_run = []
    for name, layout in params["tables"].items():
        runs = table_runs(name, layout, read)
        cells = table_cells(name, layout, paper.get(name, {}), runs)
        write_table(cells, layout["title"], params["profile"], args.out / f"{name}.md", args.out / f"{name}.csv")
        every_run.append(runs)
    built = [runs for runs in every_run if not runs.empty]
    every = pd.concat(built) if built else pd.DataFrame(columns=RUN_COLUMNS)
    atomic_write_text(args.out / "all.csv", every.to_csv(index=False))


if __name__ == "__main__":
    main()

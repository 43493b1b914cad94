"""Stage `tables`: Tables 1-5 as Markdown and CSV, our numbers beside the paper's."""

import argparse
from pathlib import Path

import pandas as pd
import yaml

from latentseg.data.layout import atomic_write_text
from latentseg.params import load_params
from latentseg.reports.tables import long_table, metrics_reader, write_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, required=True, help="folder of run folders holding metrics.json")
    parser.add_argument("--paper", type=Path, required=True, help="the paper's numbers (reference/paper.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="folder for table<N>.md / .csv and all.csv")
    args = parser.parse_args()
    params = load_params()
    paper = yaml.safe_load(args.paper.read_text())["tables"]
    read = metrics_reader(args.runs)
    tables = []
    for name, layout in params["tables"].items():
        long = long_table(name, layout, paper.get(name, {}), read)
        write_table(long, layout["title"], params["profile"], args.out / f"{name}.md", args.out / f"{name}.csv")
        tables.append(long)
    atomic_write_text(args.out / "all.csv", pd.concat(tables).to_csv(index=False))


if __name__ == "__main__":
    main()

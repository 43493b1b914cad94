"""Stage `figures`: Figure 3 (heat maps of P(l|c), eq. 8, from the co-occurrence matrix M accumulated in training),
Figure 1 (`fig1_<dataset>.png`, from the arrays of stage `figure1`, where they exist) and, per table, the training
and validation curves of its experiments (`curves_<table>.png`). On data with planted groups (the demo's) Figure 3
orders and names its rows by group and Figure 1's legend lists classes under their groups
(latentseg/registry/planted.py)."""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
from pathlib import Path

from latentseg.reports.drawing import draw, figure_tasks
from latentseg.reports.settings import load_reports
from latentseg.run.outputs import Outputs
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--results", type=Path, required=True, help="results folder (latentseg/run/outputs.py)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    configure_logging()
    for path in draw(figure_tasks(load_reports(args.settings), Outputs(results=args.results), args.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

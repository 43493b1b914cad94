"""Stage `curves`: per table, the training losses and validation mIoU of its experiments over steps, per seed.

    python stages/curves.py --results results --out reports/figures

Writes `<out>/curves_<table>.png` for every table of params.yaml; reads the dvclive histories
`<results>/<exp>/live/seed-<n>/plots/metrics/{train/<term>,val/miou}.tsv` (missing ones are skipped).
"""

import argparse
from pathlib import Path

from latentseg.params import load_params
from latentseg.reports.curves import write_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="results folder: <exp>/live/seed-<n>/...")
    parser.add_argument("--out", type=Path, required=True, help="folder for curves_<table>.png")
    args = parser.parse_args()
    for path in write_curves(args.results, load_params()["tables"], args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Stage `figures`: Figure 3, heat maps of P(l|c) on the validation set."""

import argparse
from pathlib import Path

import pandas as pd

from latentseg.params import load_params
from latentseg.reports.figures import heatmap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, required=True, help="folder of run folders holding latent.csv")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    for name, run_id in params["figures"].items():
        frame = pd.read_csv(args.runs / run_id / "latent.csv", index_col=0)
        exp = params["experiments"][run_id]
        title = f"P(l|c), {exp['dataset']} {exp['fraction']}, k = {frame.shape[1]} ({run_id}, {params['profile']})"
        heatmap(frame.to_numpy(), list(frame.index), title, args.out / f"{name}.png")


if __name__ == "__main__":
    main()

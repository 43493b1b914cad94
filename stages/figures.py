"""Stage `figures`: Figure 3 (heat maps of P(l|c), eq. 8, from the co-occurrence matrix M accumulated in training),
Figure 1 (`fig1_<dataset>.png`, from the arrays of stage `figure1`, where they exist) and, per table, the training
and validation curves of its experiments (`curves_<table>.png`). On data with planted groups (the demo's) Figure 3
orders and names its rows by group and Figure 1's legend lists classes under their groups (latentseg/planted.py)."""

from latentseg.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/warm.py)

import argparse
import json
from pathlib import Path

import pandas as pd

from latentseg.outputs import Outputs
from latentseg.progress import configure_logging
from latentseg.reports.curves import write_curves
from latentseg.reports.figure1 import draw_figure1, read_arrays
from latentseg.reports.figures import heatmap
from latentseg.reports.settings import load_reports, metrics_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--results", type=Path, required=True, help="results folder (latentseg/outputs.py)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    configure_logging()
    params = load_reports(args.settings)
    out = Outputs(results=args.results)
    for name, exp_id in params["figures"].items():
        exp = params["experiments"][exp_id]
        label = next(iter(json.loads(metrics_file(out, params, exp_id).read_text())["runs"]))  # first seed
        latent_csv = out.latent_folder(exp["dataset"], exp_id) / f"{label}.csv"
        frame = pd.read_csv(latent_csv, index_col=0)
        title = (f"P(l|c), {exp['dataset']} {exp['fraction']}, k = {frame.shape[1]} ({exp_id}, {label}, "
                 f"{params['profile']} profile)")
        groups = params["planted_groups"][exp["dataset"]]
        if groups is not None and sorted(frame.index) != sorted(c for m in groups.values() for c in m):
            raise SystemExit(f"{latent_csv}: its classes are not those of {exp['dataset']}'s planted groups "
                             f"(latentseg/datasets/); re-run stage train@{exp['dataset']}")
        heatmap(frame.to_numpy(), list(frame.index), title, args.out / f"{name}.png", groups)
    for dataset, exp_id in params["figure1"]["runs"].items():
        arrays_file = out.figure1_file(dataset)
        if not arrays_file.is_file():
            print(f"figure 1 ({dataset}): {arrays_file} not found (stage figure1@{dataset}); skipped")
            continue
        arrays = read_arrays(arrays_file)
        exp = params["experiments"][exp_id]
        title = (f"Figure 1, {dataset} {exp['fraction']}: {exp_id} ({arrays['run']}, {params['profile']} profile), "
                 f"first {len(arrays['ids'])} validation images")
        path = draw_figure1(arrays, args.out / f"fig1_{dataset}.png", title, params["planted_groups"][dataset])
        print(f"wrote {path}")
    datasets = {e: x["dataset"] for e, x in params["experiments"].items()}
    for path in write_curves(out, datasets, params["tables"], args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

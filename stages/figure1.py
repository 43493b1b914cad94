"""Stage `figure1@<dataset>`: the arrays of Figure 1, the k = 20 run's semantic and latent-class maps on the first
validation images, for the figures stage to draw (it imports no torch).

    python stages/figure1.py voc --settings configs/reports.yaml --data data/prepared/voc --runs runs \
        --results results

The run is `params.yaml: figure1.runs.<dataset>`, its first seed (the first run of its metrics file: the run
Figure 3 shows); the images are the first `figure1.images` of the prepared `val.txt`. Writes
`<results>/figure1/<dataset>.npz` (keys: `latentseg/predict/figure1.py`).
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
import json
from pathlib import Path

from latentseg.predict.figure1 import figure1_arrays, write_npz
from latentseg.reports.settings import load_reports, metrics_file
from latentseg.run.outputs import Outputs
from latentseg.util.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="voc or cityscapes: a key of params.yaml figure1.runs")
    parser.add_argument("--settings", type=Path, required=True, help="configs/reports.yaml of stage resolve")
    parser.add_argument("--data", type=Path, required=True, help="the prepared data set")
    parser.add_argument("--runs", type=Path, required=True, help="root of every run's folder")
    parser.add_argument("--results", type=Path, required=True, help="root of the results")
    args = parser.parse_args()
    configure_logging()
    settings = load_reports(args.settings)
    section, out = settings["figure1"], Outputs(runs=args.runs, results=args.results)
    exp = section["runs"][args.dataset]
    metrics = metrics_file(out, settings, exp)
    if not metrics.is_file():
        raise SystemExit(f"{metrics} not found: run the training stage of {exp} (`dvc repro train@{args.dataset}`)")
    label = next(iter(json.loads(metrics.read_text())["runs"]))  # the first seed, as Figure 3 takes it
    seed = int(label.removeprefix("seed-"))
    checkpoint = out.run_folder(settings["experiments"][exp]["dataset"], exp, seed) / "checkpoint.pt"
    arrays = figure1_arrays(checkpoint, args.data, section["images"])
    path = write_npz(out.figure1_file(args.dataset), arrays)
    print(f"figure 1 ({args.dataset}): {exp} {label} on {len(arrays['ids'])} validation images -> {path}")


if __name__ == "__main__":
    main()

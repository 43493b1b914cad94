"""Stage `figure1@<dataset>`: the arrays of Figure 1, the k = 20 run's semantic and latent-class maps on the first
validation images, for the figures stage to draw (it imports no torch).

    python stages/figure1.py voc --data data/prepared/voc --runs runs --results results

The run is `params.yaml: figure1.runs.<dataset>`, its first seed (the first run of `results/<exp>/metrics.json`:
the run Figure 3 shows); the images are the first `figure1.images` of the prepared `val.txt`. Writes
`<results>/<exp>/figure1.npz` (keys: `latentseg/figure1_arrays.py`).
"""

from latentseg.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/warm.py)

import argparse
import json
from pathlib import Path

from latentseg.figure1_arrays import figure1_arrays, write_npz
from latentseg.params import load_params
from latentseg.progress import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="voc or cityscapes: a key of params.yaml figure1.runs")
    parser.add_argument("--data", type=Path, required=True, help="the prepared data set")
    parser.add_argument("--runs", type=Path, required=True, help="folder of every experiment's runs")
    parser.add_argument("--results", type=Path, required=True, help="folder of every experiment's results")
    args = parser.parse_args()
    configure_logging()
    section = load_params()["figure1"]
    exp = section["runs"][args.dataset]
    metrics = args.results / exp / "metrics.json"
    if not metrics.is_file():
        raise SystemExit(f"{metrics} not found: run the training stage of {exp} (`dvc repro train@{exp}`) first")
    label = next(iter(json.loads(metrics.read_text())["runs"]))  # the first seed, as Figure 3 takes it
    arrays = figure1_arrays(args.runs / exp / label / "checkpoint.pt", args.data, section["images"])
    path = write_npz(args.results / exp / "figure1.npz", arrays)
    print(f"figure 1 ({args.dataset}): {exp} {label} on {len(arrays['ids'])} validation images -> {path}")


if __name__ == "__main__":
    main()

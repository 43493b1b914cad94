"""Stage `train@<experiment>`: train one run of the registry, resuming from its checkpoint if it was killed."""

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

import yaml
from dvclive import Live

from latentseg.config import RunConfig, from_dict
from latentseg.data.layout import read_list, read_meta
from latentseg.data.splits import fraction_slug
from latentseg.train.trainer import TrainData, resume_step, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="resolved configuration (stage resolve)")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set")
    parser.add_argument("--splits", type=Path, required=True, help="split lists of the data set")
    parser.add_argument("--weights", type=Path, required=True, help="folder of initial weights (stage weights)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder for the training curves")
    args = parser.parse_args()
    doc = yaml.safe_load(args.config.read_text())
    exp = doc["experiment"]
    cfg = from_dict(RunConfig, doc["run"])
    init = args.weights / f"{exp['init']}.pt"
    if exp["init"] != "none" and not init.is_file():
        print(f"{init} does not exist: the {doc['profile']} profile starts '{exp['init']}' runs from random weights")
    split = args.splits / fraction_slug(exp["fraction"])
    cfg = replace(cfg, init_weights=str(init) if init.is_file() else "",
                  data=replace(cfg.data, root=str(args.data), labeled_list=str(split / "labeled.txt"),
                               unlabeled_list=str(split / "unlabeled.txt")))
    data = TrainData(args.data, read_meta(args.data), read_list(split / "labeled.txt"),
                     read_list(split / "unlabeled.txt"))
    resuming = resume_step(args.checkpoint, cfg) > 0
    if not resuming:
        shutil.rmtree(args.live, ignore_errors=True)  # curves of an older configuration
    with Live(str(args.live), dvcyaml=False, save_dvc_exp=False, resume=resuming, report=None) as live:
        def log(metrics: dict[str, float], step: int) -> None:
            live.step = step
            for name, value in metrics.items():
                live.log_metric(f"train/{name}", value)
            live.next_step()

        summary = train(cfg, args.checkpoint, data, log)
    print(f"{exp['id']}: {summary.steps_run} steps (from {summary.resumed_from}) in {summary.seconds:.1f} s, "
          f"{summary.images_per_second:.1f} images/s")


if __name__ == "__main__":
    main()

"""Stage `resolve`: write the resolved configuration of every experiment and classifier, one file each.

Training stages depend on their own file, so a parameter change re-runs exactly the runs whose configuration
it changes (`dvc exp run -S latent.k=10` leaves the runs with their own k, and Hung et al.'s runs, alone).
"""

import argparse
from pathlib import Path

import yaml

from latentseg.config import to_dict
from latentseg.data.layout import atomic_write_text
from latentseg.experiments import classifier_config, resolve
from latentseg.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder of <id>.yaml files")
    args = parser.parse_args()
    params = load_params()
    args.out.mkdir(parents=True, exist_ok=True)
    for exp_id in params["experiments"]:
        exp, cfg = resolve(params, exp_id)
        doc = {"experiment": exp.__dict__, "profile": params["profile"], "run": to_dict(cfg)}
        atomic_write_text(args.out / f"{exp_id}.yaml", yaml.safe_dump(doc, sort_keys=False))
    for cls_id, entry in params.get("classifiers", {}).items():
        exp, cfg = resolve(params, entry["run"])
        if entry.get("dataset") != exp.dataset:
            raise ValueError(f"classifiers.{cls_id}.dataset must be {exp.dataset!r}, the data set of {entry['run']}")
        doc = {"classifier": cls_id, "run_id": entry["run"], "experiment": exp.__dict__,
               "profile": params["profile"], "config": to_dict(classifier_config(params, entry["run"])),
               "data": to_dict(cfg.data)}
        atomic_write_text(args.out / f"classifier-{cls_id}.yaml", yaml.safe_dump(doc, sort_keys=False))


if __name__ == "__main__":
    main()

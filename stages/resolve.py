"""Stage `resolve`: the resolved configuration of every experiment, classifier and initialisation, one file each
(`configs/<dataset>/<experiment>.yaml`, `configs/<dataset>/classifiers/<id>.yaml`, `configs/weights.yaml`), and what the
report stages read (`configs/reports.yaml`: the table layouts, figures, experiments and planted groups).

Every later stage depends on its own files, so a parameter change re-runs only the stages whose configuration it
changes, and a training stage then trains only the runs whose file changed (`dvc exp run -S latent.k=10` leaves
the runs with their own k, and Hung et al.'s runs, alone). An experiment's file also holds the planted groups of
its data (`latentseg/registry/planted.py`; null on real data), from which the training stage scores how well its latent
classes recover them.
Every setting is checked first: on any problem it prints one line per problem (key, value, experiment, what is
wrong), writes nothing and exits with status 1.
"""

from latentseg.util.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/util/warm.py)

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from latentseg.config import to_dict
from latentseg.registry.experiments import check_all, report_settings, resolve, resolve_classifier, resolve_weights
from latentseg.registry.params import load_params
from latentseg.registry.planted import planted_groups
from latentseg.run.outputs import Outputs
from latentseg.util.files import atomic_write_text
from latentseg.util.progress import UserError, configure_logging


def write(path: Path, doc: dict) -> None:
    atomic_write_text(path, yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False))  # libyaml's: 10x faster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder of the resolved files (configs)")
    args = parser.parse_args()
    configure_logging()
    try:
        params = load_params()
        problems = check_all(params)
    except UserError as err:  # no parameter file, not YAML, or no such profile
        problems = [str(err)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"resolve: {len(problems)} problem(s) in params.yaml; nothing written", file=sys.stderr)
        sys.exit(1)
    out = Outputs(configs=args.out)
    for exp_id in params["experiments"]:
        exp, cfg = resolve(params, exp_id)
        # planted_groups: the groups of its data (the demo's stand-ins), for the recovery metric; null: real data
        write(out.experiment_config(exp.dataset, exp_id), {
            "experiment": {**asdict(exp), "seeds": list(exp.seeds)}, "profile": params["profile"],
            "run": to_dict(cfg), "planted_groups": planted_groups(params, exp.dataset)})
    for cls_id in params.get("classifiers") or {}:
        doc = {"profile": params["profile"], **resolve_classifier(params, cls_id)}
        write(out.classifier_config(doc["dataset"], cls_id), doc)
    write(args.out / "weights.yaml", resolve_weights(params))
    write(args.out / "reports.yaml", report_settings(params))


if __name__ == "__main__":
    main()

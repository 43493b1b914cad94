"""Stage `classifier@<id>`: Mittal et al.'s image classifier on one split (one per seed), and the runs it filters
evaluated with and without its filter: "Proposed + Classifier" (Table 1) and "s4GAN + MLMT" (Mittal et al.'s
rows). Writes `<results>/classifiers/<id>.json`: for each filtered experiment, every run's mIoU with and without
the filter.

A classifier is trained from the same settings, data and code only once: a re-run caused by a filtered run
(a new segmentation result) only evaluates again. The classifier sees the validation images as it was trained
(resized to its input size, ImageNet normalisation), once per seed; its verdicts then filter each run's logits.
"""

from latentseg.warm import hand_over

hand_over()  # run in `latentseg warm`'s pre-imported interpreter when one serves (latentseg/warm.py)

import argparse
from pathlib import Path

import yaml

from latentseg.classifier import (
    class_probabilities,
    classifier_identity,
    load_classifier,
    save_classifier,
    train_classifier,
)
from latentseg.config import ClassifierConfig, DataConfig, from_dict
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import TrainData
from latentseg.devices import resolve_device
from latentseg.evaluate import ClassFilter, evaluate, never_rejected
from latentseg.files import atomic_write_json
from latentseg.models.init import resolve_init
from latentseg.outputs import Outputs, run_label, summarise
from latentseg.progress import configure_logging
from latentseg.trained import load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("classifier", help="a classifier of params.yaml: classifiers")
    parser.add_argument("--configs", type=Path, required=True, help="the resolved configurations (stage resolve)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True, help="folder of initial weights (imagenet.pt)")
    parser.add_argument("--runs", type=Path, required=True, help="root of every run's and classifier's folder")
    parser.add_argument("--results", type=Path, required=True, help="root of the results")
    args = parser.parse_args()
    configure_logging()
    out = Outputs(configs=args.configs, runs=args.runs, results=args.results)
    doc = yaml.safe_load(out.classifier_config(args.classifier).read_text())
    cfg = from_dict(ClassifierConfig, doc["config"], "classifier.")
    data_cfg = from_dict(DataConfig, doc["data"], "data.")
    data = TrainData.of_split(args.data, args.splits, doc["fraction"])
    device = resolve_device("auto")
    init = resolve_init(args.weights, "imagenet")  # Mittal et al. start from ImageNet; None in the demo
    loader = eval_loader(args.data, data_cfg)
    keep = never_rejected(data.meta.classes, cfg.filter)
    filtered: dict[str, dict[str, dict]] = {exp: {} for exp in doc["filters"]}
    for seed in doc["seeds"]:
        label = run_label(seed)
        path = out.classifier_folder(args.classifier, seed) / "classifier.pt"
        identity = classifier_identity(cfg, data.meta, data.labeled, data.unlabeled, seed, init)
        classifier = load_classifier(path, identity)
        if classifier is None:
            classifier = train_classifier(cfg, data.root, data.meta, data.labeled, data.unlabeled, device, seed,
                                          init, workers=data_cfg.workers)
            save_classifier(classifier, path, identity)
        verdicts = ClassFilter(class_probabilities(classifier, data.root, args.data / "val.txt", device,
                                                   data_cfg.workers), cfg.threshold, cfg.filter, keep)
        for exp in doc["filters"]:
            checkpoint = out.run_folder(doc["dataset"], exp, seed) / "checkpoint.pt"
            if not checkpoint.is_file():
                continue  # that experiment has no run of this seed
            model, _, _ = load_trained(checkpoint)
            model.to(device)
            plain = evaluate(model, loader, data.meta.num_classes, device)
            kept = evaluate(model, loader, data.meta.num_classes, device, verdicts)
            filtered[exp][label] = {"miou": round(100 * kept.miou, 2), "miou_unfiltered": round(100 * plain.miou, 2)}
            print(f"classifier {doc['classifier']} {label} on {exp}: mIoU {100 * plain.miou:.2f} -> "
                  f"{100 * kept.miou:.2f}")
    for exp, per_run in filtered.items():
        if not per_run:
            raise FileNotFoundError(f"no run of {exp} under {args.runs / doc['dataset'] / exp}: run stage "
                                    f"train@{doc['dataset']} first")
    atomic_write_json(out.classifier_file(args.classifier), {
        "profile": doc["profile"], "classifier": args.classifier,
        "filtered": {exp: summarise(per_run) for exp, per_run in filtered.items()}})


if __name__ == "__main__":
    main()

"""Stage `classifier@<id>`: train Mittal et al.'s image classifier on a run's split and evaluate that run with
the classifier filtering its predictions (Table 1, "Proposed + Classifier")."""

import argparse
import json
from pathlib import Path

import yaml

from latentseg.classifier import save_classifier, train_classifier
from latentseg.config import ClassifierConfig, DataConfig, from_dict
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import atomic_write_text, read_list, read_meta
from latentseg.data.splits import fraction_slug
from latentseg.evaluate import evaluate
from latentseg.train import checkpoint as ckpt
from latentseg.train.trainer import load_trained, resolve_device
from latentseg.weights import resolve_init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="resolved classifier configuration")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True, help="folder of initial weights (imagenet.pt)")
    parser.add_argument("--run", type=Path, required=True, help="checkpoint of the segmentation run to filter")
    parser.add_argument("--model", type=Path, required=True, help="classifier file to write")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args()
    doc = yaml.safe_load(args.config.read_text())
    cfg = from_dict(ClassifierConfig, doc["config"], "classifier.")
    data_cfg = from_dict(DataConfig, doc["data"], "data.")
    meta = read_meta(args.data)
    split = args.splits / fraction_slug(doc["experiment"]["fraction"])
    model, run_cfg, _ = load_trained(args.run)
    device = resolve_device(run_cfg.runtime.device)
    init_file = resolve_init(args.weights, "imagenet")  # None where the profile makes none (the demo)
    init = None
    if init_file is not None:  # the trunk of the ImageNet initialisation (Mittal et al. start from ImageNet)
        state = ckpt.load(init_file)["model"]
        init = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    classifier = train_classifier(cfg, args.data, read_list(split / "labeled.txt"), read_list(split / "unlabeled.txt"),
                                  meta.num_classes, device, doc["experiment"]["seed"], init)
    save_classifier(classifier, args.model, cfg)
    loader = eval_loader(args.data, data_cfg)
    plain = evaluate(model.to(device), loader, meta.num_classes, device)
    filtered = evaluate(model, loader, meta.num_classes, device, classifier=classifier, threshold=cfg.threshold)
    metrics = {"miou": round(100 * filtered.miou, 2), "miou_unfiltered": round(100 * plain.miou, 2)}
    atomic_write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
    print(f"classifier {doc['classifier']}: mIoU {metrics['miou_unfiltered']:.2f} -> {metrics['miou']:.2f}")


if __name__ == "__main__":
    main()

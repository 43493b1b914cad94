"""Does the latent branch recover planted supercategories, and what does the full method buy over cross-entropy?

On the embedded VOC-like data set (1/8 labeled), whose 21 classes fall into 5 planted groups (background, vehicle,
animal, person, indoor: colour tells groups apart, a faint texture the classes inside a group):

(a) the full method with k = 5 latent classes; P(l|c) on the validation set; the adjusted Rand index between the
    grouping "class -> dominant latent class" and the planted groups (1 = the groups exactly);
(b) the full method (k = 20, the paper's default) against the cross-entropy-only baseline, same seed and split.

Run: python benchmarks/latent_recovery.py [--iterations N] [--seeds 1234 ...]
Prints its figures and the machine; takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from latentseg.bench import cpu_model
from latentseg.data.classes import group_index
from latentseg.data.dataset import SegmentationDataset, eval_transform
from latentseg.data.layout import TrainData, read_list
from latentseg.data.splits import split_labeled
from latentseg.datasets.voc import PLANTED_GROUPS as VOC_PLANTED_GROUPS
from latentseg.datasets.voc import VOC_CLASSES
from latentseg.evaluate import adjusted_rand_index, dominant_latent_class, evaluate
from latentseg.experiments import deep_merge
from latentseg.methods import run_config
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.train.trainer import train
from latentseg.trained import load_trained

BASE = {
    "model": {"backbone": "tiny", "freeze_bn_stats": False, "discriminator_width": 16},
    "data": {"crop_size": [48, 48], "workers": 0, "eval_pad": None, "scale_range": [0.8, 1.2]},
    "optim": {"batch_size": 8, "lr": 0.025},
    "runtime": {"device": "cpu", "log_every": 50, "checkpoint_every": 100000},
}
CE_ONLY = {"loss": {"latent": False, "consistency": False, "adversarial": "none"}}


def run(name: str, overrides: dict, data: TrainData, work: Path) -> tuple[float, list[int] | None, float]:
    cfg = run_config(deep_merge(BASE, overrides))
    t0 = time.perf_counter()
    train(cfg, work / f"{name}.pt", data)
    model, _, _ = load_trained(work / f"{name}.pt")
    val = SegmentationDataset(data.root, data.root / "val.txt", eval_transform(cfg.data))
    result = evaluate(model, DataLoader(val, batch_size=25), data.meta.num_classes, torch.device("cpu"))
    p = result.p_latent_given_class
    return 100 * result.miou, None if p is None else dominant_latent_class(p), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234])
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    planted = group_index(VOC_CLASSES, VOC_PLANTED_GROUPS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "voc"
        meta = generate(SyntheticSpec("voc", 500, 100, (64, 64), seed=0), root)
        labeled, unlabeled = split_labeled(read_list(root / "train.txt"), "1/8", 0)
        data = TrainData(root, meta, labeled, unlabeled)
        print(f"data: {len(labeled)} labeled, {len(unlabeled)} unlabeled, {meta.num_val} val; "
              f"{args.iterations} iterations, batch 8+8")
        for seed in args.seeds:
            common = {"optim": {"iterations": args.iterations, "seed": seed}}
            miou5, groups, secs = run(f"k5-{seed}", deep_merge(common, {"latent": {"k": 5}}), data, Path(tmp))
            ari = adjusted_rand_index(groups, planted)
            print(f"(a) seed {seed}: k=5 grouping {groups}")
            print(f"    adjusted Rand index vs planted groups: {ari:.3f}  (mIoU {miou5:.1f}, {secs:.0f} s)")
            full, _, s_full = run(f"full-{seed}", common, data, Path(tmp))
            ce, _, s_ce = run(f"ce-{seed}", deep_merge(common, CE_ONLY), data, Path(tmp))
            print(f"(b) seed {seed}: full method (k=20) mIoU {full:.1f} ({s_full:.0f} s) vs cross-entropy only "
                  f"{ce:.1f} ({s_ce:.0f} s): {full - ce:+.1f}")


if __name__ == "__main__":
    main()

"""Small fixtures shared by the tests: an embedded data set and a shrunken run configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentseg.config import RunConfig, from_dict
from latentseg.data.layout import read_list
from latentseg.data.splits import split_labeled
from latentseg.experiments import deep_merge
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.train.trainer import TrainData

TINY: dict[str, Any] = {
    "model": {"backbone": "tiny", "freeze_bn_stats": False, "discriminator_width": 8},
    "data": {"crop_size": [32, 32], "workers": 0, "eval_pad": None, "scale_range": [0.8, 1.2]},
    "optim": {"iterations": 6, "batch_size": 4, "lr": 0.01},
    "latent": {"k": 5},
    "self_training": {"semi_start": 2},
    "runtime": {"device": "cpu", "log_every": 1, "checkpoint_every": 3},
}


def tiny_config(**overrides: Any) -> RunConfig:
    return from_dict(RunConfig, deep_merge(TINY, overrides))


def tiny_data(root: Path, name: str = "voc", num_train: int = 40, fraction: str = "1/4") -> TrainData:
    size = (40, 40) if name == "voc" else (32, 64)
    meta = generate(SyntheticSpec(name, num_train, 8, size, seed=3), root)
    labeled, unlabeled = split_labeled(read_list(root / "train.txt"), fraction, 0)
    return TrainData(root, meta, labeled, unlabeled)

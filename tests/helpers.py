"""Small fixtures shared by the tests: an embedded data set and a shrunken run configuration.

Configurations start from the repository's ``params.yaml`` (the one home of every default) and shrink it, as a
test of the pipeline would: the values under test are the ones the pipeline uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentseg.config import DataConfig, RunConfig, from_dict
from latentseg.data.layout import TrainData, read_list
from latentseg.data.splits import split_labeled
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.registry.experiments import deep_merge, defaults, typed_run
from latentseg.registry.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")

TINY: dict[str, Any] = {
    "model": {"backbone": "tiny", "freeze_bn_stats": False},
    "data": {"crop_size": [32, 32], "workers": 0, "in_memory": False, "eval_pad": None, "random_scale": True,
             "scale_range": [0.8, 1.2], "mirror": True},
    "optim": {"iterations": 6, "batch_size": 4, "lr": 0.01, "seed": 1234},
    "latent": {"k": 5},
    "discriminator": {"width": 8},
    "runtime": {"device": "cpu", "log_every": 1, "checkpoint_every": 3, "eval_every": 0, "parallel_runs": 1,
                "threads": None},
}


TINY_METHODS: dict[str, dict[str, Any]] = {"hung": {"hung": {"semi_start": 2}}, "s4gan": {}, "unimatch": {}}


def tiny_tree(**overrides: Any) -> dict[str, Any]:
    """The run sections of ``params.yaml`` shrunk by ``TINY``, with the layer of the objective's method
    (``methods.hung`` / ``methods.s4gan`` of ``params.yaml``) where ``overrides`` pick one, then ``overrides``."""
    tree = deep_merge(defaults(PARAMS), TINY)
    objective = overrides.get("objective", "latent")
    if objective != "latent":
        tree = deep_merge(deep_merge(tree, PARAMS["methods"][objective]), TINY_METHODS[objective])
    tree = deep_merge(tree, overrides)
    tree.pop("classifier")
    return tree


def tiny_config(fraction: str = "1/4", dataset: str = "voc", init: str = "none", **overrides: Any) -> RunConfig:
    return typed_run(tiny_tree(**overrides), dataset, init, fraction)


def tiny_data(root: Path, name: str = "voc", num_train: int = 40, fraction: str = "1/4") -> TrainData:
    size = (40, 40) if name == "voc" else (32, 64)
    meta = generate(SyntheticSpec(name, num_train, 8, size, seed=3), root)
    labeled, unlabeled = split_labeled(read_list(root / "train.txt"), fraction, 0)
    return TrainData(root, meta, labeled, unlabeled)


def data_config(**overrides: Any) -> DataConfig:
    """The tiny configuration's data section with ``overrides``."""
    return from_dict(DataConfig, {**tiny_tree()["data"], **overrides}, "data.")

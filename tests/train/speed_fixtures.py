"""Shrunken runs for the speed and distributed tests: a tiny network on a few synthetic VOC images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latentseg.config import RunConfig
from latentseg.data.layout import TrainData, read_list, read_meta
from latentseg.datasets.voc import VOC_CLASSES
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.train.step import Batch, Networks, build_networks, build_objective
from tests.helpers import tiny_config as base_config

CLASSES = list(VOC_CLASSES)
NUM_CLASSES = len(CLASSES)


@pytest.fixture
def one_thread():
    """One CPU thread for the test. The tensors here are tiny, so a second thread gains nothing, and a parallel
    region waits for every thread: on a machine whose other core is busy, two threads make these tests 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The paper's method (every loss, frozen batch-norm statistics) on a tiny trunk and 32x32 crops.
SPEED: dict = {
    "model": {"freeze_bn_stats": True}, "data": {"scale_range": [0.75, 1.25]},
    "optim": {"iterations": 3, "batch_size": 3, "lr": 1e-3}, "latent": {"k": 4},
    "discriminator": {"lr": 1e-3}, "runtime": {"log_every": 3, "checkpoint_every": 1000},
}


def tiny_config(**changes) -> RunConfig:
    """``SPEED`` with ``changes`` (sections as mappings, or ``objective``) merged in."""
    from latentseg.registry.experiments import deep_merge

    if changes.get("objective") == "hung":
        changes = deep_merge({"hung": {"semi_start": 0}}, changes)  # its self-training from the first step
    return base_config(**deep_merge(SPEED, changes))


def make_data(root: Path) -> TrainData:
    generate(SyntheticSpec("voc", num_train=20, num_val=1, size=(40, 40), seed=0), root)
    train = read_list(root / "train.txt")
    return TrainData(root, read_meta(root), train[:8], train[8:])


def calibrated_init(cfg: RunConfig, data: TrainData, path: Path) -> Path:
    """Initial weights for ``cfg``: seeded, with frozen batch-norm statistics those of the training images.

    Random weights with the default statistics give losses in the millions (nothing normalises the activations),
    where a comparison of runs says little; pretrained weights bring sensible statistics, and so does this.
    """
    from latentseg.bench.profiles import calibrate_batch_norm
    from latentseg.data.augment import train_transform
    from latentseg.data.dataset import SegmentationDataset
    from latentseg.models.init import save_init

    torch.manual_seed(cfg.optim.seed)
    model, _ = build_networks(cfg, NUM_CLASSES)
    images = SegmentationDataset(data.root, data.labeled + data.unlabeled, train_transform(cfg.data))
    calibrate_batch_norm(model, torch.stack([images[(i, i)][0] for i in range(len(images))]))
    return save_init(model.state_dict(), path, [], cfg.model.backbone, "calibrated random weights")


def step_and_batch(cfg: RunConfig, n: int = 2, size: int = 32, seed: int = 0) -> tuple[Networks, Batch]:
    """A step module built as the trainer builds it (seeded), and a random batch with ignored pixels."""
    torch.manual_seed(cfg.optim.seed)
    model, disc = build_networks(cfg, NUM_CLASSES)
    step = Networks(cfg, model, disc, build_objective(cfg, CLASSES, num_labeled=50))
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, NUM_CLASSES, (n, size, size), generator=g)
    mask[:, :2] = 255
    batch = Batch(torch.randn(n, 3, size, size, generator=g) * 50, mask,
                  torch.randn(n, 3, size, size, generator=g) * 50)
    return step.train(), batch

"""Acceptance of the method on the embedded data: the latent branch recovers the planted supercategories."""

import pytest
import torch
from torch.utils.data import DataLoader

from latentseg.data.augment import eval_transform
from latentseg.data.classes import group_index
from latentseg.data.dataset import SegmentationDataset
from latentseg.data.layout import TrainData, read_list
from latentseg.data.splits import split_labeled
from latentseg.datasets.voc import PLANTED_GROUPS as VOC_PLANTED_GROUPS
from latentseg.datasets.voc import VOC_CLASSES
from latentseg.evaluate import adjusted_rand_index, dominant_latent_class, evaluate, normalise_rows
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.train.checkpoint import load_trained
from latentseg.train.trainer import train
from tests.helpers import tiny_config
from tests.train.speed_fixtures import one_thread  # noqa: F401  (a fixture)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")  # two threads on a machine whose other core is busy: 10x slower
def test_learned_latent_classes_recover_the_planted_groups(tmp_path):
    root = tmp_path / "voc"
    meta = generate(SyntheticSpec("voc", 400, 60, (64, 64), seed=0), root)
    labeled, unlabeled = split_labeled(read_list(root / "train.txt"), "1/8", 0)
    k = len(VOC_PLANTED_GROUPS)
    cfg = tiny_config(discriminator={"width": 16}, data={"crop_size": [48, 48]},
                      optim={"iterations": 300, "batch_size": 8, "lr": 0.025}, latent={"k": k},
                      runtime={"log_every": 100, "checkpoint_every": 1000})
    train(cfg, tmp_path / "run.pt", TrainData(root, meta, labeled, unlabeled))
    model, _, state = load_trained(tmp_path / "run.pt")
    val = SegmentationDataset(root, root / "val.txt", eval_transform(cfg.data))
    result = evaluate(model, DataLoader(val, batch_size=20), meta.num_classes, torch.device("cpu"))
    planted = group_index(VOC_CLASSES, VOC_PLANTED_GROUPS)
    # P(l|c) as eq. (8) defines it (the co-occurrence matrix M of training), and as the validation set estimates it
    for name, p_lc in (("M", normalise_rows(state["networks"]["objective.cooccurrence.matrix"])),
                       ("validation", result.p_latent_given_class)):
        learned = dominant_latent_class(p_lc)
        ari = adjusted_rand_index(learned, planted)
        print(f"{name}: learned grouping {learned}, adjusted Rand index {ari:.3f}")
        assert ari >= 0.8, name

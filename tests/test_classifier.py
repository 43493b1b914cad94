"""Mittal et al.'s image classifier (MLMT) against their train_mlmt.py: the network and its initial weights, the
teacher, the consistency term and its ramp, the schedule, whole-image labels, training and reuse."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import latentseg.classifier as mlmt
from latentseg.classifier import (
    ClassifierImages,
    ImageClassifier,
    classifier_identity,
    consistency_loss,
    consistency_weight,
    cosine_lr,
    ema_decay,
    ema_update,
    epoch_batches,
    image_labels,
    imagenet_trunk,
    load_classifier,
    load_trunk,
    plain_view,
    save_classifier,
    strong_view,
    train_classifier,
)
from latentseg.config import ClassifierConfig, from_dict
from latentseg.data.layout import Sample
from latentseg.registry.experiments import deep_merge
from latentseg.weights.published import convert_published
from tests.helpers import PARAMS, tiny_data


def config(**overrides) -> ClassifierConfig:
    return from_dict(ClassifierConfig, deep_merge(PARAMS["classifier"], overrides), "classifier.")


TINY = {"backbone": "tiny", "epochs": 2, "steps_per_epoch": 2, "batch_size_labeled": 2, "batch_size_unlabeled": 3,
        "burn_in_epochs": 0, "input_size": 48}


def test_the_paper_profile_is_their_recipe():
    cfg = config()
    assert (cfg.backbone, cfg.epochs, cfg.steps_per_epoch) == ("resnet101", 100, None)
    assert (cfg.batch_size_labeled, cfg.batch_size_unlabeled, cfg.input_size) == (16, 80, 320)
    assert (cfg.lr, cfg.lr_min, cfg.momentum, cfg.nesterov, cfg.weight_decay) == (3e-2, 1e-4, 0.9, True, 1e-5)
    assert (cfg.ema, cfg.w_cons, cfg.burn_in_epochs) == (0.999, 1.0, 10)
    assert (cfg.color_jitter, cfg.blur_sigma, cfg.threshold, cfg.filter) == ((0.4, 0.4, 0.4, 0.1), (0.1, 2.0), 0.2,
                                                                             "zero_logits")


def _random_bn_statistics(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))


def test_torchvision_resnet101_through_the_weights_stage_gives_the_same_logits(tmp_path):
    """torchvision's resnet101 with a 21-way fc, converted by the weights stage (which folds our input convention
    into conv1 and bn1) and loaded into the classifier (which undoes it): the same logits on the same input."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet101(num_classes=21)
    with torch.no_grad():
        _random_bn_statistics(reference, 1)
    path = convert_published(reference.state_dict(), "torchvision_resnet", tmp_path / "imagenet.pt",
                             origin="torchvision_resnet101: a random stand-in")
    ours = ImageClassifier(21, "resnet101", 64)
    load_trunk(ours, imagenet_trunk(path), str(path))
    ours.net.fc.load_state_dict(reference.fc.state_dict())  # the stage's file holds no fc: the classifier's own
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = reference.eval()(x), ours.eval()(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    with pytest.raises(KeyError, match=str(path)) as err:  # a trunk of another network: every mismatch named
        load_trunk(ImageClassifier(21, "resnet18", 64), imagenet_trunk(path), str(path))
    assert "unexpected tensor layer1.2.conv1.weight" in str(err.value) and "more" in str(err.value)


def test_an_initial_weights_file_of_another_origin_is_refused(tmp_path):
    path = tmp_path / "coco.pt"
    torch.save({"format": "latentseg-init", "model": {}, "classes": [], "backbone": "resnet101",
                "origin": "pretrain_coco: 10 iterations"}, path)
    with pytest.raises(ValueError, match="torchvision's ImageNet"):
        imagenet_trunk(path)


def test_teacher_decay_sequence_and_buffers_are_not_copied():
    assert [ema_decay(s, 0.999) for s in range(1, 5)] == pytest.approx([1 / 2, 2 / 3, 3 / 4, 4 / 5])
    assert ema_decay(998, 0.999) == pytest.approx(1 - 1 / 999) and ema_decay(998, 0.999) < 0.999
    assert ema_decay(999, 0.999) == ema_decay(10**6, 0.999) == 0.999
    student, teacher = ImageClassifier(3, "tiny", 32), ImageClassifier(3, "tiny", 32)
    with torch.no_grad():
        for p in teacher.parameters():
            p.fill_(2.0)
        for p in student.parameters():
            p.fill_(1.0)
        teacher.net.bn1.running_mean.fill_(5.0)
        student.net.bn1.running_mean.fill_(7.0)
    ema_update(teacher, student, 0.75)
    assert all(torch.allclose(p, torch.full_like(p, 0.75 * 2 + 0.25 * 1)) for p in teacher.parameters())
    assert torch.equal(teacher.net.bn1.running_mean, torch.full((16,), 5.0))  # its own statistics


def test_consistency_loss_is_their_cosine_embedding_loss():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 21, generator=g, requires_grad=True), torch.randn(5, 21, generator=g)
    teacher.requires_grad_(True)
    explicit = torch.stack([1 - (s @ t) / (s.norm() * t.norm()) for s, t in zip(student, teacher, strict=True)])
    loss = consistency_loss(student, teacher)
    assert loss.item() == pytest.approx(explicit.mean().item(), rel=1e-6)
    loss.backward()
    assert student.grad is not None and teacher.grad is None  # the teacher's logits are a fixed target


def test_consistency_ramp_and_cosine_schedule():
    cfg = config()  # 100 epochs, burn-in 10, --w-cons 1
    ramp = {e: consistency_weight(cfg, e) for e in (0, 9, 10, 11, 35, 59, 60, 99)}
    assert ramp == pytest.approx({0: 0, 9: 0, 10: 0, 11: 0.02, 35: 0.5, 59: 0.98, 60: 1.0, 99: 1.0})
    assert consistency_weight(config(epochs=50), 20) == pytest.approx(10 * 2 / 50)  # their num_epochs, not 100
    optim = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=cfg.epochs, eta_min=cfg.lr_min)
    for epoch in range(cfg.epochs):  # their scheduler.step() after each epoch: constant within one
        assert cosine_lr(cfg, epoch) == pytest.approx(optim.param_groups[0]["lr"], rel=1e-9)
        optim.step()
        scheduler.step()


def test_epoch_batches_are_a_shuffled_loader_and_restart_when_exhausted():
    one = epoch_batches(10, 4, 0, 0, 3, None)
    assert [len(b) for b in one] == [4, 4, 2] and sorted(i for b in one for i, _ in b) == list(range(10))
    assert one == epoch_batches(10, 4, 0, 0, 3, None) != epoch_batches(10, 4, 0, 0, 4, None)
    seven = epoch_batches(10, 4, 0, 0, 3, 7)  # three of this permutation, three of the next, one more
    assert seven[:3] == one and [len(b) for b in seven] == [4, 4, 2, 4, 4, 2, 4]
    assert len({d for b in seven for _, d in b}) == 24  # every draw its own augmentation seed


def _write_sample(root: Path, name: str, mask: np.ndarray) -> Sample:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)).save(root / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8), "L").save(root / f"{name}_mask.png")
    return Sample(f"{name}.png", f"{name}_mask.png")


def test_labels_are_the_classes_of_the_whole_image(tmp_path):
    mask = np.full((60, 80), 7)
    mask[:30] = 255
    mask[59, 79] = 3  # one pixel in a corner: a 48x48 crop or a nearest-neighbour resize could miss it
    sample = _write_sample(tmp_path, "a", mask)
    view, labels = ClassifierImages(tmp_path, [sample], [plain_view(48)], num_classes=21)[(0, 5)]
    assert view.shape == (3, 48, 48) and view.dtype == torch.float32  # the whole image, resized
    assert labels.tolist() == [1.0 if c in (3, 7) else 0.0 for c in range(21)]  # 255 is no class
    assert image_labels(torch.tensor([[255, 255]]), 3).tolist() == [0.0, 0.0, 0.0]
    unlabeled = ClassifierImages(tmp_path, [sample], [plain_view(48), strong_view(config(input_size=48))])
    plain, strong, empty = unlabeled[(0, 5)]
    assert plain.shape == strong.shape == (3, 48, 48) and empty.numel() == 0  # unlabeled: no mask read
    again = unlabeled[(0, 5)]
    assert torch.equal(again[1], strong)  # the draws are the seed's
    assert not torch.equal(plain, strong)


def test_training_steps_move_the_student_and_a_saved_classifier_needs_its_identity(tmp_path, monkeypatch):
    data = tiny_data(tmp_path / "d", num_train=12)
    cfg = config(**TINY)
    seen: list[tuple[float, dict, dict]] = []
    update = mlmt.ema_update

    def spy(teacher, student, decay):
        seen.append((decay, {k: v.clone() for k, v in student.state_dict().items()}, {}))
        update(teacher, student, decay)
        seen[-1][2].update({k: v.clone() for k, v in teacher.state_dict().items()})

    monkeypatch.setattr(mlmt, "ema_update", spy)
    teacher = train_classifier(cfg, data.root, data.meta, data.labeled, data.unlabeled, torch.device("cpu"), 0)
    torch.manual_seed(0)
    start = ImageClassifier(data.meta.num_classes, "tiny", 48).state_dict()  # the student as it was built
    assert [d for d, _, _ in seen] == pytest.approx([1 / 2, 2 / 3, 3 / 4, 4 / 5])
    assert not torch.equal(seen[0][1]["net.fc.weight"], start["net.fc.weight"])  # one step moved the student
    assert torch.equal(teacher.state_dict()["net.fc.weight"], seen[-1][2]["net.fc.weight"])  # the teacher comes back
    stats = "net.bn1.running_mean"
    assert not torch.equal(seen[-1][2][stats], seen[-1][1][stats])  # its statistics are its own
    assert math.isfinite(float(teacher.eval()(torch.zeros(1, 3, 48, 48)).sum()))

    identity = classifier_identity(cfg, data.meta, data.labeled, data.unlabeled, 0, None)
    save_classifier(teacher, tmp_path / "c.pt", identity)
    loaded = load_classifier(tmp_path / "c.pt").eval()
    x = torch.randn(2, 3, 48, 48)
    assert loaded.input_size == 48 and torch.allclose(loaded(x), teacher.eval()(x))
    assert load_classifier(tmp_path / "c.pt", identity) is not None
    for other in (classifier_identity(cfg, data.meta, data.labeled, data.unlabeled, 1, None),
                  classifier_identity(config(**TINY, lr=0.1), data.meta, data.labeled, data.unlabeled, 0, None),
                  classifier_identity(cfg, data.meta, data.labeled[1:], data.unlabeled, 0, None)):
        assert load_classifier(tmp_path / "c.pt", other) is None  # another seed, setting or split: trained anew
    assert load_classifier(tmp_path / "missing.pt", identity) is None

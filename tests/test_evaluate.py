import pytest
import torch

from latentseg.evaluate import (
    adjusted_rand_index,
    confusion_matrix,
    effective_latent_classes,
    filter_by_classifier,
    iou_per_class,
    mean_iou,
    normalise_rows,
)


def test_confusion_matrix_and_miou_ignore_255():
    target = torch.tensor([[0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    iou = iou_per_class(conf)
    assert iou.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean_iou(conf) == pytest.approx((1 / 3 + 2 / 3) / 3)


def test_class_absent_everywhere_is_not_averaged():
    conf = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 4)
    assert torch.isnan(iou_per_class(conf)[2:]).all()
    assert mean_iou(conf) == 1.0


def test_effective_latent_classes_counts_columns_above_threshold():
    p = torch.tensor([[0.95, 0.05, 0.0], [0.5, 0.45, 0.05], [0.0, 0.02, 0.98]])
    assert effective_latent_classes(p, 0.1) == 2 + 1  # columns 0, 1 (0.45) and 2
    assert effective_latent_classes(p, 0.9) == 2
    assert normalise_rows(torch.tensor([[2.0, 2.0], [0.0, 0.0]])).tolist() == [[0.5, 0.5], [0.0, 0.0]]


def test_classifier_filter_removes_rejected_classes_but_not_background():
    prob = torch.tensor([0.1, 0.6, 0.3]).view(1, 3, 1, 1)
    kept = filter_by_classifier(prob, torch.tensor([[0.0, 0.1, 0.9]]), 0.2)
    assert kept.argmax(1).item() == 2  # class 1 is rejected by the classifier
    only_bg = filter_by_classifier(prob, torch.tensor([[0.0, 0.0, 0.0]]), 0.2)
    assert only_bg.argmax(1).item() == 0


def test_adjusted_rand_index():
    assert adjusted_rand_index([0, 0, 1, 1], [7, 7, 3, 3]) == 1.0
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(0.2424, abs=1e-4)

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from latentseg.evaluate import (
    ClassFilter,
    adjusted_rand_index,
    confusion_matrix,
    effective_latent_classes,
    evaluate,
    filter_by_classifier,
    iou_per_class,
    mean_iou,
    never_rejected,
    normalise_rows,
    recovery_ari,
    recovery_metrics,
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


def test_zero_logits_filter_lets_a_rejected_class_win_where_every_kept_logit_is_negative():
    """Mittal et al.'s evaluate.py multiplies a rejected class's logit map by 0 before the argmax: where every kept
    class has a negative logit, the rejected class's 0 is the largest. ``remove`` takes it out instead."""
    logits = torch.tensor([[-1.0, 2.0], [-2.0, 1.0], [-0.5, 0.5]]).view(1, 3, 1, 2)  # pixel 0: all negative
    prob = torch.tensor([[0.9, 0.1, 0.9]])  # class 1 rejected
    assert filter_by_classifier(logits, prob, 0.2, "zero_logits").argmax(1).tolist() == [[[1, 0]]]
    assert filter_by_classifier(logits, prob, 0.2, "remove").argmax(1).tolist() == [[[2, 0]]]
    # background is gated like any class; "remove" keeps the classes of `keep` (background, never_rejected)
    bg_rejected = torch.tensor([[0.1, 0.9, 0.9]])
    positive = torch.tensor([3.0, 1.0, 2.0]).view(1, 3, 1, 1)
    assert filter_by_classifier(positive, bg_rejected, 0.2, "zero_logits").argmax(1).item() == 2
    assert filter_by_classifier(positive, bg_rejected, 0.2, "remove", keep=(0,)).argmax(1).item() == 0
    # two rejected classes tie at 0: the first wins, as np.argmax; a probability of exactly 0.2 is kept (>= 0.2)
    negative = torch.tensor([-1.0, -3.0, -2.0]).view(1, 3, 1, 1)
    assert filter_by_classifier(negative, torch.tensor([[0.2, 0.1, 0.1]]), 0.2, "zero_logits").argmax(1).item() == 1
    assert never_rejected(["background", "cat"], "remove") == (0,) and never_rejected(["road"], "remove") == ()
    assert never_rejected(["background", "cat"], "zero_logits") == ()


def test_zero_logits_filter_is_their_numpy_loop():
    """evaluate.py: ``mlmt_preds[mlmt_preds >= 0.2] = 1``, ``< 0.2`` = 0, ``output[i] *= mlmt_preds[index][i]`` for
    every class, then ``np.argmax`` over the classes."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 21, 7, 9, generator=g) - 1.0
    prob = torch.rand(3, 21, generator=g)
    theirs = []
    for index in range(3):
        gates = prob.numpy().astype(float).copy()
        gates[gates >= 0.2] = 1
        gates[gates < 0.2] = 0
        output = logits[index].numpy().copy()
        for i in range(21):
            output[i] = output[i] * gates[index][i]
        theirs.append(np.argmax(output.transpose(1, 2, 0), axis=2))
    ours = filter_by_classifier(logits, prob, 0.2, "zero_logits").argmax(1).numpy()
    np.testing.assert_array_equal(ours, np.stack(theirs))


class _Fixed(torch.nn.Module):
    """A stand-in segmentation network: the same logits for every image, at the image's size."""

    latent_head = None

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, image, with_latent=False):
        return SimpleNamespace(semantic=self.logits.expand(image.shape[0], -1, *image.shape[-2:]), latent=None)


def test_evaluate_filters_each_image_by_its_own_row():
    logits = torch.tensor([1.0, 3.0, 2.0]).view(1, 3, 1, 1)  # class 1 everywhere, unfiltered
    images = [(torch.zeros(3, 2, 2), torch.full((2, 2), c), i) for i, c in enumerate([1, 2, 1])]
    loader = DataLoader(images, batch_size=2)  # rows 0, 1 in the first batch, row 2 in the second
    verdicts = ClassFilter(torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]), 0.2, "zero_logits", ())
    plain = evaluate(_Fixed(logits), loader, 3, torch.device("cpu"))
    kept = evaluate(_Fixed(logits), loader, 3, torch.device("cpu"), verdicts)
    assert plain.confusion[:, 1].sum() == 12 and kept.miou == 1.0  # image 1 lost class 1 and became class 2


def test_adjusted_rand_index():
    assert adjusted_rand_index([0, 0, 1, 1], [7, 7, 3, 3]) == 1.0  # the same partition, other names
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(0.2424, abs=1e-4)
    assert adjusted_rand_index([0] * 6, [0, 0, 1, 1, 2, 3]) == 0.0  # one cluster against several groups
    # by hand: contingency {(0,0): 2, (1,1): 1, (1,2): 1}: index 1, rows 1 + 1, columns 1, pairs 6: expected 1/3,
    # maximum 3/2, so (1 - 1/3) / (3/2 - 1/3) = 4/7; symmetric in its arguments
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx(4 / 7)
    # crossed: no pair together in both; expected 2/3, maximum 2: (0 - 2/3) / (2 - 2/3) = -1/2 (below chance)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="one per item"):
        adjusted_rand_index([0, 1], [0])


GROUPS = {"background": ["bg"], "vehicle": ["car", "bus"], "animal": ["cat", "dog", "cow"]}
CLASSES = ["bg", "car", "cat", "bus", "dog", "cow"]


def test_recovery_ari_of_the_planted_groups():
    k = 10
    healthy = torch.zeros(len(CLASSES), k)
    for c, latent in enumerate([7, 2, 5, 2, 5, 5]):  # each group its own latent class, other names
        healthy[c, latent] = 0.85
        healthy[c, (latent + 1) % k] = 0.15
    assert recovery_ari(healthy, CLASSES, GROUPS) == 1.0
    collapsed = torch.zeros(len(CLASSES), k)
    collapsed[:, 3] = 1.0
    assert recovery_ari(collapsed, CLASSES, GROUPS) == 0.0
    merged = healthy.clone()
    merged[0] = merged[1]  # background with the vehicles: rows {bg, car, bus} {cat, dog, cow} against 3 groups
    assert recovery_ari(merged, CLASSES, GROUPS) == pytest.approx(
        adjusted_rand_index([0, 0, 1, 0, 1, 1], [0, 1, 2, 1, 2, 2]))
    unseen = healthy.clone()
    unseen[0] = 0.0  # never seen in training: no most probable latent class, left out of both partitions
    assert recovery_ari(unseen, CLASSES, GROUPS) == 1.0
    with pytest.raises(ValueError, match="cover the classes"):
        recovery_ari(healthy, CLASSES, {"all": ["bg", "car"]})


def test_recovery_metrics_are_null_without_planted_groups():
    p = torch.eye(len(CLASSES), 4).roll(1, 1)
    assert recovery_metrics(p, p, CLASSES, None) == {"recovery_ari": None, "recovery_ari_val": None}
    assert recovery_metrics(None, None, CLASSES, GROUPS) == {}  # no latent branch: no metric
    assert set(recovery_metrics(p, None, CLASSES, GROUPS)) == {"recovery_ari"}

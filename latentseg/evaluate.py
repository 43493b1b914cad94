"""Evaluation: confusion-matrix mIoU, ``P(l|c)`` on the validation set, effective latent classes, and
Mittal et al.'s classifier filter.

mIoU here is the standard one: IoU averaged over every class that occurs in the ground truth or the prediction
(AdvSemiSeg's script averages only classes with a non-zero true-positive count, which reads higher when a class
is never predicted correctly). Pixels labeled 255 are ignored, including the padding of VOC's 505x505 protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from latentseg.config import FilterMode
from latentseg.data.classes import group_index
from latentseg.losses import joint_counts
from latentseg.models.deeplab import DeepLabV2, upsample
from latentseg.util.progress import progress


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(C, C) counts, rows = ground truth, columns = prediction (``torch.bincount``)."""
    valid = target != ignore_index
    index = num_classes * target[valid].long() + pred[valid].long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(confusion: Tensor) -> Tensor:
    """IoU of each class; NaN for a class absent from both ground truth and prediction."""
    conf = confusion.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(confusion: Tensor) -> float:
    return float(iou_per_class(confusion).nanmean())


def effective_latent_classes(p_latent_given_class: Tensor, threshold: float) -> int:
    """Number of latent classes ``l`` with ``P(l|c) > threshold`` for at least one class ``c`` (Table 4)."""
    return int((p_latent_given_class > threshold).any(0).sum())


def normalise_rows(joint: Tensor) -> Tensor:
    """``P(l|c)`` from co-occurrence counts (eq. 8, or the validation set's); rows of classes never seen stay
    all zero, so that they count no latent class as effective."""
    rows = joint.sum(1, keepdim=True)
    return torch.where(rows > 0, joint / rows.clamp_min(1e-12), torch.zeros_like(joint))


def filter_by_classifier(logits: Tensor, class_prob: Tensor, threshold: float, mode: FilterMode,
                         keep: tuple[int, ...] = ()) -> Tensor:
    """The scores whose argmax is the filtered prediction: "Proposed + Classifier", "s4GAN + MLMT".

    ``logits`` (N, C, H, W) of the segmentation, ``class_prob`` (N, C) the image classifier's sigmoid outputs; a
    class is rejected when its probability is below ``threshold`` (compared in float32). ``zero_logits``, Mittal et
    al.'s ``evaluate.py --with-mlmt``: a rejected class's logit map is multiplied by 0, background like any class;
    where every kept class has a negative logit, a rejected class (its 0) wins, the first one on a tie, as
    ``np.argmax``. ``remove``: rejected classes leave the argmax. ``keep``: classes never rejected.
    """
    rejected = class_prob.float() < threshold
    if keep:
        rejected[:, list(keep)] = False
    if mode == "zero_logits":
        return logits * (~rejected).to(logits.dtype)[:, :, None, None]
    if mode == "remove":
        return logits.masked_fill(rejected[:, :, None, None], float("-inf"))
    raise ValueError(f"unknown classifier filter {mode!r}; choose zero_logits or remove (classifier.filter)")


def never_rejected(classes: list[str], mode: FilterMode) -> tuple[int, ...]:
    """``keep`` of a data set's classes: "remove" never takes background out (nothing else would remain where the
    classifier rejects every class); "zero_logits" gates background like any class, as their code does."""
    return tuple(i for i, c in enumerate(classes) if c == "background") if mode == "remove" else ()


@dataclass(frozen=True)
class ClassFilter:
    """An image classifier's verdicts on a validation set, for ``evaluate``."""

    probabilities: Tensor  # (N, C): row i for sample i of the loader's data set (its ``index``)
    threshold: float
    mode: FilterMode
    keep: tuple[int, ...]


@dataclass
class EvalResult:
    confusion: Tensor  # (C, C)
    latent_joint: Tensor | None  # (C, k) sum of latent probabilities per ground-truth class, or None

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)

    @property
    def iou(self) -> Tensor:
        return iou_per_class(self.confusion)

    @property
    def p_latent_given_class(self) -> Tensor | None:
        return None if self.latent_joint is None else normalise_rows(self.latent_joint)


@torch.no_grad()
def evaluate(model: DeepLabV2, loader: DataLoader, num_classes: int, device: torch.device,
             class_filter: ClassFilter | None = None, autocast: bool = False) -> EvalResult:
    """Predict every validation image with the semantic branch (and the latent branch for ``P(l|c)``), filtered
    by an image classifier's verdicts when ``class_filter`` is given."""
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    joint = None
    for image, mask, index in progress(loader, len(loader), "evaluation", unit="batches"):
        image, mask = image.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(image, with_latent=model.latent_head is not None)
        size = tuple(image.shape[-2:])
        logits = upsample(out.semantic, size).float()
        if class_filter is None:
            pred = logits.softmax(1).argmax(1)
        else:
            pred = filter_by_classifier(logits, class_filter.probabilities[index].to(device), class_filter.threshold,
                                        class_filter.mode, class_filter.keep).argmax(1)
        confusion += confusion_matrix(pred, mask, num_classes)
        if out.latent is not None:
            lat_prob = upsample(out.latent, size).float().softmax(1)
            counts, _ = joint_counts(lat_prob, mask, num_classes, 255)
            joint = counts if joint is None else joint + counts
    return EvalResult(confusion.cpu(), None if joint is None else joint.cpu())


def run_metrics(result: EvalResult, classes: list[str], steps: int,
                p_latent_given_class: Tensor | None = None) -> dict[str, float]:
    """The metrics of one run: mIoU and per-class IoU in %, and effective latent classes at t = 0.1 and 0.9.

    ``p_latent_given_class`` is eq. (8)'s P(l|c), from the co-occurrence matrix M accumulated in training (what
    Table 4 and Figure 3 report); the same counts from the validation set's estimate are ``effective_val_*``.
    """
    metrics: dict[str, float] = {"miou": round(100 * result.miou, 2), "steps": steps}
    metrics.update({f"iou/{c}": round(100 * float(v), 2) for c, v in zip(classes, result.iou, strict=True)
                    if not torch.isnan(v)})
    for t in (0.1, 0.9):
        if p_latent_given_class is not None:
            metrics[f"effective_t{t}"] = effective_latent_classes(p_latent_given_class, t)
        if result.p_latent_given_class is not None:
            metrics[f"effective_val_t{t}"] = effective_latent_classes(result.p_latent_given_class, t)
    return metrics


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def adjusted_rand_index(labels_a: list[int], labels_b: list[int]) -> float:
    """Adjusted Rand index of two partitions of the same items (Hubert & Arabie, 1985), from their contingency
    table ``n_ij``: ``(index - expected) / (maximum - expected)`` with ``index = sum_ij C(n_ij, 2)``,
    ``expected = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(n, 2)`` and ``maximum = (sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2``
    (``a_i``, ``b_j`` the row and column sums). 1: the same partition; 0: no more agreement than chance, as one
    cluster against several groups. Where the two are equal (both partitions trivial) the partitions agree: 1."""
    if len(labels_a) != len(labels_b):
        raise ValueError(f"adjusted_rand_index: {len(labels_a)} labels against {len(labels_b)}; one per item each")
    cells: dict[tuple[int, int], int] = {}
    rows: dict[int, int] = {}
    cols: dict[int, int] = {}
    for a, b in zip(labels_a, labels_b, strict=True):
        cells[(a, b)] = cells.get((a, b), 0) + 1
        rows[a] = rows.get(a, 0) + 1
        cols[b] = cols.get(b, 0) + 1
    index = sum(_pairs(n) for n in cells.values())
    row_pairs, col_pairs = sum(_pairs(n) for n in rows.values()), sum(_pairs(n) for n in cols.values())
    total = _pairs(len(labels_a))
    expected = row_pairs * col_pairs / total if total else 0.0
    maximum = (row_pairs + col_pairs) / 2
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)


def dominant_latent_class(p_latent_given_class: Tensor) -> list[int]:
    """For each semantic class, its most probable latent class (the grouping the latent branch learned)."""
    return p_latent_given_class.argmax(1).tolist()


def recovery_ari(p_latent_given_class: Tensor, classes: list[str], planted_groups: dict[str, list[str]]) -> float:
    """How well the latent classes recover the planted groups: the adjusted Rand index of the partition of the
    semantic classes by their most probable latent class, argmax_l P(l|c), against the planted partition.

    A class never seen (an all-zero row of P(l|c)) has no most probable latent class and is left out of both."""
    planted = group_index(classes, planted_groups)
    seen = (p_latent_given_class.sum(1) > 0).tolist()
    learned = dominant_latent_class(p_latent_given_class)
    return adjusted_rand_index([g for g, s in zip(learned, seen, strict=True) if s],
                               [g for g, s in zip(planted, seen, strict=True) if s])


def recovery_metrics(p_latent: Tensor | None, p_latent_val: Tensor | None, classes: list[str],
                     planted_groups: dict[str, list[str]] | None) -> dict[str, float | None]:
    """``recovery_ari`` (P(l|c) of eq. 8, as Table 4) and ``recovery_ari_val`` (the validation set's) of a run with
    a latent branch, 4 decimals; ``None`` where the data has no planted groups (real data: not applicable)."""
    out: dict[str, float | None] = {}
    for name, p in (("recovery_ari", p_latent), ("recovery_ari_val", p_latent_val)):
        if p is not None:
            out[name] = None if planted_groups is None else round(recovery_ari(p, classes, planted_groups), 4)
    return out

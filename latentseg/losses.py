"""Every loss of the paper, one pure function per equation (numbers as in section 3 / METHOD.md).

Shapes: ``N`` images, ``C`` semantic classes, ``k`` latent classes, ``H x W`` pixels. Probabilities are softmax
outputs; ``target`` holds class indices with ``ignore_index`` (255) for unlabeled pixels, which contribute nothing
anywhere. Losses are computed in float32 whatever the autocast dtype, since they take logs of small numbers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-12


def joint_counts(latent_prob: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, Tensor]:
    """``sum_{n,h,w} Y^(c) S_l^(l)`` as a ``(C, k)`` matrix, and the number of valid pixels (a tensor).

    Written without boolean indexing so that it never waits on the device (no host synchronisation).
    """
    k = latent_prob.shape[1]
    flat = latent_prob.float().permute(0, 2, 3, 1).reshape(-1, k)
    labels = target.reshape(-1).long()
    valid = labels != ignore_index
    flat = flat * valid.unsqueeze(1)
    joint = flat.new_zeros(num_classes, k).index_add(0, torch.where(valid, labels, 0), flat)
    return joint, valid.sum()


def _masked_ce(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Cross-entropy averaged over valid pixels; 0 (not NaN) when there is none, without a host sync."""
    total = F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp_min(1)


def cross_entropy_loss(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Eq. (1): ``L_ce = -sum_{n,h,w} sum_c Y^(h,w,c) log S_c(X_n)^(h,w,c)``, averaged over valid pixels.

    ``logits`` (N, C, H, W) at the target's resolution; ``target`` (N, H, W).
    """
    return _masked_ce(logits, target, ignore_index)


def adversarial_loss(d_logits: Tensor, valid: Tensor | None = None) -> Tensor:
    """Eq. (2): ``L_adv = -sum_{n,h,w} log D(S_c(X_n))^(h,w)``, averaged over (valid) pixels.

    ``d_logits`` (N, 1, H, W) are the discriminator's logits on the prediction; ``valid`` (N, H, W) masks
    ignored pixels of labeled images (None: every pixel, as for unlabeled images).
    """
    return _bce_to(d_logits, 1.0, valid)


def discriminator_loss(d_logits_pred: Tensor, d_logits_gt: Tensor, valid_pred: Tensor | None = None,
                       valid_gt: Tensor | None = None) -> Tensor:
    """Eq. (10): ``L_D = -sum_{h,w} (1-y) log(1 - D(S_c(X))) + y log D(Y)``; y=0 on predictions, y=1 on
    one-hot ground truth. Each half is averaged over its valid pixels, then the halves are added."""
    return _bce_to(d_logits_pred, 0.0, valid_pred) + _bce_to(d_logits_gt, 1.0, valid_gt)


def _bce_to(d_logits: Tensor, label: float, valid: Tensor | None) -> Tensor:
    logits = d_logits.float().squeeze(1)
    losses = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="none")
    if valid is None:
        return losses.mean()
    valid = valid.to(losses.dtype)
    return (losses * valid).sum() / valid.sum().clamp_min(1.0)


def latent_loss(latent_prob: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Eqs. (3)-(5): the conditional entropy ``H(C|L)`` of the batch.

    (4) ``P_b(c,l) = 1/(NHW) sum_{n,h,w} S_l(X_n)^(h,w,l) Y_n^(h,w,c)`` (NHW = valid pixels),
    (5) ``P_b(c|l) = P_b(c,l) / sum_c' P_b(c',l)``,
    (3) ``L_latent = -sum_l sum_c P_b(c,l) log P_b(c|l)``.

    ``latent_prob`` (N, k, H, W) is the latent softmax, ``target`` (N, H, W). The gradient reaches the latent
    branch through both ``P_b(c,l)`` and ``P_b(c|l)``; it is computed on this batch alone.
    """
    joint, count = joint_counts(latent_prob, target, num_classes, ignore_index)
    joint = joint / count.clamp_min(1)  # a batch without a valid pixel gives joint = 0 and loss = 0
    cond = joint / joint.sum(0, keepdim=True).clamp_min(EPS)
    return -(joint * cond.clamp_min(EPS).log()).sum()


class CoOccurrence(nn.Module):
    """Eqs. (7)-(8): the moving co-occurrence of semantic and latent classes, and ``P(l|c)`` from it.

    (7) ``M^i_{c,l} = (1-a) M^{i-1}_{c,l} + a sum_{n,h,w} Y_n^(h,w,c) S_l(X_n)^(h,w,l)``, ``M^0 = 0``;
    (8) ``P(l|c) = M_{c,l} / sum_k M_{c,k}``.

    ``alpha`` is batch size / number of labeled images. ``M`` is a persistent buffer (saved in checkpoints)
    and never carries a gradient. Under ``torch.distributed`` the batch counts are summed over ranks, so every
    rank holds the same matrix (``alpha`` is then the global batch over the labeled set).
    """

    matrix: Tensor

    def __init__(self, num_classes: int, num_latent: int, alpha: float, ignore_index: int = 255) -> None:
        super().__init__()
        if not 0 < alpha <= 1:
            raise ValueError(f"co-occurrence momentum alpha must lie in (0, 1], got {alpha}")
        self.num_classes, self.num_latent, self.alpha, self.ignore_index = num_classes, num_latent, alpha, ignore_index
        self.register_buffer("matrix", torch.zeros(num_classes, num_latent))

    @torch.no_grad()
    def update(self, latent_prob: Tensor, target: Tensor) -> None:
        counts, _ = joint_counts(latent_prob.detach(), target, self.num_classes, self.ignore_index)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        self.matrix.mul_(1 - self.alpha).add_(counts, alpha=self.alpha)

    def p_latent_given_class(self) -> Tensor:
        """``P(l|c)`` as a (C, k) matrix; a class never seen yet gets the uniform distribution."""
        rows = self.matrix.sum(1, keepdim=True)
        uniform = torch.full_like(self.matrix, 1.0 / self.num_latent)
        return torch.where(rows > 0, self.matrix / rows.clamp_min(EPS), uniform)


def semantic_to_latent(semantic_prob: Tensor, p_latent_given_class: Tensor) -> Tensor:
    """Eq. (6): ``S_l^c(X)^(h,w,l) = sum_c P(l|c) S_c(X)^(h,w,c)``; (N, C, H, W) -> (N, k, H, W)."""
    return torch.einsum("nchw,cl->nlhw", semantic_prob.float(), p_latent_given_class.float())


def consistency_loss(latent_prob: Tensor, semantic_prob: Tensor, p_latent_given_class: Tensor) -> Tensor:
    """Eqs. (6) and (9): ``L_cons = -1/(NHW) sum_{n,h,w} sum_l S_l(X_n)^(h,w,l) log S_l^c(X_n)^(h,w,l)``.

    The latent prediction is the target and is detached (the latent branch learns from labeled data only);
    ``P(l|c)`` carries no gradient; the loss trains the semantic branch. All pixels count (unlabeled images).
    """
    mapped = semantic_to_latent(semantic_prob, p_latent_given_class.detach())
    target = latent_prob.detach().float()
    return -(target * mapped.clamp_min(EPS).log()).sum(1).mean()


def symmetric_kl_loss(prob_a: Tensor, prob_b: Tensor) -> Tensor:
    """Table 5's "symmetric KL" consistency: ``KL(a||b) + KL(b||a)`` per pixel, averaged; both get gradients."""
    a, b = prob_a.float().clamp_min(EPS), prob_b.float().clamp_min(EPS)
    return ((a - b) * (a.log() - b.log())).sum(1).mean()


def self_training_loss(logits: Tensor, d_logits: Tensor, threshold: float) -> Tensor:
    """Hung et al.'s semi-supervised term: cross-entropy against the argmax where ``sigmoid(D) >= threshold``.

    ``logits`` (N, C, H, W), ``d_logits`` (N, 1, H, W) on the same unlabeled images; zero if no pixel passes.
    """
    with torch.no_grad():
        pseudo = logits.argmax(1)
        pseudo[torch.sigmoid(d_logits.float().squeeze(1)) < threshold] = 255
    return _masked_ce(logits, pseudo, 255)


def one_hot_map(target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(N, H, W) labels -> (N, C, H, W) one-hot maps (the discriminator's "real" input); ignored pixels all 0."""
    valid = target != ignore_index
    onehot = F.one_hot(torch.where(valid, target, 0).long(), num_classes).permute(0, 3, 1, 2).float()
    return onehot * valid.unsqueeze(1)


def labeled_total(ce: Tensor, latent: Tensor, adv: Tensor, lambda_latent: float = 1.0,
                  lambda_adv: float = 0.01) -> Tensor:
    """Eq. (11): ``L_labeled = L_ce + L_latent + 0.01 L_adv``."""
    return ce + lambda_latent * latent + lambda_adv * adv


def unlabeled_total(cons: Tensor, adv: Tensor, lambda_cons: float = 1.0, lambda_adv: float = 0.01) -> Tensor:
    """Eq. (12): ``L_unlabeled = L_cons + 0.01 L_adv``."""
    return lambda_cons * cons + lambda_adv * adv


def total_loss(labeled: Tensor, unlabeled: Tensor, lambda_unlabeled: float = 0.1) -> Tensor:
    """Eqs. (11)+(12) combined: ``L = L_labeled + 0.1 L_unlabeled``."""
    return labeled + lambda_unlabeled * unlabeled

"""Every loss of the paper, one pure function per equation (numbers as in section 3 / METHOD.md).

Shapes: ``N`` images, ``C`` semantic classes, ``k`` latent classes, ``H x W`` pixels. Probabilities are softmax
outputs; ``target`` holds class indices with ``ignore_index`` (255) for unlabeled pixels, which contribute nothing
anywhere. Losses are computed in float32 whatever the autocast dtype, since they take logs of small numbers.

Every loss is a statistic of the whole batch. When a distributed run splits the batch over processes, the losses
take a ``SplitBatch`` (``split``) and compute the same statistic as one process holding the whole batch would.
None of them waits on the device (no ``.item()``, boolean indexing or ``nonzero``): the step never synchronises.

The losses of the s4GAN baseline (Mittal et al., Tables 1-2) close the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-12


@dataclass(frozen=True)
class SplitBatch:
    """The batch of one iteration split over the ``world`` processes of a distributed run (one slice each).

    ``sum`` adds a tensor over the processes, with a gradient when the tensor has one. A mean over the batch is
    written ``world * local_sum / global_count``: DistributedDataParallel averages the processes' gradients, and
    that average is then exactly the gradient of the whole batch's mean, however the pixels fall on the ranks.
    """

    world: int
    group: dist.ProcessGroup | None = None

    @staticmethod
    def current() -> SplitBatch | None:
        """The split of the running process group, or None on a single process."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return SplitBatch(dist.get_world_size())
        return None

    def sum(self, x: Tensor) -> Tensor:
        if x.requires_grad:  # the backward all-reduces the gradient, so every slice gets its share
            return dist_fn.all_reduce(x, group=self.group)
        x = x.clone()
        dist.all_reduce(x, group=self.group)
        return x

    def gather(self, x: Tensor) -> Tensor:
        """``x`` of every process, concatenated along dim 0 (no gradient; every process passes the same shape)."""
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts)


def batch_mean(total: Tensor, count: Tensor, split: SplitBatch | None = None) -> Tensor:
    """``total / count`` over the whole batch (0, not NaN, when ``count`` is 0); see ``SplitBatch``."""
    count = count.float()
    if split is None:
        return total / count.clamp_min(1)
    return total * split.world / split.sum(count.detach()).clamp_min(1)


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


def _masked_ce(logits: Tensor, target: Tensor, ignore_index: int, split: SplitBatch | None) -> Tensor:
    """Cross-entropy averaged over valid pixels; 0 (not NaN) when there is none, without a host sync."""
    total = F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index, reduction="sum")
    return batch_mean(total, (target != ignore_index).sum(), split)


def cross_entropy_loss(logits: Tensor, target: Tensor, ignore_index: int = 255,
                       split: SplitBatch | None = None) -> Tensor:
    """Eq. (1): ``L_ce = -sum_{n,h,w} sum_c Y^(h,w,c) log S_c(X_n)^(h,w,c)``, averaged over valid pixels.

    ``logits`` (N, C, H, W) at the target's resolution; ``target`` (N, H, W).
    """
    return _masked_ce(logits, target, ignore_index, split)


def ohem_cross_entropy_loss(logits: Tensor, target: Tensor, threshold: float, min_kept: int,
                            ignore_index: int = 255, split: SplitBatch | None = None) -> Tensor:
    """Eq. (1) over the batch's hard pixels: online hard example mining (Shrivastava et al., CVPR 2016) in the
    probability form of UniMatch's Cityscapes labeled loss (``util/ohem.py:28-57``, ``ProbOhemCrossEntropy2d``).

    ``p_i = S_c(X)^(i, y_i)`` on the valid pixels ``V``; ``t = max(tau, p_(m))``, ``p_(m)`` the m-th smallest
    ``p_i``; ``K = {i in V : p_i <= t}``; ``L_ohem = -1/|K| sum_{i in K} log p_i``. When ``m = 0`` or ``m > |V|``
    every valid pixel counts (eq. (1)), as theirs. ``tau`` = ``threshold``, ``m`` = ``min_kept``, counted over
    the whole batch; ``logits`` (N, C, H, W) at the target's resolution, ``target`` (N, H, W). The selection
    carries no gradient. No pixel valid: 0 (theirs: NaN).
    """
    labels = target.long()
    valid = labels != ignore_index
    if min_kept == 0:  # theirs compare with tau only when min_kept > 0
        return _masked_ce(logits, labels, ignore_index, split)
    with torch.no_grad():
        prob = logits.float().softmax(1).gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)
        prob = torch.where(valid, prob, torch.inf)  # ignored pixels never count among the m smallest
        count = valid.sum() if split is None else split.sum(valid.sum())
        cutoff = _kth_smallest(prob.flatten(), min_kept, split).clamp_min(threshold)
        kept = valid & ((prob <= cutoff) | (count < min_kept))
    return _masked_ce(logits, torch.where(kept, labels, ignore_index), ignore_index, split)


def _kth_smallest(values: Tensor, k: int, split: SplitBatch | None) -> Tensor:
    """The k-th smallest of ``values`` (1-D) over the whole batch, +inf if it holds fewer. Under a ``split``, each
    process's k smallest are gathered (padded with +inf to k): they hold the whole batch's k smallest."""
    if split is not None:
        local = values.topk(min(k, values.numel()), largest=False).values
        values = split.gather(F.pad(local, (0, k - local.numel()), value=torch.inf))
    if values.numel() < k:
        return values.new_full((), torch.inf)
    return values.kthvalue(k).values


def adversarial_loss(d_logits: Tensor, valid: Tensor | None = None, split: SplitBatch | None = None) -> Tensor:
    """Eq. (2): ``L_adv = -sum_{n,h,w} log D(S_c(X_n))^(h,w)``, averaged over (valid) pixels.

    ``d_logits`` (N, 1, H, W) are the discriminator's logits on the prediction; ``valid`` (N, H, W) masks
    ignored pixels of labeled images (None: every pixel, as for unlabeled images).
    """
    return _bce_to(d_logits, 1.0, valid, split)


def discriminator_loss(d_logits_pred: Tensor, d_logits_gt: Tensor, valid_pred: Tensor | None = None,
                       valid_gt: Tensor | None = None, split: SplitBatch | None = None) -> Tensor:
    """Eq. (10): ``L_D = -sum_{h,w} (1-y) log(1 - D(S_c(X))) + y log D(Y)``; y=0 on predictions, y=1 on
    one-hot ground truth. Each half is averaged over its valid pixels, then the halves are added."""
    return _bce_to(d_logits_pred, 0.0, valid_pred, split) + _bce_to(d_logits_gt, 1.0, valid_gt, split)


def _bce_to(d_logits: Tensor, label: float, valid: Tensor | None, split: SplitBatch | None) -> Tensor:
    logits = d_logits.float().squeeze(1)
    losses = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="none")
    if valid is None:
        return _pixel_mean(losses, split)
    valid = valid.to(losses.dtype)
    return batch_mean((losses * valid).sum(), valid.sum(), split)


def latent_loss(latent_prob: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255,
                split: SplitBatch | None = None) -> Tensor:
    """Eqs. (3)-(5): the conditional entropy ``H(C|L)`` of the batch.

    (4) ``P_b(c,l) = 1/(NHW) sum_{n,h,w} S_l(X_n)^(h,w,l) Y_n^(h,w,c)`` (NHW = valid pixels),
    (5) ``P_b(c|l) = P_b(c,l) / sum_c' P_b(c',l)``,
    (3) ``L_latent = -sum_l sum_c P_b(c,l) log P_b(c|l)``.

    ``latent_prob`` (N, k, H, W) is the latent softmax, ``target`` (N, H, W). The gradient reaches the latent
    branch through both ``P_b(c,l)`` and ``P_b(c|l)``; it is computed on this batch alone. Under a ``split`` the
    counts are summed over the processes first (one collective), so every process computes the entropy of the
    whole batch; the sum's backward hands each slice its gradient.
    """
    joint, count = joint_counts(latent_prob, target, num_classes, ignore_index)
    if split is not None:
        packed = split.sum(torch.cat([joint.flatten(), count.float().view(1)]))
        joint, count = packed[:-1].view_as(joint), packed[-1]
    joint = joint / count.clamp_min(1)  # a batch without a valid pixel gives joint = 0 and loss = 0
    cond = joint / joint.sum(0, keepdim=True).clamp_min(EPS)
    return -(joint * cond.clamp_min(EPS).log()).sum()


class CoOccurrence(nn.Module):
    """Eqs. (7)-(8): the moving co-occurrence of semantic and latent classes, and ``P(l|c)`` from it.

    (7) ``M^i_{c,l} = (1-a) M^{i-1}_{c,l} + a sum_{n,h,w} Y_n^(h,w,c) S_l(X_n)^(h,w,l)``, ``M^0 = 0``;
    (8) ``P(l|c) = M_{c,l} / sum_k M_{c,k}``.

    ``alpha`` is batch size / number of labeled images. ``M`` is a persistent buffer (saved in checkpoints)
    and never carries a gradient. Under a ``split`` the batch counts are summed over the processes, so every
    process holds the same matrix, that of the whole batch (``alpha`` is the whole batch over the labeled set).
    """

    matrix: Tensor

    def __init__(self, num_classes: int, num_latent: int, alpha: float, ignore_index: int = 255) -> None:
        super().__init__()
        if not 0 < alpha <= 1:
            raise ValueError(f"co-occurrence momentum alpha must lie in (0, 1], got {alpha}")
        self.num_classes, self.num_latent, self.alpha, self.ignore_index = num_classes, num_latent, alpha, ignore_index
        self.register_buffer("matrix", torch.zeros(num_classes, num_latent))

    @torch.no_grad()
    def update(self, latent_prob: Tensor, target: Tensor, split: SplitBatch | None = None) -> None:
        counts, _ = joint_counts(latent_prob.detach(), target, self.num_classes, self.ignore_index)
        if split is not None:
            counts = split.sum(counts)
        self.matrix.mul_(1 - self.alpha).add_(counts, alpha=self.alpha)

    def p_latent_given_class(self) -> Tensor:
        """``P(l|c)`` as a (C, k) matrix; a class never seen yet gets the uniform distribution."""
        rows = self.matrix.sum(1, keepdim=True)
        uniform = torch.full_like(self.matrix, 1.0 / self.num_latent)
        return torch.where(rows > 0, self.matrix / rows.clamp_min(EPS), uniform)


def semantic_to_latent(semantic_prob: Tensor, p_latent_given_class: Tensor) -> Tensor:
    """Eq. (6): ``S_l^c(X)^(h,w,l) = sum_c P(l|c) S_c(X)^(h,w,c)``; (N, C, H, W) -> (N, k, H, W)."""
    return torch.einsum("nchw,cl->nlhw", semantic_prob.float(), p_latent_given_class.float())


def consistency_loss(latent_prob: Tensor, semantic_prob: Tensor, p_latent_given_class: Tensor,
                     split: SplitBatch | None = None) -> Tensor:
    """Eqs. (6) and (9): ``L_cons = -1/(NHW) sum_{n,h,w} sum_l S_l(X_n)^(h,w,l) log S_l^c(X_n)^(h,w,l)``.

    The latent prediction is the target and is detached (the latent branch learns from labeled data only);
    ``P(l|c)`` carries no gradient; the loss trains the semantic branch. All pixels count (unlabeled images).
    """
    mapped = semantic_to_latent(semantic_prob, p_latent_given_class.detach())
    target = latent_prob.detach().float()
    return _pixel_mean(-(target * mapped.clamp_min(EPS).log()).sum(1), split)


def symmetric_kl_loss(prob_a: Tensor, prob_b: Tensor, split: SplitBatch | None = None) -> Tensor:
    """Table 5's "symmetric KL" consistency: ``KL(a||b) + KL(b||a)`` per pixel, averaged; both get gradients."""
    a, b = prob_a.float().clamp_min(EPS), prob_b.float().clamp_min(EPS)
    return _pixel_mean(((a - b) * (a.log() - b.log())).sum(1), split)


def _pixel_mean(per_pixel: Tensor, split: SplitBatch | None) -> Tensor:
    if split is None:
        return per_pixel.mean()
    # new_full fills on the device; torch.tensor(n, device=...) would copy from the host and wait for it
    return batch_mean(per_pixel.sum(), per_pixel.new_full((), per_pixel.numel()), split)


def self_training_loss(logits: Tensor, d_logits: Tensor, threshold: float, split: SplitBatch | None = None) -> Tensor:
    """Hung et al.'s semi-supervised term: cross-entropy against the argmax where ``sigmoid(D) >= threshold``.

    ``logits`` (N, C, H, W), ``d_logits`` (N, 1, H, W) on the same unlabeled images; zero if no pixel passes.
    """
    with torch.no_grad():  # torch.where, not boolean-mask assignment: no host synchronisation
        confident = torch.sigmoid(d_logits.float().squeeze(1)) >= threshold
        pseudo = torch.where(confident, logits.argmax(1), 255)
    return _masked_ce(logits, pseudo, 255, split)


def one_hot_map(target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(N, H, W) labels -> (N, C, H, W) one-hot maps (the discriminator's "real" input); ignored pixels all 0.

    A comparison with the class indices rather than ``F.one_hot``, which checks the label range with ``.item()``
    on some devices. ``ignore_index`` (like any label outside ``0..C-1``) matches no class: an all-0 pixel.
    """
    classes = torch.arange(num_classes, device=target.device).view(1, -1, 1, 1)
    return (target.unsqueeze(1) == classes).float()


# --- s4GAN (Mittal et al., the baseline of Tables 1-2; their train_s4GAN.py) ------------------------------------


def s4gan_feature_matching_loss(real_features: Tensor, fake_features: Tensor,
                                split: SplitBatch | None = None) -> Tensor:
    """s4GAN's feature matching: ``L_fm = mean_k | mean_n f_real[n, k] - mean_n f_fake[n, k] |``.

    ``real_features`` (N_r, K) are the discriminator's pooled features of one-hot ground truth + image,
    ``fake_features`` (N_f, K) those of the unlabeled predictions + image (``S4GANDiscriminator``'s second
    output). Both sides pass gradients; which of them reaches a network is the caller's choice. Under a
    ``split`` both means are of the whole batch (one collective), so every process computes the same loss.
    """
    real, fake = real_features.float().flatten(1), fake_features.float().flatten(1)
    sums = torch.stack([real.sum(0), fake.sum(0)])  # (2, K)
    counts = torch.stack([real.new_full((), real.shape[0]), real.new_full((), fake.shape[0])])  # (2,), on device
    if split is not None:
        packed = split.sum(torch.cat([sums.flatten(), counts]))
        sums, counts = packed[:-2].view_as(sums), packed[-2:].detach()
    means = sums / counts.clamp_min(1).unsqueeze(1)  # an empty side has mean 0, not NaN
    return (means[0] - means[1]).abs().mean()


def s4gan_self_training_loss(logits: Tensor, d_logits: Tensor, threshold: float,
                             split: SplitBatch | None = None) -> Tensor:
    """s4GAN's self-training: ``L_st = -1/(|I| H W) sum_{n in I} sum_{h,w} log S(X_n)^(h,w,argmax_c S(X_n)^(h,w))``,
    ``I = {n : sigmoid(D_n) > threshold}``.

    ``S`` = softmax of ``logits`` (N, C, H, W), the unlabeled images' prediction at the label resolution;
    ``D_n`` = ``d_logits[n]`` (N, 1), the discriminator's logit on image n's prediction; ``threshold`` is 0.6
    on VOC and 0.7 on Cityscapes in Mittal et al. (strictly greater, as theirs).
    A selected image is labeled with its own argmax everywhere; the pseudo-labels and the selection carry no
    gradient, which reaches only the selected images' logits. No image selected: exactly 0, with a zero gradient.
    """
    with torch.no_grad():  # torch.where, not boolean indexing: no host synchronisation
        selected = torch.sigmoid(d_logits.float().reshape(-1)) > threshold  # (N,)
        pseudo = torch.where(selected.view(-1, 1, 1), logits.argmax(1), 255)
    return _masked_ce(logits, pseudo, 255, split)


def s4gan_discriminator_loss(d_logits_fake: Tensor, d_logits_real: Tensor, split: SplitBatch | None = None) -> Tensor:
    """s4GAN's discriminator loss: ``L_D = (BCE(D_fake, 0) + BCE(D_real, 1)) / 2``, each averaged over images.

    ``d_logits_fake`` (N_f, 1): logits on predictions + image; ``d_logits_real`` (N_r, 1): on one-hot ground
    truth + image. BCE-with-logits equals their sigmoid + ``BCELoss``, and stays exact where the float sigmoid
    rounds to 0 or 1 (``BCELoss`` clamps the log at -100 there).
    """
    return (_bce_to(d_logits_fake, 0.0, None, split) + _bce_to(d_logits_real, 1.0, None, split)) / 2

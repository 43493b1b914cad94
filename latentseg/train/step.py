"""One training iteration of the paper's method, its ablations and variants, and of Hung et al.'s baseline.

``SegmentationStep.losses`` computes the named loss components of one iteration; ``update`` applies them:
the segmentation network with SGD on eqs. (11)-(12) (or Hung et al.'s objective), then the discriminator with
Adam on eq. (10). Every combination of terms comes from ``RunConfig`` (Table 3's ``loss`` flags, Table 4's
``latent.k``, Table 5's ``latent.target``); no variant needs a code edit.

Speed rules kept here: nothing in an iteration waits on the device (no ``.item()``, ``bool(tensor)``, boolean-mask
indexing or ``nonzero``; the losses avoid them too), so the host runs ahead and queues the next iteration. In a
distributed run every process holds a slice of the batch and the losses are those of the whole batch
(``losses.SplitBatch``): the same method, whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import RunConfig
from latentseg.models.deeplab import DeepLabV2, upsample


@dataclass
class Batch:
    image: Tensor  # (N, 3, H, W), labeled
    mask: Tensor  # (N, H, W)
    unlabeled: Tensor | None  # (M, 3, H, W) or None when no term needs it


def method_needs_unlabeled(cfg: RunConfig) -> bool:
    return (cfg.loss.consistency or cfg.loss.adversarial == "all" or cfg.self_training.enabled
            or cfg.latent.target == "semantic_kl")


def latent_outputs(cfg: RunConfig, num_classes: int) -> int | None:
    """Width of the latent head: k, the manual groups, |C| for the semantic variants, None without a branch."""
    if not cfg.uses_latent_branch:
        return None
    if cfg.latent.target == "manual":
        return len(cfg.latent.groups)
    if cfg.latent.target in ("semantic", "semantic_kl"):
        return num_classes
    return cfg.latent.k


def validate(cfg: RunConfig) -> None:
    if cfg.loss.consistency and not cfg.loss.latent and cfg.latent.target != "semantic_kl":
        raise ValueError("loss.consistency needs the latent branch: set loss.latent: true")
    if cfg.self_training.enabled and cfg.loss.adversarial == "none":
        raise ValueError("self_training (Hung et al.) needs the discriminator: set loss.adversarial to 'all'")
    if cfg.latent.target == "manual" and not cfg.latent.groups:
        raise ValueError("latent.target 'manual' needs latent.groups (supercategory -> class names)")


class SegmentationStep(nn.Module):
    """Holds everything one iteration touches: networks, co-occurrence, optimisers' targets."""

    def __init__(self, cfg: RunConfig, model: DeepLabV2, discriminator: nn.Module | None, num_classes: int,
                 num_labeled: int, group_of_class: list[int] | None = None) -> None:
        super().__init__()
        validate(cfg)
        self.cfg, self.model, self.discriminator, self.num_classes = cfg, model, discriminator, num_classes
        k = latent_outputs(cfg, num_classes)
        self.has_latent = k is not None  # kept here: ``model`` may later be wrapped (DDP, compile)
        self.cooccurrence = None
        if k is not None and cfg.latent.target != "semantic_kl":
            alpha = cfg.latent.alpha or min(1.0, cfg.optim.batch_size / num_labeled)
            self.cooccurrence = L.CoOccurrence(num_classes, k, alpha)
        # manual supercategories: the class -> group lookup that turns a mask into the latent target
        lookup = torch.full((256,), 255, dtype=torch.long)
        if group_of_class is not None:
            lookup[: len(group_of_class)] = torch.tensor(group_of_class)
        self.register_buffer("group_lookup", lookup, persistent=False)

    # -- the objective -------------------------------------------------------------------------------------
    def losses(self, batch: Batch, step: int) -> tuple[dict[str, Tensor], Tensor, Tensor | None]:
        """Named loss components, the semantic probabilities (for the discriminator) and the total."""
        cfg, C = self.cfg, self.num_classes
        split = L.SplitBatch.current()  # None on one process
        n = batch.image.shape[0]
        images = batch.image if batch.unlabeled is None else torch.cat([batch.image, batch.unlabeled])
        out = self.model(images, with_latent=self.has_latent)
        size = tuple(images.shape[-2:])
        sem = upsample(out.semantic, size)
        sem_prob = sem.float().softmax(1)
        mask = batch.mask
        valid = mask != 255
        parts: dict[str, Tensor] = {"ce": L.cross_entropy_loss(sem[:n], mask, split=split)}
        zero = sem.new_zeros((), dtype=torch.float32)
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)  # the segmentation update must not move it

        lat = lat_prob = None
        if out.latent is not None:
            lat = upsample(out.latent, size)
            lat_prob = lat.float().softmax(1)
            target = cfg.latent.target
            if target == "learned":
                parts["latent"] = L.latent_loss(lat_prob[:n], mask, C, split=split)
            elif target == "manual":
                parts["latent"] = L.cross_entropy_loss(lat[:n], self.group_lookup[mask], split=split)
            else:  # semantic / semantic_kl: the second branch predicts the semantic classes
                parts["latent"] = L.cross_entropy_loss(lat[:n], mask, split=split)
            if self.cooccurrence is not None:
                self.cooccurrence.update(lat_prob[:n], mask, split)

        if cfg.self_training.enabled:  # Hung et al.'s objective, with their weights
            st = cfg.self_training
            adv_l = L.adversarial_loss(self.discriminator(sem_prob[:n]), valid, split)
            d_u = self.discriminator(sem_prob[n:])
            parts["adv_l"], parts["adv_u"] = adv_l, L.adversarial_loss(d_u, split=split)
            semi = L.self_training_loss(sem[n:], d_u, st.mask_t, split) if step >= st.semi_start else zero
            parts["semi"] = semi
            total = parts["ce"] + cfg.loss.lambda_adv * adv_l + st.lambda_semi_adv * parts["adv_u"]
            total = total + st.lambda_semi * semi
            return parts, sem_prob, total

        adv_l = adv_u = zero
        if cfg.loss.adversarial != "none":
            adv_l = L.adversarial_loss(self.discriminator(sem_prob[:n]), valid, split)
            if cfg.latent.target == "semantic_kl":  # "trained alike": the second branch is judged too
                adv_l = adv_l + L.adversarial_loss(self.discriminator(lat_prob[:n]), valid, split)
            parts["adv_l"] = adv_l
        if cfg.loss.adversarial == "all":
            adv_u = L.adversarial_loss(self.discriminator(sem_prob[n:]), split=split)
            if cfg.latent.target == "semantic_kl":
                adv_u = adv_u + L.adversarial_loss(self.discriminator(lat_prob[n:]), split=split)
            parts["adv_u"] = adv_u
        cons = zero
        if cfg.loss.consistency:
            if cfg.latent.target == "semantic_kl":
                cons = L.symmetric_kl_loss(sem_prob[n:], lat_prob[n:], split)
            else:
                p_lc = self.cooccurrence.p_latent_given_class()
                cons = L.consistency_loss(lat_prob[n:], sem_prob[n:], p_lc, split)
            parts["cons"] = cons
        latent = parts.get("latent", zero) if cfg.loss.latent else zero
        labeled = L.labeled_total(parts["ce"], latent, adv_l, cfg.loss.lambda_latent, cfg.loss.lambda_adv)
        unlabeled = L.unlabeled_total(cons, adv_u, cfg.loss.lambda_cons, cfg.loss.lambda_adv)
        return parts, sem_prob, L.total_loss(labeled, unlabeled, cfg.loss.lambda_unlabeled)

    def discriminator_loss(self, sem_prob: Tensor, batch: Batch) -> Tensor:
        """Eq. (10) on the detached predictions (labeled, and unlabeled when they are judged) and the truth."""
        n = batch.image.shape[0]
        judged_unlabeled = self.cfg.loss.adversarial == "all" or self.cfg.self_training.enabled
        pred = sem_prob.detach() if judged_unlabeled else sem_prob[:n].detach()
        valid = batch.mask != 255
        valid_pred = valid  # every pixel of an unlabeled prediction counts
        if pred.shape[0] > n:
            valid_pred = torch.cat([valid, valid.new_ones((pred.shape[0] - n, *valid.shape[1:]))])
        d = self.discriminator
        d.requires_grad_(True)
        return L.discriminator_loss(d(pred), d(L.one_hot_map(batch.mask, self.num_classes)), valid_pred, valid,
                                    L.SplitBatch.current())


def poly_lr(base_lr: float, step: int, total: int, power: float) -> float:
    """DeepLab's poly schedule: ``base_lr * (1 - step / total) ** power``."""
    return base_lr * (1 - step / total) ** power


def set_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = poly_lr(group["base_lr"], step, total, power)


def make_optimizers(cfg: RunConfig, model: DeepLabV2, discriminator: nn.Module | None,
                    fused: bool = False) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    o = cfg.optim
    kw = {"fused": True} if fused else {"foreach": True}
    sgd = torch.optim.SGD(model.param_groups(o.lr, o.head_lr_mult), lr=o.lr, momentum=o.momentum,
                          weight_decay=o.weight_decay, **kw)
    adam = None
    if discriminator is not None:
        adam = torch.optim.Adam(discriminator.parameters(), lr=o.d_lr, betas=o.d_betas, **kw)
        for group in adam.param_groups:
            group["base_lr"] = o.d_lr
    return sgd, adam


def average_gradients(params: Iterable[Tensor], split: L.SplitBatch) -> None:
    """Average the gradients of ``params`` over the processes of ``split``: one collective on a flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = split.sum(torch.cat([g.reshape(-1) for g in grads])).div_(split.world)
    for g, chunk in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(chunk.view(g.shape))  # copy_ keeps the gradient's own layout (channels-last included)


def one_update(step_module: SegmentationStep, batch: Batch, step: int, sgd: torch.optim.Optimizer,
               adam: torch.optim.Optimizer | None, autocast: torch.autocast | None = None) -> dict[str, Tensor]:
    """Apply one iteration; returns the detached loss components (no host synchronisation).

    In a distributed run DistributedDataParallel averages the segmentation network's gradients during the
    backward; the discriminator is not wrapped (it runs three times an iteration, under two gradient settings),
    so its gradients are averaged here, before Adam steps.
    """
    cfg = step_module.cfg
    set_lr(sgd, step, cfg.optim.iterations, cfg.optim.power)
    sgd.zero_grad(set_to_none=True)
    with autocast or nullcontext():
        parts, sem_prob, total = step_module.losses(batch, step)
    total.backward()
    sgd.step()
    if adam is not None:
        set_lr(adam, step, cfg.optim.iterations, cfg.optim.power)
        adam.zero_grad(set_to_none=True)
        with autocast or nullcontext():
            d_loss = step_module.discriminator_loss(sem_prob, batch)
        d_loss.backward()
        split = L.SplitBatch.current()
        if split is not None:
            average_gradients(step_module.discriminator.parameters(), split)
        adam.step()
        parts["d"] = d_loss
    parts["total"] = total
    return {k: v.detach() for k, v in parts.items()}


def semantic_probabilities(model: DeepLabV2, images: Tensor) -> Tensor:
    """Inference: the semantic branch's softmax at the input size (the latent branch is not run)."""
    out = model(images, with_latent=False)
    return F.softmax(upsample(out.semantic, tuple(images.shape[-2:])).float(), 1)

"""One training iteration: the networks it touches, the update that applies an objective, the schedules.

``SegmentationStep`` holds the segmentation network, the discriminator and the co-occurrence matrix of eq. (7);
which objective an iteration computes is ``objectives.OBJECTIVES[cfg.objective]`` (the paper's, Hung et al.'s or
s4GAN's), each in a small function of its own. ``one_update`` applies one: SGD on the segmentation network, then
Adam on the discriminator.

Speed rules kept here: nothing in an iteration waits on the device (no ``.item()``, ``bool(tensor)``, boolean-mask
indexing or ``nonzero``; the losses avoid them too), so the host runs ahead and queues the next iteration. In a
distributed run every process holds a slice of the batch and the losses are those of the whole batch
(``losses.SplitBatch``): the same method, whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import RunConfig
from latentseg.models.deeplab import DeepLabV2, SegOutput
from latentseg.models.discriminator import Discriminator
from latentseg.models.s4gan_discriminator import S4GANDiscriminator
from latentseg.train.objectives import OBJECTIVES, Batch, Generated

__all__ = ["Batch", "Generated", "SegmentationStep", "build_networks", "make_optimizers", "one_update"]


def uses_unlabeled(cfg: RunConfig) -> bool:
    """Whether the objective has a term on unlabeled images (so the trainer draws them)."""
    if cfg.objective != "latent":
        return True
    assert cfg.loss is not None
    return cfg.loss.consistency or cfg.loss.adversarial == "all"


def latent_outputs(cfg: RunConfig, num_classes: int) -> int | None:
    """Width of the latent head: k, the manual groups, |C| for the semantic variants, None without a branch."""
    latent = cfg.latent
    if latent is None:
        return None
    if latent.target == "manual":
        return len(latent.groups)
    if latent.target in ("semantic", "semantic_kl"):
        return num_classes
    assert latent.k is not None
    return latent.k


def build_networks(cfg: RunConfig, num_classes: int) -> tuple[DeepLabV2, nn.Module | None]:
    model = DeepLabV2(num_classes, latent_outputs(cfg, num_classes), backbone=cfg.model.backbone,
                      aspp_branches=cfg.model.aspp_branches, freeze_bn_stats=cfg.model.freeze_bn_stats)
    d = cfg.discriminator
    if d is None:
        return model, None
    disc = S4GANDiscriminator(num_classes, d.width) if cfg.objective == "s4gan" else Discriminator(num_classes, d.width)
    return model, disc


class SegmentationStep(nn.Module):
    """Everything one iteration touches: the networks, the co-occurrence matrix, the class -> group lookup."""

    def __init__(self, cfg: RunConfig, model: DeepLabV2, discriminator: nn.Module | None, num_classes: int,
                 num_labeled: int, group_of_class: list[int] | None = None) -> None:
        super().__init__()
        self.cfg, self.model, self.discriminator, self.num_classes = cfg, model, discriminator, num_classes
        self.generator_losses, self.discriminator_losses = OBJECTIVES[cfg.objective]
        k = latent_outputs(cfg, num_classes)
        self.has_latent = k is not None  # kept here: ``model`` may later be wrapped (DDP, compile)
        self.cooccurrence = None
        if cfg.latent is not None and cfg.latent.target != "semantic_kl":
            assert k is not None
            alpha = cfg.latent.alpha or min(1.0, cfg.optim.batch_size / num_labeled)
            self.cooccurrence = L.CoOccurrence(num_classes, k, alpha)
        # manual supercategories: the class -> group lookup that turns a mask into the latent target
        lookup = torch.full((256,), 255, dtype=torch.long)
        if group_of_class is not None:
            lookup[: len(group_of_class)] = torch.tensor(group_of_class)
        self.register_buffer("group_lookup", lookup, persistent=False)

    def segment(self, *images: Tensor | None) -> list[SegOutput | None]:
        """The network on each batch (None: none), in one call. With batch statistics (``freeze_bn_stats:
        false``) each batch passes the trunk on its own, as both reference codes run a labeled and an unlabeled
        batch, so each is normalised by its own statistics; with frozen statistics one merged pass computes the
        same."""
        given = [x for x in images if x is not None]
        sizes = [x.shape[0] for x in given]
        passes = None if self.cfg.model.freeze_bn_stats else sizes
        out = self.model(torch.cat(given) if len(given) > 1 else given[0], with_latent=self.has_latent,
                         passes=passes)
        sem = out.semantic.split(sizes)
        lat = out.latent.split(sizes) if out.latent is not None else [None] * len(sizes)
        parts = iter(zip(sem, lat, strict=True))
        return [None if x is None else SegOutput(*next(parts)) for x in images]

    def losses(self, batch: Batch, step: int) -> Generated:
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)  # the segmentation update must not move it
        return self.generator_losses(self, batch, step)

    def discriminator_loss(self, generated: Generated, batch: Batch) -> Tensor:
        assert self.discriminator is not None
        self.discriminator.requires_grad_(True)
        return self.discriminator_losses(self, generated, batch)


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
        d = cfg.discriminator
        assert d is not None
        adam = torch.optim.Adam(discriminator.parameters(), lr=d.lr, betas=d.betas, **kw)
        for group in adam.param_groups:
            group["base_lr"] = d.lr
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
    backward; the discriminator is not wrapped (it runs several times an iteration, under two gradient
    settings), so its gradients are averaged here, before Adam steps.
    """
    cfg = step_module.cfg
    set_lr(sgd, step, cfg.optim.iterations, cfg.optim.power)
    sgd.zero_grad(set_to_none=True)
    with autocast or nullcontext():
        generated = step_module.losses(batch, step)
    generated.total.backward()
    sgd.step()
    parts = generated.parts
    if adam is not None and generated.fake is not None:
        set_lr(adam, step, cfg.optim.iterations, cfg.optim.power)
        adam.zero_grad(set_to_none=True)
        with autocast or nullcontext():
            d_loss = step_module.discriminator_loss(generated, batch)
        d_loss.backward()
        split = L.SplitBatch.current()
        if split is not None:
            average_gradients(step_module.discriminator.parameters(), split)
        adam.step()
        parts["d"] = d_loss
    parts["total"] = generated.total
    return {k: v.detach() for k, v in parts.items()}

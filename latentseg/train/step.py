"""One training iteration: the networks it updates, the update that applies the method's objective, the schedules.

``Networks`` holds the segmentation network, the discriminator and the method's objective (with its state: the
co-occurrence matrix of eq. 7 for the paper's method); the objective itself lives in ``latentseg/methods/``.
``one_update`` applies one iteration: SGD on the segmentation network, then Adam on the discriminator.

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
from latentseg import methods
from latentseg.config import RunConfig
from latentseg.methods.base import Batch, Generated, Objective
from latentseg.models.deeplab import DeepLabV2, SegOutput

__all__ = ["Batch", "Generated", "Networks", "build_networks", "make_optimizers", "one_update"]


def build_networks(cfg: RunConfig, num_classes: int) -> tuple[DeepLabV2, nn.Module | None]:
    """The segmentation network (with the method's latent head, if any) and the method's discriminator."""
    method = methods.get(cfg.objective)
    model = DeepLabV2(num_classes, method.latent_width(cfg, num_classes), backbone=cfg.model.backbone,
                      aspp_branches=cfg.model.aspp_branches, freeze_bn_stats=cfg.model.freeze_bn_stats)
    return model, method.discriminator(cfg, num_classes)


def build_objective(cfg: RunConfig, classes: list[str], num_labeled: int) -> Objective:
    return methods.get(cfg.objective).objective(cfg, classes, num_labeled)


class Networks(nn.Module):
    """What an iteration updates: the segmentation network, the discriminator (or None) and the objective's
    state. Its state dict is what a checkpoint keeps of them."""

    def __init__(self, cfg: RunConfig, model: DeepLabV2, discriminator: nn.Module | None,
                 objective: Objective) -> None:
        super().__init__()
        self.cfg, self.model, self.discriminator, self.objective = cfg, model, discriminator, objective
        self.num_classes = model.semantic_head.conv2d_list[0].out_channels
        self.has_latent = model.latent_head is not None  # kept here: ``model`` may later be wrapped (DDP, compile)

    def segment(self, *images: Tensor | None, perturb: tuple[int, float] | None = None) -> list[SegOutput | None]:
        """The network on each batch (None: none), in one call. With batch statistics (``freeze_bn_stats:
        false``) each batch passes the trunk on its own, as both reference codes run a labeled and an unlabeled
        batch, so each is normalised by its own statistics; with frozen statistics one merged pass computes the
        same. ``perturb = (i, p)``: one more output, last, the semantic head on ``Dropout2d(p)`` of the trunk's
        features of ``images[i]`` (its latent: None), in the same forward."""
        given = [x for x in images if x is not None]
        sizes = [x.shape[0] for x in given]
        passes = None if self.cfg.model.freeze_bn_stats else sizes
        rows = None
        if perturb is not None:
            index, p = perturb
            target = images[index]
            assert target is not None
            start = sum(x.shape[0] for x in images[:index] if x is not None)
            rows = (start, start + target.shape[0], p)
        out = self.model(torch.cat(given) if len(given) > 1 else given[0], with_latent=self.has_latent,
                         passes=passes, perturb=rows)
        sem = out.semantic.split(sizes + ([rows[1] - rows[0]] if rows else []))
        lat = list(out.latent.split(sizes)) if out.latent is not None else [None] * len(sizes)
        parts = iter(zip(sem, lat + ([None] if rows else []), strict=True))
        return [None if x is None else SegOutput(*next(parts)) for x in [*images, *([sem[-1]] if rows else [])]]

    def losses(self, batch: Batch, step: int) -> Generated:
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)  # the segmentation update must not move it
        return self.objective.generator(self.segment, self.discriminator, batch, step)

    def discriminator_loss(self, generated: Generated, batch: Batch) -> Tensor:
        assert self.discriminator is not None
        self.discriminator.requires_grad_(True)
        return self.objective.discriminator_loss(self.discriminator, generated, batch)


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


def one_update(nets: Networks, batch: Batch, step: int, sgd: torch.optim.Optimizer,
               adam: torch.optim.Optimizer | None, autocast: torch.autocast | None = None) -> dict[str, Tensor]:
    """Apply one iteration; returns the detached loss components (no host synchronisation).

    In a distributed run DistributedDataParallel averages the segmentation network's gradients during the
    backward; the discriminator is not wrapped (it runs several times an iteration, under two gradient
    settings), so its gradients are averaged here, before Adam steps.
    """
    cfg = nets.cfg
    set_lr(sgd, step, cfg.optim.iterations, cfg.optim.power)
    sgd.zero_grad(set_to_none=True)
    with autocast or nullcontext():
        generated = nets.losses(batch, step)
    generated.total.backward()
    sgd.step()
    parts = generated.parts
    if adam is not None and generated.fake is not None:
        set_lr(adam, step, cfg.optim.iterations, cfg.optim.power)
        adam.zero_grad(set_to_none=True)
        with autocast or nullcontext():
            d_loss = nets.discriminator_loss(generated, batch)
        d_loss.backward()
        split = L.SplitBatch.current()
        if split is not None:
            average_gradients(nets.discriminator.parameters(), split)
        adam.step()
        parts["d"] = d_loss
    parts["total"] = generated.total
    return {k: v.detach() for k, v in parts.items()}

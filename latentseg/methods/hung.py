"""Hung et al.'s baseline (AdvSemiSeg ``train.py``): an adversarial loss from a pixel-wise discriminator and
discriminator-gated self-training.

The objective::

    L = L_ce + lambda_adv L_adv(labeled) + lambda_semi_adv L_adv(unlabeled) + lambda_semi L_semi

where ``L_semi`` is the cross-entropy against the argmax on the unlabeled pixels the discriminator trusts
(``sigmoid(D) >= mask_t``), from iteration ``semi_start`` on. The discriminator's loss is eq. (10).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import STRICT, NonNegativeInt, RunConfig, Unit, Weight
from latentseg.methods.base import Batch, Generated, Method, Objective, Problem, Segment
from latentseg.methods.shared import (
    in_float32,
    pixel_discriminator,
    pixel_discriminator_loss,
    probabilities,
    stack_fakes,
)


@dataclass(frozen=True)
class HungConfig:
    __pydantic_config__ = STRICT
    lambda_adv: Weight  # --lambda-adv-pred, on labeled predictions
    lambda_semi: Weight
    lambda_semi_adv: Weight
    mask_t: Unit
    semi_start: NonNegativeInt


@dataclass(frozen=True)
class Settings:
    __pydantic_config__ = STRICT
    hung: HungConfig


class Hung(Method):
    name = "hung"
    settings = Settings

    def check(self, cfg: RunConfig) -> list[Problem]:
        return [("discriminator", None, "Hung et al.'s objective needs the section")] if cfg.discriminator is None \
            else []

    def discriminator(self, cfg: RunConfig, num_classes: int) -> nn.Module | None:
        return pixel_discriminator(cfg, num_classes)

    def objective(self, cfg: RunConfig, classes: list[str], num_labeled: int) -> Objective:
        return HungObjective(cfg.settings.hung, len(classes))


def criterion(ce: Tensor, adv_l: Tensor, adv_u: Tensor, semi: Tensor, *, lambda_adv: float, lambda_semi_adv: float,
              lambda_semi: float) -> Tensor:
    """Hung et al.'s segmentation loss (their eq. 2, AdvSemiSeg ``train.py``):
    ``L_seg = L_ce + lambda_adv L_adv(labeled) + lambda_semi_adv L_adv(unlabeled) + lambda_semi L_semi``; the
    unlabeled terms are 0 without unlabeled images, and ``L_semi`` before ``semi_start``."""
    return ce + lambda_adv * adv_l + lambda_semi_adv * adv_u + lambda_semi * semi


class HungObjective(Objective):
    def __init__(self, settings: HungConfig, num_classes: int) -> None:
        super().__init__()
        self.h, self.num_classes = settings, num_classes

    def generator(self, segment: Segment, discriminator: nn.Module | None, batch: Batch, step: int) -> Generated:
        h, d = self.h, discriminator
        assert d is not None
        split = L.SplitBatch.current()
        lab, unl = segment(batch.image, batch.unlabeled)
        sem, sem_prob = probabilities(lab.semantic, tuple(batch.image.shape[-2:]))
        valid = batch.mask != 255
        parts = {"ce": L.cross_entropy_loss(sem, batch.mask, split=split),
                 "adv_l": L.adversarial_loss(d(sem_prob), valid, split)}
        fakes: list[tuple[Tensor, Tensor | None]] = [(sem_prob, valid)]
        adv_u = semi = sem_prob.new_zeros(())  # a split without unlabeled images
        if unl is not None:
            assert batch.unlabeled is not None
            u_sem, u_prob = probabilities(unl.semantic, tuple(batch.unlabeled.shape[-2:]))
            d_u = in_float32(d, u_prob)  # it gates L_semi (mask_t): float32 under autocast too
            adv_u = parts["adv_u"] = L.adversarial_loss(d_u, split=split)
            if step >= h.semi_start:
                semi = L.self_training_loss(u_sem, d_u, h.mask_t, split)
            parts["semi"] = semi
            fakes.append((u_prob, None))
        total = criterion(parts["ce"], parts["adv_l"], adv_u, semi, lambda_adv=h.lambda_adv,
                          lambda_semi_adv=h.lambda_semi_adv, lambda_semi=h.lambda_semi)
        return Generated(parts, total, *stack_fakes(fakes))

    def discriminator_loss(self, discriminator: nn.Module, generated: Generated, batch: Batch) -> Tensor:
        return pixel_discriminator_loss(discriminator, generated, batch, self.num_classes)


METHOD = Hung()

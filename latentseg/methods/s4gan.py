"""Mittal et al.'s s4GAN baseline (semisup-semseg ``train_s4GAN.py``): feature matching and image-level
self-training, with an image-level discriminator that also sees the image.

The objective::

    L = L_ce + lambda_fm L_fm + lambda_st L_st

The discriminator (in training mode, dropout on, as in their code) scores each unlabeled prediction stacked with
its image; ``L_st`` trains on the images it scores above ``threshold`` (not at iteration 0, as theirs), ``L_fm``
matches its pooled features on those predictions to those on the ground truth of its own labeled draw.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import STRICT, RunConfig, Unit, Weight
from latentseg.methods.base import Batch, Generated, Method, Objective, Problem, Segment
from latentseg.methods.shared import in_float32, probabilities
from latentseg.models.s4gan_discriminator import S4GANDiscriminator, discriminator_input


@dataclass(frozen=True)
class S4ganConfig:
    __pydantic_config__ = STRICT
    lambda_fm: Weight
    lambda_st: Weight
    threshold: Unit  # discriminator score above which an unlabeled prediction becomes its own label


@dataclass(frozen=True)
class Settings:
    __pydantic_config__ = STRICT
    s4gan: S4ganConfig


class S4gan(Method):
    name = "s4gan"
    settings = Settings

    def check(self, cfg: RunConfig) -> list[Problem]:
        return [("discriminator", None, "s4GAN's objective needs the section")] if cfg.discriminator is None else []

    def discriminator(self, cfg: RunConfig, num_classes: int) -> nn.Module | None:
        assert cfg.discriminator is not None
        return S4GANDiscriminator(num_classes, cfg.discriminator.width)

    def objective(self, cfg: RunConfig, classes: list[str], num_labeled: int) -> Objective:
        return S4ganObjective(cfg.settings.s4gan, len(classes))


def criterion(ce: Tensor, fm: Tensor, st: Tensor, *, lambda_fm: float, lambda_st: float) -> Tensor:
    """s4GAN's segmentation-network loss (Mittal et al., ``train_s4GAN.py``):
    ``L_S = L_ce + lambda_fm L_fm + lambda_st L_st`` (their defaults 0.1 and 1.0, also on Cityscapes)."""
    return ce + lambda_fm * fm + lambda_st * st


class S4ganObjective(Objective):
    def __init__(self, settings: S4ganConfig, num_classes: int) -> None:
        super().__init__()
        self.g, self.num_classes = settings, num_classes

    def generator(self, segment: Segment, discriminator: nn.Module | None, batch: Batch, step: int) -> Generated:
        g, d = self.g, discriminator
        assert d is not None
        split = L.SplitBatch.current()
        lab, unl = segment(batch.image, batch.unlabeled)
        sem, _ = probabilities(lab.semantic, tuple(batch.image.shape[-2:]))
        parts = {"ce": L.cross_entropy_loss(sem, batch.mask, split=split)}
        if unl is None:  # no unlabeled image: the cross-entropy alone, and nothing for the discriminator to judge
            return Generated(parts, parts["ce"])
        assert batch.unlabeled is not None
        u_sem, u_prob = probabilities(unl.semantic, tuple(batch.unlabeled.shape[-2:]))
        fake = discriminator_input(u_prob, batch.unlabeled)
        d_fake, f_fake = in_float32(d, fake)  # its score selects the images of L_st: float32 under autocast too
        zero = u_prob.new_zeros(())
        parts["st"] = L.s4gan_self_training_loss(u_sem, d_fake, g.threshold, split) if step > 0 else zero
        real_image, real_mask = batch.real()
        real = discriminator_input(L.one_hot_map(real_mask, self.num_classes), real_image)
        _, f_real = d(real)
        parts["fm"] = L.s4gan_feature_matching_loss(f_real, f_fake, split)
        total = criterion(parts["ce"], parts["fm"], parts["st"], lambda_fm=g.lambda_fm, lambda_st=g.lambda_st)
        return Generated(parts, total, fake=fake, real=real)

    def discriminator_loss(self, discriminator: nn.Module, generated: Generated, batch: Batch) -> Tensor:
        """Fake = the detached predictions + images, real = ground truth + images."""
        assert generated.fake is not None and generated.real is not None
        d_fake, _ = discriminator(generated.fake.detach())
        d_real, _ = discriminator(generated.real)
        return L.s4gan_discriminator_loss(d_fake, d_real, L.SplitBatch.current())


METHOD = S4gan()

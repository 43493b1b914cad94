"""The paper's method: a latent branch beside the semantic one, eqs. (1)-(12).

The objective of eqs. (11)-(12)::

    L = L_ce + lambda_latent L_latent + lambda_adv L_adv(labeled)
        + lambda_unlabeled (lambda_cons L_cons + lambda_adv L_adv(unlabeled))

with the paper's weights lambda_latent = 1, lambda_adv = 0.01, lambda_cons = 1, lambda_unlabeled = 0.1
(``loss`` in params.yaml). Its variants are settings of the same module:

- Table 3 switches terms off: ``loss.latent``, ``loss.consistency``, ``loss.adversarial`` (all / labeled / none);
- Table 4 sets the number of latent classes, ``latent.k``;
- Table 5 changes what the latent branch predicts (``latent.target``): ``learned``, the latent classes of
  eqs. (3)-(9); ``manual``, fixed supercategories (``latent.groups``) by cross-entropy; ``semantic``, the
  semantic classes again; ``semantic_kl``, two semantic branches tied by a symmetric KL instead of eq. (6).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import STRICT, PositiveInt, RunConfig, Unit, Weight
from latentseg.data.classes import group_index
from latentseg.methods.base import Batch, Draws, Generated, Method, Objective, Problem, Segment, with_settings
from latentseg.methods.shared import pixel_discriminator, pixel_discriminator_loss, probabilities, stack_fakes

Target = Literal["learned", "manual", "semantic", "semantic_kl"]


@dataclass(frozen=True)
class LossConfig:
    """The paper's objective, eqs. (11)-(12): which terms are on (Table 3) and their weights."""

    __pydantic_config__ = STRICT
    latent: bool
    consistency: bool
    adversarial: Literal["all", "labeled", "none"]  # which predictions the discriminator judges
    lambda_latent: Weight | None
    lambda_cons: Weight | None
    lambda_adv: Weight | None
    lambda_unlabeled: Weight | None


@dataclass(frozen=True)
class LatentConfig:
    __pydantic_config__ = STRICT
    target: Target  # what the latent branch predicts (Table 5; the module's docstring)
    k: PositiveInt | None  # maximum number of latent classes (Table 4); None where the width comes from elsewhere
    groups: dict[str, list[str]]  # manual: supercategory -> class names
    alpha: Unit | None  # eq. (7) momentum; None = batch size / labeled images


@dataclass(frozen=True)
class Settings:
    __pydantic_config__ = STRICT
    loss: LossConfig
    latent: LatentConfig | None  # None: no latent branch


def criterion(ce: Tensor, latent: Tensor, adv_l: Tensor, cons: Tensor, adv_u: Tensor, *, lambda_latent: float,
              lambda_adv: float, lambda_cons: float, lambda_unlabeled: float) -> Tensor:
    """Eqs. (11)-(12): ``L = L_labeled + lambda_unlabeled L_unlabeled`` with
    ``L_labeled = L_ce + lambda_latent L_latent + lambda_adv L_adv(labeled)`` and
    ``L_unlabeled = lambda_cons L_cons + lambda_adv L_adv(unlabeled)``; a term a run leaves out is 0."""
    return (ce + lambda_latent * latent + lambda_adv * adv_l) + lambda_unlabeled * (lambda_cons * cons
                                                                                     + lambda_adv * adv_u)


class LatentClasses(Method):
    name = "latent"
    settings = Settings

    def canonical(self, cfg: RunConfig) -> RunConfig:
        loss, latent, disc = cfg.settings.loss, cfg.settings.latent, cfg.discriminator
        if not loss.latent:
            latent = None
            loss = replace(loss, lambda_latent=None)
        elif latent is not None:
            if latent.target != "learned":
                latent = replace(latent, k=None)  # the width comes from the groups / the class count
            if latent.target != "manual":
                latent = replace(latent, groups={})
            if latent.target == "semantic_kl":
                latent = replace(latent, alpha=None)  # no co-occurrence matrix
        if not loss.consistency:
            loss = replace(loss, lambda_cons=None)
        if loss.adversarial == "none":
            loss, disc = replace(loss, lambda_adv=None), None
        if not (loss.consistency or loss.adversarial == "all"):
            loss = replace(loss, lambda_unlabeled=None)
        return replace(with_settings(cfg, loss=loss, latent=latent), discriminator=disc)

    def check(self, cfg: RunConfig) -> list[Problem]:
        loss, latent = cfg.settings.loss, cfg.settings.latent
        problems: list[Problem] = []
        if loss.latent and latent is None:
            problems.append(("latent", None, "loss.latent: true needs the latent section"))
        if loss.consistency and not loss.latent:
            problems.append(("loss.consistency", True, "needs the latent branch: set loss.latent: true"))
        for on, key in ((loss.latent, "lambda_latent"), (loss.consistency, "lambda_cons"),
                        (loss.adversarial != "none", "lambda_adv"),
                        (loss.consistency or loss.adversarial == "all", "lambda_unlabeled")):
            if on and getattr(loss, key) is None:
                problems.append((f"loss.{key}", None, "must be a number >= 0: a term of the run uses it"))
        if loss.adversarial != "none" and cfg.discriminator is None:
            problems.append(("discriminator", None, f"loss.adversarial: {loss.adversarial} needs the section"))
        if latent is not None and loss.latent:
            if latent.target == "learned" and latent.k is None:
                problems.append(("latent.k", None, "must be an integer >= 1 for latent.target: learned"))
            if latent.target == "manual" and not latent.groups:
                problems.append(("latent.groups", {}, "latent.target 'manual' needs supercategory -> class names"))
        return problems

    def draws(self, cfg: RunConfig) -> Draws:
        loss = cfg.settings.loss
        return replace(super().draws(cfg), unlabeled=loss.consistency or loss.adversarial == "all")

    def latent_width(self, cfg: RunConfig, num_classes: int) -> int | None:
        """k, the manual groups, |C| for the semantic variants, None without a branch."""
        latent = cfg.settings.latent
        if latent is None:
            return None
        if latent.target == "manual":
            return len(latent.groups)
        if latent.target in ("semantic", "semantic_kl"):
            return num_classes
        return latent.k

    def latent_from_semantic(self, cfg: RunConfig) -> bool:
        latent = cfg.settings.latent
        return latent is not None and latent.target == "semantic_kl"  # two semantic branches trained alike

    def discriminator(self, cfg: RunConfig, num_classes: int) -> nn.Module | None:
        return pixel_discriminator(cfg, num_classes)

    def objective(self, cfg: RunConfig, classes: list[str], num_labeled: int) -> Objective:
        return LatentObjective(cfg.settings, classes, cfg.optim.batch_size, num_labeled,
                               self.latent_width(cfg, len(classes)))


class LatentObjective(Objective):
    """Eqs. (11)-(12). State: the co-occurrence matrix M of eq. (7) (learned and manual targets) and the
    class -> supercategory lookup of the manual target."""

    def __init__(self, settings: Settings, classes: list[str], batch_size: int, num_labeled: int,
                 width: int | None) -> None:
        super().__init__()
        self.loss, self.latent, self.num_classes = settings.loss, settings.latent, len(classes)
        self.cooccurrence = None
        if self.latent is not None and self.latent.target != "semantic_kl":
            assert width is not None
            alpha = self.latent.alpha or min(1.0, batch_size / num_labeled)
            self.cooccurrence = L.CoOccurrence(self.num_classes, width, alpha)
        lookup = torch.full((256,), 255, dtype=torch.long)  # manual: a mask's classes -> their supercategories
        if self.latent is not None and self.latent.target == "manual":
            lookup[: len(classes)] = torch.tensor(group_index(classes, self.latent.groups))
        self.register_buffer("group_lookup", lookup, persistent=False)

    def generator(self, segment: Segment, discriminator: nn.Module | None, batch: Batch, step: int) -> Generated:
        loss = self.loss
        split = L.SplitBatch.current()
        lab, unl = segment(batch.image, batch.unlabeled)
        size = tuple(batch.image.shape[-2:])
        sem, sem_prob = probabilities(lab.semantic, size)
        mask, valid = batch.mask, batch.mask != 255
        zero = sem_prob.new_zeros(())
        parts: dict[str, Tensor] = {"ce": L.cross_entropy_loss(sem, mask, split=split)}
        kl = self.latent is not None and self.latent.target == "semantic_kl"
        lat_prob = None
        if lab.latent is not None:
            assert self.latent is not None
            lat, lat_prob = probabilities(lab.latent, size)
            parts["latent"] = self._latent_term(lat, lat_prob, mask, split)
            if self.cooccurrence is not None:
                self.cooccurrence.update(lat_prob, mask, split)
        u_sem_prob = u_lat_prob = None
        if unl is not None:
            assert batch.unlabeled is not None
            u_size = tuple(batch.unlabeled.shape[-2:])
            u_sem_prob = probabilities(unl.semantic, u_size)[1]
            u_lat_prob = probabilities(unl.latent, u_size)[1] if unl.latent is not None else None

        fakes: list[tuple[Tensor, Tensor | None]] = []
        adv_l = adv_u = cons = zero
        if loss.adversarial != "none":
            assert discriminator is not None
            judged = [(sem_prob, valid)] + ([(lat_prob, valid)] if kl else [])  # Table 5: both branches alike
            adv_l = sum((L.adversarial_loss(discriminator(p), v, split) for p, v in judged), zero)
            parts["adv_l"] = adv_l
            fakes += judged
        if loss.adversarial == "all" and u_sem_prob is not None:
            assert discriminator is not None
            judged = [(u_sem_prob, None)] + ([(u_lat_prob, None)] if kl else [])
            adv_u = sum((L.adversarial_loss(discriminator(p), split=split) for p, _ in judged), zero)
            parts["adv_u"] = adv_u
            fakes += judged
        if loss.consistency and u_sem_prob is not None:
            assert u_lat_prob is not None
            if kl:
                cons = L.symmetric_kl_loss(u_sem_prob, u_lat_prob, split)
            else:
                assert self.cooccurrence is not None
                cons = L.consistency_loss(u_lat_prob, u_sem_prob, self.cooccurrence.p_latent_given_class(), split)
            parts["cons"] = cons
        total = criterion(parts["ce"], parts.get("latent", zero), adv_l, cons, adv_u,
                          lambda_latent=loss.lambda_latent or 0.0, lambda_adv=loss.lambda_adv or 0.0,
                          lambda_cons=loss.lambda_cons or 0.0, lambda_unlabeled=loss.lambda_unlabeled or 0.0)
        return Generated(parts, total, *stack_fakes(fakes))

    def _latent_term(self, lat: Tensor, lat_prob: Tensor, mask: Tensor, split: L.SplitBatch | None) -> Tensor:
        """The latent branch's loss on labeled pixels: eqs. (3)-(5), or Table 5's cross-entropies."""
        assert self.latent is not None
        if self.latent.target == "learned":
            return L.latent_loss(lat_prob, mask, self.num_classes, split=split)
        if self.latent.target == "manual":
            return L.cross_entropy_loss(lat, self.group_lookup[mask], split=split)
        return L.cross_entropy_loss(lat, mask, split=split)  # semantic / semantic_kl: the semantic classes

    def discriminator_loss(self, discriminator: nn.Module, generated: Generated, batch: Batch) -> Tensor:
        return pixel_discriminator_loss(discriminator, generated, batch, self.num_classes)


METHOD = LatentClasses()

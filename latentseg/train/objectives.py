"""The objective of each method, one small pair of functions each: what the segmentation network minimises in an
iteration, and what its discriminator then minimises.

- ``latent``: the paper's method, eqs. (1)-(12), with Table 3's switches (``loss``) and Table 5's latent targets;
- ``hung``: Hung et al.'s baseline (AdvSemiSeg ``train.py``): adversarial loss and discriminator-gated
  self-training, with a pixel-wise discriminator;
- ``s4gan``: Mittal et al.'s baseline (semisup-semseg ``train_s4GAN.py``): feature matching and image-level
  self-training, with an image-level discriminator that also sees the image.

Every function takes the ``SegmentationStep`` (networks, co-occurrence matrix) and the iteration's ``Batch``.
When a "full" split leaves no unlabeled image (``data.full_unlabeled: none``), ``batch.unlabeled`` is None and
the terms on unlabeled images are off, as in AdvSemiSeg's full-data training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from latentseg import losses as L
from latentseg.models.deeplab import upsample
from latentseg.models.s4gan_discriminator import discriminator_input

if TYPE_CHECKING:
    from latentseg.train.step import SegmentationStep


@dataclass
class Batch:
    image: Tensor  # (N, 3, H, W), labeled
    mask: Tensor  # (N, H, W)
    unlabeled: Tensor | None  # (M, 3, H, W); None when no term needs one, or the split has none
    real_image: Tensor | None = None  # the discriminator's own labeled draw (discriminator.real: separate)
    real_mask: Tensor | None = None

    def real(self) -> tuple[Tensor, Tensor]:
        """The ground truth the discriminator sees as real: its own labeled draw, or this batch's."""
        if self.real_mask is not None and self.real_image is not None:
            return self.real_image, self.real_mask
        return self.image, self.mask


@dataclass
class Generated:
    """What an objective computed for the segmentation network, and what its discriminator judges next."""

    parts: dict[str, Tensor]  # named loss components, for the logs
    total: Tensor  # the segmentation network's loss
    fake: Tensor | None = None  # the discriminator's "fake" input (detached before its update); None: no update
    fake_valid: Tensor | None = None  # pixel discriminator: which pixels of ``fake`` count
    real: Tensor | None = None  # s4GAN: its "real" input (one-hot ground truth + image)


def _probabilities(logits: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Logits upsampled to the label size, and their softmax in float32."""
    up = upsample(logits, size)
    return up, up.float().softmax(1)


def latent_generator(s: SegmentationStep, batch: Batch, step: int) -> Generated:
    """Eqs. (11)-(12): ``L = L_ce + L_latent + 0.01 L_adv + 0.1 (L_cons + 0.01 L_adv)``, with Table 3's terms
    switched by ``loss`` and the latent branch's target by ``latent.target`` (Table 5)."""
    cfg, loss, C = s.cfg, s.cfg.loss, s.num_classes
    assert loss is not None
    split = L.SplitBatch.current()
    lab, unl = s.segment(batch.image, batch.unlabeled)
    size = tuple(batch.image.shape[-2:])
    sem, sem_prob = _probabilities(lab.semantic, size)
    mask, valid = batch.mask, batch.mask != 255
    zero = sem_prob.new_zeros(())
    parts: dict[str, Tensor] = {"ce": L.cross_entropy_loss(sem, mask, split=split)}
    kl = cfg.latent is not None and cfg.latent.target == "semantic_kl"
    lat_prob = None
    if lab.latent is not None:
        assert cfg.latent is not None
        lat, lat_prob = _probabilities(lab.latent, size)
        if cfg.latent.target == "learned":
            parts["latent"] = L.latent_loss(lat_prob, mask, C, split=split)
        elif cfg.latent.target == "manual":
            parts["latent"] = L.cross_entropy_loss(lat, s.group_lookup[mask], split=split)
        else:  # semantic / semantic_kl: the second branch predicts the semantic classes
            parts["latent"] = L.cross_entropy_loss(lat, mask, split=split)
        if s.cooccurrence is not None:
            s.cooccurrence.update(lat_prob, mask, split)
    u_sem_prob = u_lat_prob = None
    if unl is not None:
        assert batch.unlabeled is not None
        u_size = tuple(batch.unlabeled.shape[-2:])
        u_sem_prob = _probabilities(unl.semantic, u_size)[1]
        u_lat_prob = _probabilities(unl.latent, u_size)[1] if unl.latent is not None else None

    fakes: list[tuple[Tensor, Tensor | None]] = []
    adv_l = adv_u = cons = zero
    if loss.adversarial != "none":
        judged = [(sem_prob, valid)] + ([(lat_prob, valid)] if kl else [])  # Table 5: both branches alike
        adv_l = sum((L.adversarial_loss(s.discriminator(p), v, split) for p, v in judged), zero)
        parts["adv_l"] = adv_l
        fakes += judged
    if loss.adversarial == "all" and u_sem_prob is not None:
        judged = [(u_sem_prob, None)] + ([(u_lat_prob, None)] if kl else [])
        adv_u = sum((L.adversarial_loss(s.discriminator(p), split=split) for p, _ in judged), zero)
        parts["adv_u"] = adv_u
        fakes += judged
    if loss.consistency and u_sem_prob is not None:
        assert u_lat_prob is not None
        if kl:
            cons = L.symmetric_kl_loss(u_sem_prob, u_lat_prob, split)
        else:
            assert s.cooccurrence is not None
            cons = L.consistency_loss(u_lat_prob, u_sem_prob, s.cooccurrence.p_latent_given_class(), split)
        parts["cons"] = cons
    labeled = L.labeled_total(parts["ce"], parts.get("latent", zero), adv_l, loss.lambda_latent or 0.0,
                              loss.lambda_adv or 0.0)
    unlabeled = L.unlabeled_total(cons, adv_u, loss.lambda_cons or 0.0, loss.lambda_adv or 0.0)
    total = L.total_loss(labeled, unlabeled, loss.lambda_unlabeled or 0.0)
    return Generated(parts, total, *_stack(fakes))


def _stack(fakes: list[tuple[Tensor, Tensor | None]]) -> tuple[Tensor | None, Tensor | None]:
    """The pixel discriminator's fake input and its valid pixels (every pixel of an unlabeled prediction)."""
    if not fakes:
        return None, None
    probs = torch.cat([p for p, _ in fakes])
    valid = torch.cat([v if v is not None else p.new_ones(p.shape[0], *p.shape[2:], dtype=torch.bool)
                       for p, v in fakes])
    return probs, valid


def pixel_discriminator(s: SegmentationStep, generated: Generated, batch: Batch) -> Tensor:
    """Eq. (10) for Hung et al.'s pixel-wise discriminator: the detached predictions are fake (their ignored
    pixels masked), the one-hot ground truth of its "real" draw is real."""
    assert generated.fake is not None and s.discriminator is not None
    _, real_mask = batch.real()
    d = s.discriminator
    return L.discriminator_loss(d(generated.fake.detach()), d(L.one_hot_map(real_mask, s.num_classes)),
                                generated.fake_valid, real_mask != 255, L.SplitBatch.current())


def hung_generator(s: SegmentationStep, batch: Batch, step: int) -> Generated:
    """Hung et al.: ``L_ce + lambda_adv L_adv`` on labeled images, ``lambda_semi_adv L_adv + lambda_semi L_semi``
    on unlabeled ones, where ``L_semi`` is the cross-entropy against the argmax on the pixels the discriminator
    trusts (``sigmoid(D) >= mask_t``), from iteration ``semi_start`` on."""
    h = s.cfg.hung
    assert h is not None and s.discriminator is not None
    split = L.SplitBatch.current()
    lab, unl = s.segment(batch.image, batch.unlabeled)
    sem, sem_prob = _probabilities(lab.semantic, tuple(batch.image.shape[-2:]))
    valid = batch.mask != 255
    parts = {"ce": L.cross_entropy_loss(sem, batch.mask, split=split),
             "adv_l": L.adversarial_loss(s.discriminator(sem_prob), valid, split)}
    total = parts["ce"] + h.lambda_adv * parts["adv_l"]
    fakes: list[tuple[Tensor, Tensor | None]] = [(sem_prob, valid)]
    if unl is not None:
        assert batch.unlabeled is not None
        u_sem, u_prob = _probabilities(unl.semantic, tuple(batch.unlabeled.shape[-2:]))
        d_u = s.discriminator(u_prob)
        parts["adv_u"] = L.adversarial_loss(d_u, split=split)
        semi = L.self_training_loss(u_sem, d_u, h.mask_t, split) if step >= h.semi_start else u_prob.new_zeros(())
        parts["semi"] = semi
        total = total + h.lambda_semi_adv * parts["adv_u"] + h.lambda_semi * semi
        fakes.append((u_prob, None))
    return Generated(parts, total, *_stack(fakes))


def s4gan_generator(s: SegmentationStep, batch: Batch, step: int) -> Generated:
    """Mittal et al.: ``L_ce + lambda_fm L_fm + lambda_st L_st``. The discriminator (in training mode, dropout on,
    as in their code) scores each unlabeled prediction stacked with its image; ``L_st`` trains on the images it
    scores above the threshold (not at iteration 0, as theirs), ``L_fm`` matches its pooled features on those
    predictions to those on the ground truth of its own labeled draw."""
    g = s.cfg.s4gan
    assert g is not None and s.discriminator is not None
    split = L.SplitBatch.current()
    lab, unl = s.segment(batch.image, batch.unlabeled)
    sem, _ = _probabilities(lab.semantic, tuple(batch.image.shape[-2:]))
    parts = {"ce": L.cross_entropy_loss(sem, batch.mask, split=split)}
    if unl is None:  # no unlabeled image: the cross-entropy alone, and nothing for the discriminator to judge
        return Generated(parts, parts["ce"])
    assert batch.unlabeled is not None
    u_sem, u_prob = _probabilities(unl.semantic, tuple(batch.unlabeled.shape[-2:]))
    fake = discriminator_input(u_prob, batch.unlabeled)
    d_fake, f_fake = s.discriminator(fake)
    zero = u_prob.new_zeros(())
    parts["st"] = L.s4gan_self_training_loss(u_sem, d_fake, g.threshold, split) if step > 0 else zero
    real_image, real_mask = batch.real()
    real = discriminator_input(L.one_hot_map(real_mask, s.num_classes), real_image)
    _, f_real = s.discriminator(real)
    parts["fm"] = L.s4gan_feature_matching_loss(f_real, f_fake, split)
    total = L.s4gan_generator_total(parts["ce"], parts["fm"], parts["st"], g.lambda_fm, g.lambda_st)
    return Generated(parts, total, fake=fake, real=real)


def s4gan_discriminator(s: SegmentationStep, generated: Generated, batch: Batch) -> Tensor:
    """Mittal et al.'s discriminator loss: fake = the detached predictions + images, real = ground truth + images."""
    assert generated.fake is not None and generated.real is not None and s.discriminator is not None
    d_fake, _ = s.discriminator(generated.fake.detach())
    d_real, _ = s.discriminator(generated.real)
    return L.s4gan_discriminator_loss(d_fake, d_real, L.SplitBatch.current())


GeneratorLoss = Callable[["SegmentationStep", Batch, int], Generated]
DiscriminatorLoss = Callable[["SegmentationStep", Generated, Batch], Tensor]

# The one place that picks a method's objective (``cfg.objective``).
OBJECTIVES: dict[str, tuple[GeneratorLoss, DiscriminatorLoss]] = {
    "latent": (latent_generator, pixel_discriminator),
    "hung": (hung_generator, pixel_discriminator),
    "s4gan": (s4gan_generator, s4gan_discriminator),
}

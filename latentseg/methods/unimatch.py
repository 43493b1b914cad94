"""UniMatch (Yang et al., CVPR 2023; LiheYoung/UniMatch ``unimatch.py``) in Hung et al.'s protocol, for Table 6 (an
extension beyond the paper), and the variant "UniMatch + latent classes".

The objective (``unimatch.py:188``)::

    L = scale (lambda_x L_x + lambda_s1 L_s1 + lambda_s2 L_s2 + lambda_fp L_fp
               [+ lambda_latent L_latent + lambda_unlabeled_cons L_cons])

with UniMatch's weights 1, 0.25, 0.25, 0.5 and scale 1/2 (``unimatch`` in params.yaml). ``L_x`` is the labeled
cross-entropy; with ``ohem`` (their Cityscapes config) that of the batch's hard pixels only. ``L_s1``, ``L_s2``
train two strong views of the weak unlabeled batch, each with its own CutMix box, and ``L_fp`` trains the semantic
head on Dropout2d(p) of the trunk's features of the weak view. Their target is the weak view's detached argmax.
Each term sums the cross-entropy over the pixels whose confidence reaches ``threshold`` and divides by every
non-ignored pixel (``unimatch.py:176-186``). With ``latent_classes`` the paper's ``L_latent`` (labeled images) and
``L_cons`` (the weak view) join the bracket, with the co-occurrence matrix of eq. (7) as state, as
``methods.latent`` keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from latentseg import losses as L
from latentseg.config import STRICT, NonNegativeInt, Rate, RunConfig, Unit, Weight
from latentseg.methods.base import Batch, Draws, Generated, Method, Objective, Problem, Segment, with_settings
from latentseg.methods.latent import LatentConfig
from latentseg.methods.shared import probabilities
from latentseg.methods.unimatch_views import StrongView, cutmix, cutmix_boxes, mix_source
from latentseg.models.deeplab import upsample


@dataclass(frozen=True)
class UniMatchConfig:
    __pydantic_config__ = STRICT
    lambda_x: Weight  # the labeled cross-entropy
    lambda_s1: Weight  # the first strong view
    lambda_s2: Weight  # the second strong view
    lambda_fp: Weight  # the feature-perturbed weak view
    scale: Weight  # the bracket's factor: their "/ 2.0"
    ohem: bool  # L_x mines hard pixels (their Cityscapes config) instead of averaging every labeled pixel
    ohem_threshold: Unit | None  # tau: a pixel whose label's probability is at most this is hard
    ohem_min_kept: NonNegativeInt | None  # m: at least the batch's m hardest pixels count; 0: no mining
    threshold: Unit  # confidence of a pseudo-label that counts (configs/pascal.yaml conf_thresh)
    dropout: Unit  # Dropout2d probability of the feature perturbation
    jitter: tuple[Weight, Weight, Weight, Weight]  # ColorJitter brightness, contrast, saturation, hue
    jitter_p: Unit
    grayscale_p: Unit
    blur_p: Unit
    blur_sigma: tuple[Rate, Rate]
    cutmix_p: Unit  # probability that a view gets a box
    cutmix_area: tuple[Unit, Unit]  # the box's area, a fraction of the crop's
    cutmix_ratio: tuple[Rate, Rate]  # the box's aspect ratio
    latent_classes: bool  # add the paper's L_latent and L_cons ("UniMatch + latent classes")
    lambda_latent: Weight | None
    lambda_unlabeled_cons: Weight | None


@dataclass(frozen=True)
class Settings:
    __pydantic_config__ = STRICT
    unimatch: UniMatchConfig
    latent: LatentConfig | None  # the latent branch of "UniMatch + latent classes" (k, alpha); None: none


class UniMatch(Method):
    name = "unimatch"
    settings = Settings

    def canonical(self, cfg: RunConfig) -> RunConfig:
        u, latent = cfg.settings.unimatch, cfg.settings.latent
        if not u.ohem:
            u = replace(u, ohem_threshold=None, ohem_min_kept=None)
        if not u.latent_classes:
            u, latent = replace(u, lambda_latent=None, lambda_unlabeled_cons=None), None
        elif latent is not None:
            latent = replace(latent, groups={})
        return replace(with_settings(cfg, unimatch=u, latent=latent), discriminator=None)

    def check(self, cfg: RunConfig) -> list[Problem]:
        u, latent = cfg.settings.unimatch, cfg.settings.latent
        problems: list[Problem] = [(f"unimatch.{key}", None, "must be set: unimatch.ohem uses it")
                                   for key in ("ohem_threshold", "ohem_min_kept") if u.ohem and getattr(u, key) is None]
        if not u.latent_classes:
            return problems
        problems += [(f"unimatch.{key}", None, "must be a number >= 0: latent_classes uses it")
                     for key in ("lambda_latent", "lambda_unlabeled_cons") if getattr(u, key) is None]
        if latent is None:
            problems.append(("latent", None, "unimatch.latent_classes: true needs the latent section"))
        elif latent.target != "learned" or latent.k is None:
            problems.append(("latent.target", latent.target, "UniMatch + latent classes learns them: target "
                                                             "'learned' with an integer k"))
        return problems

    def draws(self, cfg: RunConfig) -> Draws:
        return Draws(unlabeled=True, real=False)

    def latent_width(self, cfg: RunConfig, num_classes: int) -> int | None:
        latent = cfg.settings.latent
        return latent.k if cfg.settings.unimatch.latent_classes and latent is not None else None

    def objective(self, cfg: RunConfig, classes: list[str], num_labeled: int) -> Objective:
        return UniMatchObjective(cfg.settings, len(classes), cfg.optim.batch_size, num_labeled, cfg.optim.seed)


def confident_ce(logits: Tensor, pseudo: Tensor, confidence: Tensor, valid: Tensor, threshold: float,
                 split: L.SplitBatch | None = None) -> Tensor:
    """UniMatch's unlabeled term: the per-pixel cross-entropy to ``pseudo`` summed over the valid pixels whose
    ``confidence`` reaches ``threshold``, divided by all valid pixels (unconfident ones included)."""
    per_pixel = F.cross_entropy(logits.float(), pseudo, reduction="none")
    counted = (confidence >= threshold) & valid
    return L.batch_mean((per_pixel * counted).sum(), valid.sum(), split)


@dataclass
class Targets:
    """The weak view's pseudo-labels, their confidence and the valid pixels, (M, H, W) each."""

    pseudo: Tensor
    confidence: Tensor
    valid: Tensor

    def mixed(self, box: Tensor) -> Targets:
        """The targets of a CutMix view: inside ``box`` those of the image mixed in (``unimatch.py:161-172``)."""
        return Targets(*(cutmix(t, mix_source(t), box) for t in (self.pseudo, self.confidence, self.valid)))


def criterion(x: Tensor, latent: Tensor, s1: Tensor, s2: Tensor, fp: Tensor, cons: Tensor, *, scale: float,
              lambda_x: float, lambda_latent: float, lambda_s1: float, lambda_s2: float, lambda_fp: float,
              lambda_unlabeled_cons: float) -> Tensor:
    """UniMatch's loss (``unimatch.py:188``, ``(L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2``), with the latent
    classes' terms inside the bracket: ``scale (lambda_x L_x + lambda_latent L_latent + lambda_s1 L_s1
    + lambda_s2 L_s2 + lambda_fp L_fp + lambda_unlabeled_cons L_cons)``; a term a run leaves out is 0.
    ``lambda_unlabeled_cons`` is the paper's ``lambda_unlabeled * lambda_cons``: the weight L_cons has in eq. (11)."""
    return scale * (lambda_x * x + lambda_latent * latent + lambda_s1 * s1 + lambda_s2 * s2 + lambda_fp * fp
                    + lambda_unlabeled_cons * cons)


class UniMatchObjective(Objective):
    """State: with latent classes, the co-occurrence matrix M of eq. (7)."""

    def __init__(self, settings: Settings, num_classes: int, batch_size: int, num_labeled: int,
                 seed: int = 0) -> None:
        super().__init__()
        # the state of the CPU stream the draws come from (``own_draws``), kept in every checkpoint
        self.rng = torch.Generator().manual_seed(seed + DRAWS_STREAM).get_state()
        self.u, self.num_classes = settings.unimatch, num_classes
        u = self.u
        self.cooccurrence = None
        if u.latent_classes:
            latent = settings.latent
            assert latent is not None and latent.k is not None
            self.cooccurrence = L.CoOccurrence(num_classes, latent.k,
                                               latent.alpha or min(1.0, batch_size / num_labeled))
        self.strong = StrongView(u.jitter, u.jitter_p, u.grayscale_p, u.blur_p, u.blur_sigma)

    @contextmanager
    def own_draws(self) -> Iterator[None]:
        """The iteration's random draws (strong views, boxes, Dropout2d masks: all from torch's global CPU
        generator) from a stream of the objective's own, saved with the checkpoint (``get_extra_state``), so a
        resumed run draws what the uninterrupted one would, whatever else draws from the global generator (a
        data loader's base seed, say). Each step takes one seed from the stream, plus the process's rank: the
        processes of a distributed run draw differently, and rank 0's checkpoint resumes all of them."""
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng)
            step_seed = int(torch.randint(2**62, ()))
            self.rng = torch.get_rng_state()
            torch.default_generator.manual_seed(step_seed + rank)
            yield

    def get_extra_state(self) -> Any:
        return {"rng": self.rng}

    def set_extra_state(self, state: Any) -> None:
        self.rng = state["rng"]

    def generator(self, segment: Segment, discriminator: nn.Module | None, batch: Batch, step: int) -> Generated:
        with self.own_draws():
            return self._generator(segment, batch)

    def mixed_view(self, weak: Tensor) -> tuple[Tensor, Tensor]:
        """A strong view of ``weak`` CutMixed, with boxes of its own (returned), from the same view of the next
        image (``unimatch.py:142-145``)."""
        u = self.u
        n, _, h, w = weak.shape
        view = self.strong(weak)
        box = cutmix_boxes(n, h, w, u.cutmix_p, u.cutmix_area, u.cutmix_ratio, weak.device)
        return cutmix(view, mix_source(view), box), box

    def _generator(self, segment: Segment, batch: Batch) -> Generated:
        u = self.u
        split = L.SplitBatch.current()
        size = tuple(batch.image.shape[-2:])
        weak = batch.unlabeled
        strong = box1 = box2 = None
        if weak is not None:
            (s1, box1), (s2, box2) = self.mixed_view(weak), self.mixed_view(weak)
            strong = torch.cat([s1, s2])
        outs = segment(batch.image, weak, strong, perturb=None if weak is None else (1, u.dropout))
        lab = outs[0]
        assert lab is not None
        parts: dict[str, Tensor] = {"x": self.labeled_ce(upsample(lab.semantic, size), batch.mask, split)}
        if lab.latent is not None:
            assert self.cooccurrence is not None and u.lambda_latent is not None
            lat_prob = probabilities(lab.latent, size)[1]
            parts["latent"] = L.latent_loss(lat_prob, batch.mask, self.num_classes, split=split)
            self.cooccurrence.update(lat_prob, batch.mask, split)
        if weak is not None:
            assert box1 is not None and box2 is not None
            unl, pred_s, pred_fp = outs[1], outs[2], outs[3]
            assert unl is not None and pred_s is not None and pred_fp is not None
            u_size = tuple(weak.shape[-2:])
            targets = self.targets(unl.semantic, u_size)
            s1_logits, s2_logits = upsample(pred_s.semantic, u_size).chunk(2)
            for name, logits, box in (("s1", s1_logits, box1), ("s2", s2_logits, box2)):
                mixed = targets.mixed(box)
                parts[name] = confident_ce(logits, mixed.pseudo, mixed.confidence, mixed.valid, u.threshold, split)
            parts["fp"] = confident_ce(upsample(pred_fp.semantic, u_size), targets.pseudo, targets.confidence,
                                       targets.valid, u.threshold, split)
            if unl.latent is not None:  # L_cons on the weak view: its latent prediction is the target
                assert self.cooccurrence is not None and u.lambda_unlabeled_cons is not None
                parts["cons"] = L.consistency_loss(probabilities(unl.latent, u_size)[1],
                                                   probabilities(unl.semantic, u_size)[1],
                                                   self.cooccurrence.p_latent_given_class(), split)
        zero = parts["x"].new_zeros(())
        total = criterion(*(parts.get(k, zero) for k in ("x", "latent", "s1", "s2", "fp", "cons")), scale=u.scale,
                          lambda_x=u.lambda_x, lambda_latent=u.lambda_latent or 0.0, lambda_s1=u.lambda_s1,
                          lambda_s2=u.lambda_s2, lambda_fp=u.lambda_fp,
                          lambda_unlabeled_cons=u.lambda_unlabeled_cons or 0.0)
        return Generated(parts, total)

    def labeled_ce(self, logits: Tensor, mask: Tensor, split: L.SplitBatch | None) -> Tensor:
        """``L_x``: eq. (1), or with ``ohem`` the cross-entropy of the batch's hard pixels (``unimatch.py:68-73``)."""
        u = self.u
        if not u.ohem:
            return L.cross_entropy_loss(logits, mask, split=split)
        assert u.ohem_threshold is not None and u.ohem_min_kept is not None
        return L.ohem_cross_entropy_loss(logits, mask, u.ohem_threshold, u.ohem_min_kept, split=split)

    def targets(self, weak_logits: Tensor, size: tuple[int, int]) -> Targets:
        """The weak view's detached pseudo-labels (argmax) and confidence (max softmax), in float32. Every
        pixel is valid: the unlabeled stream carries no padding mask (docs/decisions.md)."""
        prob = upsample(weak_logits.detach().float(), size).softmax(1)
        confidence, pseudo = prob.max(1)
        return Targets(pseudo, confidence, torch.ones_like(pseudo, dtype=torch.bool))


DRAWS_STREAM = 7919  # the objective's own stream of draws: seeded with optim.seed + this

METHOD = UniMatch()

"""What a method is: the contract between a module of ``latentseg/methods/`` and the trainer.

A method owns

- its settings (``Settings``: a dataclass whose fields are the ``params.yaml`` sections it reads, e.g. the paper's
  ``loss`` and ``latent``, Hung et al.'s ``hung``);
- what it prunes from a resolved run (``canonical``: a setting the run does not use is None, so changing it
  re-trains no run that ignores it) and the combinations it refuses (``check``);
- its networks beside the segmentation network: the latent head's width and its discriminator, if any;
- what an iteration draws (``Draws``);
- its objective (``Objective``): what the segmentation network minimises and what its discriminator minimises,
  with the method's own state (the co-occurrence matrix of eq. 7, say) as buffers saved in every checkpoint.

An objective receives the networks it uses (``segment``, the discriminator) and the iteration's ``Batch``; it
knows nothing of optimisers, devices or the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from torch import Tensor, nn

from latentseg.config import RunConfig
from latentseg.models.deeplab import SegOutput

Segment = Callable[..., list[SegOutput | None]]  # (images, ...) -> the network's output on each (None: none)
Problem = tuple[str, Any, str]  # (key, value, what is wrong): reported by resolve, one line each


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


@dataclass(frozen=True)
class Draws:
    """What one iteration draws besides the labeled batch."""

    unlabeled: bool  # an unlabeled batch of the same size
    real: bool  # a labeled batch of its own for the discriminator's "real" side


class Objective(nn.Module):
    """A run's objective. Its buffers are the method's state; ``generator`` is called under autocast."""

    def generator(self, segment: Segment, discriminator: nn.Module | None, batch: Batch, step: int) -> Generated:
        raise NotImplementedError

    def discriminator_loss(self, discriminator: nn.Module, generated: Generated, batch: Batch) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} trains no discriminator")


class Method:
    """One entry of the registry (``latentseg.methods.METHODS``); a module defines one instance, ``METHOD``."""

    name: ClassVar[str]  # the value of ``objective`` in params.yaml that selects it
    settings: ClassVar[type]  # dataclass: one field per params.yaml section the method reads

    def canonical(self, cfg: RunConfig) -> RunConfig:
        return cfg

    def check(self, cfg: RunConfig) -> list[Problem]:
        return []

    def draws(self, cfg: RunConfig) -> Draws:
        d = cfg.discriminator
        return Draws(unlabeled=True, real=d is not None and d.real == "separate")

    def latent_width(self, cfg: RunConfig, num_classes: int) -> int | None:
        """Channels of the latent head; None: no latent branch."""
        return None

    def latent_from_semantic(self, cfg: RunConfig) -> bool:
        """Whether the latent head starts as a copy of the initial semantic head."""
        return False

    def discriminator(self, cfg: RunConfig, num_classes: int) -> nn.Module | None:
        return None

    def objective(self, cfg: RunConfig, classes: list[str], num_labeled: int) -> Objective:
        raise NotImplementedError

    @property
    def sections(self) -> tuple[str, ...]:
        return tuple(self.settings.__dataclass_fields__)


def with_settings(cfg: RunConfig, **sections: Any) -> RunConfig:
    """``cfg`` with some of its method's sections replaced."""
    return replace(cfg, settings=replace(cfg.settings, **sections))

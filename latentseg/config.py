"""Typed configuration of one training run, read from plain dictionaries (``params.yaml`` sections).

The dataclasses hold no defaults: ``params.yaml`` is the one home of every value, so a field here is a field
``params.yaml`` must fill. ``from_dict`` rejects unknown keys and missing keys with the path of the key, so a
typo fails loudly instead of being ignored. A section or a value typed ``X | None`` is one that a resolved run
may not use (``experiments.canonical`` sets it to None there, so that changing it re-trains no run that ignores
it); it must still be written out, as ``null``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

Objective = Literal["latent", "hung", "s4gan"]
# How the image classifier filters a prediction (evaluate.filter_by_classifier): Mittal et al.'s evaluate.py
# multiplies a rejected class's logit map by 0; "remove" takes it out of the argmax.
FilterMode = Literal["zero_logits", "remove"]


@dataclass(frozen=True)
class ModelConfig:
    backbone: str  # resnet101 (the paper) or tiny (the demo's CPU-sized trunk of the same shape)
    aspp_branches: int  # how many ASPP branches are summed: 4 in DeepLab-v2, 2 in AdvSemiSeg's code
    freeze_bn_stats: bool  # True: DeepLab-v2's frozen statistics; False: batch statistics, as AdvSemiSeg trains


@dataclass(frozen=True)
class DataConfig:
    crop_size: tuple[int, int]  # (H, W) of the random training crop
    random_scale: bool  # rescale each training image by a factor drawn from scale_range in steps of scale_step
    scale_range: tuple[float, float] | None
    scale_step: float | None
    mirror: bool  # random horizontal flips
    resize: tuple[int, int] | None  # (H, W) applied first, training and evaluation; Cityscapes: (512, 1024)
    workers: int  # data-loading processes per training stream
    eval_pad: int | None  # pad validation images to this square (VOC: 505, padding ignored)
    # What the unlabeled stream of a "full" split (no unlabeled image) holds: "none" turns the terms on
    # unlabeled images off; "labeled" feeds the labeled images, unlabeled. None: the split is not full.
    full_unlabeled: Literal["none", "labeled"] | None


@dataclass(frozen=True)
class OptimConfig:
    iterations: int
    batch_size: int  # labeled images per iteration, all processes together; as many unlabeled
    lr: float
    head_lr_mult: float  # the ASPP heads learn this many times faster
    momentum: float
    weight_decay: float
    power: float  # poly decay: lr * (1 - step / iterations) ** power
    seed: int


@dataclass(frozen=True)
class LossConfig:
    """The paper's objective, eqs. (11)-(12): which terms are on (Table 3) and their weights."""

    latent: bool
    consistency: bool
    adversarial: Literal["all", "labeled", "none"]  # which predictions the discriminator judges
    lambda_latent: float | None
    lambda_cons: float | None
    lambda_adv: float | None
    lambda_unlabeled: float | None


@dataclass(frozen=True)
class LatentConfig:
    # learned: eqs. (3)-(9). manual: cross-entropy on fixed supercategories (``groups``). semantic: the latent
    # branch predicts the semantic classes. semantic_kl: two semantic branches with a symmetric KL (Table 5).
    target: Literal["learned", "manual", "semantic", "semantic_kl"]
    k: int | None  # maximum number of latent classes (Table 4); None where the width comes from elsewhere
    groups: dict[str, list[str]]  # manual: supercategory -> class names
    alpha: float | None  # eq. (7) momentum; None = batch size / labeled images


@dataclass(frozen=True)
class HungConfig:
    """Hung et al.'s objective (AdvSemiSeg train.py): adversarial loss and discriminator-gated self-training."""

    lambda_adv: float  # --lambda-adv-pred, on labeled predictions
    lambda_semi: float
    lambda_semi_adv: float
    mask_t: float
    semi_start: int


@dataclass(frozen=True)
class S4ganConfig:
    """Mittal et al.'s s4GAN objective (train_s4GAN.py): feature matching and image-level self-training."""

    lambda_fm: float
    lambda_st: float
    threshold: float  # discriminator score above which an unlabeled prediction becomes its own label


@dataclass(frozen=True)
class DiscriminatorConfig:
    width: int  # channels of the first convolution (64 in both papers)
    lr: float  # Adam, with the same poly decay as the segmentation network
    betas: tuple[float, float]
    # Where the ground-truth maps it sees as "real" come from: "separate", a labeled stream of their own (both
    # AdvSemiSeg's and s4GAN's trainloader_gt), or "batch", the masks of the iteration's labeled batch.
    real: Literal["separate", "batch"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Mittal et al.'s image-level classifier (MLMT, their ``train_mlmt.py``) that filters the segmentation."""

    backbone: str  # resnet101 (torchvision's, their network) | resnet18 | tiny (the demo's): stride 32, fc -> C
    epochs: int  # their --num-epochs; an epoch is one pass over the labeled images
    steps_per_epoch: int | None  # None: one pass over the labeled loader (theirs); a number fixes it (the demo)
    batch_size_labeled: int  # --batch-size-lab
    batch_size_unlabeled: int  # --batch-size-unlab
    lr: float  # SGD, cosine annealing per epoch from lr to lr_min (their --eta-min)
    lr_min: float
    momentum: float
    nesterov: bool
    weight_decay: float
    ema: float  # the mean teacher's decay is min(1 - 1 / (step + 1), ema)
    lambda_cons: float  # cap of the consistency weight (their --w-cons)
    burn_in_epochs: int  # consistency weight 0 up to this epoch, then min(lambda_cons, (e - burn_in) * 2 / epochs)
    input_size: int  # every image resized to input_size x input_size (bilinear), training and test
    color_jitter: tuple[float, float, float, float]  # brightness, contrast, saturation, hue of the student's view
    blur_sigma: tuple[float, float]  # range of the student's view's Gaussian blur
    threshold: float  # a class whose probability is below it is rejected by the filter
    filter: FilterMode


@dataclass(frozen=True)
class RuntimeConfig:
    device: str  # auto | cpu | cuda
    amp: bool  # bf16 autocast on CUDA; ignored on the CPU
    channels_last: bool  # NHWC weights and images on CUDA (what cuDNN's tensor-core convolutions want)
    compile: bool  # torch.compile the segmentation network; eager (logged) if compiling fails
    log_every: int  # a progress line and the training curves every this many steps
    checkpoint_every: int
    eval_every: int  # validation mIoU during training every this many steps (0: only at the end)
    parallel_runs: int  # runs (seeds) of one experiment trained side by side, one process each


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    init: str  # coco | imagenet | none: which initial weights (stage weights)
    objective: Objective  # latent: the paper's method; hung: Hung et al.'s; s4gan: Mittal et al.'s
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    loss: LossConfig | None  # the latent objective's terms
    latent: LatentConfig | None  # None: no latent branch
    hung: HungConfig | None
    s4gan: S4ganConfig | None
    discriminator: DiscriminatorConfig | None  # None: no discriminator
    runtime: RuntimeConfig


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``values``; unknown or missing keys raise ``KeyError`` naming ``where.key``."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise KeyError(f"unknown configuration key(s) {', '.join(f'{where}{k}' for k in unknown)}; "
                       f"valid keys of {where.rstrip('.') or 'the run'}: {', '.join(sorted(names))}")
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"configuration key(s) {', '.join(f'{where}{k}' for k in missing)} missing: every setting "
                       "has its value in params.yaml (write null where a run does not use it)")
    return cls(**{name: _coerce(hints[name], values[name], f"{where}{name}") for name in names})


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _coerce(hint, value, where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"{where} must be a mapping, got {value!r}")
        return from_dict(hint, value, where + ".")
    if value is None:
        raise TypeError(f"{where} must not be null")
    if origin is tuple and isinstance(value, list | tuple):
        if len(value) != len(args):
            raise ValueError(f"{where} needs {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where} must be one of {args}, got {value!r}")
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise TypeError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-friendly dictionary of a config (tuples as lists), saved next to every run."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))

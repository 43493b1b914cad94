"""Typed configuration of one training run, read from plain dictionaries (``params.yaml`` sections).

Every default is the paper's (or, where the paper is silent, Hung et al.'s public code). Unknown keys are
rejected with the path of the key, so a typo in ``params.yaml`` fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet101"  # "tiny" for CPU runs of the demo
    # DeepLab-v2 sums all four ASPP branches; 2 reproduces AdvSemiSeg's early return (see models/aspp.py).
    aspp_branches: int = 4
    # DeepLab-v2 freezes batch-norm statistics; False normalises with batch statistics (AdvSemiSeg's port).
    freeze_bn_stats: bool = True
    discriminator_width: int = 64


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # a prepared data set folder (see data/layout.py)
    labeled_list: str = ""  # split lists written by the split stage
    unlabeled_list: str = ""
    crop_size: tuple[int, int] = (321, 321)
    scale_range: tuple[float, float] = (0.5, 1.5)  # Hung et al.: random scale 0.5-1.5 in steps of 0.1
    scale_step: float = 0.1
    mirror: bool = True
    resize: tuple[int, int] | None = None  # (H, W) applied before cropping; Cityscapes: (512, 1024)
    workers: int = 2
    eval_pad: int | None = 505  # VOC evaluation pads to 505x505 (padding ignored); None for Cityscapes


@dataclass(frozen=True)
class OptimConfig:
    iterations: int = 20000
    batch_size: int = 10  # labeled images per step; as many unlabeled
    lr: float = 2.5e-4
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    power: float = 0.9  # poly decay
    d_lr: float = 1e-4
    d_betas: tuple[float, float] = (0.9, 0.99)
    seed: int = 1234


@dataclass(frozen=True)
class LossConfig:
    """Which terms of eqs. (11)-(12) are on (Table 3) and their weights."""

    latent: bool = True
    consistency: bool = True
    adversarial: Literal["all", "labeled", "none"] = "all"
    lambda_latent: float = 1.0
    lambda_cons: float = 1.0
    lambda_adv: float = 0.01
    lambda_unlabeled: float = 0.1


@dataclass(frozen=True)
class LatentConfig:
    k: int = 20  # maximum number of latent classes (Table 4)
    # learned: eqs. (3)-(9). manual: cross-entropy on fixed supercategories (``groups``). semantic: the latent
    # branch predicts the semantic classes. semantic_kl: two semantic branches with a symmetric KL (Table 5).
    target: Literal["learned", "manual", "semantic", "semantic_kl"] = "learned"
    groups: dict[str, list[str]] = field(default_factory=dict)  # manual: supercategory -> class names
    alpha: float | None = None  # eq. (7) momentum; None = batch size / labeled images


@dataclass(frozen=True)
class SelfTrainingConfig:
    """Hung et al.'s semi-supervised recipe (their public code's defaults)."""

    enabled: bool = False
    lambda_semi: float = 0.1
    lambda_semi_adv: float = 0.001
    mask_t: float = 0.2
    semi_start: int = 5000


@dataclass(frozen=True)
class ClassifierConfig:
    """Mittal et al.'s image-level classifier that filters the segmentation at inference."""

    enabled: bool = False
    backbone: str = "resnet101"
    iterations: int = 20000
    batch_size: int = 10
    lr: float = 1e-3
    ema: float = 0.999
    lambda_cons: float = 1.0
    threshold: float = 0.2
    input_size: int = 321


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    channels_last: bool = True  # NHWC weights and images on CUDA (what cuDNN's tensor-core convolutions want)
    compile: bool = False  # torch.compile the segmentation network; eager (logged) if compiling fails
    log_every: int = 50
    checkpoint_every: int = 1000
    eval_every: int = 0  # 0: only at the end


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "voc"
    init: str = "coco"  # coco | imagenet | none (which initial weights; see weights stage)
    init_weights: str = ""  # path to the initial weights file for ``init``
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def uses_latent_branch(self) -> bool:
        return self.loss.latent or self.latent.target == "semantic_kl"


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``values``; unknown keys raise ``KeyError`` naming ``where.key``."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise KeyError(f"unknown configuration key(s) {', '.join(f'{where}{k}' for k in unknown)}; "
                       f"valid keys of {where.rstrip('.') or 'the run'}: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"{where} must be a mapping, got {value!r}")
        return from_dict(hint, value, where + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _coerce(hint, value, where)
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

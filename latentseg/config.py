"""Typed configuration of one training run, read from plain dictionaries (``params.yaml`` sections).

The dataclasses hold no defaults: ``params.yaml`` is the one home of every value, so a field here is a field
``params.yaml`` must fill. Every field has a type and, where a value can be out of range, a range (``PositiveInt``,
``Rate``, ``Weight`` ...); ``from_dict`` checks them with pydantic and raises ``SettingsError``, one problem a line,
naming the key and the value. Unknown and missing keys are problems too, so a typo fails loudly instead of being
ignored. A section or a value typed ``X | None`` is one that a resolved run may not use (the method's ``canonical``
sets it to None there, so that changing it re-trains no run that ignores it); it must still be written out, as
``null``.

The sections every run has live here; each method's own section lives with its method (``latentseg/methods/``),
and ``RunConfig.settings`` holds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from latentseg.util.progress import UserError

PositiveInt = Annotated[int, Field(ge=1)]  # counts, sizes, steps
NonNegativeInt = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(gt=0.0)]  # learning rates
Weight = Annotated[float, Field(ge=0.0)]  # loss weights, decays
Unit = Annotated[float, Field(ge=0.0, le=1.0)]  # momenta, thresholds on probabilities
Size = tuple[PositiveInt, PositiveInt]  # (H, W)
# auto | cpu | cuda | cuda:<n>: the syntax is checked with the settings, whether the machine has it where it is
# used (latentseg/util/devices.py), at the start of the stage
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]
STRICT = ConfigDict(extra="forbid")  # every settings class: unknown keys are errors
# How the image classifier filters a prediction (evaluate.filter_by_classifier): Mittal et al.'s evaluate.py
# multiplies a rejected class's logit map by 0; "remove" takes it out of the argmax.
FilterMode = Literal["zero_logits", "remove"]


@dataclass(frozen=True)
class ModelConfig:
    __pydantic_config__ = STRICT
    backbone: Literal["resnet101", "tiny"]  # resnet101 (the paper) or tiny (the demo's CPU-sized trunk)
    aspp_branches: Annotated[int, Field(ge=1, le=4)]  # ASPP branches summed: 4 in DeepLab-v2, 2 in AdvSemiSeg's code
    freeze_bn_stats: bool  # True: DeepLab-v2's frozen statistics; False: batch statistics, as AdvSemiSeg trains


@dataclass(frozen=True)
class DataConfig:
    __pydantic_config__ = STRICT
    crop_size: Size  # (H, W) of the random training crop
    random_scale: bool  # rescale each training image by a factor drawn from scale_range in steps of scale_step
    scale_range: tuple[Rate, Rate] | None
    scale_step: Rate | None
    mirror: bool  # random horizontal flips
    resize: Size | None  # (H, W) applied first, training and evaluation; Cityscapes: (512, 1024)
    workers: NonNegativeInt  # data-loading processes per training stream
    in_memory: bool  # keep every decoded image and mask in memory (per process): for data sets that fit
    eval_pad: PositiveInt | None  # pad validation images to this square (VOC: 505, padding ignored)
    # What the unlabeled stream of a "full" split (no unlabeled image) holds: "none" turns the terms on
    # unlabeled images off; "labeled" feeds the labeled images, unlabeled. None: the split is not full.
    full_unlabeled: Literal["none", "labeled"] | None


@dataclass(frozen=True)
class OptimConfig:
    __pydantic_config__ = STRICT
    iterations: PositiveInt
    batch_size: PositiveInt  # labeled images per iteration, all processes together; as many unlabeled
    lr: Rate
    head_lr_mult: Rate  # the ASPP heads learn this many times faster
    momentum: Unit
    weight_decay: Weight
    power: Weight  # poly decay: lr * (1 - step / iterations) ** power
    seed: int


@dataclass(frozen=True)
class DiscriminatorConfig:
    __pydantic_config__ = STRICT
    width: PositiveInt  # channels of the first convolution (64 in both papers)
    lr: Rate  # Adam, with the same poly decay as the segmentation network
    betas: tuple[Unit, Unit]
    # Where the ground-truth maps it sees as "real" come from: "separate", a labeled stream of their own (both
    # AdvSemiSeg's and s4GAN's trainloader_gt), or "batch", the masks of the iteration's labeled batch.
    real: Literal["separate", "batch"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Mittal et al.'s image-level classifier (MLMT, their ``train_mlmt.py``) that filters the segmentation."""

    __pydantic_config__ = STRICT
    backbone: Literal["resnet101", "resnet18", "tiny"]  # torchvision's resnet101 (theirs) | resnet18 | tiny (demo)
    epochs: PositiveInt  # their --num-epochs; an epoch is one pass over the labeled images
    steps_per_epoch: PositiveInt | None  # None: one pass over the labeled loader (theirs); a number fixes it (demo)
    batch_size_labeled: PositiveInt  # --batch-size-lab
    batch_size_unlabeled: PositiveInt  # --batch-size-unlab
    lr: Rate  # SGD, cosine annealing per epoch from lr to lr_min (their --eta-min)
    lr_min: Weight
    momentum: Unit
    nesterov: bool
    weight_decay: Weight
    ema: Unit  # the mean teacher's decay is min(1 - 1 / (step + 1), ema)
    w_cons: Weight  # cap of the consistency weight (their --w-cons)
    burn_in_epochs: NonNegativeInt  # weight 0 up to this epoch, then min(w_cons, (e - burn_in) * 2 / epochs)
    input_size: PositiveInt  # every image resized to input_size x input_size (bilinear), training and test
    color_jitter: tuple[Weight, Weight, Weight, Weight]  # brightness, contrast, saturation, hue of the student's view
    blur_sigma: tuple[Rate, Rate]  # range of the student's view's Gaussian blur
    threshold: Unit  # a class whose probability is below it is rejected by the filter
    filter: FilterMode


@dataclass(frozen=True)
class RuntimeConfig:
    __pydantic_config__ = STRICT
    device: Device
    amp: bool  # bf16 autocast on CUDA; ignored on the CPU
    channels_last: bool  # NHWC weights and images on CUDA (what cuDNN's tensor-core convolutions want)
    compile: bool  # torch.compile the segmentation network; eager (logged) if compiling fails
    log_every: PositiveInt  # a progress line and the training curves every this many steps
    checkpoint_every: PositiveInt
    eval_every: NonNegativeInt  # validation mIoU during training every this many steps (0: only at the end)
    parallel_runs: PositiveInt  # runs of a data set trained side by side, one process each
    # torch's threads per run; null: the machine's cores over parallel_runs. Fixed, a run rounds alike on any
    # machine of any core count (the demo: 1, which is also the fastest for its small networks)
    threads: PositiveInt | None


@dataclass(frozen=True)
class RunConfig:
    """One training run. ``objective`` names its method (``latentseg/methods/<objective>.py``), whose own
    settings are ``settings`` (built and checked by ``methods.run_config``)."""

    __pydantic_config__ = STRICT
    dataset: str
    init: Literal["coco", "imagenet", "none"]  # which initial weights (stage weights)
    objective: str
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    settings: Any  # the method's settings dataclass
    discriminator: DiscriminatorConfig | None  # None: no discriminator
    runtime: RuntimeConfig


class SettingsError(UserError):
    """Settings that do not check: ``problems`` holds one ``(key, value, message)`` per problem."""

    def __init__(self, problems: list[tuple[str, Any, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key} = {value!r}: {message}" for key, value, message in problems))

    def prefixed(self, prefix: str) -> SettingsError:
        return SettingsError([(prefix + key, value, message) for key, value, message in self.problems])


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build settings dataclass ``cls`` from ``values``, checking every type and range; ``SettingsError``
    names each bad key as ``where.key``."""
    try:
        return _adapter(cls).validate_python(dict(values or {}))
    except ValidationError as err:
        raise SettingsError([(where + ".".join(map(str, e["loc"])), _shown(e), _message(e, cls))
                             for e in err.errors()]) from None


class _Unset:
    def __repr__(self) -> str:
        return "(not set)"


def _shown(error: Any) -> Any:
    return _Unset() if error["type"] == "missing" else error["input"]


def _adapter(cls: type) -> TypeAdapter:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


_ADAPTERS: dict[type, TypeAdapter] = {}


def _message(error: Any, cls: type) -> str:
    """pydantic's error as a short instruction."""
    kind, ctx = error["type"], error.get("ctx") or {}
    bound = next(iter(ctx.values()), None)
    number = "an integer" if isinstance(bound, int) else "a number"
    if isinstance(bound, float) and bound.is_integer():
        bound = int(bound)
    words = {
        "greater_than_equal": f"must be {number} >= {bound}", "greater_than": f"must be {number} > {bound}",
        "less_than_equal": f"must be {number} <= {bound}", "less_than": f"must be {number} < {bound}",
        "int_parsing": "must be an integer", "int_type": "must be an integer",
        "int_from_float": "must be an integer", "float_parsing": "must be a number", "float_type": "must be a number",
        "bool_parsing": "must be true or false", "bool_type": "must be true or false",
        "string_type": "must be a string", "literal_error": f"must be one of {ctx.get('expected')}",
        "missing": "missing: every setting has its value in params.yaml (write null where a run does not use it)",
        "unexpected_keyword_argument": "unknown key (a typo?)",
        "dataclass_type": "must be a mapping of settings", "dict_type": "must be a mapping",
        "tuple_type": "must be a list", "too_short": "has too few values", "too_long": "has too many values",
        "string_pattern_mismatch": "must be auto, cpu, cuda or cuda:<n>",  # the one pattern: Device
    }
    return words.get(kind, error["msg"][0].lower() + error["msg"][1:])


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-friendly dictionary of a config (tuples as lists), saved next to every run."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))

"""Mittal et al.'s image-level classifier (their "MLMT" branch), for "Proposed + Classifier" and "s4GAN + MLMT".

As their ``train_mlmt.py`` trains it (each setting is in ``params.yaml: classifier``): torchvision's ResNet-101
with its ``fc`` replaced by a C-way linear layer (stride 32, batch norm trainable and in ``train()`` mode),
multi-hot labels of the classes in the whole image, binary cross-entropy on the labeled images, and a mean-teacher
consistency on the unlabeled ones: the cosine embedding loss between the student's logits on a colour-jittered,
blurred view and the teacher's logits on a plain one, ramped in after the burn-in epochs. The teacher is an
exponential moving average of the student's parameters (its batch-norm statistics are its own); it is the
classifier that filters the segmentation (``evaluate.filter_by_classifier``), from its probabilities on the
validation images resized to the input size (``class_probabilities``).

Every random draw (sampling, flips, jitter, blur) comes from seeds of (seed, stream, epoch, position), so a
classifier is the same whatever the number of loading processes. Importing this module imports torchvision; the
training stages never import it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.models import resnet18, resnet101
from torchvision.models.resnet import BasicBlock, ResNet, conv1x1
from torchvision.transforms import v2

from latentseg.config import ClassifierConfig, to_dict
from latentseg.data.augment import MEAN_RGB
from latentseg.data.dataset import load_image, load_mask
from latentseg.data.layout import DatasetMeta, Sample, read_list, samples_digest
from latentseg.util.closure import NOT_COMPUTATION, fingerprint
from latentseg.util.files import atomic_torch_save, file_digest, read_torch
from latentseg.util.progress import Progress

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # their channel_stats
STREAM_LABELED, STREAM_UNLABELED = 0, 1
FORMAT = "latentseg-classifier"
View = Callable[[Tensor], Tensor]  # (3, H, W) uint8 RGB -> (3, s, s) float32, normalised


class TinyResNet(ResNet):
    """The demo's trunk: torchvision's ResNet (its forward, names and initialisation) with one BasicBlock per
    stage, 16 to 128 channels."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        nn.Module.__init__(self)
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = [width, width, 2 * width, 4 * width, 8 * width]
        for i in range(1, 5):
            down = nn.Sequential(conv1x1(widths[i - 1], widths[i], 1 if i == 1 else 2), nn.BatchNorm2d(widths[i]))
            block = BasicBlock(widths[i - 1], widths[i], 1 if i == 1 else 2, None if i == 1 else down)
            setattr(self, f"layer{i}", nn.Sequential(block))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


BACKBONES: dict[str, Callable[[int], ResNet]] = {
    "resnet101": lambda c: resnet101(num_classes=c), "resnet18": lambda c: resnet18(num_classes=c),
    "tiny": TinyResNet}


class ImageClassifier(nn.Module):
    """A torchvision ResNet (``net``) whose ``fc`` gives one logit per class; sigmoid: the class is in the image."""

    def __init__(self, num_classes: int, backbone: str, input_size: int) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown classifier backbone {backbone!r}; choose one of {sorted(BACKBONES)} "
                             "(classifier.backbone)")
        self.net, self.backbone, self.input_size = BACKBONES[backbone](num_classes), backbone, input_size

    @property
    def num_classes(self) -> int:
        return self.net.fc.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def preprocess(self, pixels: Tensor) -> Tensor:
        """(3, H, W) uint8 RGB -> the network's (3, s, s) input, as the test images are read."""
        return test_view(self.input_size)(pixels)


def _to_input(size: int) -> list:
    return [v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)]


def _normalise() -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def test_view(size: int) -> View:
    return v2.Compose([*_to_input(size), *_normalise()])


def plain_view(size: int) -> View:
    """The labeled images' and the teacher's view (their ``transform_train``): resize, random flip."""
    return v2.Compose([*_to_input(size), v2.RandomHorizontalFlip(), *_normalise()])


def strong_view(cfg: ClassifierConfig) -> View:
    """The student's unlabeled view (``transform_aug``): resize, colour jitter, random flip, Gaussian blur (their
    PIL blur of radius sigma; here a kernel of 2 ceil(3 sigma_max) + 1 taps)."""
    kernel = 2 * math.ceil(3 * cfg.blur_sigma[1]) + 1
    return v2.Compose([*_to_input(cfg.input_size), v2.ColorJitter(*cfg.color_jitter), v2.RandomHorizontalFlip(),
                       v2.GaussianBlur(kernel, sigma=cfg.blur_sigma), *_normalise()])


def image_labels(mask: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(H, W) mask -> (C,) float multi-hot vector of the classes present anywhere in it (ignored pixels aside)."""
    values = mask[mask != ignore_index].long().flatten()
    return (torch.bincount(values, minlength=num_classes)[:num_classes] > 0).float()


class ClassifierImages(Dataset):
    """``(index, seed)`` -> ``(view_1, ..., view_n, labels)``: the views of one image, their random draws seeded by
    ``seed``; ``labels`` (C,) from its whole mask when ``num_classes`` is given, else an empty tensor."""

    def __init__(self, root: Path, samples: list[Sample], views: list[View], num_classes: int | None = None,
                 ignore_index: int = 255) -> None:
        self.root, self.samples, self.views = Path(root), samples, views
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, ...]:
        index, seed = key
        sample = self.samples[index]
        pixels = load_image(self.root / sample.image)
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global generator
            torch.manual_seed(seed)
            views = [view(pixels) for view in self.views]
        labels = torch.zeros(0)
        if self.num_classes is not None:
            labels = image_labels(load_mask(self.root / sample.mask), self.num_classes, self.ignore_index)
        return (*views, labels)


def epoch_batches(n: int, batch_size: int, seed: int, stream: int, epoch: int,
                  steps: int | None) -> list[list[tuple[int, int]]]:
    """The batches of ``(index, draw seed)`` of one epoch: a fresh permutation in batches, the last one smaller (a
    shuffled ``DataLoader``); with ``steps``, exactly that many, later permutations following an exhausted one (their
    unlabeled iterator, restarted each epoch and when exhausted)."""
    batches: list[list[tuple[int, int]]] = []
    for k in itertools.count():
        perm = np.random.default_rng([seed, stream, epoch, k]).permutation(n)
        for lo in range(0, n, batch_size):
            if steps is not None and len(batches) == steps:
                return batches
            draws = np.random.SeedSequence([seed, stream, epoch, k, lo]).generate_state(batch_size)
            batches.append([(int(i), int(d)) for i, d in zip(perm[lo: lo + batch_size], draws, strict=False)])
        if steps is None:
            return batches
    raise AssertionError("unreachable")  # itertools.count() does not end


class EpochSampler(Sampler[list[tuple[int, int]]]):
    def __init__(self, n: int, batch_size: int, seed: int, stream: int, epochs: int, steps: int | None) -> None:
        if n == 0:
            raise ValueError("a classifier stream has no images; check the split lists")
        self.args, self.epochs, self.steps = (n, batch_size, seed, stream), epochs, steps

    def __len__(self) -> int:
        return self.epochs * (self.steps or math.ceil(self.args[0] / self.args[1]))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in range(self.epochs):
            yield from epoch_batches(*self.args, epoch, self.steps)


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)


def _loader(dataset: Dataset, sampler: Sampler, workers: int, pin: bool) -> DataLoader:
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin,
                      prefetch_factor=4 if workers else None, worker_init_fn=_single_thread if workers else None)


def cosine_lr(cfg: ClassifierConfig, epoch: int) -> float:
    """``CosineAnnealingLR(T_max=epochs, eta_min=lr_min)`` stepped once an epoch, in its closed form."""
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2


def consistency_weight(cfg: ClassifierConfig, epoch: int) -> float:
    """Their ``w_cons``: 0 while ``epoch <= burn_in`` (epochs counted from 0), then ``min(w_cons, (epoch -
    burn_in) * 2 / epochs)``."""
    if epoch <= cfg.burn_in_epochs:
        return 0.0
    return min(cfg.w_cons, (epoch - cfg.burn_in_epochs) * 2 / cfg.epochs)


def ema_decay(step: int, cap: float) -> float:
    """The decay after optimiser step ``step`` (1, 2, ...): 0.5, 0.667, ..., capped at ``cap``."""
    return min(1 - 1 / (step + 1), cap)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """Parameters only (``update_ema_variables``): the teacher's batch-norm statistics stay its own."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)


def consistency_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """``CosineEmbeddingLoss`` with target 1: the batch mean of ``1 - cos(student, teacher)``; no gradient to the
    teacher."""
    target = torch.ones(student_logits.shape[0], device=student_logits.device)
    return F.cosine_embedding_loss(student_logits, teacher_logits.detach(), target)


def imagenet_trunk(path: Path) -> dict[str, Tensor]:
    """The weights stage's ``imagenet.pt`` in torchvision's names and input convention: its ``backbone.*`` are
    torchvision's ResNet names, and the conversion of the input folded into ``conv1`` and ``bn1`` on import
    (``weights/layouts.fold_torchvision_input``) is undone, the classifier reading ImageNet-normalised images."""
    state = read_torch(path, "an initial-weights file", "run `dvc repro weights`")
    origin = state.get("origin", "") if isinstance(state, dict) else ""
    if not isinstance(state, dict) or state.get("format") != "latentseg-init":
        raise ValueError(f"{path} is not an initial-weights file of the weights stage; run `dvc repro weights`")
    if not origin.startswith("torchvision_resnet"):
        raise ValueError(f"{path} was made by {origin!r}; the classifier starts from torchvision's ImageNet "
                         "ResNet (weights.imagenet: {published: torchvision_resnet101})")
    trunk = {k.removeprefix("backbone."): v for k, v in state["model"].items() if k.startswith("backbone.")}
    if "conv1.weight" not in trunk or "bn1.running_mean" not in trunk:
        return trunk  # load_trunk names what is missing
    weight, mean = trunk["conv1.weight"], trunk["bn1.running_mean"]
    shift = torch.tensor(MEAN_RGB, dtype=weight.dtype) - 255.0 * torch.tensor(IMAGENET_MEAN, dtype=weight.dtype)
    trunk["bn1.running_mean"] = mean + (weight * shift.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)).to(mean.dtype)
    trunk["conv1.weight"] = weight * (255.0 * torch.tensor(IMAGENET_STD, dtype=weight.dtype)).view(1, 3, 1, 1)
    return trunk


def load_trunk(model: ImageClassifier, trunk: dict[str, Tensor], what: str) -> None:
    """Copy ``trunk`` into every tensor of ``model`` but ``fc``; an error names each mismatch and ``what``."""
    own = model.net.state_dict()
    needed = [k for k in own if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    problems = [f"missing tensor {k}" for k in needed if k not in trunk]
    problems += [f"unexpected tensor {k}" for k in trunk if k not in own or k.startswith("fc.")]
    problems += [f"wrong shape {k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                 for k, v in trunk.items() if k in own and v.shape != own[k].shape]
    if problems:
        more = f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else ""
        raise KeyError(f"{what} does not match torchvision's {model.backbone}:\n  " + "\n  ".join(problems[:20]) + more)
    with torch.no_grad():
        for key, value in trunk.items():
            own[key].copy_(value)


def train_classifier(cfg: ClassifierConfig, root: Path, meta: DatasetMeta, labeled: list[Sample],
                     unlabeled: list[Sample], device: torch.device, seed: int, init: Path | None = None,
                     workers: int = 0, log_every: int = 50) -> ImageClassifier:
    """Train the student and its mean teacher as ``train_mlmt.py`` does; returns the teacher."""
    torch.manual_seed(seed)
    trunk = None if init is None else imagenet_trunk(init)
    models = []
    for _ in range(2):  # student, then teacher: two networks, as their create_model(), each with its own fc draw
        model = ImageClassifier(meta.num_classes, cfg.backbone, cfg.input_size)
        if trunk is not None:
            load_trunk(model, trunk, str(init))
        models.append(model.to(device).train())
    student, teacher = models
    for p in teacher.parameters():
        p.requires_grad_(False)
    optim = torch.optim.SGD(student.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                            nesterov=cfg.nesterov)
    steps = cfg.steps_per_epoch or math.ceil(len(labeled) / cfg.batch_size_labeled)
    pool = unlabeled or labeled  # a full split: the labeled images, unlabeled (their code has none to draw)
    lab = iter(_loader(ClassifierImages(root, labeled, [plain_view(cfg.input_size)], meta.num_classes,
                                        meta.ignore_index),
                       EpochSampler(len(labeled), cfg.batch_size_labeled, seed, STREAM_LABELED, cfg.epochs, steps),
                       workers, device.type == "cuda"))
    unl = iter(_loader(ClassifierImages(root, pool, [plain_view(cfg.input_size), strong_view(cfg)]),
                       EpochSampler(len(pool), cfg.batch_size_unlabeled, seed, STREAM_UNLABELED, cfg.epochs, steps),
                       workers, device.type == "cuda"))
    progress = Progress(f"classifier seed-{seed}", 0, cfg.epochs * steps,
                        cfg.batch_size_labeled + cfg.batch_size_unlabeled)
    step = 0
    for epoch in range(cfg.epochs):
        for group in optim.param_groups:
            group["lr"] = cosine_lr(cfg, epoch)
        weight = consistency_weight(cfg, epoch)
        for _ in range(steps):
            image, labels = (t.to(device, non_blocking=True) for t in next(lab))
            plain, strong, _ = (t.to(device, non_blocking=True) for t in next(unl))
            bce = F.binary_cross_entropy_with_logits(student(image), labels)
            with torch.no_grad():
                teacher(image)  # their teacher sees the labeled batch too: its batch-norm statistics
                teacher_logits = teacher(plain)
            cons = consistency_loss(student(strong), teacher_logits) if weight > 0 else bce.new_zeros(())
            loss = bce + weight * cons  # in burn-in, their 0 * cons: no gradient, so not computed
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            step += 1
            ema_update(teacher, student, ema_decay(step, cfg.ema))
            if step % log_every == 0 or step == cfg.epochs * steps:
                progress.report(step, {"bce": float(bce.detach()), "cons": float(cons.detach()), "w_cons": weight,
                                       "lr": optim.param_groups[0]["lr"]})
    return teacher


@torch.no_grad()
def class_probabilities(model: ImageClassifier, root: Path, samples: list[Sample] | Path, device: torch.device,
                        workers: int = 0, batch_size: int = 32) -> Tensor:
    """(N, C) sigmoid outputs of ``model`` (in eval mode) on ``samples`` in their order, resized to its input."""
    samples = read_list(samples) if isinstance(samples, Path) else samples
    model.to(device).eval()
    dataset = ClassifierImages(root, samples, [test_view(model.input_size)])
    batches = [[(i, 0) for i in range(lo, min(lo + batch_size, len(samples)))]
               for lo in range(0, len(samples), batch_size)]
    out = [torch.sigmoid(model(x.to(device)).float()).cpu() for x, _ in _loader(dataset, batches, workers, False)]
    return torch.cat(out) if out else torch.zeros(0, model.num_classes)


def classifier_identity(cfg: ClassifierConfig, meta: DatasetMeta, labeled: list[Sample], unlabeled: list[Sample],
                        seed: int, init: Path | None) -> dict:
    """What a classifier is trained from: settings, seed, code, data and split, initial weights."""
    return {"config": to_dict(cfg), "seed": seed, "code": fingerprint("latentseg.classifier", NOT_COMPUTATION),
            "data": meta.fingerprint, "labeled": samples_digest(labeled), "unlabeled": samples_digest(unlabeled),
            "init": None if init is None else file_digest(init)}


def save_classifier(model: ImageClassifier, path: str | Path, identity: dict) -> None:
    doc = {"format": FORMAT, "identity": identity, "backbone": model.backbone, "input_size": model.input_size,
           "num_classes": model.num_classes, "model": model.state_dict()}
    atomic_torch_save(path, doc)


def classifier_from_state(state: dict) -> ImageClassifier:
    model = ImageClassifier(state["num_classes"], state["backbone"], state["input_size"])
    model.load_state_dict(state["model"])
    return model


def load_classifier(path: str | Path, identity: dict | None = None) -> ImageClassifier | None:
    """The classifier saved at ``path``; with ``identity``, None unless it was trained from exactly that."""
    path = Path(path)
    if identity is not None and not path.is_file():
        return None
    state = read_torch(path, "an image classifier", "delete it and re-run its classifier stage")
    if identity is not None and (state.get("format") != FORMAT or state.get("identity") != identity):
        return None
    return classifier_from_state(state)

"""The benchmarked configurations: the paper's run at three sizes, a fixed synthetic batch, seeded weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentseg.config import RunConfig
from latentseg.registry.experiments import deep_merge, defaults, typed_run
from latentseg.train.step import Batch, Networks, build_networks, build_objective

NUM_CLASSES = 21  # VOC's count; the names matter to no benchmarked objective
CLASSES = [f"class{i}" for i in range(NUM_CLASSES)]


@dataclass(frozen=True)
class Profile:
    backbone: str
    crop: int
    batch: int  # labeled images per iteration; as many unlabeled
    k: int
    discriminator_width: int
    warmup: int  # iterations before timing (cuDNN autotuning and compilation happen here)
    iterations: int


PROFILES = {
    "paper": Profile("resnet101", 321, 10, 20, 64, warmup=5, iterations=20),
    "cpu-small": Profile("resnet101", 65, 2, 20, 64, warmup=1, iterations=3),
    "tiny": Profile("tiny", 33, 2, 20, 8, warmup=1, iterations=2),
}


def bench_config(profile: Profile, params: dict) -> RunConfig:
    """The paper profile's run of the paper's method (``params.yaml``'s top-level sections: every loss, the
    published recipe) at the profile's size."""
    tree = deep_merge(defaults(params), {
        "model": {"backbone": profile.backbone}, "data": {"crop_size": [profile.crop, profile.crop]},
        "optim": {"batch_size": profile.batch, "seed": 1234}, "latent": {"k": profile.k},
        "discriminator": {"width": profile.discriminator_width}})
    tree.pop("classifier")
    return typed_run(tree, "bench", "none", "1/8")


def synthetic_batch(profile: Profile, seed: int = 0) -> Batch:
    """Smooth random images in the normalised range and blocky masks with an ignored border, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    n, s = profile.batch, profile.crop

    def images() -> Tensor:
        coarse = torch.randn(n, 3, 8, 8, generator=g) * 60
        return F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)

    mask = F.interpolate(torch.randint(0, NUM_CLASSES, (n, 1, 6, 6), generator=g).float(), size=(s, s),
                         mode="nearest").squeeze(1).long()
    mask[:, : max(1, s // 20)] = 255
    return Batch(images(), mask, images())


def calibrate_batch_norm(model: nn.Module, images: Tensor) -> None:
    """Set batch-norm statistics to those of ``images`` (one forward in training mode, cumulative average).

    The paper's trunk freezes statistics that come with its pretrained weights; random weights with the default
    statistics (mean 0, variance 1) let activations grow through the 101 layers, and a benchmark (or test) on
    them would time overflowing arithmetic. Only the statistics change; the caller restores the mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        model.backbone(images)
    for m, (momentum, training) in zip(bns, saved, strict=True):
        m.momentum = momentum
        m.train(training)


def initial_state(cfg: RunConfig, batch: Batch, device: torch.device) -> dict[str, dict[str, Tensor]]:
    """Seeded weights with calibrated statistics: every mode starts from these."""
    torch.manual_seed(cfg.optim.seed)
    model, disc = build_networks(cfg, NUM_CLASSES)
    model.to(device)
    calibrate_batch_norm(model, torch.cat([batch.image, batch.unlabeled]).to(device))
    return {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "disc": {k: v.detach().cpu() for k, v in disc.state_dict().items()}}


def build_step(cfg: RunConfig, state: dict, device: torch.device) -> Networks:
    model, disc = build_networks(cfg, NUM_CLASSES)
    model.load_state_dict(state["model"])
    disc.load_state_dict(state["disc"])
    return Networks(cfg, model, disc, build_objective(cfg, CLASSES, num_labeled=1464)).to(device).train()

"""Time the training step of the paper's configuration: ``latentseg bench``.

    latentseg bench                          # the paper profile: ResNet-101, 321x321, 10 + 10 images, k = 20
    latentseg bench --profile cpu-small      # ResNet-101 at 65x65 with 2 + 2 images: under a minute on a CPU
    latentseg bench --profile tiny           # the tiny trunk: seconds (the tests run this)
    latentseg bench --json bench.json        # the same figures, machine-readable

One iteration is ``step.one_update``, the trainer's own: both networks' forward and backward (eqs. 1-12),
SGD on the segmentation network, Adam on the discriminator. The same fixed batch is fed every iteration, so
the figures are those of the step; the data pipeline's cost per image is measured on its own (``--no-data``
skips it). Each mode starts from the same weights, and its first-iteration loss is printed beside the
baseline's: the modes compute the same method.

Modes, in one process and on one device:
- ``fp32-eager``: the baseline, plain PyTorch: float32 (TF32 off unless ``--baseline-tf32``), NCHW, eager,
  foreach optimisers, no cuDNN autotuning.
- ``bf16``: what the trainer runs on CUDA: bf16 autocast, channels-last, cuDNN autotuning, fused optimisers.
- ``bf16-compile``: the same with ``torch.compile`` on the segmentation network (``runtime.compile``); on
  CUDA by default, on the CPU with ``--compile`` (compiling ResNet-101 on two cores takes minutes).

Model FLOP utilisation (MFU) is the FLOPs of one iteration (``torch.utils.flop_counter.FlopCounterMode``:
convolutions and matrix products, forward and backward, counted once on the meta device) per second, over the
device's peak dense FLOP/s for the mode's precision (a table of known GPUs; ``--peak-bf16-tflops`` and
``--peak-fp32-tflops`` override it, and are the only source on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from latentseg.config import DataConfig, LatentConfig, ModelConfig, OptimConfig, RunConfig
from latentseg.train.runtime import StepSpeed, first_step_with_fallback
from latentseg.train.step import Batch, SegmentationStep, make_optimizers, one_update
from latentseg.train.trainer import build_networks

NUM_CLASSES = 21  # VOC


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

# Peak dense tensor throughput in TFLOP/s from the vendors' data sheets: (bf16, tf32, fp32). First match wins.
PEAKS: list[tuple[tuple[str, ...], tuple[str, ...], tuple[float, float, float]]] = [
    # (name must contain all of, must contain none of, peaks)
    (("H100", "PCIe"), (), (756.0, 378.0, 51.2)),
    (("H100",), ("NVL",), (989.4, 494.7, 66.9)),  # SXM ("H100 80GB HBM3")
    (("H200",), ("NVL",), (989.4, 494.7, 66.9)),  # SXM
    (("A100",), (), (312.0, 156.0, 19.5)),
    (("L40S",), (), (362.1, 183.0, 91.6)),
    (("L4",), ("L40",), (121.0, 60.0, 30.3)),
    (("A10",), ("A100", "A10G"), (125.0, 62.5, 31.2)),
    (("RTX 4090",), (), (165.2, 82.6, 82.6)),
]


def known_peaks(device_name: str) -> tuple[float, float, float] | None:
    for need, avoid, peaks in PEAKS:
        if all(s in device_name for s in need) and not any(s in device_name for s in avoid):
            return peaks
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_config(profile: Profile) -> RunConfig:
    """The paper's run (every loss, frozen batch-norm statistics) at the profile's size."""
    return RunConfig(init="none",
                     model=ModelConfig(backbone=profile.backbone, discriminator_width=profile.discriminator_width),
                     data=DataConfig(crop_size=(profile.crop, profile.crop)),
                     optim=OptimConfig(batch_size=profile.batch), latent=LatentConfig(k=profile.k))


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


def build_step(cfg: RunConfig, state: dict, device: torch.device) -> SegmentationStep:
    model, disc = build_networks(cfg, NUM_CLASSES)
    model.load_state_dict(state["model"])
    disc.load_state_dict(state["disc"])
    return SegmentationStep(cfg, model, disc, NUM_CLASSES, num_labeled=1464).to(device).train()


def count_flops(cfg: RunConfig, profile: Profile) -> int:
    """FLOPs of one iteration, counted on the meta device (no arithmetic is done, any size is instant)."""
    meta = torch.device("meta")
    with meta:
        model, disc = build_networks(cfg, NUM_CLASSES)
        step = SegmentationStep(cfg, model, disc, NUM_CLASSES, num_labeled=1464).train()
    sgd, adam = make_optimizers(cfg, model, disc)
    n, s = profile.batch, profile.crop
    batch = Batch(torch.empty(n, 3, s, s, device=meta), torch.zeros(n, s, s, dtype=torch.long, device=meta),
                  torch.empty(n, 3, s, s, device=meta))
    counter = FlopCounterMode(display=False)
    with counter:
        one_update(step, batch, 0, sgd, adam)
    return counter.get_total_flops()


# -- memory ------------------------------------------------------------------------------------------------
def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- one mode ----------------------------------------------------------------------------------------------
@dataclass
class ModeResult:
    mode: str
    precision: str
    layout: str
    compiled: bool
    ms_per_iteration: float
    images_per_second: float
    peak_memory_bytes: int
    memory_kind: str  # "allocated" (CUDA tensors) or "process RSS" (CPU)
    first_loss: float
    achieved_tflops: float
    mfu: float | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_mode(name: str, speed: StepSpeed, cfg: RunConfig, profile: Profile, state: dict, cpu_batch: Batch,
             device: torch.device, tf32: bool) -> tuple[ModeResult, float]:
    """Time ``profile.iterations`` iterations after ``profile.warmup``; returns the result and seconds/iteration."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.empty_cache()
    torch.manual_seed(0)
    step = speed.prepare(build_step(cfg, state, device))
    sgd, adam = make_optimizers(cfg, step.model, step.discriminator, fused=speed.fused_optim)
    batch = Batch(speed.to_device(cpu_batch.image, device), speed.to_device(cpu_batch.mask, device),
                  speed.to_device(cpu_batch.unlabeled, device))
    autocast = speed.autocast(device)
    eager = step.model
    if speed.compile:
        step.model = torch.compile(step.model)
    _sync(device)
    _reset_peak_memory(device)

    def update(i: int) -> dict[str, Tensor]:
        return one_update(step, batch, i, sgd, adam, autocast)

    compiled = speed.compile
    if compiled:
        parts, compiled = first_step_with_fallback(step, "model", eager, lambda: update(0))
    else:
        parts = update(0)
    first_loss = float(parts["total"])
    for i in range(1, profile.warmup):
        update(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(profile.iterations):
        update(profile.warmup + i)
    _sync(device)
    seconds = (time.perf_counter() - start) / profile.iterations
    precision = "bf16" if speed.amp else ("tf32" if tf32 and device.type == "cuda" else "fp32")
    result = ModeResult(name, precision, "NHWC" if speed.channels_last else "NCHW", compiled, 1000 * seconds,
                        2 * profile.batch / seconds, _peak_memory(device),
                        "allocated" if device.type == "cuda" else "process RSS", first_loss, 0.0, None)
    return result, seconds


# -- the data pipeline ---------------------------------------------------------------------------------------
@dataclass
class DataResult:
    images: int
    size: tuple[int, int]
    decode_ms: float  # JPEG image + PNG mask, per image
    augment_ms: float  # scale, normalise, pad/crop, mirror (data/dataset.py's train_transform), per image

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.augment_ms


def bench_data(images: int = 16, size: tuple[int, int] = (375, 500)) -> DataResult:
    """Decode and augment VOC-sized synthetic images on one CPU thread, as one loader worker does."""
    from torchvision import tv_tensors

    from latentseg.data.dataset import load_image, load_mask, train_transform
    from latentseg.data.layout import read_list
    from latentseg.prepare.synthetic import SyntheticSpec, generate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker (sampling._single_thread)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            generate(SyntheticSpec("voc", num_train=images, num_val=1, size=size, seed=0), tmp)
            samples = read_list(Path(tmp) / "train.txt")
            transform = train_transform(DataConfig())  # the paper's augmentation
            decode = augment = 0.0
            for rep in range(2):  # the first pass warms the caches and is not counted
                decode = augment = 0.0
                for i, sample in enumerate(samples):
                    t0 = time.perf_counter()
                    image = tv_tensors.Image(load_image(Path(tmp) / sample.image))
                    mask = tv_tensors.Mask(load_mask(Path(tmp) / sample.mask))
                    t1 = time.perf_counter()
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(rep * 1000 + i)
                        out_image, out_mask = transform(image, mask)
                        out_image.float(), out_mask.long()
                    t2 = time.perf_counter()
                    decode += t1 - t0
                    augment += t2 - t1
    finally:
        torch.set_num_threads(threads)
    return DataResult(images, size, 1000 * decode / images, 1000 * augment / images)


# -- report --------------------------------------------------------------------------------------------------
def machine(device: torch.device) -> dict[str, str]:
    info = {"cpu": cpu_model(), "cpu_threads": str(torch.get_num_threads()), "cpu_cores": str(os.cpu_count()),
            "load_average_1min": f"{os.getloadavg()[0]:.2f}", "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
        info["cudnn"] = str(torch.backends.cudnn.version())
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="paper on CUDA (default there), cpu-small on the CPU (default there), or tiny")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations (default: the profile's)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default: the profile's)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time the compiled step (default: on CUDA yes, on the CPU no)")
    parser.add_argument("--baseline-tf32", action="store_true",
                        help="let the fp32 baseline use TF32 tensor cores (PyTorch's default for convolutions)")
    parser.add_argument("--peak-bf16-tflops", type=float, default=None, help="override the device's bf16 peak")
    parser.add_argument("--peak-fp32-tflops", type=float, default=None,
                        help="override the device's fp32 peak (its TF32 peak with --baseline-tf32)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the step (default: torch's). On a machine shared with other work use "
                             "1: a busy core stalls every parallel region of a multi-threaded step")
    parser.add_argument("--no-data", action="store_true", help="skip the data pipeline measurement")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    cuda = device.type == "cuda"
    profile_name = args.profile or ("paper" if cuda else "cpu-small")
    profile = PROFILES[profile_name]
    profile = replace(profile, iterations=args.iterations or profile.iterations,
                      warmup=max(1, args.warmup if args.warmup is not None else profile.warmup))
    cfg = bench_config(profile)
    info = machine(device)
    print(f"latentseg bench, profile {profile_name}: {profile.backbone}, "
          f"{profile.crop}x{profile.crop}, {profile.batch} labeled + {profile.batch} unlabeled images, "
          f"discriminator (width {profile.discriminator_width}), k={profile.k}, {NUM_CLASSES} classes; "
          f"{profile.warmup} warm-up + {profile.iterations} timed iterations")
    print(f"machine: {info.get('gpu', 'no GPU')}; CPU {info['cpu']} ({info['cpu_cores']} cores, step on "
          f"{info['cpu_threads']} thread(s), load average {info['load_average_1min']}); "
          f"torch {info['torch']}" + (f", CUDA {info['cuda']}, cuDNN {info['cudnn']}" if cuda else "")
          + f"; {info['date']}")

    flops = count_flops(cfg, profile)
    print(f"FLOPs per iteration (FlopCounterMode: convolutions and matrix products, forward + backward, both "
          f"networks): {flops / 1e12:.3f} TFLOP")
    table = known_peaks(info.get("gpu", "")) if cuda else None
    peak_bf16 = args.peak_bf16_tflops or (table[0] if table else None)
    peak_fp32 = args.peak_fp32_tflops or ((table[1] if args.baseline_tf32 else table[2]) if table else None)

    modes = [("fp32-eager", StepSpeed.baseline()),
             ("bf16", StepSpeed(amp=True, channels_last=True, compile=False, cudnn_benchmark=cuda, fused_optim=True))]
    if args.compile if args.compile is not None else cuda:
        modes.append(("bf16-compile", replace(modes[1][1], compile=True)))
    cpu_batch = synthetic_batch(profile)
    if cuda:
        cpu_batch = Batch(cpu_batch.image.pin_memory(), cpu_batch.mask.pin_memory(), cpu_batch.unlabeled.pin_memory())
    state = initial_state(cfg, cpu_batch, device)
    results = []
    for name, speed in modes:
        result, seconds = run_mode(name, speed, cfg, profile, state, cpu_batch, device,
                                   tf32=args.baseline_tf32 and not speed.amp)
        peak = peak_bf16 if speed.amp else peak_fp32
        result.achieved_tflops = flops / seconds / 1e12
        result.mfu = flops / seconds / (peak * 1e12) if peak else None
        results.append(result)

    print()
    print(f"{'mode':<13} {'precision':<9} {'layout':<6} {'compiled':<8} {'ms/it':>9} {'images/s':>9} "
          f"{'peak memory':>18} {'TFLOP/s':>8} {'MFU':>6} {'first loss':>11}")
    for r in results:
        mem = f"{r.peak_memory_bytes / 2**30:.2f} GiB {'alloc' if cuda else 'RSS'}"
        mfu = f"{100 * r.mfu:5.1f}%" if r.mfu is not None else "   n/a"
        print(f"{r.mode:<13} {r.precision:<9} {r.layout:<6} {'yes' if r.compiled else 'no':<8} "
              f"{r.ms_per_iteration:9.1f} {r.images_per_second:9.2f} {mem:>18} {r.achieved_tflops:8.3f} {mfu:>6} "
              f"{r.first_loss:11.5f}")
    base, best = results[0], min(results[1:], key=lambda r: r.ms_per_iteration)
    speedup = base.ms_per_iteration / best.ms_per_iteration
    print(f"\nspeed-up of {best.mode} over {base.mode}: {speedup:.2f}x; first-iteration loss differs by "
          f"{abs(best.first_loss - base.first_loss) / abs(base.first_loss):.2e} (relative)")
    if peak_bf16 is None:
        print("MFU: no peak FLOP/s known for this device; pass --peak-bf16-tflops / --peak-fp32-tflops")
    if profile_name == "paper":
        row = 20000 * best.ms_per_iteration / 1000 / 60
        print(f"a 20,000-iteration Table 1 row at this speed: {row:.1f} minutes of training steps")

    data = None
    if not args.no_data:
        data = bench_data()
        images_per_second = best.images_per_second
        workers = math.ceil(images_per_second * data.total_ms / 1000)
        print(f"\ndata pipeline, per {data.size[0]}x{data.size[1]} image on one CPU thread: decode "
              f"{data.decode_ms:.1f} ms + augment {data.augment_ms:.1f} ms = {data.total_ms:.1f} ms "
              f"({1000 / data.total_ms:.0f} images/s per worker); feeding {best.mode}'s "
              f"{images_per_second:.1f} images/s needs >= {workers} loader worker(s) in all")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "profile": {"name": profile_name, **asdict(profile)}, "flops_per_iteration": flops,
            "peaks_tflops": {"bf16": peak_bf16, "fp32": peak_fp32}, "modes": [asdict(r) for r in results],
            "speedup": speedup, "data": None if data is None else {**asdict(data), "total_ms": data.total_ms},
        }, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentseg bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

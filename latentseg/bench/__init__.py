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
import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import torch

from latentseg.bench.data import bench_data
from latentseg.bench.flops import count_flops, known_peaks
from latentseg.bench.machine import machine
from latentseg.bench.profiles import NUM_CLASSES, PROFILES, Profile, bench_config, initial_state, synthetic_batch
from latentseg.bench.timing import run_mode
from latentseg.registry.params import load_params
from latentseg.train.runtime import StepSpeed
from latentseg.train.step import Batch


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
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="the parameter file whose top-level sections are the benchmarked run (the repository's)")


def data_report(cfg, best):
    """Time the data pipeline and say how many loader workers feed ``best``'s speed."""
    data = bench_data(cfg.data)
    workers = math.ceil(best.images_per_second * data.total_ms / 1000)
    print(f"\ndata pipeline, per {data.size[0]}x{data.size[1]} image on one CPU thread: decode "
          f"{data.decode_ms:.1f} ms + augment {data.augment_ms:.1f} ms = {data.total_ms:.1f} ms "
          f"({1000 / data.total_ms:.0f} images/s per worker); feeding {best.mode}'s "
          f"{best.images_per_second:.1f} images/s needs >= {workers} loader worker(s) in all")
    return data


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
    cfg = bench_config(profile, load_params(args.params))
    info = machine(device)
    print_machine(profile_name, profile, info, cuda)
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

    print_results(results, cuda)
    base, best = results[0], min(results[1:], key=lambda r: r.ms_per_iteration)
    speedup = base.ms_per_iteration / best.ms_per_iteration
    print(f"\nspeed-up of {best.mode} over {base.mode}: {speedup:.2f}x; first-iteration loss differs by "
          f"{abs(best.first_loss - base.first_loss) / abs(base.first_loss):.2e} (relative)")
    if peak_bf16 is None:
        print("MFU: no peak FLOP/s known for this device; pass --peak-bf16-tflops / --peak-fp32-tflops")
    if profile_name == "paper":
        row = 20000 * best.ms_per_iteration / 1000 / 60
        print(f"a 20,000-iteration Table 1 row at this speed: {row:.1f} minutes of training steps")

    data = None if args.no_data else data_report(cfg, best)
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "profile": {"name": profile_name, **asdict(profile)}, "flops_per_iteration": flops,
            "peaks_tflops": {"bf16": peak_bf16, "fp32": peak_fp32}, "modes": [asdict(r) for r in results],
            "speedup": speedup, "data": None if data is None else {**asdict(data), "total_ms": data.total_ms},
        }, indent=2) + "\n")
    return 0


def print_results(results: list, cuda: bool) -> None:
    print()
    print(f"{'mode':<13} {'precision':<9} {'layout':<6} {'compiled':<8} {'ms/it':>9} {'images/s':>9} "
          f"{'peak memory':>18} {'TFLOP/s':>8} {'MFU':>6} {'first loss':>11}")
    for r in results:
        mem = f"{r.peak_memory_bytes / 2**30:.2f} GiB {'alloc' if cuda else 'RSS'}"
        mfu = f"{100 * r.mfu:5.1f}%" if r.mfu is not None else "   n/a"
        print(f"{r.mode:<13} {r.precision:<9} {r.layout:<6} {'yes' if r.compiled else 'no':<8} "
              f"{r.ms_per_iteration:9.1f} {r.images_per_second:9.2f} {mem:>18} {r.achieved_tflops:8.3f} {mfu:>6} "
              f"{r.first_loss:11.5f}")


def print_machine(profile_name: str, profile: Profile, info: dict, cuda: bool) -> None:
    print(f"latentseg bench, profile {profile_name}: {profile.backbone}, "
          f"{profile.crop}x{profile.crop}, {profile.batch} labeled + {profile.batch} unlabeled images, "
          f"discriminator (width {profile.discriminator_width}), k={profile.k}, {NUM_CLASSES} classes; "
          f"{profile.warmup} warm-up + {profile.iterations} timed iterations")
    print(f"machine: {info.get('gpu', 'no GPU')}; CPU {info['cpu']} ({info['cpu_cores']} cores, step on "
          f"{info['cpu_threads']} thread(s), load average {info['load_average_1min']}); "
          f"torch {info['torch']}" + (f", CUDA {info['cuda']}, cuDNN {info['cudnn']}" if cuda else "")
          + f"; {info['date']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentseg bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

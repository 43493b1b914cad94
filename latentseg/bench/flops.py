"""FLOPs of one iteration (counted, not computed) and the peak FLOP/s of known devices, for MFU."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentseg.bench.profiles import CLASSES, NUM_CLASSES, Profile
from latentseg.config import RunConfig
from latentseg.train.step import Batch, Networks, build_networks, build_objective, make_optimizers, one_update

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

def count_flops(cfg: RunConfig, profile: Profile) -> int:
    """FLOPs of one iteration, counted on the meta device (no arithmetic is done, any size is instant)."""
    meta = torch.device("meta")
    with meta:
        model, disc = build_networks(cfg, NUM_CLASSES)
        step = Networks(cfg, model, disc, build_objective(cfg, CLASSES, num_labeled=1464)).train()
    sgd, adam = make_optimizers(cfg, model, disc)
    n, s = profile.batch, profile.crop
    batch = Batch(torch.empty(n, 3, s, s, device=meta), torch.zeros(n, s, s, dtype=torch.long, device=meta),
                  torch.empty(n, 3, s, s, device=meta))
    counter = FlopCounterMode(display=False)
    with counter:
        one_update(step, batch, 0, sgd, adam)
    return counter.get_total_flops()

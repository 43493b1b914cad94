"""`latentseg predict` on a large photo with a paper-size run: wall time and peak memory (issue 26).

    python benchmarks/predict_large_photo.py --out /tmp/large-photo    # writes the run and the photo, predicts
    python benchmarks/predict_large_photo.py --out /tmp/p --smoke      # seconds: the tiny trunk, a small photo

It then runs, with one thread, as a user would (measured: wall time and the peak resident memory of the process)::

    latentseg predict --checkpoint /tmp/large-photo/run/seed-1234/checkpoint.pt /tmp/large-photo/photo.jpg \
        --out /tmp/large-photo/predictions --device cpu

The run is the paper profile's `voc-1_8-proposed` (DeepLab-v2 ResNet-101, two ASPP branches, k = 20, 21 VOC
classes, evaluation padded to 505x505) with random weights, saved under the trainer's keys as
`tests/tiny_run.py` saves its tiny runs: the cost of a prediction does not depend on the weights' values. The photo
is a 4000x3000 JPEG (12 megapixels, a phone camera's) of smooth random colours.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.tiny_run

from latentseg.bench.machine import cpu_model  # noqa: E402
from latentseg.registry.experiments import resolve  # noqa: E402
from latentseg.registry.params import load_params  # noqa: E402
from tests.tiny_run import save_tiny_run  # noqa: E402

EXPERIMENT = "voc-1_8-proposed"
SIZE = (3000, 4000)  # (H, W)


def photo(path: Path, size: tuple[int, int], seed: int = 0) -> None:
    """A JPEG of smooth random colours: a coarse random grid upsampled, as a photo compresses (noise would not)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (size[0] // 100, size[1] // 100, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((size[1], size[0]), Image.Resampling.BICUBIC).save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for run/seed-1234/checkpoint.pt, photo.jpg")
    parser.add_argument("--smoke", action="store_true", help="the tiny trunk and a 400x300 photo: seconds")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    params["profile"] = "paper"
    exp, cfg = resolve(params, EXPERIMENT)
    size = (300, 400) if args.smoke else SIZE
    if args.smoke:
        cfg = replace(cfg, model=replace(cfg.model, backbone="tiny"), data=replace(cfg.data, eval_pad=64))
    checkpoint = args.out / "run" / f"seed-{exp.seeds[0]}" / "checkpoint.pt"
    save_tiny_run(checkpoint, cfg, 21, seed=exp.seeds[0])
    photo(args.out / "photo.jpg", size)
    print(f"{checkpoint} ({cfg.model.backbone}, eval_pad {cfg.data.eval_pad}); {args.out / 'photo.jpg'} "
          f"({size[1]}x{size[0]})", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latentseg.cli", "predict", "--checkpoint", str(checkpoint),
                    str(args.out / "photo.jpg"), "--out", str(args.out / "predictions"), "--device", "cpu"],
                   env=env, check=True)
    wall = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
    print(json.dumps({"backbone": cfg.model.backbone, "photo": f"{size[1]}x{size[0]}", "threads": 1,
                      "wall_s": round(wall, 2), "peak_rss_gb": round(peak_gb, 2), "cpu": cpu_model()}))


if __name__ == "__main__":
    main()

"""Stage start-up with and without the warm interpreter (latentseg/util/warm.py), measured in one run.

    python benchmarks/stage_startup.py [--repeats 5] [--out benchmarks/results/stage_startup.json]

What a stage pays before its work: a probe script that imports what `stages/train.py` imports and builds a
`torch.optim.SGD` (the first optimiser imports torch._dynamo), then exits. It runs `--repeats` times in its own
interpreter (the baseline) and as many times through a `latentseg warm` server, alternating, and reports the
median wall time of each, the saving per stage, and the machine (CPU, cores, load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from latentseg.bench.machine import cpu_model
from latentseg.util.warm import started

ROOT = Path(__file__).resolve().parents[1]
PROBE = """\
from latentseg.util.warm import hand_over

hand_over()

import yaml  # noqa: F401
from dvclive import Live  # noqa: F401

import torch
from latentseg.run.stage import train_dataset  # noqa: F401  (the training stage's closure)

torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="stage starts of each kind (1: the smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        probe, sock = Path(tmp) / "probe.py", Path(tmp) / "warm.sock"
        probe.write_text(PROBE)
        env = {k: v for k, v in os.environ.items() if k != "LATENTSEG_WARM"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        t0 = time.perf_counter()
        cold, warm = [], []
        with started(sock, idle_timeout=120, env=env):
            server_start = time.perf_counter() - t0
            for _ in range(args.repeats):
                cold.append(timed([sys.executable, str(probe)], env))
                warm.append(timed([sys.executable, str(probe)], {**env, "LATENTSEG_WARM": str(sock)}))
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "repeats": args.repeats,
        "own_interpreter_s": round(statistics.median(cold), 3),
        "warm_s": round(statistics.median(warm), 3),
        "saved_per_stage_s": round(statistics.median(cold) - statistics.median(warm), 3),
        "server_start_s": round(server_start, 3),
        "all_own_interpreter_s": [round(x, 3) for x in cold],
        "all_warm_s": [round(x, 3) for x in warm],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

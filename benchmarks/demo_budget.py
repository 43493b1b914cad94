"""Where `make demo`'s time goes: every stage's wall time, split into the stage's own command and DVC's own work
(reading and writing dvc.lock, hashing dependencies and outputs, caching), from a fresh clone of the last commit.

    python benchmarks/demo_budget.py [--json benchmarks/results/demo-budget.json]   # the whole demo, minutes
    python benchmarks/demo_budget.py --targets resolve split@iit                    # some stages (and theirs)

It clones this repository's last commit into a temporary folder, starts `latentseg warm` as `make demo` does, runs
`dvc repro [targets]` there, and times each stage from DVC's output (from its "Running stage" line to the next);
the warm server's log gives each stage command's own time, and the rest is DVC's. The machine (CPU, cores, load
average before and after) is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from latentseg.bench.machine import cpu_model
from latentseg.util.warm import ENV, started

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Running stage '([^']+)'")
SERVED = re.compile(r"latentseg warm: pid \d+ exited -?\d+ after ([\d.]+) s")


def run_dvc(repo: Path, targets: list[str], env: dict[str, str]) -> tuple[list[tuple[str, float]], float]:
    """``dvc repro`` in ``repo``: each stage that ran with its start (seconds from the start), and the total."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", *targets], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stages, tail = [], []
    for line in proc.stdout:
        if (m := RUNNING.search(line)) is not None:
            stages.append((m.group(1), time.perf_counter() - start))
        tail = [*tail[-20:], line]
    if proc.wait() != 0:
        raise SystemExit("dvc repro failed:\n" + "".join(tail))
    return stages, time.perf_counter() - start


def budget(stages: list[tuple[str, float]], total: float, commands: list[float]) -> pd.DataFrame:
    """One row per stage: its wall time, its command's (the warm server's n-th stage), and DVC's own (the rest)."""
    ends = [t for _, t in stages[1:]] + [total]
    rows = []
    for (name, begin), end, command in zip(stages, ends, commands + [float("nan")] * len(stages), strict=False):
        rows.append({"stage": name, "wall_s": round(end - begin, 1), "command_s": round(command, 1),
                     "dvc_s": round(end - begin - command, 1)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="*", default=[], help="stages to reproduce (default: all)")
    parser.add_argument("--json", type=Path, help="write the table and the machine here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        repo, sock, log = Path(tmp) / "repo", Path(tmp) / "warm.sock", Path(tmp) / "warm.log"
        subprocess.run(["git", "clone", "--quiet", "--local", str(ROOT), str(repo)], check=True)
        # the stages' `python` is this interpreter's, as make demo puts .venv/bin first on PATH
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path, "PYTHONPATH": str(repo), ENV: str(sock)}
        with started(sock, idle_timeout=600, env=env, log=log):
            stages, total = run_dvc(repo, args.targets, env)
        commands = [float(m.group(1)) for m in SERVED.finditer(log.read_text())]
    table = budget(stages, total, commands)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
               "load_after": [round(x, 2) for x in os.getloadavg()]}
    print(f"{table.to_markdown(index=False)}\n\ntotal {total:.1f} s (stages {table['wall_s'].sum():.1f} s, of which "
          f"DVC's own {table['dvc_s'].sum():.1f} s); machine {json.dumps(machine)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "total_s": round(total, 1), "targets": args.targets,
                                         "stages": table.to_dict("records")}, indent=2) + "\n")


if __name__ == "__main__":
    main()

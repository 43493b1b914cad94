"""A training stage's workers die with it (issue 26, item 2): a stage training two runs side by side, ended by
SIGTERM or SIGKILL (directly, or while the warm server runs it), leaves no worker alive, nothing half-written, and
its re-run resumes each run from its checkpoint to the weights of an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from latentseg.run.jobs import with_seed
from latentseg.train import checkpoint as ckpt
from latentseg.train import trainer
from latentseg.util.warm import ENV, started
from tests.cluster.layout import REPO, make_layout, wait_for
from tests.train.speed_fixtures import make_data, one_thread, tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures(one_thread.__name__)]

EXP, SEEDS, STEPS = "tiny-kill", [1, 2], 40
CFG = tiny_config(optim={"iterations": STEPS}, runtime={"log_every": 2, "checkpoint_every": 2, "parallel_runs": 2,
                                                        "threads": 1})


def stage_command(root: Path) -> list[str]:
    return [sys.executable, str(REPO / "stages/train.py"), "voc", "--configs", str(root / "configs"),
            "--data", str(root / "data" / "voc"), "--splits", str(root / "splits" / "voc"),
            "--weights", str(root / "weights"), "--runs", str(root / "runs"), "--results", str(root / "results")]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return found


def descendants(root: int) -> set[int]:
    tree, found, frontier = parents(), set(), {root}
    while frontier:
        frontier = {pid for pid, parent in tree.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie, waiting for a parent that does not reap, runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def step_of(root: Path, seed: int) -> int:
    path = root / "runs" / "voc" / EXP / f"seed-{seed}" / "checkpoint.pt"
    try:
        return int(ckpt.load(path)["step"])
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The networks of seed 1's run trained without interruption, in this process."""
    root = tmp_path_factory.mktemp("straight")
    data = make_data(root / "voc")
    trainer.train(with_seed(CFG, SEEDS[0]), root / "checkpoint.pt", data)
    return ckpt.load(root / "checkpoint.pt")["networks"]


FORKSERVER = """\
import multiprocessing, runpy, sys

import latentseg.run.jobs

context = multiprocessing.get_context("forkserver")  # as on a machine with CUDA (run.jobs._process_context)
context.set_forkserver_preload(["latentseg.run.jobs"])
latentseg.run.jobs._process_context = lambda: context
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def kill_mid_run(root: Path, how: signal.Signals, start: str, past: int) -> str:
    """Start the stage (``start``: its workers forked, from a fork server, or the stage run by the warm server),
    signal it with ``how`` once every run's checkpoint is past step ``past``, and check that no worker outlives it
    by 15 s. Its output."""
    env, cmd = environment(), stage_command(root)
    if start == "forkserver":
        (root / "forkserver.py").write_text(FORKSERVER)
        cmd = [sys.executable, str(root / "forkserver.py"), *cmd[1:]]
    sock = root / "warm.sock"
    with started(sock, idle_timeout=60, env=env, preload=("json",)) if start == "warm" else nullcontext() as server:
        stage = subprocess.Popen(cmd, env={**env, ENV: str(sock)} if server else env, cwd=root, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(lambda: all(step_of(root, s) > past for s in SEEDS) or stage.poll() is not None, 120,
                 f"every run to pass step {past}", every=0.1)
        assert stage.poll() is None, stage.stdout.read()
        workers = descendants(server.pid if server else stage.pid)  # warm: and the stage's process in the server
        assert len(workers) >= 2, workers
        stage.send_signal(how)
        out, _ = stage.communicate(timeout=30)
        deadline = time.monotonic() + 15
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)], f"workers outlived their stage ({start}, {how!r})"
    assert not list((root / "runs").rglob("*.tmp")), out  # nothing half-written
    return out


def first_step(out: str, seed: int) -> int:
    return int(re.search(rf"{EXP}/seed-{seed} step (\d+)/", out)[1])


def test_a_stage_ended_any_way_leaves_no_worker_and_its_rerun_resumes(tmp_path, reference):
    """Ended three ways in turn, each start resuming from the checkpoints the one before left; then finished. (A
    forked worker and a fork server's notice their stage's end alike: the fork server's SIGKILL covers both.)"""
    make_layout(tmp_path, EXP, CFG, make_data(tmp_path / "data" / "voc"), "1/2", SEEDS)
    stopped = dict.fromkeys(SEEDS, 0)
    for how, start in [(signal.SIGTERM, "fork"), (signal.SIGKILL, "forkserver"), (signal.SIGKILL, "warm")]:
        out = kill_mid_run(tmp_path, how, start, max(stopped.values()) + 2)
        for seed in SEEDS:
            assert first_step(out, seed) == stopped[seed] + CFG.runtime.log_every, out  # resumed
            stopped[seed] = step_of(tmp_path, seed)  # each checkpoint loads
        assert all(step < STEPS for step in stopped.values()), (start, stopped)

    again = subprocess.run(stage_command(tmp_path), env=environment(), cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    for seed in SEEDS:
        assert f"{EXP}/seed-{seed}: {STEPS - stopped[seed]} steps (from {stopped[seed]})" in again.stdout, again.stdout
    resumed = ckpt.load(tmp_path / "runs" / "voc" / EXP / f"seed-{SEEDS[0]}" / "checkpoint.pt")["networks"]
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], v) for k, v in reference.items())

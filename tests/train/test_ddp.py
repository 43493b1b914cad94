"""A run on two processes (torchrun, gloo, CPU) is the run on one: same batches, same losses, same weights.

The two-process run splits a batch of 3 unevenly (1 + 2 images), the hardest case for the batch statistics
(eqs. 1-10 are means over the whole batch; the latent loss is an entropy of the batch's joint distribution).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from latentseg.config import to_dict
from latentseg.data.layout import write_list
from latentseg.models.init import load_init
from latentseg.run.outputs import Outputs
from latentseg.train import distributed, trainer
from latentseg.train.checkpoint import unwrap
from latentseg.train.sampling import StreamBatchSampler, shard
from latentseg.train.step import build_networks
from tests.train.speed_fixtures import NUM_CLASSES, calibrated_init, make_data, one_thread, tiny_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

REPO = Path(__file__).resolve().parents[2]


def test_shards_of_a_batch_cover_it_once_and_match_one_process():
    for batch, world in [(10, 1), (10, 2), (10, 4), (3, 2), (10, 10)]:
        bounds = [shard(batch, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == batch
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        whole = list(StreamBatchSampler(7, batch, 5, 0, 2, 5))
        parts = [list(StreamBatchSampler(7, batch, 5, 0, 2, 5, r, world)) for r in range(world)]
        assert [[draw for p in parts for draw in p[i]] for i in range(3)] == whole
    with pytest.raises(ValueError, match="cannot be split"):
        shard(2, 0, 4)


def _state_of_single_run(cfg, data, path: Path, init: Path) -> dict:
    captured = {}
    update = trainer.one_update

    def spy(step_module, *args, **kwargs):
        captured["step"] = step_module
        return update(step_module, *args, **kwargs)

    trainer.one_update = spy
    try:
        summary = trainer.train(cfg, path, data, init)
    finally:
        trainer.one_update = update
    step = captured["step"]
    return {"matrix": step.objective.cooccurrence.matrix, "model": unwrap(step.model).state_dict(),
            "disc": step.discriminator.state_dict(), "last": summary.last_losses}


def _flat_change(state: dict, initial: dict) -> torch.Tensor:
    return torch.cat([(state[k] - initial[k]).flatten() for k in sorted(initial)
                      if initial[k].is_floating_point() and not k.endswith(("running_mean", "running_var"))])


@pytest.mark.slow
def test_two_process_run_holds_one_state_and_equals_the_one_process_run(tmp_path):
    data = make_data(tmp_path / "voc")
    cfg = tiny_config()
    init = calibrated_init(cfg, data, tmp_path / "init.pt")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(to_dict(cfg)))
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests/train/ddp_worker.py"), str(data.root), str(config), str(out), str(init)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))

    # Every rank holds the same state: the co-occurrence matrix (eq. 7) and both networks' weights.
    assert torch.equal(r0["matrix"], r1["matrix"]) and r0["matrix"].sum() > 0
    for key in ("model", "disc"):
        for name, value in r0[key].items():
            assert torch.equal(value, r1[key][name]), f"{key}.{name} differs between the ranks"
    assert r0["logged"] and not r1["logged"]  # rank 0 alone logs
    assert (out / "checkpoint.pt").is_file()

    # ... and it is the state of one process that holds the whole batch.
    single = _state_of_single_run(cfg, data, tmp_path / "single.pt", init)
    for name, value in single["last"].items():
        assert r0["logged"][name] == pytest.approx(value, rel=2e-4, abs=1e-6), name
    assert torch.allclose(r0["matrix"], single["matrix"], rtol=1e-4, atol=1e-6)
    torch.manual_seed(cfg.optim.seed)  # the initial weights, built as the trainer builds them
    model0, disc0 = build_networks(cfg, NUM_CLASSES)
    load_init(model0, init)
    for key, initial in (("model", model0.state_dict()), ("disc", disc0.state_dict())):
        ddp, one = _flat_change(r0[key], initial), _flat_change(single[key], initial)
        assert one.norm() > 1e-3  # the weights moved
        assert (ddp - one).norm() <= 1e-3 * one.norm(), f"{key}: the two-process update differs"


@pytest.mark.slow
def test_train_stage_on_two_processes_trains_once_and_writes_once(tmp_path):
    """``LATENTSEG_NPROC_PER_NODE=2 python stages/train.py ...`` restarts itself under torchrun; rank 0 alone
    writes the curves, the checkpoint and the metrics, and evaluates."""
    data = make_data(tmp_path / "voc")
    cfg = tiny_config(runtime={"eval_every": 2})
    split = tmp_path / "splits" / "1-2"
    write_list(split / "labeled.txt", data.labeled)
    write_list(split / "unlabeled.txt", data.unlabeled)
    doc = {"experiment": {"id": "tiny-ddp", "dataset": "voc", "fraction": "1/2", "method": "proposed",
                          "init": "none", "seeds": [1234]}, "profile": "demo", "run": to_dict(cfg)}
    layout = Outputs(configs=tmp_path / "configs", runs=tmp_path / "runs", results=tmp_path / "results")
    layout.experiment_config("voc", "tiny-ddp").parent.mkdir(parents=True)
    layout.experiment_config("voc", "tiny-ddp").write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "LATENTSEG_NPROC_PER_NODE": "2"}
    cmd = [sys.executable, str(REPO / "stages/train.py"), "voc", "--configs", str(layout.configs),
           "--data", str(data.root), "--splits", str(tmp_path / "splits"), "--weights", str(tmp_path / "weights"),
           "--runs", str(layout.runs), "--results", str(layout.results)]
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "manifest.json").write_text('{"profile": "demo", "weights": {}}')
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("tiny-ddp/seed-1234: 3 steps") == 1
    assert proc.stdout.count("tiny-ddp: mIoU") == 1
    metrics = json.loads(layout.metrics_file("voc", "tiny-ddp").read_text())
    assert metrics["runs"]["seed-1234"]["steps"] == 3 and "miou" in metrics
    assert torch.load(layout.run_folder("voc", "tiny-ddp", 1234) / "checkpoint.pt")["step"] == 3
    live = layout.curves_folder("voc", "tiny-ddp") / "seed-1234" / "plots" / "metrics"
    assert (live / "train" / "total.tsv").is_file() and (live / "val" / "miou.tsv").is_file()
    assert (layout.latent_folder("voc", "tiny-ddp") / "seed-1234.csv").read_text().startswith("class,l0")


def test_each_process_claims_its_own_gpu(tmp_path, monkeypatch):
    """The lock-file claim that spreads queued runs (and torchrun ranks) over GPUs, with a fake CUDA of 2 GPUs."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=f"GPU-{i}"))
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    try:
        # flock treats each open file separately, so two claims in one process behave as two processes
        assert [distributed.claim_free_gpu(tmp_path) for _ in range(3)] == [0, 1, None]
        assert chosen == [0, 1]
        distributed.release_gpu_claims()
        assert distributed.claim_free_gpu(tmp_path) == 0  # a finished run frees its GPU
    finally:
        distributed.release_gpu_claims()

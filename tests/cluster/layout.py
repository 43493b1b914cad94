"""A pipeline's files for one experiment, as the stages lay them out, without DVC: the resolved configuration,
a prepared data set, its split, a weights folder (and a classifier's resolved file); and waiting for a cluster's
jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from latentseg.cluster.layout import Layout
from latentseg.config import RunConfig, to_dict
from latentseg.data.layout import TrainData, split_folder, write_list
from latentseg.models.init import MANIFEST
from latentseg.registry.experiments import resolve_classifier

REPO = Path(__file__).resolve().parents[2]


def make_layout(root: Path, exp_id: str, cfg: RunConfig, data: TrainData, fraction: str, seeds: list[int],
                init: Path | None = None) -> Layout:
    """``root/{configs,splits,weights,runs}`` for the experiment ``exp_id`` of ``cfg`` on ``data``
    (prepared at ``root/data/voc``); ``init``: its initial weights, as the weights stage's ``coco``."""
    assert data.root == root / "data" / "voc"
    layout = Layout(root / "configs", root / "data", root / "splits", root / "weights", root / "runs")
    split = split_folder(layout.splits / "voc", fraction)
    write_list(split / "labeled.txt", data.labeled)
    write_list(split / "unlabeled.txt", data.unlabeled)
    layout.weights.mkdir(parents=True)
    entries = {}
    if init is not None:
        (layout.weights / "coco.pt").write_bytes(init.read_bytes())
        entries["coco"] = {"made_by": "a test"}
    (layout.weights / MANIFEST).write_text(json.dumps({"profile": "demo", "weights": entries}))
    doc = {"experiment": {"id": exp_id, "dataset": "voc", "fraction": fraction, "method": "proposed",
                          "init": "none" if init is None else "coco", "seeds": seeds},
           "profile": "demo", "run": to_dict(cfg)}
    path = layout.outputs.experiment_config("voc", exp_id)
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return layout


def write_classifier(layout: Layout, params: dict, classifier: str) -> None:
    """The resolved file of ``classifier`` of ``params``, as stage resolve writes it."""
    doc = {"profile": params["profile"], **resolve_classifier(params, classifier)}
    path = layout.outputs.classifier_config(doc["dataset"], classifier)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def wait_for(condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str] = str,
             every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs()}")
        time.sleep(every)


def queued(env: dict[str, str]) -> str:
    return subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], env=env, capture_output=True, text=True).stdout


def latentseg(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The ``latentseg`` command of this checkout (``python -m latentseg.cli``)."""
    return subprocess.run([sys.executable, "-m", "latentseg.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)

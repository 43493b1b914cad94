"""A finished run's evaluation and its record, ``<run folder>/evaluation.json``, reused instead of evaluating again.

The record is keyed by the checkpoint's identity (``train/identity.py``: settings, training code, data, initial
weights), its step and the fingerprint of the evaluation code (this module's import closure). A run trained and
evaluated on a cluster is thus not evaluated again by ``dvc repro`` (ResNet-101 on a CPU takes hours), and any
change to what the evaluation computes, or to the run, evaluates it again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentseg import methods
from latentseg.data.dataset import eval_loader
from latentseg.data.layout import TrainData
from latentseg.evaluate import evaluate, normalise_rows, run_metrics
from latentseg.train.checkpoint import cooccurrence, load_trained
from latentseg.util.closure import HELPERS, fingerprint
from latentseg.util.devices import resolve_device
from latentseg.util.files import atomic_write_json

FILE = "evaluation.json"
Evaluation = tuple[dict[str, float], Tensor | None, Tensor | None]  # metrics, P(l|c) from M, P(l|c) of validation


def evaluation_code(objective: str) -> str:
    """The fingerprint of the code that evaluates a checkpoint of method ``objective``: this module and what it
    imports, with that method's module and none of the registry's others (adding or changing a method
    re-evaluates no run of another)."""
    return fingerprint(__name__, HELPERS, plugins=False, also=(methods.module_of(objective),))


def evaluation_key(ident: dict, step: int) -> dict[str, Any]:
    """What an evaluation record must match: the run's identity (as a digest), its step, the evaluation code."""
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    objective = ident["config"]["objective"]
    return {"identity": digest, "step": step, "evaluation_code": evaluation_code(objective)}


def evaluate_checkpoint(checkpoint: Path, data: TrainData, workers: int = 0) -> Evaluation:
    """Validation metrics of a finished run, and its P(l|c) from training's M and from the validation set."""
    model, cfg, state = load_trained(checkpoint)
    device = resolve_device(cfg.runtime.device)
    loader = eval_loader(data.root, cfg.data, workers=workers)
    result = evaluate(model.to(device), loader, data.meta.num_classes, device, autocast=device.type == "cuda")
    matrix = cooccurrence(state)
    p_latent = None if matrix is None else normalise_rows(matrix.float())
    return run_metrics(result, data.meta.classes, state["step"], p_latent), p_latent, result.p_latent_given_class


def recorded(path: Path, key: dict[str, Any]) -> Evaluation | None:
    """The evaluation recorded at ``path`` under ``key``; None if there is none, or one of another key."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    return doc["metrics"], _tensor(doc["p_latent"]), _tensor(doc["p_latent_val"])


def record(path: Path, key: dict[str, Any], evaluation: Evaluation) -> None:
    metrics, p_latent, p_latent_val = evaluation
    atomic_write_json(path, {"key": key, "metrics": metrics, "p_latent": _rows(p_latent),
                             "p_latent_val": _rows(p_latent_val)})


def _rows(p: Tensor | None) -> list | None:
    return None if p is None else p.float().tolist()


def _tensor(rows: list | None) -> Tensor | None:
    return None if rows is None else torch.tensor(rows, dtype=torch.float32)


def evaluated(checkpoint: Path, data: TrainData, ident: dict, step: int, workers: int = 0) -> tuple[Evaluation, bool]:
    """The run's evaluation, from its record where the key matches, else computed and recorded; and whether it
    was computed now."""
    path, key = checkpoint.with_name(FILE), evaluation_key(ident, step)
    found = recorded(path, key)
    if found is not None:
        return found, False
    evaluation = evaluate_checkpoint(checkpoint, data, workers)
    record(path, key, evaluation)
    return evaluation, True

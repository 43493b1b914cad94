"""The experiment registry: from the parameter tree (``params.yaml``) to the configuration of one run.

A run's configuration is layered, later layers winning key by key:

1. the top-level sections (``model``, ``data``, ``optim``, ``loss``, ``latent``, ...): the paper's defaults;
2. ``datasets.<dataset>.run``: what differs by data set (Cityscapes' crops);
3. ``profiles.<profile>.run`` and ``profiles.<profile>.datasets.<dataset>.run``: what differs by profile
   (the demo's tiny backbone and short schedule);
4. ``methods.<method>``: the method or variant (Table 3's loss terms, Hung et al., Table 5's targets);
5. the experiment's own sections (Table 4's ``latent.k``).

This module knows nothing of DVC: it maps a dictionary to a ``RunConfig``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from latentseg.config import RunConfig, from_dict
from latentseg.data.splits import fraction_slug

SECTIONS = ("model", "data", "optim", "loss", "latent", "self_training", "classifier", "runtime")
SPEC_KEYS = ("dataset", "fraction", "method", "init", "seed")


@dataclass(frozen=True)
class Experiment:
    id: str
    dataset: str
    fraction: str
    method: str
    init: str
    seed: int

    @property
    def fraction_slug(self) -> str:
        return fraction_slug(self.fraction)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` updated by ``overlay`` key by key (nested mappings merged, everything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and value:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _lookup(params: dict[str, Any], *path: str) -> Any:
    node: Any = params
    for i, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f"params: {'.'.join(path[: i + 1])} is not defined")
        node = node[key]
    return node


def experiment(params: dict[str, Any], exp_id: str) -> Experiment:
    entry = _lookup(params, "experiments", exp_id)
    unknown = sorted(set(entry) - set(SPEC_KEYS) - set(SECTIONS))
    if unknown:
        raise KeyError(f"experiments.{exp_id}: unknown key(s) {unknown}; allowed: {[*SPEC_KEYS, *SECTIONS]}")
    for key in ("dataset", "fraction", "method", "init"):
        if key not in entry:
            raise KeyError(f"experiments.{exp_id} must name its {key}")
    _lookup(params, "datasets", entry["dataset"])
    _lookup(params, "methods", entry["method"])
    if entry["init"] not in ("coco", "imagenet", "none"):
        raise ValueError(f"experiments.{exp_id}.init must be coco, imagenet or none, got {entry['init']!r}")
    seed = entry.get("seed", params.get("optim", {}).get("seed", 1234))
    return Experiment(exp_id, entry["dataset"], str(entry["fraction"]), entry["method"], entry["init"], int(seed))


def run_tree(params: dict[str, Any], exp_id: str) -> dict[str, Any]:
    """The merged section tree of one experiment (plain dictionaries, before typing)."""
    exp = experiment(params, exp_id)
    profile = _lookup(params, "profiles", params.get("profile", "demo"))
    tree = {s: params.get(s, {}) for s in SECTIONS}
    layers = [
        params["datasets"][exp.dataset].get("run"),
        profile.get("run"),
        (profile.get("datasets", {}).get(exp.dataset) or {}).get("run"),
        params["methods"][exp.method],
        {s: v for s, v in params["experiments"][exp_id].items() if s in SECTIONS},
    ]
    for layer in layers:
        tree = deep_merge(tree, layer)
    tree["optim"] = {**tree["optim"], "seed": exp.seed}
    return tree


def resolve(params: dict[str, Any], exp_id: str) -> tuple[Experiment, RunConfig]:
    """The typed configuration of ``exp_id`` (paths are left empty: the caller decides where data lives)."""
    exp = experiment(params, exp_id)
    tree = run_tree(params, exp_id)
    cfg = from_dict(RunConfig, {"dataset": exp.dataset, "init": exp.init, **tree}, "")
    return exp, cfg

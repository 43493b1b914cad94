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
from dataclasses import dataclass, replace
from typing import Any

from latentseg.config import (
    ClassifierConfig,
    LatentConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SelfTrainingConfig,
    from_dict,
)
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


def canonical(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every setting the run does not use reset to its class default.

    Two runs that train the same way then have equal configurations, so a parameter change re-runs only the runs
    that use it (Hung et al.'s runs ignore ``latent.k``; no training run reads the ``classifier`` section, which
    its own stage uses).
    """
    loss, latent, model, optim = cfg.loss, cfg.latent, cfg.model, cfg.optim
    if not cfg.uses_latent_branch:
        latent = LatentConfig()
        loss = replace(loss, lambda_latent=LossConfig.lambda_latent)
    elif latent.target != "learned":
        latent = replace(latent, k=LatentConfig.k)  # the width comes from the groups / the class count
    if latent.target != "manual":
        latent = replace(latent, groups={})
    if not loss.consistency:
        loss = replace(loss, lambda_cons=LossConfig.lambda_cons)
    if not (loss.consistency or loss.adversarial == "all"):
        loss = replace(loss, lambda_unlabeled=LossConfig.lambda_unlabeled)
    uses_d = loss.adversarial != "none" or cfg.self_training.enabled
    if not uses_d:
        loss = replace(loss, lambda_adv=LossConfig.lambda_adv)
        model = replace(model, discriminator_width=ModelConfig.discriminator_width)
        optim = replace(optim, d_lr=OptimConfig.d_lr, d_betas=OptimConfig.d_betas)
    st = cfg.self_training if cfg.self_training.enabled else SelfTrainingConfig()
    return replace(cfg, loss=loss, latent=latent, model=model, optim=optim, self_training=st,
                   classifier=ClassifierConfig())


def resolve(params: dict[str, Any], exp_id: str) -> tuple[Experiment, RunConfig]:
    """The typed configuration of ``exp_id`` (paths are left empty: the caller decides where data lives).

    The ``classifier`` section is not part of it (see ``canonical``); ``classifier_config`` gives it.
    """
    exp = experiment(params, exp_id)
    return exp, canonical(_typed(params, exp_id))


def classifier_config(params: dict[str, Any], exp_id: str) -> ClassifierConfig:
    """The image-classifier settings that apply to the data set and profile of ``exp_id``."""
    return _typed(params, exp_id).classifier


def _typed(params: dict[str, Any], exp_id: str) -> RunConfig:
    exp = experiment(params, exp_id)
    return from_dict(RunConfig, {"dataset": exp.dataset, "init": exp.init, **run_tree(params, exp_id)}, "")

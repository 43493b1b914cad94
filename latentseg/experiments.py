"""The experiment registry: from the parameter tree (``params.yaml``) to the configuration of every run.

A run's configuration is layered, later layers winning key by key:

1. the top-level sections (``model``, ``data``, ``optim``, ``loss``, ``latent``, ...): the paper profile's values;
2. ``datasets.<dataset>.run``: what differs by data set (Cityscapes' crops);
3. ``profiles.<profile>.run`` and ``profiles.<profile>.datasets.<dataset>.run``: what differs by profile
   (the demo's tiny backbone and short schedule);
4. ``methods.<method>``, ``datasets.<dataset>.methods.<method>``, ``profiles.<profile>.methods.<method>``: the
   method or variant (Table 3's loss terms, Hung et al., s4GAN, Table 5's targets), and where a method's own
   code sets values by data set or by profile (s4GAN's Cityscapes threshold, its 40,000 iterations);
5. the experiment's own sections (Table 4's ``latent.k``).

An experiment has one run per training seed (``repeats``). This module knows nothing of DVC or torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from latentseg.config import ClassifierConfig, DataConfig, RunConfig, from_dict, to_dict
from latentseg.data.layout import parse_fraction
from latentseg.params import profile_section

SECTIONS = ("model", "data", "optim", "loss", "latent", "hung", "s4gan", "discriminator", "runtime")
LAYER_KEYS = ("objective", *SECTIONS, "classifier")  # what a layer may set
SPEC_KEYS = ("dataset", "fraction", "method", "init")
INITS = ("coco", "imagenet", "none")


@dataclass(frozen=True)
class Experiment:
    id: str
    dataset: str
    fraction: str
    method: str
    init: str
    seeds: tuple[int, ...]  # one run per training seed


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


def _check_layer(layer: dict[str, Any] | None, where: str) -> dict[str, Any]:
    unknown = sorted(set(layer or {}) - set(LAYER_KEYS))
    if unknown:
        raise KeyError(f"{where}: unknown key(s) {unknown}; a layer sets {list(LAYER_KEYS)}")
    return layer or {}


def repeats(params: dict[str, Any]) -> dict[str, Any]:
    """The ``repeats`` setting of the current profile (``profiles.<p>.repeats`` over the top-level one)."""
    _, profile = profile_section(params)
    merged = deep_merge(_lookup(params, "repeats"), profile.get("repeats"))
    seeds = merged.get("seeds")
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"repeats.seeds must be a non-empty list of distinct integers, got {seeds!r}")
    chosen = merged.get("experiments", "all")
    if chosen != "all":
        unknown = sorted(set(chosen) - set(params["experiments"]))
        if unknown:
            raise KeyError(f"repeats.experiments names unknown experiment(s) {unknown}")
    return merged


def experiment(params: dict[str, Any], exp_id: str) -> Experiment:
    entry = _lookup(params, "experiments", exp_id)
    unknown = sorted(set(entry) - set(SPEC_KEYS) - set(LAYER_KEYS))
    if unknown:
        raise KeyError(f"experiments.{exp_id}: unknown key(s) {unknown}; allowed: {[*SPEC_KEYS, *LAYER_KEYS]}")
    for key in SPEC_KEYS:
        if key not in entry:
            raise KeyError(f"experiments.{exp_id} must name its {key}")
    _lookup(params, "datasets", entry["dataset"])
    _lookup(params, "methods", entry["method"])
    if entry["init"] not in INITS:
        raise ValueError(f"experiments.{exp_id}.init must be one of {INITS}, got {entry['init']!r}")
    parse_fraction(entry["fraction"])
    rep = repeats(params)
    seeds = rep["seeds"] if rep.get("experiments", "all") == "all" or exp_id in rep["experiments"] else rep["seeds"][:1]
    return Experiment(exp_id, entry["dataset"], str(entry["fraction"]), entry["method"], entry["init"], tuple(seeds))


def defaults(params: dict[str, Any]) -> dict[str, Any]:
    """The top-level layer: ``objective`` and every section."""
    return {key: _lookup(params, key) for key in LAYER_KEYS}


def run_tree(params: dict[str, Any], exp_id: str) -> dict[str, Any]:
    """The merged layer tree of one experiment (plain dictionaries, before typing)."""
    exp = experiment(params, exp_id)
    name, profile = profile_section(params)
    d, method = exp.dataset, exp.method
    dataset = params["datasets"][d]
    layers = [
        (dataset.get("run"), f"datasets.{d}.run"),
        (profile.get("run"), f"profiles.{name}.run"),
        ((profile.get("datasets", {}).get(d) or {}).get("run"), f"profiles.{name}.datasets.{d}.run"),
        (params["methods"][method], f"methods.{method}"),
        ((dataset.get("methods") or {}).get(method), f"datasets.{d}.methods.{method}"),
        ((profile.get("methods") or {}).get(method), f"profiles.{name}.methods.{method}"),
        ({k: v for k, v in params["experiments"][exp_id].items() if k in LAYER_KEYS}, f"experiments.{exp_id}"),
    ]
    tree = defaults(params)
    for layer, where in layers:
        tree = deep_merge(tree, _check_layer(layer, where))
    return tree


def canonical(cfg: RunConfig, fraction: str) -> RunConfig:
    """``cfg`` with every setting the run does not use set to None (empty groups).

    Two runs that train the same way then have equal configurations, so a parameter change re-runs only the runs
    that use it (Hung et al.'s runs ignore ``latent.k``; a run without random scaling ignores ``scale_range``).
    """
    data = cfg.data
    if not data.random_scale:
        data = replace(data, scale_range=None, scale_step=None)
    if parse_fraction(fraction) != 1:
        data = replace(data, full_unlabeled=None)
    cfg = replace(cfg, data=data)
    if cfg.objective == "hung":
        return replace(cfg, loss=None, latent=None, s4gan=None)
    if cfg.objective == "s4gan":
        return replace(cfg, loss=None, latent=None, hung=None)
    loss, latent, disc = cfg.loss, cfg.latent, cfg.discriminator
    if loss is None or latent is None:
        raise ValueError("the latent objective needs the loss and latent sections")
    if not loss.latent:
        latent = None
        loss = replace(loss, lambda_latent=None)
    else:
        if latent.target != "learned":
            latent = replace(latent, k=None)  # the width comes from the groups / the class count
        if latent.target != "manual":
            latent = replace(latent, groups={})
        if latent.target == "semantic_kl":
            latent = replace(latent, alpha=None)  # no co-occurrence matrix
    if not loss.consistency:
        loss = replace(loss, lambda_cons=None)
    if loss.adversarial == "none":
        loss, disc = replace(loss, lambda_adv=None), None
    if not (loss.consistency or loss.adversarial == "all"):
        loss = replace(loss, lambda_unlabeled=None)
    return replace(cfg, loss=loss, latent=latent, hung=None, s4gan=None, discriminator=disc)


def validate(cfg: RunConfig) -> None:
    """Combinations no method defines; raised at resolve time, naming the fix."""
    if cfg.objective != "latent":
        if cfg.discriminator is None:
            raise ValueError(f"the {cfg.objective} objective needs the discriminator section")
        return
    loss, latent = cfg.loss, cfg.latent
    assert loss is not None
    if loss.consistency and latent is None:
        raise ValueError("loss.consistency needs the latent branch: set loss.latent: true")
    if latent is not None and latent.target == "manual" and not latent.groups:
        raise ValueError("latent.target 'manual' needs latent.groups (supercategory -> class names)")


def resolve(params: dict[str, Any], exp_id: str) -> tuple[Experiment, RunConfig]:
    """The typed configuration of ``exp_id``'s runs (``optim.seed``: its first seed; ``with_seed`` for others).

    The ``classifier`` section is not part of it: no training run reads it (``resolve_classifier`` does).
    """
    exp = experiment(params, exp_id)
    tree = run_tree(params, exp_id)
    tree.pop("classifier")
    tree["optim"] = {**tree["optim"], "seed": exp.seeds[0]}
    try:
        cfg = from_dict(RunConfig, {"dataset": exp.dataset, "init": exp.init, **tree}, "")
    except (KeyError, TypeError, ValueError) as err:
        raise type(err)(f"experiments.{exp_id}: {err.args[0]}") from err
    cfg = canonical(cfg, exp.fraction)
    validate(cfg)
    return exp, cfg


def dataset_data(params: dict[str, Any], dataset: str) -> DataConfig:
    """The data settings of ``dataset`` in the current profile, before any method's layer (the classifier's)."""
    _, profile = profile_section(params)
    tree = _lookup(params, "data")
    for layer in (params["datasets"][dataset].get("run"), profile.get("run"),
                  (profile.get("datasets", {}).get(dataset) or {}).get("run")):
        tree = deep_merge(tree, (layer or {}).get("data"))
    return from_dict(DataConfig, tree, "data.")


def resolve_classifier(params: dict[str, Any], cls_id: str) -> dict[str, Any]:
    """Everything the classifier stage needs: its settings, data, split, seeds and the runs it filters."""
    entry = _lookup(params, "classifiers", cls_id)
    missing = [k for k in ("dataset", "fraction", "filters") if k not in entry]
    if missing:
        raise KeyError(f"classifiers.{cls_id} must name its {', '.join(missing)}")
    _, profile = profile_section(params)
    tree = _lookup(params, "classifier")
    for layer in (params["datasets"][entry["dataset"]].get("run"), profile.get("run"),
                  (profile.get("datasets", {}).get(entry["dataset"]) or {}).get("run")):
        tree = deep_merge(tree, (layer or {}).get("classifier"))
    config = from_dict(ClassifierConfig, tree, "classifier.")
    seeds: list[int] = []
    for exp_id in entry["filters"]:
        exp = experiment(params, exp_id)
        if (exp.dataset, parse_fraction(exp.fraction)) != (entry["dataset"], parse_fraction(entry["fraction"])):
            raise ValueError(f"classifiers.{cls_id} filters {exp_id}, a run of another data set or fraction")
        seeds += [s for s in exp.seeds if s not in seeds]
    data = dataset_data(params, entry["dataset"])
    return {"classifier": cls_id, "dataset": entry["dataset"], "fraction": str(entry["fraction"]),
            "filters": list(entry["filters"]), "seeds": seeds, "config": to_dict(config), "data": to_dict(data)}


def pretraining_config(params: dict[str, Any], run: dict[str, Any], init: str, seed: int) -> RunConfig:
    """COCO pretraining as a run: the top-level sections, the profile's ``run``, then the pretraining's own
    ``run`` overrides, with the cross-entropy alone (no latent branch, no discriminator)."""
    _, profile = profile_section(params)
    tree = deep_merge(defaults(params), _check_layer(profile.get("run"), "profiles.<profile>.run"))
    tree = deep_merge(tree, _check_layer(run, "pretrain_coco.run"))
    tree.pop("classifier")
    tree["objective"] = "latent"
    tree["loss"] = {**tree["loss"], "latent": False, "consistency": False, "adversarial": "none"}
    tree["optim"] = {**tree["optim"], "seed": seed}
    cfg = from_dict(RunConfig, {"dataset": "voc", "init": init, **tree}, "")
    return canonical(cfg, "full")


def resolve_weights(params: dict[str, Any]) -> dict[str, Any]:
    """The plan of stage ``weights``: for each initialisation, null, a published file, or COCO pretraining
    (with its resolved run configuration), as ``profiles.<profile>.weights`` says."""
    name, profile = profile_section(params)
    wanted = profile.get("weights") or {}
    unknown = sorted(set(wanted) - {"coco", "imagenet"})
    if unknown:
        raise KeyError(f"profiles.{name}.weights: unknown initialisation(s) {unknown}; allowed: coco, imagenet")
    plan: dict[str, Any] = {"profile": name}
    for init in ("imagenet", "coco"):  # in the order they are made: COCO pretraining may start from ImageNet
        how = wanted.get(init)
        where = f"profiles.{name}.weights.{init}"
        if how is None or (isinstance(how, dict) and "published" in how):
            plan[init] = how
        elif isinstance(how, dict) and set(how) == {"pretrain_coco"}:
            spec = dict(how["pretrain_coco"] or {})
            for key in ("seed", "init", "run"):
                if key not in spec:
                    raise KeyError(f"{where}.pretrain_coco must set {key}")
            cfg = pretraining_config(params, spec.pop("run"), spec["init"], spec.pop("seed"))
            plan[init] = {"pretrain_coco": spec, "config": to_dict(cfg)}
        else:
            raise ValueError(f"{where} must be null, {{published: <name>, ...}} or {{pretrain_coco: {{...}}}}, "
                             f"got {how!r}")
    return plan


"""The experiment registry: from the parameter tree (``params.yaml``) to the configuration of every run.

The current profile (``profiles.<p>``) is a patch of the tree by the same key paths (the demo's tiny backbone and
short schedule: ``profiles.demo.model``, ``profiles.demo.datasets.cityscapes.run``, ...), applied first. A run's
configuration is then four layers, later winning key by key:

1. the top-level sections (``model``, ``data``, ``optim``, ``loss``, ``latent``, ...): the paper's values;
2. ``datasets.<dataset>.run``: what differs by data set (Cityscapes' crops);
3. ``methods.<method>``: the method or variant (Table 3's loss terms, Hung et al., s4GAN on Cityscapes, Table 5's
   targets);
4. the experiment's own sections (Table 4's ``latent.k``).

``layers`` lists them with the profile's patch of each beside it, so that ``origins`` can name the params.yaml path
where each value was set. An experiment has one run per training seed (``repeats``). This module knows nothing of
DVC.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from latentseg import methods
from latentseg.config import ClassifierConfig, DataConfig, RunConfig, SettingsError, from_dict, to_dict
from latentseg.data.layout import parse_fraction
from latentseg.methods.latent import METHOD as PAPER_METHOD
from latentseg.registry.params import check_profile, profile_section
from latentseg.registry.planted import planted_groups
from latentseg.run.outputs import CLASSIFIER_PREFIX
from latentseg.util.progress import UserError

SECTIONS = ("model", "data", "optim", "discriminator", "runtime")  # every run's; each method adds its own
LAYER_KEYS = ("objective", *SECTIONS, *methods.sections(), "classifier")  # what a layer may set
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
        raise SettingsError([(f"{where}.{k}", (layer or {})[k], f"unknown section; a layer sets "
                                                                f"{', '.join(LAYER_KEYS)}") for k in unknown])
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


def _parsed(fractions: list[Any]) -> set[Fraction]:
    """The fractions of a data set's list that parse (``check_datasets`` reports the others)."""
    out = set()
    for text in fractions:
        with contextlib.suppress(ValueError):
            out.add(parse_fraction(text))
    return out


def check_datasets(params: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """The problems of each data set's ``fractions``, the labeled fractions the split stage makes."""
    problems: list[tuple[str, Any, str]] = []
    for name, section in (params.get("datasets") or {}).items():
        problems += [(f"datasets.{name}.{k}", (section or {})[k], f"unknown key; a data set sets "
                      f"{', '.join(DATASET_KEYS)} (a method's values by data set: a method entry of its own)")
                     for k in sorted(set(section or {}) - set(DATASET_KEYS))]
        where = f"datasets.{name}.fractions"
        fractions = (section or {}).get("fractions")
        if not isinstance(fractions, list) or not fractions:
            problems.append((where, fractions, "must be a list of labeled fractions, such as ['1/8', 'full']"))
            continue
        for i, text in enumerate(fractions):
            try:
                parse_fraction(text)
            except ValueError:
                problems.append((f"{where}.{i}", text, "must be 'full' or a fraction in (0, 1], such as 1/8"))
    return problems


def _unsplit(params: dict[str, Any], dataset: str, fraction: str) -> list[tuple[str, Any, str]]:
    """The problem of a fraction the split stage does not make: the data set's list lacks it (one line for every
    experiment on that fraction)."""
    fractions = (params["datasets"][dataset] or {}).get("fractions")
    if not isinstance(fractions, list) or parse_fraction(fraction) in _parsed(fractions):
        return []
    return [(f"datasets.{dataset}.fractions", fractions, f"has no {fraction}, the fraction of the experiment: the "
                                                         "split stage makes none; add it, or change the experiment's")]


def experiment(params: dict[str, Any], exp_id: str) -> Experiment:
    entry = _lookup(params, "experiments", exp_id)
    problems = [(k, entry[k], f"unknown key; an experiment sets {', '.join([*SPEC_KEYS, *LAYER_KEYS])}")
                for k in sorted(set(entry) - set(SPEC_KEYS) - set(LAYER_KEYS))]
    problems += [(k, None, "missing: every experiment names it") for k in SPEC_KEYS if k not in entry]
    if entry.get("dataset") not in params["datasets"] and "dataset" in entry:
        problems.append(("dataset", entry["dataset"], f"must be one of {', '.join(params['datasets'])} "
                                                      "(params.yaml: datasets)"))
    if entry.get("method") not in params["methods"] and "method" in entry:
        problems.append(("method", entry["method"], "must be a key of params.yaml: methods"))
    if exp_id.startswith(CLASSIFIER_PREFIX):
        problems.append(("", exp_id, f"an experiment's id may not start with {CLASSIFIER_PREFIX!r}: the folders of "
                                     "the data set's classifiers are named so (latentseg/run/outputs.py)"))
    if "init" in entry and entry["init"] not in INITS:
        problems.append(("init", entry["init"], f"must be one of {', '.join(INITS)}"))
    try:
        parse_fraction(entry.get("fraction", "full"))
    except ValueError:
        problems.append(("fraction", entry["fraction"], "must be 'full' or a fraction in (0, 1], such as 1/8"))
    if problems:
        raise SettingsError(problems).prefixed(f"experiments.{exp_id}.")
    unsplit = _unsplit(params, entry["dataset"], entry["fraction"])
    if unsplit:
        raise SettingsError(unsplit)
    rep = repeats(params)
    seeds = rep["seeds"] if rep.get("experiments", "all") == "all" or exp_id in rep["experiments"] else rep["seeds"][:1]
    return Experiment(exp_id, entry["dataset"], str(entry["fraction"]), entry["method"], entry["init"], tuple(seeds))


def defaults(params: dict[str, Any]) -> dict[str, Any]:
    """The top-level layer: ``objective`` and every section."""
    return {key: _lookup(params, key) for key in LAYER_KEYS}


def layers(params: dict[str, Any], exp_id: str) -> list[tuple[dict[str, Any], str]]:
    """The layers of one experiment, first to last (later wins key by key), each with its place in params.yaml:
    the top level, the data set's ``run``, the method, the experiment's own keys, each followed by the profile's
    patch of it."""
    exp = experiment(params, exp_id)
    name, profile = profile_section(params)
    method = exp.method
    found = [
        *dataset_layers(params, exp.dataset),
        (params["methods"][method], f"methods.{method}"),
        ((profile.get("methods") or {}).get(method), f"profiles.{name}.methods.{method}"),
        ({k: v for k, v in params["experiments"][exp_id].items() if k in LAYER_KEYS}, f"experiments.{exp_id}"),
    ]
    return [(_check_layer(layer, where), where) for layer, where in found]


PROFILE_KEYS = ("datasets", "methods", "repeats", "weights")  # besides the top-level sections (LAYER_KEYS)
DATASET_KEYS = ("fractions", "split_seed", "published_split", "run")  # a data set's; a profile's adds its release


def profile_patch(params: dict[str, Any]) -> dict[str, Any]:
    """The current profile's patch of the top-level sections (``profiles.<p>.model``, ``.data``, ...)."""
    name, profile = profile_section(params)
    unknown = sorted(set(profile) - {*LAYER_KEYS, *PROFILE_KEYS})
    if unknown:
        raise SettingsError([(f"profiles.{name}.{k}", profile[k], "unknown key: a profile patches params.yaml by "
                              f"its key paths, the sections {', '.join(LAYER_KEYS)} and {', '.join(PROFILE_KEYS)}")
                             for k in unknown])
    return {k: v for k, v in profile.items() if k in LAYER_KEYS}


def dataset_layers(params: dict[str, Any], dataset: str) -> list[tuple[dict[str, Any] | None, str]]:
    """The layers before any method's, each with its place: the top level, the data set's ``run``, each with the
    profile's patch of it."""
    name, profile = profile_section(params)
    return [(defaults(params), "top level"), (profile_patch(params), f"profiles.{name}"),
            (params["datasets"][dataset].get("run"), f"datasets.{dataset}.run"),
            ((profile.get("datasets", {}).get(dataset) or {}).get("run"), f"profiles.{name}.datasets.{dataset}.run")]


def run_tree(params: dict[str, Any], exp_id: str) -> dict[str, Any]:
    """The merged layer tree of one experiment (plain dictionaries, before typing)."""
    tree: dict[str, Any] = {}
    for layer, _ in layers(params, exp_id):
        tree = deep_merge(tree, layer)
    return tree


def origins(params: dict[str, Any], exp_id: str) -> dict[str, str]:
    """For each setting (``optim.lr``), the layer its value in ``exp_id``'s tree comes from."""
    return origins_of(layers(params, exp_id))


def origins_of(found: list[tuple[dict[str, Any] | None, str]]) -> dict[str, str]:
    """For each setting of the layers ``found`` (first to last, later wins), the place of the layer that set it."""
    found_at: dict[str, str] = {}

    def visit(node: Any, path: str, where: str) -> None:
        for key in [k for k in found_at if k == path or k.startswith(path + ".")]:
            if not isinstance(node, dict) or not node:
                del found_at[key]
        if isinstance(node, dict) and node:
            for key, value in node.items():
                visit(value, f"{path}.{key}" if path else key, where)
        else:
            found_at[path] = where

    for layer, where in found:
        for key, value in (layer or {}).items():
            visit(value, key, where)
    return found_at


def set_at(key: str, origin: dict[str, str]) -> str:
    """The params.yaml path where the value of setting ``key`` (``optim.lr``, ``data.crop_size.1``) was set, as
    ``origins_of`` found it (``profiles.demo.optim.lr``); ``key`` itself for the top level or no layer."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        layer = origin.get(".".join(parts[:n]))
        if layer is not None:
            return key if layer == "top level" else f"{layer}.{key}"
    return key


def located(err: SettingsError, found: list[tuple[dict[str, Any] | None, str]]) -> SettingsError:
    """``err`` with each key the path where its value was set in the layers ``found``."""
    origin = origins_of(found)
    return SettingsError([(set_at(key, origin), value, message) for key, value, message in err.problems])


def canonical(cfg: RunConfig, fraction: str) -> RunConfig:
    """``cfg`` with every setting the run does not use set to None (empty groups): the data settings here, the
    method's own in its ``canonical``.

    Two runs that train the same way then have equal configurations, so a parameter change re-runs only the runs
    that use it (Hung et al.'s runs ignore ``latent.k``; a run without random scaling ignores ``scale_range``).
    """
    data = cfg.data
    if not data.random_scale:
        data = replace(data, scale_range=None, scale_step=None)
    if parse_fraction(fraction) != 1:
        data = replace(data, full_unlabeled=None)
    return methods.get(cfg.objective).canonical(replace(cfg, data=data))


def typed_run(tree: dict[str, Any], dataset: str, init: str, fraction: str) -> RunConfig:
    """The checked, canonical configuration of a merged layer tree; ``SettingsError`` lists every problem."""
    cfg = canonical(methods.run_config({"dataset": dataset, "init": init, **tree}), fraction)
    problems = methods.get(cfg.objective).check(cfg)
    if cfg.data.random_scale and (cfg.data.scale_range is None or cfg.data.scale_step is None):
        problems.append(("data.scale_range", None, "data.random_scale needs scale_range and scale_step"))
    if cfg.data.scale_range is not None and cfg.data.scale_range[0] > cfg.data.scale_range[1]:
        problems.append(("data.scale_range", list(cfg.data.scale_range), "must be [low, high] with low <= high"))
    if parse_fraction(fraction) == 1 and cfg.data.full_unlabeled is None:
        problems.append(("data.full_unlabeled", None, "a full split needs none or labeled"))
    if problems:
        raise SettingsError(problems)
    return cfg


COCO_DATASET = "coco"  # what COCO pretraining trains on: MS-COCO's VOC classes (prepare/coco.py)


def resolve(params: dict[str, Any], exp_id: str) -> tuple[Experiment, RunConfig]:
    """The typed configuration of ``exp_id``'s runs (``optim.seed``: its first seed; ``with_seed`` for others).

    The ``classifier`` section is not part of it: no training run reads it (``resolve_classifier`` does).
    """
    exp = experiment(params, exp_id)
    tree = run_tree(params, exp_id)
    tree.pop("classifier")
    tree["optim"] = {**tree["optim"], "seed": exp.seeds[0]}
    try:
        return exp, typed_run(tree, exp.dataset, exp.init, exp.fraction)
    except SettingsError as err:
        raise located(err, layers(params, exp_id)) from None


def dataset_data(params: dict[str, Any], dataset: str) -> DataConfig:
    """The data settings of ``dataset`` in the current profile, before any method's layer (the classifier's)."""
    found = dataset_layers(params, dataset)
    tree: dict[str, Any] = {}
    for layer, _ in found:
        tree = deep_merge(tree, (layer or {}).get("data"))
    try:
        return from_dict(DataConfig, tree, "data.")
    except SettingsError as err:
        raise located(err, found) from None


def resolve_classifier(params: dict[str, Any], cls_id: str) -> dict[str, Any]:
    """Everything the classifier stage needs: its settings, data, split, seeds and the runs it filters."""
    entry = _lookup(params, "classifiers", cls_id)
    missing = [k for k in ("dataset", "fraction", "filters") if k not in entry]
    if missing:
        raise KeyError(f"classifiers.{cls_id} must name its {', '.join(missing)}")
    found = dataset_layers(params, entry["dataset"])
    tree: dict[str, Any] = {}
    for layer, _ in found:
        tree = deep_merge(tree, (layer or {}).get("classifier"))
    try:
        config = from_dict(ClassifierConfig, tree, "classifier.")
    except SettingsError as err:
        raise located(err, found) from None
    seeds: list[int] = []
    for exp_id in entry["filters"]:
        exp = experiment(params, exp_id)
        if (exp.dataset, parse_fraction(exp.fraction)) != (entry["dataset"], parse_fraction(entry["fraction"])):
            raise ValueError(f"classifiers.{cls_id} filters {exp_id}, a run of another data set or fraction")
        seeds += [s for s in exp.seeds if s not in seeds]
    data = dataset_data(params, entry["dataset"])
    return {"classifier": cls_id, "dataset": entry["dataset"], "fraction": str(entry["fraction"]),
            "filters": list(entry["filters"]), "seeds": seeds, "config": to_dict(config), "data": to_dict(data)}


def pretraining_config(params: dict[str, Any], run: dict[str, Any], init: str, seed: int,
                       where: str = "pretrain_coco.run") -> RunConfig:
    """COCO pretraining as a run: the top-level sections and the profile's patch of them, then the pretraining's
    own ``run`` overrides (at ``where`` in params.yaml), with the cross-entropy alone (no latent branch, no
    discriminator)."""
    name, _ = profile_section(params)
    found = [(defaults(params), "top level"), (profile_patch(params), f"profiles.{name}"),
             (_check_layer(run, where), where)]
    tree: dict[str, Any] = {}
    for layer, _ in found:
        tree = deep_merge(tree, layer)
    tree.pop("classifier")
    tree["objective"] = PAPER_METHOD.name  # with every term off: the cross-entropy alone
    tree["loss"] = {**tree["loss"], "latent": False, "consistency": False, "adversarial": "none"}
    tree["optim"] = {**tree["optim"], "seed": seed}
    try:
        return typed_run(tree, COCO_DATASET, init, "full")
    except SettingsError as err:
        raise located(err, found) from None


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
            cfg = pretraining_config(params, spec.pop("run"), spec["init"], spec.pop("seed"),
                                     f"{where}.pretrain_coco.run")
            plan[init] = {"pretrain_coco": spec, "config": to_dict(cfg)}
        else:
            raise ValueError(f"{where} must be null, {{published: <name>, ...}} or {{pretrain_coco: {{...}}}}, "
                             f"got {how!r}")
    return plan


def report_settings(params: dict[str, Any]) -> dict[str, Any]:
    """What the report stages read (``configs/reports.yaml``): the profile, the table layouts, the figures, each
    experiment's data set and fraction, the runs each classifier filters, and each data set's planted groups in
    this profile (null: real data)."""
    name, _ = profile_section(params)
    return {
        "profile": name,
        "tables": params["tables"],
        "figures": params.get("figures") or {},
        "figure1": params.get("figure1") or {},
        "experiments": {i: {"dataset": e["dataset"], "fraction": str(e["fraction"])}
                        for i, e in params["experiments"].items()},
        "classifiers": {i: {"dataset": c["dataset"], "fraction": str(c["fraction"]), "filters": list(c["filters"])}
                        for i, c in (params.get("classifiers") or {}).items()},
        "planted_groups": {d: planted_groups(params, d) for d in params["datasets"]},
    }


def check_all(params: dict[str, Any]) -> list[str]:
    """Every problem of the profile's name, the data sets' fractions, and every experiment, classifier and
    initialisation, one line each (empty: all check): of the profile in use, and the bad settings of the others
    (``dvc exp run -S profile=...`` would meet them). Each names the params.yaml path where the value was set; a
    problem shared by several experiments is one line naming the first and how many more."""
    try:
        check_profile(params)
    except UserError as err:
        return [str(err)]
    seen: dict[tuple[str, str, str], list[str]] = {}
    for key, value, message in check_datasets(params):
        seen.setdefault((key, repr(value), message), []).append(f"data set {key.split('.')[1]}")
    for name in sorted(params.get("profiles", {}), key=lambda p: p != params.get("profile")):
        _check_profile(params, name, seen)
    lines = []
    for (key, value, message), places in seen.items():
        at = places[0] + (f" and {len(places) - 1} more" if len(places) > 1 else "")
        lines.append(f"params.yaml: {key} = {value} ({at}): {message}" if key else f"params.yaml ({at}): {message}")
    return lines


def check_experiment(params: dict[str, Any], exp_id: str) -> list[str]:
    """The problems of one experiment in the profile in use, one line each, as ``check_all`` words them."""
    try:
        check_profile(params)
        resolve(params, exp_id)
    except SettingsError as err:
        return [f"params.yaml: {key} = {value!r} (experiment {exp_id}): {message}"
                for key, value, message in err.problems]
    except (KeyError, ValueError) as err:
        return [f"params.yaml (experiment {exp_id}): {err.args[0] if err.args else err}"]
    return []


def _check_profile(params: dict[str, Any], name: str, seen: dict[tuple[str, str, str], list[str]]) -> None:
    """Add the problems of every experiment, classifier and initialisation in profile ``name`` to ``seen``,
    keyed by problem, with the places that have it; those of the registry's own consistency (``KeyError``,
    ``ValueError``) for the profile in use only."""
    tagged, current = {**params, "profile": name}, name == params.get("profile")
    where = "" if current else f"profile {name}, "

    def attempt(what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except SettingsError as err:
            for key, value, message in err.problems:
                seen.setdefault((key, repr(value), message), []).append(what)
        except (KeyError, ValueError) as err:
            if current:
                seen.setdefault(("", "", str(err.args[0] if err.args else err)), []).append(what)

    attempt(f"{where}repeats", repeats, tagged)
    for exp_id in params.get("experiments", {}):
        attempt(f"{where}experiment {exp_id}", resolve, tagged, exp_id)
    for cls_id in params.get("classifiers") or {}:
        attempt(f"{where}classifier {cls_id}", resolve_classifier, tagged, cls_id)
    attempt(f"{where}weights", resolve_weights, tagged)

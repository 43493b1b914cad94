"""Show one experiment's resolved settings and where each comes from: ``latentseg config``.

    latentseg config voc-1_8-k10
    latentseg config cityscapes-1_8-s4gan --profile paper

Each line is a setting of the run, its value, and the place in ``params.yaml`` that set it (as
``git config --show-origin`` does): one of the four layers (``top level``, ``datasets.<d>.run``, ``methods.<m>``,
``experiments.<id>``) or the profile's patch of one (``profiles.<p>``, ``profiles.<p>.datasets.<d>.run``,
``profiles.<p>.methods.<m>``). A setting the run does not use shows ``(unused by this run ...)``: changing it re-trains
nothing. Bad settings are listed as ``resolve`` lists them (exit status 2).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

from latentseg.config import to_dict
from latentseg.registry.experiments import check_experiment, origins, resolve, run_tree
from latentseg.registry.params import check_profile, load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="an id of params.yaml's experiments")
    parser.add_argument("--params", default="params.yaml", help="the parameter file (default: ./params.yaml)")
    parser.add_argument("--profile", help="resolve in this profile instead of params.yaml's own")


def leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in leaves(v, f"{path}.{k}" if path else k)]
    return [(path, node)]


def run(args: argparse.Namespace) -> int:
    try:
        params = load_params(args.params)
        if args.profile:
            params["profile"] = args.profile
            check_profile(params, "--profile")
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"latentseg config: {err}", file=sys.stderr)
        return 2
    experiments = list(params.get("experiments") or {})
    if args.experiment not in experiments:
        close = difflib.get_close_matches(args.experiment, experiments, n=1)
        hint = f"did you mean {close[0]}?" if close else f"its experiments: {', '.join(experiments)}"
        print(f"latentseg config: no experiment {args.experiment!r} in {args.params}; {hint}", file=sys.stderr)
        return 2
    problems = check_experiment(params, args.experiment)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    exp, cfg = resolve(params, args.experiment)
    where, tree = origins(params, args.experiment), dict(leaves(run_tree(params, args.experiment)))
    print(f"# {exp.id} (profile {params['profile']}): {exp.dataset} {exp.fraction}, method {exp.method}, "
          f"init {exp.init}, seeds {', '.join(map(str, exp.seeds))}")
    rows = []
    for key, value in leaves({k: v for k, v in to_dict(cfg).items() if k not in ("dataset", "init")}):
        name = key.removeprefix("settings.")
        origin = where.get(name) or next((o for k, o in where.items() if name.startswith(k + ".")), "")
        if name == "optim.seed":
            origin = "repeats.seeds (the experiment's first seed; one run per seed)"
        elif value in (None, {}) and tree.get(name) not in (None, {}):
            origin = f"(unused by this run; {origin} sets {tree[name]})"
        rows.append((name, "null" if value is None else str(value), origin))
    width = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    for name, value, origin in rows:
        print(f"{name:<{width[0]}}  {value:<{width[1]}}  {origin}")
    return 0

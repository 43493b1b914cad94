"""The resolved configuration of every experiment, classifier and initialisation of params.yaml in every profile,
as short digests (``resolved.json`` beside this file): a refactor of the settings' layers must leave them as they
are. After a deliberate change to params.yaml or to the resolution, record them again:

    python -m tests.registry.snapshot --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from latentseg.config import to_dict
from latentseg.registry.experiments import resolve, resolve_classifier, resolve_weights
from latentseg.registry.params import load_params

ROOT = Path(__file__).resolve().parents[2]
FILE = Path(__file__).with_name("resolved.json")


def _digest(doc: object) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]


def digests(params: dict) -> dict[str, str]:
    """``{"<profile>/<experiment>": digest, ...}``: each experiment's seeds and run configuration, each
    classifier's resolved file, each profile's weights plan."""
    out = {}
    for profile in params["profiles"]:
        p = {**params, "profile": profile}
        for exp_id in params["experiments"]:
            exp, cfg = resolve(p, exp_id)
            out[f"{profile}/{exp_id}"] = _digest([list(exp.seeds), exp.fraction, exp.init, to_dict(cfg)])
        for cls_id in params.get("classifiers") or {}:
            out[f"{profile}/classifier-{cls_id}"] = _digest(resolve_classifier(p, cls_id))
        out[f"{profile}/weights"] = _digest(resolve_weights(p))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    found = digests(load_params(ROOT / "params.yaml"))
    if args.write:
        FILE.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {FILE}: {len(found)} resolved configurations")


if __name__ == "__main__":
    main()

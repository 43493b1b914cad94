"""Reading the parameter file (``params.yaml``) that the pipeline and its stages share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run from the repository root, where params.yaml lives")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of sections")
    profile = params.get("profile", "demo")
    if profile not in params.get("profiles", {}):
        raise KeyError(f"{path}: profile {profile!r} is not one of {sorted(params.get('profiles', {}))}")
    return params


def profile_section(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The current profile's name and its section ``profiles.<name>``."""
    name = params.get("profile", "demo")
    if name not in params.get("profiles", {}):
        raise KeyError(f"params: profile {name!r} is not one of {sorted(params.get('profiles', {}))}")
    return name, params["profiles"][name]

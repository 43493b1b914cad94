"""Reading the parameter file (``params.yaml``) that the pipeline and its stages share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from latentseg.util.progress import UserError


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The parameter tree of ``path``; a ``UserError`` (one line) when it is missing, not YAML, or names no known
    profile."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run from the repository root, where params.yaml lives")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise UserError(f"{path}: not valid YAML{at} ({getattr(err, 'problem', None) or 'unreadable'})") from err
    if not isinstance(params, dict):
        raise UserError(f"{path} must hold a mapping of sections")
    check_profile(params, f"{path}: profile")
    return params


def check_profile(params: dict[str, Any], setting: str = "params.yaml: profile") -> None:
    """A ``UserError``, the one line ``resolve`` prints, unless ``profile`` names a section of ``profiles``;
    ``setting`` names where the name was given."""
    name, known = params.get("profile", "demo"), params.get("profiles") or {}
    if not isinstance(name, str) or name not in known:
        raise UserError(f"{setting} = {name!r}: must be one of {', '.join(known)} (the keys of profiles)")


def profile_section(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The current profile's name and its section ``profiles.<name>``."""
    check_profile(params)
    name = params.get("profile", "demo")
    return name, params["profiles"][name]

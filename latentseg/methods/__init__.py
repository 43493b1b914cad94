"""The registry of methods: every module of this package that defines ``METHOD`` (a ``base.Method``) is one,
found by its ``name`` (the ``objective`` of params.yaml). Adding a method is adding a module here; nothing
else in latentseg branches on a method's name.

``run_config`` builds a run's typed configuration from its resolved dictionary: the sections every run has, and
the ``settings`` of its method.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from latentseg.config import RunConfig, SettingsError, from_dict
from latentseg.methods.base import Method


def _discover() -> dict[str, Method]:
    found: dict[str, Method] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        method = getattr(importlib.import_module(f"{__name__}.{info.name}"), "METHOD", None)
        if isinstance(method, Method):
            if method.name in found:
                raise RuntimeError(f"two methods are named {method.name!r}: latentseg/methods/{info.name}.py "
                                   "and another module")
            found[method.name] = method
    return found


METHODS: dict[str, Method] = _discover()


def get(name: str) -> Method:
    if name not in METHODS:
        raise SettingsError([("objective", name, f"must be one of {', '.join(sorted(METHODS))} "
                                                 "(the methods of latentseg/methods/)")])
    return METHODS[name]


def module_of(name: str) -> str:
    """The module that defines method ``name`` (``latentseg.methods.latent``): what a run of it computes with."""
    return type(get(name)).__module__


def sections() -> tuple[str, ...]:
    """Every params.yaml section some method reads (``loss``, ``latent``, ``hung``, ...), in registry order."""
    out: list[str] = []
    for method in METHODS.values():
        out += [s for s in method.sections if s not in out]
    return tuple(out)


def run_config(doc: dict[str, Any], where: str = "") -> RunConfig:
    """The typed configuration of a run from ``doc``: either resolved (``settings`` holds the method's
    sections) or a merged layer tree (the method's sections at the top, beside the others, which are dropped)."""
    doc = dict(doc)
    method = get(doc.get("objective", ""))
    settings = doc.pop("settings", None)
    if settings is None:
        settings = {s: doc.get(s) for s in method.sections}
    for key in sections():
        doc.pop(key, None)
    problems: list[tuple[str, Any, str]] = []
    try:
        typed_settings = from_dict(method.settings, settings)
    except SettingsError as err:
        problems += err.problems
        typed_settings = None
    try:
        cfg = from_dict(RunConfig, {**doc, "settings": typed_settings}, where)
    except SettingsError as err:
        problems = err.problems + problems
    if problems:
        raise SettingsError(problems)
    return cfg

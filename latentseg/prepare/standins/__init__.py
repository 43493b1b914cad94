"""The demo's stand-ins, one module per data set defining ``STANDIN`` (a ``base.StandIn``), found by its data
set's name."""

from __future__ import annotations

import importlib
import pkgutil

from latentseg.prepare.standins.base import StandIn


def _discover() -> dict[str, StandIn]:
    found: dict[str, StandIn] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        standin = getattr(importlib.import_module(f"{__name__}.{info.name}"), "STANDIN", None)
        if isinstance(standin, StandIn):
            found[standin.dataset.name] = standin
    return found


STANDINS: dict[str, StandIn] = _discover()


def get(name: str) -> StandIn:
    if name not in STANDINS:
        raise ValueError(f"no embedded data set named {name!r}; latentseg/prepare/standins/ has "
                         f"{', '.join(sorted(STANDINS))}")
    return STANDINS[name]

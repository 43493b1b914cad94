"""Groupings of classes, used by the method's variants (manual supercategories) and the demo's planted groups.
Imports nothing: the loader, the preparation and ``predict`` all read it. Each data set's classes and palette
live with it, in ``latentseg/datasets/``."""

from __future__ import annotations


def group_index(classes: list[str], groups: dict[str, list[str]]) -> list[int]:
    """For each class, the index of its group (in the order of ``groups``); every class must be in one group."""
    owner: dict[str, int] = {}
    for g, members in enumerate(groups.values()):
        for name in members:
            if name in owner:
                raise ValueError(f"class {name!r} is in two groups")
            owner[name] = g
    missing = [c for c in classes if c not in owner]
    unknown = sorted(set(owner) - set(classes))
    if missing or unknown:
        raise ValueError(f"groups must cover the classes exactly; missing {missing}, unknown {unknown}")
    return [owner[c] for c in classes]

"""The registry of data sets: every module of this package that defines ``DATASET`` (a ``base.Dataset``) is one,
found by its ``name``. Adding a data set is adding a module here and its making side under
``latentseg/prepare/`` (a converter module of the same name and a stand-in in ``prepare/standins/``)."""

from __future__ import annotations

import importlib
import pkgutil

from latentseg.datasets.base import Dataset


def _discover() -> dict[str, Dataset]:
    found: dict[str, Dataset] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        dataset = getattr(importlib.import_module(f"{__name__}.{info.name}"), "DATASET", None)
        if isinstance(dataset, Dataset):
            found[dataset.name] = dataset
    return found


DATASETS: dict[str, Dataset] = _discover()


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise KeyError(f"no data set named {name!r}; latentseg/datasets/ has {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def find(name: str, num_classes: int) -> Dataset:
    """The data set ``name``, else the one with ``num_classes`` classes (a run of a renamed copy)."""
    if name in DATASETS:
        return DATASETS[name]
    matches = [d for d in DATASETS.values() if d.num_classes == num_classes]
    if len(matches) != 1:
        raise KeyError(f"no data set named {name!r} with {num_classes} classes; latentseg/datasets/ has "
                       f"{', '.join(f'{d.name} ({d.num_classes})' for d in DATASETS.values())}")
    return matches[0]


def classes_and_palette(dataset: str, num_classes: int) -> tuple[list[str], list[int]]:
    """Class names and the flat 768-int mask palette of ``dataset`` (a module of ``latentseg/datasets/``), told
    apart by the number of classes when the name is none of them."""
    try:
        found = find(dataset, num_classes)
    except KeyError as err:
        raise ValueError(f"no palette for data set {dataset!r} with {num_classes} classes ({err.args[0]})") from None
    if found.num_classes != num_classes:
        raise ValueError(f"data set {dataset!r} has {found.num_classes} classes, not {num_classes}")
    return list(found.classes), list(found.palette)

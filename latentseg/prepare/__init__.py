"""Making prepared data sets: downloads, release archives, VOC/SBD/Cityscapes/COCO conversion, the demo
generator and the checks of the result (``latentseg.data`` reads what this package writes).

A data set ``<name>`` of ``latentseg/datasets/`` is made by ``latentseg/prepare/<name>.py`` (its converter:
``RELEASE_KEYS`` and ``prepare_release``) and ``latentseg/prepare/standins/<name>.py`` (its demo stand-in).
Training stages must not import this package: each of its files would be a dependency of every run.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def converter(name: str) -> ModuleType:
    """The converter module of data set ``name``: ``latentseg.prepare.<name>``."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        raise KeyError(f"data set {name!r} has no converter latentseg/prepare/{name}.py") from err
    if not hasattr(module, "prepare_release"):
        raise KeyError(f"latentseg/prepare/{name}.py defines no prepare_release(out, raw, release)")
    return module

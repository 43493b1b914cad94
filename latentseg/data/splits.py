"""Labeled / unlabeled splits of a training list (Tables 1-2 fractions).

Following Hung et al.: shuffle the training list with a seeded generator and take the first
``int(fraction * N)`` samples as labeled (1/50 -> 211, 1/20 -> 529, 1/8 -> 1322 of VOC's 10,582).
The same (data set, fraction, seed) gives the same split for every method.

A published permutation can be used instead (Mittal et al.'s pickled index permutations), resolved against a
prepared ``train.txt`` (``prepare/published_splits.py`` fetches theirs).
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from latentseg.data.layout import Sample, fraction_slug, parse_fraction, read_list, write_list
from latentseg.util.files import temporary_sibling


def split_labeled(
    samples: list[Sample], fraction: str | float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Return ``(labeled, unlabeled)``: a seeded permutation, the first ``int(fraction * N)`` labeled."""
    value = parse_fraction(fraction)
    order = np.random.default_rng(seed).permutation(len(samples))
    n_labeled = int(value * len(samples))
    if n_labeled == 0:
        raise ValueError(f"fraction {fraction} of {len(samples)} training samples leaves no labeled image")
    labeled = [samples[i] for i in order[:n_labeled]]
    unlabeled = [samples[i] for i in order[n_labeled:]]
    return labeled, unlabeled


# --- Split lists published by other projects --------------------------------------------------------


def sample_key(path_or_id: str) -> str:
    """The id a sample is matched by: ``JPEGImages/2007_000032.jpg`` and ``2007_000032`` -> ``2007_000032``;
    Cityscapes ``.../aachen_000000_000019_leftImg8bit.png`` -> ``aachen_000000_000019``."""
    name = PurePosixPath(path_or_id.replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.removesuffix("_leftImg8bit")


def resolve_ids(ids: Sequence[str], train: Sequence[Sample], *, source: str = "the split") -> list[Sample]:
    """Map ids to the samples of a prepared ``train.txt``, in the order given.

    Unknown or repeated ids raise, naming a few of them."""
    by_key = {sample_key(s.image): s for s in train}
    unknown = [i for i in ids if i not in by_key]
    if unknown:
        raise ValueError(
            f"{source} names {len(unknown)} id(s) that are not in the training list, e.g. {unknown[:5]}; "
            "was it made for another data set or training list "
            "(VOC aug = 10,582 ids, Cityscapes train = 2,975)?"
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if repeated:
        raise ValueError(f"{source} lists ids more than once: {repeated[:5]}")
    return [by_key[i] for i in ids]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else: a downloaded pickle cannot run code.

    The globals are those numpy's pickles name, at every protocol: ``_reconstruct`` (protocols 0-4),
    ``_frombuffer`` (protocol 5's out-of-band buffers), ``scalar``, and ``_codecs.encode``, with which Python 3
    writes an array's bytes at protocols 0-2; each only builds an array (or bytes) from data.
    """

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        *((f"numpy.{core}.{module}", name) for core in ("core", "_core")
          for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a split file holds only indices")
        module = module.replace("numpy.core.", "numpy._core.")  # numpy 2 moved it; avoids a deprecation shim
        return getattr(importlib.import_module(module), name)


def load_index_permutation(path: str | Path) -> np.ndarray:
    """Read a pickled index permutation (Mittal et al.'s ``splits/<data>/split_0.pkl``) safely."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # latin1: pickles written by Python 2 numpy (the era of these splits) decode correctly
            order = np.asarray(_ArrayOnlyUnpickler(f, encoding="latin1").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a pickled index array ({err})") from err
    if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"{path}: expected a 1-D array of integer indices, got {order.dtype} {order.shape}")
    return order.astype(np.int64)


def split_from_permutation(
    train: Sequence[Sample],
    order: Sequence[int] | np.ndarray,
    fraction: str | float,
    *,
    reference: Sequence[str] | None = None,
    source: str = "the permutation",
) -> tuple[list[Sample], list[Sample]]:
    """Hung/Mittal style: ``order`` permutes indices into the training list; the first
    ``int(fraction * N)`` are labeled, the rest unlabeled.

    The indices refer to the publisher's list. Ours is sorted by id, as is the VOC ``train_aug.txt``
    of Hung et al. and Mittal et al.; where the publisher's order differs (Mittal's Cityscapes loader
    lists files in ``os.walk`` order), pass it as ``reference`` (ids in their order) to map through it.
    """
    order = np.asarray(order, dtype=np.int64)
    ids = list(reference) if reference is not None else [sample_key(s.image) for s in train]
    n = len(ids)
    if len(train) != n:
        raise ValueError(f"{source}: the reference list has {n} ids but the training list {len(train)}")
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(
            f"{source} is not a permutation of the {n} training indices (it has {len(order)} entries, "
            f"range {order.min() if len(order) else '-'}..{order.max() if len(order) else '-'}); "
            "it was made for another training list"
        )
    n_labeled = int(parse_fraction(fraction) * n)
    if n_labeled == 0:
        raise ValueError(f"fraction {fraction} of {n} training samples leaves no labeled image")
    ranked = resolve_ids([ids[i] for i in order], train, source=source)
    return ranked[:n_labeled], ranked[n_labeled:]


def write_split(folder: str | Path, labeled: Sequence[Sample], unlabeled: Sequence[Sample]) -> None:
    """Write ``<folder>/labeled.txt`` and ``unlabeled.txt`` (layout format, atomic writes)."""
    write_list(Path(folder) / "labeled.txt", list(labeled))
    write_list(Path(folder) / "unlabeled.txt", list(unlabeled))


def write_splits(
    prepared: str | Path,
    splits_dir: str | Path,
    fractions: Sequence[str | float],
    seed: int,
    *,
    permutation: str | Path | None = None,
    reference: Sequence[str] | None = None,
) -> dict[str, tuple[int, int]]:
    """For each fraction write ``<splits_dir>/<fraction_slug>/{labeled,unlabeled}.txt`` from the
    prepared ``train.txt``: a seeded permutation (``split_labeled``), or the published ``permutation``
    pickle if given (``seed`` is then unused). Returns ``{slug: (n_labeled, n_unlabeled)}``.

    The lists are written into a temporary folder beside ``splits_dir``, which then replaces it: a split that
    fails (a bad fraction, a permutation of another list) leaves ``splits_dir`` as it was, never half written."""
    splits_dir = Path(splits_dir)
    train = read_list(Path(prepared) / "train.txt")
    order = load_index_permutation(permutation) if permutation is not None else None
    sizes = {}
    tmp = temporary_sibling(splits_dir, folder=True)
    try:
        for fraction in fractions:
            if order is None:
                labeled, unlabeled = split_labeled(train, fraction, seed)
            else:
                labeled, unlabeled = split_from_permutation(
                    train, order, fraction, reference=reference, source=str(permutation)
                )
            slug = fraction_slug(fraction)
            write_split(tmp / slug, labeled, unlabeled)
            sizes[slug] = (len(labeled), len(unlabeled))
        if splits_dir.exists():
            shutil.rmtree(splits_dir)
        os.replace(tmp, splits_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sizes

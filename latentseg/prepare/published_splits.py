"""Labeled/unlabeled splits other projects published, so that runs can share their labeled images.

``datasets.<d>.published_split`` names one of ``PUBLISHED_SPLITS`` (fetched from its publisher, checksum-verified)
or a pickled permutation you have. Mittal et al. publish one permutation of VOC's 10,582 training ids
(``splits/voc/split_0.pkl`` of semisup-semseg: indices into their ``train_aug.txt``, which is sorted, as our
training list is): with it, every VOC run of the pipeline, theirs and ours, trains on their labeled images.

Their Cityscapes split (``splits/city/split_0.pkl``) is not offered: its indices point into the order in which
their loader walks ``leftImg8bit/train`` (``os.walk``, which follows the file system and is recorded nowhere), so
no one can say which file an index means. A permutation of our sorted list can still be given as a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latentseg.datasets.voc import DATASET as VOC
from latentseg.prepare.download import Remote

_MITTAL = "https://raw.githubusercontent.com/sud0301/semisup-semseg/586609b7bd4bf851c4b1f2691584ce8b11ba6d50"


@dataclass(frozen=True)
class PublishedSplit:
    dataset: str
    remote: Remote
    source: str  # where it is published


PUBLISHED_SPLITS: dict[str, PublishedSplit] = {
    "mittal_voc_split_0": PublishedSplit(
        VOC.name, Remote((f"{_MITTAL}/splits/voc/split_0.pkl",), "mittal_voc_split_0.pkl",
                      sha256="4e572847e864fcd1ecc1457c6413751abac38424e4bd40a9277d4f7afdc0c755"),
        "Mittal et al., semisup-semseg splits/voc/split_0.pkl"),
}


def published_split_file(name: str, dataset: str, raw_dir: str | Path,
                         remotes: dict[str, Remote] | None = None) -> Path:
    """The permutation file ``name`` stands for: a published split (downloaded into ``raw_dir`` once, verified),
    or a path to a pickled permutation. ``remotes`` replace the published addresses (mirrors, tests)."""
    if name in PUBLISHED_SPLITS:
        split = PUBLISHED_SPLITS[name]
        if split.dataset != dataset:
            raise ValueError(f"datasets.{dataset}.published_split: {name} is a split of {split.dataset}, "
                             f"not of {dataset}")
        remote = (remotes or {}).get(name, split.remote)
        return remote.fetch(Path(raw_dir) / "splits", progress=False)
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"datasets.{dataset}.published_split: {name} is neither a published split "
                                f"({', '.join(sorted(PUBLISHED_SPLITS))}) nor a file")
    return path

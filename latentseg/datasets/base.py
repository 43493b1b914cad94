"""What a data set is to the reading side: its classes, mask palette, ignore index, evaluation protocol, and the
planted groups of its demo stand-in. One module of ``latentseg/datasets/`` per data set defines ``DATASET``; how
it is made (its releases, converter and stand-in renderer) lives under ``latentseg/prepare/`` instead, so that
training imports none of that."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    name: str  # the key of params.yaml's datasets section, the prepared folder's name
    classes: tuple[str, ...]  # in label order
    palette: tuple[int, ...]  # 768 ints: the RGB of each label value, as ``Image.putpalette`` takes them
    ignore_index: int  # the label of pixels that count nowhere
    # How val is evaluated: "pad" (the whole image, padded to data.eval_pad, padding ignored: VOC) or "resize"
    # (resized to data.resize for the network, the prediction upsampled back: Cityscapes).
    evaluation: str
    fractions: tuple[str, ...]  # the paper's labeled fractions of the training set (its table's columns)
    planted_groups: dict[str, list[str]]  # the demo stand-in's supercategories, which latent classes may recover

    @property
    def num_classes(self) -> int:
        return len(self.classes)

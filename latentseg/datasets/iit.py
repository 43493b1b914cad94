"""IIT Affordances (IIT-AFF, Nguyen et al., IROS 2017): background and nine affordances of object parts, evaluated
on the test list at the full image size, padded (padding ignored), as VOC's whole-image protocol."""

from __future__ import annotations

from latentseg.datasets.base import Dataset

# The release's label values 0..9, in order (its affordances_labels/*.txt matrices).
IIT_CLASSES: list[str] = [
    "background", "contain", "cut", "display", "engine", "grasp", "hit", "pound", "support", "w-grasp",
]

_IIT_COLOURS: list[tuple[int, int, int]] = [  # ours: the release publishes no colour map
    (0, 0, 0), (0, 0, 205), (34, 139, 34), (192, 192, 128), (165, 42, 42), (128, 64, 128), (204, 102, 0),
    (184, 134, 11), (0, 153, 153), (184, 0, 141),
]
# Flat 768 ints for ``Image.putpalette``; 255 (padding only: the release has no ignore value) is white.
IIT_PALETTE: list[int] = ([v for rgb in _IIT_COLOURS for v in rgb] + [0] * (3 * (255 - len(_IIT_COLOURS)))
                          + [255, 255, 255])

# The planted supercategories of the demo stand-in, and the manual grouping of Table 5-style runs
# (params.yaml: methods.manual-iit): how a hand holds a part, what a part strikes or cuts with, what it holds.
AFFORDANCE_GROUPS: dict[str, list[str]] = {
    "background": ["background"],
    "held": ["grasp", "w-grasp"],
    "tool": ["cut", "hit", "pound"],
    "holder": ["contain", "support"],
    "display": ["display"],
    "engine": ["engine"],
}

DATASET = Dataset("iit", tuple(IIT_CLASSES), tuple(IIT_PALETTE), 255, "pad", ("1/8", "1/4", "1/2", "full"),
                  AFFORDANCE_GROUPS)

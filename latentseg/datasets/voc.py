"""Pascal VOC 2012 (with SBD's extra masks for training): 21 classes, masks evaluated whole, padded to 505x505."""

from __future__ import annotations

from latentseg.datasets.base import Dataset

VOC_CLASSES: list[str] = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]

def voc_palette() -> list[int]:
    """VOC's colour map: 256 RGB triples, flat (768 ints, as ``Image.putpalette`` takes them); the bits of the
    index are spread over R, G, B from the high bit down, so the masks look like VOC's in an image viewer."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
        palette += rgb
    return palette


VOC_PALETTE: list[int] = voc_palette()

# The demo's planted VOC groups: background alone, then four supercategories of VOC's classes.
PLANTED_GROUPS: dict[str, list[str]] = {
    "background": ["background"],
    "vehicle": ["aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"],
    "animal": ["bird", "cat", "cow", "dog", "horse", "sheep"],
    "person": ["person"],
    "indoor": ["bottle", "chair", "diningtable", "pottedplant", "sofa", "tvmonitor"],
}

DATASET = Dataset("voc", tuple(VOC_CLASSES), tuple(VOC_PALETTE), 255, "pad",
                  ("1/50", "1/20", "1/8", "1/4", "1/2", "full"), PLANTED_GROUPS)

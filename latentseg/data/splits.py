"""Labeled / unlabeled splits of a training list (Tables 1-2 fractions).

Following Hung et al.: shuffle the training list with a seeded generator and take the first
``int(fraction * N)`` samples as labeled (1/50 -> 211, 1/20 -> 529, 1/8 -> 1322 of VOC's 10,582).
The same (data set, fraction, seed) gives the same split for every method.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from latentseg.data.layout import Sample


def parse_fraction(text: str | float | int) -> Fraction:
    """``"1/8"`` -> 1/8, ``"full"`` or 1 -> 1. Rejects values outside (0, 1]."""
    if isinstance(text, str) and text.strip().lower() == "full":
        return Fraction(1)
    value = Fraction(str(text).strip()) if isinstance(text, str) else Fraction(text).limit_denominator(1000)
    if not 0 < value <= 1:
        raise ValueError(f"labeled fraction {text!r} must lie in (0, 1]")
    return value


def fraction_slug(text: str | float | int) -> str:
    """A file-name-safe name of a fraction: ``1/8`` -> ``1-8``, 1 -> ``full``."""
    value = parse_fraction(text)
    return "full" if value == 1 else f"{value.numerator}-{value.denominator}"


def split_labeled(samples: list[Sample], fraction: str | float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Return ``(labeled, unlabeled)``: a seeded permutation, the first ``int(fraction * N)`` labeled."""
    value = parse_fraction(fraction)
    order = np.random.default_rng(seed).permutation(len(samples))
    n_labeled = int(value * len(samples))
    if n_labeled == 0:
        raise ValueError(f"fraction {fraction} of {len(samples)} training samples leaves no labeled image")
    labeled = [samples[i] for i in order[:n_labeled]]
    unlabeled = [samples[i] for i in order[n_labeled:]]
    return labeled, unlabeled

"""Figure 1: validation images beside their ground truth, the semantic prediction and the latent classes.

One row per image; columns image / ground truth / semantic prediction (both in the data set's palette) / latent
classes (``colours.latent_colours``, the colours of ``latentseg predict``'s latent PNGs). Drawn from the arrays
stage ``figure1`` saves (``latentseg/figure1_arrays.py``), so this module imports no torch.

The legend names each latent class by the semantic classes it stands for, read from P(l|c) (eq. 8): a class c
is listed under its most probable latent class, argmax_l P(l|c), the classes of an entry ordered by P(l|c). Every
class seen in training is listed exactly once. A latent class no class prefers is listed, as "no class's most
probable", only when it appears in the drawn maps; otherwise it is omitted (it covers nothing). On data with
planted groups (the demo's stand-ins) an entry's classes are listed under their planted group's name, a group
whose every class is there by its name alone ("vehicle (all 7)"): a latent class that stands for one group reads
as that group.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from latentseg.data.classes import group_index
from latentseg.datasets import classes_and_palette
from latentseg.datasets.palettes import colourise, latent_colours, latent_palette
from latentseg.util.files import atomic_write

MAX_NAMES = 5  # classes named in one legend entry; more are counted ("+2 more")
NO_CLASS = "no class's most probable"
CAPTION = ("Legend: each latent class l with the semantic classes c whose most probable latent class it is, "
           "argmax_l P(l|c) (eq. 8, from the co-occurrence matrix M of training), by decreasing P(l|c); latent "
           "classes that are no class's most probable and absent from the maps are omitted.")
GROUPED = (" Classes are named under the planted group of the demo's data they belong to; a group listed by name "
           "alone has all its classes in that latent class.")
COLUMNS = ("image", "ground truth", "semantic prediction", "latent classes")


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _names(members: list[int], classes: list[str]) -> str:
    names = [classes[c] for c in members[:MAX_NAMES]]
    if len(members) > MAX_NAMES:
        names.append(f"+{len(members) - MAX_NAMES} more")
    return ", ".join(names)


def _by_group(members: list[int], classes: list[str], groups: dict[str, list[str]], seen: np.ndarray) -> str:
    """``vehicle (all 7); animal (2 of 6): cat, dog``: the members under their planted groups, in the order of the first
    (most probable) member of each."""
    owner = group_index(classes, groups)
    parts = []
    for g in dict.fromkeys(owner[c] for c in members):
        name, inside = list(groups)[g], [c for c in members if owner[c] == g]
        size = sum(1 for c in range(len(classes)) if owner[c] == g and seen[c])
        whole = f"{name} (all {size})" if size > 1 else name
        parts.append(whole if len(inside) == size else f"{name} ({len(inside)} of {size}): {_names(inside, classes)}")
    return "; ".join(parts)


def latent_legend(p_latent_given_class: np.ndarray, classes: list[str], shown: Iterable[int] = (),
                  groups: dict[str, list[str]] | None = None) -> list[tuple[int, str]]:
    """``(l, "l<l>: class, class")`` for each latent class some class prefers (or that is in ``shown``); with the
    data's planted ``groups``, ``(l, "l<l>: vehicle (all 7); animal (2 of 6): cat, dog")``."""
    p = np.asarray(p_latent_given_class, dtype=float)
    seen = p.sum(1) > 0  # a class never seen in training has an all-zero row and prefers nothing
    dominant = p.argmax(1)
    shown = set(int(v) for v in shown)
    entries = []
    for l in range(p.shape[1]):
        members = [int(c) for c in np.argsort(-p[:, l], kind="stable") if seen[c] and dominant[c] == l]
        if not members and l not in shown:
            continue
        text = (f"({NO_CLASS})" if not members else _names(members, classes) if groups is None
                else _by_group(members, classes, groups, seen))
        entries.append((l, f"l{l}: {text}"))
    return entries


def draw_figure1(arrays: Mapping[str, np.ndarray], path: str | Path, title: str,
                 groups: dict[str, list[str]] | None = None) -> Path:
    """Write the grid of ``arrays`` (the npz of stage ``figure1``) as a PNG at ``path``; ``groups``: the planted
    groups of the data (None: real data), for the legend."""
    ids = [str(v) for v in arrays["ids"]]
    classes = [str(v) for v in arrays["classes"]]
    p = np.asarray(arrays["p_latent_given_class"])
    k = p.shape[1]
    _, palette = classes_and_palette(str(arrays["dataset"]), len(classes))
    lat_palette = latent_palette(k)
    rows = [(arrays[f"image_{i}"], colourise(arrays[f"ground_truth_{i}"], palette),
             colourise(arrays[f"semantic_{i}"], palette), colourise(arrays[f"latent_{i}"], lat_palette))
            for i in range(len(ids))]
    shown = np.unique(np.concatenate([arrays[f"latent_{i}"].ravel() for i in range(len(ids))]))
    legend = latent_legend(p, classes, shown, groups)

    aspect = float(np.median([image.shape[0] / image.shape[1] for image, *_ in rows]))  # height / width
    panel_w = 2.4 if aspect >= 0.75 else 3.2
    fig_w = len(COLUMNS) * panel_w
    text = CAPTION if groups is None else CAPTION + GROUPED
    caption = textwrap.fill(text, int(fig_w * 20))  # about 20 characters of 6 pt text an inch
    caption_h = 0.1 + 0.11 * caption.count("\n") + 0.11  # inches
    ncol = 3 if len(legend) > 8 and groups is None else 2
    if groups is not None:  # entries by group run longer: wrapped to their column (about 18 characters an inch)
        width = int(fig_w / ncol * 18) - 6
        legend = [(l, textwrap.fill(label, width, subsequent_indent="    ")) for l, label in legend]
    lines = [label.count("\n") + 1 for _, label in legend]
    rows_h = sum(max(lines[i:i + ncol]) for i in range(0, len(lines), ncol))  # legend rows, in lines
    legend_h = 0.25 + 0.2 * math.ceil(len(legend) / ncol) + 0.12 * (rows_h - math.ceil(len(legend) / ncol))
    fig_h = 0.75 + len(rows) * panel_w * aspect + legend_h + caption_h
    fig, axes = plt.subplots(len(rows), len(COLUMNS), figsize=(fig_w, fig_h), squeeze=False)
    for i, panels in enumerate(rows):
        for j, panel in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(COLUMNS[j] + (f" (k = {k})" if j == 3 else ""), fontsize=9)
        axes[i][0].set_ylabel(ids[i], fontsize=6)
    colours = latent_colours(k)
    handles = [Patch(facecolor=np.array(colours[l]) / 255, edgecolor="none", label=label) for l, label in legend]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, caption_h / fig_h))
    fig.text(0.5, 0.06 / fig_h, caption, ha="center", va="bottom", fontsize=6)
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / fig_h, va="top")
    fig.subplots_adjust(left=0.04, right=0.99, top=1 - 0.6 / fig_h, bottom=(legend_h + caption_h) / fig_h,
                        wspace=0.03, hspace=0.06)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)

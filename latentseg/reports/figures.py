"""Figure 3: heat maps of P(l|c), semantic classes on the rows, latent classes on the columns.

On data with planted groups (the demo's stand-ins, ``latentseg/planted.py``) the rows are ordered by group, with a
side bar naming each group and a line between groups, and the columns by the group whose classes prefer them
(argmax_l P(l|c)): a latent branch that recovers the groups reads as a block diagonal. The column labels keep the
latent class's own index. Without groups (real data) the rows and columns keep their order.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from latentseg.data.classes import group_index
from latentseg.util.files import atomic_write

GROUP_COLOURS = plt.get_cmap("tab10").colors


def grouped_order(p: np.ndarray, classes: list[str], groups: dict[str, list[str]]) -> tuple[list[int], list[int]]:
    """Row order (by planted group, classes in their own order within one) and column order (first the latent
    classes that the classes of the first group prefer, by their share of that group's probability, then the
    second group's, ...; latent classes no class prefers last, in index order)."""
    owner = group_index(classes, groups)
    rows = sorted(range(len(classes)), key=lambda c: (owner[c], c))
    seen = p.sum(1) > 0
    dominant = p.argmax(1)
    columns: list[int] = []
    for g in range(len(groups)):
        members = [c for c in range(len(classes)) if owner[c] == g and seen[c]]
        mass = p[members].sum(0) if members else np.zeros(p.shape[1])
        preferred = {int(dominant[c]) for c in members} - set(columns)
        columns += sorted(preferred, key=lambda l: (-mass[l], l))
    columns += [l for l in range(p.shape[1]) if l not in columns]
    return rows, columns


def heatmap(p_latent_given_class: np.ndarray, classes: list[str], title: str, path: str | Path,
            groups: dict[str, list[str]] | None = None) -> None:
    """``groups``: the planted groups of the data (None: real data, the plain map)."""
    p = np.asarray(p_latent_given_class, dtype=float)
    k = p.shape[1]
    if groups is None:
        fig, ax = plt.subplots(figsize=(2.0 + 0.32 * k, 1.0 + 0.3 * len(classes)))
        im = ax.imshow(p, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xticks(range(k), [str(i) for i in range(k)], fontsize=7)
        fig.colorbar(im, ax=ax, label="P(l | c)")
    else:
        rows, columns = grouped_order(p, classes, groups)
        owner = group_index(classes, groups)
        fig, (bar, ax) = plt.subplots(1, 2, figsize=(3.4 + 0.32 * k, 1.6 + 0.3 * len(classes)),
                                      gridspec_kw={"width_ratios": [1.3, 0.32 * k], "wspace": 0.02})
        im = ax.imshow(p[np.ix_(rows, columns)], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.yaxis.tick_right()
        ax.set_yticks(range(len(classes)), [classes[c] for c in rows], fontsize=8)
        ax.set_xticks(range(k), [str(l) for l in columns], fontsize=7)
        side = np.array([[owner[c]] for c in rows])
        bar.imshow(side, cmap=ListedColormap(GROUP_COLOURS[:max(len(groups), 1)]), vmin=-0.5,
                   vmax=len(GROUP_COLOURS[:max(len(groups), 1)]) - 0.5, aspect="auto")
        bar.set_xticks([])
        bar.set_yticks([])
        for g, name in enumerate(groups):
            at = [i for i, c in enumerate(rows) if owner[c] == g]
            if not at:
                continue
            bar.text(0, (at[0] + at[-1]) / 2, name, ha="center", va="center", fontsize=7)
            if at[0] > 0:
                ax.axhline(at[0] - 0.5, color="white", linewidth=1.2)
                bar.axhline(at[0] - 0.5, color="white", linewidth=1.2)
        bar.set_xlabel("planted group", fontsize=8)
        fig.colorbar(im, ax=[bar, ax], label="P(l | c)", orientation="horizontal", fraction=0.04, pad=0.08,
                     aspect=40)
    ax.set_xlabel("latent class l")
    ax.set_title(title, fontsize=9)
    if groups is None:
        fig.tight_layout()
    extra = {} if groups is None else {"bbox_inches": "tight"}  # the side bar's and colour bar's margins
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png", **extra))
    finally:
        plt.close(fig)

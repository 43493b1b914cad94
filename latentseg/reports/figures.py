"""Figure 3: heat maps of P(l|c), semantic classes on the rows, latent classes on the columns."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from latentseg.files import atomic_write


def heatmap(p_latent_given_class: np.ndarray, classes: list[str], title: str, path: str | Path) -> None:
    p = np.asarray(p_latent_given_class, dtype=float)
    k = p.shape[1]
    fig, ax = plt.subplots(figsize=(2.0 + 0.32 * k, 1.0 + 0.3 * len(classes)))
    im = ax.imshow(p, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xticks(range(k), [str(i) for i in range(k)], fontsize=7)
    ax.set_xlabel("latent class l")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="P(l | c)")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)

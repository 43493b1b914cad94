"""Training curves: for each table, one PNG with a panel per loss term and one for validation mIoU, a line per run
of each of its experiments (a colour per experiment), so that a reader sees how each number of the table was
reached, how the experiments differ term by term, and how much seeds differ along the way.

The curves are dvclive's histories, written by the training stage per run::

    results/curves/<dataset>/<exp>/seed-<n>/plots/metrics/train/<term>.tsv   # total, ce, latent, ... (and lr)
    results/curves/<dataset>/<exp>/seed-<n>/plots/metrics/val/miou.tsv

each a tab-separated file with a header ``step<TAB><term>`` (``timestamp<TAB>step<TAB><term>`` when logged with
timestamps) and one row per logged step. A missing file, run or experiment is skipped: the figure shows what there
is. Usage from a stage::

    plot_curves({exp: experiment_curves(Outputs().curves_folder("voc", exp)) for exp in experiments_of(layout)},
                title, "reports/figures/curves_table3.png")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from latentseg.reports.tables import CellRef
from latentseg.run.outputs import run_order
from latentseg.util.files import atomic_write

TRAIN = Path("plots/metrics/train")
VAL_MIOU = Path("plots/metrics/val/miou.tsv")
VAL_PANEL = "val mIoU"
NOT_LOSSES = frozenset({"lr"})  # logged beside the losses, but not a loss

Curves = dict[str, dict[str, pd.Series]]  # run label -> panel -> value by step


def read_tsv(path: Path) -> pd.Series | None:
    """One dvclive history as values indexed by step; None when the file is missing, empty or malformed."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, sep="\t")
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    value = path.stem if path.stem in frame.columns else frame.columns[-1]
    if "step" not in frame.columns or value == "step" or frame.empty:
        return None
    return pd.Series(pd.to_numeric(frame[value], errors="coerce").to_numpy(), index=frame["step"], name=value)


def experiment_curves(live: Path) -> Curves:
    """``{run: {panel: series}}`` of one experiment (its curves folder): each loss term it logged, and its
    validation mIoU."""
    out: Curves = {}
    runs = sorted((d for d in live.glob("seed-*") if d.is_dir()), key=lambda d: run_order(d.name))
    for run_dir in runs:
        panels = {}
        for tsv in sorted((run_dir / TRAIN).glob("*.tsv")):
            if tsv.stem not in NOT_LOSSES and (series := read_tsv(tsv)) is not None:
                panels[tsv.stem] = series
        if (series := read_tsv(run_dir / VAL_MIOU)) is not None:
            panels[VAL_PANEL] = series
        if panels:
            out[run_dir.name] = panels
    return out


def experiments_of(layout: Mapping[str, Any]) -> list[str]:
    """The experiments a table layout names, in the order of its cells (each once)."""
    names = [ref.experiment for cells in layout["rows"].values() for c in cells if (ref := CellRef.parse(c))]
    return list(dict.fromkeys(names))


def _panels(curves: Mapping[str, Curves]) -> list[str]:
    """total first, the other loss terms by name, validation mIoU last."""
    names = {p for runs in curves.values() for panels in runs.values() for p in panels}
    terms = sorted(names - {"total", VAL_PANEL})
    return [*(["total"] if "total" in names else []), *terms, *([VAL_PANEL] if VAL_PANEL in names else [])]


def plot_curves(curves: Mapping[str, Curves], title: str, path: str | Path) -> Path:
    """One panel per loss term (and validation mIoU), one line per experiment's run: the table's experiments side
    by side on each term, a colour per experiment, a line per run (seed)."""
    curves = {exp: runs for exp, runs in curves.items() if runs}
    panels = _panels(curves)
    if not curves:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}\nno training curves found", ha="center", va="center")
    else:
        colour = {exp: plt.get_cmap("tab20")(i % 20) for i, exp in enumerate(curves)}
        columns = min(4, len(panels))
        rows = -(-len(panels) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns + 2.6, 2.3 * rows + 0.5), squeeze=False)
        for ax, panel in zip(axes.flat, panels, strict=False):
            for exp, by_run in curves.items():
                for series in (p[panel] for p in by_run.values() if panel in p):
                    ax.plot(series.index, series.to_numpy(), color=colour[exp], lw=1.0, alpha=0.85)
            ax.tick_params(labelsize=6)
            ax.set_title(panel, fontsize=8)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        handles = [plt.Line2D([], [], color=colour[e], label=e) for e in curves]
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
        fig.suptitle(f"{title}: training losses and validation mIoU over steps, one line per run", fontsize=9,
                     x=0.01, ha="left")
        fig.subplots_adjust(left=0.05, right=1 - 2.6 / fig.get_figwidth(), top=1 - 0.55 / fig.get_figheight(),
                            bottom=0.08, wspace=0.25, hspace=0.45)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    finally:
        plt.close(fig)

"""Our normalised speeds beside the paper's, one panel per guideline."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .compare import compare_with_paper
from .paper import PAPER_HARDWARE, PAPER_TABLES


def plot_guidelines(results: dict, timing: str = "eager", guidelines: Sequence[str] | None = None, axes=None):
    """Per guideline, our normalised speeds (bars with IQR error bars) beside the paper's (hatched)."""
    import matplotlib.pyplot as plt

    rows = compare_with_paper(results, timing)
    gs = list(guidelines or results["guidelines"])
    bad = [g for g in gs if g not in results["guidelines"]]
    if bad:
        raise ValueError(f"guidelines must be among {list(results['guidelines'])}, got {bad!r}")
    if axes is None:
        ncols = min(2, len(gs))
        nrows = math.ceil(len(gs) / ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
        axes = grid.ravel()[: len(gs)]
        for extra in grid.ravel()[len(gs):]:
            extra.remove()
    else:
        axes = np.atleast_1d(axes)
        if len(axes) != len(gs):
            raise ValueError(f"axes must hold {len(gs)} axes (one per guideline), got {len(axes)}")
        fig = axes[0].figure
    m = results["meta"]
    scales = m["scales"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / (2 * len(scales))
    for ax, g in zip(axes, gs):
        names = results["guidelines"][g]["variants"]
        x = np.arange(len(names))
        for j, s in enumerate(scales):
            r = {row["variant"]: row for row in rows if row["guideline"] == g and row["scale"] == s}
            ours = np.array([r[n]["ours_norm"] for n in names])
            err = np.array([[r[n]["ours_norm"] - r[n]["ours_lo"] for n in names],
                            [r[n]["ours_hi"] - r[n]["ours_norm"] for n in names]])
            paper = [r[n]["paper_norm"] for n in names]
            off = (2 * j - len(scales) + 0.5) * width
            ax.bar(x + off, ours, width, yerr=err, capsize=2, color=colors[j % len(colors)], label=f"ours ×{s}")
            ax.bar(x + off + width, paper, width, color="white", edgecolor=colors[j % len(colors)], hatch="//",
                   label=f"paper ×{s}")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{g} ({PAPER_TABLES[g]['table']})", fontsize=10)
        ax.set_ylabel(f"speed / {results['guidelines'][g]['reference']}")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Ours ({m['device_name']}, batch {m['batch']}, {timing}) vs paper "
                 f"({PAPER_HARDWARE[m['channel_list']]})" + (" — QUICK MODE" if m["quick"] else ""), fontsize=9)
    fig.tight_layout()
    return fig

"""Figures of what each design choice buys: accuracy bars with their spread, accuracy against cost, the Pareto front.

Every figure takes the summary rows of ``course.ablations.summarize`` (the learner's run) and,
optionally, the reference run's rows, drawn hatched beside them and labelled as the reference.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["pareto_front", "plot_ablation", "plot_tradeoff", "plot_families", "COST_LABELS"]

COST_LABELS = {"macs": "mult-adds (fvcore, at the training size)", "latency_ms": "CPU latency, batch 1 (ms)",
               "params": "parameters"}


def _err(row: dict) -> float:
    std = row.get("test_acc_std", float("nan"))
    return 0.0 if std is None or math.isnan(std) else 100 * std


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower cost (x) and higher accuracy (y), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_ablation(summary: list[dict], reference: list[dict] | None = None, title: str = "", ax=None):
    """Test accuracy per variant (mean ± std over seeds); the reference run's bars hatched beside."""
    labels = [r["label"] for r in summary]
    ref = {r["label"]: r for r in reference or []}
    ax = ax or plt.subplots(figsize=(max(5.0, 1.3 * len(labels)), 3.4))[1]
    x = np.arange(len(labels))
    width = 0.4 if ref else 0.6
    ax.bar(x - (width / 2 if ref else 0), [100 * r["test_acc"] for r in summary], width,
           yerr=[_err(r) for r in summary], capsize=3, label="your run", color="tab:blue")
    if ref:
        ax.bar(x + width / 2, [100 * ref[lab]["test_acc"] if lab in ref else np.nan for lab in labels], width,
               yerr=[_err(ref[lab]) if lab in ref else 0 for lab in labels], capsize=3, hatch="//",
               color="white", edgecolor="tab:gray", label=f"reference ({_seeds(reference)} seeds, mean ± std)")
    ax.axhline(10, color="tab:red", lw=0.8, ls=":", label="chance (10 classes)")
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def _seeds(rows: list[dict]) -> int:
    return min(r.get("seeds", 1) for r in rows)


def plot_tradeoff(summary: list[dict], cost: str = "macs", reference: list[dict] | None = None, title: str = "",
                  ax=None, log_x: bool = True):
    """Test accuracy against one cost (``macs``, ``latency_ms`` or ``params``), each variant a labelled point."""
    if cost not in COST_LABELS:
        raise ValueError(f"cost must be one of {list(COST_LABELS)}, got {cost!r}")
    ax = ax or plt.subplots(figsize=(5.5, 3.8))[1]
    for rows, style, name in ((summary, dict(marker="o", color="tab:blue"), "your run"),
                              (reference or [], dict(marker="s", mfc="white", color="tab:gray"), "reference")):
        pts = [(r[cost], 100 * r["test_acc"], _err(r), r["label"]) for r in rows if r.get(cost) is not None]
        if not pts:
            continue
        xs, ys, es, labs = zip(*pts)
        ax.errorbar(xs, ys, yerr=es, ls="-", capsize=3, label=name, **style)
        if rows is summary:
            for xv, yv, lab in zip(xs, ys, labs):
                ax.annotate(lab, (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(COST_LABELS[cost])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure


def plot_families(summary: list[dict], papers: list[dict], cost: str = "latency_ms", title: str = ""):
    """Left: our test accuracy vs measured cost with the Pareto front; right: the papers' ImageNet top-1 vs mult-adds.

    ``papers`` rows: ``label``, ``top1`` (%), ``madds`` (millions), ``source``.
    """
    lacking = [r["label"] for r in summary if r.get(cost) is None]
    if lacking:
        raise ValueError(f"cost must be a key every summary row carries ({list(COST_LABELS)} or e.g. "
                         f"'gpu_latency_ms'), got {cost!r}, missing in {lacking}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    pts = [(r[cost], 100 * r["test_acc"]) for r in summary]
    for (xv, yv), r in zip(pts, summary):
        left.errorbar(xv, yv, yerr=_err(r), marker="o", capsize=3, color="tab:blue")
        left.annotate(r["label"], (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = pareto_front(pts)
    left.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="tab:orange", label="Pareto front")
    left.set_xlabel(COST_LABELS.get(cost, cost))
    left.set_ylabel("Glyphs-10 test accuracy (%)")
    left.set_title("ours, measured")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    ppts = [(p["madds"], p["top1"]) for p in papers]
    for (xv, yv), p in zip(ppts, papers):
        right.plot(xv, yv, "s", color="tab:gray")
        right.annotate(p["label"], (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
    pfront = pareto_front(ppts)
    right.plot([ppts[i][0] for i in pfront], [ppts[i][1] for i in pfront], "--", color="tab:orange")
    right.set_xlabel("mult-adds (millions, 224 px)")
    right.set_ylabel("ImageNet top-1 (%)")
    right.set_title("the papers")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig

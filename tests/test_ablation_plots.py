"""course.ablation_plots: the Pareto front on hand-made points, and every figure with and without a reference run."""

import matplotlib

matplotlib.use("Agg")

import math

import matplotlib.pyplot as plt
import pytest

from course.ablation_plots import COST_LABELS, pareto_front, plot_ablation, plot_families, plot_tradeoff
from course.ablations import PAPER_POINTS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("points, front", [
    ([(1, 0.5), (2, 0.7), (3, 0.6), (4, 0.9)], [0, 1, 3]),       # (3, 0.6) is beaten by (2, 0.7)
    ([(4, 0.9), (3, 0.6), (1, 0.5), (2, 0.7)], [2, 3, 0]),       # any input order; the front sorted by cost
    ([(1, 0.5), (2, 0.5), (3, 0.8)], [0, 2]),                    # equal accuracy: the cheaper only
    ([(1, 0.5), (1, 0.6), (2, 0.55)], [1]),                      # equal cost: the more accurate only
    ([(3, 0.6), (1, 0.9), (2, 0.7)], [1]),                       # cheapest is also best
    ([(1, 0.5), (1, 0.5), (2, 0.6)], [0, 2]),                    # exact duplicates: one of them
    ([(5, 0.4)], [0]),
    ([], []),
])
def test_pareto_front(points, front):
    assert pareto_front(points) == front


def test_pareto_front_is_exactly_the_undominated_points():
    pts = [(c, a) for c, a in zip([5, 3, 8, 1, 4, 7, 2, 6], [0.3, 0.6, 0.9, 0.2, 0.55, 0.85, 0.4, 0.7])]
    undominated = [i for i, (c, a) in enumerate(pts)
                   if not any(c2 <= c and a2 >= a and (c2, a2) != (c, a) for c2, a2 in pts)]
    assert sorted(pareto_front(pts)) == sorted(undominated)
    assert [pts[i][0] for i in pareto_front(pts)] == sorted(pts[i][0] for i in undominated)


def _summary(seeds=1):
    std = 0.02 if seeds > 1 else float("nan")
    return [dict(label=lab, test_acc=acc, test_acc_std=std, seeds=seeds, macs=macs, params=macs // 10, latency_ms=ms)
            for lab, acc, macs, ms in (("a", 0.6, 3_000_000, 2.0), ("b", 0.7, 5_000_000, 4.0),
                                       ("c", 0.65, 9_000_000, 5.0))]


def _legend(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_plot_ablation_with_and_without_reference():
    ax = plot_ablation(_summary(), title="t").axes[0]
    assert len(ax.patches) == 3 and ax.get_title() == "t"
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [round(p.get_height(), 6) for p in ax.patches] == [60.0, 70.0, 65.0]
    assert not any("reference" in t for t in _legend(ax))
    ref = [r for r in _summary(seeds=3) if r["label"] != "c"]  # an older reference without "c"
    ax = plot_ablation(_summary(), reference=ref).axes[0]
    assert len(ax.patches) == 6
    assert "reference (3 seeds, mean ± std)" in _legend(ax)
    assert math.isnan(ax.patches[-1].get_height())  # no reference bar for "c"


@pytest.mark.parametrize("cost", list(COST_LABELS))
def test_plot_tradeoff_each_cost_with_and_without_reference(cost):
    ax = plot_tradeoff(_summary(), cost=cost).axes[0]
    assert ax.get_xlabel() == COST_LABELS[cost] and _legend(ax) == ["your run"]
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    ax = plot_tradeoff(_summary(), cost=cost, reference=_summary(seeds=3), log_x=False).axes[0]
    assert _legend(ax) == ["your run", "reference"] and ax.get_xscale() == "linear"


def test_plot_tradeoff_names_a_bad_cost():
    with pytest.raises(ValueError, match="^cost must be one of"):
        plot_tradeoff(_summary(), cost="flops")


def test_plot_families_draws_both_fronts():
    fig = plot_families(_summary(), PAPER_POINTS, title="families")
    left, right = fig.axes
    front = [line for line in left.get_lines() if line.get_label() == "Pareto front"]
    assert len(front) == 1
    assert list(front[0].get_xdata()) == [2.0, 4.0] and list(front[0].get_ydata()) == [60.0, 70.0]  # "c" is beaten
    assert [t.get_text() for t in left.texts] == ["a", "b", "c"]
    assert len(right.texts) == len(PAPER_POINTS) and right.get_ylabel() == "ImageNet top-1 (%)"
    paper_front = right.get_lines()[-1]
    ppts = [(p["madds"], p["top1"]) for p in PAPER_POINTS]
    assert list(paper_front.get_xdata()) == [ppts[i][0] for i in pareto_front(ppts)]
    fig = plot_families(_summary(seeds=3), PAPER_POINTS, cost="macs")
    assert fig.axes[0].get_xlabel() == COST_LABELS["macs"]


def test_plot_families_names_a_bad_cost():
    with pytest.raises(ValueError, match="^cost must be"):
        plot_families(_summary(), PAPER_POINTS, cost="flops")

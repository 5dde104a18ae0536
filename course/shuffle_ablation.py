"""Chapter 4's ablation, read: what the channel shuffle buys at each number of groups g (the paper's
Table 3), and how accuracy moves with g at about equal mult-adds (Table 2), beside the paper's errors.

Variants are found by what they are (their ``groups`` argument and whether ``no_shuffle`` is applied),
never by a typed label, so the sets in ``course.ablations`` may change.
"""

from __future__ import annotations

from .ablations import ABLATIONS, difference
from .widgets.ch04_shufflenet_v1 import PAPER_SHUFFLE_EFFECT, PAPER_TOP1_ERR

__all__ = ["NAME", "label_for", "groups_with_ablation", "shuffle_gain", "shuffle_rows", "groups_rows",
           "macs_spread", "describe_shuffle", "describe_groups", "plot_shuffle"]

NAME = "ch04_shuffle"


def _variants(name: str):
    if name not in ABLATIONS:
        raise ValueError(f"name must be one of {list(ABLATIONS)}, got {name!r}")
    return ABLATIONS[name].variants


def _groups(v) -> int:
    return int(dict(v.model_kwargs).get("groups", 3))


def label_for(groups: int, shuffle: bool = True, name: str = NAME) -> str:
    """The label of the ShuffleNet V1 variant with ``groups`` groups, with or without the shuffle."""
    for v in _variants(name):
        if _groups(v) == groups and ("no_shuffle" not in v.surgery) == shuffle:
            return v.label
    have = sorted({(_groups(v), "no_shuffle" not in v.surgery) for v in _variants(name)})
    raise ValueError(f"no variant with groups={groups!r}, shuffle={shuffle!r} in {name}; (groups, shuffle) "
                     f"available: {have}")


def groups_with_ablation(name: str = NAME) -> list[int]:
    """The g that are trained both with and without the shuffle."""
    with_ = {_groups(v) for v in _variants(name) if "no_shuffle" not in v.surgery}
    without = {_groups(v) for v in _variants(name) if "no_shuffle" in v.surgery}
    return sorted(with_ & without)


def _width_key(name: str) -> str:
    return f"{_variants(name)[0].width_mult:g}×"


def _by_label(summary: list[dict]) -> dict[str, dict]:
    return {r["label"]: r for r in summary}


def shuffle_gain(summary: list[dict], groups: int, name: str = NAME) -> float:
    """Test accuracy with the shuffle minus without, at ``groups`` (a fraction: 0.02 is 2 points)."""
    rows = _by_label(summary)
    a, b = label_for(groups, True, name), label_for(groups, False, name)
    for label in (a, b):
        if label not in rows:
            raise ValueError(f"summary has no row {label!r}; it has {list(rows)}")
    return rows[a]["test_acc"] - rows[b]["test_acc"]


def shuffle_rows(summary: list[dict], name: str = NAME) -> list[dict]:
    """Per g trained both ways: our accuracies and gain with the spread verdict, the paper's Table 3 beside."""
    rows = _by_label(summary)
    width = _width_key(name)
    out = []
    for g in groups_with_ablation(name):
        a, b = label_for(g, True, name), label_for(g, False, name)
        diff = difference(summary, a, b)
        paper = PAPER_SHUFFLE_EFFECT.get((width, g))
        out.append({"g": g, "with shuffle %": 100 * rows[a]["test_acc"], "without %": 100 * rows[b]["test_acc"],
                    "gain (points)": 100 * diff["delta"], "real": diff["real"],
                    f"paper {width} top-1 with %": 100 - paper[1] if paper else float("nan"),
                    f"paper {width} without %": 100 - paper[0] if paper else float("nan"),
                    "paper gain (points)": paper[0] - paper[1] if paper else float("nan"), "words": diff["words"]})
    return out


def groups_rows(summary: list[dict], name: str = NAME) -> list[dict]:
    """Per g with the shuffle: accuracy, measured mult-adds and parameters, the paper's Table 2 top-1 beside."""
    rows = _by_label(summary)
    width = _width_key(name)
    paper = PAPER_TOP1_ERR.get(width, {})
    out = []
    for g in sorted({_groups(v) for v in _variants(name) if "no_shuffle" not in v.surgery}):
        r = rows.get(label_for(g, True, name))
        if r is None:
            continue
        std = r.get("test_acc_std", float("nan"))
        out.append({"g": g, "label": r["label"], "test acc %": 100 * r["test_acc"],
                    "± std": 100 * std if std == std else float("nan"), "MAdds (M)": r["macs"] / 1e6,
                    "params": r["params"], f"paper {width} top-1 %": 100 - paper[g] if g in paper else float("nan")})
    return out


def macs_spread(summary: list[dict], name: str = NAME) -> float:
    """(largest − smallest) / mean mult-adds over the shuffled variants: how "fixed" the budget is."""
    macs = [r["MAdds (M)"] for r in groups_rows(summary, name)]
    return (max(macs) - min(macs)) / (sum(macs) / len(macs))


def describe_shuffle(summary: list[dict], name: str = NAME) -> str:
    """The shuffle's effect per g, said plainly, and whether it helps more at the larger g (ours and the paper's)."""
    rows = shuffle_rows(summary, name)
    width = _width_key(name)
    lines = [f"g = {r['g']}: {r['words']}; paper ({width}): {r['paper gain (points)']:+.1f} points" for r in rows]
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        ours = hi["gain (points)"] > lo["gain (points)"]
        paper = hi["paper gain (points)"] > lo["paper gain (points)"]
        four = [_by_label(summary)[label_for(r["g"], s, name)] for r in (lo, hi) for s in (True, False)]
        spread = max(r["test_acc_std"] for r in four)
        real = min(r["seeds"] for r in four) >= 2 and abs(hi["gain (points)"] - lo["gain (points)"]) > 200 * spread
        lines.append(f"Does the shuffle help more at g = {hi['g']} than at g = {lo['g']}? Ours: "
                     f"{'yes' if ours else 'no'} ({hi['gain (points)']:+.1f} vs {lo['gain (points)']:+.1f} points"
                     f"{'' if real else '; the gap between the gains is within twice the seed-to-seed spread, or from one seed, so this is not yet a finding'}); "
                     f"the paper: {'yes' if paper else 'no'}.")
    return "\n".join(lines)


def describe_groups(summary: list[dict], name: str = NAME) -> str:
    """Accuracy across g at (roughly) equal mult-adds: the best g, and each g against g = 1, by the spread rule."""
    rows = groups_rows(summary, name)
    best = max(rows, key=lambda r: r["test acc %"])
    base = rows[0]
    lines = [f"Mult-adds across g differ by {100 * macs_spread(summary, name):.1f} % (largest − smallest, of "
             f"the mean): the budget is roughly fixed, as Table 1 designs it.",
             f"Best g here: {best['g']} ({best['test acc %']:.1f} %); the paper's best at "
             f"{_width_key(name)}: g = {max(rows, key=lambda r: r[next(k for k in r if k.startswith('paper'))])['g']}."]
    for r in rows[1:]:
        lines.append(difference(summary, r["label"], base["label"])["words"])
    return "\n".join(lines)


def plot_shuffle(summary: list[dict], reference: list[dict] | None = None, name: str = NAME):
    """Left: accuracy with and without the shuffle per g (Table 3); right: accuracy across g, mult-adds printed
    at each point, the paper's top-1 on the second axis (Table 2). Reference run hatched / grey when given."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = _width_key(name)
    srows = shuffle_rows(summary, name)
    ref = _by_label(reference or [])
    x = np.arange(len(srows))
    for i, (key, shuffle, colour) in enumerate((("without %", False, "tab:orange"), ("with shuffle %", True, "tab:blue"))):
        left.bar(x + (i - 0.5) * 0.35, [r[key] for r in srows], 0.35, color=colour,
                 label=f"{'with' if shuffle else 'without'} shuffle (your run)")
        refs = [ref.get(label_for(r["g"], shuffle, name)) for r in srows]
        if any(refs):
            left.errorbar(x + (i - 0.5) * 0.35, [100 * q["test_acc"] if q else np.nan for q in refs],
                          yerr=[100 * q["test_acc_std"] if q and q["test_acc_std"] == q["test_acc_std"] else 0
                                for q in refs], fmt="s", mfc="white", color="tab:gray", capsize=3,
                          label="reference (mean ± std)" if i else None)
    for xi, r in zip(x, srows):
        left.annotate(f"paper {width}: {r['paper gain (points)']:+.1f}", (xi, max(r["with shuffle %"], r["without %"])),
                      textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    left.set_xticks(x, [f"g = {r['g']}" for r in srows])
    left.set_ylabel("Glyphs-10 test accuracy (%)")
    left.set_title("channel shuffle on / off (paper's gain in top-1 points above)", fontsize=9)
    left.legend(fontsize=7, loc="lower right")
    grows = groups_rows(summary, name)
    gs = [r["g"] for r in grows]
    right.errorbar(gs, [r["test acc %"] for r in grows], yerr=[0 if r["± std"] != r["± std"] else r["± std"] for r in grows],
                   marker="o", capsize=3, label="your run")
    for r in grows:
        right.annotate(f"{r['MAdds (M)']:.2f}M", (r["g"], r["test acc %"]), textcoords="offset points",
                       xytext=(4, -10), fontsize=7)
    rrows = [ref.get(r["label"]) for r in grows]
    if any(rrows):
        right.plot([g for g, q in zip(gs, rrows) if q], [100 * q["test_acc"] for q in rrows if q], "s--",
                   mfc="white", color="tab:gray", label="reference")
    twin = right.twinx()
    twin.plot(gs, [r[f"paper {width} top-1 %"] for r in grows], "^:", color="tab:green", label=f"paper {width} (ImageNet)")
    twin.set_ylabel("paper's ImageNet top-1 (%)", color="tab:green")
    right.set_xscale("log", base=2)
    right.set_xticks(gs, [str(g) for g in gs])
    right.set_xlabel("groups g (mult-adds at each point: about equal)")
    right.set_ylabel("Glyphs-10 test accuracy (%)")
    right.set_title("accuracy across g at about equal mult-adds", fontsize=9)
    handles = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    right.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig

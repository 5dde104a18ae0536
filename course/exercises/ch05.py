"""Checks for chapter 05 (ShuffleNet V2): MAC of a 1×1 conv, the stride-1 unit, the best c1:c2,
the guidelines as predictions, the Pareto front of the trained families."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..blocks import ShuffleV2Block
from ..guidelines import PAPER_TABLES
from ..measure import count_params, mac_conv1x1, mac_curve
from . import ExerciseFailed, assert_same_outputs, exercise


@exercise("5.1", "Memory access cost of a 1×1 convolution", points=1)
def _check_mac(mac_1x1):
    cases = ((56, 56, 128, 128, 1), (56, 56, 90, 180, 1), (28, 28, 36, 432, 1), (14, 14, 256, 256, 4),
             (7, 7, 512, 1024, 8), (1, 1, 3, 5, 1))
    for h, w, c1, c2, g in cases:
        got = mac_1x1(h, w, c1, c2, g)
        want = mac_conv1x1(h, w, c1, c2, g)
        if got != want:
            hint = ""
            if got == h * w * (c1 + c2):
                hint = " (the weights, c1·c2/g, are read too)"
            elif got == h * w * (c1 + c2) + c1 * c2 and g > 1:
                hint = " (a group conv holds c1·c2/g weights)"
            raise ExerciseFailed(f"mac_1x1(h={h}, w={w}, c1={c1}, c2={c2}, groups={g}): expected {want:,}, "
                                 f"got {got!r}{hint}")
    return f"{len(cases)} cases match course.measure.mac_conv1x1"


def _pointwise(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]


@exercise("5.2", "The stride-1 ShuffleNet V2 unit", points=3)
def _check_unit(unit_cls):
    torch.manual_seed(0)
    for channels in (116, 48):
        unit = unit_cls(channels)
        if not isinstance(unit, nn.Module):
            raise ExerciseFailed(f"{getattr(unit_cls, '__name__', unit_cls)}({channels}) should be an nn.Module, "
                                 f"got {type(unit).__name__}")
        half = channels // 2
        pw = _pointwise(unit)
        grouped = [(m.in_channels, m.out_channels, m.groups) for m in pw if m.groups > 1]
        if grouped:
            raise ExerciseFailed(f"grouped 1×1 convs (in, out, groups) {grouped}: G2 says no group convolution here")
        widths = [(m.in_channels, m.out_channels) for m in pw]
        if len(pw) != 2 or any(w != (half, half) for w in widths):
            raise ExerciseFailed(f"expected two 1×1 convs of {half}→{half} channels (G1: equal widths, on half the "
                                 f"channels after the split), got {widths}")
        ref = ShuffleV2Block(channels, channels, 1)
        if count_params(unit) != count_params(ref):
            raise ExerciseFailed(f"{count_params(unit):,} parameters for {channels} channels, expected "
                                 f"{count_params(ref):,} (ShuffleV2Block({channels}, {channels}, 1))")
        unit.eval()
        x = torch.randn(2, channels, 8, 8)
        with torch.no_grad():
            y = unit(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ExerciseFailed(f"output shape {tuple(y.shape)} for input {tuple(x.shape)}: a stride-1 unit keeps it")
        if not torch.equal(y[:, 0::2], x[:, :half]):
            raise ExerciseFailed("the first half of the input channels should pass through untouched (channel "
                                 "split) and land on the even channels after concat + shuffle(2); it does not")
        assert_same_outputs(unit, ref, x, atol=1e-5, order="conv, BN, conv, BN, conv, BN in the branch",
                            hint="check ReLU placement: none after the depthwise conv; concat then shuffle")
    return "split, equal widths, no group conv, and outputs equal to ShuffleV2Block for 116 and 48 channels"


@exercise("5.3", "The c1:c2 that minimises MAC", points=1)
def _check_ratio(best_ratio):
    cases = ((56, 56, 16384 * 56 * 56, (1 / 12, 1 / 6, 1 / 2, 1)), (56, 56, 1024 * 3136, (2, 6, 12)),
             (28, 28, 1e8, (0.5, 3.0)), (14, 14, 5e7, (1 / 3, 2.5, 8)), (7, 7, 1e6, (4, 0.3)))
    for h, w, flops, ratios in cases:
        macs = mac_curve(h, w, flops, ratios)["mac"]
        want = ratios[int(np.argmin(macs))]
        got = best_ratio(h, w, flops, list(ratios))
        if not isinstance(got, (int, float)) or not math.isclose(got, want):
            raise ExerciseFailed(f"best_ratio(h={h}, w={w}, flops={flops:g}, ratios={[round(r, 3) for r in ratios]}): "
                                 f"expected {want:g} (MAC {macs.min():,.0f}), got {got!r}")
    return f"{len(cases)} cases: the ratio with the least MAC at fixed FLOPs"


def consistent_pairs(guideline: str) -> list[tuple[str, str, list[str]]]:
    """Pairs of one paper table's variants that the paper measures in the same order on both
    platforms at every scale (ties allowed, never reversed): (faster, slower, the speeds as text)."""
    table = PAPER_TABLES[guideline]
    names = table["variants"]
    cells = [(hw, scale, speeds) for hw, by_scale in table["speed"].items() for scale, speeds in by_scale.items()]
    pairs = []
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            diffs = [speeds[i] - speeds[j] for _, _, speeds in cells]
            if all(d >= 0 for d in diffs) and any(d > 0 for d in diffs):
                fast, slow, (fi, si) = a, names[j], (i, j)
            elif all(d <= 0 for d in diffs) and any(d < 0 for d in diffs):
                fast, slow, (fi, si) = names[j], a, (j, i)
            else:
                continue
            speeds = [f"{'GPU' if hw == 'gpu' else 'ARM'} ×{scale} {s[fi]:g} vs {s[si]:g}" for hw, scale, s in cells]
            pairs.append((fast, slow, speeds))
    return pairs


@exercise("5.4", "The four guidelines as predictions", points=2)
def _check_faster(faster):
    asked = 0
    for guideline in PAPER_TABLES:
        table = PAPER_TABLES[guideline]
        for k, (fast, slow, speeds) in enumerate(consistent_pairs(guideline)):
            a, b = (fast, slow) if k % 2 else (slow, fast)  # the faster one is not always first
            got = faster(guideline, a, b)
            asked += 1
            if got not in (a, b):
                raise ExerciseFailed(f"faster({guideline!r}, {a!r}, {b!r}) returned {got!r}: return one of the two names")
            if got != fast:
                raise ExerciseFailed(f"faster({guideline!r}, {a!r}, {b!r}) predicted {got!r}, but {table['table']} "
                                     f"measures {fast!r} faster on both platforms at every scale "
                                     f"({'; '.join(speeds[:2])}; …) — {table['title']}")
    return f"{asked} predictions agree with the order the paper measures in Tables 1–4"


_FRONT_CASES = (
    ("a slower, more accurate model joins the front; one beaten by a faster one does not",
     [("A", 1.0, 0.50), ("B", 2.0, 0.70), ("C", 3.0, 0.60), ("D", 4.0, 0.90)]),
    ("equal accuracy: only the faster one is on the front", [("A", 1.0, 0.50), ("B", 2.0, 0.50), ("C", 3.0, 0.80)]),
    ("equal latency: only the more accurate one is on the front", [("A", 1.0, 0.50), ("B", 1.0, 0.60), ("C", 2.0, 0.55)]),
    ("the fastest model is also the most accurate", [("A", 3.0, 0.60), ("B", 1.0, 0.90), ("C", 2.0, 0.70)]),
    ("one model", [("A", 5.0, 0.40)]),
)


def front_labels(summary: list[dict]) -> list[str]:
    """Labels on the accuracy–latency Pareto front, fastest first (``course.ablation_plots.pareto_front``)."""
    from ..ablation_plots import pareto_front

    return [summary[i]["label"] for i in pareto_front([(r["latency_ms"], r["test_acc"]) for r in summary])]


def _front_hint(got, want, rows) -> str:
    if set(got) == set(want):
        return " (the right models, but list them fastest first)"
    if set(got) > set(want):
        r = {x["label"]: x for x in rows}
        beaten = {e: next(x["label"] for x in rows if x["label"] != e and x["latency_ms"] <= r[e]["latency_ms"]
                          and x["test_acc"] >= r[e]["test_acc"]) for e in sorted(set(got) - set(want))}
        return " (" + "; ".join(f"{e} is beaten by {b}: at least as fast and at least as accurate"
                                for e, b in beaten.items()) + ")"
    return " (a model is on the front unless another is at least as fast and at least as accurate)"


@exercise("5.5", "Which networks does nothing beat?", points=2)
def _check_front(on_front, summary):
    if not summary or any("latency_ms" not in r or "test_acc" not in r for r in summary):
        raise ValueError("summary must be the chapter's summary rows with test_acc and latency_ms "
                         f"(course.ablations.measure_latencies), got {summary!r:.200}")
    cases = [(what, [dict(label=lab, latency_ms=ms, test_acc=acc) for lab, ms, acc in pts]) for what, pts in _FRONT_CASES]
    cases.append(("your run", [dict(label=r["label"], latency_ms=r["latency_ms"], test_acc=r["test_acc"]) for r in summary]))
    for what, rows in cases:
        want = front_labels(rows)
        got = on_front([dict(r) for r in rows])
        got = list(got) if isinstance(got, (list, tuple)) else got
        if got != want:
            points = ", ".join(f"{r['label']} {r['latency_ms']:.3g} ms {100 * r['test_acc']:.1f} %" for r in rows)
            labels = {r["label"] for r in rows}
            hint = _front_hint(got, want, rows) if isinstance(got, list) and set(got) <= labels else ""
            raise ExerciseFailed(f"{what} ({points}): expected {want}, got {got!r}{hint}")
    return (f"{len(cases) - 1} hand-made cases and your run: on its front, fastest first, "
            + ", ".join(front_labels(cases[-1][1])))

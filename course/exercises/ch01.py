"""Checks for chapter 01 (MobileNet V1): separable cost, the network from Table 1 (and its shallow
variant), α for a budget, ρ's effect predicted and counted."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..measure import count_flops, count_params, flops_by_module
from ..models import MobileNetV1
from . import ExerciseFailed, assert_same_outputs, exercise

# (kernel, in_channels, out_channels, size): includes kernel 1, M != N, small and odd sizes.
COST_CASES = [(3, 32, 64, 112), (3, 512, 512, 14), (5, 16, 48, 9), (1, 24, 8, 7), (7, 8, 16, 5)]


def _reference_separable(kernel: int, m: int, n: int) -> nn.Module:
    pad = (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(m, m, kernel, padding=pad, groups=m, bias=False), nn.Conv2d(m, n, 1, bias=False))


@exercise("1.1", "Mult-adds of a depthwise-separable layer", points=1)
def _check_separable_mult_adds(separable_mult_adds):
    for k, m, n, size in COST_CASES:
        want = count_flops(_reference_separable(k, m, n), (1, m, size, size))
        got = separable_mult_adds(k, m, n, size)
        if got != want:
            hint = ""
            if got == k * k * m * n * size * size:
                hint = " — that is the standard convolution's cost (Eq. 2), not the separable one (Eq. 5)"
            elif got == k * k * m * size * size:
                hint = " — that is the depthwise part only; add the 1×1 pointwise part"
            raise ExerciseFailed(f"separable_mult_adds(kernel={k}, M={m}, N={n}, D_F={size}): "
                                 f"expected {want:,} (fvcore on real layers), got {got!r}{hint}")
    return f"{len(COST_CASES)} configurations match fvcore"


def _depthwise_output_sizes(model: nn.Module, convs: list[nn.Module], x: torch.Tensor) -> list[int]:
    sizes: list[int] = []
    hooks = [c.register_forward_hook(lambda mod, inp, out: sizes.append(out.shape[-1])) for c in convs]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sizes


class ShallowMobileNetV1(MobileNetV1):
    """The paper's "Shallow MobileNet" (Sec. 4.1, Table 5): the five 14×14×512 separable layers removed."""

    cfg = MobileNetV1.cfg[:6] + MobileNetV1.cfg[11:]


# Sec. 4.1, Table 5 (Howard et al. 2017, arXiv 1704.04861): Shallow MobileNet, million mult-adds / parameters.
PAPER_SHALLOW = {"mult_adds_M": 307, "params_M": 2.9}


def _depthwise_convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]


def _check_v1_variant(model_cls, alpha: float, shallow: bool) -> None:
    where = f"width_mult={alpha}, shallow={shallow}"
    ours = model_cls(width_mult=alpha, num_classes=10, shallow=shallow)
    ref = (ShallowMobileNetV1 if shallow else MobileNetV1)(width_mult=alpha, num_classes=10)
    if not isinstance(ours, nn.Module):
        raise ExerciseFailed(f"{model_cls.__name__}({where}) should be an nn.Module, got {type(ours).__name__}")
    dws, want_dws = _depthwise_convs(ours), _depthwise_convs(ref)
    if len(dws) != len(want_dws):
        why = "the five 14×14×512 layers removed" if shallow else "Table 1"
        raise ExerciseFailed(f"{where}: expected {len(want_dws)} depthwise convs ({why}), found {len(dws)}")
    bad = [m for m in dws if m.groups != m.in_channels]
    if bad:
        raise ExerciseFailed(f"a depthwise conv needs groups == in_channels, got groups={bad[0].groups} "
                             f"with in_channels={bad[0].in_channels}")
    if count_params(ours) != count_params(ref):
        raise ExerciseFailed(f"{where}: expected {count_params(ref):,} parameters (BN included, "
                             f"channels int(α·c)), got {count_params(ours):,}")
    x = torch.randn(2, 3, 64, 64)
    ours.eval()
    sizes = _depthwise_output_sizes(ours, dws, x)
    want_sizes = _depthwise_output_sizes(ref, want_dws, x)
    with torch.no_grad():
        y = ours(x)
    if tuple(y.shape) != (2, 10):
        raise ExerciseFailed(f"{where}: output shape for input (2, 3, 64, 64) and num_classes=10: "
                             f"expected (2, 10), got {tuple(y.shape)}")
    if sizes != want_sizes:
        hint = (" — Table 1's last 'Conv dw / s2' is a typo: its input is already 7×7 (at 224), so it has stride 1"
                if sizes[:-1] == want_sizes[:-1] else " — read each stride off where the map size halves")
        raise ExerciseFailed(f"{where}: map sizes after the depthwise convs for a 64×64 input: expected {want_sizes}, "
                             f"got {sizes}{hint}")
    assert_same_outputs(ours, ref, x, where=where,
                        order="stem conv+BN, then [dw conv, BN, pw conv, BN] per layer, FC",
                        hint="BN + ReLU after every conv but the FC? global average pooling?")


@exercise("1.2", "MobileNet V1 from Table 1, and the shallow variant", points=2)
def _check_mobilenet_v1(model_cls):
    for shallow in (False, True):
        for alpha in (0.5, 1.0):
            _check_v1_variant(model_cls, alpha, shallow)
    shallow = model_cls(width_mult=1.0, num_classes=1000, shallow=True)
    madds, params = count_flops(shallow) / 1e6, count_params(shallow) / 1e6
    return (f"both variants at α = 0.5 and 1.0 match; shallow 1.0 MobileNet-224: {madds:.1f} M mult-adds, "
            f"{params:.2f} M parameters with batch norm (paper: {PAPER_SHALLOW['mult_adds_M']} M, {PAPER_SHALLOW['params_M']} M)")


def reference_width_for_budget(budget: float, in_channels: int, out_channels: int, size: int,
                               kernel: int = 3) -> float:
    """Largest α ≤ 1 with K²·αM·D² + αM·αN·D² ≤ budget (Eq. 6): the positive root of a quadratic."""
    a = in_channels * out_channels * size**2
    b = kernel**2 * in_channels * size**2
    root = (-b + math.sqrt(b * b + 4 * a * budget)) / (2 * a)
    return min(1.0, root)


BUDGET_CASES = [(15e6, 512, 512, 14), (52.3e6, 512, 512, 14), (1e9, 512, 512, 14), (2e6, 64, 128, 56)]


@exercise("1.3", "Width multiplier for a mult-add budget", points=1)
def _check_width_for_budget(width_for_budget):
    for budget, m, n, size in BUDGET_CASES:
        want = reference_width_for_budget(budget, m, n, size)
        got = width_for_budget(budget, m, n, size)
        if not isinstance(got, (int, float)) or not math.isclose(got, want, rel_tol=1e-4):
            raise ExerciseFailed(f"width_for_budget({budget:g}, M={m}, N={n}, D_F={size}): expected α ≈ {want:.5f}, "
                                 f"got {got!r} (solve 9·αM·D_F² + α²·M·N·D_F² = budget for α, at most 1)")
    return f"{len(BUDGET_CASES)} budgets match"


def reference_predict_at_resolution(resolution: int, mult_adds_224: int, fc_mult_adds: int,
                                    params_224: int) -> tuple[float, int]:
    """Eq. 7: every feature map shrinks by ρ = resolution / 224, so the cost on maps falls as ρ²;
    the FC layer sees the pooled 1×1 map at any resolution, and no filter depends on the map size.
    """
    rho = resolution / 224
    return (mult_adds_224 - fc_mult_adds) * rho**2 + fc_mult_adds, params_224


RESOLUTION_CASES = (128, 160, 192, 96, 288)


@exercise("1.4", "Resolution multiplier: predicted, then counted", points=1)
def _check_predict_at_resolution(predict_at_resolution):
    for alpha in (1.0, 0.5):
        model = MobileNetV1(width_mult=alpha)
        by_module = flops_by_module(model)
        total, fc = by_module[""], by_module["classifier"]
        params = count_params(model)
        for r in RESOLUTION_CASES:
            want = count_flops(model, (1, 3, r, r))
            call = f"predict_at_resolution({r}, {total:,}, {fc:,}, {params:,})"
            got = predict_at_resolution(r, total, fc, params)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise ExerciseFailed(f"{call} should return a pair (mult_adds, params), got {got!r}")
            got_madds, got_params = got
            if got_params != params:
                raise ExerciseFailed(f"{call}: parameters should stay {params:,}, got {got_params!r} — "
                                     "the filters do not depend on the size of the map they slide over")
            if not isinstance(got_madds, (int, float)) or not math.isclose(got_madds, want, rel_tol=1e-6):
                rho = r / 224
                hint = ""
                if isinstance(got_madds, (int, float)):
                    if math.isclose(got_madds, total * rho, rel_tol=1e-6):
                        hint = " — a map of side ρ·D_F has ρ² as many positions: cost falls as ρ², not ρ"
                    elif math.isclose(got_madds, total * rho**2, rel_tol=1e-6):
                        hint = (" — close, but the FC layer runs on the pooled 1×1 map: its cost does not "
                                "change with the resolution")
                raise ExerciseFailed(f"α = {alpha}, {call}: fvcore counts {want:,} mult-adds at {r}×{r}, "
                                     f"you predicted {got_madds!r}{hint}")
    return (f"α = 1.0 and 0.5 at {', '.join(map(str, RESOLUTION_CASES))}: "
            "predictions equal fvcore's counts on the real networks")


def reference_best_width(summary: list[dict], chance: float = 0.1) -> tuple[str, dict[str, float]]:
    """Points of test accuracy above chance per million mult-adds, per variant; the label that buys the most."""
    scores = {r["label"]: 100 * (r["test_acc"] - chance) / (r["macs"] / 1e6) for r in summary}
    return max(scores, key=scores.get), scores


def _summary(accs_macs):
    return [dict(label=f"V1 α={a:g}", test_acc=acc, macs=macs, test_acc_std=float("nan"), seeds=1)
            for a, acc, macs in accs_macs]


# Made-up runs that tell a right answer from the usual slips: the narrowest wins per mult-add; the
# widest wins once chance is subtracted (raw accuracy per mult-add would pick the narrowest); one below chance.
WIDTH_CASES = (
    _summary([(0.25, 0.55, 1.0e6), (0.5, 0.70, 3.0e6), (1.0, 0.80, 11.0e6)]),
    _summary([(0.25, 0.12, 1.0e6), (0.5, 0.30, 3.0e6), (1.0, 0.90, 11.0e6)]),
    _summary([(0.25, 0.05, 1.0e6), (0.75, 0.60, 6.0e6)]),
)


def _check_scores(best_width, summary, where: str) -> str:
    want_best, want = reference_best_width(summary)
    got = best_width(summary)
    if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], dict)):
        raise ExerciseFailed(f"best_width({where}) should return (label, {{label: score}}), got {got!r}")
    best, scores = got
    if set(scores) != set(want):
        raise ExerciseFailed(f"best_width({where}): scores should have one entry per row's label {sorted(want)}, "
                             f"got {sorted(scores)}")
    for label, w in want.items():
        g = scores[label]
        if not isinstance(g, (int, float)) or not math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9):
            row = next(r for r in summary if r["label"] == label)
            hint = ""
            if isinstance(g, (int, float)) and math.isclose(g, 100 * row["test_acc"] / (row["macs"] / 1e6), rel_tol=1e-6):
                hint = " — subtract chance (10 %) first: a guess scores that for free, whatever it costs"
            elif isinstance(g, (int, float)) and math.isclose(g, w / 100, rel_tol=1e-6):
                hint = " — in points (percent), not as a fraction"
            raise ExerciseFailed(f"best_width({where}), {label}: expected {w:.4g} points above chance per million "
                                 f"mult-adds (test_acc {row['test_acc']:.3f}, {row['macs'] / 1e6:.3g} M), got {g!r}{hint}")
    if best != want_best:
        raise ExerciseFailed(f"best_width({where}): the highest score is {want_best!r}'s ({want[want_best]:.4g}), "
                             f"you picked {best!r}")
    return want_best


@exercise("1.5", "Which α buys the most accuracy per mult-add?", points=1)
def _check_best_width(best_width, summary=None):
    for i, case in enumerate(WIDTH_CASES):
        _check_scores(best_width, case, f"made-up run {i + 1}")
    if summary is None:
        return f"{len(WIDTH_CASES)} made-up runs match (pass your run's summary to check it too)"
    best = _check_scores(best_width, summary, "your run")
    return f"{len(WIDTH_CASES)} made-up runs and your run match; on your run {best} buys the most per mult-add"

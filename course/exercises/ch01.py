"""Checks for chapter 01 (MobileNet V1): separable cost, the whole network from Table 1, α for a budget."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..measure import count_flops, count_params
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


@exercise("1.2", "MobileNet V1 from Table 1", points=2)
def _check_mobilenet_v1(model_cls):
    for alpha in (0.5, 1.0):
        ours = model_cls(width_mult=alpha, num_classes=10)
        ref = MobileNetV1(width_mult=alpha, num_classes=10)
        if not isinstance(ours, nn.Module):
            raise ExerciseFailed(f"{model_cls.__name__}(width_mult={alpha}) should be an nn.Module, "
                                 f"got {type(ours).__name__}")
        dws = [m for m in ours.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        if len(dws) != 13:
            raise ExerciseFailed(f"width_mult={alpha}: expected 13 depthwise convs (Table 1), found {len(dws)}")
        bad = [m for m in dws if m.groups != m.in_channels]
        if bad:
            raise ExerciseFailed(f"a depthwise conv needs groups == in_channels, got groups={bad[0].groups} "
                                 f"with in_channels={bad[0].in_channels}")
        if count_params(ours) != count_params(ref):
            raise ExerciseFailed(f"width_mult={alpha}: expected {count_params(ref):,} parameters (BN included, "
                                 f"channels int(α·c)), got {count_params(ours):,}")
        x = torch.randn(2, 3, 64, 64)
        ours.eval()
        sizes = _depthwise_output_sizes(ours, dws, x)
        want_sizes = _depthwise_output_sizes(ref, [m for m in ref.modules() if isinstance(m, nn.Conv2d) and m.groups > 1], x)
        with torch.no_grad():
            y = ours(x)
        if tuple(y.shape) != (2, 10):
            raise ExerciseFailed(f"output shape for input (2, 3, 64, 64) and num_classes=10: "
                                 f"expected (2, 10), got {tuple(y.shape)}")
        if sizes != want_sizes:
            hint = (" — Table 1's last 'Conv dw / s2' is a typo: its input is already 7×7 (at 224), so it has stride 1"
                    if sizes[:-1] == want_sizes[:-1] else "")
            raise ExerciseFailed(f"map sizes after the 13 depthwise convs for a 64×64 input: expected {want_sizes}, "
                                 f"got {sizes}{hint}")
        assert_same_outputs(ours, ref, x, where=f"width_mult={alpha}",
                            order="stem conv+BN, 13× [dw conv, BN, pw conv, BN], FC",
                            hint="BN + ReLU after every conv but the FC? global average pooling?")
    return "α = 0.5 and 1.0: 13 depthwise convs, parameters, map sizes and outputs match course.models.MobileNetV1"


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

"""Checks for chapter 02 (MobileNet V2): the inverted residual, its memory, where a ReLU manifold survives."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..blocks import InvertedResidual
from ..manifold import EMBED_DIMS, relu_roundtrip
from ..measure import count_params
from ..memory import block_tensors
from ..models import torchvision_reference
from . import ExerciseFailed, assert_same_outputs, exercise

# (in, out, stride, t, map size): residual, stride 2, channel change, t = 1 (no expansion layer)
BLOCK_CASES = [(24, 24, 1, 6, 12), (24, 32, 2, 6, 13), (16, 24, 1, 6, 8), (32, 16, 1, 1, 8), (24, 24, 2, 6, 8)]


def _last_bn(model: nn.Module) -> nn.BatchNorm2d | None:
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    return bns[-1] if bns else None


def compare_inverted_residual(block_cls) -> str:
    """Check a from-scratch inverted residual against ``course.blocks.InvertedResidual``.

    Parameters, output shape, the residual rule (stride 1 and in == out), a linear projection,
    and equal outputs once the reference weights are loaded. Raises ``ExerciseFailed``.
    """
    for k, k_out, stride, t, size in BLOCK_CASES:
        where = f"{block_cls.__name__}({k}, {k_out}, stride={stride}, expand_ratio={t})"
        ours, ref = block_cls(k, k_out, stride, t), InvertedResidual(k, k_out, stride, t)
        if not isinstance(ours, nn.Module):
            raise ExerciseFailed(f"{where} should be an nn.Module, got {type(ours).__name__}")
        if count_params(ours) != count_params(ref):
            raise ExerciseFailed(f"{where}: expected {count_params(ref):,} parameters, got {count_params(ours):,}"
                                 + (" (with t = 1 there is no expansion 1×1 conv)" if t == 1 else ""))
        x = torch.randn(2, k, size, size)
        out_size = (size - 1) // stride + 1
        bn = _last_bn(ours)
        if bn is None:
            raise ExerciseFailed(f"{where}: no BatchNorm2d found; every conv is followed by batch norm")
        ours.eval()
        with torch.no_grad():
            bn.weight.zero_()
            bn.bias.fill_(-1.0)
            y = ours(x)
        if tuple(y.shape) != (2, k_out, out_size, out_size):
            raise ExerciseFailed(f"{where}: output shape for input {tuple(x.shape)}: expected "
                                 f"{(2, k_out, out_size, out_size)}, got {tuple(y.shape)}")
        # The projection's BN now outputs a constant -1: the branch is exactly -1 if it is linear.
        residual = stride == 1 and k == k_out
        branch = y - x if residual else y
        if not torch.allclose(branch, torch.full_like(branch, -1.0), atol=1e-5):
            if residual and torch.allclose(y, torch.full_like(y, -1.0), atol=1e-5):
                raise ExerciseFailed(f"{where}: stride 1 and in == out, so the block must add its input "
                                     "(the residual connection between the thin ends)")
            if (branch >= 0).all():
                raise ExerciseFailed(f"{where}: the branch output is clipped at 0 — is there an activation after "
                                     "the projection? The bottleneck must stay linear (Sec. 3.2)")
            raise ExerciseFailed(f"{where}: the last batch norm should be the block's last step (then the "
                                 "shortcut, if any)")
        assert_same_outputs(ours, ref, x, where=where,
                            order="[expand conv, BN,] depthwise conv, BN, project conv, BN",
                            hint="ReLU6 after the expansion and the depthwise conv, none after the projection?")
    return f"{len(BLOCK_CASES)} configurations: parameters, residual rule, linear projection and outputs match"


@exercise("2.1", "MobileNet V2 from the (t, c, n, s) table", points=2)
def _check_mobilenet_v2(model_cls):
    ours = model_cls(num_classes=1000)
    if not isinstance(ours, nn.Module):
        raise ExerciseFailed(f"{model_cls.__name__}() should be an nn.Module, got {type(ours).__name__}")
    theirs = torchvision_reference("mobilenet_v2")
    want = count_params(theirs)
    if count_params(ours) != want:
        blocks = sum(1 for m in ours.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
        raise ExerciseFailed(f"expected {want:,} parameters (torchvision's mobilenet_v2), got {count_params(ours):,}; "
                             f"you have {blocks} depthwise convs, Table 2 has 17 bottlenecks")
    assert_same_outputs(ours, theirs, torch.randn(1, 3, 96, 96), atol=1e-3,
                        order="stem, 17 blocks, last 1×1 conv, classifier",
                        hint="strides: only the first block of each row has stride s; "
                             "residual only at stride 1 and in == out")
    return f"{want:,} parameters; same output as torchvision's mobilenet_v2 with its weights"


MEMORY_CASES = [(24, 6, 56, 1), (32, 6, 28, 2), (16, 1, 112, 1), (160, 4, 7, 1)]


@exercise("2.2", "Tensor widths and memory of an inverted residual", points=1)
def _check_block_memory(block_memory):
    for k, t, size, stride in MEMORY_CASES:
        want = [(r["channels"], r["size"], r["kB_16bit"]) for r in block_tensors("inverted", k, t, size, stride)]
        got = block_memory(k, t, size, stride)
        try:
            got = [(int(c), int(s), float(kb)) for c, s, kb in got]
        except (TypeError, ValueError):
            raise ExerciseFailed(f"block_memory({k}, t={t}, size={size}, stride={stride}) should return four "
                                 f"(channels, size, kB) tuples, got {got!r}") from None
        if len(got) != 4:
            raise ExerciseFailed(f"block_memory({k}, t={t}, size={size}, stride={stride}): expected 4 tensors "
                                 f"(input, expanded, depthwise output, projected), got {len(got)}")
        for i, (g, w) in enumerate(zip(got, want)):
            if g[:2] != w[:2] or not math.isclose(g[2], w[2], rel_tol=1e-6):
                raise ExerciseFailed(f"block_memory({k}, t={t}, size={size}, stride={stride}), tensor {i}: expected "
                                     f"(channels, size, kB) = ({w[0]}, {w[1]}, {w[2]:g}), got {got[i]} "
                                     "(16-bit = 2 bytes per element, 1 kB = 1000 bytes)")
    return f"{len(MEMORY_CASES)} blocks match"


def reference_smallest_safe_n(threshold: float, seeds) -> int | None:
    """Smallest n in EMBED_DIMS whose recovered fraction is >= threshold for every seed."""
    for n in EMBED_DIMS:
        if all(relu_roundtrip(n, s)["recovered_fraction"] >= threshold for s in seeds):
            return n
    return None


SAFE_CASES = [(0.99, range(10)), (0.45, range(5)), (0.8, range(2, 4))]


@exercise("2.3", "When does the manifold survive a ReLU?", points=1)
def _check_smallest_safe_n(smallest_safe_n):
    for threshold, seeds in SAFE_CASES:
        want = reference_smallest_safe_n(threshold, seeds)
        got = smallest_safe_n(threshold, seeds)
        if got != want:
            raise ExerciseFailed(f"smallest_safe_n(threshold={threshold}, seeds={seeds}): expected {want}, got {got!r} "
                                 f"(the smallest n in {EMBED_DIMS} whose recovered_fraction is >= threshold "
                                 "for every seed)")
    return f"{len(SAFE_CASES)} thresholds match"


VERDICTS = ("linear", "relu6", "undecided")


def reference_bottleneck_verdict(summary: list[dict]) -> str:
    """Which bottleneck wins on this run: "linear", "relu6", or "undecided" when the gap is not > 2 × spread."""
    from ..mobilenet_ablations import bottleneck_labels, winner

    labels = bottleneck_labels()
    w = winner(summary, labels["relu6"], labels["linear"])
    return "undecided" if w is None else "linear" if w == labels["linear"] else "relu6"


def _made_up(linear, relu6, std, seeds):
    from ..mobilenet_ablations import bottleneck_labels

    labels = bottleneck_labels()
    return [dict(label=labels["linear"], test_acc=linear, test_acc_std=std, seeds=seeds),
            dict(label=labels["relu6"], test_acc=relu6, test_acc_std=std, seeds=seeds)]


# (linear, relu6, std, seeds): each verdict, a gap inside twice the spread, a big gap from one seed.
VERDICT_CASES = ((0.70, 0.60, 0.01, 3), (0.70, 0.75, 0.01, 3), (0.70, 0.68, 0.02, 3), (0.80, 0.50, float("nan"), 1))


def _verdict_hint(case) -> str:
    linear, relu6, std, seeds = case
    if seeds < 2:
        return " — with one seed there is no spread, so no gap can be called a difference"
    return f" — the gap {100 * abs(linear - relu6):.1f} points is not more than twice the spread ({100 * std:.1f})"


@exercise("2.4", "Linear or ReLU6 bottleneck: the prediction against the measurement", points=1)
def _check_bottleneck_verdict(bottleneck_verdict, summary=None, prediction=None, reference=None):
    if prediction is not None and prediction not in VERDICTS:
        raise ExerciseFailed(f"prediction must be one of {VERDICTS}, got {prediction!r}")
    for case in VERDICT_CASES:
        rows = _made_up(*case)
        want, got = reference_bottleneck_verdict(rows), bottleneck_verdict(rows)
        if got != want:
            linear, relu6, std, seeds = case
            hint = _verdict_hint(case) if want == "undecided" else ""
            raise ExerciseFailed(f"made-up run: linear {100 * linear:.0f} %, ReLU6 {100 * relu6:.0f} % (std "
                                 f"{100 * std:.1f}, {seeds} seed{'s' if seeds > 1 else ''}): expected {want!r}, "
                                 f"got {got!r}{hint}")
    measured = []
    for rows, who in ((summary, "your run"), (reference, "the reference run")):
        if rows:
            want, got = reference_bottleneck_verdict(rows), bottleneck_verdict(rows)
            if got != want:
                raise ExerciseFailed(f"on {who}: the rule gives {want!r}, your function says {got!r}")
            measured.append((who, want))
    if not measured:
        return f"{len(VERDICT_CASES)} made-up runs match"
    said = "" if prediction is None else (
        f"; you predicted {prediction!r}: "
        + (f"{measured[-1][0]} agrees" if prediction == measured[-1][1]
           else f"{measured[-1][0]} says {measured[-1][1]!r}"))
    return (f"{len(VERDICT_CASES)} made-up runs match; the measured verdict, "
            f"{', '.join(f'{who}: {v}' for who, v in measured)}{said}")

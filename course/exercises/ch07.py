"""Checks for chapter 07 (deployment): BatchNorm folded by the formula, int8 weights per tensor and per channel,
and the speed-up of two runtimes from interleaved rounds."""

from __future__ import annotations

import statistics

import torch
from torch import nn

from ..deploy.bnfold import fuse_conv_bn
from . import ExerciseFailed, exercise


def _conv_bn(c_out: int, c_in: int, groups: int, bias: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, bias=bias)
    bn = nn.BatchNorm2d(c_out, eps=1e-3 if seed % 2 else 1e-5)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        if bias:
            conv.bias.copy_(torch.randn(c_out, generator=g))
        bn.weight.copy_(torch.rand(c_out, generator=g) * 2 + 0.1)
        bn.bias.copy_(torch.randn(c_out, generator=g))
        bn.running_mean.copy_(torch.randn(c_out, generator=g))
        bn.running_var.copy_(torch.rand(c_out, generator=g) * 0.01 + 1e-4)  # small: eps matters
    return conv, bn.eval()


@exercise("7.1", "Fold a BatchNorm into the conv before it", points=2)
def _check_fold(fold):
    cases = ((8, 4, 1, True), (16, 16, 16, False), (6, 3, 1, False))
    for seed, (c_out, c_in, groups, bias) in enumerate(cases):
        conv, bn = _conv_bn(c_out, c_in, groups, bias, seed)
        with torch.no_grad():
            got = fold(conv.weight.clone(), None if conv.bias is None else conv.bias.clone(), bn.weight.clone(),
                       bn.bias.clone(), bn.running_mean.clone(), bn.running_var.clone(), bn.eps)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise ExerciseFailed(f"fold(...) should return (weight, bias), got {type(got).__name__}")
        weight, b = (torch.as_tensor(t) for t in got)
        want = fuse_conv_bn(conv, bn)
        where = f"conv {c_in}->{c_out}, groups {groups}, bias {bias}, eps {bn.eps:g}"
        if tuple(weight.shape) != tuple(want.weight.shape) or tuple(b.shape) != (c_out,):
            raise ExerciseFailed(f"{where}: weight shape {tuple(weight.shape)} and bias shape {tuple(b.shape)}, "
                                 f"expected {tuple(want.weight.shape)} and ({c_out},): one scale per output channel")
        if not torch.allclose(weight, want.weight, atol=1e-5, rtol=1e-4):
            hint = " (did you leave eps out of sqrt(var + eps)?)" if torch.allclose(
                weight, conv.weight * (bn.weight / bn.running_var.sqrt()).view(-1, 1, 1, 1), rtol=1e-4) else \
                " (the scale is gamma / sqrt(var + eps), applied to each output channel's filter)"
            raise ExerciseFailed(f"{where}: folded weight differs from course.deploy.fuse_conv_bn's by up to "
                                 f"{float((weight - want.weight).abs().max()):.3g}{hint}")
        if not torch.allclose(b, want.bias, atol=1e-4, rtol=1e-4):
            raise ExerciseFailed(f"{where}: folded bias differs by up to {float((b - want.bias).abs().max()):.3g} "
                                 "(b' = (b - mean) * scale + beta; a conv without bias has b = 0)")
    return f"{len(cases)} Conv→BN pairs folded like course.deploy.fuse_conv_bn (with and without bias, depthwise)"


def _reference_fake_quant(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    peak = w.abs().flatten(1).amax(1).view(-1, *[1] * (w.ndim - 1)) if per_channel else w.abs().max()
    scale = peak.clamp_min(1e-12) / 127
    return (w / scale).round().clamp(-127, 127) * scale


@exercise("7.2", "int8 weights: one scale per tensor or per output channel", points=2)
def _check_fake_quant(fake_quantize):
    g = torch.Generator().manual_seed(0)
    spread = torch.logspace(-2, 0, 8).view(8, 1, 1, 1)  # depthwise channels whose ranges span two decades
    cases = [torch.randn(8, 1, 3, 3, generator=g) * spread, torch.randn(4, 3, 1, 1, generator=g)]
    for w in cases:
        for per_channel in (False, True):
            got = torch.as_tensor(fake_quantize(w.clone(), per_channel))
            want = _reference_fake_quant(w, per_channel)
            if tuple(got.shape) != tuple(w.shape):
                raise ExerciseFailed(f"fake_quantize(w of shape {tuple(w.shape)}, per_channel={per_channel}) "
                                     f"returned shape {tuple(got.shape)}: return the dequantized weights")
            if not torch.allclose(got, want, atol=1e-7, rtol=1e-5):
                levels = torch.unique((got / (want.abs().max() / 127 if not per_channel else 1)).round()).numel()
                raise ExerciseFailed(
                    f"per_channel={per_channel}, weights {tuple(w.shape)}: differs from symmetric int8 by up to "
                    f"{float((got - want).abs().max()):.3g} (scale = max|w| / 127 over the whole tensor, or over "
                    f"each output channel w[c]; q = round(w / scale) clipped to [-127, 127]; return q * scale; "
                    f"{levels} distinct values came back)")
    w = cases[0]
    err = {pc: float((_reference_fake_quant(w, pc) - w).norm() / w.norm()) for pc in (False, True)}
    return (f"matches symmetric int8 on both cases; on the spread depthwise weights the relative error is "
            f"{err[False]:.4f} per tensor vs {err[True]:.4f} per channel")


@exercise("7.3", "Speed-up from interleaved rounds", points=1)
def _check_speedup(speedup):
    cases = [([10, 10, 10], [5, 5, 5]), ([10, 20, 30], [8, 5, 15]), ([12, 30, 11, 13, 40], [6, 10, 5.5, 13, 8])]
    for a, b in cases:
        want = statistics.median(x / y for x, y in zip(a, b))
        got = speedup(list(a), list(b))
        if not isinstance(got, (int, float)) or abs(got - want) > 1e-9:
            hint = ""
            if isinstance(got, (int, float)) and abs(got - statistics.median(a) / statistics.median(b)) < 1e-9:
                hint = (" (that is the ratio of the medians: take each round's ratio a_i / b_i first, then the "
                        "median, so a slow round slows both sides of its own ratio)")
            elif isinstance(got, (int, float)) and abs(got - 1 / want) < 1e-9:
                hint = " (upside down: the speed-up of B is time of A / time of B)"
            raise ExerciseFailed(f"speedup({a}, {b}): expected {want:.4g}, got {got!r}{hint}")
    return f"{len(cases)} cases: the median of per-round ratios, as course.measure.interleaved_ratio"

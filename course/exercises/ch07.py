"""Checks for chapter 07 (deployment): a uint8 activation scale and zero point, int8 weights per tensor and per
channel, and the speed-up of two runtimes from interleaved rounds."""

from __future__ import annotations

import statistics

import torch
from . import ExerciseFailed, exercise


def _reference_qparams(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255 if hi > lo else 1.0
    return scale, int(min(255, max(0, round(-lo / scale))))


@exercise("7.1", "uint8 activation scale and zero point from a calibrated range", points=2)
def _check_qparams(qparams):
    cases = ((0.0, 6.0), (-1.5, 4.2), (0.5, 3.0), (-2.0, -0.5), (-0.01, 37.0))
    for lo, hi in cases:
        got = qparams(lo, hi)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise ExerciseFailed(f"qparams({lo}, {hi}) should return (scale, zero_point), got {got!r}")
        scale, zp = got
        want_scale, want_zp = _reference_qparams(lo, hi)
        if not isinstance(zp, int) and not (hasattr(zp, "is_integer") and float(zp).is_integer()):
            raise ExerciseFailed(f"qparams({lo}, {hi}): the zero point is an integer (a uint8 code), got {zp!r}")
        if abs(float(scale) - want_scale) > 1e-9 * max(1.0, want_scale) or int(zp) != want_zp:
            hint = ""
            if lo > 0 or hi < 0:
                hint = (" (the range must contain 0, so that a zero activation, e.g. padding or ReLU's output, "
                        "is exactly representable: widen [lo, hi] to include it)")
            elif abs(float(scale) - (hi - lo) / 256) < 1e-12:
                hint = " (uint8 has 256 codes, 0..255: 255 steps between them)"
            raise ExerciseFailed(f"qparams({lo}, {hi}): expected scale {want_scale:.6g} and zero point {want_zp}, "
                                 f"got {float(scale):.6g} and {zp!r}{hint}")
    s6, _ = _reference_qparams(0.0, 6.0)
    return (f"{len(cases)} ranges match ONNX Runtime's uint8 scheme; ReLU6's [0, 6] gets steps of {s6:.4f}, "
            f"a range of [0, 37] would get {_reference_qparams(0.0, 37.0)[0]:.4f}")


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

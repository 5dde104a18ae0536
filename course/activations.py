"""h-swish vs swish (MobileNet V3, Howard et al. 2019, Sec. 5.2): how far apart the curves are,
and what each costs to run.

The hard versions replace the sigmoid by a piecewise-linear ReLU6(x + 3) / 6. How close the
curves are is computed in float64; what they cost is measured (``course.measure``), fused
kernels and the formulas op by op, interleaved so that machine load hits both alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from .device import resolve_device
from .env import pick
from .measure import LatencyResult, RatioResult, interleaved_ratio, latency
from .validate import check_choice, check_int

__all__ = ["ACTIVATIONS", "ACTIVATION_PAIRS", "max_deviation", "signed_gap", "ACTIVATION_IMPLS", "CostRow",
           "activation_costs", "hswish_vs_swish", "fused_vs_formula", "verdict"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ReLU": F.relu,
    "ReLU6": F.relu6,
    "sigmoid": torch.sigmoid,
    "h-sigmoid": F.hardsigmoid,
    "swish": F.silu,
    "h-swish": F.hardswish,
}
ACTIVATION_PAIRS = {
    "ReLU vs ReLU6": ("ReLU", "ReLU6"),
    "sigmoid vs h-sigmoid": ("sigmoid", "h-sigmoid"),
    "swish vs h-swish": ("swish", "h-swish"),
}


def max_deviation(a: str, b: str, lo: float = -8.0, hi: float = 8.0, n: int = 160_001) -> tuple[float, float]:
    """max |a(x) − b(x)| over ``n`` points of [lo, hi] (float64), and the x where it occurs."""
    check_choice("a", a, tuple(ACTIVATIONS))
    check_choice("b", b, tuple(ACTIVATIONS))
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    check_int("n", n, low=2)
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    d = (ACTIVATIONS[a](x) - ACTIVATIONS[b](x)).abs()
    i = int(d.argmax())
    return float(d[i]), float(x[i])


def signed_gap(a: str, b: str, x: float) -> float:
    """b(x) − a(x) in float64: negative where the ``b`` curve lies below ``a``."""
    check_choice("a", a, tuple(ACTIVATIONS))
    check_choice("b", b, tuple(ACTIVATIONS))
    t = torch.tensor(float(x), dtype=torch.float64)
    return float(ACTIVATIONS[b](t) - ACTIVATIONS[a](t))


def _hswish_formula(x: torch.Tensor) -> torch.Tensor:
    return x * F.relu6(x + 3) / 6


def _swish_formula(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


# name -> element-wise function; "formula" rows are written out op by op, the others are fused kernels.
ACTIVATION_IMPLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ReLU (F.relu)": F.relu,
    "sigmoid (torch.sigmoid)": torch.sigmoid,
    "h-sigmoid (F.hardsigmoid)": F.hardsigmoid,
    "swish formula x*sigmoid(x)": _swish_formula,
    "swish fused (F.silu)": F.silu,
    "h-swish formula x*relu6(x+3)/6": _hswish_formula,
    "h-swish fused (F.hardswish)": F.hardswish,
}


@dataclass
class CostRow:
    """One activation's measured cost per element."""

    name: str
    numel: int
    ns_per_element: float
    result: LatencyResult

    def as_row(self) -> dict:
        r = self.result
        return {"activation": self.name, "ns/element": self.ns_per_element,
                "ms per call": r.median_ms, "IQR ms": r.iqr_ms}


def _tensor(numel: int, device) -> torch.Tensor:
    check_int("numel", numel)
    return torch.randn(numel, device=resolve_device(device)[0]) * 4


def activation_costs(numel: int = 1 << 22, device="auto", names: list[str] | None = None,
                     min_run_time: float | None = None) -> list[CostRow]:
    """Measured time per element of each activation on one large tensor (values spread over ±12)."""
    names = list(ACTIVATION_IMPLS) if names is None else names
    for n in names:
        check_choice("names", n, tuple(ACTIVATION_IMPLS))
    x = _tensor(numel, device)
    rows = []
    for n in names:
        fn = ACTIVATION_IMPLS[n]
        res = latency(lambda fn=fn: fn(x), input_size=(1,), device=x.device, min_run_time=min_run_time)
        rows.append(CostRow(n, numel, res.median_ms * 1e6 / numel, res))
    return rows


def _timed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def run():
        fn(x)
        sync()

    return run


def _ratio(fn_a, fn_b, x: torch.Tensor, rounds: int | None) -> RatioResult:
    return interleaved_ratio(_timed(fn_a, x), _timed(fn_b, x), rounds=rounds or pick(20, 5), number=3)


def hswish_vs_swish(numel: int = 1 << 22, device="auto", rounds: int | None = None) -> dict[str, RatioResult]:
    """Interleaved time ratios h-swish / swish: fused kernels, and the formulas op by op.

    A ratio below 1 means h-swish is the cheaper one on this machine.
    """
    x = _tensor(numel, device)
    return {
        "fused: F.hardswish / F.silu": _ratio(F.hardswish, F.silu, x, rounds),
        "formula: x*relu6(x+3)/6 / x*sigmoid(x)": _ratio(_hswish_formula, _swish_formula, x, rounds),
    }


def fused_vs_formula(numel: int = 1 << 22, device="auto", rounds: int | None = None) -> RatioResult:
    """Interleaved time ratio F.hardswish / x*relu6(x+3)/6: what fusing the op into one kernel buys."""
    x = _tensor(numel, device)
    return _ratio(F.hardswish, _hswish_formula, x, rounds)


def verdict(ratio: RatioResult, a: str = "h-swish", b: str = "swish") -> str:
    """Plain words for an A/B time ratio, honest about overlap: the IQR must clear 1 by 5 %."""
    if ratio.q3 < 0.95:
        return f"{a} is cheaper here: it takes {100 * ratio.ratio:.0f} % of {b}'s time."
    if ratio.q1 > 1.05:
        return f"{a} is NOT cheaper here: it takes {100 * ratio.ratio:.0f} % of {b}'s time."
    return f"no clear difference here: {a} takes {100 * ratio.ratio:.0f} % of {b}'s time (IQR spans ~1)."


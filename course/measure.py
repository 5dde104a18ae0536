"""Counting and timing: parameters, multiply-adds, memory access cost, latency.

FLOPs here follow the papers: one multiply-add counts as one FLOP (fvcore's convention,
and what MobileNet/ShuffleNet tables call "Mult-Adds" or "FLOPs"). Batch-norm is left out,
as the papers leave it out (it folds into the convolution at inference).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections import Counter
import statistics
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .device import device_name, resolve_device
from .env import quick_mode, quiet_libraries

__all__ = [
    "count_params",
    "summary",
    "count_flops",
    "flops_by_module",
    "flops_by_operator",
    "conv_cost",
    "mac_conv1x1",
    "mac_lower_bound",
    "mac_formula",
    "mac_point",
    "mac_curve",
    "LatencyResult",
    "latency",
    "RatioResult",
    "interleaved_ratio",
]


def _input_size(input_size) -> tuple[int, ...]:
    size = tuple(input_size)
    if len(size) != 4 or any(not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"input_size must be four positive ints (batch, channels, height, width), got {input_size!r}")
    return size


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN running statistics are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module, input_size=(1, 3, 224, 224), depth: int = 3, **kwargs):
    """torchinfo's layer table (returned, not printed: show it as a cell's last expression)."""
    from torchinfo import summary as _summary

    kwargs.setdefault("col_names", ("output_size", "num_params", "mult_adds"))
    kwargs.setdefault("device", "cpu")
    return _summary(model, input_size=_input_size(input_size), depth=depth, verbose=0, **kwargs)


def _flop_analysis(model: nn.Module, input_size):
    from fvcore.nn import FlopCountAnalysis

    quiet_libraries()
    device = next(model.parameters(), torch.empty(0)).device
    x = torch.zeros(_input_size(input_size), device=device)
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(model, x)
    # set_op_handle(name, None) does not remove a default handle in fvcore 0.1.5; count zero instead.
    analysis.set_op_handle("aten::batch_norm", lambda inputs, outputs: Counter())
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    analysis.total()  # run the trace now, in eval mode
    model.train(was_training)
    return analysis


def count_flops(model: nn.Module, input_size=(1, 3, 224, 224)) -> int:
    """Multiply-adds of one forward pass (fvcore; convs, linears, pooling; not BN or activations)."""
    return int(_flop_analysis(model, input_size).total())


def flops_by_module(model: nn.Module, input_size=(1, 3, 224, 224)) -> dict[str, int]:
    """Multiply-adds per submodule name ("" is the whole model)."""
    return {k: int(v) for k, v in _flop_analysis(model, input_size).by_module().items()}


def flops_by_operator(model: nn.Module, input_size=(1, 3, 224, 224)) -> dict[str, int]:
    """Multiply-adds per operator type (conv, linear, ...)."""
    return {k: int(v) for k, v in _flop_analysis(model, input_size).by_operator().items()}


def conv_cost(kernel: int, in_channels: int, out_channels: int, size: int, groups: int = 1) -> dict[str, int]:
    """Weights and multiply-adds of a k×k conv at stride 1 on a size×size map (MobileNet V1, Eq. 2/4)."""
    for name, v in (("kernel", kernel), ("in_channels", in_channels), ("out_channels", out_channels),
                    ("size", size), ("groups", groups)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
    params = kernel * kernel * (in_channels // groups) * out_channels
    return {"params": params, "mult_adds": params * size * size}


def mac_conv1x1(h: int, w: int, c1: int, c2: int, groups: int = 1) -> int:
    """Memory access cost of a 1×1 (group) conv, ShuffleNet V2 Eq. 1–2: hw(c1 + c2) + c1·c2/g.

    Feature maps read and written once, weights read once (cache large enough for all).
    """
    for name, v in (("h", h), ("w", w), ("c1", c1), ("c2", c2), ("groups", groups)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if c1 % groups or c2 % groups:
        raise ValueError(f"groups={groups} must divide c1={c1} and c2={c2}")
    return h * w * (c1 + c2) + c1 * c2 // groups


def mac_lower_bound(h: int, w: int, flops: float) -> float:
    """ShuffleNet V2 Eq. 1: MAC ≥ 2·√(hw·B) + B/(hw), reached when c1 = c2 (B = hw·c1·c2)."""
    if h < 1 or w < 1 or flops <= 0:
        raise ValueError(f"h, w and flops must be positive, got h={h!r}, w={w!r}, flops={flops!r}")
    return 2 * math.sqrt(h * w * flops) + flops / (h * w)


def mac_formula(h: float, w: float, c1, c2, groups=1):
    """Eq. 1–2, hw(c1 + c2) + c1·c2/g, for real-valued widths (numbers or numpy arrays)."""
    return h * w * (c1 + c2) + c1 * c2 / groups


def mac_point(h: int, w: int, c1: int, c2: int, groups: int = 1) -> dict:
    """One 1×1 conv: its FLOPs (B = hw·c1·c2/g), its MAC (Eq. 1–2) and the Eq. 1 lower bound for that B."""
    mac = mac_conv1x1(h, w, c1, c2, groups)
    flops = h * w * c1 * c2 // groups
    bound = mac_lower_bound(h, w, flops)
    return {"h": h, "w": w, "c1": c1, "c2": c2, "groups": groups, "flops": flops, "mac": mac,
            "bound": bound, "mac_over_bound": mac / bound}


def mac_curve(h: int, w: int, flops: float, ratios=None) -> dict:
    """MAC of a 1×1 conv along c2/c1 at fixed FLOPs B (c1 = √(B/(hw·r)), c2 = r·c1; real-valued widths).

    The minimum sits at c2/c1 = 1, on the Eq. 1 bound: guideline G1, equal widths.
    """
    if h < 1 or w < 1 or flops <= 0:
        raise ValueError(f"h, w and flops must be positive, got h={h!r}, w={w!r}, flops={flops!r}")
    ratios = np.geomspace(1 / 16, 16, 97) if ratios is None else np.asarray(ratios, dtype=float)
    c1 = np.sqrt(flops / (h * w * ratios))
    c2 = ratios * c1
    return {"ratios": ratios, "c1": c1, "c2": c2, "mac": mac_formula(h, w, c1, c2),
            "bound": mac_lower_bound(h, w, flops)}


@dataclass
class LatencyResult:
    """One latency measurement and everything that produced it."""

    median_ms: float
    iqr_ms: float
    times_ms: list[float] = field(repr=False)
    device: str
    device_name: str
    threads: int
    batch: int
    dtype: str
    torch_version: str
    cuda_graph: bool = False
    note: str = ""

    @property
    def per_second(self) -> float:
        """Items (images) per second: batch / median time."""
        return self.batch / (self.median_ms / 1000)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        graph = ", CUDA graph" if self.cuda_graph else ""
        note = f" [{self.note}]" if self.note else ""
        return (f"{self.median_ms:.3f} ms (IQR {self.iqr_ms:.3f}) | {self.device_name}, "
                f"{self.threads} threads, batch {self.batch}, {self.dtype}{graph}, torch {self.torch_version}{note}")


@contextlib.contextmanager
def _callable(model_or_fn, input_size, device: torch.device, dtype: torch.dtype):
    """``(fn, batch)`` to time; a module runs in eval mode on ``device`` in ``dtype``, and the caller's stays as it was.

    A module already there is timed itself, its train/eval mode restored afterwards; one elsewhere
    is timed as an eval copy (moving the caller's back would round its weights after a cast down).
    """
    if not isinstance(model_or_fn, nn.Module):
        if not callable(model_or_fn):
            raise ValueError(f"model_or_fn must be an nn.Module or a callable, got {type(model_or_fn).__name__}")
        yield model_or_fn, (input_size[0] if input_size else 1)
        return
    size = _input_size(input_size)
    tensors = [*model_or_fn.parameters(), *model_or_fn.buffers()]
    in_place = all(t.device == device and (t.dtype == dtype or not t.is_floating_point()) for t in tensors)
    model = model_or_fn if in_place else copy.deepcopy(model_or_fn).to(device=device, dtype=dtype)
    was_training = model_or_fn.training
    model.eval()
    x = torch.randn(size, device=device, dtype=dtype)

    def run():
        with torch.inference_mode():
            return model(x)

    try:
        yield run, size[0]
    finally:
        model_or_fn.train(was_training)


def _cuda_graph(fn: Callable[[], object]) -> Callable[[], object]:
    """Capture ``fn`` once in a CUDA graph and return a replay: launch overhead removed."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def latency(
    model_or_fn,
    input_size=(1, 3, 224, 224),
    device="auto",
    dtype: torch.dtype = torch.float32,
    cuda_graph: bool = False,
    min_run_time: float | None = None,
    threads: int | None = None,
) -> LatencyResult:
    """Median and IQR of one forward pass, by ``torch.utils.benchmark``.

    Warm-up runs first (never the first call); the benchmark timer synchronises CUDA.
    ``cuda_graph=True`` on a GPU replays a captured graph, removing Python and kernel-launch
    overhead, so what is left is the kernels themselves. ``min_run_time`` defaults to 1 s
    (0.1 s in quick mode). For a callable, ``input_size[0]`` is taken as its batch. A module
    keeps its device, dtype and train/eval mode: elsewhere, a copy is timed.
    """
    from torch.utils import benchmark

    dev, note = resolve_device(device)
    if cuda_graph and dev.type != "cuda":
        note = "; ".join(filter(None, [note, "CUDA graphs need a GPU: plain timing used"]))
        cuda_graph = False
    threads = threads or torch.get_num_threads()
    with _callable(model_or_fn, input_size, dev, dtype) as (fn, batch):
        for _ in range(3):
            fn()
        if cuda_graph:
            fn = _cuda_graph(fn)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        m = timer.blocked_autorange(min_run_time=min_run_time or (0.1 if quick_mode() else 1.0))
    times = [t * 1000 for t in m.times]
    return LatencyResult(
        median_ms=m.median * 1000,
        iqr_ms=m.iqr * 1000,
        times_ms=times,
        device=dev.type,
        device_name=device_name(dev),
        threads=threads,
        batch=batch,
        dtype=str(dtype).replace("torch.", ""),
        torch_version=torch.__version__,
        cuda_graph=cuda_graph,
        note=note,
    )


@dataclass
class RatioResult:
    """Median of per-round time ratios A/B from interleaved rounds (A, B, A, B, ...)."""

    ratio: float
    q1: float
    q3: float
    rounds: int
    median_a_ms: float
    median_b_ms: float

    def __str__(self) -> str:
        return (f"A/B = {self.ratio:.3f} (IQR {self.q1:.3f}–{self.q3:.3f}, {self.rounds} rounds; "
                f"A {self.median_a_ms:.3f} ms, B {self.median_b_ms:.3f} ms)")


def interleaved_ratio(fn_a: Callable[[], object], fn_b: Callable[[], object], rounds: int | None = None,
                      number: int = 5, threads: int | None = None) -> RatioResult:
    """Compare two implementations on a noisy machine: many short interleaved rounds.

    Each round times ``number`` calls of A, then of B; the ratio of the two is robust to
    slow drifts in machine load that would bias two separate long measurements.
    """
    from torch.utils import benchmark

    rounds = (5 if quick_mode() else 30) if rounds is None else rounds
    if rounds < 1 or number < 1:
        raise ValueError(f"rounds and number must be positive, got rounds={rounds!r}, number={number!r}")
    threads = threads or torch.get_num_threads()
    ta = benchmark.Timer(stmt="fn()", globals={"fn": fn_a}, num_threads=threads)
    tb = benchmark.Timer(stmt="fn()", globals={"fn": fn_b}, num_threads=threads)
    ta.timeit(max(1, number // 2))
    tb.timeit(max(1, number // 2))
    a, b = [], []
    for _ in range(rounds):
        a.append(ta.timeit(number).median)
        b.append(tb.timeit(number).median)
    ratios = sorted(x / y for x, y in zip(a, b))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return RatioResult(statistics.median(ratios), q[0], q[2], rounds,
                       statistics.median(a) * 1000, statistics.median(b) * 1000)

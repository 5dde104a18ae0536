"""The four ShuffleNet V2 guidelines (G1–G4) as the paper's controlled experiments.

Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018 (https://arxiv.org/abs/1807.11164), Sec. 2 and Tables 1–4. Each
experiment stacks ten small blocks that differ in one respect while FLOPs stay (nearly) fixed,
and times them: the point is that equal FLOPs do not mean equal speed.

- G1 (Table 1): equal channel width minimises memory access cost (c1:c2 = 1:1 … 1:12).
- G2 (Table 2): excessive group convolution increases MAC (g = 1 … 8).
- G3 (Table 3): network fragmentation reduces parallelism (1–4 convs, series or parallel).
- G4 (Table 4): element-wise operations (ReLU, shortcut add) are not free.

Choices the paper leaves open, made here and stated in the results:

- Scales ×1/×2/×4 multiply the "×1" channel counts by 1/2/4: the captions do not define them,
  but only this reading makes Table 2's g = 1 row match Table 3's 1-fragment row at c = 128/256/512.
- Every conv is followed by batch norm (and ReLU, except where G4 removes it), as in a real
  network. FLOPs are fvcore multiply-adds of the convs (``course.measure.count_flops``, which
  leaves batch norm out, like the papers).
- G3: the k-fragment structures (series and parallel) use c_k = round(c / √k) channels, so
  k convs of c_k² hold k·c_k² ≈ c² (the 1-fragment FLOPs). Parallel branches all read the block
  input and are summed (``g3_merge="add"``). ``g3_merge="concat"`` is the other reading of
  Appendix Fig. 1: each branch makes c/k channels, concatenated, FLOPs equal without adjusting c.
- G4: a ResNet bottleneck whose input/output has c channels and whose inner width is
  c / ``expansion`` (ResNet's 4). The paper gives no input size for Table 4; we use 56×56 like
  Tables 1–3.
- Table 1's own channel lists hold FLOPs only to 5.1 % (GPU: c1·c2 = 16384 … 15552) and 5.5 %
  (ARM: 1024 … 968); we keep the paper's channels, so G1's FLOPs spread is the paper's.
- Table 2's ARM list pairs c = 180 with g = 8, which 8 does not divide; we use 184 (FLOPs +3.3 %
  against g = 1; 176 would be −5.5 %). Every other G2–G4 row holds FLOPs within 2 %.

Speeds are in the paper's units: GPU batches/s at batch 8, CPU images/s at batch 1 (one thread
by default, like the paper's ARM runs). Times are the median and IQR of
``course.measure.latency`` (the paper reports the mean of 100 runs).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .device import device_name, resolve_device
from .env import quick_mode

__all__ = [
    "GUIDELINES",
    "PAPER_TABLES",
    "PAPER_SOURCE",
    "INPUT_HW",
    "Variant",
    "g1_net",
    "g2_net",
    "g2_channels",
    "g3_channels",
    "g3_net",
    "g4_net",
    "FragmentBlock",
    "Bottleneck",
    "variants",
    "flops_spread",
    "run_guidelines",
    "normalise",
    "paper_speeds",
    "TIMING_NOTES",
    "SCHEMA",
    "compare_with_paper",
    "comparison_table",
    "verdicts",
    "plot_guidelines",
    "validate_results",
    "load_results",
    "save_results",
    "main",
]

GUIDELINES = ("G1", "G2", "G3", "G4")
SCALES = (1, 2, 4)
HARDWARE = ("gpu", "cpu")
TIMINGS = ("eager", "cuda_graph")
SCHEMA = "course.guidelines/1"
BLOCKS = 10
INPUT_HW = {"G1": 56, "G2": 56, "G3": 56, "G4": 56}
BATCH = {"gpu": 8, "cpu": 1}
SPEED_UNIT = {"gpu": "batches/s", "cpu": "images/s"}

PAPER_SOURCE = ("Ma, Zhang, Zheng, Sun, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
                "Design, ECCV 2018, arXiv:1807.11164")
PAPER_HARDWARE = {
    "gpu": "GTX 1080Ti, cuDNN 7.0 (batches/s, batch 8)",
    "cpu": "ARM Snapdragon 810, 1 thread (images/s, batch 1)",
}

TIMING_NOTES = {
    "eager": ("eager: PyTorch launches every conv/BN/ReLU kernel from Python, one after another; on a GPU "
              "the per-kernel launch overhead (microseconds each) is included, as in a plain deployment."),
    "cuda_graph": ("cuda_graph: the whole forward pass is captured once and replayed as one CUDA graph, so "
                   "Python and launch overhead vanish and what remains is the kernels' own time. Small, "
                   "fragmented networks gain most; the gap between the two is the launch overhead."),
}

G3_STRUCTURES = {
    "1-fragment": (1, False),
    "2-fragment-series": (2, False),
    "4-fragment-series": (4, False),
    "2-fragment-parallel": (2, True),
    "4-fragment-parallel": (4, True),
}
G4_SWITCHES = {
    "ReLU + shortcut": (True, True),
    "ReLU, no shortcut": (True, False),
    "shortcut, no ReLU": (False, True),
    "no ReLU, no shortcut": (False, False),
}

# Tables 1–4 of the paper, as printed. "channels" are the ×1 counts: (c1, c2) for G1, c for G2,
# c of the 1-fragment block for G3, c of the unit for G4. "cpu" is the paper's ARM phone
# (Table 1 says ARM, Tables 2–4 say CPU: the same Snapdragon 810).
PAPER_TABLES: dict[str, dict] = {
    "G1": {
        "table": "Table 1",
        "title": "G1: equal channel width minimises MAC",
        "variants": ("1:1", "1:2", "1:6", "1:12"),
        "reference": "1:1",
        "channels": {"gpu": ((128, 128), (90, 180), (52, 312), (36, 432)),
                     "cpu": ((32, 32), (22, 44), (13, 78), (9, 108))},
        "speed": {"gpu": {1: (1480, 1296, 876, 748), 2: (723, 586, 489, 392), 4: (232, 206, 189, 163)},
                  "cpu": {1: (76.2, 72.9, 69.1, 57.6), 2: (21.7, 20.5, 17.9, 15.1), 4: (5.3, 5.1, 4.6, 4.4)}},
    },
    "G2": {
        "table": "Table 2",
        "title": "G2: excessive group convolution increases MAC",
        "variants": ("g=1", "g=2", "g=4", "g=8"),
        "reference": "g=1",
        "channels": {"gpu": (128, 180, 256, 360), "cpu": (64, 90, 128, 180)},
        "speed": {"gpu": {1: (2451, 1725, 1026, 634), 2: (1289, 873, 644, 445), 4: (437, 341, 338, 230)},
                  "cpu": {1: (40.0, 35.0, 32.9, 27.8), 2: (10.2, 9.5, 8.7, 7.5), 4: (2.3, 2.2, 2.1, 1.8)}},
    },
    "G3": {
        "table": "Table 3",
        "title": "G3: network fragmentation reduces parallelism",
        "variants": tuple(G3_STRUCTURES),
        "reference": "1-fragment",
        "channels": {"gpu": 128, "cpu": 64},
        "speed": {"gpu": {1: (2446, 1790, 752, 1537, 691), 2: (1274, 909, 745, 803, 572),
                          4: (434, 336, 349, 320, 292)},
                  "cpu": {1: (40.2, 38.6, 38.4, 33.4, 35.0), 2: (10.1, 10.1, 10.1, 9.1, 8.4),
                          4: (2.3, 2.2, 2.3, 2.2, 2.1)}},
    },
    "G4": {
        "table": "Table 4",
        "title": "G4: element-wise operations are non-negligible",
        "variants": tuple(G4_SWITCHES),
        "reference": "ReLU + shortcut",
        "channels": {"gpu": 32, "cpu": 32},
        "speed": {"gpu": {1: (2427, 2647, 2672, 2842), 2: (2066, 2256, 2121, 2376), 4: (1436, 1735, 1458, 1782)},
                  "cpu": {1: (56.7, 61.9, 57.3, 66.3), 2: (16.9, 18.8, 18.2, 20.2), 4: (5.0, 5.2, 5.1, 5.4)}},
    },
}


# ----------------------------------------------------------------------------- models

def _conv_bn(c_in: int, c_out: int, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 1, bias=False, groups=groups), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _check_positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def g1_net(c1: int, c2: int, blocks: int = BLOCKS) -> nn.Sequential:
    """G1 benchmark: ``blocks`` × (1×1 conv c1→c2, 1×1 conv c2→c1); FLOPs per block 2·hw·c1·c2."""
    for name, v in (("c1", c1), ("c2", c2), ("blocks", blocks)):
        _check_positive(name, v)
    return nn.Sequential(*[nn.Sequential(_conv_bn(c1, c2), _conv_bn(c2, c1)) for _ in range(blocks)])


def g2_net(c: int, groups: int, layers: int = BLOCKS) -> nn.Sequential:
    """G2 benchmark: ``layers`` 1×1 group convs c→c with ``groups`` groups; FLOPs hw·c²/g each."""
    for name, v in (("c", c), ("groups", groups), ("layers", layers)):
        _check_positive(name, v)
    if c % groups:
        raise ValueError(f"c={c} must be divisible by groups={groups}")
    return nn.Sequential(*[_conv_bn(c, c, groups=groups) for _ in range(layers)])


def g2_channels(c: int, groups: int, reference_c: int) -> int:
    """``c`` if ``groups`` divides it, else the neighbouring multiple of ``groups`` whose FLOPs c²/g
    are closest to the g = 1 row's reference_c² (the paper's ARM list has c = 180 with g = 8)."""
    if c % groups == 0:
        return c
    lo = c - c % groups
    return min((lo, lo + groups), key=lambda x: abs(x * x / groups - reference_c ** 2))


class FragmentBlock(nn.Module):
    """G3 block (Appendix Fig. 1 a–e): ``fragments`` 1×1 convs in series or in parallel.

    Parallel branches all read the block input; ``merge="add"`` sums them (each c→c) and
    ``merge="concat"`` stacks them (each c→c/fragments). Many small ops instead of one big one
    is what G3 measures: less parallel work per kernel, more launches and synchronisation.
    """

    def __init__(self, channels: int, fragments: int = 1, parallel: bool = False, merge: str = "add") -> None:
        super().__init__()
        _check_positive("channels", channels)
        _check_positive("fragments", fragments)
        if merge not in ("add", "concat"):
            raise ValueError(f"merge must be 'add' or 'concat', got {merge!r}")
        if parallel and merge == "concat" and channels % fragments:
            raise ValueError(f"channels={channels} must be divisible by fragments={fragments} for merge='concat'")
        self.parallel, self.merge = parallel and fragments > 1, merge
        if not self.parallel:
            self.body = nn.Sequential(*[_conv_bn(channels, channels) for _ in range(fragments)])
        elif merge == "concat":
            self.branches = nn.ModuleList(_conv_bn(channels, channels // fragments) for _ in range(fragments))
        else:
            self.branches = nn.ModuleList(_conv_bn(channels, channels, relu=False) for _ in range(fragments))
            self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.parallel:
            return self.body(x)
        if self.merge == "concat":
            return torch.cat([b(x) for b in self.branches], dim=1)
        out = self.branches[0](x)
        for b in self.branches[1:]:
            out = out + b(x)
        return self.act(out)


def g3_channels(c: int, structure: str, merge: str = "add") -> int:
    """Width of a G3 structure holding the 1-fragment FLOPs hw·c²: round(c/√k) (c for concat)."""
    if structure not in G3_STRUCTURES:
        raise ValueError(f"structure must be one of {list(G3_STRUCTURES)}, got {structure!r}")
    k, parallel = G3_STRUCTURES[structure]
    if parallel and merge == "concat":
        return c
    return int(round(c / math.sqrt(k)))


def g3_net(c: int, structure: str, blocks: int = BLOCKS, merge: str = "add") -> nn.Sequential:
    """G3 benchmark: ``blocks`` fragment blocks; ``c`` is the 1-fragment width (Table 3's c)."""
    _check_positive("c", c)
    _check_positive("blocks", blocks)
    width = g3_channels(c, structure, merge)
    k, parallel = G3_STRUCTURES[structure]
    return nn.Sequential(*[FragmentBlock(width, k, parallel, merge) for _ in range(blocks)])


class Bottleneck(nn.Module):
    """ResNet bottleneck (1×1 → 3×3 → 1×1, c → c/expansion → c) with ReLU and shortcut switchable.

    Removing them changes no parameter and no FLOP counted by fvcore: G4's point is that the
    element-wise work still costs time (memory traffic, extra kernels).
    """

    def __init__(self, channels: int, relu: bool = True, shortcut: bool = True, expansion: int = 4) -> None:
        super().__init__()
        _check_positive("channels", channels)
        _check_positive("expansion", expansion)
        if channels % expansion:
            raise ValueError(f"channels={channels} must be divisible by expansion={expansion}")
        mid = channels // expansion
        self.relu, self.shortcut = relu, shortcut
        self.conv1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(x) if self.relu else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._act(self.bn1(self.conv1(x)))
        out = self._act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut:
            out = out + x
        return self._act(out)


def g4_net(c: int, relu: bool = True, shortcut: bool = True, units: int = BLOCKS, expansion: int = 4) -> nn.Sequential:
    """G4 benchmark: ``units`` bottleneck units of width ``c`` (Table 4's "channels in unit")."""
    _check_positive("units", units)
    return nn.Sequential(*[Bottleneck(c, relu, shortcut, expansion) for _ in range(units)])


# ----------------------------------------------------------------------------- experiments

@dataclass(frozen=True)
class Variant:
    """One row × one scale of a paper table: what to build and how big its input is."""

    guideline: str
    name: str
    scale: int
    channels: tuple[int, ...]
    in_channels: int
    hw: int
    builder: Callable[[], nn.Module] = field(repr=False, compare=False)

    def build(self) -> nn.Module:
        return self.builder().eval()

    def input_size(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, self.hw, self.hw)


def _check_guideline(guideline: str) -> None:
    if guideline not in GUIDELINES:
        raise ValueError(f"guideline must be one of {list(GUIDELINES)}, got {guideline!r}")


def _check_hardware(channel_list: str) -> None:
    if channel_list not in HARDWARE:
        raise ValueError(f"channel_list must be 'gpu' or 'cpu' (the paper's GPU or ARM/CPU lists), "
                         f"got {channel_list!r}")


def variants(guideline: str, scale: int = 1, channel_list: str = "cpu", g3_merge: str = "add",
             g4_expansion: int = 4, hw: int | None = None) -> list[Variant]:
    """The variants of one experiment at one scale, in the paper's row order (reference first).

    ``hw`` overrides the input size (default ``INPUT_HW``, 56); every layer keeps the map size,
    so FLOPs scale exactly with hw², which lets tests count FLOPs on small maps.
    """
    _check_guideline(guideline)
    if hw is not None:
        _check_positive("hw", hw)
    _check_hardware(channel_list)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    if g3_merge not in ("add", "concat"):
        raise ValueError(f"g3_merge must be 'add' or 'concat', got {g3_merge!r}")
    table = PAPER_TABLES[guideline]
    hw = hw or INPUT_HW[guideline]
    out = []
    for i, name in enumerate(table["variants"]):
        if guideline == "G1":
            c1, c2 = (scale * c for c in table["channels"][channel_list][i])
            out.append(Variant("G1", name, scale, (c1, c2), c1, hw, lambda c1=c1, c2=c2: g1_net(c1, c2)))
        elif guideline == "G2":
            g = 2 ** i
            c = g2_channels(scale * table["channels"][channel_list][i], g, scale * table["channels"][channel_list][0])
            out.append(Variant("G2", name, scale, (c,), c, hw, lambda c=c, g=g: g2_net(c, g)))
        elif guideline == "G3":
            c = scale * table["channels"][channel_list]
            w = g3_channels(c, name, g3_merge)
            out.append(Variant("G3", name, scale, (w,), w, hw,
                               lambda c=c, name=name: g3_net(c, name, merge=g3_merge)))
        else:
            c = scale * table["channels"][channel_list]
            relu, shortcut = G4_SWITCHES[name]
            out.append(Variant("G4", name, scale, (c, c // g4_expansion), c, hw,
                               lambda c=c, r=relu, s=shortcut: g4_net(c, r, s, expansion=g4_expansion)))
    return out


def flops_spread(flops: Iterable[float]) -> float:
    """(max − min) / max of FLOPs inside one experiment: how well FLOPs are held fixed."""
    flops = list(flops)
    if not flops or max(flops) <= 0:
        raise ValueError(f"flops must be a non-empty list of positive numbers, got {flops!r}")
    return (max(flops) - min(flops)) / max(flops)


# ----------------------------------------------------------------------------- running

def _speed_fields(times_ms: Sequence[float], batch: int, hardware: str) -> dict:
    """Median and IQR of the pooled block times, and the speed in the paper's unit with its IQR band."""
    q1, median, q3 = (float(v) for v in np.percentile(times_ms, [25, 50, 75]))
    per = batch if hardware == "cpu" else 1
    speed = lambda t: per * 1000.0 / t  # noqa: E731
    return {
        "median_ms": median, "iqr_ms": q3 - q1, "q1_ms": q1, "q3_ms": q3, "n": len(times_ms),
        "speed": speed(median), "speed_lo": speed(q3), "speed_hi": speed(q1),
    }


def _resolve_device(device) -> tuple[torch.device, list[str]]:
    dev, note = resolve_device(device)
    skipped = "the GPU timings (eager and CUDA-graph replay) were skipped"
    if note:
        return dev, [f"{note}; {skipped}"]
    if dev.type == "cpu" and not torch.cuda.is_available():
        return dev, [f"no GPU on this machine: ran on the CPU; {skipped}"]
    return dev, []


def _cpu_model() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): says how busy the machine was."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cudnn_version() -> int | None:
    try:
        return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # pragma: no cover - depends on the CUDA install
        return None


def run_guidelines(
    guidelines: Sequence[str] = GUIDELINES,
    device: str = "auto",
    scales: Sequence[int] = SCALES,
    quick: bool | None = None,
    progress: bool = True,
    channel_list: str | None = None,
    min_run_time: float | None = None,
    threads: int | None = None,
    rounds: int | None = None,
    g3_merge: str = "add",
    g4_expansion: int = 4,
) -> dict:
    """Build, count and time every variant of the chosen experiments; a JSON-ready dict.

    ``channel_list`` defaults to the paper's GPU lists on CUDA and the ARM/CPU lists on CPU.
    ``threads`` defaults to 1 on the CPU, like the paper's single-thread ARM measurements (and
    robust on a shared machine, where two OpenMP threads fighting for busy cores stall).
    The variants of one table column are timed in ``rounds`` interleaved rounds (A, B, C, A, B,
    C, ...; default 2), each for ``min_run_time / rounds`` seconds (default 1 s per variant), and
    the block times pooled: a drift in machine load then hits every variant alike instead of
    biasing the ratios, and the IQR includes the drift. Quick mode (``quick=None`` follows
    ``COURSE_QUICK``) keeps only the smallest scale, one round and 0.1 s per variant; numbers
    from it are not meaningful. On a GPU each point is
    timed twice: eager (every kernel launched from Python) and CUDA-graph replay (the kernels
    alone), with cuDNN benchmarking on as in the paper.
    """
    from tqdm.auto import tqdm

    from .measure import count_flops, count_params, latency

    guidelines = tuple(guidelines)
    bad = [g for g in guidelines if g not in GUIDELINES]
    if not guidelines or bad:
        raise ValueError(f"guidelines must be a non-empty subset of {list(GUIDELINES)}, got {list(guidelines)!r}")
    scales = tuple(sorted(set(scales)))
    if not scales or any(s not in SCALES for s in scales):
        raise ValueError(f"scales must be a non-empty subset of {list(SCALES)}, got {list(scales)!r}")
    if channel_list is not None:
        _check_hardware(channel_list)
    if min_run_time is not None and not (isinstance(min_run_time, (int, float)) and min_run_time > 0):
        raise ValueError(f"min_run_time must be a positive number of seconds, got {min_run_time!r}")
    if threads is not None:
        _check_positive("threads", threads)
    if rounds is not None:
        _check_positive("rounds", rounds)
    if g3_merge not in ("add", "concat"):
        raise ValueError(f"g3_merge must be 'add' or 'concat', got {g3_merge!r}")
    if g4_expansion not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"g4_expansion must divide G4's smallest width 32 (1, 2, 4, 8, 16 or 32), got {g4_expansion!r}")
    dev, notes = _resolve_device(device)

    quick = quick_mode() if quick is None else bool(quick)
    if quick:
        scales = scales[:1]
    min_run_time = min_run_time or (0.1 if quick else 1.0)
    rounds = rounds or (1 if quick else 2)
    hardware = "gpu" if dev.type == "cuda" else "cpu"
    channel_list = channel_list or hardware
    batch = BATCH[hardware]
    timings = ("eager", "cuda_graph") if dev.type == "cuda" else ("eager",)

    old_threads, old_bench = torch.get_num_threads(), torch.backends.cudnn.benchmark
    if threads is None:
        threads = 1 if dev.type == "cpu" else old_threads
    torch.set_num_threads(threads)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    load_start = _load_average()
    name = device_name(dev)
    plan = [(g, s) for g in guidelines for s in scales]
    total = rounds * sum(len(PAPER_TABLES[g]["variants"]) for g, _ in plan)
    out_g: dict[str, dict] = {}
    bars: list = []
    try:
        bar = tqdm(total=total, disable=not progress, desc="guidelines", unit="variant")
        bars.append(bar)
        for g in guidelines:
            table = PAPER_TABLES[g]
            points = []
            for s in scales:
                vs = variants(g, s, channel_list, g3_merge, g4_expansion)
                models = [v.build().to(dev) for v in vs]
                group = [{
                    "variant": v.name, "scale": s, "channels": list(v.channels),
                    "input_size": list(v.input_size(batch)),
                    "flops": int(count_flops(m, v.input_size(1))), "params": int(count_params(m)),
                    "timing": {},
                } for v, m in zip(vs, models)]
                times = {(v.name, t): [] for v in vs for t in timings}
                result_notes: dict = {}
                for r in range(rounds):
                    for v, m in zip(vs, models):
                        bar.set_postfix_str(f"{g} ×{s} {v.name}" + (f" (round {r + 1}/{rounds})" if rounds > 1 else ""))
                        for t in timings:
                            res = latency(m, v.input_size(batch), device=dev, cuda_graph=(t == "cuda_graph"),
                                          min_run_time=min_run_time / rounds, threads=threads)
                            times[(v.name, t)].extend(res.times_ms)
                            if res.note:
                                result_notes[(v.name, t)] = res.note
                        bar.update(1)
                for v, point in zip(vs, group):
                    for t in timings:
                        point["timing"][t] = _speed_fields(times[(v.name, t)], batch, hardware)
                        if (v.name, t) in result_notes:
                            point["timing"][t]["note"] = result_notes[(v.name, t)]
                points.extend(group)
                del models
            spread = {str(s): flops_spread(p["flops"] for p in points if p["scale"] == s) for s in scales}
            out_g[g] = {
                "title": table["title"], "paper_table": table["table"], "variants": list(table["variants"]),
                "reference": table["reference"], "input_hw": INPUT_HW[g], "flops_spread": spread, "points": points,
            }
    finally:
        for bar in bars:
            bar.close()
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_bench

    meta = {
        "device": dev.type,
        "device_name": name,
        "cpu_model": _cpu_model(),
        "torch_version": torch.__version__,
        "cudnn_version": _cudnn_version() if dev.type == "cuda" else None,
        "cudnn_benchmark": dev.type == "cuda",
        "threads": threads,
        "batch": batch,
        "speed_unit": SPEED_UNIT[hardware],
        "hardware": hardware,
        "channel_list": channel_list,
        "scales": list(scales),
        "timings": list(timings),
        "timing_notes": {t: TIMING_NOTES[t] for t in timings},
        "min_run_time_s": float(min_run_time),
        "rounds": rounds,
        "statistic": "median and IQR of torch.utils.benchmark block times pooled over interleaved rounds",
        "quick": quick,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "g3_merge": g3_merge,
        "g4_expansion": g4_expansion,
        "flops": "fvcore multiply-adds of the convs at batch 1 (course.measure.count_flops; BN and ReLU not counted)",
        "paper": PAPER_SOURCE,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "load_average_1min": {"start": load_start, "end": _load_average()},
        "notes": notes + ([f"QUICK MODE: smallest scale only, {min_run_time:g} s per point; numbers not meaningful"]
                          if quick else []),
    }
    return {"schema": SCHEMA, "meta": meta, "guidelines": out_g}


# ----------------------------------------------------------------------------- schema

_META_TYPES = {
    "device": str, "device_name": str, "torch_version": str, "threads": int, "batch": int, "speed_unit": str,
    "hardware": str, "channel_list": str, "scales": list, "timings": list, "min_run_time_s": (int, float),
    "quick": bool, "rounds": int, "date": str, "wall_time_s": (int, float), "notes": list,
}
_TIMING_TYPES = {"median_ms": (int, float), "iqr_ms": (int, float), "q1_ms": (int, float), "q3_ms": (int, float),
                 "speed": (int, float), "speed_lo": (int, float), "speed_hi": (int, float), "n": int}


def _need(d, key, types, where):
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"results: missing {where}.{key}")
    if types is not None and (not isinstance(d[key], types) or (types is int and isinstance(d[key], bool))):
        raise ValueError(f"results: {where}.{key} must be {types}, got {d[key]!r}")
    return d[key]


def validate_results(results: dict) -> dict:
    """Check a results dict against the schema; returns it, or raises ValueError saying where."""
    if not isinstance(results, dict):
        raise ValueError(f"results must be a dict, got {type(results).__name__}")
    if results.get("schema") != SCHEMA:
        raise ValueError(f"results: schema must be {SCHEMA!r}, got {results.get('schema')!r}")
    meta = _need(results, "meta", dict, "")
    for k, t in _META_TYPES.items():
        _need(meta, k, t, "meta")
    _need(meta, "cudnn_version", (int, type(None)), "meta")
    if meta["hardware"] not in HARDWARE or meta["channel_list"] not in HARDWARE:
        raise ValueError(f"results: meta.hardware and meta.channel_list must be in {HARDWARE}")
    if not meta["timings"] or any(t not in TIMINGS for t in meta["timings"]):
        raise ValueError(f"results: meta.timings must be a non-empty subset of {TIMINGS}, got {meta['timings']!r}")
    gs = _need(results, "guidelines", dict, "")
    if not gs or any(g not in GUIDELINES for g in gs):
        raise ValueError(f"results: guidelines must be a non-empty subset of {GUIDELINES}, got {list(gs)!r}")
    for g, block in gs.items():
        where = f"guidelines.{g}"
        names = _need(block, "variants", list, where)
        if names != list(PAPER_TABLES[g]["variants"]):
            raise ValueError(f"results: {where}.variants must be {list(PAPER_TABLES[g]['variants'])}, got {names!r}")
        _need(block, "reference", str, where)
        _need(block, "flops_spread", dict, where)
        points = _need(block, "points", list, where)
        seen = set()
        for i, p in enumerate(points):
            pw = f"{where}.points[{i}]"
            name = _need(p, "variant", str, pw)
            scale = _need(p, "scale", int, pw)
            if name not in names or scale not in meta["scales"]:
                raise ValueError(f"results: {pw} has variant {name!r} / scale {scale!r} not in the run")
            seen.add((name, scale))
            _need(p, "channels", list, pw)
            _need(p, "input_size", list, pw)
            _need(p, "flops", int, pw)
            _need(p, "params", int, pw)
            timing = _need(p, "timing", dict, pw)
            for t in meta["timings"]:
                tt = _need(timing, t, dict, f"{pw}.timing")
                for k, ty in _TIMING_TYPES.items():
                    _need(tt, k, ty, f"{pw}.timing.{t}")
        missing = [(n, s) for n in names for s in meta["scales"] if (n, s) not in seen]
        if missing:
            raise ValueError(f"results: {where} lacks points {missing}")
    return results


def save_results(results: dict, path: str | Path) -> Path:
    """Validate and write results as indented JSON."""
    path = Path(path)
    validate_results(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def load_results(path: str | Path) -> dict:
    """Read a results JSON file written by ``run_guidelines``/the CLI and check its schema."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing results JSON file, got {str(path)!r}")
    return validate_results(json.loads(path.read_text()))


# ----------------------------------------------------------------------------- comparing

def normalise(speeds: dict[str, float], reference: str) -> dict[str, float]:
    """Each speed divided by the reference row's speed, so different hardware compares."""
    if reference not in speeds:
        raise ValueError(f"reference must be one of {list(speeds)}, got {reference!r}")
    ref = speeds[reference]
    if not ref or ref <= 0:
        raise ValueError(f"the reference speed must be positive, got {reference!r} = {ref!r}")
    return {k: v / ref for k, v in speeds.items()}


def paper_speeds(guideline: str, hardware: str, scale: int) -> dict[str, float]:
    """One column of the paper's table as {variant: speed}."""
    _check_guideline(guideline)
    _check_hardware(hardware)
    t = PAPER_TABLES[guideline]
    return dict(zip(t["variants"], t["speed"][hardware][scale]))


def _check_timing(results: dict, timing: str) -> None:
    if timing not in results["meta"]["timings"]:
        raise ValueError(f"timing must be one of {results['meta']['timings']} for these results, got {timing!r}")


def compare_with_paper(results: dict, timing: str = "eager") -> list[dict]:
    """Ours vs the paper side by side, both normalised to the paper's reference row.

    The paper column is the one whose channel list we ran (GPU lists → GTX 1080Ti column,
    ARM/CPU lists → Snapdragon 810 column). ``ours_lo``/``ours_hi`` come from the IQR of our
    times divided by the reference's median.
    """
    validate_results(results)
    _check_timing(results, timing)
    hw = results["meta"]["channel_list"]
    rows = []
    for g, block in results["guidelines"].items():
        ref = block["reference"]
        for s in results["meta"]["scales"]:
            pts = {p["variant"]: p for p in block["points"] if p["scale"] == s}
            ours = {n: p["timing"][timing] for n, p in pts.items()}
            ref_speed = ours[ref]["speed"]
            paper = normalise(paper_speeds(g, hw, s), ref)
            for n in block["variants"]:
                o = ours[n]
                rows.append({
                    "guideline": g, "scale": s, "variant": n, "channels": pts[n]["channels"], "flops": pts[n]["flops"],
                    "ours_speed": o["speed"], "ours_norm": o["speed"] / ref_speed,
                    "ours_lo": o["speed_lo"] / ref_speed, "ours_hi": o["speed_hi"] / ref_speed,
                    "paper_speed": paper_speeds(g, hw, s)[n], "paper_norm": paper[n],
                })
    return rows


def comparison_table(results: dict, timing: str = "eager") -> str:
    """A Markdown table of ``compare_with_paper`` with the measurement conditions on top."""
    m = results["meta"]
    cpu = f" [{m['cpu_model']}]" if m.get("cpu_model") and m["device"] == "cpu" else ""
    head = (f"{m['device_name']}{cpu} | torch {m['torch_version']} | {m['threads']} threads | batch {m['batch']} | "
            f"{m['speed_unit']} | timing: {timing} | channel lists: paper {m['channel_list'].upper()} | "
            f"paper column: {PAPER_HARDWARE[m['channel_list']]}" + (" | QUICK MODE" if m["quick"] else ""))
    lines = [head, "",
             f"| guideline | scale | variant | channels | MFLOPs | ours ({m['speed_unit']}) | ours norm. [IQR] "
             f"| paper | paper norm. |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in compare_with_paper(results, timing):
        lines.append(f"| {r['guideline']} | ×{r['scale']} | {r['variant']} | {tuple(r['channels'])} | "
                     f"{r['flops'] / 1e6:.1f} | {r['ours_speed']:.1f} | {r['ours_norm']:.2f} "
                     f"[{r['ours_lo']:.2f}–{r['ours_hi']:.2f}] | {r['paper_speed']:g} | {r['paper_norm']:.2f} |")
    return "\n".join(lines)


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _is(items: Sequence[str]) -> str:
    return "is" if len(items) == 1 else "are"


def _rel_half_iqr(t: dict) -> float:
    return (t["speed_hi"] - t["speed_lo"]) / (2 * t["speed"])


def verdicts(results: dict, timing: str = "eager", min_noise: float = 0.03) -> dict[str, str]:
    """One plain sentence per guideline, computed from the measured numbers and the paper's.

    Two speeds are "within noise" when they differ by less than the sum of their relative
    half-IQRs, or less than ``min_noise`` (a floor for run-to-run drift on a shared machine).
    The paper's "fastest" is the top of its column (ties kept). The last clause compares the
    last variant of each table (the most extreme one) to the reference, ours vs the paper's.
    """
    validate_results(results)
    _check_timing(results, timing)
    if not (isinstance(min_noise, (int, float)) and 0 <= min_noise < 1):
        raise ValueError(f"min_noise must be a fraction in [0, 1), got {min_noise!r}")
    m = results["meta"]
    hw = m["channel_list"]
    where = "on this GPU" if m["hardware"] == "gpu" else "on this CPU"
    paper_hw = "GPU" if hw == "gpu" else "ARM"
    out = {}
    for g, block in results["guidelines"].items():
        ref, names = block["reference"], block["variants"]
        clauses: dict[str, list[str]] = {}
        extreme = names[-1]
        ratios_ours, ratios_paper = [], []
        for s in m["scales"]:
            t = {p["variant"]: p["timing"][timing] for p in block["points"] if p["scale"] == s}
            best = max(names, key=lambda n: t[n]["speed"])
            ties = [n for n in names if n != best and
                    1 - t[n]["speed"] / t[best]["speed"] <= max(min_noise, _rel_half_iqr(t[n]) + _rel_half_iqr(t[best]))]
            pspeed = paper_speeds(g, hw, s)
            ptop = max(pspeed.values())
            paper_best = [n for n in names if pspeed[n] == ptop]
            paper_said = (f"as the paper found on its {paper_hw}" if len(paper_best) == 1 else
                          f"one of the paper's {paper_hw} fastest, where {_join(paper_best)} tie")
            close_best = [n for n in paper_best if n in ties]
            if best in paper_best and not ties:
                c = f"{best} is fastest, {paper_said}"
            elif best in paper_best:
                c = f"{best} is fastest, {paper_said}, but {_join(ties)} {_is(ties)} within noise of it"
            elif close_best:
                c = (f"{best} is nominally fastest, and {_join(close_best)} (the paper's {paper_hw} fastest) "
                     f"{_is(close_best)} within noise of it")
            else:
                c = (f"{best} is fastest, unlike the paper's {paper_hw} where {_join(paper_best)} "
                     f"{'was' if len(paper_best) == 1 else 'tied'}; {paper_best[0]} runs at "
                     f"{t[paper_best[0]]['speed'] / t[best]['speed']:.2f}× of {best} here")
            clauses.setdefault(c, []).append(f"×{s}")
            ratios_ours.append(f"{t[extreme]['speed'] / t[ref]['speed']:.2f}×")
            ratios_paper.append(f"{pspeed[extreme] / pspeed[ref]:.2f}×")
        body = "; ".join(f"at {_join(sc)}, {c}" for c, sc in clauses.items())
        scales_txt = _join([f"×{s}" for s in m["scales"]])
        out[g] = (f"{g} {where} ({m['device_name']}, batch {m['batch']}, {timing}): {body}. "
                  f"{extreme} runs at {' / '.join(ratios_ours)} the speed of {ref} at {scales_txt} "
                  f"(paper {paper_hw}: {' / '.join(ratios_paper)}).")
    return out


# ----------------------------------------------------------------------------- plotting

def plot_guidelines(results: dict, timing: str = "eager", guidelines: Sequence[str] | None = None, axes=None):
    """Per guideline, our normalised speeds (bars with IQR error bars) beside the paper's (hatched)."""
    import matplotlib.pyplot as plt

    rows = compare_with_paper(results, timing)
    gs = list(guidelines or results["guidelines"])
    bad = [g for g in gs if g not in results["guidelines"]]
    if bad:
        raise ValueError(f"guidelines must be among {list(results['guidelines'])}, got {bad!r}")
    if axes is None:
        ncols = min(2, len(gs))
        nrows = math.ceil(len(gs) / ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
        axes = grid.ravel()[: len(gs)]
        for extra in grid.ravel()[len(gs):]:
            extra.remove()
    else:
        axes = np.atleast_1d(axes)
        if len(axes) != len(gs):
            raise ValueError(f"axes must hold {len(gs)} axes (one per guideline), got {len(axes)}")
        fig = axes[0].figure
    m = results["meta"]
    scales = m["scales"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / (2 * len(scales))
    for ax, g in zip(axes, gs):
        names = results["guidelines"][g]["variants"]
        x = np.arange(len(names))
        for j, s in enumerate(scales):
            r = {row["variant"]: row for row in rows if row["guideline"] == g and row["scale"] == s}
            ours = np.array([r[n]["ours_norm"] for n in names])
            err = np.array([[r[n]["ours_norm"] - r[n]["ours_lo"] for n in names],
                            [r[n]["ours_hi"] - r[n]["ours_norm"] for n in names]])
            paper = [r[n]["paper_norm"] for n in names]
            off = (2 * j - len(scales) + 0.5) * width
            ax.bar(x + off, ours, width, yerr=err, capsize=2, color=colors[j % len(colors)], label=f"ours ×{s}")
            ax.bar(x + off + width, paper, width, color="white", edgecolor=colors[j % len(colors)], hatch="//",
                   label=f"paper ×{s}")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{g} ({PAPER_TABLES[g]['table']})", fontsize=10)
        ax.set_ylabel(f"speed / {results['guidelines'][g]['reference']}")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Ours ({m['device_name']}, batch {m['batch']}, {timing}) vs paper "
                 f"({PAPER_HARDWARE[m['channel_list']]})" + (" — QUICK MODE" if m["quick"] else ""), fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course.guidelines --device cpu --out results.json [--quick] [--guidelines G1 G3]``."""
    p = argparse.ArgumentParser(prog="python -m course.guidelines", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--out", required=True, help="results JSON path")
    p.add_argument("--quick", action="store_true", help="smallest scale only, short timing (also COURSE_QUICK=1)")
    p.add_argument("--guidelines", nargs="+", choices=GUIDELINES, default=list(GUIDELINES))
    p.add_argument("--scales", nargs="+", type=int, choices=SCALES, default=list(SCALES))
    p.add_argument("--channel-list", choices=HARDWARE, default=None,
                   help="paper channel list to use (default: gpu on CUDA, cpu on CPU)")
    p.add_argument("--min-run-time", type=float, default=None, help="seconds of timing per point")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 on CPU, as the paper's ARM runs)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds per column (default 2; quick 1)")
    p.add_argument("--plot", default=None, help="also save the ours-vs-paper figure here (PNG/SVG/PDF)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    results = run_guidelines(a.guidelines, a.device, a.scales, quick=True if a.quick else None,
                             progress=not a.no_progress, channel_list=a.channel_list,
                             min_run_time=a.min_run_time, threads=a.threads, rounds=a.rounds)
    path = save_results(results, a.out)
    for note in results["meta"]["notes"]:
        print(f"NOTE: {note}")
    for t in results["meta"]["timings"]:
        print(TIMING_NOTES[t])
        print(comparison_table(results, t))
        print()
        for sentence in verdicts(results, t).values():
            print(sentence)
        print()
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        for t in results["meta"]["timings"]:
            plot = Path(a.plot)
            target = plot if t == "eager" else plot.with_name(f"{plot.stem}_{t}{plot.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            plot_guidelines(results, t).savefig(target, dpi=120)
            print(f"wrote {target}")
    print(f"wrote {path} ({results['meta']['wall_time_s']:.1f} s of measuring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

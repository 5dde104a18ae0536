"""Build, count and time every variant of the chosen experiments into a results dict."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..device import device_name, resolve_device
from ..env import quick_mode
from .experiments import flops_spread, variants
from ..validate import check_int
from .paper import BATCH, GUIDELINES, INPUT_HW, PAPER_SOURCE, PAPER_TABLES, SCALES, SPEED_UNIT, _check_hardware
from .schema import SCHEMA

TIMING_NOTES = {
    "eager": ("eager: PyTorch launches every conv/BN/ReLU kernel from Python, one after another; on a GPU "
              "the per-kernel launch overhead (microseconds each) is included, as in a plain deployment."),
    "cuda_graph": ("cuda_graph: the whole forward pass is captured once and replayed as one CUDA graph, so "
                   "Python and launch overhead vanish and what remains is the kernels' own time. Small, "
                   "fragmented networks gain most; the gap between the two is the launch overhead."),
}


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

    from ..measure import count_flops, count_params, latency

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
        check_int("threads", threads)
    if rounds is not None:
        check_int("rounds", rounds)
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

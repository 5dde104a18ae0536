"""The results file: its schema, checked on every save and load."""

from __future__ import annotations

import json
from pathlib import Path

from .paper import GUIDELINES, HARDWARE, PAPER_TABLES

SCHEMA = "course.guidelines/1"
TIMINGS = ("eager", "cuda_graph")

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

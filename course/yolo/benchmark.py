"""Measuring trained detectors, and the recorded reference run they are compared with.

Chapter 6 and ``benchmarks/yolo_full.py`` both measure a detector with ``measure_detector`` and
read the reference JSON the benchmark writes (``results/yolo_full_cpu.json``) with
``load_reference``/``reference_entries``, so the notebook's table and the recorded one are made
by the same code.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..measure import count_flops, count_params
from ..tables import text_table
from . import export as E

__all__ = ["DETECTORS", "REFERENCE_PATH", "best_epoch", "measure_detector", "comparison_entries", "deployment_rows",
           "format_deployment", "load_reference", "reference_entries", "reference_figure", "reference_meta"]

# The three detectors chapter 6 trains and compares: stock YOLOv5n and its two backbone swaps.
DETECTORS = {
    "YOLOv5n": "yolov5n.yaml",
    "MobileNetV3-Small": "yolov5n-mobilenetv3small.yaml",
    "ShuffleNetV2": "yolov5n-shufflenetv2.yaml",
}
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "results" / "yolo_full_cpu.json"


# --------------------------------------------------------------------------- measuring and comparing


def best_epoch(result) -> dict:
    """The epoch row a run keeps as best: the highest fitness (0.1·mAP@0.5 + 0.9·mAP@0.5:0.95)."""
    rows = result.history
    return max(rows, key=lambda r: r["fitness"]) if rows else {}


def measure_detector(model, sizes=(320, 640), min_run_time: float | None = None) -> dict:
    """Params, GFLOPs at 640 (YOLOv5's convention: 2 × multiply-adds) and CPU (and GPU) latency at ``sizes``.
    """
    model = copy.deepcopy(model).cpu().eval()
    out = dict(params=count_params(model), gflops=2 * count_flops(E.DecodedOutput(model), (1, 3, 640, 640)) / 1e9,
               latency={})
    for s in sizes:
        r = E.torch_latency(model, s, device="cpu", min_run_time=min_run_time)
        out[f"cpu_ms_{s}"] = r.median_ms
        out["latency"][f"cpu_{s}"] = r
    if torch.cuda.is_available():
        r = E.torch_latency(model, 640, device="cuda", min_run_time=min_run_time, cuda_graph=True)
        out["gpu_ms_640"] = r.median_ms
        out["latency"]["gpu_640"] = r
    return out


def comparison_entries(results: dict, measured: dict) -> dict:
    """``{name: row}`` for ``compare.comparison_rows`` from training results and ``measure_detector`` dicts."""
    entries = {}
    for name, res in results.items():
        best = best_epoch(res)
        m = measured[name]
        entries[name] = dict(params=m["params"], gflops=m["gflops"], cpu_ms_320=m.get("cpu_ms_320"),
                             cpu_ms_640=m.get("cpu_ms_640"), gpu_ms_640=m.get("gpu_ms_640"),
                             train_s=res.wall_time_s, map50=best.get("map50"), map=best.get("map"))
    return entries


def deployment_rows(models: dict, out_dir, imgsz: int = 320, min_run_time: float | None = None,
                    opset: int = 18, dynamo: bool = True) -> list[dict]:
    """Export each model to ONNX, assert ONNX Runtime equals PyTorch, time both on the CPU (batch 1)."""
    rows = []
    for name, model in models.items():
        model = copy.deepcopy(model).cpu().eval()
        path = E.export_onnx(model, Path(out_dir) / f"{name}.onnx", imgsz=imgsz, opset=opset, dynamo=dynamo)
        session = E.onnx_session(path)
        check = E.check_onnx(model, session, imgsz=imgsz)
        if not check.ok:
            raise AssertionError(f"{name}: {check}")
        rows.append(dict(name=name, path=path, check=check, size_mb=path.stat().st_size / 2**20,
                         torch=E.torch_latency(model, imgsz, min_run_time=min_run_time),
                         onnx=E.onnx_latency(session, imgsz, min_run_time=min_run_time)))
    return rows


def format_deployment(rows: list[dict]) -> str:
    """``deployment_rows`` as a table: file size, export error, PyTorch and ONNX Runtime latency."""
    table = text_table(
        [{"name": r["name"], "size_mb": r["size_mb"], "diff": r["check"].max_abs_diff, "torch": r["torch"].median_ms,
          "onnx": r["onnx"].median_ms, "speedup": r["torch"].median_ms / r["onnx"].median_ms} for r in rows],
        {"name": "detector", "size_mb": "ONNX MB", "diff": "max|diff|", "torch": "PyTorch ms", "onnx": "ORT ms",
         "speedup": "ORT speed-up"},
        formats={"size_mb": "{:.1f}", "diff": "{:.1e}", "torch": "{:.1f}", "onnx": "{:.1f}", "speedup": "{:.2f}×"})
    if not rows:
        return table
    t = rows[0]["torch"]
    return (f"{table}\n(CPU, {t.threads} threads, batch {t.batch}, {t.dtype}, torch {t.torch_version}; "
            "ORT with the same thread count)")


# --------------------------------------------------------------------------- the reference run

# reference JSON key (written by benchmarks/yolo_full.py) -> comparison_rows key
_REFERENCE_KEYS = dict(params="params", gflops="gflops", cpu_ms_320="cpu_ms_320", cpu_ms_640="cpu_ms_640",
                       gpu_ms_640="gpu_ms_640", train_time_s="train_s", map50="map50", map="map")
_REFERENCE_REQUIRED = ("name", "params", "train_time_s", "map50", "map")


def load_reference(path=None) -> dict | None:
    """The recorded full run (``results/yolo_full_cpu.json``), or None when it has not been produced yet."""
    path = Path(path) if path is not None else REFERENCE_PATH
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def reference_entries(ref: dict) -> dict:
    """``{name: row}`` for ``comparison_rows`` from a reference JSON (``{"meta", "models": [...]}``)."""
    models = ref.get("models") if isinstance(ref, dict) else None
    if not isinstance(models, list):
        raise ValueError(f"reference: expected a dict with a 'models' list (benchmarks/yolo_full.py), "
                         f"got {type(models).__name__ if isinstance(ref, dict) else type(ref).__name__}")
    entries = {}
    for i, m in enumerate(models):
        missing = [k for k in _REFERENCE_REQUIRED if m.get(k) is None]
        if missing:
            raise ValueError(f"reference: models[{i}] lacks {missing}; has {sorted(m)}")
        entries[m["name"]] = {ours: m.get(theirs) for theirs, ours in _REFERENCE_KEYS.items()}
    return entries


def reference_figure(ref: dict):
    """Training loss and val mAP@0.5 per epoch of every detector in a reference JSON, titled as the reference."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for m in ref["models"]:
        h = m["history"]
        a.plot([r["epoch"] + 1 for r in h], [r["loss"] for r in h], label=m["name"])
        b.plot([r["epoch"] + 1 for r in h], [r["map50"] for r in h], label=f"{m['name']} ({m['map50']:.3f})")
    a.set(xlabel="epoch", ylabel="train loss (box + obj + cls)", title="training loss")
    b.axhline(0.9, color="grey", lw=0.8, ls="--")
    b.set(xlabel="epoch", ylabel="val mAP@0.5", ylim=(0, 1), title="val mAP@0.5 (EMA weights)")
    a.legend()
    b.legend(loc="lower right")
    meta = ref["meta"]
    fig.suptitle(f"REFERENCE run: shapes, {meta['recipe']['imgsz']} px, {meta['device']}, "
                 f"torch {meta['torch_version']}, {meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    return fig


def reference_meta(ref: dict) -> str:
    meta = ref.get("meta", ref)
    keys = ("device", "device_name", "cpu", "threads", "torch", "torch_version", "date", "recipe", "python")
    return ", ".join(f"{k}: {meta[k]}" for k in keys if k in meta and not isinstance(meta[k], (dict, list))) or \
        "(no metadata recorded)"

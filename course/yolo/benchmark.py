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

__all__ = ["DETECTORS", "REFERENCE_PATH", "SCHEMA", "best_epoch", "measure_detector", "comparison_entries",
           "deployment_rows", "format_deployment", "load_reference", "reference_status", "reference_entries",
           "reference_figure", "reference_meta", "reference_duration", "summarize_runs"]

# The three detectors chapter 6 trains and compares: stock YOLOv5n and its two backbone swaps.
DETECTORS = {
    "YOLOv5n": "yolov5n.yaml",
    "MobileNetV3-Small": "yolov5n-mobilenetv3small.yaml",
    "ShuffleNetV2": "yolov5n-shufflenetv2.yaml",
}
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "results" / "yolo_full_cpu.json"
SCHEMA = 2  # reference JSON: several seeds per detector, scored on the test split
_ACCURACY = ("map50", "map", "coco_map50", "coco_map")


# --------------------------------------------------------------------------- measuring and comparing


def best_epoch(result) -> dict:
    """The epoch row a run keeps as best: the highest fitness (0.1·mAP@0.5 + 0.9·mAP@0.5:0.95) on val."""
    rows = result.history
    return max(rows, key=lambda r: r["fitness"]) if rows else {}


def measure_detector(model, imgsz: int, min_run_time: float | None = None) -> dict:
    """Params, GFLOPs (YOLOv5's convention: 2 × multiply-adds) at ``imgsz`` and at 640, batch-1 latency at ``imgsz``.

    Latency is timed at the size the detector was trained and scored at, so cost and accuracy
    belong to one resolution; GFLOPs@640 is only there to set beside YOLOv5's README.
    """
    model = copy.deepcopy(model).cpu().eval()
    decoded = E.DecodedOutput(model)
    out = dict(imgsz=int(imgsz), params=count_params(model),
               gflops=2 * count_flops(decoded, (1, 3, imgsz, imgsz)) / 1e9,
               gflops_640=2 * count_flops(decoded, (1, 3, 640, 640)) / 1e9, latency={})
    r = E.torch_latency(model, imgsz, device="cpu", min_run_time=min_run_time)
    out["cpu_ms"], out["latency"]["cpu"] = r.median_ms, r
    if torch.cuda.is_available():
        r = E.torch_latency(model, imgsz, device="cuda", min_run_time=min_run_time, cuda_graph=True)
        out["gpu_ms"], out["latency"]["gpu"] = r.median_ms, r
    return out


def comparison_entries(results: dict, measured: dict) -> dict:
    """``{name: row}`` for ``compare.comparison_rows`` from ``TrainResult`` s (one seed) and ``measure_detector`` dicts.

    Accuracy is the test split's, of the epoch chosen on val (``TrainResult.test``); a run whose
    data had no test split falls back to that epoch's val numbers, and the row says so (``split``).
    """
    entries = {}
    for name, res in results.items():
        m = measured[name]
        if res.test is not None:
            acc, split = {k: res.test[k] for k in _ACCURACY}, "test"
        else:
            best = best_epoch(res)
            acc, split = dict(map50=best.get("map50"), map=best.get("map")), "val"
        entries[name] = dict(imgsz=m["imgsz"], params=m["params"], gflops=m["gflops"], gflops_640=m["gflops_640"],
                             cpu_ms=m["cpu_ms"], gpu_ms=m.get("gpu_ms"), train_s=res.wall_time_s, split=split,
                             seeds=1, **acc)
    return entries


def summarize_runs(runs: list[dict]) -> dict:
    """Mean and std over seeds of each run's test accuracy and training time (``compare.seed_summary``)."""
    from .compare import seed_summary

    out = {k: seed_summary([r["test"][k] for r in runs]) for k in _ACCURACY}
    out["train_s"] = seed_summary([r["train_time_s"] for r in runs])
    return out


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


def load_reference(path=None) -> dict | None:
    """The recorded full run (``results/yolo_full_cpu.json``), or None when it has not been produced yet."""
    path = Path(path) if path is not None else REFERENCE_PATH
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def reference_status(ref: dict | None, rec: dict | None = None) -> tuple[bool, str]:
    """Whether a reference JSON can be set beside this recipe's numbers, and a sentence saying why (not)."""
    if ref is None:
        return False, (f"No reference run at {REFERENCE_PATH}: produce it with `python benchmarks/yolo_full.py` "
                       "(3 detectors × 3 seeds, on an otherwise idle machine).")
    meta = ref.get("meta", {}) if isinstance(ref, dict) else {}
    if meta.get("schema") != SCHEMA:
        return False, ("The recorded reference predates the discriminating recipe (an earlier schema: one seed, "
                       "the 'toy' data, scored on val), so its numbers are not shown beside this recipe. "
                       "Re-record it with `python benchmarks/yolo_full.py`.")
    if rec is not None and meta.get("recipe") != json.loads(json.dumps(rec)):
        return False, ("The recorded reference was made with a different recipe than course.yolo.train.RECIPES "
                       f"has now ({meta.get('recipe_name')!r}); re-record it with `python benchmarks/yolo_full.py`.")
    return True, "REFERENCE (not your run) — " + reference_meta(ref)


def reference_entries(ref: dict) -> dict:
    """``{name: row}`` for ``comparison_rows`` from a reference JSON of schema 2: mean and std over seeds."""
    models = ref.get("models") if isinstance(ref, dict) else None
    if not isinstance(models, list):
        raise ValueError(f"reference: expected a dict with a 'models' list (benchmarks/yolo_full.py), "
                         f"got {type(models).__name__ if isinstance(ref, dict) else type(ref).__name__}")
    entries = {}
    for i, m in enumerate(models):
        missing = [k for k in ("name", "imgsz", "params", "gflops", "summary") if m.get(k) is None]
        if missing:
            raise ValueError(f"reference: models[{i}] lacks {missing}; has {sorted(m)} "
                             "(an older schema? see reference_status)")
        row = {k: m.get(k) for k in ("imgsz", "params", "gflops", "gflops_640", "cpu_ms", "gpu_ms")}
        for key, stat in m["summary"].items():
            row[key], row[f"{key}_std"] = stat["mean"], stat["std"]
        row["seeds"] = m["summary"]["map50"]["n"]
        entries[m["name"]] = row
    return entries


def reference_duration(ref: dict | None, rec: dict | None = None) -> str:
    """How long full mode takes, read from the reference JSON: the seed-0 runs, one after another, as chapter 6 trains."""
    ok, why = reference_status(ref, rec)
    if not ok:
        return f"How long full mode takes is not known from a matching reference run. {why}"
    first = [m["runs"][0] for m in ref["models"]]
    seed0 = sum(r["train_time_s"] for r in first)
    total = sum(r["train_time_s"] for m in ref["models"] for r in m["runs"])
    cap = ref["meta"]["recipe"].get("time_budget_s")
    capped = sum(bool(r.get("stopped_by_budget")) for m in ref["models"] for r in m["runs"])
    each = ", ".join(f"{m['name']} {r['train_time_s'] / 60:.1f}" for m, r in zip(ref["models"], first))
    runs = sum(len(m["runs"]) for m in ref["models"])
    text = (f"In the reference run ({ref['meta']['device']}), training the {len(first)} detectors once took "
            f"{seed0 / 60:.0f} min in all ({each} min); the whole reference ({runs} runs) took {total / 60:.0f} min.")
    if cap:
        text += f" Each run is capped at {cap / 60:.0f} min; {capped} of the {runs} runs stopped at the cap."
    return text


def reference_figure(ref: dict):
    """Val mAP@0.5 per epoch of every run (one colour per detector, one line per seed), titled as the reference."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, m in enumerate(ref["models"]):
        colour = f"C{k}"
        for j, run in enumerate(m["runs"]):
            h = run["history"]
            label = m["name"] if j == 0 else None
            a.plot([r["epoch"] + 1 for r in h], [r["loss"] for r in h], color=colour, alpha=0.7, lw=1, label=label)
            b.plot([r["epoch"] + 1 for r in h], [r["map50"] for r in h], color=colour, alpha=0.7, lw=1,
                   label=None if j else f"{m['name']} (test {m['summary']['map50']['mean']:.3f})")
    a.set(xlabel="epoch", ylabel="train loss (box + obj + cls)", title="training loss (one line per seed)")
    b.set(xlabel="epoch", ylabel="val mAP@0.5", ylim=(0, 1), title="val mAP@0.5 (EMA weights; legend: test mean)")
    a.legend(fontsize=8)
    b.legend(loc="lower right", fontsize=8)
    meta = ref["meta"]
    fig.suptitle(f"REFERENCE run: shapes ({meta.get('recipe_name')}), {meta['recipe']['imgsz']} px, {meta['device']}, "
                 f"torch {meta['torch_version']}, {meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    return fig


def reference_meta(ref: dict) -> str:
    meta = ref.get("meta", ref)
    keys = ("device", "device_name", "cpu", "threads", "torch", "torch_version", "date", "seeds", "python")
    parts = [f"{k}: {meta[k]}" for k in keys if k in meta and not isinstance(meta[k], dict)]
    if meta.get("loadavg_start") is not None:
        parts.append(f"load {meta['loadavg_start'][0]:.1f} -> {meta['loadavg_end'][0]:.1f}")
    return ", ".join(parts) or "(no metadata recorded)"

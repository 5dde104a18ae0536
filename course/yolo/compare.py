"""Comparing detectors: the table, its chart, what the numbers say, and boxes drawn on images.

One row per detector, built from measured or counted numbers only (``comparison_rows``); the
sentences that compare FLOPs with time are computed from the same rows (``speed_notes``), so
the text cannot disagree with the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..tables import text_table

__all__ = ["COLUMNS", "comparison_rows", "format_comparison", "plot_comparison", "speed_notes", "plot_param_groups",
           "draw_boxes", "plot_samples", "CLASS_COLORS"]

# (key, header, format) of the comparison table; missing values print as "—".
COLUMNS = (
    ("name", "detector", "{}"),
    ("params", "params", "{:,}"),
    ("gflops", "GFLOPs@640", "{:.2f}"),
    ("cpu_ms_320", "CPU ms@320", "{:.1f}"),
    ("cpu_ms_640", "CPU ms@640", "{:.1f}"),
    ("gpu_ms_640", "GPU ms@640", "{:.2f}"),
    ("train_s", "train s", "{:.0f}"),
    ("map50", "mAP@0.5", "{:.3f}"),
    ("map", "mAP@.5:.95", "{:.3f}"),
)
CLASS_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
_NUMERIC = [key for key, _, _ in COLUMNS[1:]]


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
        return value
    return None


def comparison_rows(entries: dict) -> list[dict]:
    """``{name: {params, gflops, cpu_ms_320, ...}}`` -> rows in table order, unknown keys kept, bad values None.

    The first entry is the baseline: each row also gets ``gflops_vs_base`` and
    ``cpu_ms_320_vs_base`` / ``cpu_ms_640_vs_base`` ratios (None where a number is missing).
    """
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"entries must be a non-empty dict of name -> numbers, got {type(entries).__name__}")
    rows = []
    for name, values in entries.items():
        if not isinstance(values, dict):
            raise ValueError(f"entries[{name!r}] must be a dict of numbers, got {type(values).__name__}")
        row = dict(values, name=str(name))
        for key in _NUMERIC:
            row[key] = _number(values.get(key))
        rows.append(row)
    base = rows[0]
    for row in rows:
        for key in ("params", "gflops", "cpu_ms_320", "cpu_ms_640", "gpu_ms_640"):
            a, b = row[key], base[key]
            row[f"{key}_vs_base"] = a / b if a is not None and b else None
    return rows


def format_comparison(rows: list[dict], title: str = "") -> str:
    """The rows as a fixed-width text table (one line per detector), with an optional title line."""
    return text_table(rows, {key: header for key, header, _ in COLUMNS},
                      formats={key: fmt for key, _, fmt in COLUMNS}, title=title)


def plot_comparison(rows: list[dict], title: str = ""):
    """Four panels: parameters, GFLOPs, CPU latency at 320 and 640, mAP; one bar per detector."""
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))

    def bars(ax, keys, labels, scale=1.0):
        width = 0.8 / len(keys)
        for k, (key, label) in enumerate(zip(keys, labels)):
            vals = [(r[key] or 0) * scale for r in rows]
            ax.bar(x + (k - (len(keys) - 1) / 2) * width, vals, width, label=label)
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)

    bars(axes[0], ["params"], ["params"], 1e-6)
    axes[0].set_title("parameters (M)")
    bars(axes[1], ["gflops"], ["GFLOPs"])
    axes[1].set_title("GFLOPs at 640")
    bars(axes[2], ["cpu_ms_320", "cpu_ms_640"], ["320", "640"])
    axes[2].set_title("CPU latency, batch 1 (ms)")
    axes[2].legend(fontsize=8)
    bars(axes[3], ["map50", "map"], ["mAP@0.5", "mAP@.5:.95"])
    axes[3].set_title("accuracy (val)")
    axes[3].set_ylim(0, 1)
    axes[3].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _ratio_words(time_ratio: float, flops_ratio: float, tolerance: float = 0.15) -> str:
    if time_ratio > flops_ratio * (1 + tolerance):
        return "slower than its FLOPs predict"
    if time_ratio < flops_ratio / (1 + tolerance):
        return "faster than its FLOPs predict"
    return "about as fast as its FLOPs predict"


_WHY = {
    "mobilenet": ("MobileNet V3's bnecks spend their FLOPs in depthwise convs (little arithmetic per byte moved, "
                  "so memory access cost, not FLOPs, sets their time), and add squeeze-and-excite and h-swish: "
                  "many small element-wise and pooling ops (guideline G4) in a fragmented graph (G3)"),
    "shufflenet": ("ShuffleNet V2's units move data that FLOPs do not count: the channel split, the concat and "
                   "the shuffle are memory copies (MAC, guideline G1) and the depthwise convs have little "
                   "arithmetic per byte"),
}


def speed_notes(rows: list[dict], size: int = 320, key_prefix: str = "cpu_ms", device: str = "CPU") -> list[str]:
    """Sentences comparing each detector's time with its FLOPs against the first row (the baseline).

    Every comparison in the text is computed here from the rows, never typed in.
    """
    key = f"{key_prefix}_{size}"
    base = rows[0]
    notes = []
    if base.get(key) is None or base.get("gflops") is None:
        return [f"no {device} timing at {size} for the baseline {base['name']}: nothing to compare"]
    for row in rows[1:]:
        if row.get(key) is None or row.get("gflops") is None:
            notes.append(f"{row['name']}: no {device} timing at {size}")
            continue
        fr, tr = row["gflops"] / base["gflops"], row[key] / base[key]
        words = _ratio_words(tr, fr)
        text = (f"{row['name']}: {fr:.2f}× the FLOPs of {base['name']} and {tr:.2f}× its {device} time at "
                f"{size}×{size} ({row[key]:.1f} vs {base[key]:.1f} ms): {words}.")
        if words.startswith("slower"):
            kind = next((k for k in _WHY if k in row["name"].lower()), None)
            if kind:
                text += f" Why: {_WHY[kind]}."
        notes.append(text)
    speeds = [r for r in rows if r.get(key) is not None]
    if len(speeds) > 1:
        fastest = min(speeds, key=lambda r: r[key])
        fewest = min((r for r in rows if r.get("gflops") is not None), key=lambda r: r["gflops"])
        if fastest is fewest:
            notes.append(f"The detector with the fewest FLOPs ({fewest['name']}) is also the fastest here.")
        else:
            notes.append(f"The detector with the fewest FLOPs ({fewest['name']}, {fewest['gflops']:.2f} G) is not "
                         f"the fastest here: {fastest['name']} is ({fastest[key]:.1f} vs {fewest[key]:.1f} ms) "
                         "— FLOPs are not speed (ShuffleNet V2, Sec. 2).")
    return notes


def plot_param_groups(groups: dict, title: str = "Where the parameters live"):
    """Stacked bars of backbone / neck / head parameters per detector (``{name: layer_groups(model)}``)."""
    if not groups:
        raise ValueError("groups must be a non-empty dict of name -> {'backbone', 'neck', 'head'} counts")
    names = list(groups)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    bottom = np.zeros(len(names))
    for part, color in (("backbone", "tab:blue"), ("neck", "tab:orange"), ("head", "tab:green")):
        vals = np.array([groups[n][part] for n in names], dtype=float) / 1e6
        ax.bar(names, vals, bottom=bottom, label=part, color=color)
        for i, (v, b) in enumerate(zip(vals, bottom)):
            total = sum(groups[names[i]].values()) / 1e6
            if v / total > 0.06:
                ax.text(i, b + v / 2, f"{100 * v / total:.0f} %", ha="center", va="center", fontsize=8,
                        color="white")
        bottom += vals
    ax.set_ylabel("parameters (M)")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()  # beside the bars, in stacking order (head on top)
    ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _hwc(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3 and image.shape[0] == 3:
            image = image.permute(1, 2, 0)
        image = image.numpy()
    image = np.asarray(image)
    return image if image.dtype == np.uint8 else np.clip(image, 0, 1)


def draw_boxes(ax, image, boxes, classes, names, scores=None, title: str = "", linestyle: str = "-") -> int:
    """Draw ``image`` and its ``boxes`` (x1, y1, x2, y2 pixels) with class names (and scores); return the count."""
    ax.imshow(_hwc(image))
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1).astype(int)
    if len(classes) != len(boxes):
        raise ValueError(f"classes has {len(classes)} entries for {len(boxes)} boxes")
    for k, ((x1, y1, x2, y2), c) in enumerate(zip(boxes, classes)):
        color = CLASS_COLORS[c % len(CLASS_COLORS)]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color, lw=1.5, ls=linestyle))
        label = names[c] if c < len(names) else str(c)
        if scores is not None:
            label += f" {float(scores[k]):.2f}"
        ax.text(x1, y1 - 1, label, color="white", fontsize=7, va="bottom",
                bbox=dict(facecolor=color, alpha=0.8, pad=0.5, lw=0))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return len(boxes)


def _labels_to_xyxy(labels: torch.Tensor, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 6)`` ``[img, cls, cx, cy, w, h]`` normalised -> pixel ``x1y1x2y2`` and classes."""
    labels = torch.as_tensor(labels, dtype=torch.float32).reshape(-1, 6)
    cx, cy, bw, bh = labels[:, 2] * w, labels[:, 3] * h, labels[:, 4] * w, labels[:, 5] * h
    boxes = torch.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1)
    return boxes.numpy(), labels[:, 1].long().numpy()


def plot_samples(dataset, names, indices=None, cols: int = 4):
    """A grid of dataset images with their ground-truth boxes and class names."""
    indices = list(range(min(len(dataset), 8))) if indices is None else list(indices)
    if not indices or any(not 0 <= i < len(dataset) for i in indices):
        raise ValueError(f"indices must be a non-empty list within 0..{len(dataset) - 1}, got {indices}")
    rows = math.ceil(len(indices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices):
        img, labels, path, _ = dataset[i]
        boxes, classes = _labels_to_xyxy(labels, img.shape[1], img.shape[2])
        draw_boxes(ax, img, boxes, classes, names, title=f"{Path(path).name}: {len(boxes)} objects")
    fig.tight_layout()
    return fig

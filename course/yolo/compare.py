"""Comparing detectors: the table, its chart, what the numbers say, and boxes drawn on images.

One row per detector, built from measured or counted numbers only (``comparison_rows``), cost and
accuracy at the same image size; the sentences that compare FLOPs with time (``speed_notes``,
``flops_latency_words``) and the ranking by accuracy (``rank_words``: a difference only when it
exceeds the spread over seeds) are computed from the same rows, so the text cannot disagree with
the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..tables import text_table

__all__ = ["comparison_columns", "comparison_rows", "format_comparison", "plot_comparison", "speed_notes",
           "rank_words", "flops_latency_words", "seed_summary", "plot_param_groups", "draw_boxes", "plot_samples",
           "plot_detections", "CLASS_COLORS"]

CLASS_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                "tab:cyan", "tab:gray")
# Numbers a row may carry; ``*_std`` beside an accuracy or time is its spread over seeds.
_NUMERIC = ("imgsz", "params", "gflops", "gflops_640", "cpu_ms", "gpu_ms", "train_s", "map50", "map",
            "coco_map50", "coco_map", "train_s_std", "map50_std", "map_std", "coco_map50_std", "coco_map_std", "seeds")
_MEAN_STD = ("train_s", "map50", "map", "coco_map50", "coco_map")


def comparison_columns(imgsz) -> list[tuple[str, str, str]]:
    """(key, header, format) of the comparison table: cost and accuracy at one size, ``imgsz``."""
    return [
        ("name", "detector", "{}"),
        ("params", "params", "{:,}"),
        ("gflops", f"GFLOPs@{imgsz}", "{:.3f}"),
        ("gflops_640", "GFLOPs@640", "{:.2f}"),
        ("cpu_ms", f"CPU ms@{imgsz}", "{:.2f}"),
        ("gpu_ms", f"GPU ms@{imgsz}", "{:.2f}"),
        ("train_s", "train s", "{:.0f}"),
        ("map50", "mAP@0.5", "{:.3f}"),
        ("map", "mAP@.5:.95", "{:.3f}"),
        ("coco_map50", "COCO AP50", "{:.3f}"),
        ("coco_map", "COCO AP", "{:.3f}"),
    ]


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
        return value
    return None


def comparison_rows(entries: dict) -> list[dict]:
    """``{name: {imgsz, params, gflops, cpu_ms, map50, ...}}`` -> rows in order, unknown keys kept, bad values None.

    All detectors must have been measured at one ``imgsz`` (cost and accuracy at the same size).
    The first entry is the baseline: each row also gets ``params_vs_base``, ``gflops_vs_base`` and
    ``cpu_ms_vs_base`` ratios (None where a number is missing).
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
    sizes = {r["imgsz"] for r in rows if r["imgsz"] is not None}
    if len(sizes) > 1:
        raise ValueError(f"entries were measured at different sizes {sorted(sizes)}; compare at one imgsz")
    base = rows[0]
    for row in rows:
        for key in ("params", "gflops", "cpu_ms", "gpu_ms"):
            a, b = row[key], base[key]
            row[f"{key}_vs_base"] = a / b if a is not None and b else None
    return rows


def _mean_std_text(fmt: str):
    def cell(row, key):
        mean, std = row.get(key), row.get(f"{key}_std")
        if mean is None:
            return None
        return fmt.format(mean) + (f" ± {fmt.format(std)}" if std is not None else "")
    return cell


def format_comparison(rows: list[dict], title: str = "") -> str:
    """The rows as a fixed-width text table, mean ± std where several seeds were run; an optional title."""
    imgsz = rows[0].get("imgsz") if rows else None
    columns = [c for c in comparison_columns(imgsz if imgsz is not None else "?")
               if c[0] == "name" or any(r.get(c[0]) is not None for r in rows)]
    shown = []
    for r in rows:
        row = dict(r)
        for key, _, fmt in columns:
            if key in _MEAN_STD and r.get(f"{key}_std") is not None:
                row[key] = _mean_std_text(fmt)(r, key)
        shown.append(row)
    formats = {key: (lambda v, f=fmt: v if isinstance(v, str) else f.format(v)) for key, _, fmt in columns}
    text = text_table(shown, {key: header for key, header, _ in columns}, formats=formats, title=title)
    n = {r.get("seeds") for r in rows}
    notes = ["mAP@0.5 and mAP@.5:.95: YOLOv5's interpolated AP (val.py/ap_per_class: 101-point, linear); "
             "COCO AP50/AP: the same matches integrated as pycocotools and torchmetrics do"]
    if n - {None, 1}:
        notes.append(f"mean ± sample std over {'/'.join(str(int(v)) for v in sorted(n - {None}))} seeds; "
                     "cost measured once per detector")
    return text + "\n(" + "; ".join(notes) + ")"


def plot_comparison(rows: list[dict], title: str = ""):
    """Four panels at the training size: parameters, GFLOPs, CPU latency, test mAP (error bars: std over seeds)."""
    names = [r["name"] for r in rows]
    imgsz = rows[0].get("imgsz") or "?"
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))

    def bars(ax, keys, labels, scale=1.0):
        width = 0.8 / len(keys)
        for k, (key, label) in enumerate(zip(keys, labels)):
            vals = [(r[key] or 0) * scale for r in rows]
            err = [(r.get(f"{key}_std") or 0) * scale for r in rows]
            ax.bar(x + (k - (len(keys) - 1) / 2) * width, vals, width, label=label,
                   yerr=err if any(err) else None, capsize=3)
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)

    bars(axes[0], ["params"], ["params"], 1e-6)
    axes[0].set_title("parameters (M)")
    bars(axes[1], ["gflops"], ["GFLOPs"])
    axes[1].set_title(f"GFLOPs at {imgsz}")
    bars(axes[2], ["cpu_ms"], [f"{imgsz}"])
    axes[2].set_title(f"CPU latency at {imgsz}, batch 1 (ms)")
    bars(axes[3], ["map50", "map"], ["mAP@0.5", "mAP@.5:.95"])
    axes[3].set_title("accuracy (test, YOLOv5 AP)")
    axes[3].set_ylim(0, 1)
    axes[3].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
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


def speed_notes(rows: list[dict], key: str = "cpu_ms", device: str = "CPU") -> list[str]:
    """Sentences comparing each detector's time with its FLOPs (both at the rows' ``imgsz``) against the first row.

    Every comparison in the text is computed here from the rows, never typed in.
    """
    base = rows[0]
    size = base.get("imgsz") or "?"
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
    return notes + [flops_latency_words(rows, key, device)]


def flops_latency_words(rows: list[dict], key: str = "cpu_ms", device: str = "CPU") -> str:
    """Whether FLOPs and measured latency order the detectors the same way, and each pair where they disagree."""
    known = [r for r in rows if r.get(key) is not None and r.get("gflops") is not None]
    size = rows[0].get("imgsz") or "?"
    if len(known) < 2:
        return f"FLOPs vs {device} latency: fewer than two detectors have both numbers at {size} px."
    by_flops = sorted(known, key=lambda r: r["gflops"])
    disagree = [(a, b) for i, a in enumerate(by_flops) for b in by_flops[i + 1:]
                if a["gflops"] < b["gflops"] and a[key] > b[key]]
    order = " < ".join(r["name"] for r in by_flops)
    if not disagree:
        return (f"FLOPs and {device} latency at {size} px agree: fewest FLOPs to most ({order}) is also "
                "fastest to slowest.")
    pairs = "; ".join(f"{a['name']} has fewer FLOPs than {b['name']} ({a['gflops']:.3f} vs {b['gflops']:.3f} G) "
                      f"but takes longer ({a[key]:.2f} vs {b[key]:.2f} ms)" for a, b in disagree)
    return (f"FLOPs and {device} latency at {size} px disagree: {pairs} — FLOPs are not speed "
            "(ShuffleNet V2, Sec. 2).")


def seed_summary(values) -> dict:
    """``{mean, std, n}`` of one number over seeds; ``std`` is the sample standard deviation (None for one seed)."""
    vals = [float(v) for v in values]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"values must be a non-empty list of finite numbers, got {values!r}")
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return dict(mean=float(np.mean(vals)), std=std, n=len(vals))


def rank_words(rows: list[dict], key: str = "map50", label: str = "test mAP@0.5") -> dict:
    """The ranking by ``key`` (higher is better) and the words for it, computed from mean and spread.

    Two detectors are called different only when their means differ by more than the sum of their
    standard deviations over seeds (``key + "_std"``: their mean ± std intervals do not touch).
    With one seed there is no spread, so no difference is called. Returns ``{order, tiers, best,
    sentence}``: ``order`` by mean, ``tiers`` the groups that cannot be told apart going down the
    order, ``best`` the name only when it beats the runner-up by more than the spread.
    """
    known = [r for r in rows if r.get(key) is not None]
    if not known:
        raise ValueError(f"rows have no {key!r} values to rank")
    order = sorted(known, key=lambda r: -r[key])

    def text(r):
        std = r.get(f"{key}_std")
        return f"{r['name']} {r[key]:.3f}" + (f" ± {std:.3f}" if std is not None else "")

    if len(order) == 1:
        return dict(order=[order[0]["name"]], tiers=[[order[0]["name"]]], best=order[0]["name"],
                    sentence=f"Only {text(order[0])} has a {label}.")
    if any(r.get(f"{key}_std") is None for r in order):
        return dict(order=[r["name"] for r in order], tiers=[[r["name"] for r in order]], best=None,
                    sentence=(f"By {label}: " + ", ".join(text(r) for r in order) + ". One seed each: "
                              "no spread is known, so no difference is called (the reference run has 3 seeds)."))
    tiers, parts = [[order[0]["name"]]], []
    for a, b in zip(order, order[1:]):
        gap, spread = a[key] - b[key], a[f"{key}_std"] + b[f"{key}_std"]
        if gap > spread:
            tiers.append([b["name"]])
            parts.append(f"{text(a)} is ahead of {text(b)} (gap {gap:.3f} > spread {spread:.3f})")
        else:
            tiers[-1].append(b["name"])
            parts.append(f"{text(a)} and {text(b)} cannot be told apart (gap {gap:.3f} ≤ spread {spread:.3f})")
    best = order[0]["name"] if len(tiers[0]) == 1 else None
    head = (f"Best by {label}: {best}." if best else
            f"No single best by {label}: " + ", ".join(tiers[0]) + " are within their spread.")
    return dict(order=[r["name"] for r in order], tiers=tiers, best=best,
                sentence=head + " " + "; ".join(parts) + " (spread: sum of the two std over seeds).")


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


def plot_detections(models: dict, dataset, names, indices=(0, 1, 2), conf: float = 0.25, iou: float = 0.45):
    """The same images, one row each: ground truth, then every detector's detections (NMS at ``iou``)."""
    from .val import predict

    if not models:
        raise ValueError("models must be a non-empty dict of name -> DetectionModel")
    indices = list(indices)
    if not indices or any(not 0 <= i < len(dataset) for i in indices):
        raise ValueError(f"indices must be a non-empty list within 0..{len(dataset) - 1}, got {indices}")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    cols = 1 + len(models)
    fig, axes = plt.subplots(len(indices), cols, figsize=(2.7 * cols, 2.8 * len(indices)), squeeze=False)
    for row, i in zip(axes, indices):
        img, labels, path, _ = dataset[i]
        gt_boxes, gt_cls = _labels_to_xyxy(labels, img.shape[1], img.shape[2])
        draw_boxes(row[0], img, gt_boxes, gt_cls, names, title=f"{Path(path).name}: {len(gt_boxes)} true")
        for ax, (name, model) in zip(row[1:], models.items()):
            d = predict(model, img, conf_thres=conf, iou_thres=iou)[0]
            draw_boxes(ax, img, d[:, :4].numpy(), d[:, 5].long().numpy(), names, scores=d[:, 4].numpy(),
                       title=f"{name}: {len(d)} found")
    fig.suptitle(f"ground truth, then each detector (conf ≥ {conf:.2f}, NMS IoU {iou:.2f})", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.05, hspace=0.2)
    return fig

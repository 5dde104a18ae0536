"""From scratch or from a pretrained classifier: the swapped detectors' time to accuracy, summarised and drawn.

``benchmarks/yolo_pretrained.py`` trains each swapped detector of chapter 6 twice per seed (from
random weights, and with its backbone rows copied from a course classifier by
``course.yolo.pretrained.load_backbone``) and records ``results/yolo_pretrained_cpu.json``; chapter 6
reads it with ``load_transfer_reference``. The numbers here are computed from the recorded runs:
test mAP mean ± std per arm, and the training time until val mAP@0.5 first reaches a threshold
(a fraction of what from-scratch training reached), because a pretrained start is often worth
more in time than in final accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from ..tables import text_table
from . import compare as C

__all__ = ["CLASSIFIER_OF", "SCHEMA", "TRANSFER_PATH", "reach_time", "summarize", "words", "table", "figure",
           "load_transfer_reference"]

# Each swapped detector and the course classifier whose weights fit its backbone rows (width 1.0).
CLASSIFIER_OF = {"MobileNetV3-Small": "mobilenet_v3_small", "ShuffleNetV2": "shufflenet_v2"}
SCHEMA = 1
TRANSFER_PATH = Path(__file__).resolve().parents[2] / "results" / "yolo_pretrained_cpu.json"
ARM_STYLES = {"scratch": ":", "pretrained": "-", "pretrained+frozen": "--"}


def reach_time(history: list[dict], threshold: float) -> float | None:
    """Seconds of training (train + val per epoch, summed) until val mAP@0.5 first reaches ``threshold``; None if never.

    A threshold of 0 (from-scratch training learned nothing) is reached by any run, so it gives None.
    """
    if threshold <= 0:
        return None
    elapsed = 0.0
    for row in history:
        elapsed += row["time_s"]
        if row["map50"] >= threshold:
            return round(elapsed, 1)
    return None


def summarize(arms: dict, reach: float) -> dict:
    """Per detector and arm: test mAP mean ± std, and time to ``reach`` x the scratch arm's mean best val mAP@0.5."""
    out = {}
    for det, by_arm in arms.items():
        scratch_best = [max(r["map50"] for r in run["history"]) for run in by_arm["scratch"]]
        threshold = reach * sum(scratch_best) / len(scratch_best)
        out[det] = dict(threshold_map50=round(threshold, 4), arms={})
        for arm, runs in by_arm.items():
            times = [reach_time(r["history"], threshold) for r in runs]
            hit = [t for t in times if t is not None]
            out[det]["arms"][arm] = dict(
                map50=C.seed_summary([r["test"]["map50"] for r in runs]),
                map=C.seed_summary([r["test"]["map"] for r in runs]),
                reach_s=C.seed_summary(hit) if hit else None, reached=f"{len(hit)}/{len(times)}", reach_times=times)
    return out


def words(summary: dict) -> dict:
    """One ranking sentence per detector (a difference only beyond the spread), from ``rank_words``."""
    out = {}
    for det, s in summary.items():
        rows = [dict(name=f"{det} {arm}", map50=a["map50"]["mean"], map50_std=a["map50"]["std"])
                for arm, a in s["arms"].items()]
        reach = "; ".join(f"{arm} reached val mAP@0.5 {s['threshold_map50']:.3f} in {a['reached']} runs"
                          + (f", after {a['reach_s']['mean']:.0f} s on average" if a["reach_s"] else "")
                          for arm, a in s["arms"].items())
        out[det] = C.rank_words(rows, "map50", "test mAP@0.5")["sentence"] + " Time to accuracy: " + reach + "."
    return out


def table(summary: dict) -> str:
    def stat(s, fmt):
        return "—" if s is None else fmt.format(s["mean"]) + ("" if s["std"] is None else " ± " + fmt.format(s["std"]))

    rows = [dict(detector=det, arm=arm, map50=stat(a["map50"], "{:.3f}"), map=stat(a["map"], "{:.3f}"),
                 reach=stat(a["reach_s"], "{:.0f}"), reached=a["reached"])
            for det, s in summary.items() for arm, a in s["arms"].items()]
    return text_table(rows, {"detector": "detector", "arm": "start", "map50": "test mAP@0.5", "map": "test mAP@0.5:0.95",
                             "reach": "s to threshold", "reached": "runs reaching it"})


def figure(ref: dict):
    """Val mAP@0.5 against training time, one line per run: colour by detector, line style by arm."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for k, (det, by_arm) in enumerate(ref["arms"].items()):
        for arm, runs in by_arm.items():
            for j, run in enumerate(runs):
                t, elapsed = [], 0.0
                for row in run["history"]:
                    elapsed += row["time_s"]
                    t.append(elapsed / 60)
                ax.plot(t, [r["map50"] for r in run["history"]], color=f"C{k}", ls=ARM_STYLES.get(arm, "-"), lw=1,
                        alpha=0.8, label=f"{det}, {arm}" if j == 0 else None)
        ax.axhline(ref["summary"][det]["threshold_map50"], color=f"C{k}", lw=0.6, alpha=0.5)
    ax.set(xlabel="training time (min, train + val)", ylabel="val mAP@0.5", ylim=(0, 1),
           title="From scratch (dotted) or from a Glyphs-10 classifier (solid); thin lines: the thresholds")
    ax.legend(fontsize=8, loc="lower right")
    meta = ref["meta"]
    fig.suptitle(f"REFERENCE run: {meta['device']}, torch {meta['torch_version']}, {meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    return fig


def load_transfer_reference(path=None) -> tuple[dict | None, str]:
    """The recorded scratch-vs-pretrained run and a sentence saying what it is, or (None, how to record it)."""
    path = Path(path) if path is not None else TRANSFER_PATH
    if not path.is_file():
        return None, (f"No scratch-vs-pretrained reference at {path.name}: record it with "
                      "`python benchmarks/yolo_pretrained.py` (2 detectors × 2 starts × 3 seeds, up to 15 min each, "
                      "on an otherwise idle machine).")
    ref = json.loads(path.read_text())
    if ref.get("meta", {}).get("schema") != SCHEMA:
        return None, f"{path.name} is not schema {SCHEMA}: re-record it with `python benchmarks/yolo_pretrained.py`."
    meta = ref["meta"]
    return ref, (f"REFERENCE (not your run) — {meta['device']}, torch {meta['torch_version']}, {meta['date'][:10]}, "
                 f"seeds {meta['seeds']}, scratch arm {meta['scratch_source']}.")

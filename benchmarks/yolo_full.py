"""Train every shipped detector of chapter 6 with the course's recipe; record time, speed and mAP.

The reference run of chapter 6: ``python benchmarks/yolo_full.py`` (``COURSE_QUICK=1`` or
``--recipe quick`` for the CI recipe). The recipe is ``course.yolo.train.recipe()``: the same one
the CLI and the notebook use. Each detector gets the recipe's wall-time cap (15 min on a 2-core
CPU for "full"); a callback stops training when one more epoch would cross it, so the recorded
mAP is what fits in it. Results go to ``results/yolo_full_cpu.json`` (``yolo_quick_cpu.json`` in
quick mode) in the schema ``course.widgets.ch06_yolo.load_reference`` reads, plus a figure of the
loss and mAP curves. ``--models`` runs a subset; rows of other detectors trained with the same
recipe are kept. ``--replot`` rebuilds the metadata, table and figure from the JSON without training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

from course.device import cpu_model, device_name, resolve_device
from course.env import pick
from course.measure import count_flops
from course.tables import text_table
from course.yolo.benchmark import DETECTORS, best_epoch, measure_detector, reference_figure
from course.yolo.data import make_shapes
from course.yolo.export import DecodedOutput
from course.yolo.train import RECIPES, RUN_KEYS, recipe, shapes_kwargs, train, train_kwargs
from course.yolo.val import load_model

REPO = Path(__file__).resolve().parents[1]
# The chapter's three detectors first (the default), then the other shipped configs:
# ``--models YOLOv5s v5Lite-e YOLOv5-MBv3S YOLOv5-MBv3L --out results/yolo_full_cpu_more.json``.
SHIPPED = DETECTORS | {"YOLOv5s": "yolov5s.yaml", "v5Lite-e": "v5Lite-e.yaml",
                       "YOLOv5-MBv3S": "yolov5-mbv3s.yaml", "YOLOv5-MBv3L": "yolov5-mbv3l.yaml"}


def budget_callback(budget_s: float, log=None):
    """Stop when one more epoch (as long as the last) would pass ``budget_s``; print one line per epoch."""
    start, last = time.perf_counter(), [time.perf_counter()]

    def on_epoch_end(epoch, row):
        now = time.perf_counter()
        elapsed, epoch_s, last[0] = now - start, now - last[0], now
        if log:
            print(f"[{log}] epoch {epoch + 1} {elapsed:.0f}s P {row['precision']:.3f} R {row['recall']:.3f} "
                  f"mAP50 {row['map50']:.3f} mAP {row['map']:.3f} load {os.getloadavg()[0]:.1f}", flush=True)
        return elapsed + epoch_s > budget_s

    return {"on_epoch_end": on_epoch_end}


def make_data(rec: dict, root: Path = REPO / "data" / "shapes_bench") -> Path:
    """The recipe's shapes dataset (reused when already generated with the same arguments)."""
    return make_shapes(root / f"{rec['imgsz']}px", seed=0, **shapes_kwargs(rec))


def run_one(name: str, cfg: str, rec: dict, data: Path, project: Path, device: str = "cpu") -> dict:
    """Train one detector, then measure its best checkpoint; one ``models`` entry of the reference JSON."""
    load_start = os.getloadavg()
    result = train(cfg, data, device=device, project=project, name=Path(cfg).stem, progress=False,
                   callbacks=budget_callback(rec["time_budget_s"], log=name),
                   **train_kwargs(rec))
    load_end = os.getloadavg()
    best = best_epoch(result)
    return dict(
        name=name, cfg=cfg, **measure(result.best, rec["imgsz"]),
        train_time_s=round(result.wall_time_s, 1), train_images_per_s=round(result.train_images_per_s, 2),
        epochs_run=len(result.history), epochs_planned=rec["epochs"], stopped_by_budget=result.stopped_early,
        map50=round(best["map50"], 4), map=round(best["map"], 4), precision=round(best["precision"], 4),
        recall=round(best["recall"], 4), best_epoch=best["epoch"], final_map50=round(result.final["map50"], 4),
        final_map=round(result.final["map"], 4), meets_target=bool(best["map50"] >= 0.90 and
                                                                     result.wall_time_s <= rec["time_budget_s"]),
        threads=torch.get_num_threads(), loadavg_start=[round(v, 2) for v in load_start],
        loadavg_end=[round(v, 2) for v in load_end], date=datetime.datetime.now().isoformat(timespec="seconds"),
        history=[{k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()} for row in result.history],
    )


def measure(weights: Path, imgsz: int) -> dict:
    """Params, GFLOPs (2 x multiply-adds, YOLOv5's convention) and batch-1 latency of a checkpoint."""
    model = load_model(weights, "cpu").eval()
    m = measure_detector(model, sizes=(imgsz, 320, 640))
    at_imgsz = m["latency"][f"cpu_{imgsz}"]
    return dict(params=m["params"], gflops=round(m["gflops"], 3),
                gflops_train_imgsz=round(2 * count_flops(DecodedOutput(model), (1, 3, imgsz, imgsz)) / 1e9, 3),
                cpu_ms_320=round(m["cpu_ms_320"], 2), cpu_ms_640=round(m["cpu_ms_640"], 2),
                cpu_ms_train_imgsz=round(at_imgsz.median_ms, 2), inference_images_per_s=round(at_imgsz.per_second, 1),
                latency_loadavg=round(os.getloadavg()[0], 2),
                **({"gpu_ms_640": round(m["gpu_ms_640"], 2)} if "gpu_ms_640" in m else {}))


def plot(ref: dict, path: Path) -> None:
    """Save chapter 6's reference figure (loss and val mAP@0.5 per epoch) next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = reference_figure(ref)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(models: list[dict]) -> str:
    return text_table(
        [{**m, "load": f"{m['loadavg_start'][0]:.1f}-{m['loadavg_end'][0]:.1f}"} for m in models],
        {"name": "detector", "params": "params", "gflops": "GFLOPs", "epochs_run": "epochs", "train_time_s": "wall s",
         "train_images_per_s": "train img/s", "inference_images_per_s": "infer img/s", "map50": "mAP50", "map": "mAP",
         "load": "load"},
        formats={"gflops": "{:.2f}", "train_time_s": "{:.0f}", "train_images_per_s": "{:.1f}",
                 "inference_images_per_s": "{:.1f}", "map50": "{:.3f}", "map": "{:.3f}"})


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=pick("full", "quick"))
    parser.add_argument("--models", nargs="+", choices=list(SHIPPED), default=list(DETECTORS))
    parser.add_argument("--threads", type=int,
                        help="default: the recipe's ('auto': 2 if the load average is < 1, else 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--project", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--note", help="appended to meta.load_note (e.g. what else ran at the same time)")
    parser.add_argument("--replot", action="store_true", help="no training: rebuild meta, table and figure")
    parser.add_argument("--remeasure", action="store_true",
                        help="with --replot: time the saved best.pt again (e.g. on a quieter machine)")
    args = parser.parse_args(argv)
    rec = recipe(args.recipe)
    threads = args.threads or rec["threads"]
    if threads == "auto":
        threads = 2 if os.getloadavg()[0] < 1.0 else 1
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    dev = resolve_device(args.device)[0]
    out = args.out or REPO / "results" / f"yolo_{args.recipe}_{dev.type}.json"
    plain_recipe = json.loads(json.dumps(rec))

    previous = json.loads(out.read_text()) if out.exists() else {}
    same_recipe = previous.get("meta", {}).get("recipe") == plain_recipe
    fresh = []
    if not args.replot:
        data = make_data(rec)
        for name in args.models:
            fresh.append(run_one(name, SHIPPED[name], rec, data, args.project, args.device))
            print(json.dumps({k: v for k, v in fresh[-1].items() if k != "history"}), flush=True)
        previous = json.loads(out.read_text()) if out.exists() else {}  # another process may have written
        same_recipe = previous.get("meta", {}).get("recipe") == plain_recipe
    elif not same_recipe:
        raise ValueError(f"--replot: {out} was not made with the {args.recipe!r} recipe of course.yolo.train")

    kept = previous.get("models", []) if same_recipe else []
    if args.replot and args.remeasure:
        for m in kept:
            m.update(measure(args.project / Path(m["cfg"]).stem / "weights" / "best.pt", rec["imgsz"]))
    merged = {m["name"]: m for m in kept} | {m["name"]: m for m in fresh}
    models = [merged[n] for n in SHIPPED if n in merged]
    loads = "; ".join(f"{m['name']} {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}" for m in models)
    used = sorted({m["threads"] for m in models}) or [threads]
    meta = dict(
        device=(f"CPU ({cpu_model()}, {'/'.join(map(str, used))} thread{'s' if used != [1] else ''})"
                if dev.type == "cpu" else device_name(dev)),
        cpu=cpu_model(), threads=used[0] if len(used) == 1 else used, torch_version=str(torch.__version__),
        python=platform.python_version(), date=datetime.datetime.now().isoformat(timespec="seconds"),
        recipe=plain_recipe, recipe_name=args.recipe, run_keys=list(RUN_KEYS),
        target="mAP@0.5 >= 0.90 on val within the recipe's time_budget_s per detector",
        eval="val split (own seed stream, never trained on), conf 0.001, NMS IoU 0.6, 101-point COCO-style AP; "
             "map50/map are the best-fitness epoch (the saved best.pt)",
        latency="batch 1, fp32, median of torch.utils.benchmark, decoded output, same thread count",
        loadavg_start=min((m["loadavg_start"] for m in models), default=None),
        loadavg_end=max((m["loadavg_end"] for m in models), default=None),
        load_note=(f"1-min load average at start -> end of each detector's run on {os.cpu_count()} cores: {loads} "
                   "(a shared machine: load above the thread count slows training)"
                   + (f". {args.note}" if args.note else previous.get("meta", {}).get("note_suffix", ""))),
        note_suffix=f". {args.note}" if args.note else previous.get("meta", {}).get("note_suffix", ""),
    )
    ref = dict(meta=meta, models=models)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ref, indent=1))
    plot(ref, out.with_suffix(".png"))
    print(table(models))
    print(f"-> {out}, {out.with_suffix('.png')}")
    return ref


if __name__ == "__main__":
    main()

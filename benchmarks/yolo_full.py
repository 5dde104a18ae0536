"""Train every shipped YOLOv5n variant on the shapes dataset; record time, speed and mAP.

The reference run of chapter 6: ``python benchmarks/yolo_full.py`` (``COURSE_QUICK=1`` for the CI
recipe). Each model gets a wall-time budget (15 min on a 2-core CPU for the full recipe); a callback
stops training at the end of the epoch that crosses it, so the recorded mAP is what fits in it.
Results go to ``results/yolo_full_cpu.json`` (``results/yolo_quick_cpu.json`` in quick mode).
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

from course.env import device_name, pick
from course.measure import count_params, latency
from course.yolo.data import make_shapes
from course.yolo.train import train
from course.yolo.val import load_model

REPO = Path(__file__).resolve().parents[1]
MODELS = ("yolov5n.yaml", "yolov5n-mobilenetv3small.yaml", "yolov5n-shufflenetv2.yaml")

RECIPES = {
    # Objects of 10-64 px on 128-px images: every object covers at least ~1.5 P3 cells.
    # nbs = batch: no gradient accumulation, so a short run still makes ~1000 optimizer steps.
    "full": dict(n_train=500, n_val=100, imgsz=128, size_range=(10, 64), objects=(2, 6), epochs=40, batch=16,
                 nbs=16, time_budget_s=15 * 60, cache=True),
    "quick": dict(n_train=16, n_val=8, imgsz=64, size_range=(8, 32), objects=(1, 3), epochs=1, batch=8,
                  nbs=8, time_budget_s=120, cache=True),
}


def budget_callback(budget_s: float):
    """Stop after the epoch in which the run's wall time passes ``budget_s``."""
    start = time.perf_counter()
    return {"on_epoch_end": lambda epoch, metrics: time.perf_counter() - start > budget_s}


def run(recipe: dict, models=MODELS, root: Path = REPO / "data" / "shapes_bench", project: Path = REPO / "runs" / "bench",
        device: str = "cpu") -> list[dict]:
    data = make_shapes(root / f"{recipe['imgsz']}px", n_train=recipe["n_train"], n_val=recipe["n_val"],
                       imgsz=recipe["imgsz"], size_range=recipe["size_range"], objects=recipe["objects"], seed=0)
    rows = []
    for cfg in models:
        load_before = os.getloadavg()[0]
        result = train(cfg, data, epochs=recipe["epochs"], imgsz=recipe["imgsz"], batch_size=recipe["batch"],
                       nbs=recipe["nbs"], device=device, project=project, name=Path(cfg).stem, cache=recipe["cache"],
                       callbacks=budget_callback(recipe["time_budget_s"]), progress=True)
        model = load_model(result.best, device)
        bs = recipe["batch"]
        lat1 = latency(model, (1, 3, recipe["imgsz"], recipe["imgsz"]), device=device)
        latb = latency(model, (bs, 3, recipe["imgsz"], recipe["imgsz"]), device=device)
        best = max(result.history, key=lambda r: r["fitness"])
        rows.append(dict(
            model=Path(cfg).stem, params=count_params(model), epochs_run=len(result.history),
            epochs_planned=recipe["epochs"], stopped_by_budget=result.stopped_early,
            wall_time_s=round(result.wall_time_s, 1), train_images_per_s=round(result.train_images_per_s, 2),
            inference_images_per_s_batch1=round(lat1.per_second, 1),
            inference_images_per_s=round(latb.per_second, 1), inference_batch=bs,
            map50=round(best["map50"], 4), map=round(best["map"], 4), final_map50=round(result.final["map50"], 4),
            best_epoch=best["epoch"], imgsz=recipe["imgsz"], n_train=recipe["n_train"], n_val=recipe["n_val"],
            device=device_name(device), threads=torch.get_num_threads(), torch=str(torch.__version__),
            loadavg_before=round(load_before, 2), loadavg_after=round(os.getloadavg()[0], 2),
            date=datetime.datetime.now().isoformat(timespec="seconds"), host=platform.node(),
        ))
        print(json.dumps(rows[-1]))
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'model':<30}{'params':>10}{'epochs':>8}{'wall s':>9}{'train img/s':>13}{'infer img/s':>13}{'mAP50':>8}{'mAP':>8}"
    lines = [head] + [f"{r['model']:<30}{r['params']:>10,}{r['epochs_run']:>8}{r['wall_time_s']:>9.0f}"
                      f"{r['train_images_per_s']:>13.1f}{r['inference_images_per_s']:>13.1f}"
                      f"{r['map50']:>8.3f}{r['map']:>8.3f}" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=pick("full", "quick"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    recipe = RECIPES[args.recipe]
    rows = run(recipe, args.models, device=args.device)
    out = args.out or REPO / "results" / f"yolo_{args.recipe}_{torch.device(args.device).type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    merged = {r["model"]: r for r in previous.get("runs", [])} | {r["model"]: r for r in rows}
    out.write_text(json.dumps(dict(recipe=args.recipe, settings=recipe, runs=list(merged.values())), indent=2))
    print(table(rows))
    print(f"-> {out}")
    return rows


if __name__ == "__main__":
    main()

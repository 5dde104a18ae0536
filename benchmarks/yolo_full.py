"""Chapter 6's reference run: every detector x several seeds with the course's recipe; cost, time and test mAP.

One command records it: ``python benchmarks/yolo_full.py`` (3 detectors x seeds 0 1 2 with
``RECIPES["full"]``, the discriminating "medium" shapes data; each run capped at the recipe's
``time_budget_s``, so at most 9 x 15 min on a 2-core CPU; run it on an otherwise idle machine).
Each run picks its best epoch on val and is scored on the test split (YOLOv5's AP and the COCO
figure). Cost (params, GFLOPs at the training size and at 640, batch-1 CPU latency at the training
size) is measured once per detector. The JSON (``results/yolo_full_cpu.json``, schema
``course.yolo.benchmark.SCHEMA``) keeps every run, mean ± std per detector, the ranking in words
(a difference only when it exceeds the spread, ``course.yolo.compare.rank_words``) and where FLOPs
and latency disagree; device, threads, torch version and load average are in ``meta``.

Each finished run goes to ``results/yolo_full_cpu.partial.json`` at once (with the detector's cost,
measured after its first run), and the command resumes from it when run again with the same recipe,
so the reference can be recorded over several sittings; the JSON is written when every asked run is
done, and the progress file is kept while it holds runs the JSON leaves out (``--seeds 0 1`` written
while seed 2 is still to come).

``--smoke`` runs the same code at tiny sizes (quick recipe, 2 seeds) in well under a minute, for the
tests; ``--replot`` rebuilds table and figure from the JSON without training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import torch

from course.device import cpu_model, device_name, resolve_device
from course.env import pick
from course.tables import text_table
from course.yolo import compare as C
from course.yolo.benchmark import DETECTORS, SCHEMA, best_epoch, measure_detector, reference_entries, \
    reference_figure, summarize_runs
from course.yolo.data import DATA_PRESETS, make_shapes
from course.yolo.train import RECIPES, RUN_KEYS, recipe, shapes_kwargs, train, train_kwargs, with_time_budget
from course.yolo.val import load_model

REPO = Path(__file__).resolve().parents[1]
# The chapter's three detectors first (the default), then the other shipped configs:
# ``--models YOLOv5s v5Lite-e YOLOv5-MBv3S YOLOv5-MBv3L --out results/yolo_full_cpu_more.json``.
SHIPPED = DETECTORS | {"YOLOv5s": "yolov5s.yaml", "v5Lite-e": "v5Lite-e.yaml",
                       "YOLOv5-MBv3S": "yolov5-mbv3s.yaml", "YOLOv5-MBv3L": "yolov5-mbv3l.yaml"}
TARGET = (0.60, 0.85)  # test mAP@0.5 of the best detector: hard enough to rank, not so hard nothing learns
SMOKE = dict(n_train=8, n_val=4, n_test=4, epochs=1, batch_size=4, nbs=4, time_budget_s=60)


def make_data(rec: dict, root: Path = REPO / "data" / "shapes_bench") -> Path:
    """The recipe's shapes dataset with its test split (reused when already generated with the same arguments)."""
    kw = shapes_kwargs(rec)
    preset = f"-{rec['data_preset']}" if rec.get("data_preset") else ""
    return make_shapes(root / f"{rec['imgsz']}px-{len(kw['classes'])}c-{kw['n_train']}{preset}", seed=0, **kw)


def run_one(name: str, cfg: str, rec: dict, data: Path, project: Path, seed: int, device: str = "cpu",
            tag: str = "", **start) -> dict:
    """Train one detector with one seed; the run's record (val curve, best epoch, test scores, time, load).

    ``start`` goes to ``train`` (``pretrained``, ``freeze``, ``freeze_epochs``) and into the record;
    ``tag`` names such a run's folder beside the from-scratch one.
    """
    load_start = os.getloadavg()
    run_name = f"{Path(cfg).stem}{'-' + tag if tag else ''}-seed{seed}"
    result = train(cfg, data, device=device, project=project, name=run_name, seed=seed, progress=False,
                   callbacks=with_time_budget(rec["time_budget_s"], log=f"{name} {tag + ' ' if tag else ''}seed {seed}"),
                   **train_kwargs(rec), **start)
    best = best_epoch(result)
    return dict(
        seed=seed, **({"start": {k: _shown(v) if k == "pretrained" else v for k, v in start.items()}} if start else {}), weights=_shown(result.best), train_time_s=round(result.wall_time_s, 1),
        train_images_per_s=round(result.train_images_per_s, 2), epochs_run=len(result.history),
        epochs_planned=rec["epochs"], stopped_by_budget=result.stopped_early, best_epoch=best["epoch"],
        val_map50=round(best["map50"], 4), val_map=round(best["map"], 4),
        test={k: round(v, 4) if isinstance(v, float) else v for k, v in result.test.items()},
        threads=torch.get_num_threads(), loadavg_start=[round(v, 2) for v in load_start],
        loadavg_end=[round(v, 2) for v in os.getloadavg()], date=datetime.datetime.now().isoformat(timespec="seconds"),
        history=[{k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()} for row in result.history],
    )


def resume(progress: Path, rec: dict) -> dict:
    """``{detector: {runs: {seed: record}, cost}}`` finished by an interrupted run of the same recipe, else empty.

    Every finished run is written to the progress file (``*.partial.json`` beside the JSON), so a
    reference longer than one sitting can be recorded in several; the JSON is written only when
    every run is done.
    """
    if not progress.is_file():
        return {}
    old = json.loads(progress.read_text())
    if old.get("recipe") != json.loads(json.dumps(rec)):
        print(f"not resuming {progress}: it ran another recipe (delete it, or restore the recipe)")
        return {}
    n = sum(len(m["runs"]) for m in old["models"].values())
    print(f"resuming: {n} runs already in {progress}", flush=True)
    return old["models"]


def _shown(path: Path) -> str:
    """A path relative to the repository where it lies inside it (the JSON is committed)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def measure(weights: Path, imgsz: int, min_run_time: float | None = None) -> dict:
    """Params, GFLOPs at ``imgsz`` and 640, batch-1 latency at ``imgsz`` of a checkpoint (``measure_detector``)."""
    m = measure_detector(load_model(weights, "cpu").eval(), imgsz, min_run_time=min_run_time)
    lat = m.pop("latency")["cpu"]
    return dict({k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()},
                cpu_ms_iqr=round(lat.iqr_ms, 3), latency_threads=lat.threads, latency_loadavg=round(os.getloadavg()[0], 2))


def words(models: list[dict]) -> dict:
    """The ranking sentences and the FLOPs-vs-latency sentence, computed from the recorded numbers."""
    rows = C.comparison_rows(reference_entries(dict(models=models)))
    top = max(rows, key=lambda r: r["map50"])
    lo, hi = TARGET
    verdict = "met" if lo <= top["map50"] <= hi else ("NOT met: too easy" if top["map50"] > hi else
                                                      "NOT met: too hard")
    return dict(map50=C.rank_words(rows, "map50", "test mAP@0.5")["sentence"],
                map=C.rank_words(rows, "map", "test mAP@0.5:0.95")["sentence"],
                flops_vs_latency=C.flops_latency_words(rows),
                target=(f"target (best detector's mean test mAP@0.5 in [{lo:.2f}, {hi:.2f}]): {verdict} — "
                        f"{top['name']} {top['map50']:.3f}"))


def plot(ref: dict, path: Path) -> None:
    """Save chapter 6's reference figure (loss and val mAP@0.5 per epoch, every seed) next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = reference_figure(ref)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(ref: dict) -> str:
    rows = C.comparison_rows(reference_entries(ref))
    return C.format_comparison(rows, f"{len(rows)} detectors, {ref['meta']['seeds']} seeds, "
                                     f"{ref['meta']['recipe']['imgsz']} px, {ref['meta']['device']}")


def runs_table(models: list[dict]) -> str:
    """One line per run: seed, epochs, wall time, throughput, best epoch, val and test mAP, load."""
    return text_table(
        [dict(name=m["name"], **{k: r[k] for k in ("seed", "epochs_run", "train_time_s", "train_images_per_s",
                                                    "best_epoch", "val_map50")},
              test_map50=r["test"]["map50"], test_map=r["test"]["map"],
              load=f"{r['loadavg_start'][0]:.1f}-{r['loadavg_end'][0]:.1f}") for m in models for r in m["runs"]],
        {"name": "detector", "seed": "seed", "epochs_run": "epochs", "train_time_s": "wall s",
         "train_images_per_s": "train img/s", "best_epoch": "best ep", "val_map50": "val mAP50",
         "test_map50": "test mAP50", "test_map": "test mAP", "load": "load"},
        formats={"train_time_s": "{:.0f}", "train_images_per_s": "{:.1f}", "val_map50": "{:.3f}",
                 "test_map50": "{:.3f}", "test_map": "{:.3f}"})


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=pick("full", "quick"))
    parser.add_argument("--models", nargs="+", choices=list(SHIPPED), default=list(DETECTORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (data seed is 0)")
    parser.add_argument("--threads", type=int,
                        help="default: the recipe's ('auto': 2 if the load average is < 1, else 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--project", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--data-root", type=Path, default=REPO / "data" / "shapes_bench")
    parser.add_argument("--data-preset", choices=sorted(DATA_PRESETS),
                        help="calibration probe: the recipe with this shapes preset instead of its own (the JSON's "
                             "recipe says which); write it to its own --out, not the reference")
    parser.add_argument("--note", help="stored in meta.note (e.g. what else ran at the same time)")
    parser.add_argument("--smoke", action="store_true",
                        help="the same code at tiny sizes (quick recipe, 8 images, 1 epoch, 2 seeds): for tests")
    parser.add_argument("--replot", action="store_true", help="no training: rebuild the words, table and figure")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ValueError(f"--seeds must be distinct non-negative ints, got {args.seeds}")
    rec = recipe("quick" if args.smoke else args.recipe)
    seeds = args.seeds[:2] if args.smoke else args.seeds
    if args.smoke:
        rec.update(SMOKE)
    if args.data_preset:
        if args.out is None:
            raise ValueError("--data-preset is a calibration probe: give it its own --out (not the reference JSON)")
        rec.update(DATA_PRESETS[args.data_preset])
        rec["data_preset"] = args.data_preset
    threads = args.threads or rec["threads"]
    if threads == "auto":
        threads = 2 if os.getloadavg()[0] < 1.0 else 1
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    dev = resolve_device(args.device)[0]
    name = "smoke" if args.smoke else args.recipe
    out = args.out or REPO / "results" / f"yolo_{name}_{dev.type}.json"

    if args.replot:
        ref = json.loads(out.read_text())
        if ref.get("meta", {}).get("schema") != SCHEMA:
            raise ValueError(f"--replot: {out} is not schema {SCHEMA} (re-record it without --replot)")
        ref.update(words=words(ref["models"]))
    else:
        data = make_data(rec, args.data_root)
        progress = out.with_name(out.stem + ".partial.json")
        done = resume(progress, rec)
        # Seed-major: a reference recorded over several sittings has every detector at the same
        # number of seeds whenever it is interrupted.
        for s in seeds:
            for det in args.models:
                entry = done.setdefault(det, dict(runs={}))
                if str(s) in entry["runs"]:
                    continue
                entry["runs"][str(s)] = run_one(det, SHIPPED[det], rec, data, args.project, s, args.device)
                if "cost" not in entry:  # measured on this detector's first finished run, while its weights exist
                    entry["cost"] = measure(REPO / entry["runs"][str(s)]["weights"], rec["imgsz"],
                                            min_run_time=0.05 if args.smoke else None)
                progress.write_text(json.dumps(dict(recipe=json.loads(json.dumps(rec)), models=done), indent=1))
        models = []
        for det in args.models:
            entry = done[det]
            runs = [entry["runs"][str(s)] for s in seeds]
            models.append(dict(name=det, cfg=SHIPPED[det], **entry["cost"], summary=summarize_runs(runs), runs=runs))
            print(json.dumps({k: v for k, v in models[-1].items() if k != "runs"}), flush=True)
        used = sorted({r["threads"] for m in models for r in m["runs"]})
        starts = [r["loadavg_start"] for m in models for r in m["runs"]]
        ends = [r["loadavg_end"] for m in models for r in m["runs"]]
        meta = dict(
            schema=SCHEMA, device=(f"CPU ({cpu_model()}, {'/'.join(map(str, used))} thread{'s' if used != [1] else ''})"
                                   if dev.type == "cpu" else device_name(dev)),
            cpu=cpu_model(), cores=os.cpu_count(), threads=used[0] if len(used) == 1 else used,
            torch_version=str(torch.__version__), python=platform.python_version(),
            date=datetime.datetime.now().isoformat(timespec="seconds"), recipe=json.loads(json.dumps(rec)),
            recipe_name=name, run_keys=list(RUN_KEYS), seeds=len(seeds), seed_list=seeds, data_seed=0,
            eval=("best epoch chosen on val (fitness 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95, EMA weights), scored on the "
                  "test split (own seed stream, never trained on or chosen with); conf 0.001, NMS IoU 0.6; map50/map: "
                  "YOLOv5's interpolated AP (101-point, linear), coco_map50/coco_map: the same matches integrated "
                  "as pycocotools/torchmetrics do"),
            spread="mean ± sample std over seeds; a difference is called only when the gap exceeds the sum of the stds",
            latency=f"batch 1, fp32, median of torch.utils.benchmark at the training size ({rec['imgsz']} px), "
                    "decoded output, same thread count; measured once per detector on the seed-0 best.pt",
            target="the best detector between 0.60 and 0.85 test mAP@0.5 within time_budget_s per run",
            loadavg_start=min(starts, default=None), loadavg_end=max(ends, default=None),
            load_note=(f"1-min load average at start -> end of each run on {os.cpu_count()} cores: "
                       + "; ".join(f"{m['name']} seed {r['seed']} {r['loadavg_start'][0]:.1f} -> {r['loadavg_end'][0]:.1f}"
                                   for m in models for r in m["runs"])
                       + " (load above the thread count slows training)"),
            note=args.note or "",
        )
        ref = dict(meta=meta, models=models, words=words(models))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ref, indent=1))
    if not args.replot:
        recorded = sum(len(m["runs"]) for m in done.values())
        if recorded == sum(len(m["runs"]) for m in models):
            progress.unlink(missing_ok=True)
        else:  # e.g. ``--seeds 0 1`` written while seed 2 is under way: keep it for the next sitting
            print(f"kept {progress}: it holds {recorded} runs, the JSON {sum(len(m['runs']) for m in models)}")
    plot(ref, out.with_suffix(".png"))
    print(runs_table(ref["models"]))
    print(table(ref))
    for key in ("map50", "map", "flops_vs_latency", "target"):
        print("•", ref["words"][key])
    print(f"-> {out}, {out.with_suffix('.png')}")
    return ref


if __name__ == "__main__":
    main()

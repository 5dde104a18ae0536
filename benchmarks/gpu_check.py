"""The course's GPU check: every CUDA path a learner with one GPU takes, in one run of a few minutes.

    .venv/bin/python benchmarks/gpu_check.py [--out results/gpu_check.json]     (or: make gpu-check)

Steps, each timed and checked; any failure makes the exit status non-zero:

1. ``yolo``: one epoch of YOLOv5n on a small shapes set with AMP (GradScaler), stopped and resumed
   for a second epoch, then ``evaluate(half=True)`` of the checkpoint against the training's own
   validation of the same weights;
2. ``latency``: ``course.measure.latency`` eager and CUDA-graph replay of the seven models that
   equal torchvision's (``course.models.TORCHVISION_NAMES``) at batch 1 and 32, 224x224, and
   the models still on the CPU afterwards;
3. ``guidelines``: ``python -m course.guidelines --device cuda`` (eager and CUDA-graph timings),
   written next to ``--out`` as ``guidelines_gpu_reference.json/.png``;
4. ``notebooks``: chapters 01, 03, 05 and 06 under nbval in quick mode, the GPU visible.

One JSON (device name, torch/CUDA/cuDNN versions, every figure) goes to ``--out`` and a short
table to stdout. Without a CUDA GPU it stops at once with "no CUDA GPU visible". ``--device cpu
--smoke`` runs the same steps on the CPU at tiny sizes (notebooks collected, not executed): what
the unit test runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from course.device import device_name, resolve_device  # noqa: E402
from course.tables import text_table  # noqa: E402

SCHEMA = "course.gpu_check/1"
CHAPTERS = ("01_mobilenet_v1", "03_mobilenet_v3", "05_shufflenet_v2", "06_yolov5_backbone_swap")


@dataclass(frozen=True)
class Sizes:
    """How big each step is: the real check, or the smoke run that proves the code path on a CPU."""

    n_train: int
    n_val: int
    imgsz: int
    batch_size: int
    latency_batches: tuple[int, ...]
    latency_size: int
    min_run_time: float
    guidelines_args: tuple[str, ...]
    execute_notebooks: bool
    timeout_s: int


FULL = Sizes(n_train=128, n_val=32, imgsz=128, batch_size=16, latency_batches=(1, 32), latency_size=224,
             min_run_time=0.5, guidelines_args=("--min-run-time", "0.5"), execute_notebooks=True, timeout_s=300)
SMOKE = Sizes(n_train=8, n_val=4, imgsz=64, batch_size=4, latency_batches=(1, 2), latency_size=32,
              min_run_time=0.01, guidelines_args=("--quick", "--guidelines", "G1", "--scales", "1",
                                                  "--min-run-time", "0.01", "--threads", "1"),
              execute_notebooks=False, timeout_s=120)


class CheckFailed(AssertionError):
    """A step ran but what it produced is wrong."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), path])))


def _run(cmd: list[str], timeout_s: int, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env={**_env(), **env}, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc


# ----------------------------------------------------------------------------- steps

def step_yolo(dev: torch.device, sizes: Sizes, work: Path, out_dir: Path) -> dict:
    """One epoch with AMP, stop, resume for the second, then evaluate(half=True) of the checkpoint."""
    from course.yolo.data import YoloDataset, create_dataloader, load_data_config, make_shapes
    from course.yolo.train import train
    from course.yolo.val import evaluate, load_model

    data = make_shapes(work / "shapes", n_train=sizes.n_train, n_val=sizes.n_val, imgsz=sizes.imgsz, seed=0)
    common = dict(epochs=2, imgsz=sizes.imgsz, batch_size=sizes.batch_size, nbs=sizes.batch_size, device=str(dev),
                  project=work / "runs", name="yolov5n", progress=False, cache=True)
    first = train("yolov5n.yaml", data, callbacks={"on_epoch_end": lambda epoch, row: epoch == 0}, **common)
    check(first.stopped_early and len(first.history) == 1, f"the first run should stop after one epoch: {first}")
    resumed = train(resume=True, project=work / "runs", name="yolov5n", device=str(dev), progress=False)
    check(len(resumed.history) == 2, f"the resumed run should add one epoch, history {resumed.history}")
    check(resumed.device == str(dev), f"trained on {resumed.device}, asked for {dev}")
    ckpt = torch.load(resumed.last, map_location="cpu", weights_only=True)
    amp = dev.type == "cuda"
    check(("scale" in ckpt["scaler"]) == amp, f"GradScaler state {ckpt['scaler']} does not match amp={amp}")
    losses = [row["loss"] for row in resumed.history]
    check(all(math.isfinite(v) for v in losses), f"non-finite training loss {losses}")

    cfg = load_data_config(data)
    loader = create_dataloader(YoloDataset(cfg["val"], sizes.imgsz, nc=cfg["nc"]), 2 * sizes.batch_size,
                               shuffle=False)
    model = load_model(resumed.last, dev)
    half, full = (evaluate(model, loader, half=h, progress=False) for h in (True, False))
    logged = resumed.history[-1]
    for key in ("map50", "map"):
        check(0.0 <= half[key] <= 1.0 and 0.0 <= full[key] <= 1.0, f"{key} out of range: {half[key]}, {full[key]}")
        check(abs(half[key] - logged[key]) <= 0.01,
              f"evaluate(half=True) {key} {half[key]:.4f} differs from the training's validation {logged[key]:.4f}")
    return dict(epochs=len(resumed.history), amp=amp, loss=losses, train_images_per_s=resumed.train_images_per_s,
                map50_half=float(half["map50"]), map_half=float(half["map"]), map50_fp32=float(full["map50"]),
                map_fp32=float(full["map"]), val_ms_per_image_half=half["speed_ms"]["inference"],
                val_ms_per_image_fp32=full["speed_ms"]["inference"], n_train=sizes.n_train, n_val=sizes.n_val,
                imgsz=sizes.imgsz, batch_size=sizes.batch_size)


def step_latency(dev: torch.device, sizes: Sizes, work: Path, out_dir: Path) -> dict:
    """Eager and CUDA-graph latency of the torchvision-equal models; each model stays where it was."""
    from course.measure import latency
    from course.models import TORCHVISION_NAMES, build_model

    rows = []
    for name in TORCHVISION_NAMES:
        model = build_model(name).eval()
        for batch in sizes.latency_batches:
            shape = (batch, 3, sizes.latency_size, sizes.latency_size)
            eager = latency(model, shape, device=dev, min_run_time=sizes.min_run_time)
            graph = latency(model, shape, device=dev, cuda_graph=True, min_run_time=sizes.min_run_time)
            check(eager.device == dev.type and graph.device == dev.type, f"{name}: timed on {eager.device}")
            if dev.type == "cuda":
                check(graph.cuda_graph and not graph.note and not eager.note,
                      f"{name} batch {batch}: {graph.note or eager.note or 'no CUDA graph'}")
            rows.append(dict(model=name, batch=batch, size=sizes.latency_size, eager_ms=eager.median_ms,
                             eager_iqr_ms=eager.iqr_ms, graph_ms=graph.median_ms, graph_iqr_ms=graph.iqr_ms,
                             cuda_graph=graph.cuda_graph, note=graph.note))
        where = {p.device.type for p in model.parameters()} | {str(p.dtype) for p in model.parameters()}
        check(where == {"cpu", "torch.float32"} and not model.training,
              f"{name}: latency changed the model (now {sorted(where)}, training={model.training})")
    return dict(rows=rows, device_name=device_name(dev))


def step_guidelines(dev: torch.device, sizes: Sizes, work: Path, out_dir: Path) -> dict:
    """``python -m course.guidelines --device cuda``: eager and CUDA-graph timings of G1-G4."""
    prefix = "guidelines_gpu_reference" if dev.type == "cuda" else "guidelines_smoke"
    out, plot = out_dir / f"{prefix}.json", out_dir / f"{prefix}.png"
    _run([sys.executable, "-m", "course.guidelines", "--device", dev.type, "--out", str(out), "--plot", str(plot),
          "--no-progress", *sizes.guidelines_args], timeout_s=sizes.timeout_s,
         COURSE_QUICK="1" if "--quick" in sizes.guidelines_args else "0")
    results = json.loads(out.read_text())
    meta = results["meta"]
    expected = ["eager", "cuda_graph"] if dev.type == "cuda" else ["eager"]
    check(meta["device"] == dev.type and meta["timings"] == expected,
          f"guidelines ran on {meta['device']} with timings {meta['timings']}, expected {dev.type} {expected}")
    speeds = {f"{g} x{p['scale']} {p['variant']} {t}": p["timing"][t]["median_ms"]
              for g, block in results["guidelines"].items() for p in block["points"] for t in meta["timings"]}
    return dict(json=str(out), plot=str(plot), device_name=meta["device_name"], timings=meta["timings"],
                wall_time_s=meta["wall_time_s"], median_ms=speeds)


def step_notebooks(dev: torch.device, sizes: Sizes, work: Path, out_dir: Path) -> dict:
    """Chapters under nbval in quick mode (each in its own kernel); collected only in the smoke run."""
    figures = {}
    for chapter in CHAPTERS:
        cmd = [sys.executable, "-m", "pytest", f"notebooks/{chapter}.ipynb", "--nbval-lax", "--nbval-current-env",
               "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q"]
        if not sizes.execute_notebooks:
            cmd.append("--collect-only")
        t0 = time.perf_counter()
        proc = _run(cmd, timeout_s=sizes.timeout_s, COURSE_QUICK="1")
        summary = (proc.stdout.strip().splitlines() or [""])[-1]
        figures[chapter] = dict(seconds=round(time.perf_counter() - t0, 1), summary=summary)
    return figures


STEPS = {"yolo": step_yolo, "latency": step_latency, "guidelines": step_guidelines, "notebooks": step_notebooks}


# ----------------------------------------------------------------------------- report

def _summary(name: str, step: dict) -> str:
    if not step["ok"]:
        return step["error"].strip().splitlines()[-1][:90]
    f = step["figures"]
    if name == "yolo":
        return f"{f['epochs']} epochs, amp {f['amp']}, mAP50 half {f['map50_half']:.3f} / fp32 {f['map50_fp32']:.3f}"
    if name == "latency":
        return f"{len(f['rows'])} timings (eager + graph)"
    if name == "guidelines":
        return f"{len(f['median_ms'])} points, timings {'+'.join(f['timings'])}"
    return ", ".join(f"{k[:2]} {v['seconds']:.0f}s" for k, v in f.items())


def table(report: dict) -> str:
    title = (f"{report['device_name']} | torch {report['torch']} (CUDA {report['cuda']}, cuDNN {report['cudnn']})"
             + (" | SMOKE (tiny sizes, not meaningful)" if report["smoke"] else ""))
    steps = [{"step": name, "result": "ok" if step["ok"] else "FAIL", "seconds": step["seconds"],
              "summary": _summary(name, step)} for name, step in report["steps"].items()]
    tables = [text_table(steps, {"step": "step", "result": "result", "seconds": "s", "summary": "summary"},
                         formats={"seconds": "{:.1f}"}, title=title, align={"result": "<", "summary": "<"})]
    latency = report["steps"].get("latency", {})
    if latency.get("ok"):
        tables.append(text_table(latency["figures"]["rows"],
                                 {"model": "model", "batch": "batch", "eager_ms": "eager ms", "graph_ms": "graph ms"},
                                 formats={"eager_ms": "{:.3f}", "graph_ms": "{:.3f}"}))
    return "\n\n".join(tables)


def _cudnn() -> int | None:
    return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu_check.json", help="the JSON report")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, notebooks only collected (CPU test run)")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    args = parser.parse_args(argv)
    dev, _ = resolve_device(args.device)
    if dev.type != "cuda" and args.device == "cuda":
        print("no CUDA GPU visible (torch.cuda.is_available() is False): the GPU check needs one. "
              "`--device cpu --smoke` runs the same steps on the CPU at tiny sizes.", file=sys.stderr)
        return 2
    if dev.type != "cuda" and not args.smoke:
        print("--device cpu needs --smoke: the full check is sized for a GPU.", file=sys.stderr)
        return 2
    sizes = SMOKE if args.smoke else FULL
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = dict(schema=SCHEMA, device=str(dev), device_name=device_name(dev), torch=torch.__version__,
                  cuda=torch.version.cuda, cudnn=_cudnn(), smoke=args.smoke, python=platform.python_version(),
                  platform=platform.platform(), date=datetime.datetime.now().isoformat(timespec="seconds"), steps={})
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        for name in args.steps:
            t0 = time.perf_counter()
            try:
                report["steps"][name] = dict(ok=True, figures=STEPS[name](dev, sizes, Path(work), out_dir))
            except Exception:  # noqa: BLE001 - every failure is recorded, then the next step runs
                report["steps"][name] = dict(ok=False, error=traceback.format_exc()[-3000:])
            report["steps"][name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"{name}: {'ok' if report['steps'][name]['ok'] else 'FAIL'} "
                  f"({report['steps'][name]['seconds']:.0f} s)", flush=True)
    report["wall_time_s"] = round(time.perf_counter() - started, 1)
    report["ok"] = all(step["ok"] for step in report["steps"].values())
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(table(report))
    for name, step in report["steps"].items():
        if not step["ok"]:
            print(f"\n--- {name} failed ---\n{step['error']}", file=sys.stderr)
    print(f"-> {args.out} ({report['wall_time_s']:.0f} s)")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

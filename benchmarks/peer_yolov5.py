"""The course's YOLOv5 trainer side by side with ultralytics/yolov5 v7.0: throughput and time to accuracy.

Real measurement (an otherwise idle machine; about an hour on 2 CPU cores):

    python benchmarks/peer_yolov5.py --n-train 600 --n-val 150 --n-test 300 --imgsz 256 --batch 16 \
        --epochs 30 --threads 2 --workers 2 --out results/peer_yolov5_cpu.json

Smoke test (a minute plus the one-off venv install): ``--n-train 32 --n-val 8 --n-test 8 --imgsz 64
--epochs 1 --batch 8 --threads 1 --workers 0``.

What it does:

* The peer runs from the ``yolov5==7.0.14`` PyPI package (v7.0 repackaged) in its **own** venv,
  ``.peer/venv`` (git-ignored), created on first use with plain pip; it is never a dependency of
  the course. Offline switches, none of which patches its source: ``YOLOv5_AUTOINSTALL=False``,
  ``YOLOV5_CONFIG_DIR`` holding a TTF named ``Arial.ttf``, ``setuptools<81`` (``pkg_resources``),
  a ``sitecustomize.py`` restoring ``np.trapz`` (numpy 2), ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``,
  ``--weights '' --cfg yolov5n.yaml``, ``--noplots``, ``opencv-python<5`` and its headless twin
  (the package requires ``opencv-python``, whose 5.x breaks v7.0), ``HF_HUB_OFFLINE=1``.
* One dataset (``course.yolo.data.make_shapes`` with the classes, object counts and object sizes of
  ``RECIPES[--recipe]``, sizes scaled to ``--imgsz``) for both; its **test** split (own seed
  stream) is used by nobody during training.
* Same model (YOLOv5n, nc from the data), image size, batch, epochs, seed, dataloader workers and
  torch threads; the hyperparameters are hyp.scratch-low for both (``--hyp recipe``: the course
  recipe's changes to it, for both). Each trainer otherwise keeps its own defaults (the course:
  warm-up capped at half the run, EMA ramp from the run length; YOLOv5: AutoAnchor, tau 2000).
  The two run back to back, each in a fresh process (``--order``): interleaving epochs would need
  one trainer to pause inside the other's loop.
* Per-epoch timing. Course: ``on_epoch_end`` plus a timer around ``course.yolo.val.evaluate``.
  Peer: timed **externally** through its own ``Callbacks`` hooks (its ``results.csv`` has no
  times): training loop = ``on_train_epoch_start`` → ``on_train_epoch_end``, validation = from
  there to ``on_fit_epoch_end``. Elapsed time counts from the first epoch's start.
* Accuracy, both by the course's evaluator (``course.yolo.val.evaluate``): the peer's per-epoch
  checkpoints (``--save-period 1``) and its best/last ``.pt`` are converted to the course's
  ``DetectionModel`` — its layers and state-dict names are YOLOv5's, so ``load_state_dict`` is
  strict, and the converted model must reproduce the peer's own output on a random input.
  Converting, rather than exporting the peer's predictions, keeps one evaluator and one NMS for
  both, without v7.0's NMS time limit (which drops predictions on a slow CPU). The peer stores its
  checkpoints in fp16, so its per-epoch figures are of fp16-rounded weights run in fp32.

Goals stated in the output: the course's training throughput >= 1.0x the peer's (median
per-epoch training time), and the course's time to reach the peer's final val mAP@0.5 <= 0.5x the
time the peer took to reach it (both from the per-epoch val mAP@0.5, course evaluator).
A JSON goes to ``--out`` only when it is given. Never pass/fail on time: it reports.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PEER_DIR = REPO / ".peer"
PEER_SIDE = Path(__file__).with_name("peer_yolov5_side.py")
PEER_PACKAGES = (("torch==2.14.1", "torchvision==0.29.1"),
                 ("yolov5==7.0.14", "opencv-python<5", "opencv-python-headless<5", "setuptools<81"))
# Pin both OpenCV wheels below 5: yolov5 requires opencv-python, and both write the same cv2 package.
SITECUSTOMIZE = "import numpy as np\nif not hasattr(np, 'trapz'):\n    np.trapz = np.trapezoid\n"
THROUGHPUT_GOAL, TIME_TO_MAP_GOAL = 1.0, 0.5
MODEL_CFG = "yolov5n.yaml"


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the peer's venv and environment ---------------------------------------------------------

def ensure_peer_venv(venv: Path) -> dict:
    """Create ``venv`` with the peer's packages unless a completed install is already there."""
    python, stamp = venv / "bin" / "python", venv / ".installed.json"
    if stamp.is_file() and python.is_file():
        return json.loads(stamp.read_text())
    t0 = time.perf_counter()
    log(f"creating the peer venv {venv} (one-off, a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    for group in PEER_PACKAGES:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *group], check=True)
    # the last OpenCV wheel installed owns cv2/; reinstall the headless one so the files are its own
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps",
                    "opencv-python-headless<5"], check=True)
    return record_install(venv, time.perf_counter() - t0)


def record_install(venv: Path, install_s: float) -> dict:
    """Check the peer venv imports (OpenCV 4.x) and write its versions, install time and size to its stamp."""
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import json, cv2, numpy, torch, yolov5; print(json.dumps(dict("
         "cv2=cv2.__version__, numpy=numpy.__version__, torch=torch.__version__, yolov5=yolov5.__version__)))"],
        check=True, capture_output=True, text=True, env=peer_env(venv.parent, 1)).stdout
    versions = json.loads(out.strip().splitlines()[-1])  # the first import of ultralytics prints a banner first
    if not versions["cv2"].startswith("4."):
        raise RuntimeError(f"the peer venv has OpenCV {versions['cv2']}; v7.0 needs 4.x")
    info = dict(versions, install_s=round(install_s, 1), disk_gb=round(_du(venv) / 1e9, 2))
    (venv / ".installed.json").write_text(json.dumps(info))
    return info


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def peer_env(peer_dir: Path, threads: int) -> dict:
    """Environment for the peer's processes: offline switches, a font, the np.trapz shim, threads."""
    config, shim = peer_dir / "config", peer_dir / "shim"
    config.mkdir(parents=True, exist_ok=True)
    shim.mkdir(parents=True, exist_ok=True)
    font = config / "Arial.ttf"
    if not font.is_file():
        import matplotlib

        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(YOLOv5_AUTOINSTALL="False", YOLOV5_CONFIG_DIR=str(config), PYTHONPATH=str(shim),
               TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


# --- data --------------------------------------------------------------------------------------

def make_datasets(root: Path, args) -> tuple[Path, Path]:
    """Train/val for both trainers and the dataset's own test split (its own seed stream); the recipe's shapes, scaled."""
    from course.yolo.data import make_shapes
    from course.yolo.train import recipe, shapes_kwargs

    rec = recipe(args.recipe)
    kw = shapes_kwargs(rec)
    scale = args.imgsz / rec["imgsz"]
    kw.update(imgsz=args.imgsz, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
              size_range=tuple(max(4.0, s * scale) for s in kw["size_range"]))
    data = make_shapes(root / "shapes", seed=args.seed, **kw)
    return data, data  # the test split is the yaml's "test" folder, which neither trainer reads


def merged_hyp(name: str) -> dict:
    """hyp.scratch-low, or with the course recipe's changes (``--hyp recipe``)."""
    from course.yolo.loss import load_hyp
    from course.yolo.train import recipe

    hyp = load_hyp(None)
    return {**hyp, **recipe("full")["hyp"]} if name == "recipe" else hyp


# --- the two trainers --------------------------------------------------------------------------

def run_peer(args, data: Path, work: Path, hyp: dict) -> dict:
    import yaml

    project, name = work / "peer", "train"
    shutil.rmtree(project, ignore_errors=True)
    hyp_file = work / "hyp_peer.yaml"
    hyp_file.write_text(yaml.safe_dump(hyp))
    argv = ["--data", str(data), "--weights", "", "--cfg", MODEL_CFG, "--hyp", str(hyp_file),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch), "--imgsz", str(args.imgsz),
            "--workers", str(args.workers), "--seed", str(args.seed), "--device", "cpu", "--noplots",
            "--save-period", "1", "--project", str(project), "--name", name, "--exist-ok", *args.peer_args]
    if args.cache:
        argv += ["--cache", "ram"]
    timings = work / "peer_epochs.jsonl"
    spec = work / "peer_train.json"
    spec.write_text(json.dumps(dict(argv=argv, threads=args.threads, timings=str(timings))))
    log(f"[peer] yolov5 v7.0 train.py {' '.join(argv)}")
    t0, load0 = time.perf_counter(), os.getloadavg()
    _run([str(args.venv / "bin" / "python"), _peer_side(work), "train", str(spec)],
         peer_env(args.venv.parent, args.threads), work / "peer_train.log", args.verbose)
    epochs = [json.loads(line) for line in timings.read_text().splitlines() if line.strip()]
    return dict(epochs=epochs, wall_s=time.perf_counter() - t0, loadavg=[load0[0], os.getloadavg()[0]],
                weights=project / name / "weights")


def run_course(args, data: Path, work: Path, hyp: dict) -> dict:
    timings = work / "course_epochs.jsonl"
    spec = work / "course_train.json"
    spec.write_text(json.dumps(dict(data=str(data), project=str(work / "course"), epochs=args.epochs,
                                    imgsz=args.imgsz, batch=args.batch, workers=args.workers, seed=args.seed,
                                    threads=args.threads, cache=args.cache, hyp=hyp, timings=str(timings))))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(REPO)}
    log(f"[course] course.yolo.train.train({MODEL_CFG}, epochs={args.epochs}, imgsz={args.imgsz}, "
        f"batch_size={args.batch}, workers={args.workers}, cache={args.cache})")
    t0, load0 = time.perf_counter(), os.getloadavg()
    _run([sys.executable, str(Path(__file__).resolve()), "--course-worker", str(spec)], env,
         work / "course_train.log", args.verbose)
    epochs = [json.loads(line) for line in timings.read_text().splitlines() if line.strip()]
    return dict(epochs=epochs, wall_s=time.perf_counter() - t0, loadavg=[load0[0], os.getloadavg()[0]],
                weights=work / "course" / "train" / "weights")


def _peer_side(work: Path) -> str:
    """The peer-side script, copied out of benchmarks/: v7.0's ``attempt_load`` imports a top-level
    ``models`` package, and a script's own folder comes first on ``sys.path`` (ours has models.py)."""
    copy = work / PEER_SIDE.name
    shutil.copy(PEER_SIDE, copy)
    return str(copy)


def _run(cmd: list[str], env: dict, log_file: Path, verbose: bool) -> None:
    with log_file.open("w") as f:
        proc = subprocess.run(cmd, env=env, cwd=log_file.parent, stdout=None if verbose else f,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "" if verbose else "\n".join(log_file.read_text().splitlines()[-30:])
        raise RuntimeError(f"{cmd[1]} failed with exit code {proc.returncode}; log {log_file}\n{tail}")


def course_worker(spec_path: str) -> None:
    """Runs in a fresh process: the course's trainer, with per-epoch train/val times to a JSON-lines file."""
    import torch

    import course.yolo.val as course_val
    from course.yolo.train import train

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    out = Path(spec["timings"])
    out.write_text("")
    evaluate, val_s, start = course_val.evaluate, [], []

    def timed_evaluate(*a, **k):
        t = time.perf_counter()
        result = evaluate(*a, **k)
        val_s.append(time.perf_counter() - t)
        return result

    course_val.evaluate = timed_evaluate  # train() imports it at call time

    def on_epoch_end(epoch, row):
        now = time.perf_counter()
        if not start:  # the first epoch began time_s before now
            start.append(now - row["time_s"])
        with out.open("a") as f:
            f.write(json.dumps(dict(epoch=epoch, train_s=row["time_s"] - val_s[-1], val_s=val_s[-1],
                                    elapsed_s=now - start[0], map50=row["map50"], map=row["map"],
                                    threads=torch.get_num_threads())) + "\n")

    train(MODEL_CFG, spec["data"], epochs=spec["epochs"], imgsz=spec["imgsz"], batch_size=spec["batch"],
          hyp=spec["hyp"], device="cpu", seed=spec["seed"], project=spec["project"], name="train",
          workers=spec["workers"], cache=spec["cache"], progress=False, callbacks={"on_epoch_end": on_epoch_end})


# --- evaluation by the course's evaluator ------------------------------------------------------

def convert_peer(args, peer: dict, work: Path) -> dict:
    """Peer checkpoints → plain state dicts (in the peer venv) → course DetectionModels, checked."""
    weights = peer["weights"]
    names = [f"epoch{e['epoch']}.pt" for e in peer["epochs"]] + ["best.pt", "last.pt"]
    out_dir = work / "peer_converted"
    out_dir.mkdir(exist_ok=True)
    pairs = [(str(weights / n), str(out_dir / n)) for n in names if (weights / n).is_file()]
    spec = work / "peer_export.json"
    spec.write_text(json.dumps(dict(pairs=pairs, imgsz=args.imgsz)))
    _run([str(args.venv / "bin" / "python"), _peer_side(work), "export", str(spec)],
         peer_env(args.venv.parent, args.threads), work / "peer_export.log", False)
    return {Path(dst).name: Path(dst) for _, dst in pairs}


def course_model_from_peer(path: Path, nc: int):
    import torch

    from course.yolo.model import DetectionModel

    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = DetectionModel(blob["yaml"], nc=nc)
    model.load_state_dict(blob["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        diff = (model(blob["x"])[0] - blob["y"]).abs().max().item()
    if diff > 1e-3 * max(1.0, blob["y"].abs().max().item()):
        raise RuntimeError(f"{path.name}: the converted model's output differs from the peer's by {diff:g}")
    return model, diff


def evaluator(yaml_file: Path, split: str, imgsz: int, batch: int):
    from course.yolo.data import YoloDataset, create_dataloader, load_data_config
    from course.yolo.val import evaluate

    cfg = load_data_config(yaml_file)
    loader = create_dataloader(YoloDataset(cfg[split], imgsz, augment=False, hyp=None, nc=cfg["nc"]),
                               batch, shuffle=False, workers=0, seed=0)

    def run(model) -> dict:
        m = evaluate(model, loader, progress=False, names=cfg["names"])
        return dict(map50=float(m["map50"]), map=float(m["map"]))

    return run, cfg["nc"]


def first_reaching(epochs: list[dict], key: str, target: float):
    """(elapsed seconds, epoch) of the first epoch whose ``key`` is >= target, or (None, None)."""
    for e in epochs:
        if e[key] >= target - 1e-12:
            return e["elapsed_s"], e["epoch"]
    return None, None


def summarise(name: str, run: dict, n_train: int) -> dict:
    train_s = [e["train_s"] for e in run["epochs"]]
    val_s = [e["val_s"] for e in run["epochs"]]
    return dict(name=name, epochs=len(train_s), train_s_median=statistics.median(train_s),
                val_s_median=statistics.median(val_s), train_s_total=sum(train_s),
                images_per_s=n_train / statistics.median(train_s), images_per_s_total=n_train * len(train_s) / sum(train_s),
                wall_s=run["wall_s"], loadavg=run["loadavg"])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-val", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both trainers")
    parser.add_argument("--workers", type=int, default=2, help="dataloader workers for both trainers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", default="full", help="RECIPES entry whose shapes (classes, objects, sizes) to draw")
    parser.add_argument("--hyp", choices=("scratch-low", "recipe"), default="scratch-low")
    parser.add_argument("--cache", action="store_true", help="decoded images in RAM for both (--cache ram)")
    parser.add_argument("--order", choices=("peer-first", "course-first"), default="peer-first")
    parser.add_argument("--peer-args", nargs=argparse.REMAINDER, default=[], help="more v7.0 train.py flags, last")
    parser.add_argument("--venv", type=Path, default=PEER_DIR / "venv")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "peer_yolov5")
    parser.add_argument("--out", type=Path, help="write the JSON here (e.g. results/peer_yolov5_cpu.json)")
    parser.add_argument("--verbose", action="store_true", help="show both trainers' own output")
    parser.add_argument("--course-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.course_worker:
        course_worker(args.course_worker)
        return {}
    for name in ("n_train", "n_val", "n_test", "imgsz", "batch", "epochs", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.imgsz % 32:
        parser.error(f"--imgsz must be a multiple of 32, got {args.imgsz}")
    args.venv = args.venv.resolve()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(args.threads)
    venv_info = ensure_peer_venv(args.venv)
    log(f"peer venv {args.venv}: yolov5 {venv_info['yolov5']}, torch {venv_info['torch']}, cv2 {venv_info['cv2']}, "
        f"numpy {venv_info['numpy']} (installed in {venv_info['install_s']:.0f} s, {venv_info['disk_gb']:.1f} GB)")
    data, test = make_datasets(work / "data", args)
    hyp = merged_hyp(args.hyp)

    runs = {}
    for who in (("peer", "course") if args.order == "peer-first" else ("course", "peer")):
        runs[who] = (run_peer if who == "peer" else run_course)(args, data, work, hyp)

    val_eval, nc = evaluator(data, "val", args.imgsz, args.batch * 2)
    test_eval, _ = evaluator(test, "test", args.imgsz, args.batch * 2)
    converted = convert_peer(args, runs["peer"], work)
    max_diff = 0.0
    for e in runs["peer"]["epochs"]:
        model, diff = course_model_from_peer(converted[f"epoch{e['epoch']}.pt"], nc)
        max_diff = max(max_diff, diff)
        e.update(val_eval(model))
    from course.yolo.val import load_model

    test_rows = {}
    for which in ("best", "last"):
        test_rows[("peer", which)] = test_eval(course_model_from_peer(converted[f"{which}.pt"], nc)[0])
        test_rows[("course", which)] = test_eval(load_model(runs["course"]["weights"] / f"{which}.pt"))

    summary = {who: summarise(who, runs[who], args.n_train) for who in runs}
    target = runs["peer"]["epochs"][-1]["map50"]
    peer_t, peer_ep = first_reaching(runs["peer"]["epochs"], "map50", target)
    course_t, course_ep = first_reaching(runs["course"]["epochs"], "map50", target)
    throughput_ratio = summary["course"]["images_per_s"] / summary["peer"]["images_per_s"]
    time_ratio = None if course_t is None else course_t / max(peer_t, 1e-9)

    from course.tables import text_table

    rows = [dict(trainer={"peer": "yolov5 v7.0", "course": "course"}[w], **{k: summary[w][k] for k in (
        "epochs", "images_per_s", "train_s_median", "val_s_median", "wall_s")},
        test_map50=test_rows[(w, "best")]["map50"], test_map=test_rows[(w, "best")]["map"],
        last_test_map50=test_rows[(w, "last")]["map50"], final_val_map50=runs[w]["epochs"][-1]["map50"])
        for w in ("peer", "course")]
    log("")
    log(text_table(rows, {"trainer": "trainer", "epochs": "epochs", "images_per_s": "train img/s",
                          "train_s_median": "train s/epoch", "val_s_median": "val s/epoch", "wall_s": "wall s",
                          "final_val_map50": "val mAP50 (last ep)", "test_map50": "test mAP50 (best)",
                          "test_map": "test mAP50-95 (best)", "last_test_map50": "test mAP50 (last)"},
                   formats={k: "{:.3f}" for k in ("test_map50", "test_map", "last_test_map50", "final_val_map50")}
                   | {k: "{:.2f}" for k in ("images_per_s", "train_s_median", "val_s_median")} | {"wall_s": "{:.0f}"},
                   title=f"YOLOv5n, {args.n_train} train / {args.n_val} val / {args.n_test} test shapes images at "
                         f"{args.imgsz} px, batch {args.batch}, {args.epochs} epochs, {args.threads} threads, "
                         f"{args.workers} workers, hyp {args.hyp}, {platform.processor() or platform.machine()}, "
                         f"torch {torch.__version__}"))
    log("mAP by the course's evaluator (course.yolo.val.evaluate) for both; the peer's checkpoints converted "
        f"to the course's DetectionModel (outputs agree to {max_diff:.1e}). Peer epochs timed through its "
        "Callbacks hooks; images/s = train images / median training seconds per epoch.")
    ok1 = throughput_ratio >= THROUGHPUT_GOAL
    log(f"goal 1: course training throughput >= {THROUGHPUT_GOAL:.1f}x the peer's: {throughput_ratio:.2f}x -> "
        f"{'MET' if ok1 else 'NOT MET'}")
    ok2 = time_ratio is not None and time_ratio <= TIME_TO_MAP_GOAL and target > 0
    course_txt = "never reached" if course_t is None else f"{course_t:.0f} s (epoch {course_ep + 1})"
    log(f"goal 2: course time to the peer's final val mAP@0.5 {target:.3f} <= {TIME_TO_MAP_GOAL:.1f}x the peer's: "
        f"peer {peer_t:.0f} s (epoch {peer_ep + 1}), course {course_txt}"
        f"{'' if time_ratio is None else f' = {time_ratio:.2f}x'} -> "
        f"{'MET' if ok2 else 'NOT MET' if target > 0 else 'not measurable (the peer ended at mAP@0.5 0)'}")
    first = summary[next(iter(runs))]["loadavg"][0]
    log("1-min load average at start/end of each run (a run's own threads count in its end figure): "
        + ", ".join(f"{w} {a:.1f}/{b:.1f}" for w, (a, b) in ((w, summary[w]["loadavg"]) for w in runs))
        + ("  -- the machine was busy before the first run: the timings are not meaningful" if first >= 1 else ""))

    result = dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"), machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(), torch=torch.__version__, peer=venv_info, settings=dict(
            {k: getattr(args, k) for k in ("n_train", "n_val", "n_test", "imgsz", "batch", "epochs", "threads",
                                           "workers", "seed", "recipe", "hyp", "cache", "order", "peer_args")},
            model=MODEL_CFG), summary=summary, test={f"{w}_{which}": v for (w, which), v in test_rows.items()},
        epochs={w: runs[w]["epochs"] for w in runs}, conversion_max_abs_diff=max_diff,
        goals=dict(throughput_ratio=throughput_ratio, throughput_met=ok1, target_map50=target,
                   peer_time_to_target_s=peer_t, course_time_to_target_s=course_t, time_ratio=time_ratio,
                   time_met=ok2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        log(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

"""Chapter 7's reference run: the classifiers and a detector taken to each runtime and to int8, at full size.

    .venv/bin/python benchmarks/deploy.py [--out results/deploy_cpu.json] [--threads 2]
        [--checkpoint "MobileNet V2=runs/mbv2.pt" ...] [--detector-checkpoint runs/det/weights/best.pt]

Trains MobileNet V2, MobileNet V3-Small, ShuffleNet V2 x1.0 and their unbounded-activation variants
with ``course.classify.RECIPES["full"]`` (or loads ``--checkpoint LABEL=PATH`` files written by
``course.classify.save_checkpoint``) and chapter 6's ShuffleNet V2 detector with
``course.yolo.train.RECIPES["full"]`` (or ``--detector-checkpoint``), then measures every row of the
chapter (``course.deploy.study.run_study``): eager, BN-folded eager, torch.compile, ONNX Runtime
fp32 and int8 at batch 1 and 8, sizes, test-split top-1 and mAP@0.5, per-tensor int8, the activation
study. The JSON records device, threads, torch and onnxruntime versions, date and load average; a
PNG of the speed-ups goes beside it. ``--smoke`` runs the same steps with the quick recipes, two
timing rounds and no torch.compile (what the unit test runs; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

SCHEMA = "course.deploy_cpu/1"


def _checkpoint(text: str) -> tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"--checkpoint takes LABEL=PATH, got {text!r}")
    return label, path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "results" / "deploy_cpu.json")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: torch's)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 30; smoke 2)")
    p.add_argument("--checkpoint", type=_checkpoint, action="append", default=[], metavar="LABEL=PATH")
    p.add_argument("--detector-checkpoint", type=Path, default=None)
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it takes minutes per model)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="ONNX files, detector data and the trained classifiers, kept for a rerun (default: a temp dir)")
    p.add_argument("--smoke", action="store_true", help="quick recipes, 2 rounds, no compile: proves the path")
    return p.parse_args(argv)


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def main(argv=None) -> int:
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger().setLevel(logging.ERROR)  # ONNX Runtime's quantizer advises pre-processing on every call
    import onnxruntime

    from course.deploy.runtimes import RUNTIMES
    from course.deploy.study import run_study
    from course.device import cpu_model
    from course.widgets.ch07_deploy import format_rows, plot_speedups

    args = parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print(f"--threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    mode = "quick" if args.smoke else "full"
    runtimes = [r for r in RUNTIMES if not (r == "compile" and (args.no_compile or args.smoke))]
    rounds = args.rounds if args.rounds is not None else (2 if args.smoke else 30)
    load_start, start = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        study = run_study(root, mode, runtimes=runtimes, threads=torch.get_num_threads(), rounds=rounds, number=2 if args.smoke else 5,
                          checkpoints=dict(args.checkpoint), detector_checkpoint=args.detector_checkpoint,
                          progress=not args.smoke, keep_dir=args.workdir / "classifiers" if args.workdir else None)
    from course import classify
    from course.yolo import train as yolo_train

    meta = dict(schema=SCHEMA, smoke=args.smoke, recipe=mode, classify_recipe=classify.recipe(mode),
                detector_recipe=yolo_train.recipe(mode), device=cpu_model() or platform.processor() or "cpu",
                threads=torch.get_num_threads(), torch=str(torch.__version__), onnxruntime=onnxruntime.__version__,
                python=platform.python_version(), date=datetime.datetime.now().isoformat(timespec="seconds"),
                load_average=[round(v, 2) for v in load_start], load_average_end=[round(v, 2) for v in os.getloadavg()],
                wall_s=round(time.perf_counter() - start, 1), runtimes=runtimes, rounds=rounds,
                compile_note="" if "compile" in runtimes else "torch.compile left out (--no-compile or --smoke)")
    report = _plain(dict(meta=meta, **study))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    title = f"{'SMOKE ' if args.smoke else ''}deploy run: {meta['device']}, {meta['threads']} threads, torch {meta['torch']}"
    fig = plot_speedups(study["rows"], title)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print(format_rows(study["rows"], title))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {meta['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a training step of the course's YOLOv5 spends its time, and old-vs-new trainer A/B ratios.

Two modes, both on one generated shapes dataset (``--root``, reused when it exists):

* ``python benchmarks/train_phases.py`` runs ``course.yolo.train.train`` for one short epoch under
  ``torch.profiler`` and prints each phase's share of the epoch's training loop: the phases are the
  ``record_function`` labels ``train()`` and ``ComputeLoss`` carry (``train/forward``,
  ``train/loss`` with ``loss/build_targets`` inside it, ``train/backward``, ``train/optimizer``,
  ``train/ema``, ``train/log``) plus the DataLoader's own ``enumerate(DataLoader)`` label (time the
  main process waits for a batch: the whole loading and augmentation with ``--workers 0``).
* ``--ab OLD_TREE`` alternates short rounds of the trainer from ``OLD_TREE`` (a checkout of another
  commit, e.g. ``git worktree add /tmp/old main``) and from this tree, each in a fresh process, and
  prints the per-round ratio new/old of training images/s and their median. On a shared, noisy
  machine single timings mean little; shares and interleaved ratios hold up.

Shares and ratios are reported with the load average when they were taken. Never pass/fail on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHASES = ("enumerate(DataLoader)", "train/forward", "train/loss", "loss/build_targets", "train/backward",
          "train/optimizer", "train/ema", "train/log")
ROUND = """
import json, sys, torch
torch.set_num_threads({threads})
from course.yolo.train import train
r = train("yolov5n.yaml", {data!r}, epochs={epochs}, imgsz={imgsz}, batch_size={batch}, device="cpu",
          workers={workers!r}, cache=True, project={project!r}, name="ab", progress=False)
print(json.dumps(dict(ips=r.train_images_per_s)))
"""


def dataset(args) -> Path:
    from course.yolo.data import make_shapes

    return make_shapes(args.root, n_train=args.n_train, n_val=args.n_val, imgsz=args.imgsz, seed=0)


def phases(args, data: Path) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from course.yolo.train import train

    torch.set_num_threads(args.threads)
    common = dict(epochs=1, imgsz=args.imgsz, batch_size=args.batch, device="cpu", workers=args.workers, cache=True,
                  project=str(Path(args.root) / "runs"), progress=False)
    train("yolov5n.yaml", data, name="warmup", **common)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = train("yolov5n.yaml", data, name="phases", **common)
    loop_us = args.n_train / result.train_images_per_s * 1e6
    totals = {}
    for event in prof.key_averages():
        for phase in PHASES:
            if event.key.startswith(phase):
                totals[phase] = totals.get(phase, 0.0) + event.cpu_time_total
    print(f"load average {os.getloadavg()[0]:.2f}; threads {args.threads}, workers {args.workers}, "
          f"{args.n_train} images at {args.imgsz} px, batch {args.batch}; {result.train_images_per_s:.1f} images/s "
          f"under the profiler")
    accounted = sum(v for k, v in totals.items() if k != "loss/build_targets")
    for phase in PHASES:
        print(f"  {phase:24s} {100 * totals.get(phase, 0.0) / loop_us:5.1f} %")
    print(f"  {'other':24s} {100 * (1 - accounted / loop_us):5.1f} %")


def ab(args, data: Path) -> None:
    ratios = []
    for r in range(args.rounds):
        ips = {}
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for which in order:
            tree = args.ab if which == "old" else str(REPO)
            code = ROUND.format(threads=args.threads, data=str(data), epochs=args.epochs, imgsz=args.imgsz,
                                batch=args.batch, workers=args.old_workers if which == "old" else args.workers,
                                project=str(Path(args.root) / which))
            env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS=str(args.threads))
            out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True,
                                 check=True).stdout
            ips[which] = json.loads(out.strip().splitlines()[-1])["ips"]
        ratios.append(ips["new"] / ips["old"])
        print(f"round {r + 1}: old {ips['old']:.1f}, new {ips['new']:.1f} images/s, ratio {ratios[-1]:.3f} "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"median ratio new/old over {len(ratios)} rounds: {statistics.median(ratios):.3f}")


def _workers(text: str):
    return text if text == "auto" else int(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/tmp/train_phases", help="dataset folder (made when missing)")
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--n-val", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=_workers, default=0, help="an int, or auto (course.yolo.train.auto_workers)")
    parser.add_argument("--old-workers", type=_workers, help="workers for OLD_TREE's trainer (default: --workers)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per A/B round")
    parser.add_argument("--ab", metavar="OLD_TREE", help="interleave rounds of the trainer from OLD_TREE and this one")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    args.old_workers = args.workers if args.old_workers is None else args.old_workers
    data = dataset(args)
    (ab if args.ab else phases)(args, data)


if __name__ == "__main__":
    main()

"""Reference run of every chapter's ablation set: full mode, three seeds, into results/ablations_cpu.json.

Each (variant, seed) is one training run with the course's recipe (``course.classify.RECIPES``);
a variant shared by two chapters is trained once. Runs go to ``--jobs`` worker processes of one
thread each (accuracy does not depend on the split; wall times do, and are recorded with the
load). Rows are written as they finish to a progress file beside the JSON (``*.partial.json``,
kept in git so a later session can resume), so an interrupted run resumes where it stopped and
the chapters never read a half-finished run; the JSON itself is written once, at the end. After
training, each variant's CPU latency is measured at batch 1 with all threads, one variant at a
time; the calibration (``course.ablations.calibration``: best below 95 %, the smallest network
measurably worse, how many comparisons exceed the spread) is recorded and printed, and every set's
accuracy bars are drawn beside the JSON (same name, .png).

    python benchmarks/ablations.py                      # everything (66 runs; README: how long)
    python benchmarks/ablations.py --only ch03_se_activation --seeds 0 1 2
    python benchmarks/ablations.py --smoke --out /tmp/a.json   # quick mode, seconds (the test runs this)
    python benchmarks/ablations.py --report             # no training: calibration and figure from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _train(args):
    name, label, seed, mode, ckpt_dir = args
    import torch

    torch.set_num_threads(1)
    from course.ablations import ABLATIONS, checkpoint_name, machine_info, run_variant

    v = ABLATIONS[name].variant(label)
    ckpt = Path(ckpt_dir) / checkpoint_name(v, seed) if ckpt_dir and seed == 0 else None
    row = run_variant(v, seed, mode, threads=1, progress=False, checkpoint=ckpt)
    m = machine_info()  # per row: a run resumed in another session may finish on another machine
    return {**row, "cpu": m["cpu"], "load_average_1min": m["load_average_1min"], "date": m["date"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="ablation names (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="training processes, one thread each")
    parser.add_argument("--out", default=None, help="JSON path (default: results/ablations_cpu.json)")
    parser.add_argument("--checkpoints", default=None,
                        help="folder for the seed-0 weights (default: results/checkpoints, git-ignored; 'none' to skip)")
    parser.add_argument("--smoke", action="store_true", help="quick mode, one seed, two small ablations")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: recompute the calibration and the figure of an existing --out JSON")
    args = parser.parse_args(argv)

    if args.smoke:
        os.environ["COURSE_QUICK"] = "1"
    from course.ablations import (ABLATIONS, CHECKPOINT_DIR, REFERENCE_PATH, as_json, machine_info,
                                  measure_latencies, summarize)
    from course.classify import recipe
    from course.env import quick_mode

    mode = "quick" if quick_mode() else "full"
    names = args.only or (["ch01_separable", "ch03_se_activation"] if args.smoke else list(ABLATIONS))
    seeds = [0] if args.smoke else args.seeds
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        parser.error(f"--only: unknown ablations {unknown}; allowed: {list(ABLATIONS)}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    out = Path(args.out) if args.out else REFERENCE_PATH
    ckpt_dir = None if args.checkpoints == "none" else str(args.checkpoints or CHECKPOINT_DIR)
    if args.report:
        if not out.is_file():
            parser.error(f"--report: no results file at {out}; run without --report first")
        payload = json.loads(out.read_text())
        report(payload, out)
        out.write_text(json.dumps(payload, indent=1))
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = out.with_name(out.stem + ".partial.json")

    done: dict[tuple[str, int], dict] = {}
    for earlier in (out, progress):
        if not earlier.is_file():
            continue
        old = json.loads(earlier.read_text())
        if old.get("mode") == mode and old.get("recipe") == recipe(mode):
            for abl in old.get("ablations", {}).values():
                for row in abl["rows"]:
                    done[(row["key"], row["seed"])] = row
            print(f"resuming: {len(done)} runs already in {earlier}")
        else:
            print(f"not resuming {earlier}: it was trained in mode {old.get('mode')!r} with another recipe")

    # a set finished earlier stays in the results when another is (re)run with --only
    kept = [n for n in ABLATIONS if n in names
            or all((v.key, s) in done for v in ABLATIONS[n].variants for s in seeds)]

    def write():
        rows = {n: [{**done[(v.key, s)], "label": v.label} for v in ABLATIONS[n].variants for s in seeds
                    if (v.key, s) in done] for n in kept}
        payload = as_json(rows, mode, seeds)
        payload["machine"]["jobs"] = args.jobs
        progress.write_text(json.dumps(payload, indent=1))
        return payload

    todo, seen = [], set()
    for n in names:
        for v in ABLATIONS[n].variants:
            for s in seeds:
                if (v.key, s) not in done and (v.key, s) not in seen:
                    seen.add((v.key, s))
                    todo.append((n, v.label, s, mode, ckpt_dir))
    print(f"{len(todo)} training runs to do on {args.jobs} processes", flush=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(_train, t): t for t in todo}
        for i, fut in enumerate(as_completed(futures), 1):
            row = fut.result()
            done[(row["key"], row["seed"])] = row
            write()
            print(f"[{i}/{len(todo)}] {row['key']} seed {row['seed']}: test {row['test_acc']:.3f} "
                  f"({row['wall_time_s']:.0f} s, {time.perf_counter() - start:.0f} s in all)", flush=True)

    payload = write()
    payload["machine_after_training"] = machine_info()
    for n in kept:
        summary = summarize(payload["ablations"][n]["rows"])
        payload["ablations"][n]["summary"] = measure_latencies(summary, n, mode)
    payload["total_wall_s"] = time.perf_counter() - start
    report(payload, out)
    out.write_text(json.dumps(payload, indent=1))
    progress.unlink(missing_ok=True)
    return 0


def report(payload: dict, out: Path) -> None:
    """Add the calibration to ``payload``, print every set's table and the verdicts, draw ``out``.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course.ablation_plots import plot_ablation
    from course.ablations import ABLATIONS, calibration
    from course.tables import text_table

    sets = payload["ablations"]
    for n, a in sets.items():
        print(f"\n{n}: {ABLATIONS[n].question}")
        print(text_table(a["summary"], ["label", "test_acc", "test_acc_std", "seeds", "params", "macs", "latency_ms"]))
    cal = payload["calibration"] = calibration(sets)
    print(f"\ncalibration ({payload['mode']} mode, seeds {payload['seeds']}):")
    print(f"  best: {cal['best']} {100 * cal['best_test_acc']:.1f} % test, "
          f"{'below' if cal['best_below_ceiling'] else 'NOT below'} {100 * cal['ceiling']:.0f} %")
    if "smallest_words" in cal:
        print(f"  smallest: {cal['smallest_words']}")
    print(f"  comparisons beyond twice the seed-to-seed spread: {cal['comparisons_real']} of {cal['comparisons_total']}")
    for c in cal["comparisons"]:
        print(f"    [{c['ablation']}] {c['words']}")

    fig, axes = plt.subplots(len(sets), 1, figsize=(9, 3.2 * len(sets)), squeeze=False)
    for ax, (n, a) in zip(axes[:, 0], sets.items()):
        plot_ablation(a["summary"], title=f"{n}: {ABLATIONS[n].question}", ax=ax)
    m = payload["machine"]
    fig.suptitle(f"Glyphs-10 test accuracy, mean ± std over seeds {payload['seeds']} ({payload['mode']} mode); "
                 f"{m['cpu']}, {m.get('jobs', 1)} one-thread jobs, torch {m['torch_version']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    plt.close(fig)
    print(f"\nwrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    sys.exit(main())

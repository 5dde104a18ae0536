"""``python -m course.guidelines``: run, save, print the comparison and verdicts, optionally plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .compare import comparison_table
from .paper import GUIDELINES, HARDWARE, SCALES
from .plots import plot_guidelines
from .runner import TIMING_NOTES, run_guidelines
from .schema import save_results
from .verdict import verdicts


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course.guidelines --device cpu --out results.json [--quick] [--guidelines G1 G3]``."""
    p = argparse.ArgumentParser(prog="python -m course.guidelines", description=sys.modules[__package__].__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--out", required=True, help="results JSON path")
    p.add_argument("--quick", action="store_true", help="smallest scale only, short timing (also COURSE_QUICK=1)")
    p.add_argument("--guidelines", nargs="+", choices=GUIDELINES, default=list(GUIDELINES))
    p.add_argument("--scales", nargs="+", type=int, choices=SCALES, default=list(SCALES))
    p.add_argument("--channel-list", choices=HARDWARE, default=None,
                   help="paper channel list to use (default: gpu on CUDA, cpu on CPU)")
    p.add_argument("--min-run-time", type=float, default=None, help="seconds of timing per point")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 on CPU, as the paper's ARM runs)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds per column (default 2; quick 1)")
    p.add_argument("--plot", default=None, help="also save the ours-vs-paper figure here (PNG/SVG/PDF)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    results = run_guidelines(a.guidelines, a.device, a.scales, quick=True if a.quick else None,
                             progress=not a.no_progress, channel_list=a.channel_list,
                             min_run_time=a.min_run_time, threads=a.threads, rounds=a.rounds)
    path = save_results(results, a.out)
    for note in results["meta"]["notes"]:
        print(f"NOTE: {note}")
    for t in results["meta"]["timings"]:
        print(TIMING_NOTES[t])
        print(comparison_table(results, t))
        print()
        for sentence in verdicts(results, t).values():
            print(sentence)
        print()
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        for t in results["meta"]["timings"]:
            plot = Path(a.plot)
            target = plot if t == "eager" else plot.with_name(f"{plot.stem}_{t}{plot.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            plot_guidelines(results, t).savefig(target, dpi=120)
            print(f"wrote {target}")
    print(f"wrote {path} ({results['meta']['wall_time_s']:.1f} s of measuring)")
    return 0

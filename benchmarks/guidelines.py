"""Time the ShuffleNet V2 guideline experiments (G1–G4) and print ours vs the paper.

A thin wrapper over ``python -m course.guidelines`` that picks an output name per device:

    .venv/bin/python benchmarks/guidelines.py --device cpu [--quick] [--guidelines G1 G3]

writes ``results/guidelines_<device>.json`` and ``results/guidelines_<device>.png`` unless
``--out`` / ``--plot`` are given. Prints a table and verdicts; never passes or fails on time.
"""

import sys
from pathlib import Path

from course.device import resolve_device
from course.guidelines import main

if __name__ == "__main__":
    args = sys.argv[1:]
    device = resolve_device(args[args.index("--device") + 1] if "--device" in args[:-1] else "auto")[0].type
    results = Path(__file__).resolve().parents[1] / "results"
    if "--out" not in args:
        args += ["--out", str(results / f"guidelines_{device}.json")]
    if "--plot" not in args:
        args += ["--plot", str(results / f"guidelines_{device}.png")]
    sys.exit(main(args))

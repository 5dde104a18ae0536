"""Recipe probes: short full-mode training runs that choose the classification recipe, appended to a JSON-lines file.

A probe is one ``course.classify.train_recipe`` run of one network, one seed, with some recipe keys
overridden (``{"lr": 3e-3}``). The README's "Calibrating the classification recipe" cites the rows
of ``results/recipe_probes_cpu.jsonl``; each row keeps what produced it (the recipe after the
overrides, CPU, threads, load, date, torch), so a probe can be rerun and checked.

    python benchmarks/recipe_probes.py mobilenet_v1:0.5:lr=3e-3 mobilenet_v3_small:1.0:lr=1e-3,warmup_epochs=0.5
    python benchmarks/recipe_probes.py mobilenet_v2:0.5 --seeds 0 1      # the recipe as it stands
    python benchmarks/recipe_probes.py mobilenet_v1:0.25:lr=2e-3,surgery=full_conv   # a course.variants surgery
    python benchmarks/recipe_probes.py --smoke --out /tmp/p.jsonl      # quick mode, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "recipe_probes_cpu.jsonl"


def parse_probe(text: str) -> dict:
    """``"name:width[:key=value,...]"`` -> dict(name, width_mult, overrides, surgery); values are JSON (numbers).

    ``surgery=a+b`` names ``course.variants.VARIANTS`` to apply (``surgery=no_se``).
    """
    from course.classify import CLASSIFIERS, recipe
    from course.variants import VARIANTS

    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"probe must be name:width[:key=value,...], got {text!r}")
    name, width = parts[0], parts[1]
    if name not in CLASSIFIERS:
        raise ValueError(f"probe {text!r}: name must be one of {list(CLASSIFIERS)}, got {name!r}")
    try:
        width_mult = float(width)
    except ValueError:
        raise ValueError(f"probe {text!r}: width must be a number, got {width!r}") from None
    overrides, surgery = {}, []
    for item in filter(None, parts[2].split(",") if len(parts) == 3 else []):
        key, sep, value = item.partition("=")
        if key == "surgery" and sep:
            surgery = value.split("+")
            unknown = [v for v in surgery if v not in VARIANTS]
            if unknown:
                raise ValueError(f"probe {text!r}: surgery {unknown} unknown; allowed: {list(VARIANTS)}")
            continue
        if not sep or key not in recipe("full"):
            raise ValueError(f"probe {text!r}: {item!r} must be key=value with a key of the recipe "
                             f"({sorted(recipe('full'))})")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"probe {text!r}: the value of {key} must be a JSON value, got {value!r}") from None
    return dict(name=name, width_mult=width_mult, overrides=overrides, surgery=surgery)


def _probe(args) -> dict:
    probe, seed, mode, jobs = args
    import torch

    torch.set_num_threads(1)
    from course.ablations import machine_info
    from course.classify import recipe, train_recipe

    result = train_recipe(probe["name"], probe["width_mult"], mode, seed, surgery=probe["surgery"], progress=False,
                          **probe["overrides"])
    rec = {**recipe(mode), **probe["overrides"], "lr": result.config["lr"]}  # the rate train_recipe chose
    rec.pop("lr_by_model")
    return dict(**probe, seed=seed, mode=mode, recipe=rec, test_acc=result.test_acc, best_val_acc=result.best_val_acc,
                history=result.history, wall_time_s=result.wall_time_s, jobs=jobs,
                **{k: v for k, v in machine_info().items() if k != "threads"}, threads=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probes", nargs="*", help="name:width[:key=value,...]")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2, help="training processes, one thread each")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON-lines file the rows are appended to")
    parser.add_argument("--smoke", action="store_true", help="quick mode, one small probe")
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ["COURSE_QUICK"] = "1"
    from course.env import quick_mode

    mode = "quick" if quick_mode() else "full"
    texts = args.probes or (["shufflenet_v2:0.5:lr=1e-3"] if args.smoke else [])
    if not texts:
        parser.error("give at least one probe (name:width[:key=value,...]) or --smoke")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        probes = [parse_probe(t) for t in texts]
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    todo = [(p, s, mode, args.jobs) for p in probes for s in args.seeds]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool, out.open("a") as f:
        for row in pool.map(_probe, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(f"{row['name']} {row['width_mult']:g} {'+'.join(row['surgery'])} seed {row['seed']} "
                  f"{row['overrides'] or 'recipe'}: "
                  f"test {row['test_acc']:.3f}, val {row['best_val_acc']:.3f} ({row['wall_time_s']:.0f} s, "
                  f"{time.perf_counter() - start:.0f} s in all)", flush=True)
    print(f"appended {len(todo)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What each design choice buys: the chapters' ablations, trained on Glyphs-10 and scored on its test split.

An ablation is a list of ``Variant``s (a classifier name, a width, an input size and the model
surgeries of ``course.variants``) that differ in one choice. ``run_ablation`` trains each variant
with the course's one recipe (``course.classify.train_recipe``) for a few seeds and returns plain
rows; ``summarize`` gives mean ± std of test accuracy per variant with the cost beside it
(parameters and mult-adds by fvcore at the training size, CPU latency when measured);
``difference`` says whether two variants differ by more than their seed-to-seed spread, which is
the only kind of difference the chapters call a difference.

``ABLATIONS`` holds every chapter's set. ``benchmarks/ablations.py`` runs them all in full mode
with three seeds into ``results/ablations_cpu.json``, which ``load_reference`` reads back.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean, stdev

import torch

from course.classify import build_classifier, recipe, recipe_model, train_recipe
from course.device import cpu_model
from course.measure import count_flops, latency
from course.variants import apply_variants, with_stem_stride

__all__ = ["Variant", "Ablation", "ABLATIONS", "REFERENCE_PATH", "build_variant", "variant_cost", "run_variant",
           "run_ablation", "PAPER_POINTS", "summarize", "difference", "load_reference", "reference_rows", "measure_latencies",
           "checkpoint_name", "CHECKPOINT_DIR", "CEILING", "SMALLEST", "calibration"]

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "results" / "ablations_cpu.json"
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "results" / "checkpoints"
"""Where the reference run keeps its seed-0 weights (git-ignored; chapter 7 deploys them when present)."""


@dataclass(frozen=True)
class Variant:
    """One network of an ablation; ``key`` identifies it across chapters (a shared run is trained once)."""

    label: str
    model: str
    width_mult: float = 1.0
    surgery: tuple[str, ...] = ()
    imgsz: int | None = None  # None: the recipe's input size
    model_kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> str:
        parts = [self.model, f"w{self.width_mult:g}", *self.surgery, *(f"{k}={v}" for k, v in self.model_kwargs)]
        if self.imgsz is not None:
            parts.append(f"{self.imgsz}px")
        return "/".join(parts)


@dataclass(frozen=True)
class Ablation:
    """A chapter's question, the variants that answer it, and the paper's finding to set beside ours."""

    chapter: str
    question: str
    variants: tuple[Variant, ...]
    paper: str
    baseline: str  # label of the variant the others are compared with

    def labels(self) -> list[str]:
        return [v.label for v in self.variants]

    def variant(self, label: str) -> Variant:
        for v in self.variants:
            if v.label == label:
                return v
        raise ValueError(f"label must be one of {self.labels()}, got {label!r}")


def _v1(alpha: float, imgsz: int | None = None, *surgery: str) -> Variant:
    label = f"V1 α={alpha:g}" + (f", {imgsz} px" if imgsz else "") + (" full conv" if surgery else "")
    return Variant(label, "mobilenet_v1", alpha, tuple(surgery), imgsz)


ABLATIONS: dict[str, Ablation] = {
    "ch01_width": Ablation(
        "01", "How much accuracy does the width multiplier α cost?",
        tuple(_v1(a) for a in (0.25, 0.5, 0.75, 1.0)),
        "Table 6 (ImageNet): α = 1.0 / 0.75 / 0.5 / 0.25 gives 70.6 / 68.4 / 63.7 / 50.6 % top-1 "
        "at 569 / 325 / 149 / 41 million mult-adds.", "V1 α=1"),
    "ch01_resolution": Ablation(
        "01", "How much accuracy does a smaller input (the resolution multiplier ρ) cost?",
        (_v1(0.25, 16), _v1(0.25, 24), _v1(0.25)),
        "Table 7 (ImageNet): 224 / 192 / 160 / 128 px gives 70.6 / 69.1 / 67.2 / 64.4 % top-1 "
        "at 569 / 418 / 290 / 186 million mult-adds.", "V1 α=0.25"),
    "ch01_separable": Ablation(
        "01", "Does factorising each conv into depthwise + pointwise lose accuracy?",
        (_v1(0.25), _v1(0.25, None, "full_conv")),
        "Table 4 (ImageNet): full convolutions 71.7 % top-1 at 4866 M mult-adds and 29.3 M parameters; "
        "depthwise separable 70.6 % at 569 M and 4.2 M.", "V1 α=0.25"),
    "ch02_bottleneck": Ablation(
        "02", "Does the linear bottleneck and the shortcut between bottlenecks matter?",
        (Variant("V2 linear bottleneck", "mobilenet_v2", 0.5),
         Variant("V2 ReLU6 after projection", "mobilenet_v2", 0.5, ("relu6_after_projection",)),
         Variant("V2 no shortcut", "mobilenet_v2", 0.5, ("no_shortcut",))),
        "Fig. 6 (ImageNet): a ReLU6 after the projection loses about 1 % top-1 against the linear "
        "bottleneck (6a); shortcuts between bottlenecks beat shortcuts between expansions and no shortcut (6b).",
        "V2 linear bottleneck"),
    "ch03_se_activation": Ablation(
        "03", "What do squeeze-and-excite and h-swish buy in MobileNet V3-Small?",
        (Variant("V3-Small", "mobilenet_v3_small"),
         Variant("V3-Small no SE", "mobilenet_v3_small", 1.0, ("no_se",)),
         Variant("V3-Small ReLU for h-swish", "mobilenet_v3_small", 1.0, ("hswish_to_relu",)),
         Variant("V3-Small swish for h-swish", "mobilenet_v3_small", 1.0, ("hswish_to_swish",))),
        "Tables 5–6 (ImageNet, V3-Large): h-swish instead of ReLU adds about 0.6–0.9 % top-1 "
        "(75.2 vs 74.5 % where used at 80+ channels), SE adds accuracy at a latency cost; "
        "swish is as accurate as h-swish but slower on phones.", "V3-Small"),
    "ch04_shuffle": Ablation(
        "04", "Does the channel shuffle help, and which number of groups is best at equal FLOPs?",
        tuple(Variant(f"V1 g={g}" + ("" if s else " no shuffle"), "shufflenet_v1", 0.5,
                      () if s else ("no_shuffle",), model_kwargs=(("groups", g),))
              for g, s in ((1, True), (3, True), (3, False), (8, True), (8, False))),
        "Table 3 (ImageNet, ShuffleNet 1×): shuffle cuts the error from 34.5 to 32.6 % at g = 3 and "
        "from 37.6 to 32.4 % at g = 8; Table 2: at 0.5× (38 MFLOPs) the error is 45.1 / 44.4 / 43.2 / 41.6 / 42.3 % for g = 1 / 2 / 3 / 4 / 8.",
        "V1 g=3"),
    "ch05_families": Ablation(
        "05", "Across the families: which buys the most accuracy per millisecond?",
        (Variant("MobileNet V1 α=0.5", "mobilenet_v1", 0.5),
         Variant("MobileNet V2 α=0.5", "mobilenet_v2", 0.5),
         Variant("MobileNet V3-Small", "mobilenet_v3_small"),
         Variant("MobileNet V3-Large α=0.5", "mobilenet_v3_large", 0.5),
         Variant("ShuffleNet V1 g=3 0.5×", "shufflenet_v1", 0.5, model_kwargs=(("groups", 3),)),
         Variant("ShuffleNet V2 0.5×", "shufflenet_v2", 0.5),
         Variant("ShuffleNet V2 1.0×", "shufflenet_v2", 1.0)),
        "Papers' ImageNet top-1 at their own mult-adds: see course.ablations.PAPER_POINTS.", "MobileNet V2 α=0.5"),
}


PAPER_POINTS = (
    dict(label="MobileNet V1 1.0", top1=70.6, madds=569, source="MobileNet V1, Table 8"),
    dict(label="MobileNet V1 0.5", top1=63.7, madds=149, source="MobileNet V1, Table 6"),
    dict(label="MobileNet V1 0.25", top1=50.6, madds=41, source="MobileNet V1, Table 6"),
    dict(label="MobileNet V2 1.0", top1=72.0, madds=300, source="MobileNet V2, Table 4"),
    dict(label="MobileNet V2 0.35", top1=60.8, madds=59.2, source="MobileNet V3, Table 3"),
    dict(label="MobileNet V3-Large 1.0", top1=75.2, madds=219, source="MobileNet V3, Table 3"),
    dict(label="MobileNet V3-Large 0.75", top1=73.3, madds=155, source="MobileNet V3, Table 3"),
    dict(label="MobileNet V3-Small 1.0", top1=67.4, madds=56, source="MobileNet V3, Table 3 (latest arXiv version)"),
    dict(label="ShuffleNet V1 1× g=3", top1=67.4, madds=140, source="ShuffleNet V1, Table 2 (32.6 % error)"),
    dict(label="ShuffleNet V1 0.5× g=3", top1=56.8, madds=38, source="ShuffleNet V1, Table 2 (43.2 % error)"),
    dict(label="ShuffleNet V2 0.5×", top1=60.3, madds=41, source="ShuffleNet V2, Table 8 (39.7 % error)"),
    dict(label="ShuffleNet V2 1×", top1=69.4, madds=146, source="ShuffleNet V2, Table 8 (30.6 % error)"),
    dict(label="ShuffleNet V2 1.5×", top1=72.6, madds=299, source="ShuffleNet V2, Table 8 (27.4 % error)"),
)
"""The papers' ImageNet top-1 (single 224-px crop) and mult-adds (millions) for the families of chapter 5."""


def build_variant(v: Variant, num_classes: int = 10) -> torch.nn.Module:
    """The variant's network as the recipe trains it (its stem stride, the surgeries applied)."""
    if num_classes != 10:
        model = build_classifier(v.model, num_classes, v.width_mult, **dict(v.model_kwargs))
        return apply_variants(with_stem_stride(model, recipe()["stem_stride"]), v.surgery)
    return recipe_model(v.model, v.width_mult, None, v.surgery, dict(v.model_kwargs))


def _imgsz(v: Variant, mode: str | None) -> int:
    return v.imgsz or recipe(mode)["imgsz"]


def variant_cost(v: Variant, mode: str | None = None) -> dict:
    """Parameters and mult-adds (fvcore) at the size the variant trains at."""
    model = build_variant(v).eval()
    size = _imgsz(v, mode)
    return dict(params=sum(p.numel() for p in model.parameters()), macs=count_flops(model, (1, 3, size, size)),
                imgsz=size)


def run_variant(v: Variant, seed: int = 0, mode: str | None = None, threads: int | None = None,
                progress: bool = True, checkpoint=None) -> dict:
    """Train one variant with one seed; a plain row (accuracies, cost, timing, what produced it).

    ``checkpoint``: a path to save the best weights to (``course.classify.load_checkpoint`` reads it).
    """
    overrides = {"imgsz": v.imgsz} if v.imgsz else {}
    result = train_recipe(v.model, v.width_mult, mode=mode, seed=seed, model_kwargs=dict(v.model_kwargs),
                          surgery=v.surgery, threads=threads, progress=progress, checkpoint=checkpoint,
                          **overrides)
    return dict(key=v.key, label=v.label, seed=seed, test_acc=result.test_acc, best_val_acc=result.best_val_acc,
                best_epoch=result.best_epoch, lr=result.config["lr"], history=result.history, wall_time_s=result.wall_time_s,
                train_images_per_s=result.train_images_per_s, stopped_early=result.stopped_early,
                device=result.device, threads=result.threads, torch_version=result.torch_version,
                checkpoint=result.checkpoint, **variant_cost(v, mode))


def _check_name(name: str) -> None:
    if name not in ABLATIONS:
        raise ValueError(f"name must be one of {list(ABLATIONS)}, got {name!r}")


def run_ablation(name: str, seeds=None, mode: str | None = None, threads: int | None = None,
                 progress: bool = True, done: dict | None = None) -> list[dict]:
    """Train every variant of ``ABLATIONS[name]`` for each seed (default: seed 0 only) into rows.

    ``done`` maps ``(key, seed)`` to rows already trained (another chapter's shared variant), which are reused.
    """
    _check_name(name)
    seeds = [0] if seeds is None else list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    done = {} if done is None else done
    rows = []
    for v in ABLATIONS[name].variants:
        for seed in seeds:
            if (v.key, seed) not in done:
                if progress:
                    print(f"{v.label} (seed {seed})", flush=True)
                done[(v.key, seed)] = run_variant(v, seed, mode, threads, progress)
            rows.append({**done[(v.key, seed)], "label": v.label})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """One row per variant, in first-seen order: mean and std of test accuracy over seeds, cost, time."""
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    out = []
    for label, rs in by_label.items():
        accs = [r["test_acc"] for r in rs]
        row = dict(label=label, key=rs[0]["key"], seeds=len(rs), test_acc=mean(accs),
                   test_acc_std=stdev(accs) if len(accs) > 1 else float("nan"),
                   params=rs[0]["params"], macs=rs[0]["macs"], imgsz=rs[0]["imgsz"],
                   wall_time_s=mean(r["wall_time_s"] for r in rs))
        if "latency_ms" in rs[0]:
            row["latency_ms"] = rs[0]["latency_ms"]
        out.append(row)
    return out


def difference(summary: list[dict], a: str, b: str) -> dict:
    """Test accuracy of ``a`` minus ``b``, with the larger of their seed-to-seed stds as the spread.

    ``real`` is True only when both have at least two seeds and the gap exceeds twice the spread;
    ``words`` says it in a sentence for the chapter. ``near_chance`` names the networks that ended
    within ``NEAR_CHANCE`` of chance: they did not learn in the budget, so a gap to them measures
    how each trained under this recipe, not what the design can represent, and the words say so.
    """
    rows = {r["label"]: r for r in summary}
    for name, label in (("a", a), ("b", b)):
        if label not in rows:
            raise ValueError(f"{name} must be one of {list(rows)}, got {label!r}")
    ra, rb = rows[a], rows[b]
    delta = ra["test_acc"] - rb["test_acc"]
    spread = max(ra["test_acc_std"], rb["test_acc_std"])
    measured_spread = min(ra["seeds"], rb["seeds"]) >= 2
    real = measured_spread and abs(delta) > 2 * spread
    if not measured_spread:
        words = (f"{a} vs {b}: {100 * delta:+.1f} points, from one seed each: no spread measured, so this "
                 "cannot yet be called a difference (the reference run has three seeds)")
    elif real:
        words = (f"{a} is {'better' if delta > 0 else 'worse'} than {b} by {100 * abs(delta):.1f} points, "
                 f"more than twice the seed-to-seed spread ({100 * spread:.1f})")
    else:
        words = (f"{a} vs {b}: {100 * delta:+.1f} points, within twice the seed-to-seed spread "
                 f"({100 * spread:.1f}): no measurable difference on this data")
    near = [label for label in (a, b) if rows[label]["test_acc"] < CHANCE + NEAR_CHANCE]
    if near:
        words += (f"; but {' and '.join(near)} ended near chance ({100 * CHANCE:.0f} %): "
                  f"{'it' if len(near) == 1 else 'they'} did not learn within this recipe's budget, so the gap "
                  "says how each trained, not what the design can learn")
    return dict(a=a, b=b, delta=delta, spread=spread, real=real, near_chance=near, words=words)


CHANCE = 0.1
"""Test accuracy of guessing on Glyphs-10's ten balanced classes."""
NEAR_CHANCE = 0.05
"""A network whose mean test accuracy is below CHANCE + this did not learn within the budget."""
CEILING = 0.95
"""The best network must stay below this test accuracy, or the data cannot rank backbones."""
SMALLEST = "mobilenet_v1/w0.25"
"""The key of the course's smallest network, which must be measurably worse than the best."""


def calibration(ablations: dict) -> dict:
    """Whether a run is calibrated: the best below ``CEILING``, ``SMALLEST`` measurably worse, and how
    many of each chapter's comparisons (every variant against its set's baseline) exceed the spread.

    ``ablations`` is the ``"ablations"`` part of the results file (name -> dict with ``summary``).
    """
    if not ablations:
        raise ValueError("ablations is empty: calibration needs at least one summarised ablation set")
    rows = {r["key"]: r for a in ablations.values() for r in a["summary"]}
    best = max(rows.values(), key=lambda r: r["test_acc"])
    checks = dict(best=best["label"], best_test_acc=best["test_acc"], best_below_ceiling=best["test_acc"] < CEILING,
                  ceiling=CEILING)
    if SMALLEST in rows:
        d = difference([rows[SMALLEST], best], rows[SMALLEST]["label"], best["label"])
        checks.update(smallest=rows[SMALLEST]["label"], smallest_test_acc=rows[SMALLEST]["test_acc"],
                      smallest_worse=d["real"] and d["delta"] < 0, smallest_words=d["words"])
    comparisons = []
    for name, a in ablations.items():
        summary, base = a["summary"], ABLATIONS[name].baseline
        labels = [r["label"] for r in summary]
        if base in labels:
            comparisons += [dict(ablation=name, **difference(summary, label, base)) for label in labels if label != base]
    checks.update(comparisons=comparisons, comparisons_real=sum(c["real"] for c in comparisons),
                  comparisons_total=len(comparisons))
    return checks


def measure_latencies(summary: list[dict], name: str, mode: str | None = None, threads: int | None = None) -> list[dict]:
    """``summary`` with each variant's CPU latency at batch 1 and its training size added (``latency_ms``)."""
    _check_name(name)
    ablation = ABLATIONS[name]
    out = []
    for row in summary:
        v = ablation.variant(row["label"])
        size = _imgsz(v, mode)
        res = latency(build_variant(v).eval(), (1, 3, size, size), device="cpu", threads=threads)
        out.append({**row, "latency_ms": res.median_ms, "latency_iqr_ms": res.iqr_ms, "latency_threads": res.threads})
    return out


def machine_info() -> dict:
    """What produced a run: device, threads, versions, load, date."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return dict(device="cpu", cpu=cpu_model(), threads=torch.get_num_threads(),
                torch_version=torch.__version__, python=platform.python_version(), load_average_1min=load,
                date=_dt.datetime.now().isoformat(timespec="seconds"))


def checkpoint_name(v: Variant, seed: int) -> str:
    """File name of a variant's checkpoint in the reference run's checkpoint folder."""
    return v.key.replace("/", "_").replace("=", "") + f"_seed{seed}.pt"


def load_reference(path=None) -> dict | None:
    """The recorded full-mode run (``results/ablations_cpu.json``), or None when it has not been produced."""
    path = Path(path) if path is not None else REFERENCE_PATH
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def reference_rows(name: str, reference: dict | None = None) -> list[dict] | None:
    """The reference run's summary rows for ``ABLATIONS[name]`` (None when there is no reference, or the
    set has no finished run in it)."""
    _check_name(name)
    reference = load_reference() if reference is None else reference
    if reference is None or name not in reference.get("ablations", {}):
        return None
    return reference["ablations"][name].get("summary") or None


def as_json(rows_by_ablation: dict[str, list[dict]], mode: str, seeds: list[int]) -> dict:
    """The results file: machine, recipe, and per ablation its rows and summary."""
    return dict(machine=machine_info(), mode=mode, seeds=seeds, recipe=recipe(mode),
                ablations={name: dict(question=ABLATIONS[name].question, paper=ABLATIONS[name].paper,
                                      rows=rows, summary=summarize(rows))
                           for name, rows in rows_by_ablation.items()},
                variants={name: [asdict(v) for v in ABLATIONS[name].variants] for name in rows_by_ablation})

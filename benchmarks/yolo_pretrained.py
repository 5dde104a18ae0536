"""Chapter 6's most asked question, measured: does a pretrained backbone beat one trained from scratch?

One command records it: ``python benchmarks/yolo_pretrained.py`` (the two swapped detectors,
MobileNetV3-Small and ShuffleNetV2, x seeds 0 1 2, each trained from scratch and from a course
classifier with ``course.yolo.train.RECIPES["full"]``; every run is capped at the recipe's
``time_budget_s``, so at most 12 x 15 min on a 2-core CPU; run it on an otherwise idle machine).

* Pretraining: for each detector seed, the matching classifier (``mobilenet_v3_small`` or
  ``shufflenet_v2`` at width 1.0, the widths of the detectors' backbone rows) is trained on
  Glyphs-10 with the classification recipe (``course.classify.train_recipe``, same seed) and kept
  in ``--project``/classifiers (reused when it exists). ``course.yolo.pretrained.load_backbone``
  copies it into the detector by name and shape; what it loaded and what it left random is stored.
* ``--freeze-epochs N`` adds a third arm: pretrained, backbone frozen for the first N epochs.
* ``--scratch-from results/yolo_full_cpu.json`` takes the from-scratch arm from chapter 6's
  reference run instead of training it again (only when that run used the same recipe; the JSON
  says so in ``meta.scratch_source``). Same data, seeds and cap, but not the same sitting.
* Accuracy is the test split's, of the epoch chosen on val (as ``benchmarks/yolo_full.py``).
  Time to accuracy: the elapsed training time (train + val, summed per epoch) at the first epoch
  whose val mAP@0.5 reaches ``--reach`` x the from-scratch arm's mean best val mAP@0.5.

Every finished run goes to ``*.partial.json`` beside the JSON at once; run the command again (same
recipe and arms) to resume, so the record can take several sittings.

``--smoke`` runs the same code at tiny sizes in about a minute, for the tests; ``--replot`` rebuilds
the words, table and figure from the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yolo_full  # noqa: E402

from course.classify import save_checkpoint, train_recipe  # noqa: E402
from course.device import cpu_model  # noqa: E402
from course.yolo.benchmark import DETECTORS, SCHEMA as FULL_SCHEMA  # noqa: E402
from course.yolo.data import load_data_config  # noqa: E402
from course.yolo.model import DetectionModel  # noqa: E402
from course.yolo.pretrained import backbone_rows, load_backbone  # noqa: E402
from course.yolo.train import recipe  # noqa: E402
from course.yolo.transfer import CLASSIFIER_OF, SCHEMA, figure, summarize, table, words  # noqa: E402

REPO = yolo_full.REPO
SMOKE_CLASSIFIER = dict(n_train=32, n_val=16, n_test=16, epochs=1, precise_bn=2, time_budget_s=60)


def pretrain(classifier: str, seed: int, folder: Path, smoke: bool = False) -> tuple[Path, dict]:
    """The Glyphs-10 classifier for one detector seed: trained once with the course recipe, then reused."""
    path = folder / f"{classifier}_seed{seed}{'_smoke' if smoke else ''}.pt"
    record = path.with_suffix(".json")
    if path.exists() and record.exists():
        return path, json.loads(record.read_text())
    result = train_recipe(classifier, 1.0, mode="quick" if smoke else "full", seed=seed, progress=False,
                          **(SMOKE_CLASSIFIER if smoke else {}))
    save_checkpoint(path, result.model, meta=dict(test_acc=result.test_acc, seed=seed))
    info = dict(classifier=classifier, seed=seed, checkpoint=yolo_full._shown(path), test_acc=result.test_acc,
                best_val_acc=result.best_val_acc, train_time_s=round(result.wall_time_s, 1),
                recipe="quick + smoke sizes" if smoke else "full", lr=result.config.get("lr"))
    record.write_text(json.dumps(info, indent=1))
    return path, info


def resume(progress: Path, key: dict) -> dict:
    """``{"detector/arm/seed": record}`` finished by an interrupted run with the same recipe and arms, else empty."""
    if not progress.is_file():
        return {}
    old = json.loads(progress.read_text())
    if old.get("key") != key:
        print(f"not resuming {progress}: it ran another recipe, frozen arm or scratch source")
        return {}
    print(f"resuming: {len(old['runs'])} runs already in {progress}", flush=True)
    return old["runs"]


def load_report(cfg: str, nc: int, checkpoint: Path) -> dict:
    """What ``load_backbone`` copies into a fresh detector from ``checkpoint``: counts of loaded, random and unused tensors."""
    report = load_backbone(DetectionModel(cfg, nc=nc), checkpoint, verbose=False)
    return dict(loaded=len(report.loaded), shape_mismatch=len(report.shape_mismatch), missing_in_source=len(report.missing_in_source),
                head=len(report.head), unused=len(report.unused))


def scratch_from(path: Path, rec: dict, detectors: list[str], seeds: list[int]) -> dict:
    """The from-scratch runs of chapter 6's reference, when it ran this recipe with these seeds."""
    ref = json.loads(path.read_text())
    if ref.get("meta", {}).get("schema") != FULL_SCHEMA:
        raise ValueError(f"--scratch-from: {path} is not a benchmarks/yolo_full.py record of schema {FULL_SCHEMA}")
    if ref["meta"]["recipe"] != json.loads(json.dumps(rec)):
        raise ValueError(f"--scratch-from: {path} ran another recipe than this one; train the scratch arm here")
    runs = {}
    for m in ref["models"]:
        if m["name"] in detectors:
            by_seed = {r["seed"]: r for r in m["runs"]}
            missing = sorted(set(seeds) - set(by_seed))
            if missing:
                raise ValueError(f"--scratch-from: {path} has no {m['name']} runs for seeds {missing}")
            runs[m["name"]] = [by_seed[s] for s in seeds]
    absent = sorted(set(detectors) - set(runs))
    if absent:
        raise ValueError(f"--scratch-from: {path} has no runs of {absent}")
    return runs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(CLASSIFIER_OF), default=list(CLASSIFIER_OF))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="detector and classifier seeds")
    parser.add_argument("--freeze-epochs", type=int, default=0, help="> 0 adds a pretrained arm frozen that long")
    parser.add_argument("--reach", type=float, default=0.9, help="threshold: this x scratch's mean best val mAP@0.5")
    parser.add_argument("--scratch-from", type=Path, help="a benchmarks/yolo_full.py JSON of the same recipe")
    parser.add_argument("--threads", type=int, help="default: the recipe's ('auto': 2 if the load average is < 1, else 1)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--project", type=Path, default=REPO / "runs" / "pretrained")
    parser.add_argument("--data-root", type=Path, default=REPO / "data" / "shapes_bench")
    parser.add_argument("--smoke", action="store_true", help="the same code at tiny sizes, 1 seed: for tests")
    parser.add_argument("--replot", action="store_true", help="no training: rebuild the words, table and figure")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ValueError(f"--seeds must be distinct non-negative ints, got {args.seeds}")
    if not 0 < args.reach <= 1:
        raise ValueError(f"--reach must be in (0, 1], got {args.reach}")
    if args.freeze_epochs < 0:
        raise ValueError(f"--freeze-epochs must be >= 0, got {args.freeze_epochs}")
    rec = recipe("quick" if args.smoke else "full")
    if args.smoke:
        rec.update(yolo_full.SMOKE)
    seeds = args.seeds[:1] if args.smoke else args.seeds
    threads = args.threads or rec["threads"]
    if threads == "auto":
        threads = 2 if os.getloadavg()[0] < 1.0 else 1
    torch.set_num_threads(threads)
    out = args.out or REPO / "results" / f"yolo_pretrained_{'smoke' if args.smoke else 'full'}_cpu.json"

    if args.replot:
        ref = json.loads(out.read_text())
        if ref.get("meta", {}).get("schema") != SCHEMA:
            raise ValueError(f"--replot: {out} is not schema {SCHEMA} (re-record it without --replot)")
    else:
        scratch = scratch_from(args.scratch_from, rec, args.models, seeds) if args.scratch_from else None
        data = yolo_full.make_data(rec, args.data_root)
        nc = load_data_config(data)["nc"]
        progress = out.with_name(out.stem + ".partial.json")
        key = dict(recipe=json.loads(json.dumps(rec)), freeze_epochs=args.freeze_epochs,
                   scratch_from=str(args.scratch_from) if args.scratch_from else None)
        done = resume(progress, key)
        arms, classifiers, loads = {}, [], {}
        for det in args.models:
            cfg = DETECTORS[det]
            starts = {"pretrained": {}}
            if args.freeze_epochs:
                starts["pretrained+frozen"] = dict(tag=f"frozen{args.freeze_epochs}", freeze_epochs=args.freeze_epochs,
                                                   freeze=backbone_rows(DetectionModel(cfg, nc=nc)))
            arms[det] = {"scratch": scratch[det] if scratch else [], **{arm: [] for arm in starts}}
            for seed in seeds:
                ckpt, info = pretrain(CLASSIFIER_OF[det], seed, args.project / "classifiers", args.smoke)
                classifiers.append(dict(detector=det, **info))
                loads[det] = load_report(cfg, nc, ckpt)
                todo = ({} if scratch else {"scratch": None}) | starts
                for arm, start in todo.items():
                    name = f"{det}/{arm}/{seed}"
                    if name not in done:
                        extra = {} if start is None else dict(dict(tag="pretrained"), **start, pretrained=str(ckpt))
                        done[name] = yolo_full.run_one(det, cfg, rec, data, args.project, seed, **extra)
                        progress.write_text(json.dumps(dict(key=key, runs=done), indent=1))
                    arms[det][arm].append(done[name])
                print(json.dumps(dict(detector=det, seed=seed, **{arm: runs[-1]["test"]["map50"]
                                                                   for arm, runs in arms[det].items()})), flush=True)
        threads = sorted({r["threads"] for by_arm in arms.values() for runs in by_arm.values() for r in runs})
        meta = dict(
            schema=SCHEMA, device=f"CPU ({cpu_model()}, {'/'.join(map(str, threads))} thread{'s' if threads != [1] else ''})",
            cpu=cpu_model(), cores=os.cpu_count(), threads=threads[0] if len(threads) == 1 else threads, torch_version=str(torch.__version__),
            python=platform.python_version(), date=datetime.datetime.now().isoformat(timespec="seconds"),
            recipe=json.loads(json.dumps(rec)), recipe_name="smoke" if args.smoke else "full", seeds=seeds,
            reach=args.reach, freeze_epochs=args.freeze_epochs,
            scratch_source=(yolo_full._shown(args.scratch_from) + " (chapter 6's reference run, same recipe)"
                            if args.scratch_from else "trained in this run"),
            pretraining="Glyphs-10 (course.classify.train_recipe, the classification recipe, same seed as the detector)",
            eval="best epoch on val, scored on the test split (as benchmarks/yolo_full.py)",
        )
        ref = dict(meta=meta, classifiers=classifiers, load_reports=loads, arms=arms)
    ref["summary"] = summarize(ref["arms"], ref["meta"]["reach"])
    ref["words"] = words(ref["summary"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ref, indent=1))
    if not args.replot:
        progress.unlink(missing_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = figure(ref)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
    print(table(ref["summary"]))
    for sentence in ref["words"].values():
        print("•", sentence)
    print(f"-> {out}, {out.with_suffix('.png')}")
    return ref


if __name__ == "__main__":
    main()

"""Chapter 7's measurements: trained classifiers and a detector taken to each runtime and to int8.

For every model the study records, per runtime (eager, BN-folded eager, ``torch.compile``, ONNX
Runtime fp32, ONNX Runtime int8 with per-channel weights) and batch size, the median latency and
its ratio to eager (``course.deploy.runtimes.compare_runtimes``, interleaved rounds), the size on
disk, and the accuracy on the **test** split: top-1 for the classifiers (``evaluate_top1``),
mAP@0.5 for the detector (``detection_map50``). Per-tensor int8 weights are scored too, for the
depthwise-conv question. Calibration images come from the **train** split, so the test split is
never seen before it is scored. ``DeployRow`` is one line of that table; the widget and the
benchmark read lists of them as plain dicts.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from course.validate import check_int

from .accuracy import evaluate_top1
from .bnfold import fold_batchnorm
from .onnx_export import onnx_runner, onnx_session
from .quantize import file_size_mb, quantize_int8
from .runtimes import RUNTIMES, compare_runtimes

__all__ = [
    "ACTIVATION_PAIRS", "CLASSIFIERS", "DETECTOR", "DeployRow", "activation_study", "calibration_batches",
    "classifier_rows", "depthwise_range_spread", "detection_map50", "detector_rows", "glyph_splits",
    "output_error", "reference_row", "torch_quantization_status", "train_variant", "trained_classifiers",
    "DetectorSetup", "trained_detector", "run_study", "describe_quantization_status",
]

# The chapter's classifiers: label -> (course.classify name, width multiplier).
CLASSIFIERS = {"MobileNet V2": ("mobilenet_v2", 1.0), "MobileNet V3-Small": ("mobilenet_v3_small", 1.0),
               "ShuffleNet V2 x1.0": ("shufflenet_v2", 1.0)}
# The paper's bounded activation vs an unbounded replacement: label -> (variant, ours, replacement).
ACTIVATION_PAIRS = {"MobileNet V2": ("relu6_to_relu", "ReLU6", "ReLU"),
                    "MobileNet V3-Small": ("hswish_to_swish", "h-swish", "swish")}
DETECTOR = "ShuffleNetV2"  # a key of course.yolo.benchmark.DETECTORS: YOLOv5n with ShuffleNet V2 stages
INT8_PER_TENSOR = "onnxruntime_int8_per_tensor"


@dataclass
class DeployRow:
    """One model × runtime × precision × batch: latency, ratio to eager, size, accuracy on the test split."""

    model: str
    runtime: str
    precision: str
    batch: int
    threads: int
    median_ms: float
    speedup: float
    size_mb: float
    metric: str
    accuracy: float
    max_abs_diff: float
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def torch_quantization_status() -> dict:
    """What the installed torch still has for int8 quantization, found by importing it (not assumed)."""
    status = {"torch": str(torch.__version__)}
    try:
        import torch.ao.quantization as tq
        from torch.ao.quantization import utils as tq_utils

        status["eager_mode"] = all(hasattr(tq, f) for f in ("prepare", "convert", "QuantStub"))
        notice = getattr(tq_utils, "DEPRECATION_WARNING", "")  # the text torch warns with on use
    except ImportError:
        status["eager_mode"], notice = False, ""
    status["deprecation"] = notice.strip().splitlines()[0].strip() if notice.strip() else ""
    status["fx_mode"] = importlib.util.find_spec("torch.ao.quantization.quantize_fx") is not None
    status["pt2e_in_torch"] = importlib.util.find_spec("torch.ao.quantization.quantize_pt2e") is not None
    status["torchao_installed"] = importlib.util.find_spec("torchao") is not None
    status["onnxruntime_quantization"] = importlib.util.find_spec("onnxruntime.quantization") is not None
    return status


def glyph_splits(mode: str | None = None) -> dict:
    """The Glyphs-10 train/val/test datasets of ``course.classify.recipe(mode)`` (the ones its trainer uses)."""
    from course.classify import recipe_splits

    return recipe_splits(mode)


def train_variant(name: str, width_mult: float = 1.0, variants: Sequence[str] = (), mode: str | None = None,
                  seed: int = 0, **overrides):
    """``course.classify.train_recipe``, with ``course.variants`` surgery applied before training when given.

    Same recipe, data and seed as the unchanged network: the two differ only in the surgery.
    """
    from course import classify

    result = classify.train_recipe(name, width_mult, mode=mode, seed=seed, surgery=tuple(variants), **overrides)
    result.config.update(variants=list(variants))
    return result


def calibration_batches(dataset, n_images: int, batch_size: int = 16) -> list[torch.Tensor]:
    """The first ``n_images`` images of ``dataset`` (the train split) as batches, for int8 calibration."""
    check_int("n_images", n_images)
    check_int("batch_size", batch_size)
    if dataset is None or len(dataset) == 0:
        raise ValueError("dataset is empty: calibration needs images from the train split")
    n = min(n_images, len(dataset))
    images = [dataset[i][0] for i in range(n)]
    return [torch.stack(images[i:i + batch_size]) for i in range(0, n, batch_size)]


@torch.inference_mode()
def output_error(run_ref: Callable, run_test: Callable, batches: Iterable) -> float:
    """Relative L2 error of ``run_test``'s outputs against ``run_ref``'s: ||test - ref|| / ||ref||."""
    num = den = 0.0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        ref = torch.as_tensor(run_ref(x)).float()
        got = torch.as_tensor(run_test(x)).float()
        num += float(((got - ref) ** 2).sum())
        den += float((ref ** 2).sum())
    if den == 0:
        raise ValueError("batches is empty (or the reference outputs are all zero): nothing to compare")
    return math.sqrt(num / den)


def depthwise_range_spread(model: nn.Module) -> list[float]:
    """Per depthwise conv of the BN-folded model: largest / smallest per-channel max |weight|.

    A per-tensor int8 scale is set by the largest channel; a channel k times smaller keeps only
    127 / k levels. Large spreads are where per-channel weights matter.
    """
    spreads = []
    for m in fold_batchnorm(model).modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels:
            peak = m.weight.detach().flatten(1).abs().amax(1)
            spreads.append(float(peak.max() / peak.min().clamp_min(1e-12)))
    if not spreads:
        raise ValueError(f"{type(model).__name__} has no depthwise convs")
    return spreads


def _check_runtimes(runtimes) -> list[str]:
    runtimes = list(runtimes)
    if not runtimes or runtimes[0] != "eager" or "onnxruntime_int8" not in runtimes or \
            any(r not in RUNTIMES for r in runtimes):
        raise ValueError(f"runtimes must start with 'eager', include 'onnxruntime_int8' and come from "
                         f"{list(RUNTIMES)}, got {runtimes!r}")
    return runtimes


def _rows(timed, scores: dict, metric: str, extra: list[DeployRow]) -> list[DeployRow]:
    rows = []
    for r in timed:
        accuracy, note = scores.get(r.runtime, (math.nan, ""))
        rows.append(DeployRow(r.model, r.runtime, "int8 per-channel" if r.precision == "int8" else r.precision,
                              r.batch, r.threads, r.median_ms, r.speedup, r.size_mb, metric, accuracy,
                              r.max_abs_diff, "; ".join(filter(None, [r.note, note]))))
    return rows + extra


def classifier_rows(model: nn.Module, name: str, test_set, calibration, workdir, input_size: int,
                    batches=(1, 8), runtimes=RUNTIMES, threads: int | None = None, rounds: int | None = None,
                    number: int = 5, batch_size: int = 64) -> list[DeployRow]:
    """Every runtime of one trained classifier, timed at each batch and scored (top-1) on ``test_set``."""
    runtimes = _check_runtimes(runtimes)
    if test_set is None or len(test_set) == 0:
        raise ValueError("test_set must be a non-empty dataset (the held-out split)")
    workdir = Path(workdir)
    model = model.eval()
    timed = compare_runtimes(model, name, workdir, (3, input_size, input_size), batches=batches, runtimes=runtimes,
                             calibration=calibration, threads=threads, rounds=rounds, number=number)
    loader = DataLoader(test_set, batch_size=batch_size)
    threads = timed[0].threads
    fp32, int8 = workdir / f"{name}.onnx", workdir / f"{name}_int8.onnx"
    eager_acc = evaluate_top1(model, loader).accuracy
    scores = {"eager": (eager_acc, ""), "eager_bn_folded": (evaluate_top1(fold_batchnorm(model), loader).accuracy, ""),
              "compile": (eager_acc, "accuracy: eager's (same fp32 function, see max_abs_diff)"),
              "onnxruntime": (evaluate_top1(onnx_runner(onnx_session(fp32, threads)), loader).accuracy, ""),
              "onnxruntime_int8": (evaluate_top1(onnx_runner(onnx_session(int8, threads)), loader).accuracy, "")}
    per_tensor = quantize_int8(fp32, workdir / f"{name}_int8_per_tensor.onnx", calibration, per_channel=False)
    pt_acc = evaluate_top1(onnx_runner(onnx_session(per_tensor, threads)), loader).accuracy
    extra = [DeployRow(name, INT8_PER_TENSOR, "int8 per-tensor", b, threads, math.nan, math.nan,
                       file_size_mb(per_tensor), "top-1", pt_acc, math.nan, "accuracy and size only (not timed)")
             for b in batches]
    return _rows(timed, scores, "top-1", extra)


class _DetectorRunner(nn.Module):
    """An ONNX session behind the interface ``course.yolo.val.evaluate`` calls: ``model(x)[0]``, ``.nc``."""

    def __init__(self, session, nc: int):
        super().__init__()
        self.run, self.nc = onnx_runner(session), nc
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # evaluate reads the device off it

    def forward(self, x):
        return (self.run(x),)


def detection_map50(run, loader, nc: int | None = None) -> float:
    """mAP@0.5 of a detector (a DetectionModel, or an ONNX session of its decoded output and ``nc``) on ``loader``."""
    from course.yolo.val import evaluate

    if not isinstance(run, nn.Module):
        if nc is None:
            raise ValueError("nc (the number of classes) is required with an ONNX session")
        run = _DetectorRunner(run, nc)
    return float(evaluate(run, loader, progress=False)["map50"])


def detector_rows(model: nn.Module, name: str, test_loader, calibration, workdir, imgsz: int, batches=(1, 8),
                  runtimes=RUNTIMES, threads: int | None = None, rounds: int | None = None,
                  number: int = 5) -> list[DeployRow]:
    """Every runtime of one trained detector, timed at each batch and scored (mAP@0.5) on ``test_loader``.

    int8 quantizes the convolutions only (``op_types=("Conv",)``): the decoded output mixes pixel
    coordinates and probabilities, and one int8 scale for both would round the scores away.
    """
    from course.yolo.export import DecodedOutput

    runtimes = _check_runtimes(runtimes)
    workdir = Path(workdir)
    model = model.eval()
    nc = int(model.nc)
    timed = compare_runtimes(DecodedOutput(model), name, workdir, (3, imgsz, imgsz), batches=batches,
                             runtimes=runtimes, calibration=calibration, threads=threads, rounds=rounds,
                             number=number, quantize_kwargs=dict(op_types=("Conv",)))
    threads = timed[0].threads
    fp32, int8 = workdir / f"{name}.onnx", workdir / f"{name}_int8.onnx"
    eager = detection_map50(model, test_loader)
    scores = {"eager": (eager, ""), "eager_bn_folded": (detection_map50(fold_batchnorm(model), test_loader), ""),
              "compile": (eager, "accuracy: eager's (same fp32 function, see max_abs_diff)"),
              "onnxruntime": (detection_map50(onnx_session(fp32, threads), test_loader, nc), ""),
              "onnxruntime_int8": (detection_map50(onnx_session(int8, threads), test_loader, nc), "convs int8")}
    per_tensor = quantize_int8(fp32, workdir / f"{name}_int8_per_tensor.onnx", calibration, per_channel=False,
                               op_types=("Conv",))
    pt = detection_map50(onnx_session(per_tensor, threads), test_loader, nc)
    extra = [DeployRow(name, INT8_PER_TENSOR, "int8 per-tensor", b, threads, math.nan, math.nan,
                       file_size_mb(per_tensor), "mAP@0.5", pt, math.nan, "accuracy and size only (not timed)")
             for b in batches]
    return _rows(timed, scores, "mAP@0.5", extra)


def activation_study(pairs: dict, test_set, calibration, workdir, input_size: int, batch_size: int = 64,
                     exported: dict | None = None) -> list[dict]:
    """int8 (per-channel) against fp32 for each trained model: top-1 change and the logits' relative error.

    ``pairs`` maps a label (e.g. "MobileNet V2, ReLU6") to a trained model. Calibration, test set and
    quantizer are the same for all, so the models differ only in what the labels say. ``exported``
    maps a label to ``(fp32_path, int8_path)`` already written from that model with the same
    calibration (``classifier_rows`` writes them), which are then reused.
    """
    from .onnx_export import export_onnx

    if not pairs:
        raise ValueError("pairs must map labels to trained models")
    workdir = Path(workdir)
    loader = DataLoader(test_set, batch_size=batch_size)
    out = []
    for i, (label, model) in enumerate(pairs.items()):
        model = model.eval()
        if exported and label in exported:
            fp32, int8 = (Path(p) for p in exported[label])
        else:
            fp32 = export_onnx(model, workdir / f"act{i}.onnx", torch.zeros(1, 3, input_size, input_size))
            int8 = quantize_int8(fp32, workdir / f"act{i}_int8.onnx", calibration)
        run32, run8 = onnx_runner(onnx_session(fp32)), onnx_runner(onnx_session(int8))
        top1_fp32, top1_int8 = evaluate_top1(run32, loader).accuracy, evaluate_top1(run8, loader).accuracy
        out.append(dict(model=label, top1_fp32=top1_fp32, top1_int8=top1_int8, delta=top1_int8 - top1_fp32,
                        output_error=output_error(run32, run8, loader)))
    return out


def reference_row(rows: Sequence[dict], model: str, batch: int) -> dict:
    """The fp32 eager row of ``model`` at ``batch``: what every other row is compared with."""
    for r in rows:
        if r["model"] == model and r["batch"] == batch and r["runtime"] == "eager":
            return r
    raise ValueError(f"no eager row for model {model!r} at batch {batch}; models: "
                     f"{sorted({r['model'] for r in rows})}")


def trained_classifiers(mode: str | None = None, labels: Sequence[str] = tuple(CLASSIFIERS), seed: int = 0,
                        checkpoints: dict | None = None, progress: bool = False, keep_dir=None) -> dict:
    """``{label: ClassifyResult-like dict with "model"}`` for ``CLASSIFIERS`` (and "<label>, <activation>" variants).

    A label in ``checkpoints`` is loaded from that ``course.classify.save_checkpoint`` file instead of
    trained. Labels are keys of ``CLASSIFIERS``, or "<key> unbounded" for the ``ACTIVATION_PAIRS`` variant.
    With ``keep_dir``, each trained model is saved there and found there next time (same mode and
    seed), so a long run that stops later does not train again.
    """
    from course import classify

    checkpoints = dict(checkpoints or {})
    kept = {}
    if keep_dir is not None:
        for label in labels:
            path = Path(keep_dir) / f"{label.replace(' ', '_')}_{mode or 'default'}_seed{seed}.pt"
            kept[label] = path
            if label not in checkpoints and path.is_file():
                checkpoints[label] = path
    out = {}
    for label in labels:
        base = label.removesuffix(" unbounded")
        if base not in CLASSIFIERS or (label != base and base not in ACTIVATION_PAIRS):
            allowed = list(CLASSIFIERS) + [f"{k} unbounded" for k in ACTIVATION_PAIRS]
            raise ValueError(f"label {label!r} is not known; allowed: {allowed}")
        name, width = CLASSIFIERS[base]
        variants = [ACTIVATION_PAIRS[base][0]] if label != base else []
        if label in checkpoints:
            model = classify.recipe_model(name, width, None, variants)
            meta = classify.load_checkpoint(checkpoints.pop(label), model)
            out[label] = dict(model=model.eval(), test_acc=meta.get("test_acc"), wall_time_s=meta.get("wall_time_s"),
                              source=meta.get("source", "checkpoint"))
        else:
            r = train_variant(name, width, variants, mode=mode, seed=seed, progress=progress)
            source = f"trained ({'quick' if mode == 'quick' else mode or 'default'} recipe)"
            out[label] = dict(model=r.model.eval(), test_acc=r.test_acc, wall_time_s=r.wall_time_s, source=source,
                              result=r.as_dict())
            if label in kept:
                classify.save_checkpoint(kept[label], r.model, dict(test_acc=r.test_acc, wall_time_s=r.wall_time_s,
                                                                   source=f"{source}, kept in {kept[label]}"))
    if checkpoints:
        raise ValueError(f"checkpoints given for labels that were not asked for: {sorted(checkpoints)}")
    return out


@dataclass
class DetectorSetup:
    """A trained detector with its held-out test loader, its train-split calibration batches and image size."""

    model: nn.Module
    test_loader: object
    calibration: list
    imgsz: int
    n_test: int
    source: str


def trained_detector(root, mode: str | None = None, checkpoint=None, n_test: int | None = None,
                     n_calibration: int = 32, progress: bool = False) -> DetectorSetup:
    """Chapter 6's ``DETECTOR`` trained with ``course.yolo.train.RECIPES[mode]``, its time cap included (or loaded from ``checkpoint``).

    The test split is drawn like the recipe's data but with another seed (1), so no test image was
    seen in training or in validation; calibration uses the first train images.
    """
    from course.env import pick
    from course.yolo.benchmark import DETECTORS
    from course.yolo.data import YoloDataset, create_dataloader, load_data_config, make_shapes
    from course.yolo.train import recipe, shapes_kwargs, train, train_kwargs, with_time_budget
    from course.yolo.val import load_model

    rec = recipe(mode)
    root = Path(root)
    shapes = shapes_kwargs(rec)
    data_yaml = make_shapes(root / "shapes", **shapes)
    n_test = pick(200, 16) if n_test is None else n_test
    test_yaml = make_shapes(root / "shapes_test", **{**shapes, "n_train": 1, "n_val": n_test, "seed": 1})
    if checkpoint is not None:
        model, source = load_model(checkpoint), f"checkpoint {checkpoint}"
    else:
        result = train(DETECTORS[DETECTOR], data_yaml, project=str(root / "runs"), name=DETECTOR,
                       progress=progress, callbacks=with_time_budget(rec["time_budget_s"]), **train_kwargs(rec))
        model, source = result.ema_model, "trained (course.yolo.train recipe)"
    imgsz = rec["imgsz"]
    test = load_data_config(test_yaml)
    loader = create_dataloader(YoloDataset(test["val"], imgsz, augment=False, nc=test["nc"]), 8, shuffle=False)
    train_set = YoloDataset(load_data_config(data_yaml)["train"], imgsz, augment=False, nc=test["nc"])
    images = [train_set[i][0].float() / 255 for i in range(min(n_calibration, len(train_set)))]
    calibration = [torch.stack(images[i:i + 8]) for i in range(0, len(images), 8)]
    return DetectorSetup(model.eval(), loader, calibration, imgsz, n_test, source)


def run_study(root, mode: str | None = None, runtimes=RUNTIMES, batches=(1, 8), threads: int | None = None,
              rounds: int | None = None, number: int = 5, checkpoints: dict | None = None,
              detector_checkpoint=None, n_calibration: int | None = None, progress: bool = False,
              keep_dir=None) -> dict:
    """The whole chapter at one size: train (or load), time, quantize, score. Plain data for JSON.

    ``root`` holds the ONNX files, the detector's data and runs. Returns ``rows`` (``DeployRow``
    dicts), ``activation`` (``activation_study``), ``depthwise_spread`` (per model: median and max of
    ``depthwise_range_spread``), ``quantization`` (``torch_quantization_status``) and ``models``
    (test accuracy, training time, source). ``keep_dir`` keeps the trained classifiers for a rerun
    (``trained_classifiers``).
    """
    from course import classify
    from course.env import pick

    root = Path(root)
    n_calibration = pick(256, 32) if n_calibration is None else n_calibration
    labels = list(CLASSIFIERS) + [f"{k} unbounded" for k in ACTIVATION_PAIRS]
    models = trained_classifiers(mode, labels, checkpoints=checkpoints, progress=progress, keep_dir=keep_dir)
    splits = glyph_splits(mode)
    imgsz = classify.recipe(mode)["imgsz"]
    calibration = calibration_batches(splits["train"], n_calibration)
    rows = []
    for label in CLASSIFIERS:
        rows += [r.as_dict() for r in classifier_rows(models[label]["model"], label, splits["test"], calibration,
                                                      root / "onnx", imgsz, batches, runtimes, threads, rounds,
                                                      number)]
    det = trained_detector(root / "detector", mode, detector_checkpoint, n_calibration=min(n_calibration, 64),
                           progress=progress)
    rows += [r.as_dict() for r in detector_rows(det.model, f"YOLOv5n-{DETECTOR}", det.test_loader, det.calibration,
                                                root / "onnx", det.imgsz, batches, runtimes, threads, rounds,
                                                number)]
    pairs, exported = {}, {}
    for base, (_, ours, theirs) in ACTIVATION_PAIRS.items():
        pairs[f"{base}, {ours}"] = models[base]["model"]
        pairs[f"{base}, {theirs}"] = models[f"{base} unbounded"]["model"]
        exported[f"{base}, {ours}"] = (root / "onnx" / f"{base}.onnx", root / "onnx" / f"{base}_int8.onnx")
    activation = activation_study(pairs, splits["test"], calibration, root / "onnx", imgsz, exported=exported)
    spread = {}
    for label in CLASSIFIERS:
        s = sorted(depthwise_range_spread(models[label]["model"]))
        spread[label] = dict(median=s[len(s) // 2], max=s[-1], layers=len(s))
    summary = {label: {k: v for k, v in m.items() if k not in ("model", "result")} for label, m in models.items()}
    summary[f"YOLOv5n-{DETECTOR}"] = dict(source=det.source, n_test=det.n_test, imgsz=det.imgsz)
    return dict(rows=rows, activation=activation, depthwise_spread=spread, quantization=torch_quantization_status(),
                models=summary, imgsz=imgsz, n_test=len(splits["test"]), n_calibration=n_calibration)


def describe_quantization_status(status: dict) -> str:
    """``torch_quantization_status`` as a sentence: what this torch still offers, and what the chapter uses."""
    parts = [f"torch {status['torch']}:"]
    if status["eager_mode"]:
        parts.append("torch.ao.quantization (eager" + (" and FX" if status["fx_mode"] else "") + " mode) still imports"
                     + (f", with the notice \"{status['deprecation']}\"" if status["deprecation"] else "") + ";")
    else:
        parts.append("torch.ao.quantization is gone;")
    parts.append("its PT2E path is " + ("still in torch;" if status["pt2e_in_torch"] else "no longer in torch;"))
    parts.append("torchao (its successor) is " + ("installed." if status["torchao_installed"] else "not installed."))
    if status["onnxruntime_quantization"]:
        parts.append("The chapter quantizes with onnxruntime.quantization, which is maintained and installed.")
    return " ".join(parts)

"""Train and evaluate the course's classifiers: one small trainer that every chapter shares.

The recipe is the usual one for small CNNs trained from scratch: SGD with Nesterov momentum (or
AdamW), a linear warm-up then a cosine decay of the learning rate per step, optional label
smoothing, weight decay on conv and linear weights only (decaying BatchNorm scales and biases only
shrinks them). Weights are kept from the epoch with the best **validation** accuracy, and only
those weights are scored on the **test** split, once. Mixed precision runs on CUDA only (bf16 where
the GPU has it, else fp16 with a gradient scaler); the CPU trains in fp32.

``RECIPES`` holds the settings for "full" and "quick" mode in one place; ``train_recipe`` runs one
model on Glyphs-10 with them, ``train_classifier`` trains any model on any datasets.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from dataclasses import dataclass, field, fields
from functools import lru_cache, partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from course.deploy.accuracy import evaluate_top1
from course.device import resolve_device, select_device
from course.env import pick, seed_everything
from course.models import MobileNetV1, MobileNetV2, MobileNetV3, ShuffleNetV1, ShuffleNetV2

__all__ = ["RECIPES", "CLASSIFIERS", "recipe", "recipe_lr", "lr_words", "build_classifier", "total_stride", "lr_multiplier",
           "ClassifyResult", "train_classifier", "evaluate", "save_checkpoint", "load_checkpoint",
           "train_recipe", "recipe_model", "recipe_splits", "stem_stride_of", "recompute_batchnorm"]

# The one recipe of the course on Glyphs-10, read by every chapter. Keys are ``train_classifier``
# arguments, plus the data keys (imgsz, n_train, n_val, n_test, data_seed, and style: GlyphStyle
# fields overriding its defaults) and stem_stride (``recipe_model``). Chosen by probes on 2 cores
# (README, "Calibrating the classification recipe"): SGD left every network at chance within the
# budget, AdamW did not; MobileNet V3's BatchNorm momentum of 0.01 left its eval-mode statistics
# stale after a short schedule until they were recomputed (precise_bn); with the stem's stride 2
# (made for 224 px) MobileNet V3-Small stayed at chance on 32-px images, with stride 1 it learned
# (``course.variants.with_stem_stride``); the nuisance-free EASY
# style keeps the task learnable in about 36,000 image presentations; within that budget the
# number of optimizer steps, not the images, limited the networks (batch 64 -> 16 lifted
# MobileNet V1 0.5 from 0.23 to 0.49 test accuracy), and fresh images beat repeated ones (3,000
# images x 12 epochs let MobileNet V2 1.0 reach train 0.92 / val 0.43; 9,000 x 4: val 0.57
# with train 0.61). The budget keeps the best network far from saturation. The reference run
# (results/ablations_cpu.json) records what this recipe gives, three seeds per network.
# Learning rates that differ from the recipe's lr (2e-3), one seed's probe each (README): MobileNet
# V1, which has no shortcut, was starved at 2e-3 and not at 3e-3; MobileNet V2 did better at 2e-3
# than at 3e-3, V3-Small better at 1e-3 than at 2e-3 and stalled at chance from 3e-3 on; V3-Large
# shares V3-Small's blocks and was not probed on its own, ShuffleNet V1 only at 3e-3 (it learned).
LR_BY_MODEL = {"mobilenet_v1": 3e-3, "shufflenet_v1": 3e-3, "mobilenet_v3_small": 1e-3, "mobilenet_v3_large": 1e-3}
RECIPES = {
    "full": dict(
        imgsz=32, n_train=9000, n_val=500, n_test=1000, data_seed=0,
        style=dict(clutter=[0, 0], decoy_prob=0.0, occlusion_prob=0.0, noise=[0.0, 0.0], contrast=[0.8, 1.0]),
        epochs=4, batch_size=16, optimizer="adamw", lr=2e-3, momentum=0.9, weight_decay=0.05,
        warmup_epochs=0.25, label_smoothing=0.0, time_budget_s=900.0, stem_stride=1, precise_bn=50,
        lr_by_model=LR_BY_MODEL,
    ),
    "quick": dict(
        imgsz=32, n_train=64, n_val=32, n_test=32, data_seed=0,
        style=dict(clutter=[0, 0], decoy_prob=0.0, occlusion_prob=0.0, noise=[0.0, 0.0], contrast=[0.8, 1.0]),
        epochs=1, batch_size=16, optimizer="adamw", lr=2e-3, momentum=0.9, weight_decay=0.05,
        warmup_epochs=0.5, label_smoothing=0.0, time_budget_s=60.0, stem_stride=1, precise_bn=2,
        lr_by_model=LR_BY_MODEL,
    ),
}
DATA_KEYS = ("imgsz", "n_train", "n_val", "n_test", "data_seed", "style")
OPTIMIZERS = ("sgd", "adamw")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Each name's constructor and which of its arguments is the paper's width multiplier.
CLASSIFIERS = {
    "mobilenet_v1": (MobileNetV1, "width_mult"),
    "mobilenet_v2": (MobileNetV2, "width_mult"),
    "mobilenet_v3_small": (partial(MobileNetV3, "small"), "width_mult"),
    "mobilenet_v3_large": (partial(MobileNetV3, "large"), "width_mult"),
    "shufflenet_v1": (ShuffleNetV1, "scale"),
    "shufflenet_v2": (ShuffleNetV2, "scale"),
}


def recipe(mode: str | None = None) -> dict:
    """A copy of ``RECIPES[mode]``; ``mode=None`` picks "full", or "quick" under ``COURSE_QUICK=1``."""
    mode = pick("full", "quick") if mode is None else mode
    if mode not in RECIPES:
        raise ValueError(f"mode must be None or one of {sorted(RECIPES)}, got {mode!r}")
    return copy.deepcopy(RECIPES[mode])


def recipe_lr(name: str, mode: str | None = None) -> float:
    """The learning rate ``train_recipe`` uses for classifier ``name``: the recipe's ``lr_by_model`` entry, else its ``lr``."""
    if name not in CLASSIFIERS:
        raise ValueError(f"name must be one of {list(CLASSIFIERS)}, got {name!r}")
    rec = recipe(mode)
    return rec["lr_by_model"].get(name, rec["lr"])


def lr_words(names, mode: str | None = None) -> str:
    """``recipe_lr`` of each classifier in ``names`` in words: one number when they share it ("0.002")."""
    lrs = {n: recipe_lr(n, mode) for n in dict.fromkeys(names)}
    if len(set(lrs.values())) == 1:
        return f"{next(iter(lrs.values())):g}"
    return ", ".join(f"{lr:g} ({n})" for n, lr in lrs.items())


def build_classifier(name: str, num_classes: int = 10, width_mult: float = 1.0, **kwargs) -> nn.Module:
    """One of ``CLASSIFIERS`` with ``num_classes`` outputs; ``width_mult`` is α (MobileNets) or the scale (ShuffleNets).

    Other keyword arguments go to the constructor (``groups=8`` for ShuffleNet V1, ``dropout``).
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"name must be one of {list(CLASSIFIERS)}, got {name!r}")
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a number > 0, got {width_mult!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    ctor, width_arg = CLASSIFIERS[name]
    allowed = [p for p in inspect.signature(ctor).parameters if p not in (width_arg, "num_classes")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"{name} takes no argument(s) {unknown}; allowed besides width_mult: {allowed}")
    return ctor(num_classes=num_classes, **{width_arg: width_mult}, **kwargs)


def total_stride(model: nn.Module, probe: int = 64) -> int | None:
    """How much the network shrinks its input, read off one small forward of ``forward_features``.

    None for a model without ``forward_features`` (the course's models all have it).
    """
    if not hasattr(model, "forward_features"):
        return None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.forward_features(torch.zeros(1, 3, probe, probe, device=device))[-1]
    model.train(was_training)
    return probe // out.shape[-1]


def _check_input_size(model: nn.Module, hw: tuple[int, int]) -> None:
    stride = total_stride(model)
    if stride is not None and min(hw) < stride:
        raise ValueError(f"input size {hw[0]}x{hw[1]} is below the network's total stride {stride}: "
                         f"use images of at least {stride}x{stride} px")


def lr_multiplier(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 to 1 over ``warmup_steps``, then a cosine from 1 to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class ClassifyResult:
    """What one training run produced; ``history`` has one dict per epoch (train_loss, train_acc, val_acc, lr)."""

    history: list[dict]
    best_epoch: int
    best_val_acc: float
    test_acc: float | None
    wall_time_s: float
    train_images_per_s: float
    device: str
    threads: int
    torch_version: str
    amp: str | None
    seed: int
    params: int
    stopped_early: bool
    checkpoint: str | None = None
    config: dict = field(default_factory=dict)
    model: nn.Module | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """Everything but the model, as plain data (for JSON)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "model"}


def _check_dataset(name: str, ds, required: bool = True) -> None:
    if ds is None and not required:
        return
    if ds is None or len(ds) == 0:
        raise ValueError(f"{name} must be a non-empty dataset, got {'None' if ds is None else 'one of length 0'}")


def _check_number(name: str, value, low: float, low_inclusive: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= low if low_inclusive else value > low)
    if not ok:
        raise ValueError(f"{name} must be a number {'>=' if low_inclusive else '>'} {low}, got {value!r}")


def _amp_dtype(amp, device: torch.device) -> torch.dtype | None:
    if amp not in ("auto", None, False, *AMP_DTYPES):
        raise ValueError(f"amp must be 'auto', None, False, 'bf16' or 'fp16', got {amp!r}")
    if device.type != "cuda" or not amp:
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return AMP_DTYPES[amp]


def _optimizer(model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float):
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    return torch.optim.AdamW(groups, lr=lr)


def evaluate(model: nn.Module, dataset, batch_size: int = 256, device=None) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (eval mode, no gradients; the mode is restored)."""
    _check_dataset("dataset", dataset)
    device = resolve_device("auto" if device is None else device)[0]
    was_training = model.training
    model.eval()
    try:
        return evaluate_top1(lambda x: model(x.to(device)), DataLoader(dataset, batch_size=batch_size)).accuracy
    finally:
        model.train(was_training)


def recompute_batchnorm(model: nn.Module, loader, batches: int = 20, device=None) -> int:
    """Re-estimate every BatchNorm's running mean and variance from ``batches`` training batches.

    During training BatchNorm keeps an exponential average of batch statistics; with MobileNet V3's
    momentum of 0.01 that average trails the weights by about a hundred steps, so after a short
    schedule the eval-mode network normalises with stale statistics and scores near chance while
    the training accuracy climbs. Recomputing them as a plain average over a few batches with the
    final weights ("precise BN", Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021) removes the
    lag and changes no weight. Returns the number of BatchNorm layers updated.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches < 1:
        return 0
    device = next(model.parameters()).device if device is None else device
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    try:
        with torch.no_grad():
            for i, (x, _) in enumerate(loader):
                if i >= batches:
                    break
                model(x.to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)


def save_checkpoint(path, model: nn.Module, meta: dict | None = None) -> Path:
    """Weights and plain metadata, readable with ``torch.load(weights_only=True)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": dict(meta or {})},
               path)
    return path


def load_checkpoint(path, model: nn.Module) -> dict:
    """Load weights saved by ``save_checkpoint`` into ``model``; returns the metadata."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be a checkpoint file, got {str(path)!r} (no such file)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    return ckpt["meta"]


def train_classifier(model: nn.Module, train_set, val_set, test_set=None, *, epochs: int = 10,
                     batch_size: int = 64, optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.9,
                     weight_decay: float = 5e-5, warmup_epochs: float = 1.0, label_smoothing: float = 0.0,
                     amp="auto", device=None, seed: int = 0, threads: int | None = None,
                     time_budget_s: float | None = None, checkpoint=None, progress: bool = True,
                     precise_bn: int = 0) -> ClassifyResult:
    """Train ``model`` on ``train_set``, keep the best-on-``val_set`` weights, score them on ``test_set``.

    Datasets yield ``(float image (3, H, W), int label)``. Same ``seed`` (and threads, device),
    same weights. ``time_budget_s`` stops before an epoch that would end past it (at the mean
    epoch time so far; ``stopped_early``), so a slow machine cannot run on for ever. ``checkpoint``: a
    path to save the best weights to. ``precise_bn``: before each validation, recompute the
    BatchNorm statistics from this many training batches (``recompute_batchnorm``; 0 = off). The
    model comes back on ``device`` holding the best weights.
    """
    for name, ds, required in (("train_set", train_set, True), ("val_set", val_set, True),
                               ("test_set", test_set, False)):
        _check_dataset(name, ds, required)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    _check_number("lr", lr, 0, low_inclusive=False)
    _check_number("momentum", momentum, 0)
    _check_number("weight_decay", weight_decay, 0)
    _check_number("warmup_epochs", warmup_epochs, 0)
    if not (isinstance(label_smoothing, (int, float)) and 0 <= label_smoothing < 1):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if isinstance(precise_bn, bool) or not isinstance(precise_bn, int) or precise_bn < 0:
        raise ValueError(f"precise_bn must be an int >= 0 (training batches), got {precise_bn!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    device = select_device("auto" if device is None else device)
    amp_dtype = _amp_dtype(amp, device)
    sample = train_set[0][0]
    _check_input_size(model, tuple(sample.shape[-2:]))

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        seed_everything(seed)
        model.to(device).train()
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                            generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda")
        steps_per_epoch = len(loader)
        opt = _optimizer(model, optimizer, lr, momentum, weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, partial(lr_multiplier, total_steps=epochs * steps_per_epoch,
                         warmup_steps=round(warmup_epochs * steps_per_epoch)))
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        history, best, best_val, best_epoch = [], None, -1.0, 0
        seen, train_time, stopped = 0, 0.0, False
        start = time.perf_counter()
        for epoch in range(epochs):
            t0 = time.perf_counter()
            total_loss, correct, count = 0.0, 0, 0
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress)
            for x, y in bar:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                    logits = model(x)
                    loss = loss_fn(logits, y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                total_loss += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                count += len(y)
                bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.3f}")
            train_time += time.perf_counter() - t0
            seen += count
            if precise_bn:
                recompute_batchnorm(model, loader, precise_bn, device)
            val_acc = evaluate(model, val_set, device=device)
            history.append(dict(epoch=epoch + 1, train_loss=total_loss / count, train_acc=correct / count,
                                val_acc=val_acc, lr=opt.param_groups[0]["lr"]))
            if val_acc > best_val:
                best_val, best_epoch = val_acc, epoch + 1
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{epochs}: loss {total_loss / count:.3f}, "
                           f"train acc {correct / count:.3f}, val acc {val_acc:.3f}")
            elapsed = time.perf_counter() - start
            if time_budget_s is not None and elapsed + (elapsed / (epoch + 1)) > time_budget_s and epoch + 1 < epochs:
                stopped = True
                break
        model.load_state_dict(best)
        test_acc = evaluate(model, test_set, device=device) if test_set is not None else None
        wall = time.perf_counter() - start
        n_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
    config = dict(epochs=epochs, batch_size=batch_size, precise_bn=precise_bn, optimizer=optimizer, lr=lr, momentum=momentum,
                  weight_decay=weight_decay, warmup_epochs=warmup_epochs, label_smoothing=label_smoothing,
                  input_size=list(sample.shape), n_train=len(train_set), n_val=len(val_set),
                  n_test=len(test_set) if test_set is not None else 0, time_budget_s=time_budget_s)
    result = ClassifyResult(
        history=history, best_epoch=best_epoch, best_val_acc=best_val, test_acc=test_acc, wall_time_s=wall,
        train_images_per_s=seen / train_time if train_time > 0 else float("nan"),
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        threads=n_threads, torch_version=str(torch.__version__),
        amp=None if amp_dtype is None else str(amp_dtype).removeprefix("torch."), seed=seed,
        params=sum(p.numel() for p in model.parameters()), stopped_early=stopped, config=config, model=model)
    if checkpoint is not None:
        result.checkpoint = str(save_checkpoint(checkpoint, model, result.as_dict()))
    return result


@lru_cache(maxsize=4)
def _cached_splits(imgsz: int, n_train: int, n_val: int, n_test: int, data_seed: int, style):
    from course.data.glyphs import glyph_splits

    return glyph_splits(imgsz, data_seed, dict(train=n_train, val=n_val, test=n_test), style)


def _glyph_splits(imgsz, n_train, n_val, n_test, data_seed, style: dict):
    from course.data.glyphs import GlyphStyle

    allowed = [f.name for f in fields(GlyphStyle)]
    unknown = sorted(set(style) - set(allowed))
    if unknown:
        raise ValueError(f"style has unknown keys {unknown}; allowed: {allowed}")
    frozen = GlyphStyle(**{k: tuple(v) if isinstance(v, list) else v for k, v in style.items()})
    return _cached_splits(imgsz, n_train, n_val, n_test, data_seed, frozen)


def recipe_splits(mode: str | None = None, **overrides) -> dict:
    """The Glyphs-10 train/val/test datasets ``train_recipe`` trains on for ``recipe(mode)`` (drawn once, cached).

    ``overrides`` replace the recipe's data keys (``imgsz``, ``n_test``, ...).
    """
    rec = recipe(mode)
    unknown = sorted(set(overrides) - set(DATA_KEYS))
    if unknown:
        raise ValueError(f"unknown data keys {unknown}; allowed: {list(DATA_KEYS)}")
    rec.update(overrides)
    return _glyph_splits(*(rec[k] for k in DATA_KEYS))


def train_recipe(name: str, width_mult: float = 1.0, mode: str | None = None, seed: int = 0,
                 model_kwargs: dict | None = None, surgery=(), **overrides) -> ClassifyResult:
    """Train ``build_classifier(name, 10, width_mult, **model_kwargs)`` on Glyphs-10 with ``recipe(mode)``.

    ``surgery`` names ablations of ``course.variants`` to apply (``["no_se"]``). ``overrides``
    replace recipe keys (``imgsz=32`` for a lower resolution, ``epochs=...``); the learning rate is
    ``recipe_lr(name)`` unless ``lr`` is among them. The data is drawn
    once per (sizes, imgsz, data_seed) and reused, so ablations and seeds differ only in the model
    and the training seed.
    """
    rec = recipe(mode)
    unknown = sorted(set(overrides) - set(rec) - {"device", "threads", "checkpoint", "progress", "amp"})
    if unknown:
        raise ValueError(f"unknown recipe keys {unknown}; allowed: {sorted(rec)} and device, threads, "
                         f"checkpoint, progress, amp")
    rec.update(overrides)
    lr_by_model = rec.pop("lr_by_model")
    if not isinstance(lr_by_model, dict) or not set(lr_by_model) <= set(CLASSIFIERS):
        raise ValueError(f"lr_by_model must be a dict from names in {list(CLASSIFIERS)} to learning rates, "
                         f"got {lr_by_model!r}")
    if "lr" not in overrides:
        rec["lr"] = lr_by_model.get(name, rec["lr"])
    seed_everything(seed)  # the data has its own generators, so this seed alone sets the initial weights
    model = recipe_model(name, width_mult, rec.pop("stem_stride"), surgery, model_kwargs)
    _check_input_size(model, (rec["imgsz"], rec["imgsz"]))
    splits = _glyph_splits(*(rec.pop(k) for k in DATA_KEYS))
    result = train_classifier(model, splits["train"], splits["val"], splits["test"], seed=seed, **rec)
    result.config.update(model=name, width_mult=width_mult, model_kwargs=dict(model_kwargs or {}),
                         surgery=list(surgery), stem_stride=stem_stride_of(model))
    return result


def recipe_model(name: str, width_mult: float = 1.0, stem_stride: int | None = None, surgery=(),
                 model_kwargs: dict | None = None) -> nn.Module:
    """The network ``train_recipe`` trains: the paper's, with the recipe's stem stride and the named surgeries.

    ``stem_stride=None`` takes the recipe's (``recipe()["stem_stride"]``). Use it to rebuild a
    trained model before ``load_checkpoint``.
    """
    from course.variants import apply_variants, with_stem_stride

    stem_stride = recipe()["stem_stride"] if stem_stride is None else stem_stride
    model = build_classifier(name, 10, width_mult, **(model_kwargs or {}))
    return apply_variants(with_stem_stride(model, stem_stride), surgery)


def stem_stride_of(model: nn.Module) -> int:
    """The stride of the network's first convolution."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).stride[0]

"""Train the course's YOLOv5: YOLOv5's ``train.py`` recipe, compact enough to read in one sitting.

The recipe (``ultralytics/yolov5:train.py``, ``data/hyps/hyp.scratch-low.yaml``):

* SGD, momentum 0.937, Nesterov, three parameter groups: BatchNorm weights (no decay),
  other weights (decay), biases (no decay).
* Gradients accumulate to a nominal batch of 64 images (``nbs``); weight decay scales with it.
* Warm-up over ``max(warmup_epochs·batches, 100)`` iterations (here capped at half the run, so a
  short course run is not all warm-up): bias lr falls from 0.1, other lrs rise from 0, momentum
  rises from 0.8; then a linear (or one-cycle cosine) decay to ``lr0·lrf`` per epoch.
* Loss gains rescaled for the number of levels, classes and the image size (``scale_hyp``).
* An EMA of the weights (decay 0.9999, ramp τ) is validated every epoch and saved; best = max of
  ``0.1·mAP@0.5 + 0.9·mAP@0.5:0.95``. YOLOv5's τ = 2000 suits 100k-step runs; ours are a few
  hundred steps, so τ defaults to the run length (``ema.auto_tau``).
* Mixed precision only on CUDA; fp32 on CPU.

Run ``python -m course.yolo.train --cfg yolov5n.yaml --data data.yaml --epochs 30 --imgsz 320``,
or the same under ``torchrun --nproc_per_node=N`` for DistributedDataParallel;
``--recipe full --shapes DIR`` trains on the course's recipe (``RECIPES``, shared with chapter 6).
``--hyp small-data`` takes the course recipe's hyperparameters for your own small dataset
(``HYP_PRESETS``; the default is YOLOv5's ``scratch-low``). ``--cfg yolov5n-mobilenetv3small.yaml
--pretrained CLASSIFIER.pt --freeze 12 --freeze-epochs 5`` starts the swapped backbone (12 rows) from
a course classifier, frozen for the first 5 epochs.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.profiler import record_function
from tqdm.auto import tqdm

from course.device import select_device
from course.env import pick, seed_everything
from course.yolo.ema import ModelEMA, auto_tau, unwrap
from course.yolo.metrics import fitness
from course.yolo.model import CFG_DIR
from course.validate import check_int



def _shapes_preset(name: str) -> dict:
    from course.yolo.data.shapes import DATA_PRESETS

    return {k: tuple(v) if isinstance(v, tuple) else v for k, v in DATA_PRESETS[name].items()}


CALLBACK_EVENTS = ("on_train_start", "on_epoch_end", "on_train_end")
MIN_WARMUP_ITERS = 100
MAX_GRAD_NORM = 10.0
MIN_WORKER_BATCHES = 4

# The course's training recipes on the shapes dataset, read by the CLI (``--recipe``),
# ``benchmarks/yolo_full.py`` and chapter 6. Keys are ``make_shapes`` or ``train`` arguments, plus
# RUN_KEYS for the runner. "full" is the discriminating benchmark: the data is
# ``DATA_PRESETS["medium"]`` (8 look-alike classes, small objects, a few decoys and occluders; see
# ``course.yolo.data.shapes``), chosen so that the best chapter-6 detector ends between 0.60 and
# 0.85 mAP@0.5 on the test split within the time cap. The first recipe, "toy", saturated at
# 0.93-0.99 and could not rank them; "hard" left YOLOv5n at 0.37 in the cap on a 2-core Xeon, and
# "medium" gave it 0.80 (one seed each: results/yolo_probes_cpu/). Whether it does is read from results/yolo_full_cpu.json, never
# assumed. "quick" only proves the code runs.
_FULL_HYP = dict(
    # scale_hyp multiplies cls by nc/80 * 3/nl = 0.1 for 8 classes, so YOLOv5's 0.5 would become
    # 0.05 and the class loss would hardly train; 2.0 makes it 0.2. Much more lets the class term
    # dominate the clipped gradient (MAX_GRAD_NORM) and starve box and objectness.
    cls=2.0,
    # A clipped step has norm lr * MAX_GRAD_NORM, so lr0 sets the pace: higher than YOLOv5's 0.01
    # because a short run has few steps. 2-epoch warm-up.
    lr0=0.05, warmup_epochs=2.0,
    # Zoom of +-25 % instead of +-50 %: at 0.5x the smallest objects would shrink below one P3 cell.
    scale=0.25,
)
RECIPES = {
    "full": dict(
        # 128 px: on a CPU, learning within the time budget is limited by the number of optimizer
        # steps, and small images give more steps per minute. 10-48 px objects: the smallest spans
        # just over one stride-8 cell, the largest over a third of the image. 150 val images pick
        # the best epoch; 300 test images give the final score.
        n_train=1000, n_val=150, n_test=300, imgsz=128, **_shapes_preset("medium"),
        # nbs = batch: no gradient accumulation, one optimizer step per batch (63 per epoch).
        # workers=0: the main process loads, so a seed gives the same run whatever the thread count
        # and load ("auto" workers depend on both).
        epochs=60, batch_size=16, nbs=16, cache=True, ema_tau="auto", workers=0, hyp=_FULL_HYP,
        # "auto": 2 threads on an idle machine, 1 when the load average is >= 1 (OpenMP threads
        # competing with other processes for the same cores slow every step down).
        threads="auto", time_budget_s=15 * 60,
    ),
    "quick": dict(
        n_train=16, n_val=8, n_test=8, imgsz=64, classes=("circle", "square", "triangle", "cross"),
        objects=(1, 3), size_range=(8.0, 32.0),
        epochs=1, batch_size=8, nbs=8, cache=True, ema_tau="auto", workers=0,
        hyp=dict(cls=2.0, lr0=0.05, warmup_epochs=2.0),
        threads="auto", time_budget_s=120,
    ),
}
RUN_KEYS = ("threads", "time_budget_s")  # for the runner: thread count ("auto" or int), cap per detector

# Named hyperparameter presets for ``train(hyp=...)`` and ``--hyp``: changes to hyp.scratch-low.yaml.
# "scratch-low" is YOLOv5's own file, the default. "small-data" is the course's recipe above (the
# reasons are beside its values): a stronger class-loss gain for a handful of classes, lr0 0.05,
# a 2-epoch warm-up and +-25 % zoom, for runs of a few thousand optimizer steps on ~1000 images.
HYP_PRESETS = {"scratch-low": {}, "small-data": _FULL_HYP}


@dataclass
class TrainResult:
    """What a run produced. ``history`` has one dict of plain floats per epoch."""

    history: list[dict]
    wall_time_s: float
    train_images_per_s: float
    save_dir: Path
    last: Path | None
    best: Path | None
    best_fitness: float
    device: str
    stopped_early: bool = False
    test: dict | None = None
    model: nn.Module | None = field(default=None, repr=False)
    ema_model: nn.Module | None = field(default=None, repr=False)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def split_scores(metrics: dict, epoch: int | None = None) -> dict:
    """The plain numbers of an ``evaluate`` on the test split: YOLOv5's AP and the COCO figure beside it."""
    return dict(epoch=epoch, images=int(metrics["images"]), instances=int(metrics["instances"]),
                map50=float(metrics["map50"]), map=float(metrics["map"]), precision=float(metrics["precision"]),
                recall=float(metrics["recall"]), coco_map50=float(metrics["coco"]["map50"]),
                coco_map=float(metrics["coco"]["map"]))


def recipe(mode: str | None = None) -> dict:
    """A copy of ``RECIPES[mode]``; ``mode=None`` picks "full", or "quick" under ``COURSE_QUICK=1``."""
    if mode is None:
        mode = pick("full", "quick")
    if mode not in RECIPES:
        raise ValueError(f"mode must be None or one of {sorted(RECIPES)}, got {mode!r}")
    return copy.deepcopy(RECIPES[mode])


def _arguments_of(fn, rec: dict, skip: tuple[str, ...]) -> dict:
    params = inspect.signature(fn).parameters
    return {k: v for k, v in rec.items() if k in params and k not in skip}


def shapes_kwargs(rec: dict) -> dict:
    """The ``make_shapes`` arguments in a recipe (dataset size, image size, classes, objects, sizes)."""
    from course.yolo.data import make_shapes

    return _arguments_of(make_shapes, rec, skip=("root",))


def train_kwargs(rec: dict) -> dict:
    """The ``train`` arguments in a recipe (epochs, imgsz, batch, hyp, ...); RUN_KEYS are left to the runner."""
    return _arguments_of(train, rec, skip=("cfg", "data", "callbacks", "name"))


def with_time_budget(budget_s: float | None, callbacks: dict | None = None, log: str | None = None) -> dict:
    """``callbacks`` plus a stop when one more epoch, as long as the last, would end past ``budget_s``.

    A recipe's ``time_budget_s`` caps a run for whoever runs it (RUN_KEYS), so a slow machine
    cannot run on for hours; pass the result as ``train(callbacks=...)``. The clock starts here,
    so data caching counts. ``log``: print one line per epoch, prefixed with it. ``None``: no cap.
    """
    if budget_s is not None and (isinstance(budget_s, bool) or not isinstance(budget_s, (int, float))
                                 or budget_s < 0):
        raise ValueError(f"budget_s must be None or a number of seconds >= 0, got {budget_s!r}")
    callbacks = dict(callbacks or {})
    inner = callbacks.get("on_epoch_end")
    start = last = time.perf_counter()

    def on_epoch_end(epoch, row):
        nonlocal last
        stop = bool(inner(epoch, row)) if inner is not None else False
        now = time.perf_counter()
        elapsed, epoch_s, last = now - start, now - last, now
        if log:
            print(f"[{log}] epoch {epoch + 1} {elapsed:.0f}s P {row['precision']:.3f} R {row['recall']:.3f} "
                  f"val mAP50 {row['map50']:.3f} mAP {row['map']:.3f} load {os.getloadavg()[0]:.1f}", flush=True)
        return stop or (budget_s is not None and elapsed + epoch_s > budget_s)

    callbacks["on_epoch_end"] = on_epoch_end
    return callbacks


def setup_distributed(device: torch.device) -> tuple[int, int, int]:
    """Make ``device`` current, then join the process group torchrun describes; (rank, local_rank, world).

    gloo on CPU, nccl on CUDA. The GPU is made current first: NCCL runs every collective (a
    barrier included) on the current device, which would otherwise be cuda:0 in every process.
    """
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return -1, -1, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), world


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with YOLOv5's groups: 0 = biases, 1 = weights (decayed), 2 = BatchNorm weights.

    Decaying BN scales or biases only shrinks them toward zero without regularising anything.
    The order matters: warm-up treats group 0 (biases) differently.
    """
    biases, decayed, bn_weights = [], [], []
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if pname == "bias":
                biases.append(p)
            elif isinstance(module, nn.modules.batchnorm._NormBase):
                bn_weights.append(p)
            else:
                decayed.append(p)
    optimizer = torch.optim.SGD(biases, lr=lr, momentum=momentum, nesterov=True)
    optimizer.add_param_group({"params": decayed, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": bn_weights, "weight_decay": 0.0})
    return optimizer


def lr_factor(epochs: int, lrf: float, cos_lr: bool = False):
    """Multiplier of ``lr0`` at an epoch: linear 1 → lrf, or YOLOv5's one-cycle cosine."""

    def linear(epoch):
        return (1 - epoch / epochs) * (1.0 - lrf) + lrf

    def one_cycle(epoch):
        return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1

    return one_cycle if cos_lr else linear


def _merge_hyp(hyp) -> dict:
    """hyp.scratch-low.yaml updated with a preset name, a dict or a YAML path of changes; unknown keys are errors."""
    from course.yolo.loss import load_hyp

    merged = load_hyp(None)
    if hyp is None:
        return merged
    if isinstance(hyp, str) and hyp in HYP_PRESETS:
        hyp = copy.deepcopy(HYP_PRESETS[hyp])
    elif isinstance(hyp, (str, Path)):
        if not Path(hyp).is_file():
            raise ValueError(f"hyp must be a preset in {sorted(HYP_PRESETS)}, a dict or a YAML path; got {str(hyp)!r}, "
                             "which is neither a preset nor a file")
        hyp = yaml.safe_load(Path(hyp).read_text())
    if not isinstance(hyp, dict):
        raise ValueError(f"hyp must be None, a preset in {sorted(HYP_PRESETS)}, a dict or a YAML path, "
                         f"got {type(hyp).__name__}")
    unknown = sorted(set(hyp) - set(merged))
    if unknown:
        raise ValueError(f"hyp has unknown keys {unknown}; allowed: {sorted(merged)}")
    return {**merged, **hyp}


def _plain(obj):
    """Only dicts, lists, str, int, float, bool and None, so ``torch.load(weights_only=True)`` accepts it."""
    if isinstance(obj, dict):
        return {(k if isinstance(k, (int, float, bool)) else str(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bool, int, float)) or obj is None:
        return obj
    return str(obj)


def _weights(model: nn.Module, ema: ModelEMA, epoch: int) -> dict:
    """Copies of the raw and EMA weights (copies: the live tensors keep changing)."""
    return dict(epoch=epoch, model={k: v.detach().clone() for k, v in unwrap(model).state_dict().items()},
                ema={k: v.detach().clone() for k, v in ema.ema.state_dict().items()}, ema_updates=ema.updates)


def auto_workers(batch_size: int, device: torch.device, world: int = 1, batches: int | None = None) -> int:
    """DataLoader workers for the cores compute leaves free, capped at the batch and 8 (as YOLOv5).

    On a CPU torch's intra-op threads do the compute, so a worker there only competes with them: on 2
    cores with 2 threads the answer is 0 and loading stays in the main process. On CUDA one core feeds
    the GPU. Workers start afresh every epoch (~0.1 s each on a 2-core CPU), so a loader of fewer than
    ``MIN_WORKER_BATCHES`` batches per epoch loads in the main process.
    """
    if batches is not None and batches < MIN_WORKER_BATCHES:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    compute = 1 if device.type == "cuda" else torch.get_num_threads()
    return max(0, min(cores // world - compute, batch_size, 8))


def _checkpoint_path(resume, save_dir: Path) -> Path:
    path = save_dir / "weights" / "last.pt" if resume is True else Path(resume)
    if not path.is_file():
        raise ValueError(f"resume={resume!r}: no checkpoint at {path}")
    return path


def train(cfg=None, data=None, epochs: int = 30, imgsz: int = 320, batch_size: int = 16, hyp=None,
          device="auto", seed: int = 0, project="runs", name: str = "exp", resume=False, workers="auto",
          progress: bool = True, callbacks: dict | None = None, cos_lr: bool = False,
          ema_tau="auto", nbs: int = 64, cache: bool = False, save_period: int = 1, pretrained=None,
          freeze: int = 0, freeze_epochs: int | None = None) -> TrainResult:
    """Train a ``DetectionModel`` on a YOLO dataset, from scratch or a pretrained backbone; see the module docstring.

    ``hyp``: a preset name in ``HYP_PRESETS`` ("scratch-low", YOLOv5's and the default; "small-data",
    the course's), a dict or a YAML path of changes to hyp.scratch-low. ``pretrained``: a course
    classifier (module, state dict or ``.pt`` path) whose backbone weights ``pretrained.load_backbone``
    copies in (its report is printed). ``freeze``: the first ``freeze`` backbone layers get no gradients
    (as YOLOv5's ``--freeze``; BatchNorm statistics still update) for the first ``freeze_epochs`` epochs,
    or the whole run when ``freeze_epochs`` is None. ``workers="auto"`` picks ``auto_workers``; a given
    seed reproduces a run for a given worker count. On a CPU the model trains in channels-last layout
    (faster convolutions; float rounding differs from the default layout).

    ``resume=True`` continues ``project/name/weights/last.pt`` exactly (a path also works); the run's
    cfg, data, epochs, imgsz, batch_size, hyp, seed, cos_lr, ema_tau, nbs, freeze and freeze_epochs
    then come from the checkpoint. ``callbacks`` maps ``on_train_start(info)``, ``on_epoch_end(epoch, metrics)`` (return
    True to stop after this epoch; ``last.pt`` is then saved) and ``on_train_end(result)``; they
    run on rank 0 only. Checkpoints are written every ``save_period`` epochs and at the end (the best
    weights are held in memory in between): writing ~20 MB per epoch dominates tiny runs. ``ema_tau="auto"`` picks the EMA ramp from the run length (``ema.auto_tau``).
    ``cache=True`` keeps decoded images in RAM (faster epochs on small datasets).
    """
    from course.yolo.data import YoloDataset, create_dataloader, load_data_config
    from course.yolo.loss import ComputeLoss, scale_hyp
    from course.yolo.model import DetectionModel, load_cfg
    from course.yolo.pretrained import freeze_backbone, load_backbone, unfreeze
    from course.yolo.val import evaluate

    save_dir = Path(project) / name
    ckpt = None
    if resume:
        ckpt = torch.load(_checkpoint_path(resume, save_dir), map_location="cpu", weights_only=True)
        run = ckpt["config"]
        cfg, data, epochs, imgsz, batch_size = run["cfg"], run["data"], run["epochs"], run["imgsz"], run["batch_size"]
        hyp, seed, cos_lr, ema_tau, nbs = run["hyp"], run["seed"], run["cos_lr"], run["ema_tau"], run["nbs"]
        freeze, freeze_epochs, pretrained = run.get("freeze", 0), run.get("freeze_epochs"), None
    if cfg is None or data is None:
        raise ValueError(f"cfg and data are required unless resume is set, got cfg={cfg!r}, data={data!r}")
    cfg = load_cfg(cfg)
    for arg, value in (("epochs", epochs), ("batch_size", batch_size), ("nbs", nbs), ("save_period", save_period)):
        check_int(arg, value)
    if workers != "auto":
        check_int("workers", workers, low=0)
    n_backbone = len(cfg["backbone"])
    if isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze <= n_backbone:
        raise ValueError(f"freeze must be an int in 0..{n_backbone} (the backbone layers of this cfg), got {freeze!r}")
    if freeze_epochs is not None:
        check_int("freeze_epochs", freeze_epochs)
    check_int("seed", seed, low=0)
    check_int("imgsz", imgsz, low=32)
    if imgsz % 32:
        raise ValueError(f"imgsz must be a multiple of 32 (the largest stride), got {imgsz}")
    if not (ema_tau == "auto" or (isinstance(ema_tau, (int, float)) and ema_tau > 0)):
        raise ValueError(f"ema_tau must be 'auto' or a positive number, got {ema_tau!r}")
    unknown = sorted(set(callbacks or {}) - set(CALLBACK_EVENTS))
    if unknown:
        raise ValueError(f"callbacks has unknown events {unknown}; allowed: {list(CALLBACK_EVENTS)}")
    hyp = _merge_hyp(hyp)
    data_cfg = load_data_config(data)

    dev = select_device(device)
    rank, local_rank, world = setup_distributed(dev)
    main_process = rank in (-1, 0)
    if batch_size % world:
        raise ValueError(f"batch_size must be divisible by the {world} processes, got {batch_size}")
    callbacks = (callbacks or {}) if main_process else {}
    amp = dev.type == "cuda"

    seed_everything(seed)
    model = DetectionModel(cfg, ch=3, nc=data_cfg["nc"])
    if pretrained is not None:
        load_backbone(model, pretrained, verbose=progress and main_process)
    memory_format = torch.channels_last if dev.type == "cpu" else torch.preserve_format
    model = model.to(dev, memory_format=memory_format)
    max_stride = int(max(model.stride))
    if imgsz % max_stride:
        raise ValueError(f"imgsz must be a multiple of the model's largest stride {max_stride}, got {imgsz}")
    nl = len(model.stride)
    hyp_run = dict(hyp)
    hyp = scale_hyp(hyp, nl=nl, nc=data_cfg["nc"], imgsz=imgsz)
    compute_loss = ComputeLoss(model, hyp)

    accumulate = max(round(nbs / batch_size), 1)
    weight_decay = hyp["weight_decay"] * batch_size * accumulate / nbs
    optimizer = build_optimizer(model, hyp["lr0"], hyp["momentum"], weight_decay)
    lf = lr_factor(epochs, hyp["lrf"], cos_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lf)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def loader_workers(n_images: int, batch: int) -> int:
        return auto_workers(batch, dev, world, batches=math.ceil(n_images / batch)) if workers == "auto" else workers

    train_set = YoloDataset(data_cfg["train"], imgsz, augment=True, hyp=hyp, nc=data_cfg["nc"], cache=cache)
    train_workers = loader_workers(math.ceil(len(train_set) / world), batch_size // world)
    train_loader = create_dataloader(train_set, batch_size // world, shuffle=True, workers=train_workers, seed=seed,
                                     distributed=world > 1)
    nb = len(train_loader)
    val_loader = None
    if main_process:
        val_set = YoloDataset(data_cfg["val"], imgsz, augment=False, hyp=hyp, nc=data_cfg["nc"], cache=cache)
        val_loader = create_dataloader(val_set, batch_size * 2, shuffle=False, seed=seed, distributed=False,
                                       workers=loader_workers(len(val_set), batch_size * 2))

    nw = max(round(hyp["warmup_epochs"] * nb), MIN_WARMUP_ITERS) if hyp["warmup_epochs"] > 0 else 0
    nw = min(nw, (epochs * nb) // 2)
    tau = auto_tau(math.ceil(epochs * nb / accumulate)) if ema_tau == "auto" else float(ema_tau)
    ema = ModelEMA(model, tau=tau) if main_process else None

    start_epoch, best_fitness, history = 0, 0.0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.ema.load_state_dict(ckpt["ema"])
            ema.updates = ckpt["ema_updates"]
        start_epoch, best_fitness, history = ckpt["epoch"] + 1, ckpt["best_fitness"], list(ckpt["history"])
        if start_epoch >= epochs:
            raise ValueError(f"resume: {save_dir} already finished all {epochs} epochs")
    frozen = bool(freeze) and (freeze_epochs is None or start_epoch < freeze_epochs)
    if frozen:
        freeze_backbone(model, freeze)

    def wrap(module):
        """DDP reduces the gradients of the parameters that train when it is built: build it again on unfreezing."""
        if world == 1:
            return module
        return nn.parallel.DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)

    model = wrap(model)

    run_config = _plain(dict(cfg=unwrap(model).yaml, data=str(data), epochs=epochs, imgsz=imgsz, batch_size=batch_size,
                      hyp=hyp_run, seed=seed, cos_lr=cos_lr, ema_tau=ema_tau, nbs=nbs, workers=train_workers,
                      freeze=freeze, freeze_epochs=freeze_epochs,
                      pretrained=None if pretrained is None else str(pretrained) if isinstance(pretrained, (str, Path))
                      else type(pretrained).__name__,
                      names=[data_cfg["names"][i] for i in range(data_cfg["nc"])], nc=data_cfg["nc"]))
    weights_dir = save_dir / "weights"
    last, best = weights_dir / "last.pt", weights_dir / "best.pt"
    if main_process:
        weights_dir.mkdir(parents=True, exist_ok=True)
        (save_dir / "hyp.yaml").write_text(yaml.safe_dump(hyp))
        if "on_train_start" in callbacks:
            callbacks["on_train_start"](dict(run_config, device=str(dev), world_size=world, save_dir=str(save_dir)))
        if progress:
            print(f"Training {len(train_set)} images, {nb} batches/epoch, {epochs} epochs on {dev} "
                  f"(world {world}, accumulate {accumulate}, warm-up {nw} iters, EMA tau {tau:.0f}, "
                  f"amp {amp}, {train_workers} workers" + (f", backbone layers 0-{freeze - 1} frozen" if frozen else "")
                  + f") -> {save_dir}")

    t_start, train_time, images_seen, stopped, best_state = time.perf_counter(), 0.0, 0, False, None
    last_opt_step = start_epoch * nb - 1
    for epoch in range(start_epoch, epochs):
        # A seed per (epoch, rank) so a resumed run draws the same shuffles and augmentations.
        epoch_seed = seed + 1000 * epoch + max(rank, 0)
        seed_everything(epoch_seed)
        if train_loader.generator is not None:
            train_loader.generator.manual_seed(epoch_seed)
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        if frozen and freeze_epochs is not None and epoch >= freeze_epochs:
            unfreeze(unwrap(model))
            model, frozen = wrap(unwrap(model)), False
        model.train()
        t_epoch = time.perf_counter()
        mloss = torch.zeros(3, device=dev)
        show = progress and main_process
        bar = tqdm(train_loader, total=nb, desc=f"epoch {epoch + 1}/{epochs}", disable=not show, leave=False)
        for i, (imgs, targets, _, _) in enumerate(bar):
            ni = i + nb * epoch
            imgs = imgs.to(dev, non_blocking=True, memory_format=memory_format).float() / 255
            if nw and ni <= nw:
                xi = [0, nw]
                accumulate = max(1, int(np.interp(ni, xi, [1, nbs / batch_size]).round()))
                for j, group in enumerate(optimizer.param_groups):
                    start_lr = hyp["warmup_bias_lr"] if j == 0 else 0.0
                    group["lr"] = float(np.interp(ni, xi, [start_lr, group["initial_lr"] * lf(epoch)]))
                    group["momentum"] = float(np.interp(ni, xi, [hyp["warmup_momentum"], hyp["momentum"]]))
            with torch.autocast(device_type=dev.type, enabled=amp):
                with record_function("train/forward"):
                    preds = model(imgs)
                with record_function("train/loss"):
                    loss, loss_items = compute_loss(preds, targets.to(dev))
            if world > 1:
                loss = loss * world  # DDP averages gradients over processes; YOLOv5 wants their sum
            with record_function("train/backward"):
                scaler.scale(loss).backward()
            if ni - last_opt_step >= accumulate or i == nb - 1:
                with record_function("train/optimizer"):
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), max_norm=MAX_GRAD_NORM)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    with record_function("train/ema"):
                        ema.update(model)
                last_opt_step = ni
            with record_function("train/log"):
                mloss = (mloss * i + loss_items.detach()) / (i + 1)
                images_seen += imgs.shape[0] * world
                if show:  # formatting reads the values: a device sync per step
                    bar.set_postfix(box=f"{mloss[0]:.4f}", obj=f"{mloss[1]:.4f}", cls=f"{mloss[2]:.4f}")
        bar.close()
        lrs = [group["lr"] for group in optimizer.param_groups]
        scheduler.step()
        train_time += time.perf_counter() - t_epoch

        if main_process:
            metrics = evaluate(ema.ema, val_loader, half=amp, progress=False, names=data_cfg["names"])
            row = dict(epoch=epoch, box=float(mloss[0]), obj=float(mloss[1]), cls=float(mloss[2]),
                       loss=float(mloss.sum()), precision=float(metrics["precision"]), recall=float(metrics["recall"]),
                       map50=float(metrics["map50"]), map=float(metrics["map"]), fitness=fitness(metrics),
                       lr=float(lrs[1]), lr_bias=float(lrs[0]), time_s=time.perf_counter() - t_epoch)
            history.append(row)
            if row["fitness"] >= best_fitness:
                best_fitness, best_state = row["fitness"], _weights(model, ema, epoch)
            if progress:
                print(f"epoch {epoch + 1}/{epochs}  loss box {row['box']:.4f} obj {row['obj']:.4f} cls {row['cls']:.4f}  "
                      f"P {row['precision']:.3f} R {row['recall']:.3f} mAP50 {row['map50']:.3f} "
                      f"mAP {row['map']:.3f}  lr {row['lr']:.5f}  {row['time_s']:.1f}s")
            if "on_epoch_end" in callbacks and callbacks["on_epoch_end"](epoch, dict(row)):
                stopped = True
            if (epoch + 1) % save_period == 0 or epoch == epochs - 1 or stopped:
                common = dict(best_fitness=best_fitness, history=history, config=run_config,
                              torch_version=str(torch.__version__))
                torch.save(dict(_weights(model, ema, epoch), **common, optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(), scaler=scaler.state_dict()), last)
                if best_state is not None:
                    torch.save(dict(best_state, **common), best)
                    best_state = None
        if world > 1:
            flag = [stopped]
            dist.broadcast_object_list(flag, src=0)
            stopped = flag[0]
        if stopped:
            break

    wall_time_s = time.perf_counter() - t_start
    test = None
    if main_process and "test" in data_cfg and best.exists():
        # The best epoch was chosen on val; the test split, never looked at before, gives the score.
        from course.yolo.val import load_model

        test_set = YoloDataset(data_cfg["test"], imgsz, augment=False, hyp=hyp, nc=data_cfg["nc"], cache=cache)
        test_loader = create_dataloader(test_set, batch_size * 2, shuffle=False, seed=seed, distributed=False,
                                        workers=loader_workers(len(test_set), batch_size * 2))
        best_ckpt = torch.load(best, map_location="cpu", weights_only=True)
        scored = evaluate(load_model(best, dev), test_loader, half=amp, progress=False, names=data_cfg["names"])
        test = split_scores(scored, epoch=int(best_ckpt["epoch"]))
        (save_dir / "test.json").write_text(json.dumps(test, indent=1))
        if progress:
            print(f"test ({test['images']} images, best epoch {test['epoch'] + 1} by val): mAP50 {test['map50']:.3f} "
                  f"mAP {test['map']:.3f} (YOLOv5 AP); COCO-style {test['coco_map50']:.3f} / {test['coco_map']:.3f}")
    result = TrainResult(history=history, wall_time_s=wall_time_s,
                         train_images_per_s=images_seen / max(train_time, 1e-9), save_dir=save_dir,
                         last=last if main_process else None, best=best if main_process and best.exists() else None,
                         best_fitness=best_fitness, device=str(dev), stopped_early=stopped, test=test,
                         model=unwrap(model), ema_model=ema.ema if ema is not None else None)
    if "on_train_end" in callbacks:
        callbacks["on_train_end"](result)
    return result


def _workers_arg(text: str):
    if text == "auto":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {text!r}")
    return int(text)


def main(argv=None) -> TrainResult:
    """CLI; under ``torchrun`` every process runs this and joins the process group first."""
    parser = argparse.ArgumentParser(description="Train the course's YOLOv5 (YOLOv5 train.py recipe).")
    parser.add_argument("--cfg", help=f"model YAML: a path or a name in {CFG_DIR} (e.g. yolov5n.yaml)")
    parser.add_argument("--data", help="dataset YAML; with --shapes, generated there when missing")
    parser.add_argument("--shapes", help="folder for the synthetic shapes dataset (made if --data is missing)")
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="take data size, epochs, imgsz, batch, nbs, hyp and cache from RECIPES[name]; "
                             "flags given explicitly still win")
    parser.add_argument("--epochs", type=int, help="default 30 (or the recipe's)")
    parser.add_argument("--imgsz", "--img", type=int, help="default 320 (or the recipe's)")
    parser.add_argument("--batch", type=int, help="total batch over all processes; default 16 (or the recipe's)")
    parser.add_argument("--hyp", help=f"a preset in {sorted(HYP_PRESETS)} (default scratch-low, YOLOv5's; "
                                      "small-data, the course's) or a YAML overriding hyp.scratch-low")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", default="runs")
    parser.add_argument("--name", default="exp")
    parser.add_argument("--resume", action="store_true", help="continue project/name/weights/last.pt")
    parser.add_argument("--workers", type=_workers_arg,
                        help="DataLoader workers: an int, or auto (the cores compute leaves free); "
                             "default auto (or the recipe's)")
    parser.add_argument("--pretrained", help="a course classifier's .pt whose backbone weights start the detector")
    parser.add_argument("--freeze", type=int, default=0, help="backbone layers to freeze (0: none)")
    parser.add_argument("--freeze-epochs", type=int, help="unfreeze after this many epochs (default: never)")
    parser.add_argument("--cos-lr", action="store_true", help="one-cycle cosine instead of linear LR decay")
    parser.add_argument("--cache", action="store_true", help="keep decoded images in RAM")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    args = parser.parse_args(argv)
    rec = recipe(args.recipe) if args.recipe else dict(epochs=30, imgsz=320, batch_size=16, workers="auto")
    run = train_kwargs(rec)
    for key, flag in (("epochs", args.epochs), ("imgsz", args.imgsz), ("batch_size", args.batch), ("hyp", args.hyp),
                      ("workers", args.workers)):
        if flag is not None:
            run[key] = flag
    run["cache"] = args.cache or run.get("cache", False)
    imgsz = run["imgsz"]

    data = args.data
    if not args.resume and args.shapes and (data is None or not Path(data).is_file()):
        from course.yolo.data import make_shapes

        rank, _, world = setup_distributed(select_device(args.device))
        if rank <= 0:
            data = str(make_shapes(args.shapes, seed=args.seed, **{**shapes_kwargs(rec), "imgsz": imgsz}))
        if world > 1:
            dist.barrier()
            data = str(Path(args.shapes).resolve() / "data.yaml")
    if not args.resume and (args.cfg is None or data is None):
        parser.error("--cfg and --data (or --shapes DIR) are required unless --resume is given")
    try:
        return train(args.cfg, data, device=args.device, seed=args.seed, project=args.project, name=args.name,
                     resume=args.resume,
                     progress=not args.quiet, cos_lr=args.cos_lr, pretrained=args.pretrained, freeze=args.freeze,
                     freeze_epochs=args.freeze_epochs, **run)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()

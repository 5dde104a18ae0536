"""Training and evaluation of the course's YOLOv5: overfit, checkpoints, exact resume, DDP on CPU."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from course.yolo.data import YoloDataset, create_dataloader, make_shapes
from course.yolo.ema import ModelEMA, auto_tau
from course.yolo.model import DetectionModel, load_cfg
from course.yolo.train import (RECIPES, RUN_KEYS, _merge_hyp, build_optimizer, fitness, lr_factor, recipe, train,
                              with_time_budget)
from course.yolo.val import evaluate, load_model, predict, targets_to_pixels

REPO = Path(__file__).resolve().parents[1]
NO_AUGMENT = dict(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0, fliplr=0.0, mosaic=0.0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """8 train / 4 val images at 64 px: enough for the code paths, not for learning."""
    return make_shapes(tmp_path_factory.mktemp("tiny"), n_train=8, n_val=4, imgsz=64, seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """Training many tiny steps: one thread avoids OpenMP oversubscription on a shared CPU (30x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


OVERFIT_EPOCHS = 300


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, one_thread):
    """Eight 64-px images, validated on themselves, no augmentation: the detector must memorise them.

    Full-batch steps (batch 8 = the dataset) keep BatchNorm's batch statistics equal to the data's,
    and ~300 steps let the running statistics (momentum 0.03) forget their initial values; with
    fewer steps the eval-mode model lags far behind the train-mode one. Objects are 24-32 px: at
    64 px the stride-32 maps are 2x2, and with objects down to 8 px whether the eval-mode model
    keeps every memorised box depended on the seed (mAP@0.5 0.80-0.99 in our probes); this test
    is about loss, targets and decoding agreeing, not about small objects.
    """
    root = tmp_path_factory.mktemp("overfit")
    data_yaml = make_shapes(root, n_train=8, n_val=1, imgsz=64, seed=0, objects=(1, 3), size_range=(24, 32))
    cfg = yaml.safe_load(data_yaml.read_text())
    cfg["val"] = cfg["test"] = cfg["train"]
    data = root / "overfit.yaml"
    data.write_text(yaml.safe_dump(cfg))
    result = train("yolov5n.yaml", data, epochs=OVERFIT_EPOCHS, imgsz=64, batch_size=8, nbs=8, device="cpu",
                   hyp=dict(NO_AUGMENT, lr0=0.08, warmup_epochs=0.0), project=root / "runs", name="overfit",
                   progress=False, cache=True, save_period=OVERFIT_EPOCHS)
    return result, data


def test_overfit_reaches_map50(overfit_run):
    result, _ = overfit_run
    best = max(row["map50"] for row in result.history)
    assert best >= 0.9, [round(r["map50"], 3) for r in result.history[-10:]]
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_checkpoint_loads_weights_only_and_reproduces_metrics(overfit_run):
    result, data = overfit_run
    last = torch.load(result.last, map_location="cpu", weights_only=True)
    assert set(last) >= {"model", "ema", "optimizer", "scheduler", "epoch", "history", "config", "best_fitness"}
    assert last["epoch"] == OVERFIT_EPOCHS - 1
    ckpt = torch.load(result.best, map_location="cpu", weights_only=True)
    assert set(ckpt) >= {"model", "ema", "epoch", "history", "config", "best_fitness"}
    assert ckpt["best_fitness"] == pytest.approx(max(fitness(r) for r in result.history))
    model = load_model(result.best)
    from course.yolo.data import load_data_config

    cfg = load_data_config(data)
    loader = create_dataloader(YoloDataset(cfg["val"], 64, nc=cfg["nc"]), 8, shuffle=False)
    metrics = evaluate(model, loader, progress=False)
    assert metrics["map50"] == pytest.approx(result.history[ckpt["epoch"]]["map50"], abs=1e-6)
    assert set(metrics["speed_ms"]) == {"inference", "nms"}


def test_the_test_split_scores_the_epoch_chosen_on_val(overfit_run):
    """val = test = train here, so the test score must equal the val row of the epoch best.pt holds."""
    result, _ = overfit_run
    ckpt = torch.load(result.best, map_location="cpu", weights_only=True)
    assert result.test["epoch"] == ckpt["epoch"] == max(range(len(result.history)),
                                                        key=lambda e: (result.history[e]["fitness"], e))
    row = result.history[result.test["epoch"]]
    assert result.test["map50"] == pytest.approx(row["map50"], abs=1e-6)
    assert result.test["map"] == pytest.approx(row["map"], abs=1e-6)
    assert json.loads((result.save_dir / "test.json").read_text()) == result.test
    assert result.test["images"] == 8


def test_evaluate_reports_the_coco_figure_beside_yolov5s(overfit_run):
    """``coco`` is the same matches integrated as pycocotools does: torchmetrics gives the same numbers."""
    from torchmetrics.detection import MeanAveragePrecision

    from course.yolo.data import load_data_config
    from course.yolo.postprocess import non_max_suppression

    result, data = overfit_run
    cfg = load_data_config(data)
    loader = create_dataloader(YoloDataset(cfg["val"], 64, nc=cfg["nc"]), 8, shuffle=False)
    model = load_model(result.best)
    metrics = evaluate(model, loader, progress=False, max_det=100)  # torchmetrics keeps COCO's 100 per image
    tm = MeanAveragePrecision(iou_type="bbox", box_format="xyxy")
    with torch.no_grad():
        for imgs, labels, _, _ in loader:
            dets = non_max_suppression(model(imgs.float() / 255)[0], 0.001, 0.6, max_det=100, multi_label=True)
            truth = targets_to_pixels(labels, 64, 64, len(imgs))
            tm.update([dict(boxes=d[:, :4], scores=d[:, 4], labels=d[:, 5].long()) for d in dets],
                      [dict(boxes=t[:, 1:], labels=t[:, 0].long()) for t in truth])
    ref = tm.compute()
    assert metrics["coco"]["map50"] == pytest.approx(float(ref["map_50"]), abs=0.005)
    assert metrics["coco"]["map"] == pytest.approx(float(ref["map"]), abs=0.005)
    assert metrics["coco"] != {k: metrics[k] for k in ("map50", "map")}  # a second figure, not a copy


def test_predict_finds_the_memorised_boxes(overfit_run):
    from torchvision.ops import box_iou

    from course.yolo.data import load_data_config

    result, data = overfit_run
    cfg = load_data_config(data)
    dataset = YoloDataset(cfg["val"], 64, nc=cfg["nc"])
    model = load_model(result.best)
    found = total = 0
    for i in range(len(dataset)):
        img, labels, _, _ = dataset[i]
        dets = predict(model, img)
        assert len(dets) == 1 and dets[0].shape[1] == 6
        truth = targets_to_pixels(labels, 64, 64, 1)[0]
        iou = box_iou(truth[:, 1:], dets[0][:, :4]) * (truth[:, :1] == dets[0][:, 5])
        found += int((iou.max(1).values > 0.5).sum()) if len(dets[0]) else 0
        total += len(truth)
    assert found >= 0.8 * total, (found, total)


def test_val_cli_prints_the_table(overfit_run, capsys):
    from course.yolo.val import main

    result, data = overfit_run
    main(["--weights", str(result.best), "--data", str(data), "--imgsz", "64", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "mAP50-95" in out and "all" in out and "ms inference" in out and "COCO-style" in out
    main(["--weights", str(result.best), "--data", str(data), "--imgsz", "64", "--device", "cpu", "--split", "test"])
    assert "mAP50-95" in capsys.readouterr().out


def _state_equal(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_resume_continues_exactly(tiny_data, tmp_path, one_thread, workers):
    """With worker processes too: their seeds, which drive augmentation, must come from (seed, epoch)."""
    common = dict(epochs=2, imgsz=64, batch_size=4, device="cpu", seed=3, project=tmp_path, progress=False,
                  workers=workers)
    train("yolov5n.yaml", tiny_data, name="straight", **common)
    stopped = train("yolov5n.yaml", tiny_data, name="split", callbacks={"on_epoch_end": lambda e, m: e == 0},
                    **common)
    assert stopped.stopped_early and len(stopped.history) == 1
    resumed = train(resume=True, project=tmp_path, name="split", device="cpu", progress=False, workers=workers)
    assert len(resumed.history) == 2
    a = torch.load(tmp_path / "straight/weights/last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/weights/last.pt", weights_only=True)
    assert not _state_equal(a["model"], b["model"])
    assert not _state_equal(a["ema"], b["ema"])
    assert a["ema_updates"] == b["ema_updates"]
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    init = DetectionModel("yolov5n.yaml", nc=4).state_dict()
    assert _state_equal(init, a["model"]), "training did not change the weights"


DDP_SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys, torch
    import course.yolo.val as V
    from course.yolo.train import main

    scored = []  # (split folder, images) of each evaluation this process ran
    real_evaluate = V.evaluate

    def counting_evaluate(model, dataloader, *args, **kwargs):
        paths = [p for _, _, batch, _ in dataloader for p in batch]
        scored.append([os.path.basename(os.path.dirname(paths[0])), len(paths)])
        return real_evaluate(model, dataloader, *args, **kwargs)

    V.evaluate = counting_evaluate
    out = sys.argv[1]
    result = main(sys.argv[2:])
    rank = int(os.environ["RANK"])
    params = dict(result.model.named_parameters())
    digest = hashlib.sha256(b"".join(params[k].detach().cpu().numpy().tobytes() for k in sorted(params))).hexdigest()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(dict(digest=digest, wrote_checkpoint=result.last is not None, scored=scored,
                       history=result.history), f)
""")


@pytest.fixture(scope="module")
def ddp_run(tiny_data, tmp_path_factory):
    """One epoch under torchrun with two CPU processes (gloo); what each rank reported."""
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp), "--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--epochs", "1", "--imgsz", "64",
           "--batch", "4", "--device", "cpu", "--project", str(tmp / "runs"), "--name", "ddp", "--quiet"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp / f"rank{r}.json").read_text()) for r in (0, 1)]
    return tmp / "runs/ddp/weights/last.pt", ranks


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_identical_weights(ddp_run):
    """Parameters, not BatchNorm buffers: without SyncBN each rank's last forward updates its own stats
    (DDP re-broadcasts rank 0's buffers at the start of every forward)."""
    last, (r0, r1) = ddp_run
    assert r0["digest"] == r1["digest"], "ranks diverged"
    assert (r0["wrote_checkpoint"], r1["wrote_checkpoint"]) == (True, False), "only rank 0 writes checkpoints"
    ckpt = torch.load(last, weights_only=True)
    names = sorted(name for name, _ in DetectionModel("yolov5n.yaml", nc=4).named_parameters())
    digest = hashlib.sha256(b"".join(ckpt["model"][k].numpy().tobytes() for k in names)).hexdigest()
    assert digest == r0["digest"]
    init = DetectionModel("yolov5n.yaml", nc=4).state_dict()
    assert _state_equal(init, ckpt["model"]), "training did not change the weights"


@pytest.mark.slow
def test_ddp_rank0_validates_the_whole_val_set(ddp_run, tiny_data):
    """Rank 0's mAP is the single-process evaluate of the same (EMA) weights on every val image, not a shard's;
    after training rank 0 alone scores the best epoch on every test image."""
    from course.yolo.data import load_data_config

    last, (r0, r1) = ddp_run
    cfg = load_data_config(tiny_data)
    val_set = YoloDataset(cfg["val"], 64, nc=cfg["nc"])
    test_set = YoloDataset(cfg["test"], 64, nc=cfg["nc"])
    assert r0["scored"] == [["val", len(val_set)], ["test", len(test_set)]] and r1["scored"] == []
    alone = evaluate(load_model(last), create_dataloader(val_set, 8, shuffle=False), progress=False)
    row = r0["history"][-1]
    for key in ("map50", "map", "precision", "recall"):
        assert row[key] == pytest.approx(float(alone[key]), abs=1e-6), key


def test_optimizer_groups_follow_yolov5():
    model = DetectionModel("yolov5n.yaml", nc=2)
    opt = build_optimizer(model, lr=0.01, momentum=0.937, weight_decay=5e-4)
    biases, decayed, bn = opt.param_groups
    n_bn = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert len(bn["params"]) == n_bn and bn["weight_decay"] == 0
    assert biases["weight_decay"] == 0 and decayed["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in biases["params"]) and all(p.ndim == 4 for p in decayed["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert opt.defaults["nesterov"]


def test_lr_schedules_end_at_lrf():
    for cos in (False, True):
        lf = lr_factor(30, 0.01, cos_lr=cos)
        assert lf(0) == pytest.approx(1.0) and lf(30) == pytest.approx(0.01)
        assert lf(10) > lf(20)


def test_ema_ramps_and_tracks():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    w0 = model.weight.detach().clone()
    ema = ModelEMA(model, tau=10)
    assert ema.decay() == 0
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1 / 10))
    assert ema.decay() == pytest.approx(d)
    assert torch.allclose(ema.ema.weight, d * w0 + (1 - d) * torch.ones(1, 2))
    assert not ema.ema.weight.requires_grad
    assert auto_tau(550_000) == 2000 and 20 < auto_tau(300) < 300


def test_bad_arguments_raise_before_training(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="cfg='nope.yaml': no such file"):
        train("nope.yaml", tiny_data, project=tmp_path)
    with pytest.raises(ValueError, match="imgsz must be a multiple of 32"):
        train("yolov5n.yaml", tiny_data, imgsz=100, project=tmp_path)
    with pytest.raises(ValueError, match="unknown events"):
        train("yolov5n.yaml", tiny_data, project=tmp_path, callbacks={"on_batch": print})
    with pytest.raises(ValueError, match="unknown keys"):
        train("yolov5n.yaml", tiny_data, project=tmp_path, hyp={"lr_0": 0.1})
    with pytest.raises(ValueError, match="no checkpoint"):
        train(resume=True, project=tmp_path, name="never")
    with pytest.raises(ValueError, match="device"):
        train("yolov5n.yaml", tiny_data, project=tmp_path, device="tpu")
    assert load_cfg("yolov5n") == load_cfg("yolov5n.yaml")
    model = DetectionModel("yolov5n.yaml", nc=4)
    with pytest.raises(ValueError, match="conf_thres"):
        predict(model, torch.zeros(3, 64, 64), conf_thres=2)
    with pytest.raises(ValueError, match="multiples of the largest stride"):
        predict(model, torch.zeros(3, 50, 64))


@pytest.mark.parametrize("mode", sorted(RECIPES))
def test_recipes_hold_only_arguments_train_and_make_shapes_accept(mode, tmp_path):
    rec = recipe(mode)
    accepted = set(inspect.signature(train).parameters) | set(inspect.signature(make_shapes).parameters)
    assert set(rec) - accepted == set(RUN_KEYS)
    assert {"n_train", "n_val", "imgsz", "epochs", "batch_size", "hyp"} <= set(rec)
    assert _merge_hyp(rec["hyp"])["cls"] == rec["hyp"]["cls"]  # every override is a known hyp key
    assert len(rec["classes"]) >= 3 and rec["objects"][1] >= 3 and rec["imgsz"] % 32 == 0
    assert rec["size_range"][0] <= rec["imgsz"] / 8 < rec["size_range"][1]  # small and large objects
    rec["hyp"]["cls"] = -1.0
    assert recipe(mode)["hyp"]["cls"] > 0  # a copy: callers cannot change the shared recipe


def test_recipe_follows_quick_mode_and_rejects_unknown_modes(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert recipe() == RECIPES["quick"]
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert recipe() == RECIPES["full"]
    with pytest.raises(ValueError, match="mode must be None or one of"):
        recipe("medium")


def test_cli_recipe_fills_the_unset_flags(tmp_path, one_thread):
    from course.yolo.train import main

    result = main(["--recipe", "quick", "--cfg", "yolov5n.yaml", "--shapes", str(tmp_path / "shapes"), "--device",
                   "cpu", "--project", str(tmp_path), "--name", "cli", "--quiet"])
    quick = RECIPES["quick"]
    stamp = json.loads((tmp_path / "shapes" / ".shapes.json").read_text())
    assert (stamp["n_train"], stamp["imgsz"], stamp["objects"]) == (quick["n_train"], quick["imgsz"],
                                                                     list(quick["objects"]))
    run = torch.load(result.last, weights_only=True)["config"]
    assert (run["epochs"], run["imgsz"], run["batch_size"], run["nbs"]) == (
        quick["epochs"], quick["imgsz"], quick["batch_size"], quick["nbs"])
    assert run["hyp"]["cls"] == quick["hyp"]["cls"]


class _ReachedTheGpu(Exception):
    """Raised by the fake ``set_device`` once PyTorch's own check accepted the device."""


@pytest.fixture
def fake_gpus(monkeypatch):
    """torch.cuda as on a machine with two GPUs; ``set_device`` checks its argument with PyTorch's own
    ``_get_device_index`` (index-less devices raise exactly as in PyTorch) and records the index."""
    import torch.cuda._utils

    calls = []

    def set_device(device):
        calls.append(torch.cuda._utils._get_device_index(device))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    for var in ("LOCAL_RANK", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_single_gpu_training_makes_an_indexed_device_current(tiny_data, tmp_path, fake_gpus, monkeypatch):
    """Up to the first CUDA work: building the model there is where the fake GPU has to stop."""
    import course.yolo.model

    def stop(*args, **kwargs):
        raise _ReachedTheGpu

    monkeypatch.setattr(course.yolo.model, "DetectionModel", stop)
    for device in ("auto", "cuda", "cuda:1"):
        fake_gpus.clear()
        with pytest.raises(_ReachedTheGpu):
            train("yolov5n.yaml", tiny_data, epochs=1, imgsz=64, batch_size=4, device=device, project=tmp_path,
                  progress=False)
        assert fake_gpus == [1 if device == "cuda:1" else 0], device


def test_cli_makes_the_gpu_current_before_the_first_nccl_collective(tmp_path, fake_gpus, monkeypatch):
    """Under torchrun the CLI's barrier (after rank 0 writes the dataset) must run on this rank's GPU."""
    import torch.distributed as dist

    import course.yolo.train as T

    events = fake_gpus  # set_device appends the index it made current
    monkeypatch.setattr(dist, "is_initialized", lambda: "init nccl" in events)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: events.append(f"init {backend}"))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "barrier", lambda *a, **kw: events.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: events.append("destroy"))
    monkeypatch.setattr(T, "train", functools.wraps(T.train)(lambda *a, **kw: events.append("train")))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    T.main(["--cfg", "yolov5n.yaml", "--shapes", str(tmp_path / "shapes"), "--device", "cuda", "--quiet"])
    assert events == [1, "init nccl", "barrier", "train", "destroy"]


def test_ema_update_equals_the_per_tensor_loop():
    """The _foreach update does a per-tensor loop's arithmetic: BatchNorm buffers included, counters left alone."""
    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=4)
    ema = ModelEMA(model, tau=3)
    expected = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    for _ in range(3):
        model.train()(torch.rand(2, 3, 64, 64))  # moves the BatchNorm running statistics
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        d = ema.decay()
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                expected[k].mul_(d).add_(v, alpha=1 - d)
    got = ema.ema.state_dict()
    assert not _state_equal(expected, got)
    assert not torch.equal(got["model.0.bn.running_mean"], DetectionModel("yolov5n.yaml", nc=4).state_dict()[
        "model.0.bn.running_mean"])


def test_auto_workers_leave_the_compute_threads_their_cores(monkeypatch):
    from course.yolo.train import MIN_WORKER_BATCHES, auto_workers

    cores = len(os.sched_getaffinity(0))
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    assert auto_workers(16, cpu) == 0
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert auto_workers(16, cpu) == min(cores - 1, 8) == auto_workers(16, cuda)
    assert auto_workers(1, cpu) <= 1 and auto_workers(16, cpu, world=cores) == 0
    assert auto_workers(16, cpu, batches=MIN_WORKER_BATCHES - 1) == 0  # worker start-up would cost more than it hides


def test_hyp_presets_reach_the_loss_and_the_optimizer(tiny_data, tmp_path, one_thread):
    from course.yolo.train import HYP_PRESETS

    assert _merge_hyp("scratch-low") == _merge_hyp(None)
    with pytest.raises(ValueError, match=r"preset in \['scratch-low', 'small-data'\].*'small'"):
        _merge_hyp("small")
    preset = HYP_PRESETS["small-data"]
    assert preset == RECIPES["full"]["hyp"] and _merge_hyp("small-data") == {**_merge_hyp(None), **preset}
    result = train("yolov5n.yaml", tiny_data, epochs=1, imgsz=64, batch_size=4, device="cpu", workers=0,
                   hyp="small-data", project=tmp_path, name="preset", progress=False)
    ckpt = torch.load(result.last, weights_only=True)
    assert ckpt["config"]["hyp"]["lr0"] == preset["lr0"] == 0.05
    assert [g["initial_lr"] for g in ckpt["optimizer"]["param_groups"]] == [preset["lr0"]] * 3
    used = yaml.safe_load((tmp_path / "preset" / "hyp.yaml").read_text())  # what ComputeLoss was given
    assert used["cls"] == pytest.approx(preset["cls"] * 4 / 80)  # scale_hyp: nc/80 for 4 classes, 3 levels
    assert used["scale"] == preset["scale"] and used["warmup_epochs"] == preset["warmup_epochs"]


def test_pretrained_backbone_starts_training_and_stays_frozen(tiny_data, tmp_path, one_thread, capsys):
    """Layers 0-5 of 12 frozen for epoch 0 only: after it they still hold the classifier's weights, the
    unfrozen backbone layers 6-11 (loaded too) have moved; after epoch 1 the frozen ones have moved as well."""
    from course.models import build_model, randomize_batchnorm

    torch.manual_seed(1)
    classifier = randomize_batchnorm(build_model("mobilenet_v3_small"), seed=1)
    path = tmp_path / "classifier.pt"
    torch.save(classifier.state_dict(), path)
    src = classifier.state_dict()
    snapshots = []

    def keep_checkpoint(epoch, metrics):  # runs before this epoch's save: last.pt holds the previous epoch's
        if epoch == 1:
            snapshots.append(torch.load(tmp_path / "pre/weights/last.pt", weights_only=True)["model"])

    result = train("yolov5n-mobilenetv3small.yaml", tiny_data, epochs=2, imgsz=64, batch_size=4, device="cpu",
                   workers=0, pretrained=path, freeze=6, freeze_epochs=1, project=tmp_path, name="pre",
                   progress=True, callbacks={"on_epoch_end": keep_checkpoint})
    assert "loaded" in capsys.readouterr().out  # load_backbone's report
    after_frozen_epoch, final = snapshots[0], dict(result.model.state_dict())
    from course.yolo.pretrained import load_backbone

    pairs = load_backbone(DetectionModel("yolov5n-mobilenetv3small.yaml", nc=4), src, verbose=False).loaded
    params = {k for k, _ in result.model.named_parameters()}
    frozen = [(d, s) for d, s in pairs if d in params and int(d.split(".")[1]) < 6]
    trained = [(d, s) for d, s in pairs if d in params and int(d.split(".")[1]) >= 6]
    assert frozen and trained
    assert all(torch.equal(after_frozen_epoch[d], src[s]) for d, s in frozen)
    assert any(not torch.equal(after_frozen_epoch[d], src[s]) for d, s in trained)
    assert any(not torch.equal(final[d], src[s]) for d, s in frozen), "unfreezing after epoch 0 did not happen"
    assert all(p.requires_grad for p in result.model.parameters())
    config = torch.load(result.last, weights_only=True)["config"]
    assert (config["freeze"], config["freeze_epochs"], config["pretrained"]) == (6, 1, str(path))


def test_cli_passes_presets_pretrained_and_freeze(tiny_data, monkeypatch):
    import course.yolo.train as T

    seen = {}
    monkeypatch.setattr(T, "train", functools.wraps(T.train)(lambda *a, **kw: seen.update(kw)))
    T.main(["--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--hyp", "small-data", "--pretrained", "c.pt",
            "--freeze", "3", "--freeze-epochs", "2", "--workers", "1", "--quiet"])
    assert (seen["hyp"], seen["pretrained"], seen["freeze"], seen["freeze_epochs"], seen["workers"]) == (
        "small-data", "c.pt", 3, 2, 1)
    seen.clear()
    T.main(["--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--quiet"])
    assert (seen["workers"], seen["freeze"], seen["pretrained"]) == ("auto", 0, None) and "hyp" not in seen
    with pytest.raises(SystemExit):
        T.main(["--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--workers", "many"])


def test_bad_freeze_and_workers_raise_before_training(tiny_data, tmp_path):
    for kwargs, match in ((dict(freeze=11), r"freeze must be an int in 0\.\.10"), (dict(freeze=True), "freeze"),
                          (dict(freeze=2, freeze_epochs=0), "freeze_epochs"), (dict(workers="many"), "workers")):
        with pytest.raises(ValueError, match=match):
            train("yolov5n.yaml", tiny_data, project=tmp_path, **kwargs)


def test_time_budget_stops_before_an_epoch_that_would_end_past_it_and_keeps_other_callbacks(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("course.yolo.train.time.perf_counter", lambda: clock[0])
    seen = []
    row = dict(precision=0.5, recall=0.5, map50=0.4, map=0.2)
    cb = with_time_budget(25.0, {"on_epoch_end": lambda e, r: seen.append(e), "on_train_end": print})
    assert cb["on_train_end"] is print
    clock[0] = 110.0
    assert cb["on_epoch_end"](0, row) is False  # 10 s done, one more 10-s epoch ends at 20 <= 25
    clock[0] = 120.0
    assert cb["on_epoch_end"](1, row) is True  # 20 s done, the next would end at 30 > 25
    assert seen == [0, 1]
    uncapped = with_time_budget(None, {"on_epoch_end": lambda e, r: e == 3})
    assert uncapped["on_epoch_end"](0, row) is False and uncapped["on_epoch_end"](3, row) is True
    with pytest.raises(ValueError, match="budget_s must be None or a number of seconds >= 0"):
        with_time_budget(-1)


def test_chapter6_training_applies_the_recipe_time_cap(monkeypatch, tmp_path):
    from course.widgets import ch06_yolo

    caps = []

    def fake_train(cfg, data, project=None, name=None, callbacks=None, **kwargs):
        caps.append(callbacks["on_epoch_end"](0, dict(precision=0, recall=0, map50=0, map=0)))
        return name

    monkeypatch.setattr("course.yolo.train.train", fake_train)
    rec = dict(recipe("quick"), time_budget_s=0)
    out = ch06_yolo.train_detectors("data.yaml", rec, {"a": "a.yaml", "b": "b.yaml"}, project=str(tmp_path))
    assert out == {"a": "a", "b": "b"} and caps == [True, True]

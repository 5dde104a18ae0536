"""Evaluate a detector the way YOLOv5's ``val.py`` does, and draw-ready predictions.

``evaluate`` runs the model over a dataloader, applies NMS with the low ``conf_thres=0.001``
(so the precision-recall curve reaches high recall), matches boxes at IoU 0.50:0.95 and returns
mAP@0.5, mAP@0.5:0.95, precision, recall, a per-class table and the time per image.
IoUs are computed in the letterboxed input frame: the letterbox scales both axes by one gain,
so IoU (and mAP) equal those in the original image frame.

CLI: ``python -m course.yolo.val --weights runs/exp/weights/best.pt --data data.yaml --imgsz 320``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from course.yolo.metrics import DetectionMetrics, format_table
from course.yolo.postprocess import non_max_suppression, xywh2xyxy


def _check_thresholds(conf_thres, iou_thres) -> None:
    for name, value in (("conf_thres", conf_thres), ("iou_thres", iou_thres)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def targets_to_pixels(labels: torch.Tensor, height: int, width: int, batch: int) -> list[torch.Tensor]:
    """``(n, 6)`` ``[image, cls, cx, cy, w, h]`` normalised → per image ``(m, 5)`` ``[cls, x1, y1, x2, y2]`` pixels."""
    labels = labels.float()
    scale = torch.tensor([width, height, width, height], dtype=labels.dtype, device=labels.device)
    boxes = xywh2xyxy(labels[:, 2:6] * scale)
    rows = torch.cat((labels[:, 1:2], boxes), 1)
    return [rows[labels[:, 0] == i] for i in range(batch)]


@torch.no_grad()
def evaluate(model: nn.Module, dataloader, conf_thres: float = 0.001, iou_thres: float = 0.6, half: bool = False,
             progress: bool = True, max_det: int = 300, names=None) -> dict:
    """mAP@0.5, mAP@0.5:0.95, P, R, per class, and ms/image for inference and NMS (YOLOv5 ``val.py``).

    ``map50``/``map`` are YOLOv5's interpolated AP (``metrics.compute_ap``, method "interp");
    ``result["coco"]`` holds the same matches integrated as pycocotools and torchmetrics do (the
    COCO figure, a little lower; tests check it against torchmetrics' ``MeanAveragePrecision``).

    ``half`` runs the forward pass under fp16 autocast on CUDA (ignored on CPU, where fp16
    convolutions are slow or missing); the model's own weights are left untouched, which
    matters when ``model`` is the training EMA. ``names`` defaults to ``dataloader.dataset.names``.
    """
    _check_thresholds(conf_thres, iou_thres)
    if not isinstance(max_det, int) or max_det < 1:
        raise ValueError(f"max_det must be a positive int, got {max_det!r}")
    device = next(model.parameters()).device
    nc = int(model.nc)
    names = names if names is not None else getattr(dataloader.dataset, "names", None)
    metrics = DetectionMetrics(nc, names)
    was_training = model.training
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.float16) if half and device.type == "cuda" else contextlib.nullcontext()
    t_inference = t_nms = 0.0
    images = 0
    for imgs, labels, _, _ in tqdm(dataloader, desc="val", disable=not progress, leave=False):
        imgs = imgs.to(device, non_blocking=True).float() / 255
        bs, _, height, width = imgs.shape
        _sync(device)
        t0 = time.perf_counter()
        with autocast:
            decoded = model(imgs)[0]
        _sync(device)
        t1 = time.perf_counter()
        dets = non_max_suppression(decoded.float(), conf_thres, iou_thres, max_det=max_det, multi_label=True)
        _sync(device)
        t_inference += t1 - t0
        t_nms += time.perf_counter() - t1
        images += bs
        metrics.update([d.cpu() for d in dets], targets_to_pixels(labels, height, width, bs))
    model.train(was_training)
    result = metrics.compute()
    metrics.method = "coco"  # the same matches, integrated as pycocotools/torchmetrics do
    coco = metrics.compute()
    result["coco"] = dict(map50=coco["map50"], map=coco["map"])
    result["speed_ms"] = dict(inference=1000 * t_inference / max(images, 1), nms=1000 * t_nms / max(images, 1))
    result["device"] = str(device)
    return result


@torch.no_grad()
def predict(model: nn.Module, images, conf_thres: float = 0.25, iou_thres: float = 0.45,
            max_det: int = 300) -> list[torch.Tensor]:
    """Detections to draw: one ``(n, 6)`` CPU tensor ``[x1, y1, x2, y2, conf, cls]`` per image.

    ``images``: a ``(3, H, W)`` or ``(B, 3, H, W)`` tensor (uint8 0–255 or float 0–1), or a list
    of equally sized ``(3, H, W)`` tensors; H and W must be multiples of the model's largest
    stride. Boxes are in the input image's pixels. Defaults are ``detect.py``'s 0.25 / 0.45.
    """
    _check_thresholds(conf_thres, iou_thres)
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("images must not be an empty list")
        images = torch.stack(list(images))
    if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4) or images.shape[-3] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (3, H, W) or (B, 3, H, W) tensor or a list of (3, H, W), got {shape}")
    if images.ndim == 3:
        images = images[None]
    stride = int(max(model.stride))
    if images.shape[-1] % stride or images.shape[-2] % stride:
        raise ValueError(f"image height and width must be multiples of the largest stride {stride}, "
                         f"got {tuple(images.shape[-2:])}")
    device = next(model.parameters()).device
    x = images.to(device)
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    was_training = model.training
    model.eval()
    decoded = model(x)[0]
    model.train(was_training)
    return [d.cpu() for d in non_max_suppression(decoded, conf_thres, iou_thres, max_det=max_det)]


def load_model(weights, device="cpu", ema: bool = True) -> nn.Module:
    """Rebuild a ``DetectionModel`` from a ``train.py`` checkpoint (EMA weights by default).

    The checkpoint holds only tensors and plain containers, so ``torch.load(weights_only=True)``
    suffices: nothing executable is unpickled. The class names land in ``model.names``.
    """
    from course.yolo.model import DetectionModel

    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"weights file {str(weights)!r} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"weights {str(weights)!r} is not a checkpoint written by course.yolo.train")
    config = ckpt["config"]
    model = DetectionModel(config["cfg"], ch=3, nc=config["nc"])
    model.load_state_dict(ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["model"])
    model.names = list(config["names"])
    return model.to(device).eval()


def main(argv=None) -> dict:
    from course.device import select_device
    from course.yolo.data import YoloDataset, create_dataloader, load_data_config

    parser = argparse.ArgumentParser(description="Evaluate a course.yolo checkpoint (YOLOv5 val.py).")
    parser.add_argument("--weights", required=True, help="checkpoint from course.yolo.train (best.pt / last.pt)")
    parser.add_argument("--data", required=True, help="dataset YAML (path, train, val, names)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--conf", type=float, default=0.001)
    parser.add_argument("--iou", type=float, default=0.6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    args = parser.parse_args(argv)

    device = select_device(args.device)
    model = load_model(args.weights, device)
    data = load_data_config(args.data)
    if args.split not in data:
        parser.error(f"--split {args.split}: {args.data} has no {args.split!r} key")
    dataset = YoloDataset(data[args.split], args.imgsz, augment=False, hyp=None, nc=data["nc"])
    loader = create_dataloader(dataset, args.batch, shuffle=False, workers=args.workers, seed=0)
    result = evaluate(model, loader, args.conf, args.iou, half=device.type == "cuda", names=data["names"])
    print(format_table(result, data["names"]))
    print(f"COCO-style (pycocotools' step integration of the same matches): mAP50 {result['coco']['map50']:.3g}, "
          f"mAP50-95 {result['coco']['map']:.3g}")
    speed = result["speed_ms"]
    print(f"Speed: {speed['inference']:.1f} ms inference, {speed['nms']:.1f} ms NMS per image at "
          f"{args.imgsz}x{args.imgsz}, batch {args.batch}, {device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    return result


if __name__ == "__main__":
    main()

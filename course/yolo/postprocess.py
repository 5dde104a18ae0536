"""From raw Detect output to final boxes: box formats, YOLOv5's NMS, undoing the letterbox.

The steps follow ``ultralytics/yolov5`` ``utils/general.py`` (``non_max_suppression``,
``scale_boxes``): keep anchors whose objectness beats ``conf_thres``, score each class as
``obj * cls``, convert to corners, then per-class NMS. Per-class NMS uses
``torchvision.ops.batched_nms`` (the same class-offset trick YOLOv5 writes by hand).
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import batched_nms

from .letterbox import letterbox_geometry
from course.validate import check_fraction

DETECT_CONF_THRES = 0.25
"""``detect.py`` default: show only confident boxes."""
DETECT_IOU_THRES = 0.45
VAL_CONF_THRES = 0.001
"""``val.py`` default: keep almost everything so the precision-recall curve reaches high recall."""
VAL_IOU_THRES = 0.6
MAX_NMS = 30000
"""At most this many boxes (highest scores) enter NMS per image, as in YOLOv5."""


def _clone(x):
    return x.clone() if isinstance(x, torch.Tensor) else np.array(x, dtype=np.float64, copy=True)


def xywh2xyxy(x):
    """Centre-size ``[cx, cy, w, h]`` to corners ``[x1, y1, x2, y2]`` (tensor or array, last dim 4)."""
    y = _clone(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def xyxy2xywh(x):
    """Corners ``[x1, y1, x2, y2]`` to centre-size ``[cx, cy, w, h]`` (tensor or array, last dim 4)."""
    y = _clone(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def non_max_suppression(pred, conf_thres: float = DETECT_CONF_THRES, iou_thres: float = DETECT_IOU_THRES,
                        max_det: int = 300, classes=None, multi_label: bool = False,
                        agnostic: bool = False) -> list[torch.Tensor]:
    """YOLOv5 NMS on decoded predictions.

    ``pred`` is ``(bs, N, 5 + nc)`` with pixel ``cx, cy, w, h``, objectness and class scores
    (already sigmoided), or the ``(decoded, raw)`` tuple Detect returns in eval mode.
    Returns one ``(n, 6)`` tensor per image: ``x1, y1, x2, y2, conf, cls``, best first.
    ``multi_label`` lets one anchor give one box per class above ``conf_thres`` (what ``val.py``
    uses); ``classes`` keeps only those class indices; ``agnostic`` suppresses across classes.
    """
    if isinstance(pred, (list, tuple)):
        pred = pred[0]
    if not isinstance(pred, torch.Tensor) or pred.ndim != 3 or pred.shape[-1] < 6:
        shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise ValueError(f"pred must be a tensor of shape (batch, anchors, 5 + nc) with nc >= 1, got {shape}")
    check_fraction("conf_thres", conf_thres)
    check_fraction("iou_thres", iou_thres)
    if not (isinstance(max_det, int) and max_det >= 1):
        raise ValueError(f"max_det must be a positive int, got {max_det!r}")

    nc = pred.shape[-1] - 5
    wanted = None
    if classes is not None:
        wanted = torch.as_tensor(list(classes), device=pred.device, dtype=torch.long)
        if wanted.numel() and (wanted.min() < 0 or wanted.max() >= nc):
            raise ValueError(f"classes must be indices in [0, {nc - 1}], got {classes!r}")

    output = []
    for x in pred:
        x = x[x[:, 4] > conf_thres]
        if not x.shape[0]:
            output.append(torch.zeros((0, 6), device=pred.device))
            continue
        scores = x[:, 5:] * x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        if multi_label:
            i, j = (scores > conf_thres).nonzero(as_tuple=True)
            det = torch.cat((box[i], scores[i, j, None], j[:, None].float()), 1)
        else:
            conf, j = scores.max(1, keepdim=True)
            det = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_thres]
        if wanted is not None:
            det = det[(det[:, 5:6] == wanted.to(det.dtype)).any(1)]
        if not det.shape[0]:
            output.append(torch.zeros((0, 6), device=pred.device))
            continue
        det = det[det[:, 4].argsort(descending=True)[:MAX_NMS]]
        groups = torch.zeros_like(det[:, 5]) if agnostic else det[:, 5]
        keep = batched_nms(det[:, :4], det[:, 4], groups, iou_thres)[:max_det]
        output.append(det[keep])
    return output


def clip_boxes(boxes, hw):
    """Clip ``x1, y1, x2, y2`` in place to an image of height/width ``hw``; returns ``boxes``."""
    h, w = hw
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, w)
        boxes[..., 1].clamp_(0, h)
        boxes[..., 2].clamp_(0, w)
        boxes[..., 3].clamp_(0, h)
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, w)
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, h)
    return boxes


def scale_boxes(from_hw, boxes, to_hw, ratio_pad=None):
    """Map ``x1, y1, x2, y2`` boxes from a letterboxed image (``from_hw``) back to the original (``to_hw``).

    Without ``ratio_pad`` the letterbox of a ``to_hw`` image into ``from_hw`` is recomputed with
    ``course.yolo.letterbox.letterbox_geometry``, the function the loader letterboxes with. With
    ``ratio_pad = ((ratio_w, ratio_h), (pad_w, pad_h))`` (what ``YoloDataset`` returns) those
    gains are used; a scalar ratio means one gain for both axes. Returns a new, clipped tensor/array.
    """
    ratio, pad = ratio_pad if ratio_pad is not None else letterbox_geometry(to_hw, from_hw)[:2]
    gx, gy = (ratio, ratio) if np.isscalar(ratio) else (ratio[0], ratio[1])
    out = _clone(boxes)
    out[..., [0, 2]] = (out[..., [0, 2]] - pad[0]) / gx
    out[..., [1, 3]] = (out[..., [1, 3]] - pad[1]) / gy
    return clip_boxes(out, to_hw)

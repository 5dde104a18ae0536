"""Training augmentation, YOLOv5's (``utils/augmentations.py``, ``utils/dataloaders.py``).

Mosaic, a random affine warp (rotation, scale, shear, translation), HSV gains and flips. Each
takes the image as ``uint8 (h, w, 3)`` RGB and boxes as pixel ``x1 y1 x2 y2``, and draws from
the ``numpy`` generator it is given, so one seed fixes the whole chain. The warp and the colour
space round trip use OpenCV, as YOLOv5 does: on one core they take about 1 ms per 256-px sample
where Pillow took about 13 ms, and they sit in every training step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import cv2
import numpy as np

from ..letterbox import PAD_VALUE

# One OpenCV thread per process: DataLoader workers and torch's threads already share the cores.
cv2.setNumThreads(0)


def default_augment_hyp() -> dict:
    """YOLOv5's ``hyp.scratch-low.yaml`` augmentation values (only the keys this loader reads)."""
    return dict(hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=0.0, translate=0.1, scale=0.5, shear=0.0,
                flipud=0.0, fliplr=0.5, mosaic=1.0)


_HYP_RANGES = dict(hsv_h=(0, 1), hsv_s=(0, 1), hsv_v=(0, 1), degrees=(0, 180), translate=(0, 0.5),
                   scale=(0, 0.95), shear=(0, 45), flipud=(0, 1), fliplr=(0, 1), mosaic=(0, 1))


def augment_hyp(hyp: Mapping | None) -> dict:
    """``default_augment_hyp()`` updated with the augmentation keys of ``hyp`` (others ignored), checked."""
    out = default_augment_hyp()
    out.update({k: v for k, v in (hyp or {}).items() if k in _HYP_RANGES})
    for k, (lo, hi) in _HYP_RANGES.items():
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"hyp[{k!r}] must be a number in [{lo}, {hi}], got {v!r}")
        out[k] = float(v)
    return out


def norm_xywh_to_pixel_xyxy(xywh: np.ndarray, w: float, h: float, padw: float, padh: float) -> np.ndarray:
    """Normalised ``cx cy w h`` of a ``w x h`` image pasted at ``(padw, padh)`` to pixel corners there."""
    out = np.empty((len(xywh), 4), np.float64)
    out[:, 0] = w * (xywh[:, 0] - xywh[:, 2] / 2) + padw
    out[:, 1] = h * (xywh[:, 1] - xywh[:, 3] / 2) + padh
    out[:, 2] = w * (xywh[:, 0] + xywh[:, 2] / 2) + padw
    out[:, 3] = h * (xywh[:, 1] + xywh[:, 3] / 2) + padh
    return out


def load_mosaic(load: Callable[[int], tuple[np.ndarray, np.ndarray]], index: int, count: int, s: int,
                rng: np.random.Generator):
    """Four images around a random centre on a 2s x 2s canvas (YOLOv5's ``load_mosaic``).

    ``load(j)`` gives image ``j`` (long side ``s``) and its labels ``(n, 5) [cls, cx, cy, w, h]``;
    the other three images are drawn from ``range(count)``. Returns ``(canvas, boxes, classes)``.
    """
    xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, 2))
    canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
    all_boxes, all_cls = [], []
    for k, j in enumerate([index, *rng.integers(0, count, 3)]):
        img, labels = load(int(j))
        h, w = img.shape[:2]
        if k == 0:    # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif k == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif k == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * s, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:         # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        canvas[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
        all_boxes.append(norm_xywh_to_pixel_xyxy(labels[:, 1:], w, h, x1a - x1b, y1a - y1b))
        all_cls.append(labels[:, 0])
    boxes = np.concatenate(all_boxes, 0)
    np.clip(boxes, 0, 2 * s, out=boxes)
    return canvas, boxes, np.concatenate(all_cls, 0)


def random_affine(img: np.ndarray, boxes: np.ndarray, cls: np.ndarray, hyp: Mapping, s: int,
                  rng: np.random.Generator):
    """Random rotation/scale/shear/translation to an ``s`` square (YOLOv5's ``random_perspective``
    without perspective); boxes follow their corners, tiny or mostly-cut boxes are dropped."""
    h, w = img.shape[:2]
    C = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], float)
    a = np.deg2rad(rng.uniform(-hyp["degrees"], hyp["degrees"]))
    sc = rng.uniform(1 - hyp["scale"], 1 + hyp["scale"])
    R = np.array([[sc * np.cos(a), -sc * np.sin(a), 0], [sc * np.sin(a), sc * np.cos(a), 0], [0, 0, 1]])
    sh = np.tan(np.deg2rad(rng.uniform(-hyp["shear"], hyp["shear"], 2)))
    S = np.array([[1, sh[0], 0], [sh[1], 1, 0], [0, 0, 1]])
    t = rng.uniform(0.5 - hyp["translate"], 0.5 + hyp["translate"], 2) * s
    T = np.array([[1, 0, t[0]], [0, 1, t[1]], [0, 0, 1]])
    M = T @ S @ R @ C
    if (h, w) != (s, s) or not np.allclose(M, np.eye(3)):
        img = cv2.warpAffine(img, M[:2], dsize=(s, s), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
    if len(boxes):
        corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
        xy = (np.c_[corners, np.ones(len(corners))] @ M.T)[:, :2].reshape(-1, 4, 2)
        new = np.concatenate([xy.min(1), xy.max(1)], 1).clip(0, s)
        keep = box_candidates(boxes, new, sc)
        boxes, cls = new[keep], cls[keep]
    return img, boxes, cls


def box_candidates(before: np.ndarray, after: np.ndarray, gain: float, wh_thr: float = 2,
                   area_thr: float = 0.1, ar_thr: float = 100, eps: float = 1e-16) -> np.ndarray:
    """Keep boxes still > 2 px wide and high, with > 10 % of their scaled area and aspect < 100."""
    w1, h1 = (before[:, 2] - before[:, 0]) * gain, (before[:, 3] - before[:, 1]) * gain
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def augment_hsv(img: np.ndarray, hyp: Mapping, rng: np.random.Generator) -> np.ndarray:
    """Random gains on hue, saturation and value through look-up tables (YOLOv5's ``augment_hsv``).

    OpenCV's 8-bit hue runs 0-179 (degrees / 2), so the hue table wraps at 180.
    """
    gains = rng.uniform(-1, 1, 3) * [hyp["hsv_h"], hyp["hsv_s"], hyp["hsv_v"]] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_flips(img: np.ndarray, boxes: np.ndarray, hyp: Mapping, s: int, rng: np.random.Generator):
    """Up-down flip with probability ``hyp["flipud"]``, then left-right with ``hyp["fliplr"]``."""
    if rng.random() < hyp["flipud"]:
        img = img[::-1]
        boxes = boxes.copy()
        boxes[:, [1, 3]] = s - boxes[:, [3, 1]]
    if rng.random() < hyp["fliplr"]:
        img = img[:, ::-1]
        boxes = boxes.copy()
        boxes[:, [0, 2]] = s - boxes[:, [2, 0]]
    return img, boxes

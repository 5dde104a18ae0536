"""YOLOv5's training loss, written from scratch (mirrors `ultralytics/yolov5:utils/loss.py`, v7.0).

Three parts, summed after per-part gains and multiplied by the batch size:

* box: 1 - CIoU between decoded predictions and targets, at matched cells only;
* objectness: BCE over *every* cell and anchor, target = CIoU (detached) at matched cells, 0
  elsewhere, levels weighted 4.0 / 1.0 / 0.4 (P3 / P4 / P5);
* class: BCE at matched cells, only when there is more than one class.

A target matches an anchor of a level when its width and height are both within a factor
``anchor_t`` (4) of the anchor's; it is then assigned to its own cell and the two neighbouring
cells nearest its centre, up to 3 positives per target and anchor.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.profiler import record_function

from .common import Detect
from .model import CFG_DIR, DetectionModel

LOSS_KEYS = ("box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma")
BALANCE = {3: [4.0, 1.0, 0.4]}  # objectness weight per level; 4+ levels (P3-P7) use BALANCE_P3P7
BALANCE_P3P7 = [4.0, 1.0, 0.25, 0.06, 0.02]
NEIGHBOUR_BIAS = 0.5  # a neighbour cell is a positive when the centre is within 0.5 cell of it


def load_hyp(hyp: str | Path | dict | None = None) -> dict:
    """Hyperparameters as a fresh dict: None for the shipped hyp.scratch-low.yaml, a dict, or a path."""
    if hyp is None:
        hyp = CFG_DIR / "hyp.scratch-low.yaml"
    if isinstance(hyp, (str, Path)):
        path = Path(hyp)
        if not path.is_file():
            raise ValueError(f"hyp={str(hyp)!r}: no such file")
        with open(path) as f:
            hyp = yaml.safe_load(f)
    if not isinstance(hyp, dict):
        raise ValueError(f"hyp={hyp!r}; expected None, a dict or a YAML path")
    missing = [k for k in LOSS_KEYS if k not in hyp]
    if missing:
        raise ValueError(f"hyp is missing {missing}; the loss needs {list(LOSS_KEYS)}")
    return copy.deepcopy(hyp)


def default_hyp() -> dict:
    """YOLOv5's hyp.scratch-low.yaml values (loss gains, optimiser, augmentation)."""
    return load_hyp(None)


def scale_hyp(hyp: dict, nl: int = 3, nc: int = 80, imgsz: int = 640) -> dict:
    """train.py's rescaling: loss gains follow the number of levels, classes and pixels.

    box *= 3/nl; cls *= nc/80 * 3/nl; obj *= (imgsz/640)**2 * 3/nl. With few classes the class
    loss shrinks (nc=1: 1/80 of the COCO gain); small images shrink the objectness gain.
    """
    for name, value in (("nl", nl), ("nc", nc), ("imgsz", imgsz)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"scale_hyp: {name}={value!r}; expected an integer >= 1")
    hyp = load_hyp(hyp)
    hyp["box"] *= 3 / nl
    hyp["cls"] *= nc / 80 * 3 / nl
    hyp["obj"] *= (imgsz / 640) ** 2 * 3 / nl
    return hyp


def smooth_bce(eps: float = 0.0) -> tuple[float, float]:
    """Label-smoothed BCE targets (positive, negative) = (1 - eps/2, eps/2)."""
    return 1.0 - 0.5 * eps, 0.5 * eps


def bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7):
    """IoU of box1 and box2 element-wise (broadcast over leading dims); last dim holds 4 coords.

    GIoU subtracts the share of the enclosing box not covered by the union; DIoU the squared
    centre distance over the enclosing diagonal squared; CIoU also an aspect-ratio term
    ``alpha * v`` whose weight ``alpha`` is not differentiated (Zheng et al. 2020).
    Returns shape (..., 1).
    """
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(eps)
        w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(eps)

    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not (GIoU or DIoU or CIoU):
        return iou
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)  # enclosing box
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    if GIoU:
        c_area = cw * ch + eps
        return iou - (c_area - union) / c_area
    c2 = cw**2 + ch**2 + eps  # enclosing diagonal squared
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    if DIoU:
        return iou - rho2 / c2
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def bce_loss(logits, target, pos_weight: float = 1.0, gamma: float = 0.0, alpha: float = 0.25):
    """Mean BCE-with-logits; with ``gamma > 0`` the focal loss of Lin et al. (2017)."""
    pw = torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
    if gamma > 0:
        p = logits.sigmoid()
        p_t = target * p + (1 - target) * (1 - p)
        loss = loss * (target * alpha + (1 - target) * (1 - alpha)) * (1.0 - p_t) ** gamma
    return loss.mean()


class ComputeLoss:
    """YOLOv5 loss for a ``DetectionModel``: ``loss, items = ComputeLoss(model)(preds, targets)``.

    ``preds`` is the training-mode output (one (bs, na, ny, nx, nc+5) map per level);
    ``targets`` is (n, 6): image index in the batch, class, then x, y, w, h normalised to 0-1.
    Returns the total multiplied by the batch size (what is back-propagated) and the detached
    (box, obj, cls) parts. ``hyp`` defaults to hyp.scratch-low.yaml, unscaled (see ``scale_hyp``).
    """

    gr = 1.0  # objectness target = (1 - gr) + gr * IoU

    def __init__(self, model: DetectionModel, hyp: dict | str | Path | None = None):
        detect = model.model[-1] if isinstance(model, DetectionModel) else None
        if not isinstance(detect, Detect):
            raise ValueError(f"model={type(model).__name__}; expected a DetectionModel ending in Detect")
        self.hyp = load_hyp(hyp)
        self.detect = detect
        self.nl, self.na, self.nc = detect.nl, detect.na, detect.nc
        self.balance = BALANCE.get(self.nl, BALANCE_P3P7)
        self.cp, self.cn = smooth_bce(self.hyp.get("label_smoothing", 0.0))

    def _check(self, p, targets) -> None:
        if not isinstance(p, (list, tuple)) or len(p) != self.nl:
            raise ValueError(f"preds: expected the training-mode list of {self.nl} maps, got {type(p).__name__}"
                             + (f" of {len(p)}" if isinstance(p, (list, tuple)) else ""))
        shape = (self.na, self.nc + 5)
        for i, pi in enumerate(p):
            if pi.dim() != 5 or (pi.shape[1], pi.shape[4]) != shape:
                raise ValueError(f"preds[{i}] has shape {tuple(pi.shape)}; expected (bs, {self.na}, ny, nx, "
                                 f"{self.nc + 5})")
        if not isinstance(targets, torch.Tensor) or targets.dim() != 2 or targets.shape[1] != 6:
            got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(f"targets: {got}; expected a (n, 6) tensor of (image, class, x, y, w, h)")
        if len(targets):
            bs = p[0].shape[0]
            img, cls = targets[:, 0], targets[:, 1]
            if img.min() < 0 or img.max() >= bs:
                raise ValueError(f"targets: image indices span {img.min().item():g}..{img.max().item():g}; "
                                 f"allowed 0..{bs - 1} for a batch of {bs}")
            if cls.min() < 0 or cls.max() >= self.nc:
                raise ValueError(f"targets: classes span {cls.min().item():g}..{cls.max().item():g}; "
                                 f"allowed 0..{self.nc - 1}")

    def __call__(self, p, targets):
        self._check(p, targets)
        h, dev = self.hyp, p[0].device
        lbox, lobj, lcls = (torch.zeros(1, device=dev) for _ in range(3))
        with record_function("loss/build_targets"):
            tcls, tbox, indices, anch = self.build_targets(p, targets.to(dev))

        for i, pi in enumerate(p):
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=dev)
            n = b.shape[0]
            if n:
                pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, self.nc), 1)
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * anch[i]
                iou = bbox_iou(torch.cat((pxy, pwh), 1), tbox[i], CIoU=True).squeeze(-1)
                lbox += (1.0 - iou).mean()

                iou = iou.detach().clamp(0).type(tobj.dtype)
                tobj[b, a, gj, gi] = (1.0 - self.gr) + self.gr * iou

                if self.nc > 1:
                    t = torch.full_like(pcls, self.cn)
                    t[range(n), tcls[i]] = self.cp
                    lcls += bce_loss(pcls, t, h["cls_pw"], h["fl_gamma"])

            lobj += bce_loss(pi[..., 4], tobj, h["obj_pw"], h["fl_gamma"]) * self.balance[i]

        lbox *= h["box"]
        lobj *= h["obj"]
        lcls *= h["cls"]
        bs = p[0].shape[0]
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()

    def build_targets(self, p, targets):
        """Assign targets to (image, anchor, cell) positives on every level.

        Returns four per-level lists: classes, boxes (x, y offset from the assigned cell's corner
        in (-0.5, 1.5), w, h; grid units), indices (image, anchor, gy, gx) and the matched anchors.
        """
        dev = targets.device
        na, nt = self.na, targets.shape[0]
        g = NEIGHBOUR_BIAS
        tcls, tbox, indices, anch = [], [], [], []
        ai = torch.arange(na, device=dev, dtype=targets.dtype).view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)  # (na, nt, 7): ..., anchor
        # own cell, then the neighbour to the left, above, right, below
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=dev, dtype=targets.dtype) * g

        for i in range(self.nl):
            anchors = self.detect.anchors[i].to(dev)
            ny, nx = p[i].shape[2:4]
            gain = torch.tensor([1, 1, nx, ny, nx, ny, 1], device=dev, dtype=targets.dtype)
            t = targets * gain  # xywh in grid units of this level
            if nt:
                r = t[..., 4:6] / anchors[:, None]
                t = t[torch.max(r, 1 / r).max(2)[0] < self.hyp["anchor_t"]]

                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy  # distance to the right/bottom edge
                left, top = ((gxy % 1 < g) & (gxy > 1)).T
                right, bottom = ((gxi % 1 < g) & (gxi > 1)).T
                use = torch.stack((torch.ones_like(left), left, top, right, bottom))
                t = t.repeat((5, 1, 1))[use]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[use]
            else:
                t = targets[0]
                offsets = 0

            bc, gxy, gwh, a = t.split((2, 2, 2, 1), 1)
            a, (b, c) = a.long().view(-1), bc.long().T
            gij = (gxy - offsets).long()
            gi, gj = gij.T
            indices.append((b, a, gj.clamp(0, ny - 1), gi.clamp(0, nx - 1)))
            tbox.append(torch.cat((gxy - gij, gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
        return tcls, tbox, indices, anch

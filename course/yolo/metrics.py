"""Detection metrics as YOLOv5 computes them: matching, AP per class, mAP@0.5 and mAP@0.5:0.95.

Follows ``ultralytics/yolov5`` ``val.py`` (``process_batch``, ``iouv = linspace(0.5, 0.95, 10)``)
and ``utils/metrics.py`` (``ap_per_class``, ``compute_ap``: precision envelope, then a
101-point interpolation integrated with the trapezoid rule). YOLOv5's numbers are close to,
but not identical with, pycocotools': see ``compute_ap`` and ``match_predictions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)
"""The ten COCO IoU thresholds 0.50, 0.55, ..., 0.95; column 0 gives mAP@0.5."""

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz

FITNESS_WEIGHTS = (0.1, 0.9)
"""YOLOv5 picks its best checkpoint by ``0.1 * mAP@0.5 + 0.9 * mAP@0.5:0.95``."""


def fitness(metrics: Mapping) -> float:
    """YOLOv5's checkpoint score (``utils/metrics.py::fitness``): mostly mAP@0.5:0.95, a little mAP@0.5."""
    w50, w = FITNESS_WEIGHTS
    return w50 * float(metrics["map50"]) + w * float(metrics["map"])


def match_predictions(detections: torch.Tensor, labels: torch.Tensor,
                      iouv: torch.Tensor = IOU_THRESHOLDS) -> torch.Tensor:
    """Which detections are true positives at each IoU threshold (YOLOv5's ``process_batch``).

    ``detections`` ``(n, 6)``: ``x1, y1, x2, y2, conf, cls``; ``labels`` ``(m, 5)``:
    ``cls, x1, y1, x2, y2`` in the same pixel frame. Returns a bool ``(n, len(iouv))`` tensor.

    Per threshold, every (label, detection) pair of the same class with IoU >= threshold is a
    candidate. Each detection keeps its highest-IoU label; then each label keeps the detection
    that comes first in ``detections`` (NMS output is sorted by confidence, so the most
    confident). Unlike pycocotools, a detection whose best label went to another detection does
    not fall back to its second-best label: one reason the two mAPs differ slightly.
    """
    detections = torch.as_tensor(detections)
    labels = torch.as_tensor(labels)
    if detections.ndim != 2 or detections.shape[1] < 6:
        raise ValueError(f"detections must have shape (n, 6) [x1, y1, x2, y2, conf, cls], "
                         f"got {tuple(detections.shape)}")
    if labels.ndim != 2 or labels.shape[1] != 5:
        raise ValueError(f"labels must have shape (m, 5) [cls, x1, y1, x2, y2], got {tuple(labels.shape)}")
    iouv = torch.as_tensor(iouv, dtype=torch.float32).cpu()
    correct = np.zeros((detections.shape[0], iouv.numel()), dtype=bool)
    if detections.shape[0] and labels.shape[0]:
        iou = box_iou(labels[:, 1:].float(), detections[:, :4].float()).cpu()
        same_class = (labels[:, 0:1] == detections[:, 5]).cpu()
        for k, t in enumerate(iouv.tolist()):
            li, di = torch.nonzero((iou >= t) & same_class, as_tuple=True)
            if not li.numel():
                continue
            pairs = np.stack([li.numpy(), di.numpy(), iou[li, di].numpy()], 1)
            pairs = pairs[pairs[:, 2].argsort()[::-1]]
            pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]
            pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]
            correct[pairs[:, 1].astype(int), k] = True
    return torch.from_numpy(correct)


def compute_ap(recall, precision, method: str = "interp") -> tuple[float, np.ndarray, np.ndarray]:
    """Area under one precision-recall curve; ``method="interp"`` is YOLOv5's, ``"coco"`` pycocotools'.

    Both close the curve with sentinels (recall 0, precision 1) and (recall 1, precision 0), take
    the precision envelope (running maximum from the right) to remove the zig-zag and sample 101
    recall points. YOLOv5 interpolates the envelope linearly between the points it has and
    integrates with the trapezoid rule; pycocotools reads the envelope as a step function (the
    precision at the first point reaching that recall, 0 beyond the highest recall) and averages.
    So YOLOv5 credits the stretch between the highest recall reached and 1 with a linear fall to
    0, scores a perfect detector 0.995, and is a little higher whenever recall stays below 1.
    Returns ``(ap, envelope_precision, recall_with_sentinels)``.
    """
    if method not in ("interp", "coco"):
        raise ValueError(f"method must be 'interp' (YOLOv5) or 'coco' (pycocotools), got {method!r}")
    recall = np.asarray(recall, dtype=np.float64).ravel()
    precision = np.asarray(precision, dtype=np.float64).ravel()
    if recall.shape != precision.shape:
        raise ValueError(f"recall and precision must have the same length, got {recall.size} and {precision.size}")
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    if method == "interp":
        ap = float(_trapezoid(np.interp(x, mrec, mpre), x))
    else:
        env = mpre[1:-1]
        idx = np.searchsorted(recall, x, side="left")
        ap = float(np.where(idx < recall.size, env[np.minimum(idx, recall.size - 1)] if recall.size else 0, 0).mean())
    return ap, mpre, mrec


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Box filter of fraction ``f`` (YOLOv5 smooths the F1 curve before taking its maximum)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def ap_per_class(tp, conf, pred_cls, target_cls, eps: float = 1e-16, method: str = "interp"):
    """AP at every IoU threshold for every class that has ground truth (YOLOv5's ``ap_per_class``).

    ``tp`` ``(n, t)`` bool from ``match_predictions`` over the whole dataset, ``conf`` and
    ``pred_cls`` ``(n,)`` for the same detections, ``target_cls`` ``(m,)`` for all labels.
    Detections are ranked by confidence; precision and recall per class come from cumulative
    TP/FP counts. Returns ``(p, r, ap, f1, classes)``: ``ap`` is ``(len(classes), t)``;
    ``p``, ``r``, ``f1`` are per class at the single confidence threshold that maximises the
    (smoothed) mean F1, as YOLOv5 reports them. Classes predicted but absent from the
    ground truth are ignored, as in pycocotools. ``method`` goes to ``compute_ap``.
    """
    tp = np.asarray(tp, dtype=bool)
    if tp.ndim == 1:
        tp = tp[:, None]
    conf = np.asarray(conf, dtype=np.float64).ravel()
    pred_cls = np.asarray(pred_cls).ravel()
    target_cls = np.asarray(target_cls).ravel()
    if not (tp.shape[0] == conf.size == pred_cls.size):
        raise ValueError(f"tp, conf and pred_cls must have the same length, "
                         f"got {tp.shape[0]}, {conf.size}, {pred_cls.size}")

    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, n_labels = np.unique(target_cls, return_counts=True)
    nc, nt = classes.shape[0], tp.shape[1]

    px = np.linspace(0, 1, 1000)
    ap = np.zeros((nc, nt))
    p_curve, r_curve = np.zeros((nc, 1000)), np.zeros((nc, 1000))
    for ci, c in enumerate(classes):
        mine = pred_cls == c
        n_l, n_p = n_labels[ci], int(mine.sum())
        if n_p == 0 or n_l == 0:
            continue
        tpc = tp[mine].cumsum(0)
        fpc = (1 - tp[mine]).cumsum(0)
        recall = tpc / (n_l + eps)
        precision = tpc / (tpc + fpc)
        r_curve[ci] = np.interp(-px, -conf[mine], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-px, -conf[mine], precision[:, 0], left=1)
        for j in range(nt):
            ap[ci, j] = compute_ap(recall[:, j], precision[:, j], method)[0]

    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    best = smooth(f1_curve.mean(0), 0.1).argmax() if nc else 0
    return p_curve[:, best], r_curve[:, best], ap, f1_curve[:, best], classes.astype(int)


class DetectionMetrics:
    """Accumulates per-image matches over a validation pass and summarises them YOLOv5-style.

    ``update(preds, targets)`` takes one entry per image: predictions ``(n, 6)``
    ``x1, y1, x2, y2, conf, cls`` (NMS output) and targets ``(m, 5)`` ``cls, x1, y1, x2, y2``
    in the same pixel frame. ``compute()`` returns a dict with ``map50``, ``map``,
    ``precision``, ``recall``, ``fitness`` and a ``per_class`` table. ``method="coco"`` swaps in
    pycocotools' AP integration (see ``compute_ap``) to compare with COCO-style tools.
    """

    def __init__(self, nc: int, names: Mapping[int, str] | Sequence[str] | None = None,
                 iouv: torch.Tensor = IOU_THRESHOLDS, method: str = "interp"):
        if not (isinstance(nc, int) and nc >= 1):
            raise ValueError(f"nc must be a positive int, got {nc!r}")
        if method not in ("interp", "coco"):
            raise ValueError(f"method must be 'interp' (YOLOv5) or 'coco' (pycocotools), got {method!r}")
        self.method = method
        self.nc = nc
        self.names = _names_dict(names, nc)
        self.iouv = torch.as_tensor(iouv, dtype=torch.float32).cpu()
        self.reset()

    def reset(self) -> None:
        self._stats: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.images = 0
        self._images_per_class = np.zeros(self.nc, dtype=int)

    def update(self, preds_per_image: Sequence[torch.Tensor], targets_per_image: Sequence[torch.Tensor]) -> None:
        if len(preds_per_image) != len(targets_per_image):
            raise ValueError(f"need one prediction tensor per target tensor, got {len(preds_per_image)} "
                             f"predictions and {len(targets_per_image)} targets")
        for pred, labels in zip(preds_per_image, targets_per_image):
            pred = torch.as_tensor(pred).detach().float().cpu().reshape(-1, 6)
            pred = pred[pred[:, 4].argsort(descending=True, stable=True)]  # as NMS returns them
            labels = torch.as_tensor(labels).detach().float().cpu().reshape(-1, 5)
            if labels.numel() and (labels[:, 0].min() < 0 or labels[:, 0].max() >= self.nc):
                raise ValueError(f"target classes must be in [0, {self.nc - 1}], got {labels[:, 0].unique().tolist()}")
            self.images += 1
            tcls = labels[:, 0].numpy().astype(int)
            self._images_per_class[np.unique(tcls)] += 1
            correct = match_predictions(pred, labels, self.iouv).numpy()
            self._stats.append((correct, pred[:, 4].numpy(), pred[:, 5].numpy(), tcls))

    def compute(self) -> dict:
        nt = len(self.iouv)
        if self._stats:
            tp, conf, pcls, tcls = (np.concatenate(s, 0) for s in zip(*self._stats))
        else:
            tp, conf, pcls, tcls = np.zeros((0, nt), bool), np.zeros(0), np.zeros(0), np.zeros(0, int)
        instances = np.bincount(tcls, minlength=self.nc)
        result = dict(map50=0.0, map=0.0, precision=0.0, recall=0.0, images=self.images,
                      instances=int(instances.sum()), per_class={})
        if tp.shape[0] and tcls.size:
            p, r, ap, _, classes = ap_per_class(tp, conf, pcls, tcls, method=self.method)
            ap50, ap_all = ap[:, 0], ap.mean(1)
            result.update(map50=float(ap50.mean()), map=float(ap_all.mean()),
                          precision=float(p.mean()), recall=float(r.mean()))
            stats = {int(c): (p[i], r[i], ap50[i], ap_all[i]) for i, c in enumerate(classes)}
        else:
            stats = {}
        for c in np.flatnonzero(instances):
            pc, rc, a50, a = stats.get(int(c), (0.0, 0.0, 0.0, 0.0))
            result["per_class"][self.names[int(c)]] = dict(
                cls=int(c), images=int(self._images_per_class[c]), instances=int(instances[c]),
                precision=float(pc), recall=float(rc), map50=float(a50), map=float(a))
        result["fitness"] = fitness(result)
        return result


def _names_dict(names, nc: int) -> dict[int, str]:
    if names is None:
        return {i: str(i) for i in range(nc)}
    if isinstance(names, Mapping):
        out = {int(k): str(v) for k, v in names.items()}
    else:
        out = dict(enumerate(map(str, names)))
    missing = [i for i in range(nc) if i not in out]
    if missing:
        raise ValueError(f"names must name every class 0..{nc - 1}, missing {missing}")
    return out


def format_table(result: Mapping, names: Mapping[int, str] | Sequence[str] | None = None) -> str:
    """YOLOv5's validation table (Class, Images, Instances, P, R, mAP50, mAP50-95) as a string.

    ``names`` (optional) maps class index to display name; by default the keys of
    ``result["per_class"]`` are used. "Images" per class counts the images containing it.
    """
    head = f"{'Class':>22}{'Images':>11}{'Instances':>11}{'P':>11}{'R':>11}{'mAP50':>11}{'mAP50-95':>11}"
    row = "{:>22}{:>11}{:>11}{:>11.3g}{:>11.3g}{:>11.3g}{:>11.3g}"
    lines = [head, row.format("all", result["images"], result["instances"], result["precision"],
                              result["recall"], result["map50"], result["map"])]
    lookup = None
    if names is not None:
        lookup = dict(names) if isinstance(names, Mapping) else dict(enumerate(names))
    for key, s in result.get("per_class", {}).items():
        label = lookup.get(s["cls"], key) if lookup is not None else key
        lines.append(row.format(str(label), s["images"], s["instances"], s["precision"], s["recall"],
                                s["map50"], s["map"]))
    return "\n".join(lines)

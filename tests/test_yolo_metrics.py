"""YOLOv5 post-processing and metrics: hand-computed cases and a cross-check against torchmetrics."""

import numpy as np
import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou

from course.yolo.metrics import (IOU_THRESHOLDS, DetectionMetrics, ap_per_class, compute_ap, format_table,
                                 match_predictions)
from course.yolo.postprocess import (VAL_CONF_THRES, VAL_IOU_THRES, non_max_suppression, scale_boxes, xywh2xyxy,
                                     xyxy2xywh)

# ----------------------------------------------------------------------------- compute_ap


def test_compute_ap_envelope_and_101_point_trapezoid():
    # envelope of precision [1, .5, .6] at recall [.2, .4, .6] is [1, .6, .6]; the (1, 0) sentinel
    # adds a linear drop from .6 to 0 over [.6, 1]: area .2 + .2*.8 + .2*.6 + .4*.3 = .6
    ap, mpre, mrec = compute_ap([0.2, 0.4, 0.6], [1.0, 0.5, 0.6])
    assert ap == pytest.approx(0.6, abs=1e-9)
    np.testing.assert_allclose(mpre, [1, 1, 0.6, 0.6, 0])
    np.testing.assert_allclose(mrec, [0, 0.2, 0.4, 0.6, 1])


def test_compute_ap_half_recall_and_perfect_curve():
    assert compute_ap([0.5], [1.0])[0] == pytest.approx(0.75, abs=1e-9)
    # YOLOv5's well-known ceiling: a perfect detector scores 0.995, because the last of the 101
    # samples (recall 1.0) reads the (1, 0) sentinel and the last trapezoid is half height.
    assert compute_ap([0.5, 1.0], [1.0, 1.0])[0] == pytest.approx(0.995, abs=1e-9)
    assert compute_ap([], [])[0] == pytest.approx(0.5, abs=1e-9)  # only sentinels: a straight line from (0,1) to (1,0)


def test_compute_ap_coco_step_rule():
    # pycocotools: envelope [1, .6, .6]; of the 101 recall points, 21 (0..0.20) read 1.0,
    # 40 (0.21..0.60) read 0.6 and the 40 beyond the highest recall read 0 -> 45 / 101
    ap = compute_ap([0.205, 0.405, 0.605], [1.0, 0.5, 0.6], method="coco")[0]
    assert ap == pytest.approx(45 / 101, abs=1e-12)
    assert compute_ap([0.5, 1.0], [1.0, 1.0], method="coco")[0] == pytest.approx(1.0)


def test_compute_ap_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        compute_ap([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="method"):
        compute_ap([0.1], [1.0], method="voc")


# ----------------------------------------------------------------------------- matching


def _box(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_match_predictions_hand_case():
    labels = torch.tensor([[0, *_box(50, 50, 20, 20)], [1, *_box(150, 50, 20, 20)]])
    dets = torch.tensor([
        [*_box(50, 50, 20, 20), 0.9, 0],   # exact hit on label 0
        [*_box(53, 50, 20, 20), 0.8, 0],   # duplicate on label 0: label already used -> FP
        [*_box(150, 50, 20, 20), 0.7, 0],  # right place, wrong class -> FP
        [*_box(153, 50, 20, 20), 0.6, 1],  # label 1, IoU 17/23 = 0.739 -> TP up to 0.70
    ])
    correct = match_predictions(dets, labels, IOU_THRESHOLDS)
    assert correct.shape == (4, 10) and correct.dtype == torch.bool
    assert correct[0].all()
    assert not correct[1].any() and not correct[2].any()
    iou = 17 / 23
    np.testing.assert_array_equal(correct[3].numpy(), (IOU_THRESHOLDS <= iou).numpy())


def test_match_predictions_label_goes_to_first_detection_without_fallback():
    labels = torch.tensor([[0, *_box(50, 50, 20, 20)], [0, *_box(56, 50, 20, 20)]])
    dets = torch.tensor([[*_box(47, 50, 20, 20), 0.9, 0],   # IoU .74 with label 0, .38 with label 1
                         [*_box(51, 50, 20, 20), 0.3, 0]])  # IoU .90 with label 0, .60 with label 1
    correct = match_predictions(dets, labels, torch.tensor([0.5]))
    # both detections' best label is label 0; it goes to the first (most confident) row, and the
    # second row does not fall back to label 1 (pycocotools would match it there: 2 TPs)
    assert correct[:, 0].tolist() == [True, False]


def test_match_predictions_validates_shapes():
    with pytest.raises(ValueError, match="labels"):
        match_predictions(torch.zeros(1, 6), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="detections"):
        match_predictions(torch.zeros(1, 4), torch.zeros(1, 5))


# ----------------------------------------------------------------------------- ap_per_class


# Ranked TP, FP, TP against 3 labels: recall 1/3, 1/3, 2/3, precision 1, 1/2, 2/3. The envelope
# is 1 up to recall 1/3, 2/3 up to 2/3, then (YOLOv5) a straight line to the (1, 0) sentinel.
# YOLOv5 samples it at r = 0, .01, ..., 1 and integrates with trapezoids: 1 at r <= .33, 2/3 at
# .34 ... .66, 2/3 - 2 (r - 2/3) beyond (0.66 at .67, 0 at 1).
HAND_AP_INTERP = (0.33 * 1 + 0.01 * (1 + 2 / 3) / 2 + 0.32 * 2 / 3
                  + 0.01 * (2 / 3 + 0.66) / 2 + 0.33 * 0.66 / 2)
# pycocotools reads the envelope as steps: 34 points (0 ... .33) read 1, 33 (.34 ... .66) read 2/3,
# 34 beyond the highest recall read 0.
HAND_AP_COCO = (34 * 1 + 33 * 2 / 3) / 101


def test_ap_per_class_hand_case():
    tp = np.array([[True], [False], [True], [True]])
    conf = np.array([0.9, 0.8, 0.7, 0.95])
    pred_cls = np.array([0, 0, 0, 5])      # class 5 has no ground truth: ignored
    target_cls = np.array([0, 0, 0, 1])    # class 1 has no prediction: AP 0
    p, r, ap, f1, classes = ap_per_class(tp, conf, pred_cls, target_cls)
    assert classes.tolist() == [0, 1]
    assert ap[0, 0] == pytest.approx(HAND_AP_INTERP, abs=1e-9)
    assert ap_per_class(tp, conf, pred_cls, target_cls, method="coco")[2][0, 0] == pytest.approx(HAND_AP_COCO, abs=1e-9)
    assert ap[1, 0] == 0
    # F1 is best (2/3) once all three detections are kept: 2 TPs of 3 predictions and 3 labels
    assert (p[0], r[0], f1[0]) == pytest.approx((2 / 3, 2 / 3, 2 / 3), abs=1e-6)
    assert r[1] == 0 and p.shape == r.shape == f1.shape == (2,)


def test_hand_case_as_boxes_matches_torchmetrics():
    """The same ranking as boxes in one image: ours (COCO rule) and torchmetrics both give 56/101."""
    labels = torch.tensor([[0, *_box(50, 50, 20, 20)], [0, *_box(150, 50, 20, 20)], [0, *_box(250, 50, 20, 20)]])
    dets = torch.tensor([[*_box(50, 50, 20, 20), 0.9, 0],    # exact hit on label 0
                         [*_box(150, 250, 20, 20), 0.8, 0],  # nowhere near a label: FP
                         [*_box(150, 50, 20, 20), 0.7, 0]])  # exact hit on label 1; label 2 is missed
    ref50, ref = _torchmetrics_map([dets], [labels])
    assert (ref50, ref) == pytest.approx((HAND_AP_COCO, HAND_AP_COCO), abs=1e-6)  # exact hits: every IoU threshold
    assert _ours([dets], [labels], "coco") == pytest.approx((HAND_AP_COCO, HAND_AP_COCO), abs=1e-6)
    assert _ours([dets], [labels], "interp") == pytest.approx((HAND_AP_INTERP, HAND_AP_INTERP), abs=1e-6)


# ----------------------------------------------------------------------------- NMS and boxes


def _pred(rows, nc):
    """rows of (cx, cy, w, h, obj, cls_scores...) -> (1, N, 5 + nc)."""
    return torch.tensor(rows, dtype=torch.float32).reshape(1, -1, 5 + nc)


def test_nms_per_class_and_agnostic():
    rows = [[50, 50, 20, 20, 0.9, 0.9, 0.1],   # class 0 score .81
            [52, 50, 20, 20, 0.8, 0.9, 0.1],   # overlaps the first (IoU .82), class 0: suppressed
            [51, 50, 20, 20, 0.9, 0.1, 0.8],   # same place, class 1 score .72: survives per-class
            [150, 50, 20, 20, 0.2, 1.0, 0.0],  # objectness below 0.25: dropped before scoring
            [150, 150, 20, 20, 0.5, 0.4, 0.0]]  # obj passes but obj*cls = 0.2 < 0.25: dropped
    out = non_max_suppression(_pred(rows, 2), conf_thres=0.25, iou_thres=0.45)
    assert len(out) == 1
    det = out[0]
    assert det.shape == (2, 6)
    torch.testing.assert_close(det[:, 4], torch.tensor([0.81, 0.72]))
    assert det[:, 5].tolist() == [0, 1]
    torch.testing.assert_close(det[0, :4], torch.tensor([40.0, 40.0, 60.0, 60.0]))
    agnostic = non_max_suppression(_pred(rows, 2), 0.25, 0.45, agnostic=True)[0]
    assert agnostic.shape[0] == 1 and agnostic[0, 5] == 0


def test_nms_multi_label_classes_filter_and_max_det():
    rows = [[50, 50, 20, 20, 0.9, 0.9, 0.8]]
    multi = non_max_suppression(_pred(rows, 2), 0.25, 0.45, multi_label=True)[0]
    assert sorted(multi[:, 5].tolist()) == [0, 1]
    only1 = non_max_suppression(_pred(rows, 2), 0.25, 0.45, multi_label=True, classes=[1])[0]
    assert only1[:, 5].tolist() == [1]
    many = [[10 + 30 * i, 50, 20, 20, 0.9 - 0.01 * i, 1.0] for i in range(10)]
    capped = non_max_suppression(_pred(many, 1), 0.25, 0.45, max_det=3)[0]
    assert capped.shape[0] == 3 and capped[:, 4].tolist() == sorted(capped[:, 4].tolist(), reverse=True)
    decoded = _pred(rows, 2)
    assert non_max_suppression((decoded, [decoded]), 0.25, 0.45)[0].shape == (1, 6)  # Detect's eval tuple


def test_nms_matches_torchvision_per_class_on_random_boxes():
    g = torch.Generator().manual_seed(0)
    n, nc = 400, 3
    xy = torch.rand(n, 2, generator=g) * 200
    wh = 10 + torch.rand(n, 2, generator=g) * 40
    scores = torch.rand(n, 1 + nc, generator=g)
    pred = torch.cat([xy, wh, scores], 1)[None]
    det = non_max_suppression(pred, VAL_CONF_THRES, VAL_IOU_THRES, max_det=1000)[0]
    conf, cls = (scores[:, 1:] * scores[:, :1]).max(1)
    boxes = xywh2xyxy(torch.cat([xy, wh], 1))
    for c in range(nc):
        m = (cls == c) & (conf > VAL_CONF_THRES) & (scores[:, 0] > VAL_CONF_THRES)
        from torchvision.ops import nms
        keep = nms(boxes[m], conf[m], VAL_IOU_THRES)
        ours = det[det[:, 5] == c]
        torch.testing.assert_close(ours[:, 4], conf[m][keep])
        # survivors of the same class overlap less than the threshold
        iou = box_iou(ours[:, :4], ours[:, :4]).fill_diagonal_(0)
        assert iou.max() <= VAL_IOU_THRES


def test_nms_rejects_bad_arguments():
    with pytest.raises(ValueError, match="conf_thres"):
        non_max_suppression(torch.zeros(1, 3, 7), conf_thres=1.5)
    with pytest.raises(ValueError, match="pred"):
        non_max_suppression(torch.zeros(3, 7))
    with pytest.raises(ValueError, match="classes"):
        non_max_suppression(torch.zeros(1, 3, 7), classes=[5])


def test_box_format_round_trip_tensor_and_numpy():
    xywh = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    torch.testing.assert_close(xywh2xyxy(xywh), torch.tensor([[8.0, 17.0, 12.0, 23.0]]))
    torch.testing.assert_close(xyxy2xywh(xywh2xyxy(xywh)), xywh)
    np.testing.assert_allclose(xyxy2xywh(np.array([[8.0, 17.0, 12.0, 23.0]])), xywh.numpy())


def test_scale_boxes_undoes_letterbox():
    # original 200 (h) x 400 (w) letterboxed to 320: gain 0.8, image 160 high, padded 80 top
    orig = torch.tensor([[40.0, 20.0, 100.0, 180.0]])
    lb = orig * 0.8 + torch.tensor([0.0, 80.0, 0.0, 80.0])
    torch.testing.assert_close(scale_boxes((320, 320), lb, (200, 400)), orig)
    torch.testing.assert_close(scale_boxes((320, 320), lb, (200, 400), ratio_pad=((0.8, 0.8), (0, 80))), orig)
    clipped = scale_boxes((320, 320), torch.tensor([[-10.0, 70.0, 330.0, 250.0]]), (200, 400))
    assert clipped[0, 0] == 0 and clipped[0, 1] == 0 and clipped[0, 2] == 400 and clipped[0, 3] == 200


# ----------------------------------------------------------------------------- DetectionMetrics


def test_detection_metrics_perfect_and_empty():
    labels = [torch.tensor([[0, *_box(50, 50, 20, 20)], [1, *_box(150, 50, 30, 20)]]),
              torch.tensor([[1, *_box(80, 80, 40, 40)]])]
    perfect = [torch.cat([lb[:, 1:], torch.ones(len(lb), 1), lb[:, :1]], 1) for lb in labels]
    m = DetectionMetrics(nc=3, names=["circle", "square", "triangle"])
    m.update(perfect, labels)
    res = m.compute()
    assert res["map50"] == pytest.approx(0.995) and res["map"] == pytest.approx(0.995)
    assert res["images"] == 2 and res["instances"] == 3
    assert set(res["per_class"]) == {"circle", "square"}
    assert res["per_class"]["square"]["images"] == 2 and res["per_class"]["square"]["instances"] == 2
    table = format_table(res)
    assert "mAP50-95" in table.splitlines()[0] and "square" in table and table.splitlines()[1].split()[0] == "all"

    m.reset()
    m.update([torch.zeros(0, 6), torch.zeros(0, 6)], labels)
    res = m.compute()
    assert res["map50"] == 0 and res["instances"] == 3 and res["per_class"]["circle"]["map50"] == 0


def test_detection_metrics_validates_inputs():
    with pytest.raises(ValueError, match="nc"):
        DetectionMetrics(nc=0)
    m = DetectionMetrics(nc=2)
    with pytest.raises(ValueError, match="one prediction tensor per target"):
        m.update([torch.zeros(0, 6)], [])
    with pytest.raises(ValueError, match="target classes"):
        m.update([torch.zeros(0, 6)], [torch.tensor([[4.0, 0, 0, 1, 1]])])


# ----------------------------------------------------------------------------- cross-check


def _random_case(seed: int, n_images: int = 24, nc: int = 3, miss: float = 0.15, spreads=(0.03, 0.08, 0.2),
                 wrong_class: float = 0.08):
    """Ground truth plus predictions with jittered hits, misses, duplicates and false positives."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 9))
        wh = rng.uniform(8, 120, (m, 2))
        xy = rng.uniform(0, 320 - wh)
        gt = np.c_[rng.integers(0, nc, m), xy, xy + wh]
        rows = []
        for c, x1, y1, x2, y2 in gt:
            if rng.random() < miss:
                continue
            w, h = x2 - x1, y2 - y1
            for dup in range(1 + (rng.random() < 0.2)):
                jitter = rng.normal(0, rng.choice(spreads), 4) * [w, h, w, h]
                quality = 1 - np.abs(jitter).mean() / max(w, h)
                wrong = rng.random() < wrong_class
                cls = (c + 1) % nc if wrong else c
                rows.append([x1 + jitter[0], y1 + jitter[1], x2 + jitter[2], y2 + jitter[3],
                             float(np.clip(quality * rng.uniform(0.3, 1.0) - 0.2 * dup, 0.01, 1)), cls])
        for _ in range(int(rng.integers(0, 5))):  # false positives
            wh = rng.uniform(8, 100, 2)
            xy = rng.uniform(0, 320 - wh)
            rows.append([*xy, *(xy + wh), rng.uniform(0.01, 0.7), rng.integers(0, nc)])
        preds.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 6))
        targets.append(torch.tensor(gt, dtype=torch.float32).reshape(-1, 5))
    return preds, targets


def _torchmetrics_map(preds, targets):
    tm = MeanAveragePrecision(iou_type="bbox", box_format="xyxy")
    tm.update([dict(boxes=p[:, :4], scores=p[:, 4], labels=p[:, 5].long()) for p in preds],
              [dict(boxes=t[:, 1:], labels=t[:, 0].long()) for t in targets])
    ref = tm.compute()
    return float(ref["map_50"]), float(ref["map"])


def _ours(preds, targets, method):
    m = DetectionMetrics(nc=3, method=method)
    m.update(preds, targets)
    res = m.compute()
    return res["map50"], res["map"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_integration_matches_torchmetrics(seed):
    """With pycocotools' step integration, our matching and accumulation reproduce torchmetrics.

    Hard case: misses, wrong classes, duplicates, false positives, up to 14 boxes per image
    (below COCO's 100 max detections; area range 'all'). The residue comes from matching:
    YOLOv5 does not let a detection fall back to its second-best label (see match_predictions).
    """
    preds, targets = _random_case(seed)
    assert sum(len(t) for t in targets) > 80 and max(len(p) for p in preds) < 100
    ref50, ref = _torchmetrics_map(preds, targets)
    assert 0.3 < ref50 < 0.9
    ours50, ours = _ours(preds, targets, "coco")
    assert ours50 == pytest.approx(ref50, abs=0.005)
    assert ours == pytest.approx(ref, abs=0.005)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_yolov5_map_close_to_torchmetrics_when_recall_is_high(seed):
    """YOLOv5's own integration (the default) vs torchmetrics on a validation-like case.

    Every object is found once (plus duplicates and false positives), as with a trained model
    at conf 0.001. mAP@0.5 agrees within 0.01. mAP@0.5:0.95 is up to ~0.02 higher: at strict
    IoU thresholds recall stays below 1 and YOLOv5 interpolates linearly from the last
    precision to the (recall 1, precision 0) sentinel where COCO counts 0.
    """
    preds, targets = _random_case(seed, miss=0.0, spreads=(0.01, 0.03, 0.06), wrong_class=0.0)
    ref50, ref = _torchmetrics_map(preds, targets)
    ours50, ours = _ours(preds, targets, "interp")
    assert ours50 == pytest.approx(ref50, abs=0.01)
    assert 0 <= ours - ref <= 0.025


@pytest.mark.parametrize("seed", [0, 1])
def test_yolov5_integration_is_higher_when_recall_is_low(seed):
    """On the hard case (recall well below 1) YOLOv5's numbers exceed COCO's; matching is shared,
    so the whole gap is the integration rule (compare test_coco_integration_matches_torchmetrics)."""
    preds, targets = _random_case(seed)
    ref50, ref = _torchmetrics_map(preds, targets)
    interp50, interp = _ours(preds, targets, "interp")
    assert 0.02 < interp50 - ref50 < 0.1 and 0.02 < interp - ref < 0.1


def test_fitness_is_yolov5s_checkpoint_score():
    """0.1 · mAP@0.5 + 0.9 · mAP@0.5:0.95, worked out by hand; training ranks epochs by the same function."""
    from course.yolo import train
    from course.yolo.metrics import fitness

    assert fitness({"map50": 0.5, "map": 0.3}) == pytest.approx(0.05 + 0.27)
    assert train.fitness is fitness

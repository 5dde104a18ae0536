"""course.yolo loss: CIoU, target assignment, loss parts, hyperparameter scaling.

Reference: ultralytics/yolov5 utils/loss.py (v7.0).
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou, distance_box_iou, generalized_box_iou, sigmoid_focal_loss

from course.yolo import ComputeLoss, DetectionModel, bbox_iou, default_hyp, load_hyp, scale_hyp
from course.yolo.loss import bce_loss, smooth_bce


def random_xyxy(n, gen):
    xy = torch.rand(n, 2, generator=gen) * 10
    wh = torch.rand(n, 2, generator=gen) * 5 + 0.1
    return torch.cat((xy, xy + wh), 1)


@pytest.mark.parametrize("kind, reference", [("GIoU", generalized_box_iou), ("DIoU", distance_box_iou),
                                             ("CIoU", complete_box_iou)])
def test_bbox_iou_variants_match_torchvision(kind, reference):
    gen = torch.Generator().manual_seed(0)
    b1, b2 = random_xyxy(64, gen), random_xyxy(64, gen)
    ours = bbox_iou(b1, b2, xywh=False, **{kind: True}).squeeze(-1)
    torch.testing.assert_close(ours, reference(b1, b2).diagonal(), rtol=1e-5, atol=1e-5)


def test_bbox_iou_xywh_and_identity():
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 4.0]])
    xywh = torch.tensor([[3.0, 3.0, 4.0, 2.0]])
    assert bbox_iou(xywh, xywh, CIoU=True).item() == pytest.approx(1.0, abs=1e-6)
    assert bbox_iou(xywh, torch.tensor([[5.0, 3.0, 4.0, 2.0]])).item() == pytest.approx(4 / 12, abs=1e-6)
    assert bbox_iou(xyxy, xyxy, xywh=False).item() == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DetectionModel("yolov5n.yaml", nc=3)


def empty_preds(model, bs=2, size=128):
    det = model.model[-1]
    return [torch.zeros(bs, det.na, size // int(s), size // int(s), det.no) for s in det.stride]


def naive_assign(anchors, shapes, targets, anchor_t=4.0):
    """Sorted list of (level, image, anchor, gy, gx, cls) positives, one target and one candidate cell at a time."""
    out = []
    for level, (anc, (ny, nx)) in enumerate(zip(anchors, shapes)):
        for img, cls, x, y, w, h in targets.tolist():
            gx, gy, gw, gh = x * nx, y * ny, w * nx, h * ny
            for a, (aw, ah) in enumerate(anc.tolist()):
                if max(gw / aw, aw / gw, gh / ah, ah / gh) >= anchor_t:
                    continue
                cells = [(int(gx), int(gy))]
                if gx % 1 < 0.5 and gx > 1:
                    cells.append((int(gx - 0.5), int(gy)))
                if gy % 1 < 0.5 and gy > 1:
                    cells.append((int(gx), int(gy - 0.5)))
                if (nx - gx) % 1 < 0.5 and nx - gx > 1:
                    cells.append((int(gx + 0.5), int(gy)))
                if (ny - gy) % 1 < 0.5 and ny - gy > 1:
                    cells.append((int(gx), int(gy + 0.5)))
                out += [(level, int(img), a, cy, cx, int(cls)) for cx, cy in cells]
    return sorted(out)


def assigned(loss_fn, preds, targets):
    tcls, tbox, indices, _ = loss_fn.build_targets(preds, targets)
    out = []
    for level, ((b, a, gj, gi), c) in enumerate(zip(indices, tcls)):
        out += [(level, *map(int, row), int(k)) for row, k in zip(torch.stack((b, a, gj, gi), 1), c)]
    return out, tbox


def test_build_targets_hand_made_case(model):
    loss_fn = ComputeLoss(model)
    preds = empty_preds(model, bs=1, size=128)  # P3 grid 16x16, P4 8x8, P5 4x4
    # centre at P3 cell (x=5.3, y=9.8): left half, bottom half -> own cell + left + below;
    # size 16x30 px = 2 x 3.75 cells: within 4x of all three P3 anchors, none of P5's
    target = torch.tensor([[0, 2, 5.3 / 16, 9.8 / 16, 16 / 128, 30 / 128]])
    rows, tbox = assigned(loss_fn, preds, target)
    p3 = sorted((a, gy, gx) for level, b, a, gy, gx, c in rows if level == 0)
    assert p3 == sorted((a, gy, gx) for a in range(3) for gy, gx in [(9, 5), (9, 4), (10, 5)])
    assert all(c == 2 for *_, c in rows)
    assert not [r for r in rows if r[0] == 2]
    offsets = tbox[0][:, :2]
    assert offsets.min() > -0.5 and offsets.max() < 1.5  # what 2*sigmoid - 0.5 can reach


def test_build_targets_border_and_ratio_filter(model):
    loss_fn = ComputeLoss(model)
    preds = empty_preds(model, bs=1, size=128)
    # 100x100 px at x = 2.34 px, y = 67.2 px of a 128-px image. P3 (stride 8) anchors are at most
    # 33 px wide: 100/33 > 4, no match. P4 (stride 16): x = 0.15 cell, y = 4.2 cells; all three
    # anchors within 4x (100/30 = 3.3 is the largest ratio); y's fraction 0.2 < 0.5 adds the cell
    # above (3), x's fraction adds nothing: there is no cell left of 0 (a neighbour clamped to 0
    # would repeat cell 0). P5 (stride 32): x = 0.075, y = 2.1 -> cell 2 and the one above, 1;
    # 373/100 = 3.7 < 4, so all three anchors.
    target = torch.tensor([[0, 0, 0.3 / 16, 4.2 / 8, 100 / 128, 100 / 128]])
    rows, _ = assigned(loss_fn, preds, target)
    expected = [(level, 0, a, gy, 0, 0) for level, cells in ((1, (4, 3)), (2, (2, 1))) for a in range(3) for gy in cells]
    assert sorted(rows) == sorted(expected)


def test_build_targets_matches_a_naive_loop(model):
    loss_fn = ComputeLoss(model)
    preds = empty_preds(model, bs=3, size=160)
    gen = torch.Generator().manual_seed(3)
    n = 60
    targets = torch.cat([torch.randint(0, 3, (n, 1), generator=gen).float(),
                         torch.randint(0, 3, (n, 1), generator=gen).float(),
                         torch.rand(n, 2, generator=gen), torch.rand(n, 2, generator=gen) * 0.5 + 0.01], 1)
    rows, _ = assigned(loss_fn, preds, targets)
    det = model.model[-1]
    expected = naive_assign(det.anchors, [p.shape[2:4] for p in preds], targets)
    assert sorted(rows) == expected  # with multiplicity: two targets in one cell give two positives
    assert len(expected) > len(set(expected))  # ... and this case has such a pair


def test_one_target_total_loss_by_hand():
    """Every part of the loss for one target, worked out by hand (hyp.scratch-low gains, unscaled)."""
    # P3 anchor 0 is 10x13 px; every other anchor is >= 4.5x the 20x26 px target: one anchor matches
    anchors = [[10, 13, 90, 117, 300, 390], [100, 130, 200, 260, 400, 520], [100, 130, 300, 390, 500, 650]]
    model = DetectionModel("yolov5n.yaml", nc=2, anchors=anchors)
    preds = empty_preds(model, bs=2, size=128)  # P3 16x16, P4 8x8, P5 4x4; image 1 has no target
    # class 1 centred in P3 cell (gx 4, gy 7): fractions 0.5, so no neighbour cell is added
    target = torch.tensor([[0, 1, 4.5 * 8 / 128, 7.5 * 8 / 128, 20 / 128, 26 / 128]])
    preds[0][0, 0, 7, 4, 4] = math.log(3)  # objectness logit: sigmoid = 0.75
    preds[0][0, 0, 7, 4, 6] = 2.0  # class-1 logit
    loss, items = ComputeLoss(model)(preds, target)

    # box: logits 0 decode to the anchor (1.25 x 1.625 cells) at the cell centre (2*sigmoid(0) - 0.5
    # = 0.5); the target is twice as wide and high at the same centre: IoU = 1/4, no centre distance,
    # same aspect ratio, so CIoU = IoU. Gain 0.05.
    lbox = 0.05 * (1 - 1 / 4)
    # objectness: target CIoU = 1/4 at the positive, 0 elsewhere; a logit of 0 costs ln 2 whatever
    # the target. P3 has 2 * 3 * 16 * 16 = 1536 cells, weight 4.0; P4 and P5 (all ln 2) 1.0 and 0.4.
    positive = -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))
    lobj = 1.0 * (4.0 * (1535 * math.log(2) + positive) / 1536 + 1.0 * math.log(2) + 0.4 * math.log(2))
    # class: mean BCE over the positive's two classes, targets (0, 1); gain 0.5
    lcls = 0.5 * (math.log(2) + math.log(1 + math.exp(-2.0))) / 2
    assert items.tolist() == pytest.approx([lbox, lobj, lcls], rel=1e-5)
    assert loss.item() == pytest.approx(2 * (lbox + lobj + lcls), rel=1e-5)  # times the batch size


def test_zero_targets_give_objectness_only(model):
    loss, items = ComputeLoss(model)(empty_preds(model), torch.zeros(0, 6))
    assert torch.isfinite(loss).all()
    assert items[0] == 0 and items[2] == 0 and items[1] > 0


def test_single_class_has_no_class_loss():
    model = DetectionModel("yolov5n.yaml", nc=1)
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.2, 0.3]])
    _, items = ComputeLoss(model)(empty_preds(model, bs=1), targets)
    assert items[2] == 0 and items[0] > 0


def test_exact_prediction_has_zero_box_loss_and_full_objectness_target():
    # anchors chosen so that a 10x13 px box matches only the first P3 anchor
    anchors = [[10, 13, 60, 78, 300, 390], [70, 91, 200, 260, 400, 520], [100, 130, 300, 390, 500, 650]]
    model = DetectionModel("yolov5n.yaml", nc=2, anchors=anchors)
    loss_fn = ComputeLoss(model)
    preds = empty_preds(model, bs=1, size=128)  # logits 0: anchor-sized box centred in its cell
    target = torch.tensor([[0, 1, 4.5 * 8 / 128, 7.5 * 8 / 128, 10 / 128, 13 / 128]])
    rows, _ = assigned(loss_fn, preds, target)
    assert rows == [(0, 0, 0, 7, 4, 1)]
    _, items = loss_fn(preds, target)
    assert items[0].item() == pytest.approx(0.0, abs=1e-6)


def test_loss_decreases_when_fitting_one_image():
    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=2)
    loss_fn = ComputeLoss(model)
    img = torch.rand(1, 3, 64, 64)
    targets = torch.tensor([[0, 0, 0.3, 0.4, 0.3, 0.4], [0, 1, 0.7, 0.7, 0.2, 0.2]])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss, _ = loss_fn(model(img), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0]


def test_loss_reaches_lite_backbone():
    model = DetectionModel("v5Lite-e.yaml", nc=2)
    loss, _ = ComputeLoss(model)(model(torch.rand(1, 3, 64, 64)), torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3]]))
    loss.backward()
    assert model.model[0][0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("targets, match", [
    (torch.zeros(3, 5), "expected a \\(n, 6\\) tensor"),
    (torch.tensor([[2.0, 0, 0.5, 0.5, 0.1, 0.1]]), "image indices"),
    (torch.tensor([[0.0, 3, 0.5, 0.5, 0.1, 0.1]]), "classes span 3..3; allowed 0..2"),
])
def test_bad_targets(model, targets, match):
    with pytest.raises(ValueError, match=match):
        ComputeLoss(model)(empty_preds(model), targets)


def test_eval_output_is_refused(model):
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    model.train()
    with pytest.raises(ValueError, match="training-mode list"):
        ComputeLoss(model)(out, torch.zeros(0, 6))


def test_default_and_scaled_hyp():
    hyp = default_hyp()
    assert (hyp["box"], hyp["cls"], hyp["obj"], hyp["anchor_t"], hyp["fl_gamma"]) == (0.05, 0.5, 1.0, 4.0, 0.0)
    scaled = scale_hyp(hyp, nl=3, nc=1, imgsz=320)
    assert scaled["box"] == pytest.approx(0.05)
    assert scaled["cls"] == pytest.approx(0.5 / 80)
    assert scaled["obj"] == pytest.approx(0.25)
    assert scale_hyp(hyp, nl=4)["box"] == pytest.approx(0.0375)
    assert hyp["box"] == 0.05  # the input is not modified
    with pytest.raises(ValueError, match="missing"):
        load_hyp({"box": 1.0})
    with pytest.raises(ValueError, match="imgsz=0"):
        scale_hyp(hyp, imgsz=0)


def test_bce_focal_and_smoothing():
    logits, target = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0])
    plain = F.binary_cross_entropy_with_logits(logits, target)
    assert bce_loss(logits, target).item() == pytest.approx(plain.item())
    for gamma in (1.5, 2.0):  # Lin et al. 2017, Eq. 5: -alpha_t (1 - p_t)^gamma log(p_t)
        focal = sigmoid_focal_loss(logits, target, alpha=0.25, gamma=gamma, reduction="mean")
        assert bce_loss(logits, target, gamma=gamma).item() == pytest.approx(focal.item(), rel=1e-6)
    assert smooth_bce(0.1) == pytest.approx((0.95, 0.05))
    assert list(itertools.islice(smooth_bce(0.0), 2)) == [1.0, 0.0]

"""One letterbox geometry: the loader maps boxes in with it, ``scale_boxes`` maps them back out."""

import numpy as np
import pytest
import torch
from PIL import Image

from course.yolo.data import YoloDataset, letterbox
from course.yolo.letterbox import letterbox_geometry
from course.yolo.postprocess import scale_boxes, xywh2xyxy

# (h, w) of originals: wide, tall, square, odd sizes whose resized side rounds, tiny, one-pixel strip.
SHAPES = [(100, 200), (200, 100), (64, 64), (99, 200), (333, 500), (479, 641), (71, 70), (7, 13), (1, 300)]


@pytest.mark.parametrize("hw, new, ratio, pad, size", [
    ((100, 200), 128, (0.64, 0.64), (0, 32), (128, 64)),    # 200 x 100 at gain .64: 64 high, 32 above and below
    ((30, 10), 60, (2.0, 2.0), (20, 0), (20, 60)),          # tall, upscaled: 20 px either side
    ((99, 200), 128, (0.64, 63 / 99), (0, 32), (128, 63)),  # 63.36 rounds to 63: 65 px of padding, 32 on top
    ((100, 200), (96, 128), (0.64, 0.64), (0, 16), (128, 64)),  # rectangular input: 32 px of height left
])
def test_geometry_worked_by_hand(hw, new, ratio, pad, size):
    g = letterbox_geometry(hw, new)
    assert g.size == size and g.pad == pad
    np.testing.assert_allclose(g.ratio, ratio)


@pytest.mark.parametrize("hw", SHAPES)
@pytest.mark.parametrize("new", [32, 128, 320, (256, 320)])
def test_geometry_fills_the_long_side_and_centres_the_padding(hw, new):
    new_h, new_w = (new, new) if isinstance(new, int) else new
    (rw, rh), (left, top), (nw, nh) = letterbox_geometry(hw, new)
    assert nw <= new_w and nh <= new_h and (nw == new_w or nh == new_h)
    assert (rw, rh) == (nw / hw[1], nh / hw[0])
    right, bottom = new_w - nw - left, new_h - nh - top
    assert 0 <= left <= right <= left + 1 and 0 <= top <= bottom <= top + 1


@pytest.mark.parametrize("hw", SHAPES)
@pytest.mark.parametrize("new", [128, (256, 320)])
def test_forward_then_scale_boxes_round_trips(hw, new):
    h, w = hw
    rng = np.random.default_rng(h * 1000 + w)
    xy = rng.uniform(0, 1, (50, 2, 2)) * [w, h]
    boxes = np.concatenate([xy.min(1), xy.max(1)], 1)
    (rw, rh), (left, top), (nw, nh) = letterbox_geometry(hw, new)
    fwd = boxes * [rw, rh, rw, rh] + [left, top, left, top]
    assert (fwd[:, [0, 2]] >= left - 1e-9).all() and (fwd[:, [0, 2]] <= left + nw + 1e-9).all()
    assert (fwd[:, [1, 3]] >= top - 1e-9).all() and (fwd[:, [1, 3]] <= top + nh + 1e-9).all()
    new_hw = (new, new) if isinstance(new, int) else new
    np.testing.assert_allclose(scale_boxes(new_hw, fwd, hw), boxes, atol=1e-9)
    torch.testing.assert_close(scale_boxes(new_hw, torch.tensor(fwd), hw), torch.tensor(boxes))


@pytest.mark.parametrize("hw", [(100, 200), (200, 100), (99, 200), (333, 500), (71, 70), (17, 31)])
def test_dataset_labels_map_back_to_the_original_boxes(tmp_path, hw):
    """Forward through the loader (labels in the letterboxed frame), back through ``scale_boxes``."""
    h, w = hw
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 4: h // 2 + 1, w // 3: w // 3 + w // 4 + 1] = 255
    Image.fromarray(img).save(tmp_path / "images" / "a.png")
    rows = np.array([[0, 0.5, 0.5, 0.4, 0.3], [1, 0.25, 0.7, 0.2, 0.5], [0, 0.9, 0.1, 0.2, 0.2]])
    (tmp_path / "labels" / "a.txt").write_text("".join(f"{int(r[0])} {r[1]} {r[2]} {r[3]} {r[4]}\n" for r in rows))
    original = xywh2xyxy(np.float32(rows[:, 1:]).astype(float)) * [w, h, w, h]

    imgsz = 96
    tensor, labels, _, (orig_hw, ratio, pad) = YoloDataset(tmp_path / "images", imgsz=imgsz)[0]
    assert orig_hw == hw
    in_frame = xywh2xyxy(labels[:, 2:].double()) * imgsz
    for ratio_pad in (None, (ratio, pad)):
        back = scale_boxes((imgsz, imgsz), in_frame, hw, ratio_pad=ratio_pad)
        np.testing.assert_allclose(back.numpy(), original, atol=1e-4 * max(hw))
    lb, lb_ratio, lb_pad = letterbox(img, imgsz)
    assert (lb_ratio, lb_pad) == (ratio, pad) and (tensor.numpy().transpose(1, 2, 0) == lb).all()


@pytest.mark.parametrize("hw, new, name", [((0, 10), 64, "shape_hw"), ((10, 10), 0, "new_shape"),
                                         ((10.0, 10), 64, "shape_hw"), ((10, 10), 64.0, "new_shape"),
                                         ((10, 10), (64,), "new_shape"), ((10, 10), True, "new_shape")])
def test_bad_sizes_are_rejected(hw, new, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        letterbox_geometry(hw, new)

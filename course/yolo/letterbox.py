"""The letterbox: resize keeping the aspect ratio, pad to the network's input with grey.

One geometry serves the loader (image and labels in), validation and inference (boxes back out
through ``course.yolo.postprocess.scale_boxes``), so the two directions cannot drift apart.
The rounding is YOLOv5's (``utils/augmentations.py`` ``letterbox``): the resized size is
rounded to whole pixels, and the padding is centred with ``round(d / 2 - 0.1)`` on the
left/top, so an odd pixel of padding goes to the right/bottom.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

PAD_VALUE = 114
"""YOLOv5 pads letterboxed images with this grey."""


class LetterboxGeometry(NamedTuple):
    """Where an ``h x w`` image lands in the letterbox: a pixel ``x`` goes to ``x * ratio[0] + pad[0]``."""

    ratio: tuple[float, float]
    """``(ratio_w, ratio_h)``: resized size over original size, per axis (equal up to rounding)."""
    pad: tuple[int, int]
    """``(pad_left, pad_top)`` in pixels."""
    size: tuple[int, int]
    """``(new_w, new_h)``: the resized image before padding."""


def letterbox_geometry(shape_hw, new_shape) -> LetterboxGeometry:
    """Letterbox of an image of height/width ``shape_hw`` into ``new_shape`` (an int for a square, or ``(h, w)``).

    One gain ``min(new_h / h, new_w / w)`` keeps the aspect ratio; the long side fills the input.
    """
    h, w = _size("shape_hw", shape_hw)
    new_h, new_w = _size("new_shape", (new_shape, new_shape) if _is_int(new_shape) else new_shape)
    r = min(new_h / h, new_w / w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    pad = (round((new_w - nw) / 2 - 0.1), round((new_h - nh) / 2 - 0.1))
    return LetterboxGeometry((nw / w, nh / h), pad, (nw, nh))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _size(name: str, hw) -> tuple[int, int]:
    """``hw`` as two positive ints (height, width), or a ValueError naming ``name``."""
    try:
        h, w = hw
    except (TypeError, ValueError):
        h = w = None
    if not (_is_int(h) and _is_int(w) and h >= 1 and w >= 1):
        raise ValueError(f"{name} must be a positive int size or (height, width) of positive ints, got {hw!r}")
    return int(h), int(w)


def letterbox(img: np.ndarray, imgsz: int, color: int = PAD_VALUE):
    """Resize keeping the aspect ratio so the long side is ``imgsz``, pad to square with grey.

    Returns ``(image, (ratio_w, ratio_h), (pad_left, pad_top))``: a pixel ``x`` of the
    original lands at ``x * ratio_w + pad_left`` (YOLOv5's centred padding rounding).
    """
    h0, w0 = img.shape[:2]
    ratio, (left, top), (nw, nh) = letterbox_geometry((h0, w0), imgsz)
    if (nw, nh) != (w0, h0):
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    out = np.full((imgsz, imgsz, 3), color, dtype=np.uint8)
    out[top:top + nh, left:left + nw] = img
    return out, ratio, (left, top)

"""YOLO-format data: a synthetic "shapes" dataset generator and a loader for any YOLO dataset.

The format is YOLOv5's (``ultralytics/yolov5`` ``utils/dataloaders.py``, ``data/coco128.yaml``):
one ``.txt`` per image with rows ``class cx cy w h`` normalised to 0-1, the label path being
the image path with the last ``/images/`` replaced by ``/labels/`` and the extension by ``.txt``.
Nothing can be downloaded in the course, so ``make_shapes`` writes a small dataset in that
layout in seconds; ``YoloDataset`` reads it, or any other dataset in the same layout.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw, ImageOps
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from course.env import pick

LOGGER = logging.getLogger(__name__)

IMG_EXTS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
PAD_VALUE = 114
"""YOLOv5 pads letterboxed images with this grey."""
SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
DEFAULT_CLASSES = ("circle", "square", "triangle", "cross")


class DatasetWarning(UserWarning):
    """A file was skipped or a label row dropped while scanning a dataset."""


# --------------------------------------------------------------------------- generator


def _shape_polygon(kind: str, rng: np.random.Generator) -> np.ndarray | None:
    """Outline of one shape in unit coordinates, its bounding box centred on 0 (extent about 1); None for a circle."""
    if kind == "circle":
        return None
    if kind == "square":
        a = rng.uniform(0.85, 1.15)
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * [a, 1 / a] / 2
        angle = rng.uniform(-20, 20)
    elif kind == "triangle":
        t = np.deg2rad(np.array([90, 210, 330]) + rng.uniform(-10, 10, 3))
        pts = np.stack([np.cos(t), -np.sin(t)], 1) / 2
        angle = rng.uniform(0, 360)
    elif kind == "cross":
        k = rng.uniform(0.14, 0.2)
        pts = np.array([[-k, -0.5], [k, -0.5], [k, -k], [0.5, -k], [0.5, k], [k, k], [k, 0.5],
                        [-k, 0.5], [-k, k], [-0.5, k], [-0.5, -k], [-k, -k]], float)
        angle = rng.uniform(-20, 20)
    elif kind == "star":
        t = np.deg2rad(np.arange(10) * 36 + 90)
        rad = np.where(np.arange(10) % 2 == 0, 0.5, 0.5 * rng.uniform(0.4, 0.5))
        pts = np.stack([rad * np.cos(t), -rad * np.sin(t)], 1)
        angle = rng.uniform(-36, 36)
    else:
        raise ValueError(f"unknown shape {kind!r}; allowed: {SHAPE_CLASSES}")
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = pts @ rot.T
    return pts - (pts.min(0) + pts.max(0)) / 2  # centre the bounding box, so the label box is tight


def _background(rng: np.random.Generator) -> np.ndarray:
    """Coarse background grid: a base colour, a gradient and random blotches (uint8 cells x cells x 3).

    Upsampled with bicubic interpolation it becomes a smooth texture; the coarse grid also
    tells the object painter which colour lies under a box.
    """
    cells = int(rng.integers(3, 12))
    t = (np.arange(cells) + 0.5) / cells
    yy, xx = np.meshgrid(t, t, indexing="ij")
    a = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(a) * xx + np.sin(a) * yy)[..., None] * rng.uniform(-60, 60, 3)
    blotch = (rng.uniform(0, 255, (cells, cells, 3)) - 127.5) * rng.uniform(0.1, 0.3)
    return (rng.uniform(40, 215, 3) + ramp + blotch).clip(0, 255).astype(np.uint8)


def _distractors(draw: ImageDraw.ImageDraw, rng: np.random.Generator, s: int, ss: int, count: int) -> None:
    """Things that are not classes: lines, outlines, arcs, elongated blobs and bars, dots."""
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 6)
        x, y = rng.uniform(0, s, 2)
        if kind == 0:
            x2, y2 = rng.uniform(0, s, 2)
            draw.line([x * ss, y * ss, x2 * ss, y2 * ss], fill=colour, width=int(rng.integers(1, 4)) * ss)
        elif kind in (1, 2):
            w, h = rng.uniform(10, s / 3, 2)
            box = [(x - w / 2) * ss, (y - h / 2) * ss, (x + w / 2) * ss, (y + h / 2) * ss]
            width = int(rng.integers(1, 3)) * ss
            if kind == 1:
                draw.rectangle(box, outline=colour, width=width)
            else:
                draw.arc(box, float(rng.uniform(0, 360)), float(rng.uniform(0, 360)), fill=colour, width=width)
        elif kind in (3, 4):
            long = rng.uniform(12, s / 4)
            short = long / rng.uniform(3.5, 7)
            pts = np.array([[-long, -short], [long, -short], [long, short], [-long, short]]) / 2
            a = rng.uniform(0, np.pi)
            pts = pts @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + [x, y]
            if kind == 3:
                draw.polygon([tuple(p) for p in pts * ss], fill=colour)
            else:
                c = np.array([x, y])
                draw.ellipse([*((c - [long / 2, short / 2]) * ss), *((c + [long / 2, short / 2]) * ss)], fill=colour)
        else:
            r = rng.uniform(1, 3)
            draw.ellipse([(x - r) * ss, (y - r) * ss, (x + r) * ss, (y + r) * ss], fill=colour)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour far enough from the background it is drawn on to be seen."""
    for _ in range(30):
        hsv = np.array([rng.integers(0, 256), rng.integers(100, 256), rng.integers(70, 256)], np.uint8)
        rgb = np.asarray(Image.fromarray(hsv[None, None], "HSV").convert("RGB"), float)[0, 0]
        if np.linalg.norm(rgb - under) > 90:
            break
    else:
        rgb = 255.0 - under
    return tuple(int(c) for c in rgb)


def _render(rng: np.random.Generator, s: int, classes: tuple[str, ...], objects: tuple[int, int],
            size_range: tuple[float, float]) -> tuple[Image.Image, list[tuple[int, float, float, float, float]]]:
    """One image and its labels ``(cls, cx, cy, w, h)`` normalised."""
    ss = 2  # draw at 2x and downsample: anti-aliased edges
    grid = _background(rng)
    canvas = Image.fromarray(grid).resize((s * ss, s * ss), Image.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    _distractors(draw, rng, s, ss, int(rng.integers(3, 10)))

    placed: list[np.ndarray] = []
    labels = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        cls = int(rng.integers(len(classes)))
        size = _object_size(rng, *size_range)
        poly = _shape_polygon(classes[cls], rng)
        if poly is None:
            a = rng.uniform(0.9, 1.1)
            half = np.array([a, 1 / a]) * size / 2
        else:
            poly = poly * size
            half = np.abs(poly).max(0)
        for _try in range(30):
            c = rng.uniform(half + 1, s - half - 1)
            box = np.concatenate([c - half, c + half])
            if all(_overlap_of_smaller(box, b) <= 0.25 for b in placed):
                break
        else:
            continue
        placed.append(box)
        gy, gx = (np.clip(c[::-1] / s * len(grid), 0, len(grid) - 1)).astype(int)
        colour = _contrasting_colour(rng, grid[gy, gx].astype(float))
        outline = None
        if rng.random() < 0.3:
            outline = tuple(int(v) for v in rng.integers(0, 256, 3))
        width = ss * int(rng.integers(1, 3)) if outline else 0
        if poly is None:
            draw.ellipse([*(box[:2] * ss), *(box[2:] * ss)], fill=colour, outline=outline, width=width)
        else:
            draw.polygon([tuple(p) for p in (poly + c) * ss], fill=colour, outline=outline, width=width)
        cx, cy = c / s
        w, h = 2 * half / s
        labels.append((cls, float(cx), float(cy), float(w), float(h)))

    if rng.random() < 0.5:
        _distractors(draw, rng, s, ss, int(rng.integers(1, 4)))
    img = np.asarray(canvas.resize((s, s), Image.BOX), np.float32)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 6))
    return Image.fromarray(img.clip(0, 255).round().astype(np.uint8)), labels


def _object_size(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform within three bands of the log range: 35 % small, 45 % medium, 20 % large.

    Band edges sit at 40 % and 75 % of the way from ``log lo`` to ``log hi``, so every band has
    width for any ``size_range`` (fixed pixel edges collapse a band when max/min is small).
    """
    edges = np.log(lo) + np.array([0.0, 0.4, 0.75, 1.0]) * (np.log(hi) - np.log(lo))
    band = int(np.searchsorted([0.35, 0.8], rng.random(), side="right"))
    return float(np.exp(rng.uniform(edges[band], edges[band + 1])))


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller


def make_shapes(root, n_train: int | None = None, n_val: int | None = None, imgsz: int = 320, seed: int = 0,
                classes=DEFAULT_CLASSES, objects: tuple[int, int] = (2, 8),
                size_range: tuple[float, float] | None = None, ext: str = "jpg",
                overwrite: bool = False) -> Path:
    """Write the deterministic "shapes" detection dataset under ``root``; return its ``data.yaml``.

    Filled shapes (the classes) on textured backgrounds with clutter that is not a class
    (lines, outlines, arcs, elongated blobs and bars, dots), colour variation, sensor noise and
    partial overlap (a new object covers at most 25 % of a smaller neighbour's box). Object
    sizes run from ``size_range[0]`` px (default ``imgsz / 32``: a few cells of the stride-8 P3
    map) to ``size_range[1]`` (default ``imgsz / 2``: P5's job). Every image has its own random
    stream ``(seed, split, index)``, so the same arguments give byte-identical files.
    If ``root`` already holds a dataset made with the same arguments it is reused.
    Defaults: ``pick(800, 48)`` train and ``pick(200, 24)`` val images.
    """
    n_train = pick(800, 48) if n_train is None else n_train
    n_val = pick(200, 24) if n_val is None else n_val
    for name, value in (("n_train", n_train), ("n_val", n_val)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(imgsz, int) and imgsz >= 64):
        raise ValueError(f"imgsz must be an int >= 64, got {imgsz!r}")
    classes = tuple(classes)
    bad = [c for c in classes if c not in SHAPE_CLASSES]
    if len(classes) < 1 or bad or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {SHAPE_CLASSES}, got {classes!r}")
    if not (len(objects) == 2 and 1 <= objects[0] <= objects[1]):
        raise ValueError(f"objects must be (min, max) with 1 <= min <= max, got {objects!r}")
    size_range = (max(4.0, imgsz / 32), imgsz / 2) if size_range is None else tuple(float(v) for v in size_range)
    if not (len(size_range) == 2 and 4 <= size_range[0] <= size_range[1] <= imgsz * 0.9):
        raise ValueError(f"size_range must be (min_px, max_px) with 4 <= min <= max <= {imgsz * 0.9:g}, "
                         f"got {size_range!r}")
    if ext not in ("jpg", "png"):
        raise ValueError(f"ext must be 'jpg' or 'png', got {ext!r}")

    root = Path(root).resolve()
    stamp = root / ".shapes.json"
    params = dict(n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, classes=list(classes),
                  objects=list(objects), size_range=list(size_range), ext=ext, version=3)
    data_yaml = root / "data.yaml"
    if stamp.exists() and data_yaml.exists() and not overwrite:
        if json.loads(stamp.read_text()) == params:
            return data_yaml
    if (root / "images").exists() and not stamp.exists() and not overwrite:
        raise ValueError(f"root {str(root)!r} already holds an images/ folder not written by make_shapes; "
                         "pass an empty folder or overwrite=True")
    for sub in ("images", "labels"):
        shutil.rmtree(root / sub, ignore_errors=True)

    for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, split_id, i])
            img, labels = _render(rng, imgsz, classes, objects, size_range)
            stem = f"{split}_{i:05d}"
            if ext == "jpg":
                img.save(root / "images" / split / f"{stem}.jpg", quality=92)
            else:
                img.save(root / "images" / split / f"{stem}.png", compress_level=1)
            rows = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
            (root / "labels" / split / f"{stem}.txt").write_text(rows)

    cfg = {"path": str(root), "train": "images/train", "val": "images/val",
           "nc": len(classes), "names": dict(enumerate(classes))}
    data_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
    stamp.write_text(json.dumps(params))
    return data_yaml


# --------------------------------------------------------------------------- config


def load_data_config(path) -> dict:
    """Read and check a dataset yaml in the YOLOv5/ultralytics layout.

    Returns ``dict(path, train, val, [test], names: {int: str}, nc, yaml_file)`` with absolute
    ``Path`` s (``train``/``val`` may be lists when the yaml gives lists). ``path:`` defaults to
    the yaml's folder; a relative ``path:`` and relative splits are taken from the yaml's folder
    and from ``path:`` respectively. ``names`` may be a list or a dict; ``nc`` is its length.
    """
    yaml_file = Path(path)
    if not yaml_file.is_file():
        raise ValueError(f"path must be an existing dataset yaml file, got {str(path)!r}")
    cfg = yaml.safe_load(yaml_file.read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{yaml_file}: expected a mapping with keys path/train/val/names, got {type(cfg).__name__}")
    for key in ("train", "val", "names"):
        if cfg.get(key) in (None, "", [], {}):
            raise ValueError(f"{yaml_file}: missing required key {key!r} (need train, val and names)")

    names = cfg["names"]
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    elif isinstance(names, dict):
        try:
            names = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{yaml_file}: key 'names' must map integer class ids to names, "
                             f"got keys {list(names)}") from None
    else:
        raise ValueError(f"{yaml_file}: key 'names' must be a list or a dict, got {type(names).__name__}")
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{yaml_file}: key 'names' must have class ids 0..{len(names) - 1}, got {sorted(names)}")
    names = {k: str(names[k]) for k in sorted(names)}
    nc = len(names)
    if "nc" in cfg and cfg["nc"] is not None and int(cfg["nc"]) != nc:
        raise ValueError(f"{yaml_file}: key 'nc' is {cfg['nc']} but 'names' has {nc} entries")

    base = Path(cfg.get("path") or ".")
    if not base.is_absolute():
        base = (yaml_file.parent / base).resolve()

    def resolve(value):
        if isinstance(value, (list, tuple)):
            return [resolve(v) for v in value]
        p = Path(str(value))
        return p if p.is_absolute() else base / p

    out = {"path": base, "names": names, "nc": nc, "yaml_file": yaml_file.resolve()}
    for key in ("train", "val", "test"):
        if cfg.get(key):
            out[key] = resolve(cfg[key])
    for key in ("train", "val"):
        missing = [str(p) for p in (out[key] if isinstance(out[key], list) else [out[key]]) if not p.exists()]
        if missing:
            raise ValueError(f"{yaml_file}: key {key!r} points to {missing}, which does not exist")
    return out


# --------------------------------------------------------------------------- loader


def img2label_path(img_path) -> Path:
    """YOLOv5's rule: last ``/images/`` becomes ``/labels/``, extension becomes ``.txt``."""
    s = str(img_path)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        head, tail = s.rsplit(sa, 1)
        s = head + sb + tail
    return Path(s).with_suffix(".txt")


def _collect_images(source) -> list[Path]:
    if isinstance(source, (list, tuple)):
        return [f for item in source for f in _collect_images(item)]
    p = Path(source)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.suffix.lower() in IMG_EXTS)
    if p.is_file() and p.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        return [q if q.is_absolute() else (p.parent / q) for q in map(Path, lines)]
    if p.is_file() and p.suffix.lower() in IMG_EXTS:
        return [p]
    raise ValueError(f"img_dir_or_list must be image folders, image files or .txt lists of images; "
                     f"{str(p)!r} is none of these (or does not exist)")


def _parse_labels(text: str, nc: int | None) -> tuple[np.ndarray, str | None, int]:
    """Rows ``cls cx cy w h`` (polygons ``cls x1 y1 x2 y2 ...`` become their box); (labels, error, duplicates)."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            bad = next(v for v in parts if not _is_float(v))
            return np.zeros((0, 5)), f"non-numeric value {bad!r} on line {lineno}", 0
        if len(values) > 6 and len(values) % 2 == 1:
            xy = np.array(values[1:]).reshape(-1, 2)
            (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
            values = [values[0], (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        if len(values) != 5:
            return np.zeros((0, 5)), f"line {lineno} has {len(values)} columns, expected 5 (class cx cy w h)", 0
        cls, coords = values[0], values[1:]
        if not (math.isfinite(cls) and cls >= 0 and cls == int(cls)):
            return np.zeros((0, 5)), f"class {parts[0]!r} on line {lineno} is not a non-negative integer", 0
        if nc is not None and cls >= nc:
            return np.zeros((0, 5)), f"class {int(cls)} on line {lineno} is not in [0, {nc - 1}] (nc={nc})", 0
        if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in coords):
            return np.zeros((0, 5)), (f"coordinates {coords} on line {lineno} are not normalised to [0, 1] "
                                      "(non-normalised or out-of-bounds)"), 0
        if coords[2] <= 0 or coords[3] <= 0:
            return np.zeros((0, 5)), f"zero or negative width/height on line {lineno}", 0
        rows.append([cls, *(min(max(v, 0.0), 1.0) for v in coords)])
    labels = np.array(rows, dtype=np.float32).reshape(-1, 5)
    if not len(labels):
        return labels, None, 0
    first = np.sort(np.unique(labels, axis=0, return_index=True)[1])
    return labels[first], None, len(labels) - len(first)


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _open_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"))


def letterbox(img: np.ndarray, imgsz: int, color: int = PAD_VALUE):
    """Resize keeping the aspect ratio so the long side is ``imgsz``, pad to square with grey.

    Returns ``(image, (ratio_w, ratio_h), (pad_left, pad_top))``: a pixel ``x`` of the
    original lands at ``x * ratio_w + pad_left`` (YOLOv5's centred padding rounding).
    """
    h0, w0 = img.shape[:2]
    r = imgsz / max(h0, w0)
    nw, nh = max(1, round(w0 * r)), max(1, round(h0 * r))
    if (nw, nh) != (w0, h0):
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    left, top = round((imgsz - nw) / 2 - 0.1), round((imgsz - nh) / 2 - 0.1)
    out = np.full((imgsz, imgsz, 3), color, dtype=np.uint8)
    out[top:top + nh, left:left + nw] = img
    return out, (nw / w0, nh / h0), (left, top)


def default_augment_hyp() -> dict:
    """YOLOv5's ``hyp.scratch-low.yaml`` augmentation values (only the keys this loader reads)."""
    return dict(hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, degrees=0.0, translate=0.1, scale=0.5, shear=0.0,
                flipud=0.0, fliplr=0.5, mosaic=1.0)


_HYP_RANGES = dict(hsv_h=(0, 1), hsv_s=(0, 1), hsv_v=(0, 1), degrees=(0, 180), translate=(0, 0.5),
                   scale=(0, 0.95), shear=(0, 45), flipud=(0, 1), fliplr=(0, 1), mosaic=(0, 1))


class YoloDataset(Dataset):
    """Images and YOLO labels, letterboxed to ``imgsz`` x ``imgsz``, optionally augmented.

    ``img_dir_or_list``: an image folder, a ``.txt`` list of images, an image, or a list of those.
    Scanning opens every image once; unreadable images and malformed label files are skipped
    with a ``DatasetWarning`` naming the file and the reason, then one summary warning ("skipped
    3 of 120 images: ..."). A missing or empty label file means a background image.
    ``hyp`` keys (defaults: ``default_augment_hyp()``): ``fliplr, flipud, hsv_h, hsv_s, hsv_v,
    scale, translate, degrees, shear, mosaic`` (probabilities or YOLOv5 gains); other keys are
    ignored so a full training hyp dict can be passed. ``cache=True`` keeps decoded images in RAM.

    ``dataset[i]`` is ``(img uint8 (3, imgsz, imgsz) RGB, labels float (n, 6) [0, cls, cx, cy, w, h]
    normalised to the letterboxed image, path, (orig_hw, (ratio_w, ratio_h), (pad_left, pad_top)))``.
    The geometry tuple describes the plain letterbox (what validation needs to map boxes back).
    Augmentation draws from torch's generator, so ``create_dataloader(seed=...)`` reproduces it.
    """

    def __init__(self, img_dir_or_list, imgsz: int = 320, augment: bool = False, hyp: Mapping | None = None,
                 nc: int | None = None, cache: bool = False, prefix: str = ""):
        if not (isinstance(imgsz, int) and imgsz >= 32):
            raise ValueError(f"imgsz must be an int >= 32, got {imgsz!r}")
        if nc is not None and not (isinstance(nc, int) and nc >= 1):
            raise ValueError(f"nc must be a positive int or None, got {nc!r}")
        self.hyp = default_augment_hyp()
        self.hyp.update({k: v for k, v in (hyp or {}).items() if k in _HYP_RANGES})
        for k, (lo, hi) in _HYP_RANGES.items():
            v = self.hyp[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ValueError(f"hyp[{k!r}] must be a number in [{lo}, {hi}], got {v!r}")
            self.hyp[k] = float(v)
        self.imgsz, self.augment, self.nc, self.prefix = imgsz, augment, nc, prefix
        files = _collect_images(img_dir_or_list)
        if not files:
            raise ValueError(f"img_dir_or_list {img_dir_or_list!r} contains no images ({', '.join(IMG_EXTS)})")
        self._cache: list[np.ndarray | None] = []
        self._scan(files, cache)

    def _scan(self, files: list[Path], cache: bool) -> None:
        """Decode every image once and parse its labels; keep the good ones (``shapes`` are ``(h, w)``)."""
        self.im_files, self.label_files, self.labels, self.shapes = [], [], [], []
        self.skipped: list[tuple[str, str]] = []
        backgrounds = missing = 0
        for f in files:
            try:
                img = _open_rgb(f)
                h, w = img.shape[:2]
                if min(h, w) < 10:
                    raise ValueError(f"image size {w}x{h} is below 10 pixels")
            except Exception as e:  # noqa: BLE001 - any decoder error means "skip this file"
                self._skip(f, f"unreadable image ({type(e).__name__}: {e})")
                continue
            lf = img2label_path(f)
            if lf.is_file():
                try:
                    labels, error, dups = _parse_labels(lf.read_text(), self.nc)
                except (OSError, UnicodeDecodeError) as e:
                    labels, error, dups = None, f"unreadable label file ({type(e).__name__})", 0
                if error:
                    self._skip(lf, f"malformed label file: {error}")
                    continue
                if dups:
                    warnings.warn(f"{self.prefix}{lf}: removed {dups} duplicate label rows", DatasetWarning,
                                  stacklevel=3)
            else:
                labels = np.zeros((0, 5), np.float32)
                missing += 1
            backgrounds += len(labels) == 0
            self.im_files.append(f)
            self.label_files.append(lf)
            self.labels.append(labels)
            self.shapes.append((h, w))
            self._cache.append(self._resize(img) if cache else None)
        if self.skipped:
            reasons = Counter(r.split(" (")[0].split(":")[0] for _, r in self.skipped)
            summary = ", ".join(f"{n} {r}" for r, n in reasons.items())
            shown = [Path(f).name for f, _ in self.skipped[:3]] + (["..."] if len(self.skipped) > 3 else [])
            warnings.warn(f"{self.prefix}skipped {len(self.skipped)} of {len(files)} images: {summary} "
                          f"({', '.join(shown)})", DatasetWarning, stacklevel=3)
        LOGGER.info("%sfound %d images (%d backgrounds, %d without label file), skipped %d",
                    self.prefix, len(self.im_files), backgrounds, missing, len(self.skipped))
        if not self.im_files:
            raise ValueError(f"img_dir_or_list: none of the {len(files)} images could be used; "
                             f"first problem: {self.skipped[0][0]}: {self.skipped[0][1]}")

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append((str(path), reason))
        warnings.warn(f"{self.prefix}skipping {path}: {reason}", DatasetWarning, stacklevel=4)

    def __len__(self) -> int:
        return len(self.im_files)

    # ---- loading

    def _load_resized(self, i: int) -> np.ndarray:
        """Image ``i`` resized so its long side is ``imgsz`` (unpadded), from RAM if cached."""
        if self._cache[i] is not None:
            return self._cache[i]
        return self._resize(_open_rgb(self.im_files[i]))

    def _resize(self, img: np.ndarray) -> np.ndarray:
        h0, w0 = img.shape[:2]
        r = self.imgsz / max(h0, w0)
        if r == 1:
            return img
        return np.asarray(Image.fromarray(img).resize((max(1, round(w0 * r)), max(1, round(h0 * r))), Image.BILINEAR))

    def geometry(self, i: int):
        """``(orig_hw, (ratio_w, ratio_h), (pad_left, pad_top))`` of image ``i``'s letterbox."""
        h0, w0 = self.shapes[i]
        r = self.imgsz / max(h0, w0)
        nw, nh = max(1, round(w0 * r)), max(1, round(h0 * r))
        pad = (round((self.imgsz - nw) / 2 - 0.1), round((self.imgsz - nh) / 2 - 0.1))
        return (h0, w0), (nw / w0, nh / h0), pad

    def _letterboxed(self, i: int):
        """Letterboxed image ``i``, its boxes as pixel ``x1 y1 x2 y2`` there, and their classes."""
        resized = self._load_resized(i)
        img, _, pad = letterbox(resized, self.imgsz)
        boxes = _norm_xywh_to_pixel_xyxy(self.labels[i][:, 1:], resized.shape[1], resized.shape[0], *pad)
        return img, boxes, self.labels[i][:, 0].copy()

    def _mosaic(self, i: int, rng: np.random.Generator):
        """Four images around a random centre on a 2s x 2s canvas (YOLOv5's ``load_mosaic``)."""
        s = self.imgsz
        xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, 2))
        canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
        all_boxes, all_cls = [], []
        for k, j in enumerate([i, *rng.integers(0, len(self), 3)]):
            img = self._load_resized(int(j))
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
            labels = self.labels[int(j)]
            all_boxes.append(_norm_xywh_to_pixel_xyxy(labels[:, 1:], w, h, x1a - x1b, y1a - y1b))
            all_cls.append(labels[:, 0])
        boxes = np.concatenate(all_boxes, 0)
        np.clip(boxes, 0, 2 * s, out=boxes)
        return canvas, boxes, np.concatenate(all_cls, 0)

    # ---- augmentation

    def _affine(self, img: np.ndarray, boxes: np.ndarray, cls: np.ndarray, rng: np.random.Generator):
        """Random rotation/scale/shear/translation to an ``imgsz`` square (YOLOv5's ``random_perspective``
        without perspective); boxes follow their corners, tiny or mostly-cut boxes are dropped."""
        hyp, s = self.hyp, self.imgsz
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
            inv = np.linalg.inv(M)
            img = np.asarray(Image.fromarray(img).transform(
                (s, s), Image.AFFINE, tuple(inv[:2].ravel()), resample=Image.BILINEAR,
                fillcolor=(PAD_VALUE,) * 3))
        if len(boxes):
            corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
            xy = (np.c_[corners, np.ones(len(corners))] @ M.T)[:, :2].reshape(-1, 4, 2)
            new = np.concatenate([xy.min(1), xy.max(1)], 1).clip(0, s)
            keep = _box_candidates(boxes, new, sc)
            boxes, cls = new[keep], cls[keep]
        return img, boxes, cls

    def _hsv(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random gains on hue, saturation and value through look-up tables (YOLOv5's ``augment_hsv``)."""
        gains = rng.uniform(-1, 1, 3) * [self.hyp["hsv_h"], self.hyp["hsv_s"], self.hyp["hsv_v"]] + 1
        hsv = np.asarray(Image.fromarray(img).convert("HSV"))
        x = np.arange(256, dtype=np.float64)
        lut_h = ((x * gains[0]) % 256).astype(np.uint8)
        lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
        lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
        hsv = np.stack([lut_h[hsv[..., 0]], lut_s[hsv[..., 1]], lut_v[hsv[..., 2]]], -1)
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))

    def __getitem__(self, index: int):
        """One sample; any error (an image unreadable since the scan, a bug in augmentation) propagates,
        with the image named, rather than being hidden by silently serving another image."""
        try:
            return self._get(index)
        except Exception as e:
            e.add_note(f"{self.prefix}while loading {self.im_files[index]}")
            raise

    def _get(self, i: int):
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
            if rng.random() < self.hyp["mosaic"]:
                img, boxes, cls = self._mosaic(i, rng)
            else:
                img, boxes, cls = self._letterboxed(i)
            img, boxes, cls = self._affine(img, boxes, cls, rng)
            if any(self.hyp[k] for k in ("hsv_h", "hsv_s", "hsv_v")):
                img = self._hsv(img, rng)
            if rng.random() < self.hyp["flipud"]:
                img = img[::-1]
                boxes = boxes.copy()
                boxes[:, [1, 3]] = self.imgsz - boxes[:, [3, 1]]
            if rng.random() < self.hyp["fliplr"]:
                img = img[:, ::-1]
                boxes = boxes.copy()
                boxes[:, [0, 2]] = self.imgsz - boxes[:, [2, 0]]
        else:
            img, boxes, cls = self._letterboxed(i)
        s = self.imgsz
        out = torch.zeros((len(boxes), 6))
        if len(boxes):
            xyxy = torch.from_numpy(np.asarray(boxes, np.float32)).clamp(0, s) / s
            out[:, 1] = torch.from_numpy(np.asarray(cls, np.float32))
            out[:, 2] = (xyxy[:, 0] + xyxy[:, 2]) / 2
            out[:, 3] = (xyxy[:, 1] + xyxy[:, 3]) / 2
            out[:, 4] = xyxy[:, 2] - xyxy[:, 0]
            out[:, 5] = xyxy[:, 3] - xyxy[:, 1]
        tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return tensor, out, str(self.im_files[i]), self.geometry(i)

    @staticmethod
    def collate_fn(batch):
        """Stack images; concatenate labels with column 0 = image index in the batch (YOLOv5)."""
        imgs, labels, paths, shapes = zip(*batch)
        for k, lb in enumerate(labels):
            lb[:, 0] = k
        return torch.stack(imgs, 0), torch.cat(labels, 0), paths, shapes


def _norm_xywh_to_pixel_xyxy(xywh: np.ndarray, w: float, h: float, padw: float, padh: float) -> np.ndarray:
    out = np.empty((len(xywh), 4), np.float64)
    out[:, 0] = w * (xywh[:, 0] - xywh[:, 2] / 2) + padw
    out[:, 1] = h * (xywh[:, 1] - xywh[:, 3] / 2) + padh
    out[:, 2] = w * (xywh[:, 0] + xywh[:, 2] / 2) + padw
    out[:, 3] = h * (xywh[:, 1] + xywh[:, 3] / 2) + padh
    return out


def _box_candidates(before: np.ndarray, after: np.ndarray, gain: float, wh_thr: float = 2,
                    area_thr: float = 0.1, ar_thr: float = 100, eps: float = 1e-16) -> np.ndarray:
    """Keep boxes still > 2 px wide and high, with > 10 % of their scaled area and aspect < 100."""
    w1, h1 = (before[:, 2] - before[:, 0]) * gain, (before[:, 3] - before[:, 1]) * gain
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def create_dataloader(dataset: Dataset, batch_size: int, shuffle: bool, workers: int = 0, seed: int = 0,
                      distributed: bool | None = None, drop_last: bool = False) -> DataLoader:
    """A seeded DataLoader using ``YoloDataset.collate_fn``.

    ``distributed=None`` uses a ``DistributedSampler`` exactly when ``torch.distributed`` is
    initialised (DDP: each rank sees its own shard; call ``loader.sampler.set_epoch(epoch)``
    every epoch so shuffling changes). The seeded generator fixes the shuffle order and, with
    ``workers > 0``, the workers' torch seeds, which drive augmentation. With ``workers=0``
    augmentation draws from the global torch RNG, so seed it too (``course.env.seed_everything``).
    Workers start afresh every epoch (not persistent) and take their seeds from the generator
    then: reseed it per epoch and a run resumed at epoch k draws what an uninterrupted one did
    (persistent workers would carry on from the seeds of the first epoch they served).
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not (isinstance(workers, int) and workers >= 0):
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    dist_ready = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed and not dist_ready:
        raise ValueError("distributed=True needs torch.distributed to be initialised (init_process_group) first")
    use_dist = dist_ready if distributed is None else bool(distributed)
    generator = torch.Generator().manual_seed(seed)
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last) if use_dist else None
    collate = getattr(dataset, "collate_fn", YoloDataset.collate_fn)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, collate_fn=collate, generator=generator, drop_last=drop_last,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())

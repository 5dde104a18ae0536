"""The synthetic "shapes" detection dataset, written in YOLOv5's layout in seconds.

Nothing can be downloaded in the course, so ``make_shapes`` draws filled shapes (the classes)
on textured backgrounds with clutter, and writes images, one label ``.txt`` per image and a
``data.yaml`` (``ultralytics/yolov5`` ``data/coco128.yaml`` layout).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from course.env import pick

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star", "ring", "diamond", "hexagon", "pentagon")
DEFAULT_CLASSES = ("circle", "square", "triangle", "cross")

# Named sets of the generator's difficulty knobs (``make_shapes(**DATA_PRESETS[name], ...)``); object
# sizes are in pixels of a 128-px image. "toy": the first course recipe, on which all three chapter-6
# detectors saturated (mAP@0.5 0.93-0.99), so it could not rank them. "hard": built to discriminate;
# every knob makes one thing harder that a better backbone should handle better:
# * 8 classes in look-alike pairs: circle/ring (a hole), square/diamond (a 45 degree turn and a
#   squash), circle/hexagon (corners only a few pixels deep on small objects), star/cross;
# * smaller objects (10-48 px: the smallest just over one stride-8 cell) and more of them;
# * more clutter, plus decoys: unfilled outlines of class shapes that are not objects;
# * occlusion: neighbours may cover 40 % of a box, and opaque blobs cover object edges;
# * less contrast against the background and more sensor noise.
DATA_PRESETS = {
    "toy": dict(classes=DEFAULT_CLASSES, objects=(2, 6), size_range=(16.0, 64.0), clutter=(3, 9), decoys=(0, 0),
                occlusion=0.25, occluders=(0, 0), contrast=90.0, noise=(2.0, 6.0)),
    "hard": dict(classes=("circle", "ring", "square", "diamond", "triangle", "hexagon", "star", "cross"),
                 objects=(3, 9), size_range=(10.0, 48.0), clutter=(6, 14), decoys=(1, 4), occlusion=0.4,
                 occluders=(0, 3), contrast=60.0, noise=(3.0, 10.0)),
    # "medium": hard's 8 look-alike classes (the distinctions a better backbone should see), with
    # every nuisance turned half-way back towards "toy". The full recipe's data: YOLOv5n reached only
    # 0.37 test mAP@0.5 on "hard" in the 15-min cap on a 2-core Xeon, 0.80 on this
    # (results/yolo_probes_cpu/, one seed each).
    "medium": dict(classes=("circle", "ring", "square", "diamond", "triangle", "hexagon", "star", "cross"),
                   objects=(2, 7), size_range=(14.0, 56.0), clutter=(4, 10), decoys=(0, 2), occlusion=0.3,
                   occluders=(0, 1), contrast=75.0, noise=(2.0, 8.0)),
}


def _shape_polygon(kind: str, rng: np.random.Generator) -> np.ndarray | None:
    """Outline of one shape in unit coordinates, its bounding box centred on 0 (extent about 1); None for a circle or ring."""
    if kind in ("circle", "ring"):
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
    elif kind == "diamond":
        a = rng.uniform(0.6, 0.8)
        pts = np.array([[0, -1], [a, 0], [0, 1], [-a, 0]], float) / 2
        angle = rng.uniform(-12, 12)
    elif kind in ("hexagon", "pentagon"):
        n = 6 if kind == "hexagon" else 5
        t = np.deg2rad(np.arange(n) * 360 / n + 90)
        pts = np.stack([np.cos(t), -np.sin(t)], 1) / 2
        angle = rng.uniform(0, 360 / n)
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


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray, contrast: float = 90.0) -> tuple[int, int, int]:
    """A saturated colour at least ``contrast`` (RGB distance) from the background it is drawn on."""
    for _ in range(30):
        hsv = np.array([rng.integers(0, 256), rng.integers(100, 256), rng.integers(70, 256)], np.uint8)
        rgb = np.asarray(Image.fromarray(hsv[None, None], "HSV").convert("RGB"), float)[0, 0]
        if np.linalg.norm(rgb - under) > contrast:
            break
    else:
        rgb = 255.0 - under
    return tuple(int(c) for c in rgb)


def _render(rng: np.random.Generator, s: int, classes: tuple[str, ...], objects: tuple[int, int],
            size_range: tuple[float, float], clutter: tuple[int, int] = (3, 9), decoys: tuple[int, int] = (0, 0),
            occlusion: float = 0.25, occluders: tuple[int, int] = (0, 0), contrast: float = 90.0,
            noise: tuple[float, float] = (2.0, 6.0)) -> tuple[Image.Image, list[tuple[int, float, float, float, float]]]:
    """One image and its labels ``(cls, cx, cy, w, h)`` normalised; the knobs are ``make_shapes``'."""
    ss = 2  # draw at 2x and downsample: anti-aliased edges
    grid = _background(rng)
    canvas = Image.fromarray(grid).resize((s * ss, s * ss), Image.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    _distractors(draw, rng, s, ss, int(rng.integers(clutter[0], clutter[1] + 1)))
    if decoys[1] > 0:
        _decoys(draw, rng, s, ss, int(rng.integers(decoys[0], decoys[1] + 1)), classes, size_range)

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
            if all(_overlap_of_smaller(box, b) <= occlusion for b in placed):
                break
        else:
            continue
        placed.append(box)
        gy, gx = (np.clip(c[::-1] / s * len(grid), 0, len(grid) - 1)).astype(int)
        colour = _contrasting_colour(rng, grid[gy, gx].astype(float), contrast)
        outline = None
        if rng.random() < 0.3:
            outline = tuple(int(v) for v in rng.integers(0, 256, 3))
        width = ss * int(rng.integers(1, 3)) if outline else 0
        if classes[cls] == "ring":  # a thick circle outline: the hole tells it from a circle
            thick = max(ss, int(round(ss * size * rng.uniform(0.18, 0.26))))
            draw.ellipse([*(box[:2] * ss), *(box[2:] * ss)], outline=colour, width=thick)
        elif poly is None:
            draw.ellipse([*(box[:2] * ss), *(box[2:] * ss)], fill=colour, outline=outline, width=width)
        else:
            draw.polygon([tuple(p) for p in (poly + c) * ss], fill=colour, outline=outline, width=width)
        cx, cy = c / s
        w, h = 2 * half / s
        labels.append((cls, float(cx), float(cy), float(w), float(h)))

    if occluders[1] > 0 and placed:
        _occluders(draw, rng, ss, int(rng.integers(occluders[0], occluders[1] + 1)), placed)
    if rng.random() < 0.5:
        _distractors(draw, rng, s, ss, int(rng.integers(1, 4)))
    img = np.asarray(canvas.resize((s, s), Image.BOX), np.float32)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(*noise))
    return Image.fromarray(img.clip(0, 255).round().astype(np.uint8)), labels


def _decoys(draw: ImageDraw.ImageDraw, rng: np.random.Generator, s: int, ss: int, count: int,
            classes: tuple[str, ...], size_range: tuple[float, float]) -> None:
    """Hard negatives: thin unfilled outlines of the polygon classes, sized like objects, never labelled."""
    kinds = [k for k in classes if k not in ("circle", "ring")] or ["square"]
    for _ in range(count):
        size = _object_size(rng, max(size_range[0], 14.0), max(size_range[1], 14.0))
        poly = _shape_polygon(kinds[int(rng.integers(len(kinds)))], rng) * size
        c = rng.uniform(size / 2, s - size / 2, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.polygon([tuple(p) for p in (poly + c) * ss], outline=colour, width=ss)


def _occluders(draw: ImageDraw.ImageDraw, rng: np.random.Generator, ss: int, count: int,
               boxes: list[np.ndarray]) -> None:
    """Opaque blobs centred on the edge of a random object's box: they hide part of it (the label stays)."""
    for _ in range(count):
        box = boxes[int(rng.integers(len(boxes)))]
        side, t = int(rng.integers(4)), rng.uniform(0.2, 0.8)  # top, bottom, left, right
        if side < 2:
            x, y = box[0] + t * (box[2] - box[0]), box[1 + 2 * side]
        else:
            x, y = box[2 * (side - 2)], box[1] + t * (box[3] - box[1])
        r = rng.uniform(0.15, 0.3) * min(box[2] - box[0], box[3] - box[1])
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([(x - r) * ss, (y - r) * ss, (x + r) * ss, (y + r) * ss], fill=colour)


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


def _pair(name: str, value, low: float, kind=int) -> tuple:
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and low <= value[0] <= value[1] and (kind is float or all(float(v).is_integer() for v in value)))
    if not ok:
        raise ValueError(f"{name} must be ({'count' if kind is int else 'value'}_min, max) with {low} <= min <= max"
                         f"{' (integers)' if kind is int else ''}, got {value!r}")
    return tuple(kind(v) for v in value)


def make_shapes(root, n_train: int | None = None, n_val: int | None = None, imgsz: int = 320, seed: int = 0,
                classes=DEFAULT_CLASSES, objects: tuple[int, int] = (2, 8),
                size_range: tuple[float, float] | None = None, ext: str = "jpg",
                overwrite: bool = False, n_test: int | None = None, clutter: tuple[int, int] = (3, 9),
                decoys: tuple[int, int] = (0, 0), occlusion: float = 0.25, occluders: tuple[int, int] = (0, 0),
                contrast: float = 90.0, noise: tuple[float, float] = (2.0, 6.0)) -> Path:
    """Write the deterministic "shapes" detection dataset under ``root``; return its ``data.yaml``.

    Filled shapes (the classes) on textured backgrounds with clutter that is not a class
    (lines, outlines, arcs, elongated blobs and bars, dots), colour variation, sensor noise and
    partial overlap (a new object covers at most ``occlusion`` of a smaller neighbour's box). Object
    sizes run from ``size_range[0]`` px (default ``imgsz / 32``: a few cells of the stride-8 P3
    map) to ``size_range[1]`` (default ``imgsz / 2``: P5's job). Three splits, train / val / test:
    val picks the best epoch, test is only for the final score. Every image has its own random
    stream ``(seed, split, index)``, so the same arguments give byte-identical files.
    If ``root`` already holds a dataset made with the same arguments it is reused.
    Defaults: ``pick(800, 48)`` train and ``pick(200, 24)`` val images; ``n_test`` defaults to ``n_val``.

    Difficulty knobs (``DATA_PRESETS`` names two sets): ``clutter`` (min, max) distractors;
    ``decoys`` (min, max) unfilled outlines of class shapes, never labelled; ``occluders`` (min, max)
    opaque blobs on object edges; ``contrast`` the least RGB distance of an object from the
    background under it; ``noise`` the range of the Gaussian noise's standard deviation.
    """
    n_train = pick(800, 48) if n_train is None else n_train
    n_val = pick(200, 24) if n_val is None else n_val
    n_test = n_val if n_test is None else n_test
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
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
    clutter, decoys, occluders = (_pair(n, v, 0) for n, v in (("clutter", clutter), ("decoys", decoys),
                                                              ("occluders", occluders)))
    noise = _pair("noise", noise, 0.0, float)
    for name, value, hi in (("occlusion", occlusion, 1.0), ("contrast", contrast, 250.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= hi:
            raise ValueError(f"{name} must be a number in [0, {hi:g}], got {value!r}")
    knobs = dict(clutter=clutter, decoys=decoys, occlusion=float(occlusion), occluders=occluders,
                 contrast=float(contrast), noise=noise)

    root = Path(root).resolve()
    stamp = root / ".shapes.json"
    params = dict(n_train=n_train, n_val=n_val, n_test=n_test, imgsz=imgsz, seed=seed, classes=list(classes),
                  objects=list(objects), size_range=list(size_range), ext=ext,
                  **{k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()}, version=4)
    data_yaml = root / "data.yaml"
    if stamp.exists() and data_yaml.exists() and not overwrite:
        if json.loads(stamp.read_text()) == params:
            return data_yaml
    if (root / "images").exists() and not stamp.exists() and not overwrite:
        raise ValueError(f"root {str(root)!r} already holds an images/ folder not written by make_shapes; "
                         "pass an empty folder or overwrite=True")
    for sub in ("images", "labels"):
        shutil.rmtree(root / sub, ignore_errors=True)

    for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, split_id, i])
            img, labels = _render(rng, imgsz, classes, objects, size_range, **knobs)
            stem = f"{split}_{i:05d}"
            if ext == "jpg":
                img.save(root / "images" / split / f"{stem}.jpg", quality=92)
            else:
                img.save(root / "images" / split / f"{stem}.png", compress_level=1)
            rows = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels)
            (root / "labels" / split / f"{stem}.txt").write_text(rows)

    cfg = {"path": str(root), "train": "images/train", "val": "images/val", "test": "images/test",
           "nc": len(classes), "names": dict(enumerate(classes))}
    data_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
    stamp.write_text(json.dumps(params))
    return data_yaml

"""Glyphs-10: a classification dataset the course draws itself, so nothing is downloaded.

Every image shows a *body* (a circle, square or triangle) filled with a *texture* (stripes or
checks), and beside it a small solid *marker*, on the body's left or right. A class is one
(shape, texture, side) triple, so no single cue names it: telling "square, stripes, marker left"
from its neighbours needs the outline (shape), the fill (texture) and where the marker sits
relative to the body (a spatial relation that global pooling alone cannot see). Of the 12
triples, 10 are classes (``CLASSES``).

Nuisances that do not change the class (``GlyphStyle``): body and marker position, size, aspect
and rotation; stripe period, angle and phase; the colours and their contrast; a smooth random
background; clutter (lines, outlines, dots and a decoy patch of texture off the body); an
occluding bar across the body; pixel noise. Never a horizontal flip: it would swap left and right.

A scene is drawn on a 128-px canvas and then shrunk to ``imgsz``, so the same seed shows the same
scene at every input size: a smaller input (MobileNet's resolution multiplier ρ) only loses detail,
the fine stripes first. Image ``i`` of a split is drawn from its own generator seeded with
``(seed, split, i)``: splits are disjoint streams, and an image does not depend on the split's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from course.env import pick

__all__ = ["GlyphClass", "CLASSES", "CLASS_NAMES", "GlyphStyle", "EASY", "HARD", "SPLITS", "CANVAS", "MEAN", "STD",
           "render_glyph", "make_glyphs", "default_sizes", "GlyphDataset", "glyph_splits", "to_image"]

SHAPES = ("circle", "square", "triangle")
TEXTURES = ("stripes", "checks")
SIDES = ("left", "right")
_NOT_A_CLASS = {("circle", "checks", "right"), ("triangle", "stripes", "left")}
SPLITS = ("train", "val", "test")
CANVAS = 128
"""Side of the canvas every scene is drawn on before it is shrunk to ``imgsz``."""
MEAN = STD = 0.5
"""A sample is ``(pixel / 255 - MEAN) / STD``: values in [-1, 1]."""


@dataclass(frozen=True)
class GlyphClass:
    """One class: the body's shape, the texture that fills it, the side the marker is on."""

    shape: str
    texture: str
    side: str

    @property
    def name(self) -> str:
        return f"{self.shape}-{self.texture}-{self.side}"


CLASSES = tuple(GlyphClass(s, t, d) for s in SHAPES for t in TEXTURES for d in SIDES
                if (s, t, d) not in _NOT_A_CLASS)
CLASS_NAMES = tuple(c.name for c in CLASSES)


@dataclass(frozen=True)
class GlyphStyle:
    """The nuisance ranges (fractions of the canvas unless said otherwise); raise them to make it harder.

    The defaults sit between ``EASY`` and ``HARD``; which level keeps the course's best model
    below 95 % test accuracy in full mode is the calibration's question (``RECIPES`` in
    ``course.classify`` names the style it trains on).
    """

    body_size: tuple[float, float] = (0.30, 0.50)
    marker_size: tuple[float, float] = (0.26, 0.40)  # of the body's size
    gap: tuple[float, float] = (-0.05, 0.20)  # marker to body, of the body's size; < 0 overlaps
    marker_offset: float = 0.35  # vertical, of the body's size
    aspect: tuple[float, float] = (0.8, 1.25)
    rotation: float = 30.0  # degrees either way
    period: tuple[float, float] = (10.0, 18.0)  # texture period in canvas pixels
    contrast: tuple[float, float] = (0.5, 1.0)  # texture colour's distance from the body colour, 0-1
    clutter: tuple[int, int] = (0, 4)
    decoy_prob: float = 0.3  # a patch of texture off the body
    occlusion_prob: float = 0.3
    noise: tuple[float, float] = (0.0, 6.0)  # pixel noise std, 0-255 scale

    def __post_init__(self):
        for name in ("body_size", "marker_size", "gap", "aspect", "period", "contrast", "clutter", "noise"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"GlyphStyle.{name} must be a (low, high) range with low <= high, got {(lo, hi)}")
        for name in ("decoy_prob", "occlusion_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"GlyphStyle.{name} must be in [0, 1], got {getattr(self, name)!r}")


EASY = GlyphStyle(clutter=(0, 0), decoy_prob=0.0, occlusion_prob=0.0, noise=(0.0, 0.0), contrast=(0.8, 1.0))
"""No clutter, decoy, occlusion or noise: only pose, size, colour and texture period vary."""
HARD = GlyphStyle(clutter=(2, 7), decoy_prob=0.6, occlusion_prob=0.5, noise=(0.0, 10.0), contrast=(0.35, 1.0))
"""Every nuisance turned up."""

_YY, _XX = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32) + 0.5


def _rotation(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _outline(shape: str, rng: np.random.Generator, style: GlyphStyle) -> np.ndarray:
    """Unit outline (extent about 1, centred on 0) of a body, stretched and rotated."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) / 2
    elif shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) / 2
    else:
        t = np.deg2rad(np.array([90, 210, 330]) + rng.uniform(-8, 8, 3))
        pts = np.stack([np.cos(t), -np.sin(t)], 1) * 0.6
    pts = pts * [rng.uniform(*style.aspect), 1.0]
    return pts @ _rotation(rng.uniform(-style.rotation, style.rotation)).T


def _window(polygon: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of the canvas that the polygon's bounding box covers (painting only there is faster)."""
    (x0, y0), (x1, y1) = np.floor(polygon.min(0)), np.ceil(polygon.max(0)) + 1
    clip = lambda v: int(min(max(v, 0), CANVAS))  # noqa: E731
    return slice(clip(y0), clip(y1)), slice(clip(x0), clip(x1))


def _mask(polygon: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
    im = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(im).polygon([tuple(p) for p in polygon], fill=255)
    return np.asarray(im, np.float32)[window][..., None] / 255


def _texture(kind: str, rng: np.random.Generator, style: GlyphStyle, window: tuple[slice, slice]) -> np.ndarray:
    """1 where the second colour goes: stripes at a random angle, or checks."""
    p = rng.uniform(*style.period)
    a = rng.uniform(0, np.pi)
    xx, yy = _XX[window], _YY[window]
    u = (xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / p
    v = (-xx * np.sin(a) + yy * np.cos(a)) * 2 * np.pi / p
    wave = np.sin(u + rng.uniform(0, 2 * np.pi))
    if kind == "checks":
        wave = wave * np.sin(v + rng.uniform(0, 2 * np.pi))
    return (wave > 0).astype(np.float32)[..., None]


def _colour(rng: np.random.Generator, far_from: np.ndarray | None = None) -> np.ndarray:
    """A random colour, at least 80 (of 255, RGB distance) from ``far_from``."""
    for _ in range(20):
        c = rng.uniform(0, 255, 3)
        if far_from is None or np.linalg.norm(c - far_from) > 80:
            return c
    return 255 - far_from


def _background(rng: np.random.Generator) -> np.ndarray:
    cells = int(rng.integers(2, 6))
    grid = (rng.uniform(0, 255, 3) + rng.uniform(-50, 50, (cells, cells, 3))).clip(0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((CANVAS, CANVAS), Image.BICUBIC), np.float32)


def _paint(img: np.ndarray, polygon: np.ndarray, kind: str, rng: np.random.Generator, style: GlyphStyle,
           c1: np.ndarray, c2: np.ndarray) -> None:
    """Fill ``polygon`` with texture ``kind`` in colours ``c1`` and ``c2``, in place."""
    w = _window(polygon)
    mask, texture = _mask(polygon, w), _texture(kind, rng, style, w)
    img[w] = img[w] * (1 - mask) + mask * (c1 * (1 - texture) + c2 * texture)


def _two_colours(rng: np.random.Generator, under: np.ndarray, style: GlyphStyle):
    c1 = _colour(rng, under)
    c2 = c1 + (_colour(rng, c1) - c1) * rng.uniform(*style.contrast)
    return c1, c2


def _clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, count: int) -> None:
    """Things that are no part of a class: lines, outlined boxes and arcs, small dots."""
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = rng.uniform(0, CANVAS, 2)
        kind = rng.integers(0, 4)
        if kind == 0:
            draw.line([x, y, *rng.uniform(0, CANVAS, 2)], fill=colour, width=int(rng.integers(1, 4)))
        elif kind in (1, 2):
            w, h = rng.uniform(8, CANVAS / 4, 2)
            box = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]
            if kind == 1:
                draw.rectangle(box, outline=colour, width=int(rng.integers(1, 3)))
            else:
                draw.arc(box, float(rng.uniform(0, 360)), float(rng.uniform(0, 360)), fill=colour, width=2)
        else:
            r = rng.uniform(1, 3)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def render_glyph(label: int, rng: np.random.Generator, imgsz: int = 48, style: GlyphStyle | None = None) -> np.ndarray:
    """One image of class ``CLASSES[label]`` as uint8 (imgsz, imgsz, 3) RGB."""
    style = style or GlyphStyle()
    cls = CLASSES[label]
    img = _background(rng)
    size = rng.uniform(*style.body_size) * CANVAS
    marker = rng.uniform(*style.marker_size) * size
    gap = rng.uniform(*style.gap) * size
    body_pts = _outline(cls.shape, rng, style) * size
    margin = 4.0
    half_w, half_h = np.abs(body_pts).max(0)
    span = 2 * half_w + gap + marker  # body, gap and marker side by side
    fit = min(1.0, (CANVAS - 2 * margin) / span, (CANVAS - 2 * margin) / (2 * half_h))
    size, marker, gap, body_pts, half_w, half_h, span = (v * fit for v in (size, marker, gap, body_pts, half_w,
                                                                          half_h, span))
    left = rng.uniform(margin, CANVAS - margin - span)
    body_x = left + marker + gap + half_w if cls.side == "left" else left + half_w
    body_y = rng.uniform(margin + half_h, CANVAS - margin - half_h)
    marker_x = body_x - half_w - gap - marker / 2 if cls.side == "left" else body_x + half_w + gap + marker / 2
    marker_y = np.clip(body_y + rng.uniform(-1, 1) * style.marker_offset * size, marker / 2, CANVAS - marker / 2)

    if rng.uniform() < style.decoy_prob:  # texture off the body, so "stripes somewhere" is not enough
        c = rng.uniform(0, CANVAS, 2)
        r = rng.uniform(0.15, 0.3) * size
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        blob = c + np.stack([np.cos(t), np.sin(t)], 1) * r * rng.uniform(0.6, 1.4, (24, 1))
        kind = TEXTURES[rng.integers(0, 2)]
        _paint(img, blob, kind, rng, style, *_two_colours(rng, img[int(c[1]) % CANVAS, int(c[0]) % CANVAS], style))
    under = img[int(body_y), int(body_x)]
    body_colour, second = _two_colours(rng, under, style)
    _paint(img, body_pts + [body_x, body_y], cls.texture, rng, style, body_colour, second)

    pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    n_clutter = int(rng.integers(style.clutter[0], style.clutter[1] + 1))
    _clutter(draw, rng, n_clutter)
    m = marker / 2
    box = [marker_x - m, marker_y - m, marker_x + m, marker_y + m]
    colour = tuple(int(c) for c in _colour(rng, body_colour))
    (draw.ellipse if rng.uniform() < 0.5 else draw.rectangle)(box, fill=colour)
    if rng.uniform() < style.occlusion_prob:  # a bar across the body
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)]) * size
        centre = np.array([body_x, body_y]) + rng.uniform(-0.3, 0.3, 2) * size
        draw.line([*(centre - d), *(centre + d)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                  width=max(1, int(rng.uniform(0.08, 0.18) * size)))
    out = np.asarray(pil.resize((imgsz, imgsz), Image.BOX if imgsz < CANVAS else Image.NEAREST), np.float32)
    out = out + rng.normal(0, rng.uniform(*style.noise), out.shape)
    return out.clip(0, 255).round().astype(np.uint8)


def _check_imgsz(imgsz) -> None:
    if isinstance(imgsz, bool) or not isinstance(imgsz, int) or not 16 <= imgsz <= CANVAS:
        raise ValueError(f"imgsz must be an int in [16, {CANVAS}], got {imgsz!r}")


def _check_split(split) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")


def make_glyphs(n: int, split: str = "train", imgsz: int = 48, seed: int = 0,
                style: GlyphStyle | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8 (n, 3, imgsz, imgsz)) and labels (int64 (n,)); label ``i % 10``, so balanced."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_split(split)
    _check_imgsz(imgsz)
    labels = np.arange(n) % len(CLASSES)
    images = np.stack([render_glyph(int(k), np.random.default_rng([seed, SPLITS.index(split), i]), imgsz, style)
                       for i, k in enumerate(labels)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


def default_sizes() -> dict[str, int]:
    """Images per split: 5,000 / 1,000 / 2,000, or 100 / 50 / 50 in quick mode."""
    return dict(train=pick(5000, 100), val=pick(1000, 50), test=pick(2000, 50))


def to_image(x: torch.Tensor) -> np.ndarray:
    """A normalised sample (3, H, W) back to uint8 (H, W, 3) for display."""
    return ((x.detach().cpu() * STD + MEAN).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@dataclass
class GlyphDataset(Dataset):
    """One split of Glyphs-10, drawn once and held in memory; ``ds[i]`` is ``(float (3, imgsz, imgsz), label)``."""

    split: str = "train"
    n: int | None = None
    imgsz: int = 48
    seed: int = 0
    style: GlyphStyle | None = None
    classes: tuple[str, ...] = field(default=CLASS_NAMES, init=False)

    def __post_init__(self):
        _check_split(self.split)
        if self.n is None:
            self.n = default_sizes()[self.split]
        self.images, self.targets = make_glyphs(self.n, self.split, self.imgsz, self.seed, self.style)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return (self.images[i].float() / 255 - MEAN) / STD, int(self.targets[i])


def glyph_splits(imgsz: int = 48, seed: int = 0, sizes: dict | None = None,
                 style: GlyphStyle | None = None) -> dict[str, GlyphDataset]:
    """Train, val and test splits (sizes from ``default_sizes()`` unless given): select on val, report on test."""
    sizes = {**default_sizes(), **(sizes or {})}
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise ValueError(f"sizes has unknown splits {unknown}; allowed: {list(SPLITS)}")
    return {s: GlyphDataset(s, sizes[s], imgsz, seed, style) for s in SPLITS}

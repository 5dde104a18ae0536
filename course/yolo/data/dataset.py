"""A YOLO-format dataset: images and labels, letterboxed, optionally augmented, and its DataLoader.

The format is YOLOv5's (``ultralytics/yolov5`` ``utils/dataloaders.py``): one ``.txt`` per image
with rows ``class cx cy w h`` normalised to 0-1, the label path being the image path with the
last ``/images/`` replaced by ``/labels/`` and the extension by ``.txt``.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..letterbox import letterbox, letterbox_geometry
from .augment import augment_hsv, augment_hyp, load_mosaic, norm_xywh_to_pixel_xyxy, random_affine, random_flips

LOGGER = logging.getLogger(__name__)

IMG_EXTS = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


class DatasetWarning(UserWarning):
    """A file was skipped or a label row dropped while scanning a dataset."""


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
        self.hyp = augment_hyp(hyp)
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
        size = letterbox_geometry((h0, w0), self.imgsz).size
        if size == (w0, h0):
            return img
        return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))

    def _load_labelled(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self._load_resized(i), self.labels[i]

    def geometry(self, i: int):
        """``(orig_hw, (ratio_w, ratio_h), (pad_left, pad_top))`` of image ``i``'s letterbox."""
        ratio, pad, _ = letterbox_geometry(self.shapes[i], self.imgsz)
        return tuple(self.shapes[i]), ratio, pad

    def _letterboxed(self, i: int):
        """Letterboxed image ``i``, its boxes as pixel ``x1 y1 x2 y2`` there, and their classes."""
        resized = self._load_resized(i)
        img, _, pad = letterbox(resized, self.imgsz)
        boxes = norm_xywh_to_pixel_xyxy(self.labels[i][:, 1:], resized.shape[1], resized.shape[0], *pad)
        return img, boxes, self.labels[i][:, 0].copy()

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
                img, boxes, cls = load_mosaic(self._load_labelled, i, len(self), self.imgsz, rng)
            else:
                img, boxes, cls = self._letterboxed(i)
            img, boxes, cls = random_affine(img, boxes, cls, self.hyp, self.imgsz, rng)
            if any(self.hyp[k] for k in ("hsv_h", "hsv_s", "hsv_v")):
                img = augment_hsv(img, self.hyp, rng)
            img, boxes = random_flips(img, boxes, self.hyp, self.imgsz, rng)
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

"""Glyphs-10 on disk as PNG files, and a loader for any image-folder dataset that survives a bad file.

The layout is torchvision's ``ImageFolder``: ``root/<split>/<class>/<image>.png``, the class
folders sorted by name giving the label. ``write_image_folder`` prefixes each class folder with
its index (``03-square-stripes-left``) so that sorted order is ``CLASSES`` order. A learner can
then swap in their own photos in the same layout.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from course.data.glyphs import MEAN, STD, GlyphDataset
from course.yolo.data import DatasetWarning

__all__ = ["write_image_folder", "ImageFolderChecked"]


def write_image_folder(root, splits: dict[str, GlyphDataset]) -> Path:
    """Write each split as ``root/<split>/<NN-class>/<index>.png``; returns ``root``."""
    root = Path(root)
    if not splits:
        raise ValueError("splits must name at least one split, got an empty dict")
    for split, ds in splits.items():
        for k, name in enumerate(ds.classes):
            (root / split / f"{k:02d}-{name}").mkdir(parents=True, exist_ok=True)
        for i, (img, label) in enumerate(zip(ds.images, ds.targets)):
            name = ds.classes[int(label)]
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / split / f"{int(label):02d}-{name}" / f"{i:05d}.png")
    return root


def _to_tensor(im: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    return (x.float() / 255 - MEAN) / STD


class ImageFolderChecked(ImageFolder):
    """``ImageFolder`` that decodes every image once while scanning and skips the ones it cannot read.

    Each skipped file raises a ``DatasetWarning`` naming it and why; ``skipped`` lists them
    (``(path, reason)``), so a corrupt file costs one sample, not the run. Samples are normalised
    like ``GlyphDataset``'s; ``imgsz`` resizes images that are not already that size.
    """

    def __init__(self, root, imgsz: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"root must be an existing folder of class folders, got {str(root)!r}")
        if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 1):
            raise ValueError(f"imgsz must be None or a positive int, got {imgsz!r}")
        self.skipped: list[tuple[str, str]] = []
        self.imgsz = imgsz
        super().__init__(str(root), loader=self._load, is_valid_file=self._readable, allow_empty=True)
        if not self.samples:
            raise ValueError(f"root {str(root)!r} holds no readable images ({', '.join(IMG_EXTENSIONS)}); "
                             f"skipped {len(self.skipped)}")
        if self.skipped:
            warnings.warn(f"{root}: skipped {len(self.skipped)} of {len(self.samples) + len(self.skipped)} "
                          f"images that could not be read", DatasetWarning, stacklevel=2)

    def _readable(self, path: str) -> bool:
        if not path.lower().endswith(IMG_EXTENSIONS):
            return False
        try:
            with Image.open(path) as im:
                im.load()
        except Exception as e:  # noqa: BLE001 - any decoder error means "skip this file"
            self.skipped.append((path, f"{type(e).__name__}: {e}"))
            warnings.warn(f"skipping {path}: unreadable image ({type(e).__name__}: {e})", DatasetWarning,
                          stacklevel=2)
            return False
        return True

    def _load(self, path: str) -> torch.Tensor:
        with Image.open(path) as im:
            if self.imgsz is not None and im.size != (self.imgsz, self.imgsz):
                im = im.convert("RGB").resize((self.imgsz, self.imgsz), Image.BILINEAR)
            return _to_tensor(im)

"""YOLO-format data: a synthetic "shapes" dataset generator and a loader for any YOLO dataset.

The format is YOLOv5's (``ultralytics/yolov5`` ``utils/dataloaders.py``, ``data/coco128.yaml``):
one ``.txt`` per image with rows ``class cx cy w h`` normalised to 0-1, the label path being
the image path with the last ``/images/`` replaced by ``/labels/`` and the extension by ``.txt``.
Nothing can be downloaded in the course, so ``make_shapes`` writes a small dataset in that
layout in seconds; ``YoloDataset`` reads it, or any other dataset in the same layout.

- ``shapes``: the generator (``make_shapes``).
- ``config``: the dataset yaml (``load_data_config``).
- ``dataset``: ``YoloDataset`` (scan, cache, labels, ``dataset[i]``) and ``create_dataloader``.
- ``augment``: mosaic, affine warp, HSV gains, flips.
- ``course.yolo.letterbox``: the letterbox geometry shared with ``postprocess.scale_boxes``.
"""

from ..letterbox import PAD_VALUE, letterbox, letterbox_geometry
from .augment import default_augment_hyp
from .config import load_data_config
from .dataset import IMG_EXTS, DatasetWarning, YoloDataset, create_dataloader, img2label_path
from .shapes import DATA_PRESETS, DEFAULT_CLASSES, SHAPE_CLASSES, make_shapes

__all__ = [
    "DATA_PRESETS",
    "DEFAULT_CLASSES",
    "IMG_EXTS",
    "PAD_VALUE",
    "SHAPE_CLASSES",
    "DatasetWarning",
    "YoloDataset",
    "create_dataloader",
    "default_augment_hyp",
    "img2label_path",
    "letterbox",
    "letterbox_geometry",
    "load_data_config",
    "make_shapes",
]

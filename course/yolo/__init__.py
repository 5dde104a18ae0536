"""A compact YOLOv5 (v6/v7 layout), written from scratch: model from YAML and loss.

``DetectionModel("yolov5s.yaml")`` builds a detector from a shipped config (see ``list_cfgs``);
``ComputeLoss(model, hyp)`` scores its training outputs against ``(image, class, x, y, w, h)``
targets. New blocks become usable in YAMLs with ``register`` / ``register_module``.
"""

from .common import Detect
from .loss import ComputeLoss, bbox_iou, default_hyp, load_hyp, scale_hyp
from .model import DetectionModel, layer_groups, list_cfgs, load_cfg, make_divisible_ceil, parse_model
from .registry import REGISTRY, ModelConfigError, register, register_module

__all__ = [
    "REGISTRY",
    "ComputeLoss",
    "Detect",
    "DetectionModel",
    "ModelConfigError",
    "bbox_iou",
    "default_hyp",
    "layer_groups",
    "list_cfgs",
    "load_cfg",
    "load_hyp",
    "make_divisible_ceil",
    "parse_model",
    "register",
    "register_module",
    "scale_hyp",
]

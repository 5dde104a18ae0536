"""Load a pretrained classification backbone into a swapped YOLOv5 detector, and freeze it.

The commonest question in YOLOv5 backbone-swap threads is how to start from a pretrained
classifier instead of from scratch (ultralytics/yolov5 issue #6847 asks it of MobileNetV3). YOLOv5
itself transfers "all layers with matching names and shapes" from ``--weights`` (issue #4178),
which finds nothing in a classifier's keys. ``load_backbone`` copies a course classifier's weights (``course.models``) into the
detector's backbone rows, tensor by tensor, matched by **name and shape**; every tensor it does
not copy is reported with the reason, so nothing is silently left random.

Name mapping, classifier key → detector key (the detector's layers are ``model.<row>`` of its
YAML; ``course.yolo.backbones`` wraps the same ``course.blocks`` the classifiers use, so
below the row prefix the names agree):

* MobileNetV3 (``features.<i>``, stem ``features.0``, bnecks ``features.1..``) →
  ``model.<i>``: one YAML row per layer, in the paper's order. A stem written as YOLOv5's
  ``Conv`` (``model.0.conv`` / ``model.0.bn``, as in ``yolov5-mbv3s.yaml``) takes
  ``features.0.0`` / ``features.0.1``. The last 1x1 conv and ``classifier.*`` have no
  counterpart (the detector's neck starts there).
* ShuffleNetV2 (``conv1``, ``stage2..4``, each stage's first unit strides 2) →
  ``conv_bn_relu_maxpool`` at ``model.0.0``; the stride-2 unit of stage k at row ``2k - 3``
  and its other units at row ``2k - 2`` (``stage2.0`` → ``model.1``, ``stage2.j`` →
  ``model.2.<j-1>``; ``yolov5n-shufflenetv2.yaml`` lists each stage in two rows). ``conv5``
  and ``fc`` have no counterpart.

Other backbones can pass their own ``mapping``: ``(regex, replacement)`` pairs, tried in order,
the first whose result names a detector tensor wins. BatchNorm ``eps``/``momentum`` are module
settings, not tensors, so they are not copied (MobileNetV3's stem uses eps 1e-3, the detector's
wrapper PyTorch's 1e-5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from course.tables import text_table

MOBILENET_V3_MAPPING = (
    (r"^features\.0\.0\.", "model.0.conv."),
    (r"^features\.0\.1\.", "model.0.bn."),
    (r"^features\.(\d+)\.", r"model.\1."),
)
SHUFFLENET_V2_MAPPING = (
    (r"^conv1\.", "model.0.0."),
    (r"^stage2\.0\.", "model.1."), (r"^stage2\.(\d+)\.", lambda m: f"model.2.{int(m[1]) - 1}."),
    (r"^stage3\.0\.", "model.3."), (r"^stage3\.(\d+)\.", lambda m: f"model.4.{int(m[1]) - 1}."),
    (r"^stage4\.0\.", "model.5."), (r"^stage4\.(\d+)\.", lambda m: f"model.6.{int(m[1]) - 1}."),
)
MAPPINGS = {"mobilenet_v3": MOBILENET_V3_MAPPING, "shufflenet_v2": SHUFFLENET_V2_MAPPING}
CHECKPOINT_KEYS = ("model", "state_dict", "ema")  # where a checkpoint dict may keep its weights
MAX_LINES = 12  # shape-mismatch lines printed, one per module


@dataclass
class LoadReport:
    """What ``load_backbone`` did, tensor by tensor.

    ``loaded``: (detector key, source key). ``shape_mismatch``: (detector key, source key,
    detector shape, source shape), left random; it lists every tensor of a module in which
    any tensor differs in shape. ``missing_in_source``: backbone tensors of the
    detector that no source tensor maps to, left random. ``head``: neck and Detect tensors, left
    random by design. ``unused``: source tensors with no detector counterpart (classifier head).
    """

    mapping: str
    backbone_rows: int
    loaded: list[tuple[str, str]] = field(default_factory=list)
    shape_mismatch: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    missing_in_source: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per detector layer: tensors loaded and left random, and why."""
        per_layer: dict[int, dict] = {}

        def row(key):
            layer = _layer_index(key)
            return per_layer.setdefault(layer, dict(layer=layer, loaded=0, mismatch=0, missing=0, head=0))

        for dst, _ in self.loaded:
            row(dst)["loaded"] += 1
        for dst, *_ in self.shape_mismatch:
            row(dst)["mismatch"] += 1
        for dst in self.missing_in_source:
            row(dst)["missing"] += 1
        for dst in self.head:
            row(dst)["head"] += 1
        return [per_layer[k] for k in sorted(per_layer)]

    def __str__(self) -> str:
        table = text_table(self.rows(), {"layer": "layer", "loaded": "loaded", "mismatch": "shape mismatch",
                                         "missing": "missing in source", "head": "head/neck (random)"},
                           title=f"Backbone weights ({self.mapping} mapping, backbone = layers 0-{self.backbone_rows - 1})")
        lines = [table, f"loaded {len(self.loaded)} tensors; left random: {len(self.shape_mismatch)} shape mismatch, "
                        f"{len(self.missing_in_source)} missing in source, {len(self.head)} head/neck; "
                        f"{len(self.unused)} source tensors unused"]
        first = {}
        for dst, src, a, b in self.shape_mismatch:
            if a != b:
                first.setdefault(_module(dst), f"{dst} {a} vs source {src} {b}")
        shown = list(first.values())
        lines += [f"  shape mismatch: detector {line}" for line in shown[:MAX_LINES]]
        if len(shown) > MAX_LINES:
            lines.append(f"  ... and {len(shown) - MAX_LINES} more modules with a shape mismatch")
        if self.unused:
            prefixes = sorted({k.rsplit(".", 2)[0] for k in self.unused})
            lines.append(f"  unused source tensors under: {', '.join(prefixes)}")
        return "\n".join(lines)


def _layer_index(key: str) -> int:
    return int(key.split(".")[1])


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0]


def _state_dict(source) -> dict[str, torch.Tensor]:
    """A state dict from a module, a state dict, or a ``.pt`` path (read with ``weights_only=True``)."""
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"state_dict_or_path: no file at {str(source)!r}")
        source = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(source, dict):
            for key in CHECKPOINT_KEYS:
                if isinstance(source.get(key), dict):
                    source = source[key]
                    break
    if not isinstance(source, dict) or not all(isinstance(v, torch.Tensor) for v in source.values()):
        raise ValueError("state_dict_or_path must be an nn.Module, a dict of tensors, or a path to one "
                         f"(or to a checkpoint holding one under {list(CHECKPOINT_KEYS)}), got {type(source).__name__}")
    return source


def _guess_mapping(keys) -> str:
    """The mapping whose patterns match most source keys."""
    counts = {name: sum(any(re.match(p, k) for p, _ in rules) for k in keys) for name, rules in MAPPINGS.items()}
    return max(counts, key=counts.get)


def _translate(key: str, rules, target: dict) -> str | None:
    for pattern, repl in rules:
        if re.match(pattern, key):
            candidate = re.sub(pattern, repl, key, count=1)
            if candidate in target:
                return candidate
    return None


def backbone_rows(detector: nn.Module) -> int:
    """How many of the detector's ``model.<i>`` layers its YAML lists under ``backbone``."""
    cfg = getattr(detector, "yaml", None)
    if not isinstance(cfg, dict) or "backbone" not in cfg:
        raise ValueError(f"detector must be a course.yolo DetectionModel (with a .yaml backbone), "
                         f"got {type(detector).__name__}")
    return len(cfg["backbone"])


def load_backbone(detector: nn.Module, state_dict_or_path, mapping="auto", verbose: bool = True) -> LoadReport:
    """Copy a classifier's backbone weights into ``detector`` in place; return (and print) the report.

    ``state_dict_or_path``: a course classifier (``course.models.MobileNetV3`` / ``ShuffleNetV2``),
    its ``state_dict()``, or a ``.pt`` file of either (a checkpoint dict with the weights under
    ``model``/``state_dict``/``ema`` also works). ``mapping``: ``"auto"``, a name in ``MAPPINGS``,
    or ``(regex, replacement)`` pairs. A tensor is copied only when its mapped name is a backbone
    tensor of the detector with the same shape; raises ``ValueError`` when none is.
    """
    n_backbone = backbone_rows(detector)
    source = _state_dict(state_dict_or_path)
    if not source:
        raise ValueError("state_dict_or_path holds no tensors: nothing to load")
    if mapping == "auto":
        mapping = _guess_mapping(source)
    if isinstance(mapping, str):
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping must be 'auto', one of {list(MAPPINGS)} or (regex, replacement) pairs, "
                             f"got {mapping!r}")
        name, rules = mapping, MAPPINGS[mapping]
    else:
        rules = tuple(mapping)
        if not rules or not all(isinstance(r, (tuple, list)) and len(r) == 2 for r in rules):
            raise ValueError(f"mapping must be 'auto', one of {list(MAPPINGS)} or (regex, replacement) pairs, "
                             f"got {mapping!r}")
        name = "custom"

    target = detector.state_dict()
    backbone = {k: v for k, v in target.items() if _layer_index(k) < n_backbone}
    report = LoadReport(mapping=name, backbone_rows=n_backbone,
                        head=[k for k in target if k not in backbone])
    pairs = {}
    for src_key in source:
        dst_key = _translate(src_key, rules, backbone)
        if dst_key is None:
            report.unused.append(src_key)
        else:
            pairs[dst_key] = src_key
    # A module loads whole or not at all: a BatchNorm whose weights differ in shape keeps its own
    # num_batches_tracked too, and is reported with its shape mismatch.
    bad_modules = {_module(d) for d, s in pairs.items() if source[s].shape != backbone[d].shape}
    copies = {}
    for dst_key, src_key in pairs.items():
        if _module(dst_key) in bad_modules:
            report.shape_mismatch.append((dst_key, src_key, tuple(backbone[dst_key].shape),
                                          tuple(source[src_key].shape)))
        else:
            copies[dst_key] = source[src_key]
            report.loaded.append((dst_key, src_key))
    report.missing_in_source = [k for k in backbone if k not in pairs]
    if not copies:
        raise ValueError(f"no tensor of state_dict_or_path matches a backbone tensor of the detector by name and "
                         f"shape ({name} mapping: {len(report.shape_mismatch)} names matched with other shapes, "
                         f"{len(report.unused)} unmatched; first source keys {list(source)[:3]})")
    with torch.no_grad():
        for dst_key, tensor in copies.items():
            target[dst_key].copy_(tensor)
    if verbose:
        print(report)
    return report


def freeze_backbone(detector: nn.Module, n_layers: int | None = None) -> list[str]:
    """Stop gradients to layers ``model.0 .. model.<n_layers - 1>`` (default: the whole backbone).

    As YOLOv5's ``train.py --freeze``: only ``requires_grad`` changes, so BatchNorm statistics
    still update in train mode. Returns the names of the frozen parameters.
    """
    n_backbone = backbone_rows(detector)
    n_layers = n_backbone if n_layers is None else n_layers
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 1 <= n_layers <= len(detector.model):
        raise ValueError(f"n_layers must be None or an int in 1..{len(detector.model)}, got {n_layers!r}")
    frozen = []
    for pname, p in detector.named_parameters():
        if _layer_index(pname) < n_layers:
            p.requires_grad_(False)
            frozen.append(pname)
    return frozen


def unfreeze(detector: nn.Module) -> None:
    """Let every parameter of ``detector`` train again."""
    for p in detector.parameters():
        p.requires_grad_(True)

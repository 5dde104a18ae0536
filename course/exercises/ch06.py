"""Checks for chapter 06 (YOLOv5 backbone swap): a swapped head, width scaling, renumbering ``from``,
defining and registering a backbone stage."""

from __future__ import annotations

import copy

import torch
import yaml
from torch import nn

from ..blocks import DepthwiseSeparableConv
from ..yolo import DetectionModel, ModelConfigError, load_cfg, parse_model
from ..yolo.cfg_edit import insert_layer, replace_backbone
from ..yolo.model import detect_levels
from ..yolo.registry import REGISTRY
from . import ExerciseFailed, assert_same_outputs, exercise

MBV3_BACKBONE = copy.deepcopy(load_cfg("yolov5n-mobilenetv3small.yaml")["backbone"])
MBV3_TAPS = {4: 3, 6: 8}  # yolov5n's P3 (layer 4) and P4 (layer 6) -> MobileNetV3-Small layers 3 and 8


def _as_cfg(cfg) -> dict:
    if callable(cfg):
        cfg = cfg()  # the learner's function: a NotImplementedError here reads "not done yet"
    if isinstance(cfg, str):
        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError as e:
            raise ExerciseFailed(f"the YAML string does not parse: {e}") from None
    if not isinstance(cfg, dict):
        raise ExerciseFailed(f"expected a model config (a dict or a YAML string), got {type(cfg).__name__}")
    return copy.deepcopy(cfg)


def _build(cfg: dict) -> DetectionModel:
    try:
        return DetectionModel(cfg)
    except (ModelConfigError, ValueError) as e:
        raise ExerciseFailed(f"the config does not build: {e}") from None


def _norm(x):
    """YAML's ``None`` and the string "None" mean the same to ``parse_model``."""
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    return "None" if x is None else x


def _first_row_difference(got: list, want: list, offset: int) -> str:
    for i, (g, w) in enumerate(zip(got, want), offset):
        if _norm(g) != _norm(w):
            return f"layer {i} is {list(g)}, expected {list(w)}"
    return f"{len(got)} rows, expected {len(want)}"


@exercise("6.1", "The YAML rows of a backbone swap", points=2)
def _check_swap(cfg):
    d = _as_cfg(cfg)
    want = replace_backbone("yolov5n.yaml", MBV3_BACKBONE, MBV3_TAPS)
    model = _build(d)
    strides = [int(s) for s in model.stride.tolist()]
    if strides != [8, 16, 32]:
        raise ExerciseFailed(f"Detect sees strides {strides}, expected [8, 16, 32]: its `from` must be the C3 "
                             "layers ending the P3, P4 and P5 paths, in that order")
    levels = detect_levels(model)
    channels = [lv["channels"] for lv in levels]
    if channels != [64, 128, 256]:
        raise ExerciseFailed(f"Detect inputs have {channels} channels, expected [64, 128, 256] (YOLOv5n's head "
                             "widths written out at width_multiple 1.0: 256*0.25, 512*0.25, 1024*0.25)")
    if _norm(d.get("backbone")) != _norm(want["backbone"]):
        raise ExerciseFailed("keep the given MobileNetV3-Small backbone rows unchanged: "
                             + _first_row_difference(d.get("backbone", []), want["backbone"], 0))
    if _norm(d.get("head")) != _norm(want["head"]):
        raise ExerciseFailed("the model builds with the right strides but the head differs from YOLOv5n's: "
                             + _first_row_difference(d.get("head", []), want["head"], len(want["backbone"]))
                             + " (the P4 Concat must read layer 8, the last stride-16 layer; P3 reads layer 3)")
    return f"builds, strides {strides}, Detect inputs {channels} channels from layers {[lv['layer'] for lv in levels]}"


def scaled_channels_reference(c2: int, width_multiple: float, divisor: int = 8) -> int:
    """What ``parse_model`` builds for a scaled layer asking for ``c2`` channels."""
    d = {"nc": 1, "depth_multiple": 1.0, "width_multiple": width_multiple, "channel_multiple": divisor,
         "anchors": [[10, 13, 16, 30, 33, 23]], "backbone": [[-1, 1, "Conv", [c2, 3, 2]]], "head": []}
    layers, _ = parse_model(d)
    return layers[0].args[1]


@exercise("6.2", "Output channels under width_multiple", points=1)
def _check_channels(scaled_channels):
    cases = [(64, 0.25, 8), (1024, 0.25, 8), (116, 1.0, 8), (116, 1.0, 4), (16, 0.25, 8), (100, 0.33, 8),
             (24, 0.5, 8), (232, 1.0, 8), (1024, 0.75, 8)]
    for c2, gw, div in cases:
        want = scaled_channels_reference(c2, gw, div)
        got = scaled_channels(c2, gw, div)
        if got != want:
            hint = ""
            if got == round(c2 * gw):
                hint = " (YOLOv5 rounds *up* to a multiple of the divisor: ceil(c2*gw/divisor)*divisor)"
            elif isinstance(got, (int, float)) and got == int(c2 * gw) // div * div:
                hint = " (that rounds down; YOLOv5 rounds up)"
            raise ExerciseFailed(f"scaled_channels({c2}, {gw}, {div}) returned {got!r}, parse_model builds {want}{hint}")
    return f"{len(cases)} cases match parse_model (116 at width 1.0 -> {scaled_channels(116, 1.0, 8)})"


@exercise("6.3", "Renumber `from` after inserting a layer", points=2)
def _check_insert(insert):
    cases = [("yolov5n.yaml", 5, [-1, 1, "Conv", [256, 1, 1]]),  # into the backbone, after P3 (layer 4)
             ("yolov5n.yaml", 13, [-1, 1, "Conv", [256, 1, 1]]),  # into the head
             ("yolov5n-shufflenetv2.yaml", 3, [-1, 1, "Shuffle_Block", [116, 1]])]
    for cfg, index, row in cases:
        want = insert_layer(cfg, index, row)
        got = insert(load_cfg(cfg), index, list(row))
        if not isinstance(got, dict):
            raise ExerciseFailed(f"insert(...) must return the new config dict, got {type(got).__name__}")
        nb = len(want["backbone"])
        got_rows = list(got.get("backbone", [])) + list(got.get("head", []))
        want_rows = want["backbone"] + want["head"]
        if _norm(got_rows) != _norm(want_rows):
            raise ExerciseFailed(f"{cfg}, inserting {row} at {index}: " + _first_row_difference(got_rows, want_rows, 0)
                                 + " (every absolute `from` >= the insertion index moves up by one; -1 stays)")
        if len(got.get("backbone", [])) != nb:
            raise ExerciseFailed(f"{cfg}, inserting at {index}: the backbone should have {nb} rows, got "
                                 f"{len(got.get('backbone', []))}")
        model = _build(got)
        if [int(s) for s in model.stride.tolist()] != [8, 16, 32]:
            raise ExerciseFailed(f"{cfg}, inserting at {index}: strides {model.stride.tolist()}, expected [8, 16, 32]")
    return f"{len(cases)} insertions renumbered correctly; every model builds with strides [8, 16, 32]"


DS_STAGE = "DSStage"
DS_BACKBONE = [[-1, 1, "Conv", [16, 3, 2]],        # 0  P1/2
               [-1, 1, DS_STAGE, [32, 1]],          # 1  P2/4
               [-1, 1, DS_STAGE, [64, 2]],          # 2  P3/8
               [-1, 1, DS_STAGE, [128, 3]],         # 3  P4/16
               [-1, 1, DS_STAGE, [256, 1]]]         # 4  P5/32
DS_TAPS = {4: 2, 6: 3}


def _depthwise(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels]


@exercise("6.4", "Define and register a backbone stage", points=2)
def _check_define_register(stage_cls, register_stage):
    register_stage()  # the learner's function: a NotImplementedError here reads "not done yet"
    spec = REGISTRY.get(DS_STAGE)
    if spec is None or spec.cls is not stage_cls:
        found = "nothing" if spec is None else spec.cls.__name__
        raise ExerciseFailed(f"after register_stage(), the YAML name {DS_STAGE!r} maps to {found}: register your class "
                             f"with course.yolo.register_module({DS_STAGE!r}, {getattr(stage_cls, '__name__', stage_cls)})")
    if spec.channels != "scaled" or spec.repeat_inside:
        raise ExerciseFailed(f"registered with channels={spec.channels!r}, repeat_inside={spec.repeat_inside}: a stage "
                             "changes width, so parse_model must prepend c1 and scale args[0] (channels='scaled', "
                             "the default), and n is the stage's own argument, not a repeat")
    torch.manual_seed(0)
    for c1, c2, n in ((16, 32, 3), (24, 40, 1)):
        stage = stage_cls(c1, c2, n)
        ref = nn.Sequential(DepthwiseSeparableConv(c1, c2, 2), *(DepthwiseSeparableConv(c2, c2) for _ in range(n - 1)))
        dw = _depthwise(stage)
        if len(dw) != n:
            raise ExerciseFailed(f"{stage_cls.__name__}({c1}, {c2}, {n}) holds {len(dw)} depthwise convs, expected {n} "
                                 "(one per DepthwiseSeparableConv)")
        x = torch.randn(2, c1, 16, 16)
        assert_same_outputs(stage, ref, x, where=f"{stage_cls.__name__}({c1}, {c2}, {n})",
                            order="DepthwiseSeparableConv(c1, c2, 2), then n - 1 of DepthwiseSeparableConv(c2, c2)",
                            hint="only the first unit has stride 2 and changes the width")
    model = _build(replace_backbone("yolov5n.yaml", DS_BACKBONE, DS_TAPS))
    strides = [int(s) for s in model.stride.tolist()]
    if strides != [8, 16, 32]:
        raise ExerciseFailed(f"YOLOv5n with a {DS_STAGE} backbone sees strides {strides}, expected [8, 16, 32]: "
                             "each stage must halve the map once")
    stages = [i for i, m in enumerate(model.model) if isinstance(m, stage_cls)]
    return (f"registered as {DS_STAGE!r}; layers {stages} of YOLOv5n's new backbone are your stages; strides {strides}; "
            f"Detect reads {[lv['channels'] for lv in detect_levels(model)]} channels")

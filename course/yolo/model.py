"""YOLOv5 (v6/v7 layout) built from a model YAML, written from scratch.

Mirrors `ultralytics/yolov5:models/yolo.py` (``parse_model``, ``DetectionModel``) at tag v7.0,
with one deliberate difference: the YAML is data. Module names are looked up in the registry
(``course.yolo.registry``), and only the tokens ``nc``, ``anchors`` and ``None`` are substituted
in ``args``; nothing from the file is ``eval``'d.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import logging
import math
from pathlib import Path

import torch
import yaml
from torch import nn

from course.deploy.bnfold import fuse_conv_bn as fuse_conv_and_bn

from . import backbones  # noqa: F401  (registers the backbone-swap blocks)
from .common import Conv, Detect
from .registry import ModelConfigError, lookup

LOGGER = logging.getLogger(__name__)
CFG_DIR = Path(__file__).parent / "cfg"
PROBE_SIZE = 256  # as yolov5: any multiple of the largest stride gives the same strides

ACTIVATIONS = {
    name: getattr(nn, name)
    for name in ("SiLU", "ReLU", "ReLU6", "LeakyReLU", "Hardswish", "Mish", "GELU", "Sigmoid", "Identity")
}


def make_divisible_ceil(x: float, divisor: int) -> int:
    """Smallest multiple of ``divisor`` that is >= x: YOLOv5 rounds channels *up* (116 -> 120).

    YOLOv5's ``utils.general.make_divisible``; the MobileNets round to the nearest multiple
    instead (``course.blocks.make_divisible_round``).
    """
    return math.ceil(x / divisor) * divisor


def list_cfgs() -> list[str]:
    """Model YAMLs shipped in ``course/yolo/cfg``."""
    return sorted(p.name for p in CFG_DIR.glob("*.yaml") if not p.name.startswith("hyp"))


def load_cfg(cfg: str | Path | dict) -> dict:
    """A model config as a fresh dict: a dict, a YAML path, or the name of a shipped YAML."""
    if isinstance(cfg, dict):
        return copy.deepcopy(cfg)
    if not isinstance(cfg, (str, Path)):
        raise ValueError(f"cfg={cfg!r}; expected a dict, a YAML path or one of {list_cfgs()}")
    path = Path(cfg)
    if not path.is_file():
        shipped = CFG_DIR / path.name
        path = shipped if shipped.is_file() else shipped.with_suffix(".yaml")
    if not path.is_file():
        raise ValueError(f"cfg={str(cfg)!r}: no such file; shipped configs: {list_cfgs()}")
    with open(path) as f:
        d = yaml.safe_load(f)
    if not isinstance(d, dict):
        raise ValueError(f"cfg={str(cfg)!r}: expected a YAML mapping, got {type(d).__name__}")
    d.setdefault("yaml_file", path.name)
    return d


def parse_activation(spec: str) -> nn.Module:
    """``'nn.ReLU()'``, ``'LeakyReLU(0.1)'`` or ``'SiLU'`` -> module, parsed with ``ast`` (never eval'd)."""
    allowed = ", ".join(ACTIVATIONS)
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except (SyntaxError, AttributeError):
        raise ValueError(f"activation={spec!r}: not of the form 'nn.Name(args)'; allowed names: {allowed}")
    call = node if isinstance(node, ast.Call) else None
    func = call.func if call else node
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "nn":
        name = func.attr
    elif isinstance(func, ast.Name):
        name = func.id
    else:
        name = None
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={spec!r}: unknown activation; allowed names: {allowed}")
    try:
        args = [ast.literal_eval(a) for a in call.args] if call else []
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords} if call else {}
        return ACTIVATIONS[name](*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise ValueError(f"activation={spec!r}: arguments must be literals that nn.{name} accepts ({e})")


@contextlib.contextmanager
def _default_activation(act: nn.Module | None):
    """Swap ``Conv.default_act`` while one model is built (yolov5 sets it and never restores it)."""
    old = Conv.default_act
    if act is not None:
        Conv.default_act = act
    try:
        yield
    finally:
        Conv.default_act = old


def _check_cfg(d: dict) -> list:
    """Validate a model dict before anything is built; return its layer rows."""
    for key in ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head"):
        if key not in d:
            raise ModelConfigError(f"cfg: missing key {key!r}; a model YAML needs nc, depth_multiple, "
                                   "width_multiple, anchors, backbone, head")
    if not isinstance(d["nc"], int) or isinstance(d["nc"], bool) or d["nc"] < 1:
        raise ModelConfigError(f"cfg: nc={d['nc']!r}; expected an integer >= 1")
    for key in ("depth_multiple", "width_multiple"):
        if not isinstance(d[key], (int, float)) or d[key] <= 0:
            raise ModelConfigError(f"cfg: {key}={d[key]!r}; expected a number > 0")
    anchors = d["anchors"]
    if isinstance(anchors, int):
        if anchors < 1:
            raise ModelConfigError(f"cfg: anchors={anchors}; expected anchors per level >= 1 or a list of levels")
    elif not (isinstance(anchors, list) and anchors and all(
            isinstance(a, list) and a and len(a) % 2 == 0 and len(a) == len(anchors[0]) for a in anchors)):
        raise ModelConfigError(f"cfg: anchors={anchors!r}; expected an int (anchors per level) or a list of "
                               "levels, each [w1,h1, w2,h2, ...] with the same number of anchors")
    rows = list(d["backbone"]) + list(d["head"])
    for i, row in enumerate(rows):
        if not (isinstance(row, (list, tuple)) and len(row) == 4):
            raise ModelConfigError(f"layer {i}: {row!r}; expected [from, number, module, args]")
        f, n, name, args = row
        spec = lookup(name, i)
        if not isinstance(n, int) or n < 1:
            raise ModelConfigError(f"layer {i} ({name}): number={n!r}; expected an integer >= 1")
        if not isinstance(args, list):
            raise ModelConfigError(f"layer {i} ({name}): args={args!r}; expected a list")
        froms = [f] if isinstance(f, int) else f
        if not (isinstance(froms, list) and froms and all(isinstance(j, int) for j in froms)):
            raise ModelConfigError(f"layer {i} ({name}): from={f!r}; expected -1, a layer index or a list")
        for j in froms:
            if (i == 0 and j != -1) or not (-i <= j < i or j == -1):
                raise ModelConfigError(f"layer {i} ({name}): from={f!r} points at layer {j}, which is not an "
                                       f"earlier layer (allowed: -1 or 0..{i - 1}); were layers inserted or "
                                       "removed above it without renumbering?")
        many = spec.channels in ("sum", "same_width", "detect")
        if many != isinstance(f, list):
            raise ModelConfigError(f"layer {i} ({name}): from={f!r}; expected "
                                   f"{'a list of layers' if many else 'one layer index'}")
        if spec.channels == "detect" and isinstance(anchors, list) and len(anchors) != len(f):
            raise ModelConfigError(f"layer {i} (Detect): from={f} has {len(f)} inputs but anchors has "
                                   f"{len(anchors)} levels; give one anchor row per input (or anchors: 3)")
    return rows


def parse_model(d: dict, ch: int = 3) -> tuple[nn.Sequential, list[int]]:
    """Build the layers of a model dict; return (layers, save) as yolov5's ``parse_model`` does.

    ``save`` lists the layers whose outputs later rows read (``from`` other than -1). Each layer
    gets attributes ``i`` (index), ``f`` (from), ``n`` (repeats after depth scaling), ``type``
    (YAML name) and ``args`` (the constructor args after channel insertion and scaling).
    """
    rows = _check_cfg(d)
    act = parse_activation(d["activation"]) if d.get("activation") else None
    nc, gd, gw = d["nc"], d["depth_multiple"], d["width_multiple"]
    ch_mul = d.get("channel_multiple", 8)
    anchors = d["anchors"]
    na = len(anchors[0]) // 2 if isinstance(anchors, list) else anchors
    no = na * (nc + 5)
    tokens = {"nc": nc, "anchors": anchors, "None": None}

    layers, save, chs = [], [], [ch]
    with _default_activation(act):
        for i, (f, n, name, args) in enumerate(rows):
            spec = lookup(name, i)
            args = [tokens.get(a, a) if isinstance(a, str) else a for a in args]
            n = n_ = max(round(n * gd), 1) if n > 1 else n
            if spec.channels == "scaled":
                c1, c2 = chs[f], args[0]
                if c2 != no:
                    c2 = make_divisible_ceil(c2 * gw, ch_mul)
                args = [c1, c2, *args[1:]]
                if spec.repeat_inside:
                    args.insert(2, n)
                    n = 1
                elif n > 1:
                    stride = args[spec.stride_arg] if spec.stride_arg is not None and len(args) > spec.stride_arg \
                        else 1
                    if c1 != c2 or stride != 1:
                        raise ModelConfigError(
                            f"layer {i} ({name}): repeated {n} times with c1={c1}, c2={c2}, stride={stride}; "
                            "every repeat gets the same args, so only c1 == c2 at stride 1 can repeat. Put the "
                            "block that changes width or stride on its own row")
            elif spec.channels == "sum":
                c2 = sum(chs[j] for j in f)
            elif spec.channels == "same_width":
                widths = [chs[j] for j in f]
                if len(set(widths)) != 1:
                    raise ModelConfigError(f"layer {i} ({name}): from={f} gives maps of {widths} channels; "
                                           "all inputs must have the same width")
                c2 = widths[0]
            elif spec.channels == "detect":
                args = [args[0], args[1], [chs[j] for j in f]]
                if isinstance(args[1], int):
                    args[1] = [list(range(args[1] * 2))] * len(f)
            else:
                c2 = chs[f]

            try:
                m = nn.Sequential(*(spec.cls(*args) for _ in range(n))) if n > 1 else spec.cls(*args)
            except (TypeError, ValueError) as e:
                raise ModelConfigError(f"layer {i} ({name}, args {args}): {e}") from e
            m.i, m.f, m.n, m.type, m.args = i, f, n_, name, args
            save.extend(j % i for j in ([f] if isinstance(f, int) else f) if j != -1)
            layers.append(m)
            if i == 0:
                chs = []
            chs.append(c2)
    return nn.Sequential(*layers), sorted(set(save))


class DetectionModel(nn.Module):
    """A YOLOv5 detector from a model YAML (``yolov5s.yaml``, ``yolov5n-shufflenetv2.yaml``, a dict, a path).

    On construction it runs yolov5's set-up: a 256x256 zero forward gives each Detect level its
    stride, anchors are put in the same order as the strides and converted to grid units, and
    the Detect biases are primed (objectness for ~8 objects per 640 image, class for p=0.6/nc).
    """

    def __init__(self, cfg: str | Path | dict = "yolov5s.yaml", ch: int = 3, nc: int | None = None,
                 anchors: list | int | None = None):
        super().__init__()
        if not isinstance(ch, int) or isinstance(ch, bool) or ch < 1:
            raise ValueError(f"ch={ch!r}; expected the number of input channels, an integer >= 1")
        if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
            raise ValueError(f"nc={nc!r}; expected None (keep the YAML's) or an integer >= 1")
        self.yaml = load_cfg(cfg)
        if nc is not None and nc != self.yaml.get("nc"):
            LOGGER.info("Overriding model.yaml nc=%s with nc=%s", self.yaml.get("nc"), nc)
            self.yaml["nc"] = nc
        if anchors is not None:
            self.yaml["anchors"] = anchors
        self.model, self.save = parse_model(self.yaml, ch)
        self.nc = self.yaml["nc"]
        self.names = [str(i) for i in range(self.nc)]

        m = self.model[-1]
        if not isinstance(m, Detect):
            raise ModelConfigError(f"layer {m.i} ({m.type}): a detection model's last row must be Detect")
        m.stride.copy_(self._probe_strides(ch))
        self._check_anchor_order()
        m.anchors /= m.stride.view(-1, 1, 1)
        self._initialize_biases()
        initialize_weights(self)

    @property
    def stride(self) -> torch.Tensor:
        return self.model[-1].stride

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, name_errors: bool = False):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            try:
                x = m(x)
            except (RuntimeError, ValueError) as e:
                if not name_errors:
                    raise
                shapes = [tuple(t.shape) for t in x] if isinstance(x, list) else tuple(x.shape)
                raise ModelConfigError(f"layer {m.i} ({m.type}, from={m.f}) failed on input {shapes}: {e}. "
                                       "Do its `from` layers have the channels and sizes it expects?") from e
            y.append(x if m.i in self.save else None)
        return x

    def _probe_strides(self, ch: int) -> torch.Tensor:
        """Stride of each Detect input = probe size / its map size (BN statistics left untouched)."""
        was_training = self.training
        self.train()
        try:
            with torch.no_grad():
                maps = self._forward(torch.zeros(1, ch, PROBE_SIZE, PROBE_SIZE), name_errors=True)
        finally:
            self.train(was_training)
        for mod in self.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
        strides = [PROBE_SIZE / p.shape[-2] for p in maps]
        if any(a >= b for a, b in zip(strides, strides[1:])):
            m = self.model[-1]
            raise ModelConfigError(f"layer {m.i} (Detect): from={m.f} gives strides {strides}; Detect needs "
                                   "increasing strides (P3/8, P4/16, P5/32) in that order")
        return torch.tensor(strides)

    def _check_anchor_order(self) -> None:
        """Flip anchor levels if mean anchor area and stride order disagree (yolov5 check_anchor_order)."""
        m = self.model[-1]
        area = m.anchors.prod(-1).mean(-1)
        da, ds = area[-1] - area[0], m.stride[-1] - m.stride[0]
        if da and da.sign() != ds.sign():
            LOGGER.info("Reversing anchor order")
            m.anchors.copy_(m.anchors.flip(0))

    def _initialize_biases(self) -> None:
        """Focal-loss style prior (RetinaNet section 3.3): start with few objects and low class scores."""
        m = self.model[-1]
        with torch.no_grad():
            for conv, s in zip(m.m, m.stride):
                b = conv.bias.view(m.na, -1)
                b[:, 4] += math.log(8 / (640 / s.item()) ** 2)
                b[:, 5:5 + m.nc] += math.log(0.6 / (m.nc - 0.99999))

    def fuse(self) -> DetectionModel:
        """Fold BatchNorm into every ``Conv`` (yolov5's ``fuse``); for inference and FLOP counts only."""
        for mod in self.modules():
            if isinstance(mod, Conv) and isinstance(mod.bn, nn.BatchNorm2d):
                mod.conv = fuse_conv_and_bn(mod.conv, mod.bn)
                mod.bn = nn.Identity()
        return self

    def info(self, print_fn=print) -> str:
        """Print and return the per-layer table yolov5 prints while building (from, n, params, module, args)."""
        lines = [f"{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<24}arguments"]
        for m in self.model:
            args = [m.nc, f"{m.nl}x{m.na} anchors", m.args[2]] if isinstance(m, Detect) else m.args
            n_params = sum(p.numel() for p in m.parameters())
            lines.append(f"{m.i:>3}{str(m.f):>18}{m.n:>3}{n_params:>10,}  {m.type:<24}{args}")
        total = sum(p.numel() for p in self.parameters())
        lines.append(f"{len(self.model)} layers, {total:,} parameters, strides {self.stride.tolist()}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def layer_groups(model: DetectionModel) -> dict[str, int]:
    """Parameters of the YAML's backbone rows, of the neck (the other head rows) and of Detect."""
    if not isinstance(model, DetectionModel):
        raise ValueError(f"model={type(model).__name__}; expected a DetectionModel")
    n_backbone = len(model.yaml["backbone"])
    counts = [sum(p.numel() for p in m.parameters()) for m in model.model]
    return {"backbone": sum(counts[:n_backbone]), "neck": sum(counts[n_backbone:-1]), "head": counts[-1]}


def _layer_outputs(model: DetectionModel, size: int = 256) -> list[torch.Tensor]:
    outs = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in model.model]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return outs


def layer_table(model: DetectionModel, size: int = 256) -> list[dict]:
    """Per layer: index, from, module, output channels and stride (from a probe of ``size`` pixels)."""
    rows = []
    for m, out in zip(model.model, _layer_outputs(model, size)):
        if isinstance(out, torch.Tensor):
            rows.append(dict(i=m.i, f=m.f, type=m.type, channels=out.shape[1], stride=size // out.shape[-1]))
        else:
            rows.append(dict(i=m.i, f=m.f, type=m.type, channels=None, stride=None))
    return rows


def detect_levels(model: DetectionModel, size: int = 256) -> list[dict]:
    """Each Detect input: the layer it reads, that layer's module, channels and measured stride."""
    table = layer_table(model, size)
    return [dict(level=f"P{k + 3}", layer=j, module=table[j]["type"], channels=table[j]["channels"],
                 stride=table[j]["stride"]) for k, j in enumerate(model.model[-1].f)]


def initialize_weights(model: nn.Module) -> None:
    """yolov5's BatchNorm settings: eps 1e-3, momentum 0.03 (TF-style 0.97 decay)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
            m.momentum = 0.03

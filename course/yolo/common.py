"""The layers of YOLOv5 v6/v7 (`ultralytics/yolov5:models/common.py`, `models/yolo.py`), from scratch.

Constructors take the input channels first (``c1``) because ``parse_model`` prepends them;
structure and parameter counts match the public code exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .registry import register


def autopad(k: int, p: int | None = None, d: int = 1) -> int:
    """'Same' padding for an odd kernel ``k`` with dilation ``d``."""
    if p is not None:
        return p
    k = d * (k - 1) + 1 if d > 1 else k
    return k // 2


@register("Conv", stride_arg=3)
class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm + activation: the CBS unit of YOLOv5.

    ``act=True`` takes ``Conv.default_act`` (SiLU); a model YAML's ``activation`` key swaps it
    for the whole model while that model is built (see ``model.parse_model``).
    """

    default_act: nn.Module = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        if act is True:
            self.act = copy.deepcopy(self.default_act)
        elif isinstance(act, nn.Module):
            self.act = act
        else:
            self.act = nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


@register("Bottleneck")
class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 restore, residual add when shapes allow (ResNet bottleneck, CSP inner unit)."""

    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register("C3", repeat_inside=True)
class C3(nn.Module):
    """CSP bottleneck with 3 convs: half the channels go through ``n`` Bottlenecks, half skip them.

    ``n`` is the YAML's repeat count after depth scaling: the repeats live *inside* this block.
    """

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register("SPPF")
class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained k x k max-pools equal SPP's k, 2k-1, 3k-2 pools."""

    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


@register("Concat", channels="sum")
class Concat(nn.Module):
    """Concatenate a list of feature maps along ``dimension`` (channels)."""

    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


@register("ADD", channels="same_width")
class Add(nn.Module):
    """YOLOv5-Lite's ``ADD``: ``x1 + alpha * x2``, a parameter-free merge for equal-width maps.

    v5Lite-e passes ``[1]``, so there it is a plain sum.
    """

    def __init__(self, alpha=0.5):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return torch.add(x[0], x[1], alpha=self.alpha)


@register("Detect", channels="detect")
class Detect(nn.Module):
    """YOLOv5 head: one 1x1 conv per level predicting ``na`` anchors x (4 box + 1 obj + nc cls).

    Training returns the raw maps, shaped (bs, na, ny, nx, no). Inference also returns the
    decoded boxes in pixels (bs, sum(na*ny*nx), no):
    xy = (2*sigmoid(t) - 0.5 + cell) * stride, wh = (2*sigmoid(t))**2 * anchor, so a box's
    centre may sit up to half a cell outside its cell and its size is at most 4x its anchor.
    ``anchors`` are stored in grid units (pixels / stride) once the model knows its strides.
    """

    def __init__(self, nc, anchors, ch):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2))
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, x):
        raw = []
        for i, conv in enumerate(self.m):
            p = conv(x[i])
            bs, _, ny, nx = p.shape
            raw.append(p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        if self.training:
            return raw
        return torch.cat([self.decode(p, i).flatten(1, 3) for i, p in enumerate(raw)], 1), raw

    def decode(self, p: torch.Tensor, i: int) -> torch.Tensor:
        """Raw level-``i`` map (bs, na, ny, nx, no) -> boxes (cx, cy, w, h in pixels), obj, cls probabilities."""
        ny, nx = p.shape[2:4]
        yv, xv = torch.meshgrid(
            torch.arange(ny, device=p.device, dtype=p.dtype),
            torch.arange(nx, device=p.device, dtype=p.dtype),
            indexing="ij",
        )
        grid = torch.stack((xv, yv), -1) - 0.5  # (ny, nx, 2); the -0.5 makes 2*sigmoid - 0.5
        anchor_px = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2)
        xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), -1)
        xy = (xy * 2 + grid) * self.stride[i]
        wh = (wh * 2) ** 2 * anchor_px
        return torch.cat((xy, wh, conf), -1)

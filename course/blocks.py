"""The building blocks of MobileNet V1/V2/V3 and ShuffleNet V1/V2, written from the papers.

Each block does one job and is named after the paper that introduced it. The module
order inside each block follows torchvision, so a torchvision state dict lists the
same tensors in the same order as ours (see ``course.models.load_torchvision_weights``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .validate import check_choice, check_int

__all__ = [
    "make_divisible_round",
    "ConvBNAct",
    "DepthwiseSeparableConv",
    "InvertedResidual",
    "HardSigmoid",
    "HardSwish",
    "SqueezeExcitation",
    "InvertedResidualV3",
    "channel_shuffle",
    "ChannelShuffle",
    "ShuffleV1Unit",
    "ShuffleV2Block",
]


def _check_divisible(name: str, channels: int, groups: int, groups_name: str = "groups") -> None:
    if channels % groups:
        raise ValueError(
            f"{name}={channels} is not divisible by {groups_name}={groups}; "
            f"allowed: a multiple of {groups} (e.g. {channels - channels % groups or groups} "
            f"or {channels + groups - channels % groups})"
        )


def make_divisible_round(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the *nearest* multiple of ``divisor``, never below 90 % of ``v``.

    The rule of the TF-slim MobileNet code, kept by the V2/V3 papers and torchvision
    (``torchvision.models._utils._make_divisible``), so width multipliers produce
    hardware-friendly channel counts. YOLOv5 rounds *up* instead:
    ``course.yolo.model.make_divisible_ceil``.
    """
    if v <= 0:
        raise ValueError(f"v must be positive, got {v!r}")
    check_int("divisor", divisor)
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v




class ConvBNAct(nn.Sequential):
    """Convolution → batch norm → activation: the unit every efficient network is made of.

    ``activation=None`` gives a linear layer (MobileNet V2's projection). Padding keeps the
    spatial size at stride 1. Children are indexed 0, 1, 2 like torchvision's
    ``Conv2dNormActivation``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: Callable[..., nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("stride", stride), ("groups", groups)):
            check_int(name, value)
        _check_divisible("in_channels", in_channels, groups)
        _check_divisible("out_channels", out_channels, groups)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True) if _takes_inplace(activation) else activation())
        super().__init__(*layers)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride


def _takes_inplace(activation: Callable[..., nn.Module]) -> bool:
    return activation in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)


class DepthwiseSeparableConv(nn.Sequential):
    """MobileNet V1 (Sec. 3.1): a 3×3 depthwise conv filters, a 1×1 pointwise conv combines.

    Costs D_K²·M·D_F² + M·N·D_F² instead of D_K²·M·N·D_F², i.e. 1/N + 1/D_K² of a full conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels),  # depthwise
            ConvBNAct(in_channels, out_channels, 1),  # pointwise
        )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride


class InvertedResidual(nn.Module):
    """MobileNet V2 bottleneck (Table 1): expand ×t with ReLU6, depthwise 3×3, then a *linear* 1×1.

    The residual joins the thin ends (Sec. 3.3), and only when the shapes allow it:
    stride 1 and as many channels out as in.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=nn.ReLU6))  # expand
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),  # depthwise
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # linear projection
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.hidden_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class HardSigmoid(nn.Module):
    """MobileNet V3 (Sec. 5.2): ReLU6(x + 3) / 6, a piecewise-linear sigmoid that quantises well.

    Written from the formula to show it; the networks use ``nn.Hardsigmoid``, PyTorch's fused
    kernel for the same function (tests check they agree), because the formula makes three
    passes over memory where the fused kernel makes one (chapter 3 measures the difference).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


class HardSwish(nn.Module):
    """MobileNet V3 (Sec. 5.2): x · ReLU6(x + 3) / 6, swish without the exponential.

    Written from the formula; the networks use the fused ``nn.Hardswish`` (see ``HardSigmoid``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation as MobileNet V3 uses it (Sec. 5.3): a per-channel gate.

    Global average pool (squeeze), 1×1 conv down to ``squeeze_channels`` with ReLU, 1×1 conv
    back up, hard-sigmoid (excite); the input is scaled channel by channel. The bottleneck
    is 1/4 of the channels, rounded by ``make_divisible_round`` as torchvision does.
    """

    def __init__(self, channels: int, squeeze_channels: int | None = None) -> None:
        super().__init__()
        check_int("channels", channels)
        squeeze_channels = make_divisible_round(channels // 4, 8) if squeeze_channels is None else squeeze_channels
        check_int("squeeze_channels", squeeze_channels)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """The gate values, shape (N, C, 1, 1), each in [0, 1]."""
        s = F.adaptive_avg_pool2d(x, 1)
        return self.gate(self.fc2(self.relu(self.fc1(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale(x)


_V3_ACTIVATIONS = {"RE": nn.ReLU, "HS": nn.Hardswish}


class InvertedResidualV3(nn.Module):
    """MobileNet V3 bneck (Tables 1–2): V2's inverted residual with a 3×3 or 5×5 depthwise kernel,
    optional squeeze-and-excite on the expanded features, and ReLU ("RE") or h-swish ("HS").
    ``squeeze_channels`` overrides the SE bottleneck (default: torchvision's rounding of 1/4).
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        expanded_channels: int,
        out_channels: int,
        use_se: bool,
        activation: str,
        stride: int,
        bn_eps: float = 0.001,
        bn_momentum: float = 0.01,
        squeeze_channels: int | None = None,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size must be 3 or 5, got {kernel_size!r}")
        check_choice("activation", activation, sorted(_V3_ACTIVATIONS))
        act = _V3_ACTIVATIONS[activation]
        norm = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvBNAct(in_channels, expanded_channels, 1, activation=act, **norm))  # expand
        layers.append(ConvBNAct(expanded_channels, expanded_channels, kernel_size, stride,
                                groups=expanded_channels, activation=act, **norm))  # depthwise
        if use_se:
            layers.append(SqueezeExcitation(expanded_channels, squeeze_channels))
        layers.append(ConvBNAct(expanded_channels, out_channels, 1, activation=None, **norm))  # project
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet V1 (Sec. 3.1): reshape channels to (groups, C/groups), transpose, flatten.

    After a group convolution each group's outputs sit together; shuffling deals them out
    so that every group of the next group convolution sees channels from every group.
    """
    check_int("groups", groups)
    b, c, h, w = x.shape
    _check_divisible("channels", c, groups)
    x = x.view(b, groups, c // groups, h, w)
    x = x.transpose(1, 2).contiguous()
    return x.view(b, c, h, w)


class ChannelShuffle(nn.Module):
    """Module form of :func:`channel_shuffle`, so it can sit inside ``nn.Sequential``."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        check_int("groups", groups)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ShuffleV1Unit(nn.Module):
    """ShuffleNet V1 unit (Fig. 2): grouped 1×1 → shuffle → 3×3 depthwise → grouped 1×1.

    Stride 1 adds the input back; stride 2 concatenates a 3×3 average-pooled shortcut, so the
    residual branch only produces ``out_channels - in_channels``. The bottleneck is a quarter
    of the output width. ``grouped_first_conv=False`` leaves the first 1×1 ungrouped (Stage 2's first
    unit, whose 24 input channels are too few to split).
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int, stride: int,
                 grouped_first_conv: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        check_int("groups", groups)
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 unit adds its input back, so out_channels ({out_channels}) "
                             f"must equal in_channels ({in_channels})")
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if branch_out < 1:
            raise ValueError(f"a stride-2 unit needs out_channels > in_channels, got {out_channels} <= {in_channels}")
        mid = out_channels // 4
        first_groups = groups if grouped_first_conv else 1
        _check_divisible("bottleneck channels (out_channels // 4)", mid, groups)
        _check_divisible("residual-branch channels", branch_out, groups)
        self.compress = ConvBNAct(in_channels, mid, 1, groups=first_groups)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, 3, stride, groups=mid, activation=None)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, activation=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.in_channels, self.out_channels, self.stride, self.groups = in_channels, out_channels, stride, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.depthwise(self.shuffle(self.compress(x))))
        if self.stride == 1:
            return F.relu(x + y)
        return torch.cat([self.shortcut(x), F.relu(y)], dim=1)


class ShuffleV2Block(nn.Module):
    """ShuffleNet V2 unit (Fig. 3c/d), designed from the four guidelines of Sec. 3.

    Stride 1: split the channels in half; one half passes untouched, the other goes through
    1×1 → 3×3 depthwise → 1×1 at equal width (G1), no group conv (G2), one branch of few
    fragments (G3); concatenate instead of add (G4) and shuffle so the halves mix.
    Stride 2: no split; both branches see the whole input and each produces half the output.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if out_channels % 2:
            raise ValueError(f"out_channels must be even (split into two halves), got {out_channels}")
        branch = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 unit splits and re-joins its input, so in_channels ({in_channels}) "
                             f"must equal out_channels ({out_channels})")
        if stride == 2:
            self.branch1 = nn.Sequential(
                ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, activation=None),
                ConvBNAct(in_channels, branch, 1),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            ConvBNAct(in_channels if stride == 2 else branch, branch, 1),
            ConvBNAct(branch, branch, 3, stride, groups=branch, activation=None),
            ConvBNAct(branch, branch, 1),
        )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            if x.shape[1] % 2:
                raise ValueError(f"ShuffleV2Block splits channels in half; got an odd count {x.shape[1]}")
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat([x1, self.branch2(x2)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return channel_shuffle(out, 2)

"""Whole networks built from ``course.blocks``, each from its paper's architecture table.

Every model classifies (``forward``) and also hands out its feature maps at strides
8, 16 and 32 (``forward_features`` / ``feature_channels``), which is what a detector such
as YOLOv5 needs from a backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .blocks import (
    ConvBNAct,
    DepthwiseSeparableConv,
    InvertedResidual,
    InvertedResidualV3,
    ShuffleV1Unit,
    ShuffleV2Block,
    make_divisible_round,
)
from .validate import check_choice, check_int, check_positive

__all__ = [
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
    "MobileNetV3LargeVariant",
    "first_layers",
    "last_stage",
    "LAST_STAGES",
    "ShuffleNetV1",
    "ShuffleNetV2",
    "MODEL_NAMES",
    "TORCHVISION_NAMES",
    "build_model",
    "torchvision_reference",
    "load_torchvision_weights",
    "randomize_batchnorm",
]


def _init_weights(model: nn.Module) -> None:
    """torchvision's initialisation for these families: He for convs, small normal for FC."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _SequentialBackbone(nn.Module):
    """A ``features`` stack whose last block at each of strides 8, 16, 32 is a feature tap."""

    features: nn.Sequential

    def _set_taps(self, strides: list[int], channels: list[int], n_blocks: int) -> None:
        """Record, among the first ``n_blocks`` layers, the last one at each stride 8/16/32."""
        taps = []
        for s in (8, 16, 32):
            idx = [i for i in range(n_blocks) if strides[i] == s]
            if not idx:
                raise ValueError(f"no layer reaches stride {s}; strides are {strides[:n_blocks]}")
            taps.append(idx[-1])
        self.feature_taps = tuple(taps)
        self.feature_channels = tuple(channels[i] for i in taps)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 8, 16, 32 (channels in ``feature_channels``)."""
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.feature_taps:
                out.append(x)
                if len(out) == 3:
                    break
        return out


class MobileNetV1(_SequentialBackbone):
    """MobileNet V1 (Howard et al. 2017, Table 1): a 3×3 conv, then 13 depthwise-separable layers.

    ``width_mult`` is the paper's α (thins every layer); the resolution multiplier ρ is just
    the input size you feed in.
    """

    # (out_channels, stride) of each depthwise-separable layer. Table 1 prints the last dw as
    # "s2", but its input is already 7×7 and the next row is still 7×7: it is stride 1, and
    # only then do the counts come to the paper's 569M mult-adds and 4.2M parameters.
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        check_positive("width_mult", width_mult)
        c = lambda ch: max(8, int(ch * width_mult))  # noqa: E731
        layers, strides, chans = [ConvBNAct(3, c(32), 3, 2)], [2], [c(32)]
        in_ch = c(32)
        for out, s in self.cfg:
            layers.append(DepthwiseSeparableConv(in_ch, c(out), s))
            strides.append(strides[-1] * s)
            chans.append(c(out))
            in_ch = c(out)
        self.features = nn.Sequential(*layers)
        self._set_taps(strides, chans, len(layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_ch, num_classes)
        self.last_channel = in_ch
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class MobileNetV2(_SequentialBackbone):
    """MobileNet V2 (Sandler et al. 2018, Table 2), built from the (t, c, n, s) table."""

    # t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
    cfg = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        check_positive("width_mult", width_mult)
        in_ch = make_divisible_round(32 * width_mult)
        self.last_channel = make_divisible_round(1280 * max(1.0, width_mult))  # not thinned (Sec. 4)
        layers = [ConvBNAct(3, in_ch, 3, 2, activation=nn.ReLU6)]
        strides, chans = [2], [in_ch]
        for t, c, n, s in self.cfg:
            out = make_divisible_round(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidual(in_ch, out, stride, t))
                strides.append(strides[-1] * stride)
                chans.append(out)
                in_ch = out
        n_blocks = len(layers)
        layers.append(ConvBNAct(in_ch, self.last_channel, 1, activation=nn.ReLU6))
        strides.append(strides[-1])
        chans.append(self.last_channel)
        self.features = nn.Sequential(*layers)
        self._set_taps(strides, chans, n_blocks)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


@dataclass(frozen=True)
class BneckConfig:
    """One row of MobileNet V3's Table 1 or 2."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    use_se: bool
    activation: str  # "RE" or "HS"
    stride: int

    def scaled(self, width_mult: float) -> "BneckConfig":
        adjust = lambda c: make_divisible_round(c * width_mult)  # noqa: E731
        return BneckConfig(adjust(self.in_channels), self.kernel, adjust(self.expanded),
                           adjust(self.out_channels), self.use_se, self.activation, self.stride)


_B = BneckConfig
MOBILENET_V3_LARGE = [  # Table 1
    _B(16, 3, 16, 16, False, "RE", 1),
    _B(16, 3, 64, 24, False, "RE", 2),
    _B(24, 3, 72, 24, False, "RE", 1),
    _B(24, 5, 72, 40, True, "RE", 2),
    _B(40, 5, 120, 40, True, "RE", 1),
    _B(40, 5, 120, 40, True, "RE", 1),
    _B(40, 3, 240, 80, False, "HS", 2),
    _B(80, 3, 200, 80, False, "HS", 1),
    _B(80, 3, 184, 80, False, "HS", 1),
    _B(80, 3, 184, 80, False, "HS", 1),
    _B(80, 3, 480, 112, True, "HS", 1),
    _B(112, 3, 672, 112, True, "HS", 1),
    _B(112, 5, 672, 160, True, "HS", 2),
    _B(160, 5, 960, 160, True, "HS", 1),
    _B(160, 5, 960, 160, True, "HS", 1),
]
MOBILENET_V3_SMALL = [  # Table 2
    _B(16, 3, 16, 16, True, "RE", 2),
    _B(16, 3, 72, 24, False, "RE", 2),
    _B(24, 3, 88, 24, False, "RE", 1),
    _B(24, 5, 96, 40, True, "HS", 2),
    _B(40, 5, 240, 40, True, "HS", 1),
    _B(40, 5, 240, 40, True, "HS", 1),
    _B(40, 5, 120, 48, True, "HS", 1),
    _B(48, 5, 144, 48, True, "HS", 1),
    _B(48, 5, 288, 96, True, "HS", 2),
    _B(96, 5, 576, 96, True, "HS", 1),
    _B(96, 5, 576, 96, True, "HS", 1),
]
# Width of the 1×1 conv after pooling. Table 1 (Large): 1280. Table 2 (Small): 1024 in the
# latest arXiv version of the paper (1905.02244), 1280 in another; 1024 is what torchvision
# builds and what the latest version's Table 3 count of 2.5M parameters for Small implies.
_V3_LAST_CHANNEL = {"large": 1280, "small": 1024}
# torchvision's BatchNorm settings for MobileNet V3 (the TF reference's).
_V3_NORM = dict(bn_eps=0.001, bn_momentum=0.01)


class MobileNetV3(_SequentialBackbone):
    """MobileNet V3 Large / Small (Howard et al. 2019, Tables 1–2).

    Stem of 16 filters with h-swish (Sec. 5.1), bnecks from the table, a 1×1 conv to 6× the
    last width, then the efficient last stage: pool first, then 1×1 "conv" (a Linear) with
    h-swish, then the classifier.
    """

    def __init__(self, mode: str = "large", width_mult: float = 1.0, num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        check_choice("mode", mode, ("large", "small"))
        check_positive("width_mult", width_mult)
        cfgs = [c.scaled(width_mult) for c in (MOBILENET_V3_LARGE if mode == "large" else MOBILENET_V3_SMALL)]
        norm = _V3_NORM
        stem = cfgs[0].in_channels
        layers = [ConvBNAct(3, stem, 3, 2, activation=nn.Hardswish, **norm)]
        strides, chans = [2], [stem]
        for c in cfgs:
            layers.append(InvertedResidualV3(c.in_channels, c.kernel, c.expanded, c.out_channels,
                                             c.use_se, c.activation, c.stride))
            strides.append(strides[-1] * c.stride)
            chans.append(c.out_channels)
        n_blocks = len(layers)
        last_conv = 6 * cfgs[-1].out_channels
        layers.append(ConvBNAct(cfgs[-1].out_channels, last_conv, 1, activation=nn.Hardswish, **norm))
        strides.append(strides[-1])
        chans.append(last_conv)
        self.features = nn.Sequential(*layers)
        self._set_taps(strides, chans, n_blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.last_channel = make_divisible_round(_V3_LAST_CHANNEL[mode] * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, self.last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(self.last_channel, num_classes),
        )
        self.mode = mode
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --- Sec. 5.1 of the V3 paper: the redesigned expensive layers, old and new, as parts of V3-Large

_STEM_ACTIVATIONS = {"RE": nn.ReLU, "HS": nn.Hardswish}
LAST_STAGES = ("efficient", "original")


def first_layers(stem_channels: int = 16, activation: str = "HS") -> nn.Sequential:
    """V3-Large's start: the 3×3 stride-2 stem and the first bneck (depthwise 3×3 on the stem's
    channels, projected to 16), so 32 filters cost their real price downstream too.
    """
    check_int("stem_channels", stem_channels)
    check_choice("activation", activation, tuple(_STEM_ACTIVATIONS))
    return nn.Sequential(
        ConvBNAct(3, stem_channels, 3, 2, activation=_STEM_ACTIVATIONS[activation], **_V3_NORM),
        InvertedResidualV3(stem_channels, 3, stem_channels, 16, False, "RE", 1),
    )


def last_stage(kind: str = "efficient", in_channels: int = 160, num_classes: int = 1000) -> nn.Sequential:
    """V3-Large's last stage (Fig. 5), from the 7×7×160 output of the last bneck to the logits.

    original: 1×1 expand to 960, 3×3 depthwise, 1×1 project to 320, 1×1 to 1280, all at 7×7,
    then pool and classify (MobileNet V2's tail). efficient: 1×1 to 960 at 7×7, pool, then
    the 1280-wide layer runs on a 1×1 map (a Linear), so depthwise and projection go away.
    """
    check_choice("kind", kind, LAST_STAGES)
    if kind == "efficient":
        return nn.Sequential(
            ConvBNAct(in_channels, 960, 1, activation=nn.Hardswish, **_V3_NORM),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
            nn.Linear(960, 1280), nn.Hardswish(inplace=True),
            nn.Linear(1280, num_classes),
        )
    return nn.Sequential(
        ConvBNAct(in_channels, 960, 1, activation=nn.Hardswish, **_V3_NORM),
        ConvBNAct(960, 960, 3, groups=960, activation=nn.Hardswish, **_V3_NORM),
        ConvBNAct(960, 320, 1, activation=None, **_V3_NORM),
        ConvBNAct(320, 1280, 1, activation=nn.Hardswish, **_V3_NORM),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        nn.Linear(1280, num_classes),
    )


class MobileNetV3LargeVariant(nn.Module):
    """MobileNetV3-Large with a chosen stem (filters, activation) and last stage.

    ``MobileNetV3LargeVariant()`` (16 filters, h-swish, efficient) has exactly the
    parameters of ``MobileNetV3("large")``; the other settings are the designs Sec. 5.1 replaced.
    """

    def __init__(self, stem_channels: int = 16, stem_activation: str = "HS", last: str = "efficient") -> None:
        super().__init__()
        rest = [InvertedResidualV3(c.in_channels, c.kernel, c.expanded, c.out_channels, c.use_se,
                                   c.activation, c.stride) for c in MOBILENET_V3_LARGE[1:]]
        self.first = first_layers(stem_channels, stem_activation)
        self.bnecks = nn.Sequential(*rest)
        self.last = last_stage(last, MOBILENET_V3_LARGE[-1].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.bnecks(self.first(x)))


class _StagedBackbone(nn.Module):
    """Stem → max-pool → stage2 (stride 8) → stage3 (16) → stage4 (32), as both ShuffleNets."""

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.conv1(x))
        p3 = self.stage2(x)
        p4 = self.stage3(p3)
        return [p3, p4, self.stage4(p4)]


# ShuffleNet V1 Table 1: output channels of stages 2–4 at 1× for each group count.
SHUFFLENET_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                          4: (272, 544, 1088), 8: (384, 768, 1536)}
SHUFFLENET_V1_REPEATS = (4, 8, 4)


class ShuffleNetV1(_StagedBackbone):
    """ShuffleNet V1 (Zhang et al. 2018, Table 1) with g groups and scale s ("ShuffleNet s×").

    Stage widths scale by s, rounded to a multiple of 4·g so that every grouped layer splits
    evenly (at s = 1 the table's widths already are).
    """

    def __init__(self, groups: int = 3, scale: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        check_choice("groups", groups, tuple(SHUFFLENET_V1_CHANNELS))
        check_positive("scale", scale)
        widths = [make_divisible_round(c * scale, 4 * groups) for c in SHUFFLENET_V1_CHANNELS[groups]]
        self.conv1 = ConvBNAct(3, 24, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 24
        stages = []
        for stage_idx, (out, repeats) in enumerate(zip(widths, SHUFFLENET_V1_REPEATS)):
            units = []
            for i in range(repeats):
                grouped = not (stage_idx == 0 and i == 0)
                units.append(ShuffleV1Unit(in_ch, out, groups, 2 if i == 0 else 1, grouped_first_conv=grouped))
                in_ch = out
            stages.append(nn.Sequential(*units))
        self.stage2, self.stage3, self.stage4 = stages
        self.fc = nn.Linear(in_ch, num_classes)
        self.feature_channels = tuple(widths)
        self.groups, self.scale = groups, scale
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x)[-1].mean([2, 3]))


# ShuffleNet V2 Table 5: stage 2–4 widths and Conv5 width per scale.
SHUFFLENET_V2_CHANNELS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
                          1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048)}
SHUFFLENET_V2_REPEATS = (4, 8, 4)


class ShuffleNetV2(_StagedBackbone):
    """ShuffleNet V2 (Ma et al. 2018, Table 5) at scale 0.5×, 1×, 1.5× or 2×."""

    def __init__(self, scale: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        check_choice("scale", scale, tuple(SHUFFLENET_V2_CHANNELS))
        *widths, last = SHUFFLENET_V2_CHANNELS[scale]
        self.conv1 = ConvBNAct(3, 24, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 24
        stages = []
        for out, repeats in zip(widths, SHUFFLENET_V2_REPEATS):
            units = [ShuffleV2Block(in_ch, out, 2)] + [ShuffleV2Block(out, out, 1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = out
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = ConvBNAct(in_ch, last, 1)
        self.fc = nn.Linear(last, num_classes)
        self.feature_channels = tuple(widths)
        self.scale = scale
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv5(self.forward_features(x)[-1]).mean([2, 3]))


_BUILDERS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": partial(MobileNetV3, "large"),
    "mobilenet_v3_small": partial(MobileNetV3, "small"),
    "shufflenet_v1": ShuffleNetV1,
    "shufflenet_v2_x0_5": partial(ShuffleNetV2, 0.5),
    "shufflenet_v2_x1_0": partial(ShuffleNetV2, 1.0),
    "shufflenet_v2_x1_5": partial(ShuffleNetV2, 1.5),
    "shufflenet_v2_x2_0": partial(ShuffleNetV2, 2.0),
}
MODEL_NAMES = tuple(_BUILDERS)
# Models torchvision also ships, under the same names.
TORCHVISION_NAMES = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5",
                     "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")


def build_model(name: str, **kwargs) -> nn.Module:
    """Build one of the course's models by name (see ``MODEL_NAMES``)."""
    check_choice("name", name, MODEL_NAMES)
    return _BUILDERS[name](**kwargs)


def torchvision_reference(name: str, num_classes: int = 1000) -> nn.Module | None:
    """torchvision's randomly initialised twin of ``name``, or None where torchvision has none."""
    check_choice("name", name, MODEL_NAMES)
    if name not in TORCHVISION_NAMES:
        return None
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def load_torchvision_weights(ours: nn.Module, theirs: nn.Module) -> list[tuple[str, str]]:
    """Copy a torchvision model's state into ours; return the (our key, their key) pairs.

    Our modules are named after the paper (``expand``, ``depthwise``, ``branch2`` ...) where
    torchvision numbers them, but both register the same tensors in the same order. So the
    key map is positional: the i-th tensor of one is the i-th of the other. Counts and every
    shape must agree, otherwise the architectures differ and a ValueError says where.
    """
    a, b = ours.state_dict(), theirs.state_dict()
    if len(a) != len(b):
        raise ValueError(f"state dicts differ in length: ours has {len(a)} tensors, torchvision's {len(b)}")
    pairs, mapped = [], {}
    for (ka, va), (kb, vb) in zip(a.items(), b.items()):
        if va.shape != vb.shape:
            raise ValueError(f"shape mismatch: ours {ka} {tuple(va.shape)} vs torchvision {kb} {tuple(vb.shape)}")
        mapped[ka] = vb
        pairs.append((ka, kb))
    ours.load_state_dict(mapped)
    return pairs


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random statistics and affine weights, in place.

    A fresh BN layer is the identity in eval mode, so two models could agree while one of them
    skipped its BN layers; with random statistics, equal outputs mean the BNs match too.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model

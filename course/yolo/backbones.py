"""MobileNet V3 and ShuffleNet V2 blocks under the names YOLOv5 backbone-swap YAMLs use.

The blocks themselves are the course's (``course.blocks``); these wrappers only adapt their
signatures to a YAML row, whose args follow the input channels that ``parse_model`` prepends:

* ``conv_bn_hswish [c2, s]``: MobileNetV3's 3x3 stem, conv-BN-h-swish (CSDN-blog name).
* ``mobilev3_bneck [c2, hidden, k, s, use_se, use_hs]``: the V3 bneck (ppogg/YOLOv5-Lite name).
* ``conv_bn_relu_maxpool [c2]``: ShuffleNet V2's stem, 3x3/2 conv-BN-ReLU and 3x3/2 max-pool.
* ``Shuffle_Block [c2, s]``: the ShuffleNet V2 unit.
* ``DWConvblock [c2, k, s]``: depthwise k x k then pointwise 1x1, both with BN-ReLU (v5Lite-e head).

Each is registered with the "scaled" channel rule (c1 prepended, args[0] width-scaled), and the
stride position is declared so that a repeated stride-2 row is refused.
"""

from __future__ import annotations

from torch import nn

from course.blocks import ConvBNAct, InvertedResidualV3, ShuffleV2Block

from .registry import register, register_module

register_module("Shuffle_Block", ShuffleV2Block, stride_arg=2)


@register("conv_bn_hswish", stride_arg=2)
class ConvBNHardSwish(ConvBNAct):
    """MobileNetV3's first layer: 3x3 conv, BN, h-swish."""

    def __init__(self, c1, c2, s=2):
        super().__init__(c1, c2, 3, s, activation=nn.Hardswish)


@register("mobilev3_bneck", stride_arg=5)
class MobileV3Bneck(InvertedResidualV3):
    """MobileNetV3 bneck from YAML args ``[c2, hidden, k, s, use_se, use_hs]``.

    The squeeze-and-excite bottleneck is ``hidden // 4`` exactly, as in YOLOv5-Lite (the
    published parameter counts depend on it); torchvision rounds it to a multiple of 8.
    YOLOv5-Lite's ``Hswish`` computes relu6(x + 3) / 6, a hard *sigmoid*; this block uses the
    paper's h-swish. Neither difference changes the parameter count.
    """

    def __init__(self, c1, c2, hidden, k, s, use_se, use_hs):
        super().__init__(c1, k, hidden, c2, bool(use_se), "HS" if use_hs else "RE", s,
                         squeeze_channels=hidden // 4)


@register("conv_bn_relu_maxpool")
class ShuffleStem(nn.Sequential):
    """ShuffleNet V2's stem: 3x3/2 conv-BN-ReLU then 3x3/2 max-pool, stride 4 in all."""

    def __init__(self, c1, c2):
        super().__init__(ConvBNAct(c1, c2, 3, 2), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


@register("DWConvblock", stride_arg=3)
class DWConvBlock(nn.Sequential):
    """Depthwise k x k (stride s) + pointwise 1x1, each with BN and ReLU: YOLOv5-Lite's cheap neck unit."""

    def __init__(self, c1, c2, k, s):
        super().__init__(ConvBNAct(c1, c1, k, s, groups=c1), ConvBNAct(c1, c2, 1))

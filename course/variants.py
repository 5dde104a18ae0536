"""Ablations as model surgery: each function takes a built network and returns a changed copy.

The papers argue for each design choice by training the network without it. Rather than give
every constructor a flag per ablation (and lose the exact torchvision layout), the course builds
the paper's network and then swaps the one part the ablation is about:

- ``full_convolutions``: every depthwise-separable pair becomes one full 3×3 conv (MobileNet V1, Table 4).
- ``activation_after_projection``: a ReLU6 after V2's linear 1×1 projection (MobileNet V2, Fig. 6a).
- ``without_shortcut``: the inverted residuals lose their skip connection (MobileNet V2, Fig. 6b).
- ``without_se``: squeeze-and-excite removed (MobileNet V3, Sec. 5.3).
- ``replace_activation``: one activation type swapped for another (h-swish → ReLU or swish, ReLU6 → ReLU).
- ``without_channel_shuffle``: ShuffleNet V1's shuffle removed, so groups never mix (Table 3).

``VARIANTS`` names them; ``apply_variants(model, names)`` applies several in order. A surgery that
finds nothing to change raises ``ValueError``: an ablation that silently did nothing would make
two identical networks look like a measured difference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import partial

from torch import nn

from course.blocks import (ChannelShuffle, ConvBNAct, DepthwiseSeparableConv, InvertedResidual,
                           InvertedResidualV3, ShuffleV1Unit, SqueezeExcitation)
from course.models import _init_weights

__all__ = ["VARIANTS", "full_convolutions", "activation_after_projection", "without_shortcut", "without_se",
           "replace_activation", "without_channel_shuffle", "with_stem_stride", "apply_variants"]


def _replace(model: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module],
             what: str) -> nn.Module:
    """A copy of ``model`` with every submodule that ``match``es replaced by ``make(submodule)``."""
    model = copy.deepcopy(model)
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if match(child):
                new = make(child)
                _init_weights(new)
                setattr(parent, name, new)
                count += 1
    if count == 0:
        raise ValueError(f"model ({type(model).__name__}) has no {what} to change")
    return model


def full_convolutions(model: nn.Module) -> nn.Module:
    """Each ``DepthwiseSeparableConv`` replaced by one 3×3 conv + BN + ReLU of the same width and stride.

    Same depth and widths, so the only difference is factorisation: the paper's "Conv MobileNet".
    """
    return _replace(model, lambda m: isinstance(m, DepthwiseSeparableConv),
                    lambda m: ConvBNAct(m.in_channels, m.out_channels, 3, m.stride), "DepthwiseSeparableConv")


def activation_after_projection(model: nn.Module, activation: Callable[..., nn.Module] = nn.ReLU6) -> nn.Module:
    """Each MobileNet V2 block's linear projection followed by ``activation`` (non-linear bottleneck)."""
    def add(block: InvertedResidual) -> InvertedResidual:
        block.conv.append(activation(inplace=True))
        return block

    model = copy.deepcopy(model)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    if not blocks:
        raise ValueError(f"model ({type(model).__name__}) has no InvertedResidual to change")
    for block in blocks:
        add(block)
    return model


def without_shortcut(model: nn.Module) -> nn.Module:
    """Every inverted residual (V2 or V3) computes ``conv(x)`` only: no skip connection."""
    model = copy.deepcopy(model)
    blocks = [m for m in model.modules() if isinstance(m, (InvertedResidual, InvertedResidualV3))]
    with_skip = [b for b in blocks if b.use_res_connect]
    if not with_skip:
        raise ValueError(f"model ({type(model).__name__}) has no inverted residual with a shortcut to change")
    for block in with_skip:
        block.use_res_connect = False
    return model


def without_se(model: nn.Module) -> nn.Module:
    """Every ``SqueezeExcitation`` replaced by the identity (the input passes ungated)."""
    return _replace(model, lambda m: isinstance(m, SqueezeExcitation), lambda m: nn.Identity(),
                    "SqueezeExcitation")


def replace_activation(model: nn.Module, old: type[nn.Module], new: Callable[[], nn.Module]) -> nn.Module:
    """Every module of type ``old`` (e.g. ``nn.Hardswish``) replaced by ``new()`` (e.g. ``nn.ReLU``).

    The SE gates' hard-sigmoid is a module of its own type, so swapping h-swish leaves the gates alone.
    """
    return _replace(model, lambda m: type(m) is old, lambda m: new(), old.__name__)


def without_channel_shuffle(model: nn.Module) -> nn.Module:
    """ShuffleNet V1 with its ``ChannelShuffle`` modules removed: each group only ever sees its own channels."""
    model = _replace(model, lambda m: isinstance(m, ChannelShuffle), lambda m: nn.Identity(), "ChannelShuffle")
    if not any(isinstance(m, ShuffleV1Unit) for m in model.modules()):
        raise ValueError(f"without_channel_shuffle is for ShuffleNet V1, got {type(model).__name__}")
    return model


def with_stem_stride(model: nn.Module, stride: int) -> nn.Module:
    """A copy with the first convolution's stride set to ``stride`` (1 keeps a small input's full resolution).

    The networks were designed for 224-px ImageNet images, which the stem halves at once. On 32-48 px
    images that first halving throws away the fine detail a class depends on, so ports of these
    networks to CIFAR-sized images commonly set the stem's stride to 1; every later layer is the paper's.
    """
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    model = copy.deepcopy(model)
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ValueError(f"model ({type(model).__name__}) has no convolution")
    first.stride = (stride, stride)
    return model


VARIANTS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "full_conv": full_convolutions,
    "relu6_after_projection": activation_after_projection,
    "no_shortcut": without_shortcut,
    "no_se": without_se,
    "hswish_to_relu": partial(replace_activation, old=nn.Hardswish, new=partial(nn.ReLU, inplace=True)),
    "hswish_to_swish": partial(replace_activation, old=nn.Hardswish, new=partial(nn.SiLU, inplace=True)),
    "relu6_to_relu": partial(replace_activation, old=nn.ReLU6, new=partial(nn.ReLU, inplace=True)),
    "no_shuffle": without_channel_shuffle,
}


def apply_variants(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """``model`` with each named surgery of ``VARIANTS`` applied in order (a copy; the input is untouched)."""
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"variants {unknown} are not known; allowed: {sorted(VARIANTS)}")
    for name in names:
        model = VARIANTS[name](model)
    return model

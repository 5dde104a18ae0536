"""Give a MobileNet V1's depthwise convs per-channel weight ranges that differ by orders of magnitude.

Trained depthwise layers end up like this once BN is folded in: each channel's scale
gamma / sqrt(var) multiplies that channel's 3×3 filter, and the scales spread over decades.
An untrained model has no such spread, so per-tensor and per-channel weight quantization look
alike on it. ``spread_depthwise_ranges`` puts the spread in without changing the function:
the depthwise BN's channel c is scaled by k_c (ReLU commutes with k_c > 0) and the pointwise
conv's input channel c by 1/k_c. The fp32 outputs stay the same, the folded weights do not.
"""

from __future__ import annotations

import torch
from torch import nn

from course.blocks import DepthwiseSeparableConv

__all__ = ["spread_depthwise_ranges"]


def spread_depthwise_ranges(model: nn.Module, decades: float = 2.0, seed: int = 0) -> nn.Module:
    """In place: depthwise channel scales k_c = 10^u, u uniform in ±decades/2; returns the model."""
    if isinstance(decades, bool) or not isinstance(decades, (int, float)) or decades < 0:
        raise ValueError(f"decades must be a number >= 0, got {decades!r}")
    blocks = [m for m in model.modules() if isinstance(m, DepthwiseSeparableConv)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no DepthwiseSeparableConv blocks (MobileNet V1 has them)")
    for block in blocks:
        if not isinstance(block[0][2], nn.ReLU):
            raise ValueError("the depthwise activation must be ReLU: only then does relu(k*z) = k*relu(z) "
                             f"keep the function, got {type(block[0][2]).__name__}")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in blocks:
            depthwise_bn, pointwise_conv = block[0][1], block[1][0]
            k = 10 ** ((torch.rand(depthwise_bn.num_features, generator=g) - 0.5) * decades)
            depthwise_bn.weight.mul_(k)
            depthwise_bn.bias.mul_(k)
            pointwise_conv.weight.div_(k.view(1, -1, 1, 1))
    return model

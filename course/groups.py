"""Group convolution (ShuffleNet V1, Sec. 3.1): what it costs, and which channels it connects.

Connectivity is never drawn by hand: it is read off real ``nn.Conv2d(groups=g)`` stacks by
their Jacobian (a nonzero ∂out_j/∂in_i means input channel i reaches output channel j), with
or without a channel shuffle between the layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .blocks import ChannelShuffle
from .measure import conv_cost
from .validate import check_int

__all__ = ["check_groups", "group_conv_counts", "channel_reach", "stacked_group_convs", "group_reach",
           "reached_groups"]


def check_groups(channels: int, groups: int, channels_name: str = "channels") -> None:
    """``groups`` must be a positive integer that divides ``channels``."""
    check_int(channels_name, channels)
    check_int("groups", groups)
    if channels % groups:
        divisors = [d for d in range(1, channels + 1) if channels % d == 0]
        raise ValueError(f"groups={groups} must divide {channels_name}={channels}; allowed: {divisors}")


def group_conv_counts(in_channels: int, out_channels: int, groups: int, kernel: int = 1, size: int = 28) -> dict:
    """Params and mult-adds of a k×k group conv on a size×size map, and the saving against g = 1.

    Each output channel sees only in_channels/g inputs, so both counts fall by exactly g.
    """
    check_groups(in_channels, groups, "in_channels")
    check_groups(out_channels, groups, "out_channels")
    full = conv_cost(kernel, in_channels, out_channels, size)
    grouped = conv_cost(kernel, in_channels, out_channels, size, groups=groups)
    return {**grouped, "dense_params": full["params"], "dense_mult_adds": full["mult_adds"],
            "reduction": full["mult_adds"] / grouped["mult_adds"]}


def channel_reach(layers: nn.Module, in_channels: int) -> np.ndarray:
    """Boolean (out × in) matrix: True where input channel i can change output channel j.

    Read from the Jacobian of the real layers at a 1×1 input (float64, random weights, no
    nonlinearity), so a structural zero is the only way to get a zero entry.
    """
    check_int("in_channels", in_channels)
    layers = layers.double().eval()
    x = torch.randn(1, in_channels, 1, 1, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: layers(t), x)
    return (jac.reshape(-1, in_channels) != 0).numpy()


def stacked_group_convs(channels: int, groups: int, depth: int, shuffle: bool, seed: int = 0) -> nn.Sequential:
    """``depth`` 1×1 group convs (channels → channels), with a channel shuffle between them if ``shuffle``."""
    check_groups(channels, groups)
    check_int("depth", depth)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        if i and shuffle and groups > 1:
            layers.append(ChannelShuffle(groups))
        layers.append(nn.Conv2d(channels, channels, 1, groups=groups, bias=False))
    return nn.Sequential(*layers)


def group_reach(channels: int, groups: int, depth: int = 2, shuffle: bool = False) -> np.ndarray:
    """(g × g) fraction of (output, input) channel pairs connected, output group by input group."""
    reach = channel_reach(stacked_group_convs(channels, groups, depth, shuffle), channels)
    per = channels // groups
    return reach.reshape(groups, per, groups, per).mean(axis=(1, 3))


def reached_groups(channels: int, groups: int, input_group: int, shuffle: bool, depth: int = 2) -> set[int]:
    """Output groups that at least one channel of ``input_group`` reaches after ``depth`` group convs."""
    check_groups(channels, groups)
    if isinstance(input_group, bool) or not isinstance(input_group, int) or not 0 <= input_group < groups:
        raise ValueError(f"input_group must be an integer in 0..{groups - 1}, got {input_group!r}")
    m = group_reach(channels, groups, depth, shuffle)
    return {int(j) for j in np.flatnonzero(m[:, input_group] > 0)}

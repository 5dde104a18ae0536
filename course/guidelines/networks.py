"""The benchmark networks of G1–G4: ten blocks that differ in one respect at (nearly) fixed FLOPs."""

from __future__ import annotations

import math

import torch
from torch import nn

from .paper import BLOCKS, G3_STRUCTURES
from ..validate import check_int


def _conv_bn(c_in: int, c_out: int, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 1, bias=False, groups=groups), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def g1_net(c1: int, c2: int, blocks: int = BLOCKS) -> nn.Sequential:
    """G1 benchmark: ``blocks`` × (1×1 conv c1→c2, 1×1 conv c2→c1); FLOPs per block 2·hw·c1·c2."""
    for name, v in (("c1", c1), ("c2", c2), ("blocks", blocks)):
        check_int(name, v)
    return nn.Sequential(*[nn.Sequential(_conv_bn(c1, c2), _conv_bn(c2, c1)) for _ in range(blocks)])


def g2_net(c: int, groups: int, layers: int = BLOCKS) -> nn.Sequential:
    """G2 benchmark: ``layers`` 1×1 group convs c→c with ``groups`` groups; FLOPs hw·c²/g each."""
    for name, v in (("c", c), ("groups", groups), ("layers", layers)):
        check_int(name, v)
    if c % groups:
        raise ValueError(f"c={c} must be divisible by groups={groups}")
    return nn.Sequential(*[_conv_bn(c, c, groups=groups) for _ in range(layers)])


def g2_channels(c: int, groups: int, reference_c: int) -> int:
    """``c`` if ``groups`` divides it, else the neighbouring multiple of ``groups`` whose FLOPs c²/g
    are closest to the g = 1 row's reference_c² (the paper's ARM list has c = 180 with g = 8)."""
    if c % groups == 0:
        return c
    lo = c - c % groups
    return min((lo, lo + groups), key=lambda x: abs(x * x / groups - reference_c ** 2))


class FragmentBlock(nn.Module):
    """G3 block (Appendix Fig. 1 a–e): ``fragments`` 1×1 convs in series or in parallel.

    Parallel branches all read the block input; ``merge="add"`` sums them (each c→c) and
    ``merge="concat"`` stacks them (each c→c/fragments). Many small ops instead of one big one
    is what G3 measures: less parallel work per kernel, more launches and synchronisation.
    """

    def __init__(self, channels: int, fragments: int = 1, parallel: bool = False, merge: str = "add") -> None:
        super().__init__()
        check_int("channels", channels)
        check_int("fragments", fragments)
        if merge not in ("add", "concat"):
            raise ValueError(f"merge must be 'add' or 'concat', got {merge!r}")
        if parallel and merge == "concat" and channels % fragments:
            raise ValueError(f"channels={channels} must be divisible by fragments={fragments} for merge='concat'")
        self.parallel, self.merge = parallel and fragments > 1, merge
        if not self.parallel:
            self.body = nn.Sequential(*[_conv_bn(channels, channels) for _ in range(fragments)])
        elif merge == "concat":
            self.branches = nn.ModuleList(_conv_bn(channels, channels // fragments) for _ in range(fragments))
        else:
            self.branches = nn.ModuleList(_conv_bn(channels, channels, relu=False) for _ in range(fragments))
            self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.parallel:
            return self.body(x)
        if self.merge == "concat":
            return torch.cat([b(x) for b in self.branches], dim=1)
        out = self.branches[0](x)
        for b in self.branches[1:]:
            out = out + b(x)
        return self.act(out)


def g3_channels(c: int, structure: str, merge: str = "add") -> int:
    """Width of a G3 structure holding the 1-fragment FLOPs hw·c²: round(c/√k) (c for concat)."""
    if structure not in G3_STRUCTURES:
        raise ValueError(f"structure must be one of {list(G3_STRUCTURES)}, got {structure!r}")
    k, parallel = G3_STRUCTURES[structure]
    if parallel and merge == "concat":
        return c
    return int(round(c / math.sqrt(k)))


def g3_net(c: int, structure: str, blocks: int = BLOCKS, merge: str = "add") -> nn.Sequential:
    """G3 benchmark: ``blocks`` fragment blocks; ``c`` is the 1-fragment width (Table 3's c)."""
    check_int("c", c)
    check_int("blocks", blocks)
    width = g3_channels(c, structure, merge)
    k, parallel = G3_STRUCTURES[structure]
    return nn.Sequential(*[FragmentBlock(width, k, parallel, merge) for _ in range(blocks)])


class Bottleneck(nn.Module):
    """ResNet bottleneck (1×1 → 3×3 → 1×1, c → c/expansion → c) with ReLU and shortcut switchable.

    Removing them changes no parameter and no FLOP counted by fvcore: G4's point is that the
    element-wise work still costs time (memory traffic, extra kernels).
    """

    def __init__(self, channels: int, relu: bool = True, shortcut: bool = True, expansion: int = 4) -> None:
        super().__init__()
        check_int("channels", channels)
        check_int("expansion", expansion)
        if channels % expansion:
            raise ValueError(f"channels={channels} must be divisible by expansion={expansion}")
        mid = channels // expansion
        self.relu, self.shortcut = relu, shortcut
        self.conv1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(x) if self.relu else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._act(self.bn1(self.conv1(x)))
        out = self._act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut:
            out = out + x
        return self._act(out)


def g4_net(c: int, relu: bool = True, shortcut: bool = True, units: int = BLOCKS, expansion: int = 4) -> nn.Sequential:
    """G4 benchmark: ``units`` bottleneck units of width ``c`` (Table 4's "channels in unit")."""
    check_int("units", units)
    return nn.Sequential(*[Bottleneck(c, relu, shortcut, expansion) for _ in range(units)])

"""One table column as buildable variants: the paper's rows at one scale, with their input size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from torch import nn

from ..validate import check_choice, check_int
from .networks import g1_net, g2_channels, g2_net, g3_channels, g3_net, g4_net
from .paper import GUIDELINES, G4_SWITCHES, INPUT_HW, PAPER_TABLES, SCALES, _check_hardware


@dataclass(frozen=True)
class Variant:
    """One row × one scale of a paper table: what to build and how big its input is."""

    guideline: str
    name: str
    scale: int
    channels: tuple[int, ...]
    in_channels: int
    hw: int
    builder: Callable[[], nn.Module] = field(repr=False, compare=False)

    def build(self) -> nn.Module:
        return self.builder().eval()

    def input_size(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, self.hw, self.hw)


def variants(guideline: str, scale: int = 1, channel_list: str = "cpu", g3_merge: str = "add",
             g4_expansion: int = 4, hw: int | None = None) -> list[Variant]:
    """The variants of one experiment at one scale, in the paper's row order (reference first).

    ``hw`` overrides the input size (default ``INPUT_HW``, 56); every layer keeps the map size,
    so FLOPs scale exactly with hw², which lets tests count FLOPs on small maps.
    """
    check_choice("guideline", guideline, GUIDELINES)
    if hw is not None:
        check_int("hw", hw)
    _check_hardware(channel_list)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, got {scale!r}")
    if g3_merge not in ("add", "concat"):
        raise ValueError(f"g3_merge must be 'add' or 'concat', got {g3_merge!r}")
    table = PAPER_TABLES[guideline]
    hw = hw or INPUT_HW[guideline]
    out = []
    for i, name in enumerate(table["variants"]):
        if guideline == "G1":
            c1, c2 = (scale * c for c in table["channels"][channel_list][i])
            out.append(Variant("G1", name, scale, (c1, c2), c1, hw, lambda c1=c1, c2=c2: g1_net(c1, c2)))
        elif guideline == "G2":
            g = 2 ** i
            c = g2_channels(scale * table["channels"][channel_list][i], g, scale * table["channels"][channel_list][0])
            out.append(Variant("G2", name, scale, (c,), c, hw, lambda c=c, g=g: g2_net(c, g)))
        elif guideline == "G3":
            c = scale * table["channels"][channel_list]
            w = g3_channels(c, name, g3_merge)
            out.append(Variant("G3", name, scale, (w,), w, hw,
                               lambda c=c, name=name: g3_net(c, name, merge=g3_merge)))
        else:
            c = scale * table["channels"][channel_list]
            relu, shortcut = G4_SWITCHES[name]
            out.append(Variant("G4", name, scale, (c, c // g4_expansion), c, hw,
                               lambda c=c, r=relu, s=shortcut: g4_net(c, r, s, expansion=g4_expansion)))
    return out


def flops_spread(flops: Iterable[float]) -> float:
    """(max − min) / max of FLOPs inside one experiment: how well FLOPs are held fixed."""
    flops = list(flops)
    if not flops or max(flops) <= 0:
        raise ValueError(f"flops must be a non-empty list of positive numbers, got {flops!r}")
    return (max(flops) - min(flops)) / max(flops)

"""Editing a model config as data: bake the multiples in, swap the backbone, insert a layer.

A YOLOv5 YAML wires layers by index (``from``), so any edit that adds or removes rows must
renumber every absolute index after it; these functions do that and nothing else, returning
a new config dict that ``DetectionModel`` builds.
"""

from __future__ import annotations

import copy

from .model import load_cfg, make_divisible_ceil
from .registry import REGISTRY

__all__ = ["bake_multiples", "replace_backbone", "insert_layer"]


def _scaled(name) -> bool:
    spec = REGISTRY.get(name)
    return spec is not None and spec.channels == "scaled"


def bake_multiples(cfg) -> dict:
    """The same model with ``depth_multiple`` and ``width_multiple`` written into the rows (both 1.0 after).

    Why: a swapped backbone gives absolute widths (MobileNet V3's 24/48/96), which a
    ``width_multiple`` of 0.25 would shrink too. Baking the head's widths first keeps YOLOv5n's
    head exactly while the new backbone rows stay as written.
    """
    d = load_cfg(cfg)
    gd, gw, div = d["depth_multiple"], d["width_multiple"], d.get("channel_multiple", 8)
    for part in ("backbone", "head"):
        rows = []
        for f, n, name, args in d[part]:
            args = list(args)
            n = max(round(n * gd), 1) if n > 1 else n
            if _scaled(name) and args and isinstance(args[0], (int, float)):
                args[0] = make_divisible_ceil(args[0] * gw, div)
            rows.append([f, n, name, args])
        d[part] = rows
    d["depth_multiple"] = d["width_multiple"] = 1.0
    return d


def replace_backbone(cfg, backbone: list, taps: dict) -> dict:
    """Swap the backbone rows of ``cfg`` and renumber the head's absolute ``from`` indices.

    ``taps`` maps each old backbone layer the head reads (YOLOv5n: 4 = P3, 6 = P4) to the new
    backbone layer at the same stride. Head layers move by ``len(backbone) - len(old backbone)``;
    ``-1`` stays ``-1`` (the first head row then reads the new backbone's last layer, P5).
    The old multiples are baked into the head first (``bake_multiples``).
    """
    d = bake_multiples(cfg)
    if not isinstance(backbone, list) or not backbone:
        raise ValueError(f"backbone must be a non-empty list of [from, number, module, args] rows, got {backbone!r}")
    old, new = len(d["backbone"]), len(backbone)
    for k, v in taps.items():
        if not (isinstance(k, int) and 0 <= k < old and isinstance(v, int) and 0 <= v < new):
            raise ValueError(f"taps[{k!r}] = {v!r}: keys must be old backbone layers 0..{old - 1}, values new "
                             f"backbone layers 0..{new - 1}")

    def move(j, i):
        if j < 0:
            return j
        if j < old:
            if j not in taps:
                raise ValueError(f"head layer {i} reads old backbone layer {j}; add it to taps "
                                 f"(known: {sorted(taps)})")
            return taps[j]
        return j - old + new

    head = []
    for i, (f, n, name, args) in enumerate(d["head"], old):
        f = [move(j, i) for j in f] if isinstance(f, list) else move(f, i)
        head.append([f, n, name, list(args)])
    d["backbone"] = copy.deepcopy(backbone)
    d["head"] = head
    d.pop("yaml_file", None)
    return d


def insert_layer(cfg, index: int, row: list) -> dict:
    """Insert ``row`` as layer ``index`` and shift every absolute ``from`` >= ``index`` by one.

    The reference solution of exercise 6.3: relative ``-1`` needs no change, absolute indices do.
    """
    d = load_cfg(cfg)
    nb = len(d["backbone"])
    total = nb + len(d["head"])
    if not isinstance(index, int) or not 1 <= index <= total - 1:
        raise ValueError(f"index must be an int in 1..{total - 1} (after the first layer, before Detect), "
                         f"got {index!r}")

    def shift(f):
        if isinstance(f, list):
            return [shift(j) for j in f]
        return f + 1 if f >= index else f

    rows = [[shift(f), n, m, list(a)] for f, n, m, a in list(d["backbone"]) + list(d["head"])]
    rows.insert(index, list(row))
    if index < nb:
        d["backbone"], d["head"] = rows[:nb + 1], rows[nb + 1:]
    else:
        d["backbone"], d["head"] = rows[:nb], rows[nb:]
    d.pop("yaml_file", None)
    return d

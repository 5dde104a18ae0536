"""MobileNet V3's costs (Howard et al. 2019): the redesigned expensive layers (Sec. 5.1) and the
whole networks, beside the paper's and torchvision's figures.

Every number of ours is computed (parameters, fvcore multiply-adds via ``course.measure``) or
measured (``course.measure.latency``); the only typed numbers are the paper's and torchvision's,
kept as data in ``PAPER`` and ``TORCHVISION`` with their sources.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .env import pick
from .measure import RatioResult, count_flops, count_params, interleaved_ratio, latency
from .models import (
    MobileNetV3,
    MobileNetV3LargeVariant,
    first_layers,
    last_stage,
    load_torchvision_weights,
    torchvision_reference,
)
from .validate import check_choice

__all__ = ["PAPER", "TORCHVISION", "redesign_rows", "model_rows"]

# Howard et al., "Searching for MobileNetV3", arXiv 1905.02244 (latest version): Table 3
# (float, Pixel-1 single large core, batch 1) and Sec. 5.1 (the redesigned layers, V3-Large).
PAPER = {
    "source": "Howard et al. 2019, Searching for MobileNetV3, arXiv 1905.02244, Table 3 and Sec. 5.1",
    "large": {"madds_M": 219, "params_M": 5.4, "top1": 75.2, "pixel1_ms": 51},
    "small": {"madds_M": 56, "params_M": 2.5, "top1": 67.4, "pixel1_ms": 15.8},
    "last_stage_saving": {"ms": 7, "latency_pct": 11, "madds_M": 30},
    "first_layer_saving": {"ms": 2, "madds_M": 10},
}
# torchvision weights metadata (torchvision/models/mobilenetv3.py): num_params and _ops (GMACs).
TORCHVISION = {
    "source": "torchvision/models/mobilenetv3.py weights meta (num_params, _ops)",
    "large": {"params": 5_483_032, "gmacs": 0.217},
    "small": {"params": 2_542_856, "gmacs": 0.057},
}

_FIRST_VARIANTS = {"32 filters, ReLU": (32, "RE"), "32 filters, h-swish": (32, "HS"),
                   "16 filters, h-swish (V3)": (16, "HS")}


def _network_ratio(old: nn.Module, new: nn.Module, rounds: int | None) -> RatioResult:
    """Interleaved time ratio new / old of two whole networks (CPU, batch 1, inference mode)."""
    x = torch.randn(1, 3, 224, 224)
    old, new = old.eval(), new.eval()

    def run(model):
        def call():
            with torch.inference_mode():
                model(x)
        return call

    return interleaved_ratio(run(new), run(old), rounds=rounds or pick(15, 3), number=2)


def redesign_rows(part: str, measure: bool = True, network: bool = True,
                  min_run_time: float | None = None, rounds: int | None = None) -> list[dict]:
    """Before/after table for one redesigned part ("first" or "last") of V3-Large.

    Params and mult-adds are those of the part alone (fvcore); latency is measured (CPU,
    batch 1) for the part and, with ``network``, for the whole network built with the oldest
    and the V3 version, interleaved (``interleaved_ratio``) so machine load hits both alike.
    Then the saving (first row minus the V3 row) and the paper's stated saving.
    """
    check_choice("part", part, ("first", "last"))
    if part == "first":
        variants = {name: (first_layers(s, a), (1, 3, 224, 224), partial(MobileNetV3LargeVariant, s, a))
                    for name, (s, a) in _FIRST_VARIANTS.items()}
    else:
        variants = {f"{k} last stage": (last_stage(k), (1, 160, 7, 7), partial(MobileNetV3LargeVariant, last=k))
                    for k in ("original", "efficient")}
    rows = []
    for name, (module, size, _) in variants.items():
        row = {"version": name, "params": count_params(module), "MAdds (M)": count_flops(module, size) / 1e6}
        if measure:
            row["part ms"] = latency(module, size, device="cpu", min_run_time=min_run_time).median_ms
        rows.append(row)
    old, new = rows[0], rows[-1]
    saving = {"version": "saving (first - last row)", "params": old["params"] - new["params"],
              "MAdds (M)": old["MAdds (M)"] - new["MAdds (M)"]}
    if measure:
        saving["part ms"] = old["part ms"] - new["part ms"]
    if measure and network:
        builders = list(variants.values())
        ratio = _network_ratio(builders[0][2](), builders[-1][2](), rounds)
        old["network ms"], new["network ms"] = ratio.median_b_ms, ratio.median_a_ms
        saving["network ms"] = ratio.median_b_ms - ratio.median_a_ms
        saving["% of network"] = 100 * (1 - ratio.ratio)
    paper = PAPER["first_layer_saving" if part == "first" else "last_stage_saving"]
    rows.append(saving)
    rows.append({"version": "paper's saving (Pixel phone)", "MAdds (M)": float(paper["madds_M"]),
                 "network ms": float(paper["ms"]), "% of network": paper.get("latency_pct")})
    return rows


def model_rows(measure: bool = True, min_run_time: float | None = None, batch: int = 1) -> list[dict]:
    """Large and Small built from the tables: our counts beside torchvision's and the paper's,
    the largest output difference after loading torchvision's (random) weights, and latency.
    """
    rows = []
    x = torch.randn(2, 3, 224, 224)
    for mode in ("large", "small"):
        ours, theirs = MobileNetV3(mode).eval(), torchvision_reference(f"mobilenet_v3_{mode}").eval()
        load_torchvision_weights(ours, theirs)
        with torch.no_grad():
            diff = float((ours(x) - theirs(x)).abs().max())
        row = {"model": f"MobileNetV3-{mode.title()}", "params": count_params(ours),
               "torchvision params": count_params(theirs),
               "torchvision meta": TORCHVISION[mode]["params"],
               "MAdds (M)": count_flops(ours) / 1e6, "paper MAdds (M)": float(PAPER[mode]["madds_M"]),
               "torchvision MAdds (M)": 1000 * TORCHVISION[mode]["gmacs"], "max |out diff|": diff}
        if measure:
            res = latency(ours, (batch, 3, 224, 224), device="cpu", min_run_time=min_run_time)
            row["ms"] = res.median_ms
            row["paper Pixel-1 ms"] = float(PAPER[mode]["pixel1_ms"])
            row["_latency"] = res
        rows.append(row)
    return rows

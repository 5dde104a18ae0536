"""Chapter 03 — MobileNet V3: squeeze-and-excite, hard activations, the redesigned expensive layers.

The helpers behind the notebook's tables and widgets. Every number is computed (parameters,
fvcore multiply-adds via ``course.measure``) or measured (``course.measure.latency``); the
only typed numbers are the paper's and torchvision's, kept as data in ``PAPER`` and
``TORCHVISION`` with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..blocks import InvertedResidualV3, SqueezeExcitation, make_divisible_round
from ..device import resolve_device
from ..env import pick
from ..measure import LatencyResult, RatioResult, count_flops, count_params, interleaved_ratio, latency
from ..models import (
    MOBILENET_V3_LARGE,
    MOBILENET_V3_SMALL,
    MobileNetV3,
    MobileNetV3LargeVariant,
    first_layers,
    last_stage,
    load_torchvision_weights,
    torchvision_reference,
)
from ..validate import check_choice, check_int
from ..viz import WidgetHandle, live_output, show_figure

__all__ = [
    "PAPER",
    "TORCHVISION",
    "WidgetHandle",
    "synthetic_image",
    "se_modules",
    "se_gates",
    "calibrate_batchnorm",
    "se_gate_widget",
    "se_cost",
    "se_cost_widget",
    "ACTIVATIONS",
    "ACTIVATION_PAIRS",
    "max_deviation",
    "signed_gap",
    "activation_widget",
    "ACTIVATION_IMPLS",
    "CostRow",
    "activation_costs",
    "hswish_vs_swish",
    "fused_vs_formula",
    "verdict",
    "redesign_rows",
    "model_rows",
]

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
_TABLES = {"large": MOBILENET_V3_LARGE, "small": MOBILENET_V3_SMALL}


# --------------------------------------------------------------------------- widget plumbing


def _live(controls: dict[str, widgets.Widget], render: Callable[..., dict]) -> WidgetHandle:
    """Re-run ``render(**values)`` into an Output whenever a control changes; keep its state."""
    handle = WidgetHandle(widget=widgets.VBox(), controls=controls)

    def update(**values):
        state = render(**values)
        handle._state.clear()
        handle._state.update(state)

    out = live_output(update, controls)
    handle.widget.children = (widgets.HBox(list(controls.values())), out)
    return handle


# --------------------------------------------------------------------------- squeeze-and-excite

IMAGE_KINDS = ("stripes", "checkerboard", "rings", "noise")


def synthetic_image(kind: str = "rings", size: int = 224, seed: int = 0) -> torch.Tensor:
    """A (1, 3, size, size) test picture generated in code, normalised per channel.

    Each colour channel carries a different pattern, so different images excite different
    channels of the network.
    """
    check_choice("kind", kind, IMAGE_KINDS)
    check_int("size", size, low=32)
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r = torch.sqrt(x**2 + y**2)
    if kind == "stripes":
        chans = [torch.sin(12 * x), torch.sin(12 * (x + y)), x]
    elif kind == "checkerboard":
        chans = [torch.sign(torch.sin(10 * x) * torch.sin(10 * y)), torch.sign(torch.sin(5 * x)), y]
    elif kind == "rings":
        chans = [torch.cos(20 * r), (r < 0.5).float(), torch.exp(-4 * r**2)]
    else:
        chans = list(torch.randn(3, size, size, generator=g))
    img = torch.stack(chans)
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    img = (img - img.mean((1, 2), keepdim=True)) / (img.std((1, 2), keepdim=True) + 1e-6)
    return img.unsqueeze(0)


def se_modules(model: nn.Module) -> dict[str, SqueezeExcitation]:
    """Every squeeze-and-excite module of ``model``, by its qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcitation)}


class _Stop(Exception):
    pass


@torch.no_grad()
def se_gates(model: nn.Module, image: torch.Tensor, name: str) -> torch.Tensor:
    """The gate values (C,) that SE module ``name`` applies to its input for ``image``.

    The forward pass stops at that module, so later layers cost nothing.
    """
    modules = se_modules(model)
    check_choice("name", name, tuple(modules))
    captured = []

    def hook(module, inputs):
        captured.append(module.scale(inputs[0])[0, :, 0, 0])
        raise _Stop

    handle = modules[name].register_forward_pre_hook(hook)
    was_training = model.training
    model.eval()
    try:
        model(image)
    except _Stop:
        pass
    finally:
        handle.remove()
        model.train(was_training)
    return captured[0]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Set every BN's running statistics to those of ``images`` (then eval mode).

    With random weights and fresh statistics (mean 0, variance 1) the pooled features an SE
    sees are near zero and every gate sits at 0.5; statistics from real inputs give the
    features their real scale, so the gates spread and depend on the picture.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    model(images)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return model.eval()


def _se_label(name: str, se: SqueezeExcitation) -> str:
    return f"{name} ({se.fc1.in_channels} ch → {se.fc1.out_channels})"


def se_gate_widget(model: nn.Module | None = None, size: int = 224) -> WidgetHandle:
    """Per-channel SE gates on a generated test image.

    Default model: MobileNetV3-Small with random weights and BN statistics calibrated on the
    test images (``calibrate_batchnorm``); pass a model to see its own gates unchanged.
    """
    images = {k: synthetic_image(k, size) for k in IMAGE_KINDS}
    if model is None:
        model = calibrate_batchnorm(MobileNetV3("small"), torch.cat(list(images.values())))
    model.eval()
    modules = se_modules(model)
    if not modules:
        raise ValueError("model has no SqueezeExcitation modules")
    controls = {
        "image": widgets.Dropdown(options=IMAGE_KINDS, value="rings", description="image"),
        "block": widgets.Dropdown(options=[(_se_label(n, m), n) for n, m in modules.items()],
                                  description="SE block", layout=widgets.Layout(width="380px")),
    }

    def render(image, block):
        gates = se_gates(model, images[image], block).numpy()
        se = modules[block]
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 3]})
        pic = images[image][0].permute(1, 2, 0).numpy()
        ax0.imshow((pic - pic.min()) / (pic.max() - pic.min()))
        ax0.set_title(image)
        ax0.axis("off")
        ax1.bar(np.arange(len(gates)), gates, width=1.0, color="tab:blue")
        ax1.set_ylim(0, 1.05)
        ax1.set_xlabel("channel")
        ax1.set_ylabel("gate (h-sigmoid)")
        ax1.set_title(f"{block}: one gate per channel")
        fig.tight_layout()
        show_figure(fig)
        closed, open_ = int((gates == 0).sum()), int((gates == 1).sum())
        print(f"{len(gates)} channels, squeezed to {se.fc1.out_channels}; gate min {gates.min():.3f}, "
              f"mean {gates.mean():.3f}, max {gates.max():.3f}; {closed} channels shut (gate 0), "
              f"{open_} fully open (gate 1)")
        return {"image": image, "block": block, "gates": gates, "closed": closed, "open": open_}

    return _live(controls, render)


REDUCTIONS = (1, 2, 4, 8, 16, 32)


def _block_input_sizes(mode: str, size: int = 224) -> list[int]:
    """Spatial size of each bneck's input (the stem halves the image)."""
    sizes, s = [], size // 2
    for cfg in _TABLES[mode]:
        sizes.append(s)
        s //= cfg.stride
    return sizes


def _squeeze_for(expanded: int, reduction: int) -> int:
    return make_divisible_round(max(1, expanded // reduction), 8)


@lru_cache(maxsize=None)
def se_cost(mode: str, row: int, reduction: int = 4) -> dict:
    """Parameters and multiply-adds of the SE in bneck ``row`` of Table 1/2, against its whole bneck.

    The squeeze width is make_divisible_round(expanded // reduction, 8); reduction 4 is the paper's.
    """
    check_choice("mode", mode, tuple(_TABLES))
    table = _TABLES[mode]
    if not isinstance(row, int) or not 0 <= row < len(table):
        raise ValueError(f"row must be an integer in [0, {len(table) - 1}], got {row!r}")
    check_choice("reduction", reduction, REDUCTIONS)
    c = table[row]
    if not c.use_se:
        raise ValueError(f"row {row} of the {mode} table has no SE; rows with SE: "
                         f"{[i for i, r in enumerate(table) if r.use_se]}")
    size = _block_input_sizes(mode)[row]
    out_size = size // c.stride
    squeeze = _squeeze_for(c.expanded, reduction)
    base = InvertedResidualV3(c.in_channels, c.kernel, c.expanded, c.out_channels, False, c.activation, c.stride)
    se = SqueezeExcitation(c.expanded, squeeze)
    se_params, se_madds = count_params(se), count_flops(se, (1, c.expanded, out_size, out_size))
    block_params = count_params(base) + se_params
    block_madds = count_flops(base, (1, c.in_channels, size, size)) + se_madds
    return {"mode": mode, "row": row, "reduction": reduction, "expanded": c.expanded, "squeeze": squeeze,
            "size": out_size, "se_params": se_params, "block_params": block_params,
            "se_madds": se_madds, "block_madds": block_madds,
            "param_share": se_params / block_params, "madds_share": se_madds / block_madds}


@lru_cache(maxsize=None)
def _model_params(mode: str) -> int:
    return count_params(MobileNetV3(mode))


def _network_se_params(mode: str, reduction: int) -> tuple[int, int]:
    """(SE parameters, all parameters) of the whole network if every SE used ``reduction``."""
    total = _model_params(mode)
    default = se_new = 0
    for c in _TABLES[mode]:
        if c.use_se:
            default += count_params(SqueezeExcitation(c.expanded))
            se_new += count_params(SqueezeExcitation(c.expanded, _squeeze_for(c.expanded, reduction)))
    return se_new, total - default + se_new


def se_cost_widget() -> WidgetHandle:
    """What the SE costs as its reduction ratio changes, for any SE-bearing bneck of Large or Small."""
    options = [(f"{mode.title()} row {i + 1}: {c.in_channels}→{c.expanded}→{c.out_channels}, "
                f"{c.kernel}×{c.kernel}", (mode, i))
               for mode, table in _TABLES.items() for i, c in enumerate(table) if c.use_se]
    controls = {
        "block": widgets.Dropdown(options=options, value=options[3][1], description="bneck",
                                  layout=widgets.Layout(width="360px")),
        "reduction": widgets.SelectionSlider(options=REDUCTIONS, value=4, description="reduction r"),
    }

    def render(block, reduction):
        mode, row = block
        costs = [se_cost(mode, row, r) for r in REDUCTIONS]
        now = se_cost(mode, row, reduction)
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot(REDUCTIONS, [100 * c["param_share"] for c in costs], "o-", label="params")
        ax.plot(REDUCTIONS, [100 * c["madds_share"] for c in costs], "s--", label="mult-adds")
        ax.axvline(reduction, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(REDUCTIONS, [str(r) for r in REDUCTIONS])
        ax.set_xlabel("reduction r (squeeze = expanded / r, rounded to ×8)")
        ax.set_ylabel("SE share of the bneck (%)")
        ax.legend()
        fig.tight_layout()
        show_figure(fig)
        se_net, net = _network_se_params(mode, reduction)
        print(f"{mode.title()} row {row + 1}, r = {reduction}: squeeze {now['expanded']} → {now['squeeze']} "
              f"channels; SE {now['se_params']:,} of {now['block_params']:,} params "
              f"({100 * now['param_share']:.1f} %), {now['se_madds']:,} of {now['block_madds']:,} "
              f"mult-adds ({100 * now['madds_share']:.2f} %).")
        print(f"Whole MobileNetV3-{mode.title()} with r = {reduction}: SE holds {se_net:,} of {net:,} "
              f"params ({100 * se_net / net:.1f} %).")
        return {**now, "network_se_params": se_net, "network_params": net,
                "param_share_curve": [c["param_share"] for c in costs]}

    return _live(controls, render)


# --------------------------------------------------------------------------- activations

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ReLU": F.relu,
    "ReLU6": F.relu6,
    "sigmoid": torch.sigmoid,
    "h-sigmoid": F.hardsigmoid,
    "swish": F.silu,
    "h-swish": F.hardswish,
}
ACTIVATION_PAIRS = {
    "ReLU vs ReLU6": ("ReLU", "ReLU6"),
    "sigmoid vs h-sigmoid": ("sigmoid", "h-sigmoid"),
    "swish vs h-swish": ("swish", "h-swish"),
}


def max_deviation(a: str, b: str, lo: float = -8.0, hi: float = 8.0, n: int = 160_001) -> tuple[float, float]:
    """max |a(x) − b(x)| over ``n`` points of [lo, hi] (float64), and the x where it occurs."""
    check_choice("a", a, tuple(ACTIVATIONS))
    check_choice("b", b, tuple(ACTIVATIONS))
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    check_int("n", n, low=2)
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    d = (ACTIVATIONS[a](x) - ACTIVATIONS[b](x)).abs()
    i = int(d.argmax())
    return float(d[i]), float(x[i])


def signed_gap(a: str, b: str, x: float) -> float:
    """b(x) − a(x) in float64: negative where the ``b`` curve lies below ``a``."""
    check_choice("a", a, tuple(ACTIVATIONS))
    check_choice("b", b, tuple(ACTIVATIONS))
    t = torch.tensor(float(x), dtype=torch.float64)
    return float(ACTIVATIONS[b](t) - ACTIVATIONS[a](t))


def activation_widget() -> WidgetHandle:
    """Plot an activation beside its hard version (or all six) and report their largest gap."""
    controls = {
        "pair": widgets.Dropdown(options=[*ACTIVATION_PAIRS, "all six"], value="swish vs h-swish",
                                 description="compare"),
        "x_range": widgets.FloatRangeSlider(value=(-6.0, 6.0), min=-10.0, max=10.0, step=0.5,
                                            description="x range"),
    }

    def render(pair, x_range):
        lo, hi = x_range
        if hi <= lo:
            print("Pick a range with some width.")
            return {"pair": pair, "x_range": x_range, "max_deviation": {}}
        names = list(ACTIVATIONS) if pair == "all six" else list(ACTIVATION_PAIRS[pair])
        pairs = ACTIVATION_PAIRS.values() if pair == "all six" else [ACTIVATION_PAIRS[pair]]
        x = torch.linspace(lo, hi, 801, dtype=torch.float64)
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for name in names:
            style = "--" if name.startswith("h-") or name == "ReLU6" else "-"
            ax.plot(x.numpy(), ACTIVATIONS[name](x).numpy(), style, label=name)
        for k in (-3, 3):
            if lo <= k <= hi:
                ax.axvline(k, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.legend(ncol=3, fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        show_figure(fig)
        devs = {}
        for a, b in pairs:
            d, at = max_deviation(a, b, lo, hi)
            devs[f"{a} vs {b}"] = (d, at)
            print(f"max |{a} − {b}| on [{lo:g}, {hi:g}] = {d:.4f} at x = {at:.3f}")
        return {"pair": pair, "x_range": (lo, hi), "names": names, "max_deviation": devs}

    return _live(controls, render)


def _hswish_formula(x: torch.Tensor) -> torch.Tensor:
    return x * F.relu6(x + 3) / 6


def _swish_formula(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


# name -> element-wise function; "formula" rows are written out op by op, the others are fused kernels.
ACTIVATION_IMPLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ReLU (F.relu)": F.relu,
    "sigmoid (torch.sigmoid)": torch.sigmoid,
    "h-sigmoid (F.hardsigmoid)": F.hardsigmoid,
    "swish formula x*sigmoid(x)": _swish_formula,
    "swish fused (F.silu)": F.silu,
    "h-swish formula x*relu6(x+3)/6": _hswish_formula,
    "h-swish fused (F.hardswish)": F.hardswish,
}


@dataclass
class CostRow:
    """One activation's measured cost per element."""

    name: str
    numel: int
    ns_per_element: float
    result: LatencyResult

    def as_row(self) -> dict:
        r = self.result
        return {"activation": self.name, "ns/element": self.ns_per_element,
                "ms per call": r.median_ms, "IQR ms": r.iqr_ms}


def _tensor(numel: int, device) -> torch.Tensor:
    check_int("numel", numel)
    return torch.randn(numel, device=resolve_device(device)[0]) * 4


def activation_costs(numel: int = 1 << 22, device="auto", names: list[str] | None = None,
                     min_run_time: float | None = None) -> list[CostRow]:
    """Measured time per element of each activation on one large tensor (values spread over ±12)."""
    names = list(ACTIVATION_IMPLS) if names is None else names
    for n in names:
        check_choice("names", n, tuple(ACTIVATION_IMPLS))
    x = _tensor(numel, device)
    rows = []
    for n in names:
        fn = ACTIVATION_IMPLS[n]
        res = latency(lambda fn=fn: fn(x), input_size=(1,), device=x.device, min_run_time=min_run_time)
        rows.append(CostRow(n, numel, res.median_ms * 1e6 / numel, res))
    return rows


def _timed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def run():
        fn(x)
        sync()

    return run


def _ratio(fn_a, fn_b, x: torch.Tensor, rounds: int | None) -> RatioResult:
    return interleaved_ratio(_timed(fn_a, x), _timed(fn_b, x), rounds=rounds or pick(20, 5), number=3)


def hswish_vs_swish(numel: int = 1 << 22, device="auto", rounds: int | None = None) -> dict[str, RatioResult]:
    """Interleaved time ratios h-swish / swish: fused kernels, and the formulas op by op.

    A ratio below 1 means h-swish is the cheaper one on this machine.
    """
    x = _tensor(numel, device)
    return {
        "fused: F.hardswish / F.silu": _ratio(F.hardswish, F.silu, x, rounds),
        "formula: x*relu6(x+3)/6 / x*sigmoid(x)": _ratio(_hswish_formula, _swish_formula, x, rounds),
    }


def fused_vs_formula(numel: int = 1 << 22, device="auto", rounds: int | None = None) -> RatioResult:
    """Interleaved time ratio F.hardswish / x*relu6(x+3)/6: what fusing the op into one kernel buys."""
    x = _tensor(numel, device)
    return _ratio(F.hardswish, _hswish_formula, x, rounds)


def verdict(ratio: RatioResult, a: str = "h-swish", b: str = "swish") -> str:
    """Plain words for an A/B time ratio, honest about overlap: the IQR must clear 1 by 5 %."""
    if ratio.q3 < 0.95:
        return f"{a} is cheaper here: it takes {100 * ratio.ratio:.0f} % of {b}'s time."
    if ratio.q1 > 1.05:
        return f"{a} is NOT cheaper here: it takes {100 * ratio.ratio:.0f} % of {b}'s time."
    return f"no clear difference here: {a} takes {100 * ratio.ratio:.0f} % of {b}'s time (IQR spans ~1)."


# --------------------------------------------------------------------------- redesigned layers

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


# --------------------------------------------------------------------------- whole networks


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

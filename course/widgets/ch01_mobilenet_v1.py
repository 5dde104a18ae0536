"""Chapter 01 (MobileNet V1): the cost of depthwise-separable convolutions, α and ρ, where the work goes.

Every number is computed (formulas checked against fvcore on real layers) or measured
(``course.measure.latency``); the paper's printed numbers sit beside ours as data.
"""

from __future__ import annotations

from functools import lru_cache


import matplotlib.pyplot as plt
import torch
from torch import nn

from ..env import pick
from ..validate import check_int
from ..viz import WidgetHandle, live_output, show_figure
from ..measure import conv_cost, count_flops, flops_by_module, latency
from ..models import MobileNetV1
from ..ablations import ABLATIONS
from ..mobilenet_ablations import CH01, PAPER_MULTIPLIERS, nearest_trained, reference_summaries, trained_points

__all__ = [
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PAPER_MULTIPLIERS",
    "ALPHAS",
    "RESOLUTIONS",
    "WidgetHandle",
    "separable_cost",
    "separable_layers",
    "fvcore_cost",
    "table3_walk",
    "paper_params",
    "multiplier_cost",
    "plot_multiplier_scaling",
    "cost_by_layer_type",
    "plot_layer_types",
    "cost_widget",
    "multiplier_widget",
]

# Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
# Applications", arXiv 1704.04861; each table below names the paper's table it copies.
PAPER_TABLE2 = {  # Table 2: share of Mult-Adds and of Parameters, in %
    "Conv 1×1": (94.86, 74.59),
    "Conv DW 3×3": (3.06, 1.06),
    "Conv 3×3": (1.19, 0.02),
    "Fully Connected": (0.18, 24.33),
}
PAPER_TABLE3 = [  # Table 3: one 14×14×512 layer, cumulative; (Million Mult-Adds, Million Params)
    ("Convolution", 462.0, 2.36),
    ("Depthwise Separable Conv", 52.3, 0.27),
    ("α = 0.75", 29.6, 0.15),
    ("ρ = 0.714", 15.1, 0.15),
]
ALPHAS = (0.25, 0.5, 0.75, 1.0)
RESOLUTIONS = (128, 160, 192, 224)


def separable_cost(kernel: int, in_channels: int, out_channels: int, size: int) -> dict:
    """Params and mult-adds of a standard k×k conv and of its depthwise-separable replacement (Eq. 2, 4, 5).

    Stride 1, same-size output (D_F × D_F), no bias, as in the paper's formulas.
    """
    for name, v in (("kernel", kernel), ("in_channels", in_channels), ("out_channels", out_channels), ("size", size)):
        check_int(name, v)
    standard = conv_cost(kernel, in_channels, out_channels, size)
    depthwise = conv_cost(kernel, in_channels, in_channels, size, groups=in_channels)
    pointwise = conv_cost(1, in_channels, out_channels, size)
    separable = {k: depthwise[k] + pointwise[k] for k in standard}
    return {
        "standard": standard,
        "depthwise": depthwise,
        "pointwise": pointwise,
        "separable": separable,
        "ratio": separable["mult_adds"] / standard["mult_adds"],
        "ratio_formula": 1 / out_channels + 1 / kernel**2,
    }


def separable_layers(kernel: int, in_channels: int, out_channels: int) -> tuple[nn.Module, nn.Module]:
    """Real layers for the formulas: a standard conv and a depthwise + pointwise pair (no BN, no bias)."""
    for name, v in (("kernel", kernel), ("in_channels", in_channels), ("out_channels", out_channels)):
        check_int(name, v)
    pad = (kernel - 1) // 2
    standard = nn.Conv2d(in_channels, out_channels, kernel, padding=pad, bias=False)
    separable = nn.Sequential(
        nn.Conv2d(in_channels, in_channels, kernel, padding=pad, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
    )
    return standard, separable


@lru_cache(maxsize=256)
def fvcore_cost(kernel: int, in_channels: int, out_channels: int, size: int) -> dict:
    """fvcore's mult-adds and the parameter count of the real layers (odd kernels keep the size)."""
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd so the output keeps the input size, got {kernel!r}")
    standard, separable = separable_layers(kernel, in_channels, out_channels)
    shape = (1, in_channels, size, size)
    with torch.no_grad():
        return {
            "standard": {"params": sum(p.numel() for p in standard.parameters()),
                         "mult_adds": count_flops(standard, shape)},
            "separable": {"params": sum(p.numel() for p in separable.parameters()),
                          "mult_adds": count_flops(separable, shape)},
        }


def table3_walk(verify: bool = True) -> list[dict]:
    """The paper's Table 3: one 14×14×512 → 512 layer made cheaper step by step.

    Full conv, then depthwise separable, then α = 0.75 (384 channels), then ρ = 0.714
    (224 → 160 input, so this layer's map is 10×10). With ``verify`` each step's mult-adds
    are also counted by fvcore on real layers.
    """
    steps = [("Convolution", 512, 14, False), ("Depthwise Separable Conv", 512, 14, True),
             ("α = 0.75", int(0.75 * 512), 14, True), ("ρ = 0.714", int(0.75 * 512), round(0.714 * 14), True)]
    rows = []
    for (name, channels, size, sep), (_, paper_madds, paper_params) in zip(steps, PAPER_TABLE3):
        cost = separable_cost(3, channels, channels, size)["separable" if sep else "standard"]
        row = {"layer": name, "channels": channels, "size": size,
               "mult_adds_M": cost["mult_adds"] / 1e6, "params_M": cost["params"] / 1e6,
               "paper_mult_adds_M": paper_madds, "paper_params_M": paper_params}
        if verify:
            row["fvcore_mult_adds_M"] = fvcore_cost(3, channels, channels, size)[
                "separable" if sep else "standard"]["mult_adds"] / 1e6
        rows.append(row)
    return rows


def paper_params(model: nn.Module) -> int:
    """Parameters as the paper counts them: conv and fully connected weights (+ FC bias), no BN.

    Batch norm folds into the preceding conv at inference, so the paper's 4.2M leaves it out.
    """
    return sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
               for p in m.parameters(recurse=False))


def _check_multipliers(alpha, resolution) -> None:
    if alpha not in ALPHAS:
        raise ValueError(f"alpha must be one of {ALPHAS}, got {alpha!r}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")


@lru_cache(maxsize=32)
def multiplier_cost(alpha: float, resolution: int) -> dict:
    """Params (paper's way and all) and fvcore mult-adds of MobileNet-α at input resolution × resolution."""
    _check_multipliers(alpha, resolution)
    model = MobileNetV1(width_mult=alpha)
    paper = PAPER_MULTIPLIERS.get((alpha, resolution))
    return {
        "alpha": alpha,
        "resolution": resolution,
        "rho": resolution / 224,
        "params_M": paper_params(model) / 1e6,
        "params_with_bn_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "mult_adds_M": count_flops(model, (1, 3, resolution, resolution)) / 1e6,
        "paper": None if paper is None else {"top1": paper[0], "mult_adds_M": paper[1], "params_M": paper[2]},
    }


def plot_multiplier_scaling(alphas=ALPHAS, resolutions=RESOLUTIONS):
    """Mult-adds against α (at 224) and against ρ (at α = 1): ours, the paper's, and the α², ρ² laws."""
    base = multiplier_cost(1.0, 224)["mult_adds_M"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    sweeps = ((axes[0], [(a, 224) for a in alphas], lambda c: c["alpha"], "width multiplier α"),
              (axes[1], [(1.0, r) for r in resolutions], lambda c: c["rho"], "resolution multiplier ρ (input / 224)"))
    for ax, points, x_of, label in sweeps:
        costs = [multiplier_cost(*p) for p in points]
        xs = [x_of(c) for c in costs]
        ax.plot(xs, [c["mult_adds_M"] for c in costs], "o-", label="ours (fvcore)")
        paper = [(x_of(c), c["paper"]["mult_adds_M"]) for c in costs if c["paper"]]
        if paper:
            ax.plot(*zip(*paper), "s", mfc="none", ms=9, label="paper")
        ax.plot(xs, [base * x**2 for x in xs], "k:", label="568.8M × (multiplier)²")
        ax.set_xlabel(label)
        ax.set_ylabel("million mult-adds")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _layer_type(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "Fully Connected"
    if isinstance(module, nn.Conv2d):
        if module.kernel_size == (1, 1):
            return "Conv 1×1"
        if module.groups == module.in_channels == module.out_channels and module.groups > 1:
            return "Conv DW 3×3"
        return "Conv 3×3"
    return None


def cost_by_layer_type(model: nn.Module | None = None, input_size=(1, 3, 224, 224)) -> dict:
    """Share of mult-adds and of parameters per layer type (the paper's Table 2), from fvcore per module."""
    model = MobileNetV1() if model is None else model
    per_module = flops_by_module(model, input_size)
    totals = {name: {"mult_adds": 0, "params": 0} for name in PAPER_TABLE2}
    for name, module in model.named_modules():
        kind = _layer_type(module)
        if kind is None:
            continue
        if kind not in totals:
            raise ValueError(f"module {name!r} ({module}) is not one of the paper's layer types {list(totals)}")
        totals[kind]["mult_adds"] += per_module.get(name, 0)
        totals[kind]["params"] += sum(p.numel() for p in module.parameters(recurse=False))
    all_madds = sum(t["mult_adds"] for t in totals.values())
    all_params = sum(t["params"] for t in totals.values())
    return {kind: {**t, "mult_adds_pct": 100 * t["mult_adds"] / all_madds, "params_pct": 100 * t["params"] / all_params,
                   "paper_mult_adds_pct": PAPER_TABLE2[kind][0], "paper_params_pct": PAPER_TABLE2[kind][1]}
            for kind, t in totals.items()}


def plot_layer_types(shares: dict):
    """Grouped bars: our share of mult-adds and params per layer type beside the paper's Table 2."""
    kinds = list(shares)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, key, title in ((axes[0], "mult_adds_pct", "Mult-Adds (%)"), (axes[1], "params_pct", "Parameters (%)")):
        xs = range(len(kinds))
        ax.bar([x - 0.2 for x in xs], [shares[k][key] for k in kinds], 0.4, label="ours (fvcore)")
        ax.bar([x + 0.2 for x in xs], [shares[k]["paper_" + key] for k in kinds], 0.4, label="paper, Table 2")
        ax.set_xticks(list(xs), kinds, fontsize=8)
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    return fig


def _fmt(n: float) -> str:
    return f"{n / 1e6:,.3f} M" if n >= 1e5 else f"{n:,.0f}"


def cost_widget(kernel: int = 3, in_channels: int = 256, out_channels: int = 256, size: int = 28,
                verify: bool = True) -> WidgetHandle:
    """Pick D_K, M, N, D_F: params and mult-adds of a standard vs a depthwise-separable layer.

    With ``verify`` the formulas are recounted by fvcore on real ``nn.Conv2d`` layers; the
    choices are capped (channels ≤ 512, maps ≤ 56) so that count stays under a second or so.
    """
    import ipywidgets as W

    channel_choices = [16, 32, 64, 128, 256, 512]
    controls = {
        "kernel": W.Dropdown(options=[1, 3, 5, 7], value=kernel, description="D_K (kernel)"),
        "in_channels": W.Dropdown(options=channel_choices, value=in_channels, description="M (in)"),
        "out_channels": W.Dropdown(options=channel_choices, value=out_channels, description="N (out)"),
        "size": W.Dropdown(options=[7, 14, 28, 56], value=size, description="D_F (map)"),
        "verify": W.Checkbox(value=verify, description="recount with fvcore"),
    }
    state: dict = {}

    def update(kernel, in_channels, out_channels, size, verify):
        c = separable_cost(kernel, in_channels, out_channels, size)
        state.clear()
        state.update(c)
        lines = [f"{'':12s}{'params':>14s}{'mult-adds':>16s}"]
        for key in ("standard", "depthwise", "pointwise", "separable"):
            lines.append(f"{key:12s}{_fmt(c[key]['params']):>14s}{_fmt(c[key]['mult_adds']):>16s}")
        saving = (f"{1 / c['ratio']:.1f}× less computation" if c["ratio"] < 1
                  else f"{c['ratio']:.4f}× the computation: a 1×1 kernel has nothing spatial to factor out")
        lines.append(f"separable / standard = {c['ratio']:.4f}  (1/N + 1/D_K² = {c['ratio_formula']:.4f}, "
                     f"i.e. {saving})")
        if verify:
            fv = fvcore_cost(kernel, in_channels, out_channels, size)
            state["fvcore"] = fv
            agree = all(fv[k][q] == c[k][q] for k in ("standard", "separable") for q in ("params", "mult_adds"))
            state["fvcore_agrees"] = agree
            lines.append(f"fvcore on real layers: standard {_fmt(fv['standard']['mult_adds'])}, separable "
                         f"{_fmt(fv['separable']['mult_adds'])} mult-adds -> "
                         + ("formula and fvcore agree" if agree else "MISMATCH with the formula"))
        print("\n".join(lines))
        fig, ax = plt.subplots(figsize=(7.5, 2.4))
        ax.barh(["standard"], [c["standard"]["mult_adds"] / 1e6], color="tab:red",
                label=f"standard {kernel}×{kernel} conv")
        ax.barh(["separable"], [c["depthwise"]["mult_adds"] / 1e6], color="tab:blue", label="depthwise")
        ax.barh(["separable"], [c["pointwise"]["mult_adds"] / 1e6], left=[c["depthwise"]["mult_adds"] / 1e6],
                color="tab:cyan", label="pointwise 1×1")
        std_m, dw_m, pw_m = (c[k]["mult_adds"] / 1e6 for k in ("standard", "depthwise", "pointwise"))
        # the depthwise part is often too thin to see: the numbers say it
        ax.text(std_m, 0, f" {std_m:,.1f} M", va="center", fontsize=8)
        ax.text(dw_m + pw_m, 1, f" {dw_m + pw_m:,.1f} M = {dw_m:,.1f} + {pw_m:,.1f}", va="center", fontsize=8)
        ax.set_xlim(0, 1.35 * max(std_m, dw_m + pw_m))
        ax.set_xlabel("million mult-adds")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside, not on, the bars
        fig.tight_layout()
        state["bars_M"] = {"standard": c["standard"]["mult_adds"] / 1e6,
                           "depthwise": c["depthwise"]["mult_adds"] / 1e6,
                           "pointwise": c["pointwise"]["mult_adds"] / 1e6}
        show_figure(fig)

    out = live_output(update, controls)
    box = W.VBox([W.HBox([controls["kernel"], controls["size"]]),
                  W.HBox([controls["in_channels"], controls["out_channels"]]), controls["verify"], out])
    return WidgetHandle(box, controls, state)


def _trained_line(alpha: float, rho: float, points: list[dict], reference_missing: bool) -> tuple[str, dict | None]:
    """What the widget can say about accuracy at (α, ρ): the nearest trained network's, or that none is known."""
    near = nearest_trained(alpha, rho, points)
    if near is None:
        why = (" and no reference run is recorded" if reference_missing else "")
        widths = ", ".join(f"{v.width_mult:g}" for v in ABLATIONS["ch01_width"].variants)
        smaller = [v for v in ABLATIONS["ch01_resolution"].variants if v.imgsz]
        sizes, alpha_r = sorted({v.imgsz for v in smaller}), "/".join(sorted({f"{v.width_mult:g}" for v in smaller}))
        return (f"Glyphs-10 test accuracy is only known at the trained points (α = {widths} at the recipe's input; "
                f"α = {alpha_r} also at {', '.join(f'{s} px' for s in sizes)}): none is trained yet{why}; see Section 6."), None
    spread = near.get("test_acc_std")
    pm = f" ± {100 * spread:.1f}" if spread is not None and spread == spread else ""
    where = ("this point" if near["exact"] else
             f"the nearest trained point, α = {near['alpha']:g} at ρ = {near['rho']:.2f} ({near['imgsz']} px on Glyphs-10)")
    return (f"Glyphs-10 test accuracy at {where}: {100 * near['test_acc']:.1f}{pm} % ({near['source']}, "
            f"{near['seeds']} seed{'s' if near['seeds'] > 1 else ''}); known only at trained points, not in between."), near


def multiplier_widget(alpha: float = 1.0, resolution: int = 224, measure: bool = True,
                      min_run_time: float | None = None, trained: dict | None = None,
                      reference="auto") -> WidgetHandle:
    """Pick α and the input size: our MobileNet's params, mult-adds and latency beside Tables 6–7.

    Latency is ``course.measure.latency`` at batch 1 with a short run time (so the widget
    stays responsive); it is noisier than the chapter's main measurement. Accuracy: the
    Glyphs-10 test accuracy of the nearest trained variant, from ``trained`` (the learner's
    summaries by ablation name, ``course.mobilenet_ablations.run_chapter``), else from the
    reference run (``reference``: "auto" reads results/, or summaries by name, or None), else
    a plain statement that accuracy is only known where a network was trained. ρ of a trained
    network is its input size over the recipe's, the widget's ρ its input over 224.
    """
    import ipywidgets as W

    _check_multipliers(alpha, resolution)
    refs = reference_summaries(CH01) if reference == "auto" else (reference or {})
    points = trained_points(trained) or trained_points(refs, source="reference run")
    min_run_time = min_run_time if min_run_time is not None else pick(0.3, 0.05)
    controls = {
        "alpha": W.Dropdown(options=list(ALPHAS), value=alpha, description="α (width)"),
        "resolution": W.Dropdown(options=list(RESOLUTIONS), value=resolution, description="input (ρ·224)"),
    }
    state: dict = {}

    def update(alpha, resolution):
        c = multiplier_cost(alpha, resolution)
        state.clear()
        state.update(c)
        p = c["paper"]
        paper = (lambda k, f: "—") if p is None else (lambda k, f: format(p[k], f))
        print(f"MobileNet α={alpha}, {resolution}×{resolution} (ρ = {c['rho']:.3f})")
        print(f"{'':22s}{'ours':>10s}{'paper':>10s}")
        print(f"{'million mult-adds':22s}{c['mult_adds_M']:10.1f}{paper('mult_adds_M', 'g'):>10s}")
        print(f"{'million params':22s}{c['params_M']:10.3f}{paper('params_M', 'g'):>10s}")
        print(f"{'ImageNet top-1 %':22s}{'—':>10s}{paper('top1', 'g'):>10s}")
        line, near = _trained_line(alpha, c["rho"], points, not any(refs.values()))
        state["trained"] = near
        print(line)
        print(f"α² = {alpha ** 2:.3f}, ρ² = {c['rho'] ** 2:.3f}: cost ≈ α²ρ² × 568.8M = "
              f"{alpha ** 2 * c['rho'] ** 2 * multiplier_cost(1.0, 224)['mult_adds_M']:.1f}M")
        if measure:
            r = latency(MobileNetV1(width_mult=alpha), (1, 3, resolution, resolution), device="cpu",
                        min_run_time=min_run_time)
            state["latency"] = r
            print(f"latency: {r}")

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), out]), controls, state)

"""Chapter 03 — MobileNet V3: the widgets that draw squeeze-and-excite and the hard activations.

They draw what ``course.se`` and ``course.activations`` compute.
"""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..activations import ACTIVATION_PAIRS, ACTIVATIONS, max_deviation
from ..blocks import SqueezeExcitation
from ..models import MobileNetV3
from ..se import (
    IMAGE_KINDS,
    REDUCTIONS,
    V3_TABLES,
    calibrate_batchnorm,
    network_se_params,
    se_cost,
    se_gates,
    se_modules,
    synthetic_image,
)
from ..viz import WidgetHandle, live_output, show_figure

__all__ = ["WidgetHandle", "se_gate_widget", "glyph_images", "plot_se_activation", "plot_class_gates", "se_cost_widget",
           "activation_widget"]

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

def _se_label(name: str, se: SqueezeExcitation) -> str:
    return f"{name} ({se.fc1.in_channels} ch → {se.fc1.out_channels})"


def se_gate_widget(model: nn.Module | None = None, size: int = 224,
                   images: dict[str, torch.Tensor] | None = None) -> WidgetHandle:
    """Per-channel SE gates on a test image.

    ``images``: named (1, 3, H, W) inputs (``glyph_images`` picks Glyphs-10 test images); default,
    pictures generated in code at ``size``. Default model: MobileNetV3-Small with random weights and
    BN statistics calibrated on the images (``calibrate_batchnorm``); pass a (trained) model to see
    its own gates unchanged.
    """
    images = {k: synthetic_image(k, size) for k in IMAGE_KINDS} if images is None else dict(images)
    if not images:
        raise ValueError("images must name at least one (1, 3, H, W) tensor, got an empty dict")
    if model is None:
        model = calibrate_batchnorm(MobileNetV3("small"), torch.cat(list(images.values())))
    model.eval()
    modules = se_modules(model)
    if not modules:
        raise ValueError("model has no SqueezeExcitation modules")
    controls = {
        "image": widgets.Dropdown(options=list(images), value="rings" if "rings" in images else next(iter(images)),
                                  description="image", layout=widgets.Layout(width="300px")),
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


def glyph_images(images: torch.Tensor, labels: torch.Tensor, per_class: int = 2) -> dict[str, torch.Tensor]:
    """The first ``per_class`` test images of each class, named "class #k", for ``se_gate_widget``."""
    from ..data.glyphs import CLASS_NAMES

    out: dict[str, torch.Tensor] = {}
    for k, name in enumerate(CLASS_NAMES):
        for j, i in enumerate((labels == k).nonzero().flatten()[:per_class].tolist()):
            out[f"{name} #{j + 1}"] = images[i:i + 1]
    return out


def plot_se_activation(summary: list[dict], reference: list[dict] | None = None, title: str = ""):
    """Left: test accuracy per variant (± std, reference hatched); right: accuracy against measured CPU latency."""
    from ..ablation_plots import plot_ablation, plot_tradeoff

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_ablation(summary, reference, title="test accuracy", ax=left)
    plot_tradeoff(summary, "latency_ms", reference, title="accuracy against latency", ax=right, log_x=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_class_gates(study: dict, layer: str):
    """Mean gate per class (rows) and channel (columns) in one SE layer, trained beside random weights."""
    from ..data.glyphs import CLASS_NAMES

    labels = study["labels"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    for ax, key, name in zip(axes, ("trained_gates", "random_gates"), ("trained", "random weights")):
        g = study[key][layer]
        means = torch.stack([g[labels == k].mean(0) for k in range(len(CLASS_NAMES))]).numpy()
        im = ax.imshow(means, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        row = next(r for r in study[key.replace("_gates", "")] if r["layer"] == layer)
        ax.set_title(f"{name}: class explains {100 * row['class_share']:.0f} % "
                     f"(chance {100 * row['chance_share']:.0f} %)", fontsize=9)
        ax.set_xlabel("channel")
    axes[0].set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES, fontsize=7)
    fig.colorbar(im, ax=axes, label="mean gate")
    fig.suptitle(f"{layer}: mean SE gate per class on Glyphs-10 test images", fontsize=10)
    return fig


def se_cost_widget() -> WidgetHandle:
    """What the SE costs as its reduction ratio changes, for any SE-bearing bneck of Large or Small."""
    options = [(f"{mode.title()} row {i + 1}: {c.in_channels}→{c.expanded}→{c.out_channels}, "
                f"{c.kernel}×{c.kernel}", (mode, i))
               for mode, table in V3_TABLES.items() for i, c in enumerate(table) if c.use_se]
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
        se_net, net = network_se_params(mode, reduction)
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


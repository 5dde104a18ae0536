"""Chapter 02 (MobileNet V2): why the bottleneck is linear, inverted vs classic residuals, ReLU6.

The pictures and widgets; the manifold experiment (the paper's Figure 1) is computed in
``course.manifold``, the block memory (its Table 3) in ``course.memory``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..manifold import EMBED_DIMS, relu_roundtrip
from ..memory import block_tensors
from ..viz import WidgetHandle, live_output, show_figure

__all__ = [
    "PAPER_V2",
    "plot_roundtrip",
    "manifold_widget",
    "plot_block_tensors",
    "block_widget",
    "plot_relu6",
]

# Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv 1801.04381:
# Table 4 (MAdds, params, top-1, Pixel-1 CPU ms); torchvision's mobilenet_v2 weights meta (num_params).
PAPER_V2 = {"mult_adds_M": 300, "params_M": 3.4, "top1": 72.0, "pixel1_cpu_ms": 75,
            "torchvision_params": 3_504_872}


def _draw_projected(ax, r: dict, title: str) -> None:
    """T⁺ReLU(Tx): the kept points coloured along the spiral, the collapsed ones grey; the same mask
    ``recovered_fraction`` counts."""
    xb, ok = r["projected"], r["recoverable"]
    ax.scatter(xb[~ok, 0], xb[~ok, 1], s=4, c="lightgray", label="collapsed")
    ax.scatter(xb[ok, 0], xb[ok, 1], s=4, c=np.arange(len(xb))[ok], cmap="viridis", label="kept")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")


def plot_roundtrip(results: list[dict]):
    """One panel per n: T⁺·ReLU(T·x), coloured along the spiral; points the ReLU collapsed in grey."""
    fig, axes = plt.subplots(1, len(results), figsize=(2.6 * len(results) + 0.4, 2.8), squeeze=False)
    for ax, r in zip(axes[0], results):
        _draw_projected(ax, r, f"n = {r['n']}: {100 * r['recovered_fraction']:.0f} % kept")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def manifold_widget(n: int = 2, seed: int = 0) -> WidgetHandle:
    """Pick the embedding dimension n (and the random T): how much of the spiral survives a ReLU."""
    import ipywidgets as W

    controls = {"n": W.Dropdown(options=list(EMBED_DIMS), value=n, description="n (dims)"),
                "seed": W.IntSlider(value=seed, min=0, max=9, description="seed (T)")}
    state: dict = {}

    def update(n, seed):
        r = relu_roundtrip(n, seed)
        state.clear()
        state.update(r)
        print(f"n = {n}: {100 * r['recovered_fraction']:.1f} % of the spiral's points are kept (coloured): around "
              f"them T⁺ReLU(Tx) is still one-to-one; on average {r['active_per_point'].mean():.1f} of {n} "
              "coordinates survive the ReLU.")
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(6.4, 3))
        x = r["points"]
        a0.scatter(x[:, 0], x[:, 1], s=4, c=np.arange(len(x)), cmap="viridis")
        a0.set_title("input manifold", fontsize=9)
        a0.set_aspect("equal")
        _draw_projected(a1, r, f"T⁺ ReLU(T x), n = {n}: {100 * r['recovered_fraction']:.0f} % kept")
        fig.tight_layout()
        show_figure(fig)

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), out]), controls, state)


def plot_block_tensors(inverted: list[dict], classic: list[dict]):
    """Widths through both blocks side by side; the tensors the skip connection keeps are hatched."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
    for ax, rows, title in ((axes[0], classic, "classic residual (wide → narrow → wide)"),
                            (axes[1], inverted, "inverted residual (narrow → wide → narrow)")):
        bars = ax.bar(range(len(rows)), [r["channels"] for r in rows],
                      color=["tab:orange" if i in (0, len(rows) - 1) else "tab:blue" for i in range(len(rows))])
        for i in (0, len(rows) - 1):
            bars[i].set_hatch("//")
        for i, r in enumerate(rows):
            ax.text(i, r["channels"], f"{r['kB_16bit']:.0f} kB", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rows)), [r["layer"] for r in rows], fontsize=7, rotation=15)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("channels")
    axes[0].set_ylim(0, 1.15 * max(r["channels"] for r in classic + inverted))  # room for the kB labels
    fig.tight_layout()
    return fig


def block_widget(channels: int = 24, t: int = 6, size: int = 56, stride: int = 1) -> WidgetHandle:
    """Pick the expansion t (and k, map size, stride): widths and 16-bit memory of both block designs."""
    import ipywidgets as W

    controls = {"t": W.IntSlider(value=t, min=1, max=10, description="expansion t"),
                "channels": W.Dropdown(options=[16, 24, 32, 64, 96, 160, 320], value=channels,
                                       description="k (thin)"),
                "size": W.Dropdown(options=[112, 56, 28, 14, 7], value=size, description="map h=w"),
                "stride": W.Dropdown(options=[1, 2], value=stride, description="stride")}
    state: dict = {}

    def update(t, channels, size, stride):
        inv = block_tensors("inverted", channels, t, size, stride)
        cls = block_tensors("classic", channels, t, size, stride)
        state.clear()
        state.update({"inverted": inv, "classic": cls,
                      "skip_kB": {"inverted": inv[0]["kB_16bit"], "classic": cls[0]["kB_16bit"]}})
        for name, rows in (("inverted", inv), ("classic", cls)):
            widths = " → ".join(str(r["channels"]) for r in rows)
            print(f"{name:9s} {widths:28s} elements " + ", ".join(f"{r['elements']:,}" for r in rows))
        print(f"the skip connection holds the block's input while the branch runs: "
              f"{inv[0]['kB_16bit']:.0f} kB (inverted) vs {cls[0]['kB_16bit']:.0f} kB (classic), 16-bit")
        show_figure(plot_block_tensors(inv, cls))

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox([controls["t"], controls["channels"]]),
                                W.HBox([controls["size"], controls["stride"]]), out]), controls, state)


def plot_relu6():
    """ReLU6 = min(max(x, 0), 6) beside ReLU: bounded, so a low-precision format can cover its whole range."""
    x = np.linspace(-3, 9, 400)
    fig, ax = plt.subplots(figsize=(5, 2.8))
    ax.plot(x, np.maximum(x, 0), "--", label="ReLU")
    ax.plot(x, np.clip(x, 0, 6), label="ReLU6")
    ax.axhline(6, color="gray", lw=0.5)
    ax.set_xlabel("x")
    ax.legend()
    fig.tight_layout()
    return fig

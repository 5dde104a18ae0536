"""Chapter 02 (MobileNet V2): why the bottleneck is linear, inverted vs classic residuals, ReLU6.

The manifold experiment follows the paper's Figure 1; memory follows its Table 3
(16-bit activations, 1 kB = 1000 bytes).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..viz import WidgetHandle, live_output, show_figure

__all__ = [
    "PAPER_V2",
    "EMBED_DIMS",
    "spiral",
    "relu_roundtrip",
    "plot_roundtrip",
    "manifold_widget",
    "block_tensors",
    "plot_block_tensors",
    "block_widget",
    "plot_relu6",
]

# Sandler et al. 2018, "MobileNetV2", arXiv 1801.04381 (facts in shared/reference/papers.md §4).
PAPER_V2 = {"mult_adds_M": 300, "params_M": 3.4, "top1": 72.0, "pixel1_cpu_ms": 75,
            "torchvision_params": 3_504_872}
EMBED_DIMS = (2, 3, 5, 15, 30)


def spiral(n_points: int = 400) -> np.ndarray:
    """A 2-D spiral (n_points × 2) that winds twice around the origin without touching it."""
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    theta = np.linspace(0.5, 4 * np.pi, n_points)
    r = theta / (4 * np.pi)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def relu_roundtrip(n: int, seed: int = 0, points: np.ndarray | None = None) -> dict:
    """Figure 1: embed 2-D points in n dimensions by a random T, apply ReLU, project back by T⁺.

    A point is *recoverable* when the coordinates ReLU kept (those with Tx > 0) still span
    2-D: those rows of T can then be inverted exactly. ``recovered_fraction`` is the share
    of such points; the rest of the manifold was collapsed by the ReLU for good.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (the embedding dimension), got {n!r}")
    x = spiral() if points is None else np.asarray(points, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"points must have shape (k, 2), got {x.shape}")
    T = np.random.default_rng(seed).standard_normal((n, 2))
    z = x @ T.T
    y = np.maximum(z, 0)
    x_back = y @ np.linalg.pinv(T).T
    active = z > 0
    ok = np.array([np.linalg.matrix_rank(T[a]) == 2 for a in active])
    return {"n": n, "seed": seed, "points": x, "T": T, "relu": y, "projected": x_back,
            "recoverable": ok, "recovered_fraction": float(ok.mean()),
            "active_per_point": active.sum(axis=1)}


def plot_roundtrip(results: list[dict]):
    """One panel per n: T⁺·ReLU(T·x), coloured along the spiral; points the ReLU destroyed in grey."""
    fig, axes = plt.subplots(1, len(results), figsize=(2.6 * len(results) + 0.4, 2.8), squeeze=False)
    for ax, r in zip(axes[0], results):
        xb, ok = r["projected"], r["recoverable"]
        ax.scatter(xb[~ok, 0], xb[~ok, 1], s=4, c="lightgray")
        ax.scatter(xb[ok, 0], xb[ok, 1], s=4, c=np.arange(len(xb))[ok], cmap="viridis")
        ax.set_title(f"n = {r['n']}: {100 * r['recovered_fraction']:.0f} % kept", fontsize=9)
        ax.set_aspect("equal")
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
        print(f"n = {n}: {100 * r['recovered_fraction']:.1f} % of the spiral's points can be recovered exactly "
              f"from ReLU(Tx); on average {r['active_per_point'].mean():.1f} of {n} coordinates survive the ReLU.")
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(6.4, 3))
        x = r["points"]
        a0.scatter(x[:, 0], x[:, 1], s=4, c=np.arange(len(x)), cmap="viridis")
        a0.set_title("input manifold", fontsize=9)
        xb, ok = r["projected"], r["recoverable"]
        a1.scatter(xb[~ok, 0], xb[~ok, 1], s=4, c="lightgray", label="collapsed")
        a1.scatter(xb[ok, 0], xb[ok, 1], s=4, c=np.arange(len(xb))[ok], cmap="viridis")
        a1.set_title(f"T⁺ ReLU(T x), n = {n}", fontsize=9)
        for ax in (a0, a1):
            ax.set_aspect("equal")
        fig.tight_layout()
        show_figure(fig)

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), out]), controls, state)


def block_tensors(kind: str, channels: int, t: float, size: int, stride: int = 1) -> list[dict]:
    """The four tensors through a bottleneck block, with their widths and 16-bit memory.

    ``inverted`` (MobileNet V2): k → tk (1×1) → tk (3×3 dw, stride) → k (linear 1×1); the skip
    joins the thin ends. ``classic`` (ResNet): tk → k (1×1) → k (3×3) → tk (1×1); the skip joins
    the wide ends. ``channels`` is k, the thin width, so both blocks carry the same information
    in their bottleneck.
    """
    if kind not in ("inverted", "classic"):
        raise ValueError(f"kind must be 'inverted' or 'classic', got {kind!r}")
    for name, v in (("channels", channels), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if t < 1:
        raise ValueError(f"t must be >= 1 (the expansion factor), got {t!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    wide = int(round(t * channels))
    out_size = (size - 1) // stride + 1
    if kind == "inverted":
        layers = [("input", channels, size), ("expand 1×1 + ReLU6", wide, size),
                  ("depthwise 3×3 + ReLU6", wide, out_size), ("project 1×1 (linear)", channels, out_size)]
    else:
        layers = [("input", wide, size), ("reduce 1×1 + ReLU", channels, size),
                  ("3×3 conv + ReLU", channels, out_size), ("expand 1×1", wide, out_size)]
    return [{"layer": name, "channels": c, "size": s, "elements": c * s * s, "kB_16bit": c * s * s * 2 / 1000}
            for name, c, s in layers]


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

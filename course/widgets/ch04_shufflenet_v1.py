"""Chapter 04 (ShuffleNet V1): group convolution, its blind spot, and the channel shuffle that fixes it.

The pictures draw what ``course.groups`` reads off real group convolutions (their Jacobian).
Complexity is fvcore's count on ``course.models.ShuffleNetV1``; the paper's printed numbers
sit beside ours as data.
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..blocks import channel_shuffle
from ..env import pick
from ..groups import channel_reach, check_groups, group_conv_counts, group_reach
from ..viz import WidgetHandle, live_output, show_figure
from ..measure import count_flops, count_params, latency
from ..models import ShuffleNetV1, load_torchvision_weights
from ..tables import text_table

__all__ = [
    "PAPER_SOURCE",
    "PAPER_COMPLEXITY",
    "PAPER_STAGE_CHANNELS",
    "PAPER_TOP1_ERR",
    "PAPER_SHUFFLE_EFFECT",
    "GROUPS",
    "WidgetHandle",
    "plot_connectivity",
    "group_conv_widget",
    "plot_group_mixing",
    "mixing_widget",
    "shuffle_steps",
    "plot_shuffle_steps",
    "shuffle_widget",
    "shuffle_implementations",
    "compare_with_reference",
    "v1_complexity",
    "v1_table",
    "format_v1_table",
    "plot_v1_table",
    "describe_latency",
]

PAPER_SOURCE = "Zhang, Zhou, Lin, Sun, ShuffleNet, CVPR 2018, arXiv:1707.01083"
GROUPS = (1, 2, 3, 4, 8)
# Table 1: complexity (MFLOPs = million multiply-adds) and stage 2–4 output channels at 1×.
PAPER_COMPLEXITY = {1: 143, 2: 140, 3: 137, 4: 133, 8: 137}
PAPER_STAGE_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                        4: (272, 544, 1088), 8: (384, 768, 1536)}
# Table 2: ImageNet classification error (%) by g, for three widths (trained models; paper only).
PAPER_TOP1_ERR = {
    "1×": {1: 33.6, 2: 32.7, 3: 32.6, 4: 32.8, 8: 32.4},
    "0.5×": {1: 45.1, 2: 44.4, 3: 43.2, 4: 41.6, 8: 42.3},
    "0.25×": {1: 57.1, 2: 56.8, 3: 55.0, 4: 54.2, 8: 52.7},
}
# Table 3: error (%) without → with channel shuffle.
PAPER_SHUFFLE_EFFECT = {
    ("1×", 3): (34.5, 32.6), ("1×", 8): (37.6, 32.4),
    ("0.5×", 3): (45.7, 43.2), ("0.5×", 8): (48.1, 42.3),
    ("0.25×", 3): (56.3, 55.0), ("0.25×", 8): (56.5, 52.7),
}


def _group_colors(groups: int):
    cmap = plt.get_cmap("tab10" if groups <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(groups)]


def plot_connectivity(channels: int, groups: int):
    """A 1×1 group conv (channels → channels): bipartite lines beside its connectivity matrix."""
    conv = nn.Conv2d(channels, channels, 1, groups=groups, bias=False)
    reach = channel_reach(conv, channels)
    colors = _group_colors(groups)
    per = channels // groups
    fig, (ax_lines, ax_mat) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.4, 1]})
    for j, i in zip(*np.nonzero(reach)):
        ax_lines.plot([i, j], [1, 0], color=colors[j // per], lw=0.8, alpha=0.7)
    ax_lines.scatter(range(channels), [1] * channels, c=[colors[i // per] for i in range(channels)], zorder=3)
    ax_lines.scatter(range(channels), [0] * channels, c=[colors[i // per] for i in range(channels)], zorder=3)
    ax_lines.set_yticks([0, 1], ["output", "input"])
    ax_lines.set_xticks([])
    ax_lines.set_title(f"1×1 conv, {channels} channels, g = {groups}: {int(reach.sum())} connections")
    ax_mat.imshow(reach, cmap="Greys", vmin=0, vmax=1)
    ax_mat.set_xlabel("input channel")
    ax_mat.set_ylabel("output channel")
    ax_mat.set_title("weights that exist (black)")
    fig.tight_layout()
    return fig, reach


def group_conv_widget(channels: int = 12, groups: int = 3, layer_channels: int = 240, size: int = 28) -> WidgetHandle:
    """Pick g: who connects to whom in a small 1×1 group conv, and the counts for a real layer.

    The counts are for a ``layer_channels`` → ``layer_channels`` 1×1 conv on a size×size map
    (ShuffleNet's stage 2 at g = 3 is 240 channels at 28×28).
    """
    import ipywidgets as W

    choices = [g for g in (1, 2, 3, 4, 6, 8, 12) if channels % g == 0 and layer_channels % g == 0]
    if groups not in choices:
        raise ValueError(f"groups must be one of {choices} for channels={channels}, layer_channels={layer_channels}; "
                         f"got {groups!r}")
    controls = {"groups": W.Dropdown(options=choices, value=groups, description="groups g")}
    state: dict = {}

    def update(groups):
        counts = group_conv_counts(layer_channels, layer_channels, groups, 1, size)
        fig, reach = plot_connectivity(channels, groups)
        state.clear()
        state.update(groups=groups, connections=int(reach.sum()), inputs_per_output=int(reach.sum(1)[0]), **counts)
        print(f"g = {groups}: each output channel sees {state['inputs_per_output']} of {channels} inputs.")
        print(f"1×1 conv {layer_channels}→{layer_channels} on {size}×{size}: {counts['params']:,} params, "
              f"{counts['mult_adds'] / 1e6:.2f} M mult-adds (dense: {counts['dense_params']:,} / "
              f"{counts['dense_mult_adds'] / 1e6:.2f} M) → {counts['reduction']:.0f}× fewer")
        show_figure(fig)

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([controls["groups"], out]), controls, state)


def plot_group_mixing(channels: int, groups: int, depth: int):
    """Heatmaps of input-group → output-group reach after ``depth`` group convs, without and with shuffle."""
    maps = {flag: group_reach(channels, groups, depth, flag) for flag in (False, True)}
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, flag in zip(axes, (False, True)):
        im = ax.imshow(maps[flag], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(("with" if flag else "no") + f" shuffle: {depth} group convs, g = {groups}", fontsize=9)
        ax.set_xlabel("input group")
        ax.set_ylabel("output group")
        ax.set_xticks(range(groups))
        ax.set_yticks(range(groups))
    fig.colorbar(im, ax=axes, shrink=0.8, label="fraction of channel pairs connected")
    return fig, maps


def mixing_widget(groups: int = 3, channels_per_group: int = 4, depth: int = 2) -> WidgetHandle:
    """Pick g, channels per group and depth: does information cross groups, without and with shuffle?"""
    import ipywidgets as W

    controls = {
        "groups": W.IntSlider(value=groups, min=2, max=8, description="groups g"),
        "channels_per_group": W.IntSlider(value=channels_per_group, min=1, max=8, description="channels/group"),
        "depth": W.IntSlider(value=depth, min=1, max=4, description="depth"),
    }
    state: dict = {}

    def update(groups, channels_per_group, depth):
        fig, maps = plot_group_mixing(groups * channels_per_group, groups, depth)
        seen = {flag: int((m > 0).sum(1).min()) for flag, m in maps.items()}
        state.clear()
        state.update(groups=groups, channels=groups * channels_per_group, depth=depth,
                     no_shuffle=maps[False], shuffle=maps[True], min_groups_seen=seen)
        print(f"{groups * channels_per_group} channels, g = {groups}, {depth} group conv(s): every output group "
              f"sees at least {seen[False]} input group(s) without shuffle, {seen[True]} with shuffle.")
        show_figure(fig)

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), out]), controls, state)


# ----------------------------------------------------------------------------- channel shuffle

def shuffle_steps(channels: int, groups: int) -> dict[str, torch.Tensor]:
    """Channel ids after each step of the shuffle: reshape (g, c/g) → transpose → flatten."""
    check_groups(channels, groups)
    ids = torch.arange(channels)
    reshaped = ids.view(groups, channels // groups)
    transposed = reshaped.t()
    return {"before": ids, "reshaped": reshaped, "transposed": transposed, "flattened": transposed.reshape(-1)}


def plot_shuffle_steps(channels: int = 12, groups: int = 3):
    """Four panels of coloured channels (colour = the group a channel came from), one per step."""
    steps = shuffle_steps(channels, groups)
    per = channels // groups
    colors = np.array(_group_colors(groups))
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), gridspec_kw={"width_ratios": [3, 1.5, 1.5, 3]})
    titles = {"before": "before (group by group)", "reshaped": f"reshape → ({groups}, {per})",
              "transposed": f"transpose → ({per}, {groups})", "flattened": "flatten: shuffled"}
    for ax, (key, ids) in zip(axes, steps.items()):
        grid = ids.view(1, -1) if ids.dim() == 1 else ids
        ax.imshow(colors[(grid // per).numpy()])
        for (r, c), v in np.ndenumerate(grid.numpy()):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=8, color="white")
        ax.set_title(titles[key], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig, steps


def shuffle_widget(channels: int = 12, groups: int = 3) -> WidgetHandle:
    """Pick the channel count and g: the shuffle drawn step by step."""
    import ipywidgets as W

    controls = {"channels": W.Dropdown(options=[6, 8, 12, 16, 24], value=channels, description="channels"),
                "groups": W.Dropdown(options=[2, 3, 4, 6, 8], value=groups, description="groups g")}
    state: dict = {}

    def update(channels, groups):
        state.clear()
        if channels % groups:
            state.update(error=f"g = {groups} does not divide {channels} channels")
            print(f"g = {groups} does not divide {channels} channels: pick another pair.")
            return
        fig, steps = plot_shuffle_steps(channels, groups)
        state.update(channels=channels, groups=groups, order=steps["flattened"].tolist())
        print(f"new order of the {channels} channels: {state['order']}")
        show_figure(fig)

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), out]), controls, state)


def shuffle_implementations() -> dict:
    """Every library channel shuffle we can find, as ``fn(x, groups)``: course, torchvision, torch."""
    from torchvision.models import shufflenetv2

    impls = {"course.blocks.channel_shuffle": channel_shuffle,
             "torchvision shufflenetv2.channel_shuffle": shufflenetv2.channel_shuffle}
    if hasattr(torch.nn.functional, "channel_shuffle"):
        impls["torch.nn.functional.channel_shuffle"] = torch.nn.functional.channel_shuffle
    if hasattr(torch.nn, "ChannelShuffle"):
        impls["torch.nn.ChannelShuffle"] = lambda x, g: torch.nn.ChannelShuffle(g)(x)
    return impls


def compare_with_reference(mine: nn.Module, reference: nn.Module, input_size=(2, 240, 28, 28)) -> dict:
    """Copy the reference's weights into ``mine`` (tensor by tensor, in order) and compare outputs.

    Equal parameter counts and a zero difference on the same input mean the two are the same block.
    """
    load_torchvision_weights(mine, reference)
    mine.eval()
    reference.eval()
    x = torch.randn(input_size)
    with torch.no_grad():
        a, b = mine(x), reference(x)
    return {"params": count_params(mine), "reference_params": count_params(reference),
            "shape": tuple(a.shape), "max_abs_diff": float((a - b).abs().max()) if a.shape == b.shape else float("inf")}


# ----------------------------------------------------------------------------- the network

@lru_cache(maxsize=8)
def v1_complexity(groups: int) -> dict:
    """Our ShuffleNet 1× (g groups): fvcore mult-adds, params and stage widths, beside Table 1."""
    if groups not in GROUPS:
        raise ValueError(f"groups must be one of {GROUPS}, got {groups!r}")
    model = ShuffleNetV1(groups=groups)
    return {"groups": groups, "mflops": count_flops(model) / 1e6, "params_M": count_params(model) / 1e6,
            "stage_channels": tuple(model.feature_channels), "paper_mflops": PAPER_COMPLEXITY[groups],
            "paper_stage_channels": PAPER_STAGE_CHANNELS[groups], "paper_top1_err": PAPER_TOP1_ERR["1×"][groups]}


def v1_table(groups=None, measure_latency: bool = True, device: str = "cpu", min_run_time: float | None = None,
             input_size=(1, 3, 224, 224), cuda_graph: bool = False) -> list[dict]:
    """One row per g: our complexity and params, measured latency (``course.measure.latency``), the paper's.

    Quick mode keeps g = 1, 3, 8. ``cuda_graph`` replays a captured graph on a GPU (no launch overhead).
    """
    groups = tuple(pick(GROUPS, (1, 3, 8)) if groups is None else groups)
    for g in groups:
        if g not in GROUPS:
            raise ValueError(f"groups must be a subset of {GROUPS}, got {groups!r}")
    rows = []
    for g in groups:
        row = dict(v1_complexity(g))
        if measure_latency:
            row["latency"] = latency(ShuffleNetV1(groups=g), input_size, device=device, min_run_time=min_run_time,
                                     cuda_graph=cuda_graph)
        rows.append(row)
    return rows


def format_v1_table(rows: list[dict]) -> str:
    """Text table: ours (computed / measured) beside the paper's Tables 1 and 2."""
    def slashed(channels):
        return "/".join(map(str, channels))

    table = text_table(
        [{**r, "ms": r["latency"].median_ms if "latency" in r else None} for r in rows],
        {"groups": "g", "mflops": "MFLOPs", "paper_mflops": "paper", "params_M": "params M",
         "stage_channels": "stage 2/3/4 channels", "paper_stage_channels": "paper", "ms": "latency ms",
         "paper_top1_err": "paper err %"},
        formats={"mflops": "{:.1f}", "params_M": "{:.3f}", "ms": "{:.2f}", "paper_top1_err": "{:.1f}",
                 "stage_channels": slashed, "paper_stage_channels": slashed})
    lines = [table]
    timed = [r["latency"] for r in rows if "latency" in r]
    if timed:
        lines.append(f"latency: {timed[0].device_name}, {timed[0].threads} threads, batch {timed[0].batch}, "
                     f"torch {timed[0].torch_version}{' [' + timed[0].note + ']' if timed[0].note else ''}")
    lines.append(f"paper: {PAPER_SOURCE}, Table 1 (MFLOPs, channels), Table 2 (ImageNet top-1 error, 1×, trained)")
    return "\n".join(lines)


def plot_v1_table(rows: list[dict]):
    """MFLOPs ours vs paper by g, and measured latency by g (when timed)."""
    gs = [r["groups"] for r in rows]
    xs = np.arange(len(gs))
    timed = all("latency" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(10 if timed else 5, 3.2), squeeze=False)
    ax = axes[0, 0]
    ax.bar(xs - 0.2, [r["mflops"] for r in rows], 0.4, label="ours (fvcore)")
    ax.bar(xs + 0.2, [r["paper_mflops"] for r in rows], 0.4, label="paper, Table 1")
    ax.set_xticks(xs, [f"g={g}" for g in gs])
    ax.set_ylabel("million mult-adds")
    ax.set_ylim(0, 1.3 * max(max(r["mflops"], r["paper_mflops"]) for r in rows))  # the legend sits above the bars
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    if timed:
        lat = [r["latency"] for r in rows]
        axes[0, 1].bar(xs, [t.median_ms for t in lat], yerr=[t.iqr_ms / 2 for t in lat], color="tab:green")
        axes[0, 1].set_xticks(xs, [f"g={g}" for g in gs])
        axes[0, 1].set_ylabel("ms per image (median)")
        axes[0, 1].set_title(f"{lat[0].device_name}, batch {lat[0].batch}", fontsize=8)
    fig.tight_layout()
    return fig


def describe_latency(rows: list[dict]) -> str:
    """One sentence from the measured rows: how far latency spreads while FLOPs stay put."""
    timed = [r for r in rows if "latency" in r]
    if len(timed) < 2:
        return "Fewer than two networks were timed: nothing to compare."
    fast = min(timed, key=lambda r: r["latency"].median_ms)
    slow = max(timed, key=lambda r: r["latency"].median_ms)
    flops = [r["mflops"] for r in timed]
    return (f"On {fast['latency'].device_name}, the slowest network (g = {slow['groups']}, "
            f"{slow['latency'].median_ms:.2f} ms) takes {slow['latency'].median_ms / fast['latency'].median_ms:.2f}× "
            f"the time of the fastest (g = {fast['groups']}, {fast['latency'].median_ms:.2f} ms), while their "
            f"FLOPs differ by at most {100 * (max(flops) - min(flops)) / max(flops):.1f} %.")

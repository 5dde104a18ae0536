"""Chapter 05 (ShuffleNet V2): FLOPs are not speed, memory access cost, the four guidelines, the unit.

Speeds are measured on the learner's machine (``course.measure.latency``), FLOPs counted by
fvcore, MAC from the paper's formulas (``course.measure.mac_conv1x1``); the guideline
experiments come from ``course.guidelines``. The paper's numbers sit beside ours as data.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .. import guidelines as G
from ..blocks import ShuffleV1Unit, ShuffleV2Block
from ..env import pick, quick_mode
from ..measure import count_flops, count_params, latency, mac_curve, mac_formula
from ..measure import mac_point
from ..models import build_model, load_torchvision_weights, torchvision_reference
from ..tables import text_table
from ..validate import check_int
from ..viz import WidgetHandle, live_output, show_figure
from .ch04_shufflenet_v1 import compare_with_reference

__all__ = [
    "PAPER_SOURCE",
    "PAPER_V2_MFLOPS",
    "PAPER_V2_PARAMS_M",
    "TORCHVISION_V2_PARAMS",
    "PAPER_TABLE8",
    "COURSE_MODELS",
    "V2_SCALES",
    "WidgetHandle",
    "compare_with_reference",
    "model_flops",
    "flops_latency",
    "format_flops_latency",
    "plot_flops_latency",
    "describe_flops_latency",
    "plot_mac",
    "mac_widget",
    "run_experiments",
    "reference_runs",
    "describe_run",
    "guideline_widget",
    "op_counts",
    "unit_audit",
    "format_audit",
    "v2_network_rows",
    "format_v2_rows",
]

PAPER_SOURCE = "Ma, Zhang, Zheng, Sun, ShuffleNet V2, ECCV 2018, arXiv:1807.11164"
V2_SCALES = (0.5, 1.0, 1.5, 2.0)
# Table 5: FLOPs (million multiply-adds) and # of weights (millions) per scale.
PAPER_V2_MFLOPS = {0.5: 41, 1.0: 146, 1.5: 299, 2.0: 591}
PAPER_V2_PARAMS_M = {0.5: 1.4, 1.0: 2.3, 1.5: 3.5, 2.0: 7.4}
# torchvision's weights metadata (num_params) for shufflenet_v2_x0_5 … x2_0.
TORCHVISION_V2_PARAMS = {0.5: 1_366_792, 1.0: 2_278_604, 1.5: 3_503_624, 2.0: 7_393_996}
# Table 8 rows for the models this course builds: (MFLOPs, top-1 err %, GPU batches/s, ARM images/s).
PAPER_TABLE8 = {
    "shufflenet_v2_x0_5": (41, 39.7, 417, 57.0),
    "shufflenet_v2_x1_0": (146, 30.6, 341, 24.4),
    "shufflenet_v2_x1_5": (299, 27.4, 255, 11.8),
    "shufflenet_v2_x2_0": (591, 25.1, 217, 6.7),
    "shufflenet_v1": (140, 32.6, 213, 21.8),
    "mobilenet_v1": (569, 29.4, 247, 6.5),
    "mobilenet_v2": (300, 28.0, 180, 8.9),
}
COURSE_MODELS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v1",
                 "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")
QUICK_MODELS = ("shufflenet_v1", "shufflenet_v2_x1_0")
_RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"


# ----------------------------------------------------------------------------- FLOPs vs speed

@lru_cache(maxsize=16)
def model_flops(name: str) -> int:
    """fvcore multiply-adds of one course model at 224×224 (cached: the trace is slow)."""
    return count_flops(build_model(name))


def flops_latency(names=None, device: str = "cpu", batch: int = 1, min_run_time: float | None = None,
                  cuda_graph: bool = False) -> list[dict]:
    """For each course model: mult-adds and measured latency on ``device`` (quick mode: ShuffleNet V1 g=3 and V2 1×)."""
    names = tuple(pick(COURSE_MODELS, QUICK_MODELS) if names is None else names)
    bad = [n for n in names if n not in COURSE_MODELS]
    if not names or bad:
        raise ValueError(f"names must be a non-empty subset of {COURSE_MODELS}, got {names!r}")
    check_int("batch", batch)
    rows = []
    for n in names:
        r = latency(build_model(n), (batch, 3, 224, 224), device=device, min_run_time=min_run_time,
                    cuda_graph=cuda_graph)
        rows.append({"name": n, "mflops": model_flops(n) / 1e6, "latency": r,
                     "paper": PAPER_TABLE8.get(n)})
    return rows


def format_flops_latency(rows: list[dict]) -> str:
    """Text table sorted by FLOPs, with the paper's speeds where Table 8 has the model."""
    table = text_table(
        [{"name": r["name"], "mflops": r["mflops"], "ms": r["latency"].median_ms, "iqr": r["latency"].iqr_ms,
          "per_s": r["latency"].per_second, "paper": None if r["paper"] is None else f"{r['paper'][2]}, {r['paper'][3]}"}
         for r in sorted(rows, key=lambda r: r["mflops"])],
        {"name": "model", "mflops": "MFLOPs", "ms": "ms (median)", "iqr": "IQR", "per_s": "img/s",
         "paper": "paper: GPU batch/s, ARM img/s"},
        formats={"mflops": "{:.1f}", "ms": "{:.2f}", "iqr": "{:.2f}", "per_s": "{:.1f}"}, align={"paper": "<"})
    return f"{table}\nmeasured: {rows[0]['latency']}"


def plot_flops_latency(rows: list[dict], ax=None):
    """Scatter of mult-adds against measured latency, one labelled point per model (the paper's Fig. 1 idea)."""
    fig, ax = (plt.subplots(figsize=(7, 4)) if ax is None else (ax.figure, ax))
    for r in rows:
        fam = r["name"].split("_")[0] + r["name"].split("_")[1][:2]
        color = {"mobilenetv1": "tab:blue", "mobilenetv2": "tab:orange", "mobilenetv3": "tab:green",
                 "shufflenetv1": "tab:purple", "shufflenetv2": "tab:red"}.get(fam, "grey")
        ax.errorbar(r["mflops"], r["latency"].median_ms, yerr=r["latency"].iqr_ms / 2, fmt="o", color=color, capsize=2)
        ax.annotate(r["name"], (r["mflops"], r["latency"].median_ms), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    t = rows[0]["latency"]
    ax.set_xlabel("million mult-adds (fvcore)")
    ax.set_ylabel("latency, ms (median, IQR bar)")
    ax.set_title(f"{t.device_name}, {t.threads} threads, batch {t.batch}, torch {t.torch_version}", fontsize=8)
    fig.tight_layout()
    return fig


def describe_flops_latency(rows: list[dict]) -> str:
    """One sentence from the measured rows: how many model pairs run in the opposite order of their FLOPs."""
    if len(rows) < 2:
        return "Fewer than two models were timed: nothing to compare."
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    flipped = [(a["name"], b["name"]) for a, b in pairs
               if (a["mflops"] - b["mflops"]) * (a["latency"].median_ms - b["latency"].median_ms) < 0]
    example = f" (e.g. {flipped[0][0]} vs {flipped[0][1]})" if flipped else ""
    return (f"On {rows[0]['latency'].device_name}: {len(flipped)} of {len(pairs)} model pairs run in the opposite "
            f"order of their FLOPs{example} — if FLOPs were speed, that number would be 0.")


# ----------------------------------------------------------------------------- memory access cost

def plot_mac(point: dict):
    """Left: MAC against c2:c1 at the point's FLOPs. Right: MAC against g at fixed c1, hw and FLOPs (Eq. 2)."""
    h, w, c1, g = point["h"], point["w"], point["c1"], point["groups"]
    curve = mac_curve(h, w, point["flops"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    a.plot(curve["ratios"], curve["mac"] / 1e3, label="dense 1×1 conv, same FLOPs")
    a.axhline(curve["bound"] / 1e3, color="grey", ls=":", label="lower bound (Eq. 1)")
    a.plot(point["c2"] / point["c1"], point["mac"] / 1e3, "o", color="tab:red", label=f"your conv (g = {g})")
    a.set_xscale("log")
    a.set_xlabel("c2 : c1")
    a.set_ylabel("MAC (thousands)")
    a.legend(fontsize=7)
    gs = np.array([1, 2, 4, 8, 16, 32])
    b.plot(gs, mac_formula(h, w, c1, point["flops"] * gs / (h * w * c1), gs) / 1e3, "o-")
    b.set_xscale("log", base=2)
    b.set_xlabel("groups g (c1, hw and FLOPs fixed)")
    b.set_ylabel("MAC (thousands)")
    b.set_title("Eq. 2: MAC = hw·c1 + B·g/c1 + B/hw", fontsize=9)
    return fig


def mac_widget(h: int = 56, w: int = 56, c1: int = 128, c2: int = 128, groups: int = 1) -> WidgetHandle:
    """A MAC calculator: pick h, w, c1, c2, g → FLOPs, MAC and the bound, with both curves."""
    import ipywidgets as W

    controls = {
        "h": W.IntSlider(value=h, min=7, max=112, step=7, description="h"),
        "w": W.IntSlider(value=w, min=7, max=112, step=7, description="w"),
        "c1": W.IntSlider(value=c1, min=8, max=512, step=8, description="c1 (in)"),
        "c2": W.IntSlider(value=c2, min=8, max=512, step=8, description="c2 (out)"),
        "groups": W.Dropdown(options=[1, 2, 4, 8], value=groups, description="groups g"),
    }
    state: dict = {}

    def update(h, w, c1, c2, groups):
        p = mac_point(h, w, c1, c2, groups)
        state.clear()
        state.update(p)
        print(f"FLOPs B = hw·c1·c2/g = {p['flops']:,}   MAC = hw(c1+c2) + c1·c2/g = {p['mac']:,}")
        print(f"lower bound for this B (Eq. 1, reached at c1 = c2, g = 1) = {p['bound']:,.0f}; "
              f"MAC / bound = {p['mac_over_bound']:.3f}")
        show_figure(plot_mac(p))

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox([controls["h"], controls["w"], controls["groups"]]),
                                W.HBox([controls["c1"], controls["c2"]]), out]), controls, state)


# ----------------------------------------------------------------------------- guidelines

def run_experiments(guidelines=None, device: str = "auto", scales=(1,), quick: bool | None = None) -> dict:
    """Run the guideline experiments on this machine (default: all four at ×1; quick mode: G1 only)."""
    guidelines = tuple(pick(G.GUIDELINES, ("G1",)) if guidelines is None else guidelines)
    return G.run_guidelines(guidelines=guidelines, device=device, scales=scales, quick=quick, progress=False)


def reference_runs(directory: str | Path | None = None) -> list[tuple[Path, dict]]:
    """Saved reference runs ``results/guidelines_*_reference.json`` (e.g. a GPU run), validated."""
    directory = _RESULTS_DIR if directory is None else Path(directory)
    return [(p, G.load_results(p)) for p in sorted(directory.glob("guidelines_*_reference.json"))]


def describe_run(results: dict, label: str) -> str:
    """One line saying whose run this is, on what, when."""
    m = results["meta"]
    quick = " QUICK MODE" if m["quick"] else ""
    return (f"{label}: {m['device_name']} ({m['device']}), {m['threads']} threads, batch {m['batch']}, "
            f"torch {m['torch_version']}, {m['date']}{quick}")


def guideline_widget(initial: dict | None = None, quick: bool | None = None) -> WidgetHandle:
    """Pick guideline, scale and device; the experiment runs live and is plotted beside the paper's table.

    ``initial`` (a ``run_guidelines`` result) is reused for the starting selection, so building
    the widget costs nothing when the chapter has just run it. Quick mode keeps timing short.
    """
    import ipywidgets as W

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    first = next(iter(initial["guidelines"])) if initial else "G1"
    controls = {
        "guideline": W.Dropdown(options=list(G.GUIDELINES), value=first, description="guideline"),
        "scale": W.Dropdown(options=list(G.SCALES), value=1, description="scale ×"),
        "device": W.Dropdown(options=devices, value=devices[-1] if initial is None else initial["meta"]["device"],
                             description="device"),
    }
    cache: dict = {}
    if initial:
        for g in initial["guidelines"]:
            for s in initial["meta"]["scales"]:
                cache[(g, s, initial["meta"]["device"])] = initial
    state: dict = {}
    quick = quick_mode() if quick is None else quick

    def update(guideline, scale, device):
        key = (guideline, scale, device)
        if key not in cache:
            print(f"running {guideline} at ×{scale} on {device} …")
            cache[key] = G.run_guidelines(guidelines=(guideline,), device=device, scales=(scale,), quick=quick,
                                          progress=False, min_run_time=None if quick else 0.3)
        res = cache[key]
        one = {**res, "meta": {**res["meta"], "scales": [scale]},
               "guidelines": {guideline: {**res["guidelines"][guideline],
                                          "points": [p for p in res["guidelines"][guideline]["points"]
                                                     if p["scale"] == scale]}}}
        sentence = G.verdicts(one)[guideline]
        state.clear()
        state.update(guideline=guideline, scale=scale, device=device, verdict=sentence,
                     rows=G.compare_with_paper(one))
        print(describe_run(one, "this run"))
        print(sentence)
        fig = G.plot_guidelines(one, guidelines=[guideline])
        show_figure(fig)

    out = live_output(update, controls)
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), out]), controls, state)


# ----------------------------------------------------------------------------- the unit, tied to G1–G4

def op_counts(module: nn.Module, input_size) -> Counter:
    """Operators one forward pass runs (from a TorchScript trace of the real module), e.g. aten::add."""
    import warnings

    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, torch.randn(input_size), check_trace=False)
    return Counter(n.kind() for n in traced.inlined_graph.nodes() if n.kind().startswith("aten::"))


def _pointwise_convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]


def unit_audit(v2: nn.Module | None = None, v1: nn.Module | None = None, hw: int = 28) -> list[dict]:
    """G1–G4 checked on a stride-1 ShuffleNet V2 unit and, for contrast, a ShuffleNet V1 unit.

    Every entry is read off the modules or a trace of their forward pass.
    """
    v2 = ShuffleV2Block(116, 116, 1) if v2 is None else v2
    v1 = ShuffleV1Unit(240, 240, 3, 1) if v1 is None else v1
    rows = []
    for name, unit in (("ShuffleNet V2 unit", v2), ("ShuffleNet V1 unit (g=3)", v1)):
        c = unit.in_channels
        pw = _pointwise_convs(unit)
        ops = op_counts(unit, (1, c, hw, hw))
        convs = ops["aten::_convolution"] + ops["aten::conv2d"]
        adds = ops["aten::add"] + ops["aten::add_"]
        relus = ops["aten::relu"] + ops["aten::relu_"]
        rows.append({
            "unit": name,
            "G1 1×1 widths (in→out)": [(m.in_channels, m.out_channels) for m in pw],
            "G1 equal widths": all(m.in_channels == m.out_channels for m in pw),
            "G2 1×1 groups": [m.groups for m in pw],
            "G2 no group conv": all(m.groups == 1 for m in pw),
            "G3 convs in the unit": convs,
            "G3 channel split / identity branch": ops["aten::chunk"] + ops["aten::split"] > 0,
            "G4 element-wise adds": adds,
            "G4 ReLUs": relus,
            "concat": ops["aten::cat"],
        })
    return rows


def format_audit(rows: list[dict]) -> str:
    """The audit transposed: one line per property, one column per unit."""
    units = range(len(rows))
    return text_table([{"property": k, **{i: rows[i][k] for i in units}} for k in rows[0] if k != "unit"],
                      {"property": "", **{i: rows[i]["unit"] for i in units}})


def v2_network_rows(scales=None, input_hw: int | None = None, flops: bool = True) -> list[dict]:
    """Per scale: our params, torchvision's, their documented count, output equality, mult-adds vs Table 5."""
    scales = tuple(pick(V2_SCALES, (0.5, 1.0)) if scales is None else scales)
    bad = [s for s in scales if s not in V2_SCALES]
    if not scales or bad:
        raise ValueError(f"scales must be a non-empty subset of {V2_SCALES}, got {scales!r}")
    input_hw = pick(224, 64) if input_hw is None else input_hw
    rows = []
    for s in scales:
        name = f"shufflenet_v2_x{str(s).replace('.', '_')}"
        ours, theirs = build_model(name).eval(), torchvision_reference(name).eval()
        load_torchvision_weights(ours, theirs)
        x = torch.randn(2, 3, input_hw, input_hw)
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        rows.append({
            "scale": s, "name": name, "params": count_params(ours), "torchvision_params": count_params(theirs),
            "torchvision_documented": TORCHVISION_V2_PARAMS[s], "paper_params_M": PAPER_V2_PARAMS_M[s],
            "max_abs_diff": float((a - b).abs().max()), "output_scale": float(b.abs().max()), "input_hw": input_hw,
            "mflops": model_flops(name) / 1e6 if flops else None, "paper_mflops": PAPER_V2_MFLOPS[s],
        })
    return rows


def format_v2_rows(rows: list[dict]) -> str:
    table = text_table(
        rows, {"scale": "scale", "params": "ours", "torchvision_params": "torchvision",
               "torchvision_documented": "documented", "paper_params_M": "paper", "max_abs_diff": "max |Δ| out",
               "mflops": "MFLOPs", "paper_mflops": "paper"},
        formats={"scale": "{}", "paper_params_M": "{}M", "max_abs_diff": "{:.1e}", "mflops": "{:.1f}"}, align={"scale": ">"})
    hw = rows[0]["input_hw"]
    return (f"{table}\noutputs compared on a 2×3×{hw}×{hw} input after copying torchvision's random weights "
            f"into ours; paper: {PAPER_SOURCE}, Table 5")

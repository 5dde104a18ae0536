"""What MobileNet V1's α and ρ, its separable convs, and V2's linear bottleneck buy: chapters 01–02 on Glyphs-10.

The training and the statistics are ``course.ablations``'; this module plans a chapter's runs
(how many, how long, from the recipe and a short probe of this machine), trains them once
(a variant shared by two ablations is trained once), sets the learner's run beside the
reference run and the papers' tables, and says in sentences what the numbers show.
A variant is found by what it is (its width, input size, surgery), never by a typed label.
"""

from __future__ import annotations

import math
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from .ablations import (ABLATIONS, CHANCE, build_variant, difference, load_reference, measure_latencies, reference_rows,
                        run_ablation, summarize)
from .ablation_plots import COST_LABELS, plot_ablation
from .classify import lr_words, recipe

__all__ = ["PAPER_MULTIPLIERS", "PAPER_TABLE4", "CHANCE", "training_plan", "describe_plan", "run_chapter",
           "reference_summaries", "reference_note", "trained_points", "nearest_trained", "plot_alpha_rho",
           "width_table", "resolution_table", "separable_table", "v1_findings", "bottleneck_labels",
           "bottleneck_findings", "plot_bottleneck", "v1_tables", "winner", "CH01", "provenance", "bottleneck_table"]

# Howard et al. 2017 (arXiv 1704.04861), Tables 6–7 and Table 9's 0.50-160:
# (α, input px) -> (ImageNet top-1 %, million mult-adds, million parameters).
PAPER_MULTIPLIERS = {
    (1.0, 224): (70.6, 569, 4.2),
    (0.75, 224): (68.4, 325, 2.6),
    (0.5, 224): (63.7, 149, 1.3),
    (0.25, 224): (50.6, 41, 0.5),
    (1.0, 192): (69.1, 418, 4.2),
    (1.0, 160): (67.2, 290, 4.2),
    (1.0, 128): (64.4, 186, 4.2),
    (0.5, 160): (60.2, 76, 1.32),
}
# Table 4: the same network with full convolutions vs depthwise separable ones (α = 1, 224 px).
PAPER_TABLE4 = {"full conv": (71.7, 4866, 29.3), "separable": (70.6, 569, 4.2)}

CH01 = ("ch01_width", "ch01_resolution", "ch01_separable")


def _check_names(names) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if n not in ABLATIONS]
    if not names or bad:
        raise ValueError(f"names must be a non-empty list from {list(ABLATIONS)}, got {names!r}")
    return names


def _unique_variants(names, done=None, seeds=(0,)):
    seen, out = set(done or {}), []
    for name in names:
        for v in ABLATIONS[name].variants:
            for seed in seeds:
                if (v.key, seed) not in seen:
                    seen.add((v.key, seed))
                    out.append(v)
    return out


def _probe_step_s(model: nn.Module, batch: int, size: int, steps: int) -> float:
    """Median seconds of one SGD step (forward, backward, update) on random images: this machine's pace."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    model.train()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def training_plan(names, done=None, mode: str | None = None, probe_steps: int = 2) -> dict:
    """The runs a chapter's ablations still need and how long they should take here.

    For each variant not yet in ``done``: steps = epochs × batches per epoch from the recipe,
    times one probed training step on this machine (plus about 15 % for validation and precise
    BN), capped by the recipe's ``time_budget_s``. An estimate, printed as one.
    """
    names = _check_names(names)
    if isinstance(probe_steps, bool) or not isinstance(probe_steps, int) or probe_steps < 1:
        raise ValueError(f"probe_steps must be an int >= 1, got {probe_steps!r}")
    rec = recipe(mode)
    steps = rec["epochs"] * max(1, rec["n_train"] // rec["batch_size"])
    runs = []
    for v in _unique_variants(names, done):
        size = v.imgsz or rec["imgsz"]
        step_s = _probe_step_s(build_variant(v), rec["batch_size"], size, probe_steps)
        est = min(rec["time_budget_s"], 1.15 * steps * step_s)
        runs.append(dict(label=v.label, key=v.key, imgsz=size, step_s=step_s, estimate_s=est))
    lr = lr_words([v.model for name in names for v in ABLATIONS[name].variants], mode)
    return dict(names=names, runs=runs, steps=steps, recipe=rec, lr=lr, threads=torch.get_num_threads(),
                estimate_s=sum(r["estimate_s"] for r in runs), cap_s=len(runs) * rec["time_budget_s"])


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def describe_plan(plan: dict) -> str:
    """The plan in words: data, recipe, runs, estimated and longest time."""
    rec = plan["recipe"]
    lines = [f"Data: Glyphs-10 (course.data.glyphs, drawn from seed {rec['data_seed']}): "
             f"{rec['n_train']:,} train / {rec['n_val']:,} val / {rec['n_test']:,} test images at {rec['imgsz']} px.",
             f"Recipe: {rec['epochs']} epochs × {plan['steps'] // rec['epochs']} steps of {rec['batch_size']} images, "
             f"{rec['optimizer']} lr {plan['lr']}, label smoothing {rec['label_smoothing']}; best-on-val weights "
             f"scored once on test.",
             f"{len(plan['runs'])} runs to train ({', '.join(r['label'] for r in plan['runs']) or 'none: all done'}).",
             f"Estimated time on this CPU ({plan['threads']} threads, from a probe of one training step each): "
             f"about {_duration(plan['estimate_s'])}; at most {_duration(plan['cap_s'])} "
             f"(the recipe stops each run before {rec['time_budget_s']:.0f} s)."]
    return "\n".join(lines)


def run_chapter(names, done: dict | None = None, mode: str | None = None, threads: int | None = None,
                progress: bool = True, latencies: bool = True) -> dict[str, list[dict]]:
    """Train every ablation of ``names`` (one seed: the learner's run) into summaries, CPU latency added."""
    names = _check_names(names)
    done = {} if done is None else done
    out = {}
    timed: dict[str, dict] = {}
    for name in names:
        summary = summarize(run_ablation(name, mode=mode, threads=threads, progress=progress, done=done))
        if latencies:  # a shared network is timed once, so it is one point in every figure
            new = [r for r in summary if r["key"] not in timed]
            timed.update({r["key"]: r for r in measure_latencies(new, name, mode=mode, threads=threads)} if new else {})
            summary = [{**r, **{k: timed[r["key"]][k] for k in ("latency_ms", "latency_iqr_ms", "latency_threads")}}
                       for r in summary]
        out[name] = summary
    return out


def reference_summaries(names, reference: dict | None = None) -> dict[str, list[dict] | None]:
    """The reference run's summary per ablation (None where it has not been recorded)."""
    names = _check_names(names)
    reference = load_reference() if reference is None else reference
    return {n: reference_rows(n, reference) if reference else None for n in names}


def reference_note(refs: dict[str, list[dict] | None], reference: dict | None = None) -> str:
    """One line: which reference run is shown (what produced it), or plainly that there is none yet."""
    missing = [n for n, rows in refs.items() if rows is None]
    if len(missing) == len(refs):
        return ("No reference run recorded yet (results/ablations_cpu.json is made by "
                "`python benchmarks/ablations.py`): only your own run is shown, with one seed and so no spread.")
    reference = load_reference() if reference is None else reference
    m = (reference or {}).get("machine", {})
    seeds = (reference or {}).get("seeds", [])
    note = (f"Reference run: {len(seeds)} seeds (mean ± std), {m.get('device', '?')} {m.get('cpu', '')}, "
            f"{m.get('threads', '?')} threads, torch {m.get('torch_version', '?')}, {m.get('date', '?')}.")
    return note + (f" Not recorded for: {', '.join(missing)}." if missing else "")


# --- chapter 01: α and ρ ---------------------------------------------------------------------------

def _rows(summary, name):
    """Each summary row with its Variant."""
    ablation = ABLATIONS[name]
    return [(r, ablation.variant(r["label"])) for r in summary or [] if r["label"] in ablation.labels()]


def _alphas(name: str) -> str:
    """The width multipliers an ablation trains, as the chapter writes them ('0.25', '0.25/0.5')."""
    return "/".join(f"{a:g}" for a in sorted({v.width_mult for v in ABLATIONS[name].variants}))


def _baseline_words(name: str) -> str:
    """An ablation's baseline as the tables name it: its width, and its input size where not the recipe's."""
    v = ABLATIONS[name].variant(ABLATIONS[name].baseline)
    return f"α = {v.width_mult:g}" + (f" at {v.imgsz} px" if v.imgsz else "")


def _base_imgsz(runs: dict) -> int:
    """The input size the width sweep trained at: ρ = 1 on our data."""
    return max(r["imgsz"] for r in runs["ch01_width"])


def trained_points(runs: dict | None, source: str = "your run") -> list[dict]:
    """Every trained plain (separable) V1 as (α, ρ, accuracy): ρ is the input size over the width sweep's."""
    if not runs or not runs.get("ch01_width"):
        return []
    base = _base_imgsz(runs)
    points = {}
    for name in ("ch01_width", "ch01_resolution"):
        for r, v in _rows(runs.get(name), name):
            if v.surgery:
                continue
            points[v.key] = dict(label=r["label"], alpha=v.width_mult, rho=r["imgsz"] / base, imgsz=r["imgsz"],
                                 test_acc=r["test_acc"], test_acc_std=r.get("test_acc_std"), seeds=r["seeds"],
                                 source=source)
    return list(points.values())


def nearest_trained(alpha: float, rho: float, points: list[dict]) -> dict | None:
    """The trained point closest to (α, ρ) (Euclidean in the two multipliers), with ``exact`` set; None if none."""
    if not points:
        return None
    best = min(points, key=lambda p: (p["alpha"] - alpha) ** 2 + (p["rho"] - rho) ** 2)
    return {**best, "exact": math.isclose(best["alpha"], alpha) and math.isclose(best["rho"], rho, abs_tol=1e-3)}


def _pct(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else 100 * x


def _signed(x):
    return None if x is None else f"{x:+.1f}"


def _pm(row) -> str | None:
    """'62.1 ± 0.8' from a summary row (percent), the ± only where a spread was measured."""
    if row is None:
        return None
    std = _pct(row.get("test_acc_std"))
    return f"{100 * row['test_acc']:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def _by_label(rows) -> dict:
    return {r["label"]: r for r in rows or []}


_SERIES = (("ch01_width", "α sweep", "o-", lambda v, r: v.width_mult),
           ("ch01_resolution", f"ρ sweep (α = {_alphas('ch01_resolution')})", "s-", lambda v, r: r["imgsz"]),
           ("ch01_separable", "separable → full conv", "^:", lambda v, r: len(v.surgery)))


def plot_alpha_rho(runs: dict, reference: dict | None = None, title: str = ""):
    """Glyphs-10 test accuracy against mult-adds (left) and measured CPU latency (right), every chapter-01 variant.

    Solid markers: the learner's run, each point labelled; hollow grey: the reference run (mean ± std).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), sharey=True)
    colours = dict(zip((s[0] for s in _SERIES), ("tab:blue", "tab:green", "tab:red")))
    for ax, cost in zip(axes, ("macs", "latency_ms")):
        named = set()
        for source in (runs, reference or {}):
            own = source is runs
            for name, what, style, order in _SERIES:
                pts = sorted(((order(v, r), r) for r, v in _rows(source.get(name), name) if r.get(cost) is not None),
                             key=lambda t: t[0])
                if not pts:
                    continue
                rows = [r for _, r in pts]
                ax.errorbar([r[cost] for r in rows], [100 * r["test_acc"] for r in rows],
                            yerr=[_pct(r.get("test_acc_std")) or 0 for r in rows], fmt=style, capsize=3,
                            color=colours[name] if own else "tab:gray", mfc=None if own else "white",
                            alpha=1 if own else 0.8, label=what + ("" if own else " (reference)"))
                if own:
                    for r in (r for r in rows if r["key"] not in named):
                        named.add(r["key"])
                        ax.annotate(r["label"], (r[cost], 100 * r["test_acc"]), textcoords="offset points",
                                    xytext=(4, 4), fontsize=7)
        ax.axhline(100 * CHANCE, color="tab:red", lw=0.8, ls=":", label="chance (10 classes)")
        ax.set_xscale("log")
        ax.set_xlabel(COST_LABELS[cost])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Glyphs-10 test accuracy (%)")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(title or "What α and ρ buy: accuracy against counted and measured cost")
    fig.tight_layout()
    return fig


def _ref_and_delta(ref_rows, label, base_label):
    ref = _by_label(ref_rows)
    r, b = ref.get(label), ref.get(base_label)
    delta = None if r is None or b is None else 100 * (r["test_acc"] - b["test_acc"])
    return _pm(r), delta


def width_table(runs: dict, refs: dict | None = None) -> list[dict]:
    """One row per α (widest first): ours and the reference against the ablation's baseline, the paper's Table 6 against α = 1."""
    refs = refs or {}
    name = "ch01_width"
    rows = sorted(_rows(runs[name], name), key=lambda t: -t[1].width_mult)
    base = next(r for r, v in rows if r["label"] == ABLATIONS[name].baseline)
    out = []
    for r, v in rows:
        paper = PAPER_MULTIPLIERS.get((v.width_mult, 224))
        ref, ref_delta = _ref_and_delta(refs.get(name), r["label"], base["label"])
        out.append(dict(alpha=v.width_mult, acc=100 * r["test_acc"], delta=100 * (r["test_acc"] - base["test_acc"]),
                        ref=ref, ref_delta=ref_delta, madds_M=r["macs"] / 1e6, latency_ms=r.get("latency_ms"),
                        paper_top1=paper and paper[0], paper_delta=paper and paper[0] - PAPER_MULTIPLIERS[(1.0, 224)][0],
                        paper_madds_M=paper and paper[1]))
    return out


WIDTH_COLUMNS = {"alpha": "α", "acc": "ours %", "delta": "Δ", "ref": "reference %", "ref_delta": "Δ ref",
                 "madds_M": "ours MAdds (M)", "latency_ms": "ours ms", "paper_top1": "paper top-1 %",
                 "paper_delta": "Δ paper", "paper_madds_M": "paper MAdds (M)"}


def resolution_table(runs: dict, refs: dict | None = None) -> list[dict]:
    """Ours (``ch01_resolution``'s α, largest input first) beside the paper's Table 7 (α = 1), row by row in ρ order; each ρ is its own."""
    refs = refs or {}
    name = "ch01_resolution"
    base_size = _base_imgsz(runs)
    rows = sorted(_rows(runs[name], name), key=lambda t: -t[0]["imgsz"])
    base = next(r for r, v in rows if r["label"] == ABLATIONS[name].baseline)
    paper = sorted(((px, v) for (a, px), v in PAPER_MULTIPLIERS.items() if a == 1.0), reverse=True)
    out = []
    for i in range(max(len(rows), len(paper))):
        row = {}
        if i < len(rows):
            r = rows[i][0]
            ref, ref_delta = _ref_and_delta(refs.get(name), r["label"], base["label"])
            row.update(rho=r["imgsz"] / base_size, imgsz=r["imgsz"], acc=100 * r["test_acc"],
                       delta=100 * (r["test_acc"] - base["test_acc"]), ref=ref, ref_delta=ref_delta,
                       madds_M=r["macs"] / 1e6, latency_ms=r.get("latency_ms"))
        if i < len(paper):
            px, (top1, madds, _) = paper[i]
            row.update(paper_rho=px / 224, paper_px=px, paper_top1=top1,
                       paper_delta=top1 - PAPER_MULTIPLIERS[(1.0, 224)][0], paper_madds_M=madds)
        out.append(row)
    return out


RESOLUTION_COLUMNS = {"rho": "ours ρ", "imgsz": "px", "acc": "ours %", "delta": "Δ", "ref": "reference %",
                      "ref_delta": "Δ ref", "madds_M": "ours MAdds (M)", "latency_ms": "ours ms",
                      "paper_rho": "paper ρ", "paper_px": "px", "paper_top1": "paper top-1 %", "paper_delta": "Δ paper",
                      "paper_madds_M": "paper MAdds (M)"}


def separable_table(runs: dict, refs: dict | None = None) -> list[dict]:
    """Separable vs full conv, same depth and width: ours, the reference, and the paper's Table 4."""
    refs = refs or {}
    name = "ch01_separable"
    out = []
    for r, v in _rows(runs[name], name):
        kind = "full conv" if "full_conv" in v.surgery else "separable"
        top1, madds, params = PAPER_TABLE4[kind]
        out.append(dict(network=r["label"], acc=100 * r["test_acc"], ref=_pm(_by_label(refs.get(name)).get(r["label"])),
                        params_M=r["params"] / 1e6, madds_M=r["macs"] / 1e6, latency_ms=r.get("latency_ms"),
                        paper=f"α=1 {kind}", paper_top1=top1, paper_madds_M=madds, paper_params_M=params))
    return out


SEPARABLE_COLUMNS = {"network": "ours", "acc": "ours %", "ref": "reference %", "params_M": "params (M)",
                     "madds_M": "MAdds (M)", "latency_ms": "ms", "paper": "paper (Table 4)",
                     "paper_top1": "top-1 %", "paper_madds_M": "MAdds (M)", "paper_params_M": "params (M)"}


def _ratio(a, b, key):
    return a[key] / b[key] if a.get(key) and b.get(key) else float("nan")


def _pair_sentence(summary, a, b, what):
    rows = _by_label(summary)
    ra, rb = rows[a], rows[b]
    d = difference(summary, a, b)
    return (f"{what}: {d['words']}. Cost: {_ratio(ra, rb, 'macs'):.2f}× the mult-adds, "
            f"{_ratio(ra, rb, 'params'):.2f}× the parameters, {_ratio(ra, rb, 'latency_ms'):.2f}× the measured latency.")


def _v1_pairs(summary_by_name):
    w = sorted(_rows(summary_by_name.get("ch01_width"), "ch01_width"), key=lambda t: t[1].width_mult)
    rs = sorted(_rows(summary_by_name.get("ch01_resolution"), "ch01_resolution"), key=lambda t: t[0]["imgsz"])
    sep = _rows(summary_by_name.get("ch01_separable"), "ch01_separable")
    pairs = []
    if len(w) > 1:
        pairs.append(("ch01_width", w[0][0]["label"], w[-1][0]["label"], "Narrowest vs widest"))
    base = ABLATIONS["ch01_resolution"].baseline
    if len(rs) > 1 and base in _by_label(summary_by_name["ch01_resolution"]):
        pairs.append(("ch01_resolution", rs[0][0]["label"], base, "Smallest input vs the recipe's"))
    full = [r for r, v in sep if "full_conv" in v.surgery]
    plain = [r for r, v in sep if not v.surgery]
    if full and plain:
        pairs.append(("ch01_separable", full[0]["label"], plain[0]["label"], "Full conv vs separable"))
    return pairs


def v1_findings(runs: dict, refs: dict | None = None) -> list[str]:
    """Sentences computed from the numbers: each of chapter 01's three comparisons, ours then the reference's, then the paper's."""
    refs = refs or {}
    out = []
    for name, a, b, what in _v1_pairs(runs):
        out.append(_pair_sentence(runs[name], a, b, f"{what} (your run)"))
        ref = refs.get(name)
        if ref and {a, b} <= set(_by_label(ref)):
            out.append(_pair_sentence(ref, a, b, f"{what} (reference)"))
    p = PAPER_MULTIPLIERS
    out.append(f"Paper (ImageNet): α = 0.25 loses {p[(1.0, 224)][0] - p[(0.25, 224)][0]:.1f} points against α = 1 "
               f"for {p[(1.0, 224)][1] / p[(0.25, 224)][1]:.1f}× fewer mult-adds (Table 6); 128 px loses "
               f"{p[(1.0, 224)][0] - p[(1.0, 128)][0]:.1f} points against 224 px for {p[(1.0, 224)][1] / p[(1.0, 128)][1]:.1f}× "
               f"fewer (Table 7); full convolutions gain {PAPER_TABLE4['full conv'][0] - PAPER_TABLE4['separable'][0]:.1f} "
               f"points for {PAPER_TABLE4['full conv'][1] / PAPER_TABLE4['separable'][1]:.1f}× the mult-adds (Table 4).")
    return out


# --- chapter 02: the linear bottleneck and the shortcut --------------------------------------------

def bottleneck_labels() -> dict[str, str]:
    """The labels of ``ch02_bottleneck``'s three networks, found by their surgery."""
    ab = ABLATIONS["ch02_bottleneck"]
    by_surgery = {v.surgery: v.label for v in ab.variants}
    return dict(linear=ab.baseline, relu6=by_surgery[("relu6_after_projection",)], no_shortcut=by_surgery[("no_shortcut",)])


def winner(summary: list[dict], a: str, b: str) -> str | None:
    """``a`` or ``b``, whichever scores higher by more than twice the seed-to-seed spread; None when undecided."""
    d = difference(summary, a, b)
    if not d["real"]:
        return None
    return a if d["delta"] > 0 else b


def bottleneck_findings(summary: list[dict], reference: list[dict] | None = None) -> list[str]:
    """Fig. 6a and 6b on our data: each variant against the linear bottleneck, with a verdict that respects the spread."""
    labels = bottleneck_labels()
    out = []
    for rows, who in ((summary, "your run"), (reference, "reference")):
        if not rows:
            continue
        have = _by_label(rows)
        for key, fig in (("relu6", "Fig. 6a"), ("no_shortcut", "Fig. 6b")):
            if labels[key] in have and labels["linear"] in have:
                d = difference(rows, labels[key], labels["linear"])
                w = winner(rows, labels[key], labels["linear"])
                seeds = min(have[labels[key]]["seeds"], have[labels["linear"]]["seeds"])
                verdict = (f"{w} wins" if w is not None else "undecided: one seed measures no spread" if seeds < 2
                           else "undecided: the gap is within twice the seed-to-seed spread")
                out.append(f"{fig} ({who}): {d['words']}. Verdict: {verdict}.")
    return out


def plot_bottleneck(summary: list[dict], reference: list[dict] | None = None):
    """Bars with their spread: the linear bottleneck, a ReLU6 after the projection, no shortcut."""
    return plot_ablation(summary, reference, title="MobileNet V2 α=0.5 on Glyphs-10: linear bottleneck and shortcut")


_FORMATS = dict(acc="{:.1f}", delta="{:+.1f}", ref_delta="{:+.1f}", paper_delta="{:+.1f}", madds_M="{:.2f}",
                latency_ms="{:.2f}", params_M="{:.3f}", rho="{:.2f}", paper_rho="{:.2f}", alpha="{:g}")


def v1_tables(runs: dict, refs: dict | None = None) -> str:
    """Chapter 01's three comparisons as text, ours beside the reference and the paper's Tables 6, 7 and 4.

    Δ is points of accuracy against each ablation's baseline (``ABLATIONS[name].baseline``; the
    paper's 1.0 MobileNet-224 for its columns). Ours are Glyphs-10 test accuracy, the paper's ImageNet top-1.
    """
    from .tables import text_table

    return "\n\n".join((
        text_table(width_table(runs, refs), WIDTH_COLUMNS, _FORMATS,
                   title=f"Width multiplier α (Δ against {_baseline_words('ch01_width')}; paper: Table 6, against α = 1)"),
        text_table(resolution_table(runs, refs), RESOLUTION_COLUMNS, _FORMATS,
                   title=f"Resolution multiplier ρ (ours at α = {_alphas('ch01_resolution')}; paper: Table 7, α = 1)"),
        text_table(separable_table(runs, refs), SEPARABLE_COLUMNS, _FORMATS,
                   title="Depthwise separable vs full convolutions (paper: Table 4)")))


def provenance(runs: dict, done: dict) -> str:
    """What produced the learner's numbers: device, threads, torch, seeds, test images, latency threads."""
    trained = list(done.values())
    if not trained:
        raise ValueError("done must hold the trained rows (the dict given to run_chapter), got an empty one")
    first = trained[0]
    rec = recipe()
    lat = sorted({r.get("latency_threads") for rows in runs.values() for r in rows if r.get("latency_threads")})
    return (f"Your run: trained on {first['device']} with {first['threads']} threads, torch {first['torch_version']}, "
            f"seed {sorted({r['seed'] for r in trained})}; accuracy on the {rec['n_test']:,} Glyphs-10 test images; "
            f"latency: CPU, batch 1, {'/'.join(map(str, lat)) or '?'} threads (torch.utils.benchmark median).")


def bottleneck_table(summary: list[dict], reference: list[dict] | None = None) -> str:
    """Chapter 02's three networks: accuracy (ours, the reference), parameters, mult-adds, latency."""
    from .tables import text_table

    ref = _by_label(reference)
    base = _by_label(summary)[ABLATIONS["ch02_bottleneck"].baseline]
    rows = [dict(network=r["label"], acc=100 * r["test_acc"], delta=100 * (r["test_acc"] - base["test_acc"]),
                 ref=_pm(ref.get(r["label"])), params_M=r["params"] / 1e6, madds_M=r["macs"] / 1e6,
                 latency_ms=r.get("latency_ms")) for r in summary]
    return text_table(rows, {"network": "MobileNet V2 α=0.5", "acc": "ours %", "delta": "Δ vs linear",
                             "ref": "reference %", "params_M": "params (M)", "madds_M": "MAdds (M)",
                             "latency_ms": "CPU ms"}, _FORMATS)

"""Chapter 07 (deploying a lightweight backbone): the measured table, its plot and the picker widget.

Everything shown comes from ``course.deploy.study`` rows (``DeployRow.as_dict()``) measured in the
chapter or read from the reference run ``results/deploy_cpu.json``; nothing here measures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt

from ..deploy.study import reference_row
from ..tables import text_table
from ..viz import WidgetHandle

__all__ = ["REFERENCE_PATH", "format_rows", "load_reference", "plot_speedups", "describe_choice",
           "deploy_widget", "format_activation", "reference_meta", "describe_rows"]

REFERENCE_PATH = Path(__file__).resolve().parents[2] / "results" / "deploy_cpu.json"
_COLUMNS = {"model": "model", "runtime": "runtime", "precision": "precision", "batch": "batch",
            "median_ms": "ms", "speedup": "x eager", "size_mb": "MB", "metric": "metric", "accuracy": "test acc",
            "note": "note"}


_NUMERIC = ("median_ms", "speedup", "size_mb", "accuracy", "max_abs_diff")


def _rows(rows) -> list[dict]:
    """Rows with JSON's nulls (NaN written out) back as NaN."""
    return [{**r, **{k: math.nan for k in _NUMERIC if k in r and r[k] is None}} for r in rows]


def _num(v, fmt):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def format_rows(rows: list[dict], title: str = "") -> str:
    """The table: one line per model × runtime × precision × batch, eager first."""
    rows = _rows(rows)
    fmt = {"median_ms": lambda v: _num(v, "{:.3f}"), "speedup": lambda v: _num(v, "{:.2f}"),
           "size_mb": lambda v: _num(v, "{:.2f}"), "accuracy": lambda v: _num(100 * v if v == v else v, "{:.1f} %")}
    return text_table(rows, _COLUMNS, formats=fmt, title=title, align={"note": "<", "runtime": "<",
                                                                         "precision": "<", "metric": "<"})


def format_activation(rows: list[dict], title: str = "") -> str:
    """The activation study: fp32 and int8 top-1, their difference, the logits' relative error."""
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    return text_table(rows, {"model": "model", "top1_fp32": "fp32 top-1", "top1_int8": "int8 top-1",
                             "delta": "change", "output_error": "logit rel. error"},
                      formats={"top1_fp32": pct, "top1_int8": pct, "delta": lambda v: f"{100 * v:+.1f} pts",
                               "output_error": "{:.4f}"}, title=title)


def plot_speedups(rows: list[dict], title: str = ""):
    """Speed-up over eager per model and runtime, batch 1 and batch 8 side by side."""
    rows = _rows(rows)
    timed = [r for r in rows if r["runtime"] != "eager" and not math.isnan(r["speedup"])]
    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 3.4), squeeze=False, sharey=True)
    runtimes = list(dict.fromkeys(r["runtime"] for r in timed))
    models = list(dict.fromkeys(r["model"] for r in rows))
    width = 0.8 / max(1, len(runtimes))
    for ax, batch in zip(axes[0], batches):
        for k, rt in enumerate(runtimes):
            xs, ys = [], []
            for i, m in enumerate(models):
                hit = [r for r in timed if r["model"] == m and r["runtime"] == rt and r["batch"] == batch]
                if hit:
                    xs.append(i + k * width)
                    ys.append(hit[0]["speedup"])
            ax.bar(xs, ys, width, label=rt)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models, rotation=20, fontsize=8)
        ax.set_title(f"batch {batch}")
        ax.set_ylabel("speed-up over eager (x)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def describe_choice(rows: list[dict], model: str, runtime: str, precision: str, batch: int) -> dict:
    """The chosen row and the fp32 eager row of the same model and batch, with the differences."""
    rows = _rows(rows)
    ref = reference_row(rows, model, batch)
    hit = [r for r in rows if (r["model"], r["runtime"], r["precision"], r["batch"]) == (model, runtime, precision,
                                                                                         batch)]
    if not hit:
        options = sorted({(r["runtime"], r["precision"]) for r in rows if r["model"] == model})
        raise ValueError(f"no row for {model!r} {runtime!r} {precision!r} at batch {batch}; options: {options}")
    row = hit[0]
    return dict(row=row, reference=ref, size_ratio=row["size_mb"] / ref["size_mb"],
                accuracy_change=row["accuracy"] - ref["accuracy"], speedup=row["speedup"])


def deploy_widget(rows: list[dict]) -> WidgetHandle:
    """Pick model × runtime × precision × batch: latency, size and test accuracy beside the fp32 eager row."""
    import ipywidgets as W

    if not rows:
        raise ValueError("rows must be a non-empty list of course.deploy.study rows")
    rows = _rows(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    choices = list(dict.fromkeys(f"{r['runtime']} | {r['precision']}" for r in rows))
    controls = {
        "model": W.Dropdown(options=models, value=models[0], description="model"),
        "runtime": W.Dropdown(options=choices, value=choices[0], description="runtime"),
        "batch": W.Dropdown(options=sorted({r["batch"] for r in rows}), description="batch"),
    }
    html = W.HTML()
    state: dict = {}

    def update(*_):
        runtime, precision = controls["runtime"].value.split(" | ")
        model, batch = controls["model"].value, controls["batch"].value
        state.clear()
        try:
            d = describe_choice(rows, model, runtime, precision, batch)
        except ValueError as e:
            state.update(model=model, runtime=runtime, precision=precision, batch=batch, error=str(e))
            html.value = f"<p>{e}</p>"
            return
        state.update(model=model, runtime=runtime, precision=precision, batch=batch, **d)
        lines = []
        for label, r in (("fp32 eager (reference)", d["reference"]), (f"{runtime}, {precision}", d["row"])):
            lines.append(f"<tr><td>{label}</td><td>{_num(r['median_ms'], '{:.3f}')} ms</td>"
                         f"<td>{_num(r['speedup'], '{:.2f}')}x</td><td>{r['size_mb']:.2f} MB</td>"
                         f"<td>{_num(100 * r['accuracy'], '{:.1f}')} % {r['metric']}</td></tr>")
        html.value = ("<table><tr><th></th><th>latency</th><th>x eager</th><th>size</th><th>test</th></tr>"
                      + "".join(lines) + "</table>"
                      + f"<p>size {d['size_ratio']:.2f}x the reference; accuracy change "
                        f"{_num(100 * d['accuracy_change'], '{:+.1f}')} points; threads {d['row']['threads']}. "
                        f"{d['row']['note']}</p>")

    for c in controls.values():
        c.observe(update, names="value")
    update()
    return WidgetHandle(W.VBox([W.HBox(list(controls.values())), html]), controls, state)


def load_reference(path=None) -> dict | None:
    """The reference run written by ``benchmarks/deploy.py``, or None when there is none."""
    path = Path(path) if path is not None else REFERENCE_PATH
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def reference_meta(ref: dict) -> str:
    """One line: where and how the reference run was measured."""
    m = ref["meta"]
    return (f"REFERENCE run ({m['date']}): {m['device']}, {m['threads']} threads, torch {m['torch']}, "
            f"onnxruntime {m['onnxruntime']}, load average {m['load_average']}, recipe {m['recipe']}"
            + (" — SMOKE run, not meaningful" if m.get("smoke") else ""))


def describe_rows(rows: list[dict], batch: int = 1) -> list[str]:
    """One generated sentence per model at ``batch``: fastest runtime, int8's size and accuracy change."""
    rows = _rows(rows)
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model and r["batch"] == batch]
        if not mine:
            continue
        ref = reference_row(rows, model, batch)
        timed = [r for r in mine if not math.isnan(r["speedup"])]
        best = max(timed, key=lambda r: r["speedup"])
        int8 = [r for r in mine if r["runtime"] == "onnxruntime_int8"]
        text = (f"{model} (batch {batch}): fastest is {best['runtime']} ({best['precision']}), "
                f"{best['speedup']:.2f}x eager's {ref['median_ms']:.2f} ms")
        if int8:
            q = int8[0]
            text += (f"; int8 is {ref['size_mb'] / q['size_mb']:.1f}x smaller than the eager checkpoint, "
                     f"{q['speedup']:.2f}x eager, {ref['metric']} {100 * (q['accuracy'] - ref['accuracy']):+.1f} "
                     f"points on the test split")
        out.append(text + ".")
    return out

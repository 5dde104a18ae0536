"""Chapter 06 (YOLOv5 backbone swap): YAML surgery, the traps, training, comparison, a detection viewer.

The model, data, training and evaluation code lives in ``course.yolo``; this module holds the
chapter's glue: renumbering a head after a backbone swap, showing YAML diffs and errors, live
training curves, the comparison (``course.yolo.compare``) and deployment (``course.yolo.export``).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..viz import WidgetHandle, live_output, show_figure
from ..measure import count_flops, count_params
from ..yolo import DetectionModel, ModelConfigError, load_cfg
from ..yolo import compare as C
from ..yolo import export as E
from ..yolo.registry import REGISTRY

__all__ = [
    "DETECTORS", "REFERENCE_PATH", "WidgetHandle", "cfg_text", "cfg_diff", "cfg_diff_html", "bake_multiples",
    "replace_backbone", "insert_layer", "layer_table", "detect_levels", "trap_demos", "registry_excerpt",
    "recipe", "LiveCurves", "train_detectors", "measure_detector", "comparison_entries", "deployment_rows",
    "format_deployment", "load_reference", "reference_entries", "reference_figure", "detection_widget",
]

DETECTORS = {
    "YOLOv5n": "yolov5n.yaml",
    "MobileNetV3-Small": "yolov5n-mobilenetv3small.yaml",
    "ShuffleNetV2": "yolov5n-shufflenetv2.yaml",
}
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "results" / "yolo_full_cpu.json"



# --------------------------------------------------------------------------- YAML surgery


def _row_text(i: int, row) -> str:
    f, n, name, args = row
    args_text = json.dumps(args).replace('"', "")
    return f"  - [{json.dumps(f)}, {n}, {name}, {args_text}]  # {i}"


def cfg_text(cfg) -> str:
    """A model config as YOLOv5-style YAML text, one row per line, each row numbered (its layer index)."""
    d = load_cfg(cfg)
    lines = [f"nc: {d['nc']}", f"depth_multiple: {d['depth_multiple']}", f"width_multiple: {d['width_multiple']}"]
    if "channel_multiple" in d:
        lines.append(f"channel_multiple: {d['channel_multiple']}")
    lines.append("backbone:")
    rows = list(d["backbone"]) + list(d["head"])
    nb = len(d["backbone"])
    lines += [_row_text(i, r) for i, r in enumerate(rows[:nb])]
    lines.append("head:")
    lines += [_row_text(i, r) for i, r in enumerate(rows[nb:], nb)]
    return "\n".join(lines)


def cfg_diff(a, b, names=("a", "b")) -> str:
    """Unified text diff of two configs' ``cfg_text``."""
    return "\n".join(difflib.unified_diff(cfg_text(a).splitlines(), cfg_text(b).splitlines(), *names, lineterm=""))


def cfg_diff_html(a, b, names=("stock", "swapped")):
    """Side-by-side HTML diff (``difflib.HtmlDiff``) of two configs, for ``display``."""
    from IPython.display import HTML

    table = difflib.HtmlDiff(wrapcolumn=70).make_table(cfg_text(a).splitlines(), cfg_text(b).splitlines(), *names)
    style = ("<style>table.diff{font-family:monospace;font-size:11px;border:none}.diff_add{background:#cfc}"
             ".diff_chg{background:#ffa}.diff_sub{background:#fcc}.diff_header{background:#eee}</style>")
    return HTML(style + table)


def _scaled(name) -> bool:
    spec = REGISTRY.get(name)
    return spec is not None and spec.channels == "scaled"


def bake_multiples(cfg) -> dict:
    """The same model with ``depth_multiple`` and ``width_multiple`` written into the rows (both 1.0 after).

    Why: a swapped backbone gives absolute widths (MobileNet V3's 24/48/96), which a
    ``width_multiple`` of 0.25 would shrink too. Baking the head's widths first keeps YOLOv5n's
    head exactly while the new backbone rows stay as written.
    """
    from ..yolo import make_divisible

    d = load_cfg(cfg)
    gd, gw, div = d["depth_multiple"], d["width_multiple"], d.get("channel_multiple", 8)
    for part in ("backbone", "head"):
        rows = []
        for f, n, name, args in d[part]:
            args = list(args)
            n = max(round(n * gd), 1) if n > 1 else n
            if _scaled(name) and args and isinstance(args[0], (int, float)):
                args[0] = make_divisible(args[0] * gw, div)
            rows.append([f, n, name, args])
        d[part] = rows
    d["depth_multiple"] = d["width_multiple"] = 1.0
    return d


def replace_backbone(cfg, backbone: list, taps: dict) -> dict:
    """Swap the backbone rows of ``cfg`` and renumber the head's absolute ``from`` indices.

    ``taps`` maps each old backbone layer the head reads (YOLOv5n: 4 = P3, 6 = P4) to the new
    backbone layer at the same stride. Head layers move by ``len(backbone) - len(old backbone)``;
    ``-1`` stays ``-1`` (the first head row then reads the new backbone's last layer, P5).
    The old multiples are baked into the head first (``bake_multiples``).
    """
    d = bake_multiples(cfg)
    if not isinstance(backbone, list) or not backbone:
        raise ValueError(f"backbone must be a non-empty list of [from, number, module, args] rows, got {backbone!r}")
    old, new = len(d["backbone"]), len(backbone)
    for k, v in taps.items():
        if not (isinstance(k, int) and 0 <= k < old and isinstance(v, int) and 0 <= v < new):
            raise ValueError(f"taps[{k!r}] = {v!r}: keys must be old backbone layers 0..{old - 1}, values new "
                             f"backbone layers 0..{new - 1}")

    def move(j, i):
        if j < 0:
            return j
        if j < old:
            if j not in taps:
                raise ValueError(f"head layer {i} reads old backbone layer {j}; add it to taps "
                                 f"(known: {sorted(taps)})")
            return taps[j]
        return j - old + new

    head = []
    for i, (f, n, name, args) in enumerate(d["head"], old):
        f = [move(j, i) for j in f] if isinstance(f, list) else move(f, i)
        head.append([f, n, name, list(args)])
    d["backbone"] = copy.deepcopy(backbone)
    d["head"] = head
    d.pop("yaml_file", None)
    return d


def insert_layer(cfg, index: int, row: list) -> dict:
    """Insert ``row`` as layer ``index`` and shift every absolute ``from`` >= ``index`` by one.

    The reference solution of exercise 6.3: relative ``-1`` needs no change, absolute indices do.
    """
    d = load_cfg(cfg)
    nb = len(d["backbone"])
    total = nb + len(d["head"])
    if not isinstance(index, int) or not 1 <= index <= total - 1:
        raise ValueError(f"index must be an int in 1..{total - 1} (after the first layer, before Detect), "
                         f"got {index!r}")

    def shift(f):
        if isinstance(f, list):
            return [shift(j) for j in f]
        return f + 1 if f >= index else f

    rows = [[shift(f), n, m, list(a)] for f, n, m, a in list(d["backbone"]) + list(d["head"])]
    rows.insert(index, list(row))
    if index < nb:
        d["backbone"], d["head"] = rows[:nb + 1], rows[nb + 1:]
    else:
        d["backbone"], d["head"] = rows[:nb], rows[nb:]
    d.pop("yaml_file", None)
    return d


def _layer_outputs(model: DetectionModel, size: int = 256) -> list[torch.Tensor]:
    outs = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in model.model]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return outs


def layer_table(model: DetectionModel, size: int = 256) -> list[dict]:
    """Per layer: index, from, module, output channels and stride (from a probe of ``size`` pixels)."""
    rows = []
    for m, out in zip(model.model, _layer_outputs(model, size)):
        if isinstance(out, torch.Tensor):
            rows.append(dict(i=m.i, f=m.f, type=m.type, channels=out.shape[1], stride=size // out.shape[-1]))
        else:
            rows.append(dict(i=m.i, f=m.f, type=m.type, channels=None, stride=None))
    return rows


def detect_levels(model: DetectionModel, size: int = 256) -> list[dict]:
    """Each Detect input: the layer it reads, that layer's module, channels and measured stride."""
    table = layer_table(model, size)
    return [dict(level=f"P{k + 3}", layer=j, module=table[j]["type"], channels=table[j]["channels"],
                 stride=table[j]["stride"]) for k, j in enumerate(model.model[-1].f)]


def registry_excerpt(names=("C3", "Shuffle_Block", "mobilev3_bneck")) -> str:
    """How each YAML name is declared: the ``@register(...)`` line above its class, or its ``register_module`` call."""
    import course.yolo.backbones as backbones

    parts = []
    for name in names:
        spec = REGISTRY[name]
        src = inspect.getsource(spec.cls).splitlines()
        lines = [ln for ln in src if ln.lstrip().startswith("@register")]
        if lines:
            lines.append(next(ln for ln in src if ln.startswith("class ")))
        else:
            for module in (inspect.getmodule(spec.cls), backbones):
                lines = [ln for ln in inspect.getsource(module).splitlines() if f'register_module("{name}"' in ln]
                if lines:
                    break
        parts.append(f"# {name} -> {spec.cls.__module__}.{spec.cls.__name__}: channels={spec.channels!r}, "
                     f"repeat_inside={spec.repeat_inside}, stride_arg={spec.stride_arg}\n" + "\n".join(lines))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- the traps


def _error_of(build) -> str:
    try:
        build()
    except (ModelConfigError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return "(no error: the model built)"


def trap_demos() -> list[dict]:
    """Build three broken configs and return the error each gives (nothing is raised)."""
    def wrong_from():
        d = load_cfg(DETECTORS["ShuffleNetV2"])
        d["head"][2][0] = [-1, 2]  # P4 concat pointed at the stride-8 stage
        return DetectionModel(d)

    def channel_mismatch():
        d = load_cfg(DETECTORS["ShuffleNetV2"])
        d["backbone"][2] = [-1, 3, "Shuffle_Block", [232, 1]]  # stride-1 units that change width
        return DetectionModel(d)

    def repeated_stride2():
        d = load_cfg(DETECTORS["ShuffleNetV2"])
        d["backbone"][1] = [-1, 4, "Shuffle_Block", [116, 2]]
        return DetectionModel(d)

    def dangling_from():
        d = load_cfg(DETECTORS["ShuffleNetV2"])
        d["head"][-1][0] = [17, 20, 23]  # yolov5n's Detect indices, not renumbered
        return DetectionModel(d)

    return [
        dict(trap="wrong `from` (P4 Concat reads the stride-8 layer 2)", error=_error_of(wrong_from)),
        dict(trap="`from` not renumbered (Detect keeps yolov5n's [17, 20, 23])", error=_error_of(dangling_from)),
        dict(trap="channel mismatch (3 stride-1 units asked to go 116 -> 232)", error=_error_of(channel_mismatch)),
        dict(trap="stride-2 block repeated 4 times", error=_error_of(repeated_stride2)),
    ]


# --------------------------------------------------------------------------- training


def recipe() -> dict:
    """The training recipe of this mode: ``course.yolo.train.recipe()`` (``pick(full, quick)``), a copy."""
    from ..yolo.train import recipe as shared_recipe

    return dict(shared_recipe(), source="course.yolo.train.RECIPES")


def make_data(root, rec: dict | None = None) -> Path:
    """The shapes dataset for the recipe (``course.yolo.data.make_shapes``); reused if already there."""
    from ..yolo.data import make_shapes
    from ..yolo.train import shapes_kwargs

    return make_shapes(root, **shapes_kwargs(rec or recipe()))


class LiveCurves:
    """Training callbacks that redraw loss and mAP@0.5 per epoch for every run, in one figure that updates."""

    def __init__(self):
        self.history: dict[str, list[dict]] = {}
        self._handle = None

    def callbacks(self, name: str) -> dict:
        self.history.setdefault(name, [])

        def on_epoch_end(epoch, row):
            self.history[name].append(dict(row))
            self._redraw()

        return {"on_epoch_end": on_epoch_end}

    def figure(self):
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
        for name, rows in self.history.items():
            if rows:
                ep = [r["epoch"] + 1 for r in rows]
                a.plot(ep, [r["loss"] for r in rows], marker="o", ms=3, label=name)
                b.plot(ep, [r["map50"] for r in rows], marker="o", ms=3, label=name)
        a.set(xlabel="epoch", ylabel="train loss (box+obj+cls)", title="loss")
        b.set(xlabel="epoch", ylabel="mAP@0.5 (val, EMA)", title="mAP@0.5", ylim=(0, 1))
        a.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def _redraw(self):
        from IPython.display import display

        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def train_detectors(data, rec: dict | None = None, detectors: dict | None = None, project="runs/ch06",
                    curves: LiveCurves | None = None) -> dict:
    """Train each detector with the same recipe; ``{name: TrainResult}``."""
    from ..yolo.train import train, train_kwargs

    rec = rec or recipe()
    detectors = detectors or DETECTORS
    kwargs = train_kwargs(rec)
    results = {}
    for name, cfg in detectors.items():
        cb = curves.callbacks(name) if curves is not None else None
        results[name] = train(cfg, data, project=project, name=name, callbacks=cb, **kwargs)
    return results


# --------------------------------------------------------------------------- measuring and comparing


def _best_row(result) -> dict:
    rows = result.history
    return max(rows, key=lambda r: r["fitness"]) if rows else {}


def measure_detector(model, sizes=(320, 640), min_run_time: float | None = None) -> dict:
    """Params, GFLOPs at 640 (YOLOv5's convention: 2 × multiply-adds) and CPU (and GPU) latency at ``sizes``.
    """
    model = copy.deepcopy(model).cpu().eval()
    out = dict(params=count_params(model), gflops=2 * count_flops(E.DecodedOutput(model), (1, 3, 640, 640)) / 1e9,
               latency={})
    for s in sizes:
        r = E.torch_latency(model, s, device="cpu", min_run_time=min_run_time)
        out[f"cpu_ms_{s}"] = r.median_ms
        out["latency"][f"cpu_{s}"] = r
    if torch.cuda.is_available():
        r = E.torch_latency(copy.deepcopy(model), 640, device="cuda", min_run_time=min_run_time, cuda_graph=True)
        out["gpu_ms_640"] = r.median_ms
        out["latency"]["gpu_640"] = r
    return out


def comparison_entries(results: dict, measured: dict) -> dict:
    """``{name: row}`` for ``compare.comparison_rows`` from training results and ``measure_detector`` dicts."""
    entries = {}
    for name, res in results.items():
        best = _best_row(res)
        m = measured[name]
        entries[name] = dict(params=m["params"], gflops=m["gflops"], cpu_ms_320=m.get("cpu_ms_320"),
                             cpu_ms_640=m.get("cpu_ms_640"), gpu_ms_640=m.get("gpu_ms_640"),
                             train_s=res.wall_time_s, map50=best.get("map50"), map=best.get("map"))
    return entries


def deployment_rows(models: dict, out_dir, imgsz: int = 320, min_run_time: float | None = None,
                    opset: int = 18, dynamo: bool = True) -> list[dict]:
    """Export each model to ONNX, assert ONNX Runtime equals PyTorch, time both on the CPU (batch 1)."""
    rows = []
    for name, model in models.items():
        model = copy.deepcopy(model).cpu().eval()
        path = E.export_onnx(model, Path(out_dir) / f"{name}.onnx", imgsz=imgsz, opset=opset, dynamo=dynamo)
        session = E.onnx_session(path)
        check = E.check_onnx(model, session, imgsz=imgsz)
        if not check.ok:
            raise AssertionError(f"{name}: {check}")
        rows.append(dict(name=name, path=path, check=check, size_mb=path.stat().st_size / 2**20,
                         torch=E.torch_latency(model, imgsz, min_run_time=min_run_time),
                         onnx=E.onnx_latency(session, imgsz, min_run_time=min_run_time)))
    return rows


def format_deployment(rows: list[dict]) -> str:
    lines = [f"{'detector':<20}{'ONNX MB':>8}{'max|diff|':>11}{'PyTorch ms':>12}{'ORT ms':>9}{'ORT speed-up':>14}"]
    for r in rows:
        lines.append(f"{r['name']:<20}{r['size_mb']:>8.1f}{r['check'].max_abs_diff:>11.1e}"
                     f"{r['torch'].median_ms:>12.1f}{r['onnx'].median_ms:>9.1f}"
                     f"{r['torch'].median_ms / r['onnx'].median_ms:>13.2f}×")
    if rows:
        t = rows[0]["torch"]
        lines.append(f"(CPU, {t.threads} threads, batch {t.batch}, {t.dtype}, torch {t.torch_version}; "
                     "ORT with the same thread count)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the reference run

# reference JSON key (written by benchmarks/yolo_full.py) -> comparison_rows key
_REFERENCE_KEYS = dict(params="params", gflops="gflops", cpu_ms_320="cpu_ms_320", cpu_ms_640="cpu_ms_640",
                       gpu_ms_640="gpu_ms_640", train_time_s="train_s", map50="map50", map="map")
_REFERENCE_REQUIRED = ("name", "params", "train_time_s", "map50", "map")


def load_reference(path=None) -> dict | None:
    """The recorded full run (``results/yolo_full_cpu.json``), or None when it has not been produced yet."""
    path = Path(path) if path is not None else REFERENCE_PATH
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def reference_entries(ref: dict) -> dict:
    """``{name: row}`` for ``comparison_rows`` from a reference JSON (``{"meta", "models": [...]}``)."""
    models = ref.get("models") if isinstance(ref, dict) else None
    if not isinstance(models, list):
        raise ValueError(f"reference: expected a dict with a 'models' list (benchmarks/yolo_full.py), "
                         f"got {type(models).__name__ if isinstance(ref, dict) else type(ref).__name__}")
    entries = {}
    for i, m in enumerate(models):
        missing = [k for k in _REFERENCE_REQUIRED if m.get(k) is None]
        if missing:
            raise ValueError(f"reference: models[{i}] lacks {missing}; has {sorted(m)}")
        entries[m["name"]] = {ours: m.get(theirs) for theirs, ours in _REFERENCE_KEYS.items()}
    return entries


def reference_figure(ref: dict):
    """Training loss and val mAP@0.5 per epoch of every detector in a reference JSON, titled as the reference."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for m in ref["models"]:
        h = m["history"]
        a.plot([r["epoch"] + 1 for r in h], [r["loss"] for r in h], label=m["name"])
        b.plot([r["epoch"] + 1 for r in h], [r["map50"] for r in h], label=f"{m['name']} ({m['map50']:.3f})")
    a.set(xlabel="epoch", ylabel="train loss (box + obj + cls)", title="training loss")
    b.axhline(0.9, color="grey", lw=0.8, ls="--")
    b.set(xlabel="epoch", ylabel="val mAP@0.5", ylim=(0, 1), title="val mAP@0.5 (EMA weights)")
    a.legend()
    b.legend(loc="lower right")
    meta = ref["meta"]
    fig.suptitle(f"REFERENCE run: shapes, {meta['recipe']['imgsz']} px, {meta['device']}, "
                 f"torch {meta['torch_version']}, {meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    return fig


def reference_meta(ref: dict) -> str:
    meta = ref.get("meta", ref)
    keys = ("device", "device_name", "cpu", "threads", "torch", "torch_version", "date", "recipe", "python")
    return ", ".join(f"{k}: {meta[k]}" for k in keys if k in meta and not isinstance(meta[k], (dict, list))) or \
        "(no metadata recorded)"


# --------------------------------------------------------------------------- the detection viewer


def detection_widget(models: dict, dataset, names, conf: float = 0.25) -> WidgetHandle:
    """Pick a detector, a val image and a confidence threshold: its detections beside the ground truth."""
    import ipywidgets as W

    from ..yolo.val import predict

    if not models:
        raise ValueError("models must be a non-empty dict of name -> DetectionModel")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    controls = {
        "detector": W.Dropdown(options=list(models), value=next(iter(models)), description="detector"),
        "image": W.IntSlider(value=0, min=0, max=len(dataset) - 1, description="val image"),
        "conf": W.FloatSlider(value=conf, min=0.05, max=0.95, step=0.05, description="confidence"),
    }
    state: dict = {}

    def update(detector, image, conf):
        img, labels, path, _ = dataset[image]
        dets = predict(models[detector], img, conf_thres=conf)[0]
        gt_boxes, gt_cls = C._labels_to_xyxy(labels, img.shape[1], img.shape[2])
        fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4))
        C.draw_boxes(a, img, gt_boxes, gt_cls, names, title=f"ground truth: {len(gt_boxes)} objects")
        C.draw_boxes(b, img, dets[:, :4].numpy(), dets[:, 5].long().numpy(), names, scores=dets[:, 4].numpy(),
                     title=f"{detector}, conf ≥ {conf:.2f}: {len(dets)} detections")
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92, wspace=0.05)
        state.update(detector=detector, image=image, conf=conf, n_detections=len(dets), n_truth=len(gt_boxes),
                     classes=[names[int(c)] for c in dets[:, 5]], scores=[round(float(s), 3) for s in dets[:, 4]])
        show_figure(fig)

    out = live_output(update, controls)
    widget = W.VBox([W.HBox(list(controls.values())), out])
    return WidgetHandle(widget, controls, state)

"""Chapter 06 (YOLOv5 backbone swap): YAML surgery, the traps, training, comparison, a detection viewer.

The model, data, training and evaluation code lives in ``course.yolo`` (config edits such as a
backbone swap in ``course.yolo.cfg_edit``); measuring trained detectors and the reference
run in ``course.yolo.benchmark``. This module only shows: YAML diffs and errors, live training
curves, and a detection viewer.
"""

from __future__ import annotations

import difflib
import inspect
import json
from pathlib import Path

import matplotlib.pyplot as plt

from ..viz import WidgetHandle, live_output, show_figure
from ..yolo import DetectionModel, ModelConfigError, load_cfg
from ..yolo import compare as C
from ..yolo.benchmark import DETECTORS
from ..yolo.registry import REGISTRY

__all__ = [
    "WidgetHandle", "cfg_text", "cfg_diff", "cfg_diff_html", "trap_demos", "registry_excerpt",
    "recipe", "LiveCurves", "train_detectors", "detection_widget",
]




# --------------------------------------------------------------------------- YAML, shown


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
    """Build the four broken configs our parser rejects; return each trap, its public source and the error.

    Nothing is raised. The fifth trap, ``make_divisible`` widening 116 to 120, gives no error (see
    ``parse_model``'s width rounding).
    """
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

    yolo = "https://github.com/ultralytics/yolov5"
    repeats = (f"{yolo}/blob/v7.0/models/yolo.py (parse_model builds all n repeats with the same args, so "
               "YOLOv5-Lite's models/v5Lite-s.yaml gives each stride-2 Shuffle_Block its own row)")
    return [
        dict(trap="wrong `from` (P4 Concat reads the stride-8 layer 2)", error=_error_of(wrong_from),
             source=f"{yolo}/issues/12923, {yolo}/issues/945"),
        dict(trap="`from` not renumbered (Detect keeps yolov5n's [17, 20, 23])", error=_error_of(dangling_from),
             source=f"{yolo}/pull/4833 (IndexError at Detect after a backbone stage was removed)"),
        dict(trap="channel mismatch (3 stride-1 units asked to go 116 -> 232)", error=_error_of(channel_mismatch),
             source=repeats),
        dict(trap="stride-2 block repeated 4 times", error=_error_of(repeated_stride2), source=repeats),
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
    """Train each detector with the same recipe, each capped at its ``time_budget_s``; ``{name: TrainResult}``."""
    from ..yolo.train import train, train_kwargs, with_time_budget

    rec = rec or recipe()
    detectors = detectors or DETECTORS
    kwargs = train_kwargs(rec)
    results = {}
    for name, cfg in detectors.items():
        cb = with_time_budget(rec.get("time_budget_s"), curves.callbacks(name) if curves is not None else None)
        results[name] = train(cfg, data, project=project, name=name, callbacks=cb, **kwargs)
    return results


# --------------------------------------------------------------------------- the detection viewer


def detection_widget(models: dict, dataset, names, conf: float = 0.25) -> WidgetHandle:
    """Pick a detector, an image of ``dataset`` and a confidence threshold: its detections beside the ground truth."""
    import ipywidgets as W

    from ..yolo.val import predict

    if not models:
        raise ValueError("models must be a non-empty dict of name -> DetectionModel")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    controls = {
        "detector": W.Dropdown(options=list(models), value=next(iter(models)), description="detector"),
        "image": W.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image"),
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

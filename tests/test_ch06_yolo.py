"""Chapter 06: YAML surgery, the traps, comparison logic, the detection viewer, the exercises both ways."""

import copy
import importlib.util
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from course.deploy.onnx_export import OnnxCheck  # noqa: E402
from course.exercises import ExerciseFailed, check  # noqa: E402
from course.measure import LatencyResult  # noqa: E402
from course.exercises.ch06 import MBV3_BACKBONE  # noqa: E402
from course.widgets import ch06_yolo as ch  # noqa: E402
from course.yolo import DetectionModel, layer_groups, load_cfg, make_divisible_ceil  # noqa: E402
from course.yolo import benchmark as B  # noqa: E402
from course.yolo import cfg_edit  # noqa: E402
from course.yolo import compare as C  # noqa: E402
from course.yolo.model import detect_levels  # noqa: E402
from course.yolo.train import recipe, train_kwargs  # noqa: E402


@pytest.fixture(scope="module")
def shufflenet():
    return DetectionModel("yolov5n-shufflenetv2.yaml", nc=3)


def test_replace_backbone_reproduces_the_shipped_swaps():
    for cfg, taps in (("yolov5n-shufflenetv2.yaml", {4: 2, 6: 4}), ("yolov5n-mobilenetv3small.yaml", {4: 3, 6: 8})):
        ship = load_cfg(cfg)
        swapped = cfg_edit.replace_backbone("yolov5n.yaml", ship["backbone"], taps)
        assert swapped["backbone"] == ship["backbone"] and swapped["head"] == ship["head"]
        assert swapped["width_multiple"] == swapped["depth_multiple"] == 1.0


def test_replace_backbone_names_a_missing_tap():
    with pytest.raises(ValueError, match="old backbone layer 6"):
        cfg_edit.replace_backbone("yolov5n.yaml", MBV3_BACKBONE, {4: 3})


def test_bake_multiples_keeps_the_model():
    a, b = DetectionModel("yolov5n.yaml"), DetectionModel(cfg_edit.bake_multiples("yolov5n.yaml"))
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()) == 1_872_157


def test_insert_layer_shifts_absolute_indices_only():
    d = cfg_edit.insert_layer("yolov5n.yaml", 5, [-1, 1, "Conv", [256, 1, 1]])
    assert len(d["backbone"]) == 11 and d["head"][2][0] == [-1, 7] and d["head"][6][0] == [-1, 4]
    assert d["head"][-1][0] == [18, 21, 24]
    assert DetectionModel(d).stride.tolist() == [8.0, 16.0, 32.0]


def test_detect_levels_and_cfg_text(shufflenet):
    levels = detect_levels(shufflenet)
    assert [(lv["layer"], lv["stride"], lv["channels"]) for lv in levels] == [(14, 8, 64), (17, 16, 128), (20, 32, 256)]
    text = ch.cfg_text("yolov5n-shufflenetv2.yaml")
    assert "  - [[14, 17, 20], 1, Detect, [nc, anchors]]  # 21" in text
    diff = ch.cfg_diff("yolov5n.yaml", "yolov5n-shufflenetv2.yaml")
    assert "-  - [[17, 20, 23], 1, Detect" in diff and "+  - [[14, 17, 20], 1, Detect" in diff


def test_trap_demos_catch_named_errors():
    demos = ch.trap_demos()
    assert len(demos) == 4
    for d in demos:
        assert d["error"].startswith("ModelConfigError"), d
    assert "layer 9" in demos[0]["error"] and "not an earlier layer" in demos[1]["error"]
    assert "c1=120, c2=232" in demos[2]["error"] and "stride=2" in demos[3]["error"]
    assert all(d["source"].startswith("https://github.com/ultralytics/yolov5/") for d in demos)


def test_registry_excerpt_shows_the_declarations():
    text = ch.registry_excerpt()
    assert '@register("C3", repeat_inside=True)' in text and 'register_module("Shuffle_Block"' in text


def test_116_becomes_120(shufflenet):
    assert make_divisible_ceil(116, 8) == 120 and shufflenet.model[1].args[:2] == [32, 120]


FAKE = {"base": dict(imgsz=128, params=1_000_000, gflops=4.0, gflops_640=100.0, cpu_ms=20.0, map50=0.9, map=0.6),
        "mobilenet-ish": dict(imgsz=128, params=900_000, gflops=2.0, gflops_640=50.0, cpu_ms=30.0, map50=0.8, map=0.5),
        "shufflenet-ish": dict(imgsz=128, params=800_000, gflops=3.0, gflops_640=75.0, cpu_ms=15.0,
                               map50=float("nan"))}


def test_comparison_rows_and_table():
    rows = C.comparison_rows(FAKE)
    assert [r["name"] for r in rows] == list(FAKE)
    assert rows[1]["gflops_vs_base"] == 0.5 and rows[1]["cpu_ms_vs_base"] == 1.5
    assert rows[2]["map50"] is None and rows[1]["gpu_ms_vs_base"] is None
    table = C.format_comparison(rows, "title")
    lines = table.splitlines()
    assert lines[0] == "title" and "1,000,000" in table and "—" in table
    assert lines[1].split()[:5] == ["detector", "params", "GFLOPs@128", "GFLOPs@640", "CPU"]  # one size throughout
    assert "GPU" not in lines[1]  # a column nobody measured is left out
    assert "YOLOv5's interpolated AP" in lines[-1] and "torchmetrics" in lines[-1]
    fig = C.plot_comparison(rows)
    assert len(fig.axes) == 4 and "128" in fig.axes[2].get_title()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="different sizes"):
        C.comparison_rows({"a": dict(imgsz=128), "b": dict(imgsz=320)})


def test_mean_and_std_print_together():
    rows = C.comparison_rows({"a": dict(imgsz=128, map50=0.7123, map50_std=0.0111, seeds=3),
                              "b": dict(imgsz=128, map50=0.5, map50_std=0.02, seeds=3)})
    table = C.format_comparison(rows)
    assert "0.712 ± 0.011" in table and "over 3 seeds" in table


def test_speed_notes_are_computed_from_the_rows():
    notes = C.speed_notes(C.comparison_rows(FAKE))
    assert "0.50× the FLOPs" in notes[0] and "1.50× its CPU time" in notes[0] and "slower" in notes[0]
    assert "128×128" in notes[0] and "depthwise" in notes[0]  # the why, for a MobileNet
    assert "0.75× the FLOPs" in notes[1] and "about as fast" in notes[1]
    assert notes[2].startswith("FLOPs and CPU latency at 128 px disagree")
    faster = copy.deepcopy(FAKE)
    faster["mobilenet-ish"]["cpu_ms"] = 5.0
    assert "faster than its FLOPs predict" in C.speed_notes(C.comparison_rows(faster))[0]


def test_flops_latency_words_name_each_pair_that_disagrees():
    rows = C.comparison_rows(FAKE)  # FLOPs 2 < 3 < 4, time 30 > 15 < 20
    text = C.flops_latency_words(rows)
    assert "mobilenet-ish has fewer FLOPs than shufflenet-ish" in text
    assert "mobilenet-ish has fewer FLOPs than base" in text and "shufflenet-ish has fewer FLOPs than base" not in text
    agree = copy.deepcopy(FAKE)
    agree["mobilenet-ish"]["cpu_ms"], agree["shufflenet-ish"]["cpu_ms"] = 10.0, 15.0
    assert "agree: fewest FLOPs to most (mobilenet-ish < shufflenet-ish < base)" in \
        C.flops_latency_words(C.comparison_rows(agree))


def _ranked(means, stds):
    return C.comparison_rows({n: dict(map50=m, map50_std=s) for n, m, s in zip("ABC", means, stds)})


def test_rank_words_call_a_difference_only_beyond_the_spread():
    r = C.rank_words(_ranked([0.70, 0.60, 0.58], [0.02, 0.03, 0.01]))
    assert r["order"] == ["A", "B", "C"] and r["best"] == "A" and r["tiers"] == [["A"], ["B", "C"]]
    assert r["sentence"].startswith("Best by test mAP@0.5: A.")
    assert "A 0.700 ± 0.020 is ahead of B 0.600 ± 0.030 (gap 0.100 > spread 0.050)" in r["sentence"]
    assert "B 0.600 ± 0.030 and C 0.580 ± 0.010 cannot be told apart (gap 0.020 ≤ spread 0.040)" in r["sentence"]
    tied = C.rank_words(_ranked([0.62, 0.70, 0.40], [0.05, 0.04, 0.01]))
    assert tied["best"] is None and tied["tiers"] == [["B", "A"], ["C"]]
    assert tied["sentence"].startswith("No single best by test mAP@0.5: B, A are within their spread.")
    one_seed = C.rank_words(C.comparison_rows({"A": dict(map50=0.7), "B": dict(map50=0.2)}))
    assert one_seed["best"] is None and "no difference is called" in one_seed["sentence"]
    with pytest.raises(ValueError, match="no 'map'"):
        C.rank_words(C.comparison_rows({"A": dict(map50=0.7)}), "map")


def test_seed_summary_is_mean_and_sample_std():
    s = C.seed_summary([0.5, 0.7, 0.6])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1) and s["n"] == 3
    assert C.seed_summary([0.4])["std"] is None
    with pytest.raises(ValueError, match="values"):
        C.seed_summary([0.4, float("nan")])


def test_comparison_rows_refuses_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        C.comparison_rows({})
    with pytest.raises(ValueError, match="entries"):
        C.comparison_rows({"a": 3})


def test_param_groups_plot(shufflenet):
    groups = {"ShuffleNetV2": layer_groups(shufflenet)}
    fig = C.plot_param_groups(groups)
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == pytest.approx(sorted(v / 1e6 for v in groups["ShuffleNetV2"].values()))
    matplotlib.pyplot.close(fig)


def _run(seed, map50, secs, capped=False):
    test = dict(epoch=3, images=10, instances=30, map50=map50, map=map50 / 2, precision=0.5, recall=0.5,
                coco_map50=map50 - 0.01, coco_map=map50 / 2 - 0.01)
    return dict(seed=seed, train_time_s=secs, stopped_by_budget=capped, test=test,
                history=[dict(epoch=0, loss=2.0, map50=0.1), dict(epoch=1, loss=1.0, map50=map50)])


def _reference(rec=None):
    models = []
    for name, maps in (("YOLOv5n", (0.60, 0.62, 0.61)), ("ShuffleNetV2", (0.70, 0.72, 0.74))):
        runs = [_run(s, m, 600 + 60 * s, capped=s == 2) for s, m in enumerate(maps)]
        models.append(dict(name=name, imgsz=128, params=5, gflops=0.2, gflops_640=4.0, cpu_ms=6.0,
                           summary=B.summarize_runs(runs), runs=runs))
    meta = dict(schema=B.SCHEMA, device="CPU (test, 2 threads)", torch_version="2.x", date="2026-12-01T00:00",
                recipe=rec if rec is not None else dict(imgsz=128, time_budget_s=900), recipe_name="full", seeds=3,
                loadavg_start=[0.1, 0, 0], loadavg_end=[0.4, 0, 0])
    return dict(meta=meta, models=models)


def test_reference_entries_read_means_and_spread_over_seeds():
    ref = _reference()
    e = B.reference_entries(ref)
    assert e["ShuffleNetV2"]["map50"] == pytest.approx(0.72) and e["ShuffleNetV2"]["map50_std"] == pytest.approx(0.02)
    assert e["YOLOv5n"]["train_s"] == pytest.approx(660) and e["YOLOv5n"]["seeds"] == 3
    assert e["YOLOv5n"]["coco_map50"] == pytest.approx(0.60)
    r = C.rank_words(C.comparison_rows(e))
    assert r["best"] == "ShuffleNetV2"
    assert "device: CPU (test, 2 threads)" in B.reference_meta(ref) and "load 0.1 -> 0.4" in B.reference_meta(ref)
    assert B.load_reference("/nonexistent/x.json") is None
    with pytest.raises(ValueError, match=r"models\[0\] lacks \['summary'\]"):
        B.reference_entries({"models": [{"name": "x", "imgsz": 1, "params": 1, "gflops": 1}]})
    with pytest.raises(ValueError, match="'models' list"):
        B.reference_entries({"rows": []})


def test_reference_status_and_duration_read_the_json():
    rec = dict(imgsz=128, time_budget_s=900)
    ok, text = B.reference_status(_reference(rec), rec)
    assert ok and text.startswith("REFERENCE (not your run)")
    words = B.reference_duration(_reference(rec), rec)
    # seed 0 runs: 600 s each, 2 detectors -> 20 min; all six runs 2 * (600 + 660 + 720) s = 66 min
    assert "took 20 min in all (YOLOv5n 10.0, ShuffleNetV2 10.0 min)" in words
    assert "the whole reference (6 runs) took 66 min" in words and "capped at 15 min; 2 of the 6 runs" in words
    ok, text = B.reference_status(None)
    assert not ok and "No reference run" in text and "not known" in B.reference_duration(None)
    old = {"meta": {"device": "cpu"}, "models": [{"name": "YOLOv5n", "params": 5, "map50": 0.95}]}
    ok, text = B.reference_status(old)
    assert not ok and "predates the discriminating recipe" in text
    assert "predates" in B.reference_duration(old)
    ok, text = B.reference_status(_reference(rec), dict(rec, imgsz=160))
    assert not ok and "different recipe" in text


def test_reference_figure_draws_every_seed():
    ref = _reference()
    fig = B.reference_figure(ref)
    assert len(fig.axes[1].lines) == 6
    assert list(fig.axes[1].lines[3].get_ydata()) == [0.1, 0.70]
    assert fig._suptitle.get_text().startswith("REFERENCE")
    matplotlib.pyplot.close(fig)


def test_shipped_reference_is_readable_or_explained():
    ref = B.load_reference()
    ok, text = B.reference_status(ref, recipe('full'))
    if not ok:
        assert "benchmarks/yolo_full.py" in text
        return
    rows = C.comparison_rows(B.reference_entries(ref))
    assert {r["name"] for r in rows} == {m["name"] for m in ref["models"]}
    assert ref["words"]["map50"] == C.rank_words(rows, "map50", "test mAP@0.5")["sentence"]


def _yolo_full():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "yolo_full.py"
    spec = importlib.util.spec_from_file_location("yolo_full", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_yolo_full_smoke_records_every_seed_and_the_words(tmp_path):
    """The reference-run command at tiny sizes: 3 detectors x 2 seeds, schema, summary, words, replot."""
    yolo_full = _yolo_full()
    out = tmp_path / "ref.json"
    threads = torch.get_num_threads()
    try:
        ref = yolo_full.main(["--smoke", "--out", str(out), "--project", str(tmp_path / "runs"),
                              "--data-root", str(tmp_path / "data"), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved["meta"]["schema"] == B.SCHEMA and saved["meta"]["seeds"] == 2 and saved["meta"]["threads"] == 1
    assert {"torch_version", "device", "cores", "loadavg_start", "load_note"} <= set(saved["meta"])
    assert [m["name"] for m in saved["models"]] == list(B.DETECTORS)
    for m in saved["models"]:
        assert [r["seed"] for r in m["runs"]] == [0, 1] and m["imgsz"] == saved["meta"]["recipe"]["imgsz"]
        assert m["summary"]["map50"]["n"] == 2
        assert m["summary"]["map50"]["mean"] == pytest.approx(np.mean([r["test"]["map50"] for r in m["runs"]]))
        assert m["gflops"] < m["gflops_640"] and m["cpu_ms"] > 0
    rows = C.comparison_rows(B.reference_entries(saved))
    assert saved["words"]["map50"] == C.rank_words(rows, "map50", "test mAP@0.5")["sentence"]
    assert saved["words"]["flops_vs_latency"] == C.flops_latency_words(rows)
    top = max(m["summary"]["map50"]["mean"] for m in saved["models"])
    assert saved["words"]["target"].split(": ")[1].startswith("met" if 0.6 <= top <= 0.85 else "NOT met")
    assert out.with_suffix(".png").is_file() and ref["meta"] == saved["meta"]
    again = yolo_full.main(["--smoke", "--replot", "--out", str(out)])
    assert again["words"] == saved["words"]
    with pytest.raises(ValueError, match="--seeds"):
        yolo_full.main(["--smoke", "--seeds", "1", "1", "--out", str(out)])
    assert not out.with_name("ref.partial.json").exists()
    # Written for seed 0 only while the progress file holds seed 1 too: no training, and the file stays.
    progress = out.with_name("ref.partial.json")
    models = {m["name"]: dict(runs={str(r["seed"]): r for r in m["runs"]},
                              cost={k: v for k, v in m.items() if k not in ("name", "cfg", "summary", "runs")})
              for m in saved["models"]}
    progress.write_text(json.dumps(dict(recipe=saved["meta"]["recipe"], models=models)))
    one = yolo_full.main(["--smoke", "--seeds", "0", "--out", str(out), "--threads", "1"])
    assert one["meta"]["seeds"] == 1 and all(len(m["runs"]) == 1 for m in one["models"])
    assert json.loads(progress.read_text())["models"] == json.loads(json.dumps(models))


def test_yolo_full_resumes_only_a_run_of_the_same_recipe(tmp_path, capsys):
    yolo_full = _yolo_full()
    rec = recipe("quick")
    progress = tmp_path / "ref.partial.json"
    assert yolo_full.resume(progress, rec) == {}
    models = {"YOLOv5n": dict(runs={"0": dict(seed=0)}, cost=dict(params=1))}
    progress.write_text(json.dumps(dict(recipe=rec, models=models)))
    assert yolo_full.resume(progress, rec) == models
    assert "resuming: 1 runs" in capsys.readouterr().out
    assert yolo_full.resume(progress, dict(rec, epochs=rec["epochs"] + 1)) == {}
    assert "another recipe" in capsys.readouterr().out


def test_yolo_full_runs_seed_major_so_an_interrupted_reference_stays_balanced(tmp_path, monkeypatch):
    yolo_full = _yolo_full()
    calls = []

    class Interrupted(Exception):
        pass

    def run_one(det, cfg, rec, data, project, seed, device):
        if len(calls) == len(B.DETECTORS) + 1:
            raise Interrupted
        calls.append((det, seed))
        return dict(seed=seed, weights="best.pt")

    monkeypatch.setattr(yolo_full, "run_one", run_one)
    monkeypatch.setattr(yolo_full, "measure", lambda *a, **k: dict(params=1))
    monkeypatch.setattr(yolo_full, "make_data", lambda rec, root: None)
    out = tmp_path / "ref.json"
    threads = torch.get_num_threads()
    try:
        with pytest.raises(Interrupted):
            yolo_full.main(["--smoke", "--out", str(out), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert calls == [(d, 0) for d in B.DETECTORS] + [(list(B.DETECTORS)[0], 1)]
    saved = json.loads(out.with_name("ref.partial.json").read_text())["models"]
    assert {d: sorted(m["runs"]) for d, m in saved.items()} == dict(
        {d: ["0"] for d in B.DETECTORS}, **{list(B.DETECTORS)[0]: ["0", "1"]})
    assert not out.exists()


def test_format_deployment_shows_size_error_and_speed_up():
    def timing(ms):
        return LatencyResult(ms, 0.1, [ms], "cpu", "CPU", 2, 1, "float32", "2.x")

    check = OnnxCheck(max_abs_diff=2e-5, max_rel_diff=1e-6, output_shape=(1, 100, 8), atol=1e-3, rtol=1e-3, ok=True)
    text = B.format_deployment([dict(name="YOLOv5n", check=check, size_mb=7.31, torch=timing(30.0), onnx=timing(15.0))])
    head, _, row, note = text.splitlines()
    assert head.split()[:3] == ["detector", "ONNX", "MB"]
    assert row.split() == ["YOLOv5n", "7.3", "2.0e-05", "30.0", "15.0", "2.00×"]
    assert "2 threads" in note and "batch 1" in note

def test_live_curves_collects_every_epoch():
    curves = ch.LiveCurves()
    cb = curves.callbacks("a")["on_epoch_end"]
    for e in range(3):
        cb(e, dict(epoch=e, loss=1.0 / (e + 1), map50=0.1 * e))
    fig = curves.figure()
    assert list(fig.axes[1].lines[0].get_ydata()) == [0.0, 0.1, 0.2]
    matplotlib.pyplot.close(fig)


def test_recipe_has_the_training_knobs():
    r = ch.recipe()
    assert {"epochs", "imgsz"} <= set(r) and train_kwargs(r).keys() <= {
        "epochs", "imgsz", "batch_size", "hyp", "device", "seed", "project", "workers", "progress", "cos_lr",
        "ema_tau", "nbs", "cache", "resume"}


_viewer_models: list = []


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    from course.yolo.data import YoloDataset, load_data_config, make_shapes

    data = load_data_config(make_shapes(tmp_path_factory.mktemp("shapes"), n_train=1, n_val=3, imgsz=64, seed=1))
    dataset = YoloDataset(data["val"], 64, augment=False, nc=data["nc"])
    quiet = DetectionModel("yolov5n.yaml", nc=data["nc"])
    eager = copy.deepcopy(quiet)
    with torch.no_grad():
        for conv in eager.model[-1].m:
            conv.weight.zero_()  # logits = biases: conf = sigmoid(1.5) ** 2 = 0.67 in every cell
            b = conv.bias.view(eager.model[-1].na, -1)
            b[:, 4] = 1.5  # every cell thinks there is an object...
            b[:, 5] = 1.5  # ...of class 0
    _viewer_models[:] = [quiet, eager]
    return ch.detection_widget({"quiet": quiet, "eager": eager}, dataset, data["names"]), dataset, data["names"]


def test_detection_widget_follows_its_controls(viewer):
    handle, dataset, names = viewer
    s0 = handle.state()
    assert s0["detector"] == "quiet" and s0["n_detections"] == 0
    handle.controls["detector"].value = "eager"
    s1 = handle.state()
    assert s1["n_detections"] > 0 and set(s1["classes"]) == {names[0]} and min(s1["scores"]) >= 0.25
    handle.controls["image"].value = 2
    s2 = handle.state()
    assert s2["image"] == 2 and s2["n_truth"] == len(dataset[2][1])
    handle.controls["conf"].value = 0.95
    assert handle.state()["n_detections"] == 0


def test_detection_widget_refuses_bad_input(viewer):
    _, dataset, names = viewer
    with pytest.raises(ValueError, match="conf"):
        ch.detection_widget({"m": DetectionModel("yolov5n.yaml", nc=4)}, dataset, names, conf=1.5)
    with pytest.raises(ValueError, match="non-empty"):
        ch.detection_widget({}, dataset, names)



def test_plot_samples_draws_every_label_and_names_the_file(viewer):
    _, dataset, names = viewer
    fig = C.plot_samples(dataset, names, indices=[0, 2], cols=2)
    for ax, i in zip(fig.axes, [0, 2]):
        _, labels, path, _ = dataset[i]
        assert len(ax.patches) == len(labels)
        assert ax.get_title() == f"{Path(path).name}: {len(labels)} objects"
    with pytest.raises(ValueError, match="indices"):
        C.plot_samples(dataset, names, indices=[len(dataset)])
    matplotlib.pyplot.close(fig)

def test_plot_detections_puts_every_detector_beside_the_truth(viewer):
    _, dataset, names = viewer
    from course.yolo.val import predict

    quiet, eager = _viewer_models
    fig = C.plot_detections({"quiet": quiet, "eager": eager}, dataset, names, indices=[0, 2], conf=0.25)
    axes = fig.axes
    assert len(axes) == 2 * 3
    for r, i in enumerate([0, 2]):
        img, labels, _, _ = dataset[i]
        assert len(axes[3 * r].patches) == len(labels)
        assert len(axes[3 * r + 1].patches) == 0  # the quiet model finds nothing
        n = len(predict(eager, img, conf_thres=0.25, iou_thres=0.45)[0])
        assert n > 0 and len(axes[3 * r + 2].patches) == n and axes[3 * r + 2].get_title() == f"eager: {n} found"
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="indices"):
        C.plot_detections({"quiet": quiet}, dataset, names, indices=[99])
    with pytest.raises(ValueError, match="non-empty"):
        C.plot_detections({}, dataset, names)


# ---- exercises, both ways

def _swap_solution():
    """Exercise 6.1 solved by hand, not with the checker's replace_backbone: YOLOv5n's head with its
    widths (x 0.25) and depths (3 x 0.33 -> 1) written out, every absolute `from` renumbered for
    the 12-row backbone (P4 tap 6 -> 8, P3 tap 4 -> 3, head rows +2)."""
    head = [[-1, 1, "Conv", [128, 1, 1]],
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 8], 1, "Concat", [1]],
            [-1, 1, "C3", [128, False]],  # 15
            [-1, 1, "Conv", [64, 1, 1]],
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 3], 1, "Concat", [1]],
            [-1, 1, "C3", [64, False]],  # 19, P3
            [-1, 1, "Conv", [64, 3, 2]],
            [[-1, 16], 1, "Concat", [1]],
            [-1, 1, "C3", [128, False]],  # 22, P4
            [-1, 1, "Conv", [128, 3, 2]],
            [[-1, 12], 1, "Concat", [1]],
            [-1, 1, "C3", [256, False]],  # 25, P5
            [[19, 22, 25], 1, "Detect", ["nc", "anchors"]]]
    return {"nc": 80, "depth_multiple": 1.0, "width_multiple": 1.0,
            "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
            "backbone": copy.deepcopy(MBV3_BACKBONE), "head": head}


def _insert_solution(cfg, index, row):
    """Exercise 6.3 solved independently of the checker's insert_layer."""
    def renumber(f):
        return [renumber(j) for j in f] if isinstance(f, list) else (f + 1 if f >= index else f)

    new = copy.deepcopy(cfg)
    for part in ("backbone", "head"):
        new[part] = [[renumber(f), n, m, args] for f, n, m, args in new[part]]
    nb = len(new["backbone"])
    part, at = ("backbone", index) if index < nb else ("head", index - nb)
    new[part].insert(at, list(row))
    return new


def test_exercise_6_1_passes_and_fails_helpfully():
    check("6.1", _swap_solution())
    check("6.1", _swap_solution)  # the function itself, as the notebook passes it
    import yaml

    check("6.1", yaml.safe_dump(_swap_solution()))  # a YAML string works too
    wrong = _swap_solution()
    wrong["head"][2][0] = [-1, 3]  # P4 concat reads the stride-8 tap
    with pytest.raises(ExerciseFailed, match="layer 14"):
        check("6.1", wrong)
    stale = _swap_solution()
    stale["head"][-1][0] = [17, 20, 23]
    with pytest.raises(ExerciseFailed, match=r"Detect (inputs|sees)"):  # yolov5n's indices read the wrong layers
        check("6.1", stale)
    unscaled = _swap_solution()
    unscaled["head"][0][3] = [512, 1, 1]
    with pytest.raises(ExerciseFailed, match="layer 12"):
        check("6.1", unscaled)
    with pytest.raises(ExerciseFailed, match="dict or a YAML string"):
        check("6.1", 42)


def test_exercise_6_2_both_ways():
    import math

    check("6.2", lambda c2, gw, div=8: math.ceil(c2 * gw / div) * div)
    with pytest.raises(ExerciseFailed, match="rounds"):
        check("6.2", lambda c2, gw, div=8: round(c2 * gw))
    with pytest.raises(ExerciseFailed, match="not done yet"):
        def todo(c2, gw, div=8):
            raise NotImplementedError()
        check("6.2", todo)


def test_exercise_6_3_both_ways():
    check("6.3", _insert_solution)

    def forgets_lists(cfg, index, row):
        rows = cfg["backbone"] + cfg["head"]
        rows = [[f + 1 if isinstance(f, int) and f >= index else f, n, m, a] for f, n, m, a in rows]
        rows.insert(index, row)
        nb = len(cfg["backbone"]) + (index < len(cfg["backbone"]))
        return dict(cfg, backbone=rows[:nb], head=rows[nb:])

    with pytest.raises(ExerciseFailed, match="moves up by one"):
        check("6.3", forgets_lists)


def test_exercise_6_4_define_and_register_both_ways():
    from torch import nn

    from course.blocks import DepthwiseSeparableConv
    from course.yolo import register_module

    class DSStage(nn.Sequential):
        def __init__(self, c1, c2, n):
            super().__init__(DepthwiseSeparableConv(c1, c2, 2), *(DepthwiseSeparableConv(c2, c2) for _ in range(n - 1)))

    class AllStride2(nn.Sequential):
        def __init__(self, c1, c2, n):
            super().__init__(DepthwiseSeparableConv(c1, c2, 2), *(DepthwiseSeparableConv(c2, c2, 2) for _ in range(n - 1)))

    def todo():
        raise NotImplementedError()

    with pytest.raises(ExerciseFailed, match="not done yet"):
        check("6.4", DSStage, todo)
    with pytest.raises(ExerciseFailed, match="maps to AllStride2"):  # registered another class under the name
        check("6.4", DSStage, lambda: register_module("DSStage", AllStride2))
    with pytest.raises(ExerciseFailed, match="channels='scaled'"):
        check("6.4", DSStage, lambda: register_module("DSStage", DSStage, channels="passthrough"))
    with pytest.raises(ExerciseFailed, match="output shape"):
        check("6.4", AllStride2, lambda: register_module("DSStage", AllStride2))
    check("6.4", DSStage, lambda: register_module("DSStage", DSStage))


def test_yolo_full_data_preset_probe_needs_its_own_out():
    with pytest.raises(ValueError, match="own --out"):
        _yolo_full().main(["--smoke", "--data-preset", "medium"])

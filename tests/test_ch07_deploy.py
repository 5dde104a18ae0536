"""Chapter 07: the deployment study's rows, the widget that shows them, the anchors and the exercises."""

from __future__ import annotations

import json
import logging
import math
import statistics

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course.deploy import study as S
from course.deploy.anchors import ANCHORS, anchor_rows
from course.deploy.channel_ranges import spread_depthwise_ranges
from course.exercises import ExerciseFailed, check
from course.models import build_model, randomize_batchnorm
from course.widgets import ch07_deploy as ch07

logging.getLogger().setLevel(logging.ERROR)
SIZE = 32


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return randomize_batchnorm(build_model("mobilenet_v2", num_classes=10, width_mult=0.35)).eval()


@pytest.fixture(scope="module")
def test_set():
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(24, 3, SIZE, SIZE, generator=g), torch.randint(0, 10, (24,), generator=g))


@pytest.fixture(scope="module")
def rows(classifier, test_set, tmp_path_factory):
    calibration = S.calibration_batches(TensorDataset(torch.rand(16, 3, SIZE, SIZE), torch.zeros(16)), 16, 8)
    out = S.classifier_rows(classifier, "mbv2", test_set, calibration, tmp_path_factory.mktemp("study"), SIZE,
                            batches=(1, 2), runtimes=("eager", "eager_bn_folded", "onnxruntime", "onnxruntime_int8"),
                            threads=1, rounds=2, number=1, batch_size=8)
    return [r.as_dict() for r in out]


def test_classifier_rows_cover_every_runtime_precision_and_batch(rows, classifier, test_set):
    keys = [(r["runtime"], r["precision"], r["batch"]) for r in rows]
    for b in (1, 2):
        for rt, prec in (("eager", "fp32"), ("eager_bn_folded", "fp32"), ("onnxruntime", "fp32"),
                         ("onnxruntime_int8", "int8 per-channel"), (S.INT8_PER_TENSOR, "int8 per-tensor")):
            assert (rt, prec, b) in keys
    by = {(r["runtime"], r["batch"]): r for r in rows}
    with torch.no_grad():
        want = int((classifier(test_set.tensors[0]).argmax(1) == test_set.tensors[1]).sum()) / len(test_set)
    # fp32 runtimes compute the same function: the same test top-1
    assert by["eager", 1]["accuracy"] == by["onnxruntime", 1]["accuracy"] == by["eager_bn_folded", 2]["accuracy"] == want
    assert all(r["metric"] == "top-1" and r["threads"] == 1 for r in rows)
    assert by["onnxruntime_int8", 1]["size_mb"] < by["onnxruntime", 1]["size_mb"] / 2.5
    assert math.isnan(by[S.INT8_PER_TENSOR, 1]["median_ms"]) and by[S.INT8_PER_TENSOR, 1]["size_mb"] > 0
    assert by["eager", 2]["speedup"] == 1.0 and by["onnxruntime", 2]["median_ms"] > 0


def test_activation_study_scores_each_model_and_reuses_exported_files(classifier, test_set, tmp_path):
    from course.variants import apply_variants

    calibration = [torch.rand(8, 3, SIZE, SIZE) for _ in range(2)]
    relu = randomize_batchnorm(apply_variants(classifier, ["relu6_to_relu"]), seed=2).eval()
    fresh = S.activation_study({"relu6": classifier, "relu": relu}, test_set, calibration, tmp_path, SIZE, batch_size=8)
    assert [r["model"] for r in fresh] == ["relu6", "relu"]
    for r in fresh:
        assert r["delta"] == pytest.approx(r["top1_int8"] - r["top1_fp32"]) and r["output_error"] > 0
    reused = S.activation_study({"relu6": classifier}, test_set, calibration, tmp_path / "other", SIZE, batch_size=8,
                                exported={"relu6": (tmp_path / "act0.onnx", tmp_path / "act0_int8.onnx")})
    assert reused[0] == fresh[0] and not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="pairs"):
        S.activation_study({}, test_set, calibration, tmp_path, SIZE)


def test_study_refuses_bad_arguments(classifier, test_set, tmp_path):
    with pytest.raises(ValueError, match="runtimes must start with 'eager'"):
        S.classifier_rows(classifier, "m", test_set, [torch.rand(2, 3, SIZE, SIZE)], tmp_path, SIZE,
                          runtimes=("onnxruntime",))
    with pytest.raises(ValueError, match="test_set"):
        S.classifier_rows(classifier, "m", [], [torch.rand(2, 3, SIZE, SIZE)], tmp_path, SIZE)
    with pytest.raises(ValueError, match="empty"):
        S.calibration_batches([], 8)
    with pytest.raises(ValueError, match="n_images"):
        S.calibration_batches(test_set, 0)
    with pytest.raises(ValueError, match="label 'ResNet'"):
        S.trained_classifiers("quick", ["ResNet"])
    with pytest.raises(ValueError, match="nc"):
        S.detection_map50(object(), [])
    assert not any(tmp_path.iterdir())


def test_calibration_batches_take_the_first_images_in_batches(test_set):
    batches = S.calibration_batches(test_set, 20, batch_size=8)
    assert [len(b) for b in batches] == [8, 8, 4]
    torch.testing.assert_close(batches[1][0], test_set[8][0])
    assert sum(len(b) for b in S.calibration_batches(test_set, 1000)) == len(test_set)


def test_output_error_is_zero_for_the_same_runner_and_grows_with_noise(classifier):
    batches = [torch.rand(4, 3, SIZE, SIZE) for _ in range(2)]
    assert S.output_error(classifier, classifier, batches) == 0.0
    noisy = S.output_error(classifier, lambda x: classifier(x) + 0.1 * torch.randn(len(x), 10), batches)
    assert 0 < noisy < S.output_error(classifier, lambda x: classifier(x) + torch.randn(len(x), 10), batches)
    with pytest.raises(ValueError, match="empty"):
        S.output_error(classifier, classifier, [])


def test_depthwise_range_spread_sees_spread_channels():
    torch.manual_seed(0)
    plain = randomize_batchnorm(build_model("mobilenet_v1", num_classes=10, width_mult=0.25)).eval()
    before = max(S.depthwise_range_spread(plain))
    after = S.depthwise_range_spread(spread_depthwise_ranges(plain, decades=2.0))
    assert len(after) == 13 and max(after) > 5 * before
    with pytest.raises(ValueError, match="no depthwise"):
        S.depthwise_range_spread(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))


def test_torch_quantization_status_is_read_from_the_install():
    import importlib.util

    status = S.torch_quantization_status()
    assert status["torch"] == torch.__version__
    assert status["torchao_installed"] == (importlib.util.find_spec("torchao") is not None)
    assert status["onnxruntime_quantization"] and isinstance(status["eager_mode"], bool)
    if status["eager_mode"]:
        assert status["deprecation"] == "" or "deprecated" in status["deprecation"]


def test_quantization_sentence_says_what_the_install_has():
    base = dict(torch="9.9", eager_mode=True, fx_mode=False, deprecation="x is deprecated.", pt2e_in_torch=False,
                torchao_installed=True, onnxruntime_quantization=True)
    text = S.describe_quantization_status(base)
    assert text.startswith("torch 9.9: torch.ao.quantization (eager mode) still imports, with the notice")
    assert "no longer in torch" in text and "torchao (its successor) is installed" in text
    gone = S.describe_quantization_status({**base, "eager_mode": False, "pt2e_in_torch": True,
                                           "torchao_installed": False})
    assert "is gone" in gone and "still in torch" in gone and "not installed" in gone


def test_train_variant_trains_the_surgered_network():
    r = S.train_variant("mobilenet_v2", 0.35, ["relu6_to_relu"], mode="quick", progress=False, epochs=1)
    acts = {type(m) for m in r.model.modules()}
    assert nn.ReLU in acts and nn.ReLU6 not in acts and r.config["variants"] == ["relu6_to_relu"]
    assert r.test_acc is not None


def test_checkpoints_are_loaded_not_trained(tmp_path):
    from course import classify

    torch.manual_seed(3)
    model = classify.build_classifier("shufflenet_v2", 10, 1.0)
    path = classify.save_checkpoint(tmp_path / "s.pt", model, {"test_acc": 0.5})
    got = S.trained_classifiers("quick", ["ShuffleNet V2 x1.0"], checkpoints={"ShuffleNet V2 x1.0": path})
    entry = got["ShuffleNet V2 x1.0"]
    assert entry["source"] == "checkpoint" and entry["test_acc"] == 0.5
    torch.testing.assert_close(entry["model"].state_dict(), model.state_dict())
    with pytest.raises(ValueError, match="not asked for"):
        S.trained_classifiers("quick", [], checkpoints={"MobileNet V2": path})


def test_kept_classifiers_are_trained_once(tmp_path, monkeypatch):
    first = S.trained_classifiers("quick", ["ShuffleNet V2 x1.0"], keep_dir=tmp_path)["ShuffleNet V2 x1.0"]
    assert first["source"] == "trained (quick recipe)" and len(list(tmp_path.glob("*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a kept classifier was trained again")

    monkeypatch.setattr(S, "train_variant", no_training)
    again = S.trained_classifiers("quick", ["ShuffleNet V2 x1.0"], keep_dir=tmp_path)["ShuffleNet V2 x1.0"]
    assert again["test_acc"] == first["test_acc"] and "kept in" in again["source"]
    torch.testing.assert_close(again["model"].state_dict(), first["model"].state_dict())
    with pytest.raises(AssertionError, match="trained again"):  # another seed is another model
        S.trained_classifiers("quick", ["ShuffleNet V2 x1.0"], seed=1, keep_dir=tmp_path)


def test_detector_runner_gives_the_models_decoded_output(tmp_path):
    from course.deploy.onnx_export import export_onnx, onnx_session
    from course.yolo import DetectionModel
    from course.yolo.export import DecodedOutput

    torch.manual_seed(0)
    det = randomize_batchnorm(DetectionModel("yolov5n.yaml", nc=2)).eval()
    path = export_onnx(DecodedOutput(det), tmp_path / "d.onnx", torch.zeros(1, 3, 64, 64))
    runner = S._DetectorRunner(onnx_session(path, 1), nc=2)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(runner(x)[0], det(x)[0], atol=1e-3, rtol=1e-3)
    assert runner.nc == 2 and next(runner.parameters()).device.type == "cpu"


def test_quantize_op_types_limits_what_is_quantized(tmp_path):
    import onnx

    from course.deploy.onnx_export import export_onnx
    from course.deploy.quantize import quantize_int8

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    fp32 = export_onnx(net.eval(), tmp_path / "n.onnx", torch.zeros(1, 3, 8, 8))
    calibration = [torch.rand(2, 3, 8, 8)]

    def quantized_inputs(path):
        nodes = onnx.load(str(path)).graph.node
        made = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
        return {n.op_type for n in nodes if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                and any(i in made for i in n.input)}

    assert "Gemm" in quantized_inputs(quantize_int8(fp32, tmp_path / "all.onnx", calibration))
    convs_only = quantized_inputs(quantize_int8(fp32, tmp_path / "conv.onnx", calibration, op_types=("Conv",)))
    assert "Conv" in convs_only and "Gemm" not in convs_only
    for bad in ("Conv", [], [""]):
        with pytest.raises(ValueError, match="op_types"):
            quantize_int8(fp32, tmp_path / "x.onnx", calibration, op_types=bad)


def _row(model, runtime, precision, batch, ms, speedup, size, acc):
    return dict(model=model, runtime=runtime, precision=precision, batch=batch, threads=1, median_ms=ms,
                speedup=speedup, size_mb=size, metric="top-1", accuracy=acc, max_abs_diff=0.0, note="")


ROWS = [_row("A", "eager", "fp32", 1, 10.0, 1.0, 8.0, 0.80), _row("A", "onnxruntime", "fp32", 1, 4.0, 2.5, 8.0, 0.80),
        _row("A", "onnxruntime_int8", "int8 per-channel", 1, 5.0, 2.0, 2.0, 0.70),
        _row("A", S.INT8_PER_TENSOR, "int8 per-tensor", 1, None, None, 1.9, 0.40),
        _row("B", "eager", "fp32", 1, 20.0, 1.0, 4.0, 0.60), _row("B", "onnxruntime", "fp32", 1, 8.0, 2.5, 4.0, 0.60)]


def test_widget_shows_the_choice_beside_the_fp32_eager_row():
    w = ch07.deploy_widget(ROWS)
    s = w.state()
    assert (s["model"], s["runtime"], s["batch"]) == ("A", "eager", 1) and s["accuracy_change"] == 0
    w.controls["runtime"].value = "onnxruntime_int8 | int8 per-channel"
    s = w.state()
    assert s["size_ratio"] == 0.25 and s["accuracy_change"] == pytest.approx(-0.10) and s["speedup"] == 2.0
    assert s["reference"]["runtime"] == "eager"
    w.controls["model"].value = "B"  # B has no int8 row: the widget says so instead of failing
    assert "no row for 'B'" in w.state()["error"]
    w.controls["runtime"].value = "onnxruntime | fp32"
    assert w.state()["speedup"] == 2.5 and w.state()["reference"]["median_ms"] == 20.0
    with pytest.raises(ValueError, match="non-empty"):
        ch07.deploy_widget([])


def test_tables_sentences_and_plot_come_from_the_rows():
    import matplotlib.pyplot as plt

    table = ch07.format_rows(ROWS, "T")
    assert table.splitlines()[0] == "T" and "int8 per-tensor" in table and "40.0 %" in table
    sentences = ch07.describe_rows(ROWS, 1)
    assert sentences[0].startswith("A (batch 1): fastest is onnxruntime (fp32), 2.50x eager's 10.00 ms")
    assert "int8 is 4.0x smaller" in sentences[0] and "-10.0 points" in sentences[0]
    assert sentences[1].startswith("B (batch 1)") and "int8" not in sentences[1]
    fig = ch07.plot_speedups(ROWS, "t")
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert sorted(bars) == [2.0, 2.5, 2.5]
    plt.close(fig)
    with pytest.raises(ValueError, match="no eager row"):
        ch07.describe_choice(ROWS, "C", "eager", "fp32", 1)
    act = ch07.format_activation([dict(model="m", top1_fp32=0.5, top1_int8=0.45, delta=-0.05, output_error=0.01)])
    assert "-5.0 pts" in act


def test_reference_is_read_when_present_and_none_when_absent(tmp_path):
    assert ch07.load_reference(tmp_path / "missing.json") is None
    path = tmp_path / "ref.json"
    meta = dict(date="d", device="cpu X", threads=2, torch="t", onnxruntime="o", load_average=[1.0], recipe="full")
    path.write_text(json.dumps(dict(meta=meta, rows=ROWS)))
    ref = ch07.load_reference(path)
    assert ref["rows"][3]["median_ms"] is None and "REFERENCE run (d): cpu X, 2 threads" in ch07.reference_meta(ref)
    assert "—" in ch07.format_rows(ref["rows"])


def test_anchors_have_sources_and_filter_by_kind():
    assert all(a["source"] for a in ANCHORS)
    assert {a["model"] for a in anchor_rows("int8 accuracy")} == {"MobileNet V2", "ShuffleNet V2 x1.0"}
    with pytest.raises(ValueError, match="kind"):
        anchor_rows("fp16")


# --------------------------------------------------------------------------- exercises


def qparams(lo, hi):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255
    return scale, round(-lo / scale)


def fake_quantize(w, per_channel):
    peak = w.abs().flatten(1).amax(1).view(-1, 1, 1, 1) if per_channel else w.abs().max()
    scale = peak / 127
    return (w / scale).round().clamp(-127, 127) * scale


def speedup(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def test_reference_solutions_pass(capsys):
    check("7.1", qparams)
    check("7.2", fake_quantize)
    check("7.3", speedup)
    assert capsys.readouterr().out.count("passed") == 3


def test_7_1_wrong_qparams_say_why():
    with pytest.raises(ExerciseFailed, match="contain 0"):
        check("7.1", lambda lo, hi: ((hi - lo) / 255, round(-lo / ((hi - lo) / 255))))
    with pytest.raises(ExerciseFailed, match="255 steps"):
        check("7.1", lambda lo, hi: ((max(hi, 0) - min(lo, 0)) / 256, round(-min(lo, 0) / ((max(hi, 0) - min(lo, 0)) / 256))))
    with pytest.raises(ExerciseFailed, match="integer"):
        check("7.1", lambda lo, hi: (qparams(lo, hi)[0], qparams(lo, hi)[1] + 0.5))
    with pytest.raises(ExerciseFailed, match="scale, zero_point"):
        check("7.1", lambda lo, hi: qparams(lo, hi)[0])


def test_7_2_wrong_quantizers_say_why():
    with pytest.raises(ExerciseFailed, match="per_channel=True"):
        check("7.2", lambda w, pc: fake_quantize(w, False))
    with pytest.raises(ExerciseFailed, match="127"):
        check("7.2", lambda w, pc: fake_quantize(w, pc) * 0 + (w / (w.abs().max() / 255)).round() * (w.abs().max() / 255))
    with pytest.raises(ExerciseFailed, match="shape"):
        check("7.2", lambda w, pc: fake_quantize(w, pc).flatten())


def test_7_3_wrong_speedups_say_why():
    with pytest.raises(ExerciseFailed, match="ratio of the medians"):
        check("7.3", lambda a, b: statistics.median(a) / statistics.median(b))
    with pytest.raises(ExerciseFailed, match="upside down"):
        check("7.3", lambda a, b: statistics.median(y / x for x, y in zip(a, b)))

"""course.deploy.runtimes and accuracy: one table of runtimes against eager; top-1 of eager and ORT agree."""

import logging
import math

import pytest
import torch

from course.deploy.accuracy import agreement, evaluate_top1
from course.deploy.onnx_export import export_onnx, onnx_runner, onnx_session
from course.deploy.runtimes import compare_runtimes
from course.models import build_model, randomize_batchnorm

logging.getLogger().setLevel(logging.ERROR)
SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_batchnorm(build_model("mobilenet_v1", num_classes=5, width_mult=0.25)).eval()


def test_table_has_one_row_per_runtime_and_batch(model, tmp_path):
    calibration = [torch.rand(4, *SHAPE) for _ in range(2)]
    rows = compare_runtimes(model, "mbv1", tmp_path, SHAPE, batches=(1, 2), calibration=calibration, threads=1,
                            runtimes=("eager", "eager_bn_folded", "onnxruntime", "onnxruntime_int8"),
                            rounds=2, number=1)
    assert [(r.runtime, r.batch) for r in rows] == [(rt, b) for b in (1, 2) for rt in
                                                    ("eager", "eager_bn_folded", "onnxruntime", "onnxruntime_int8")]
    by = {(r.runtime, r.batch): r for r in rows}
    assert all(r.threads == 1 and r.median_ms > 0 and math.isfinite(r.speedup) for r in rows)
    assert by["eager", 1].speedup == 1.0
    assert by["eager_bn_folded", 2].max_abs_diff < 1e-4 and by["onnxruntime", 2].max_abs_diff < 1e-4
    assert by["onnxruntime_int8", 1].precision == "int8" and by["onnxruntime_int8", 1].max_abs_diff > 0
    assert by["onnxruntime_int8", 1].size_mb < by["onnxruntime", 1].size_mb
    assert by["eager_bn_folded", 1].size_mb < by["eager", 1].size_mb  # BN's four vectors become one bias
    assert (tmp_path / "mbv1.onnx").is_file() and (tmp_path / "mbv1_int8.onnx").is_file()


def test_a_failing_torch_compile_is_reported_not_raised(model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    rows = compare_runtimes(model, "mbv1", tmp_path, SHAPE, batches=(1,), runtimes=("eager", "compile"),
                            threads=1, rounds=2, number=1)
    compiled = rows[1]
    assert compiled.runtime == "compile" and math.isnan(compiled.median_ms)
    assert "torch.compile failed here: RuntimeError: InvalidCxxCompiler" in compiled.note


@pytest.mark.slow
def test_torch_compile_matches_eager_where_it_compiles(tmp_path):
    class Tiny(torch.nn.Module):  # not a Sequential: like the course's networks, it has no len()
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            self.classifier = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.classifier(self.features(x))

    torch.manual_seed(0)
    tiny = randomize_batchnorm(Tiny()).eval()
    row = compare_runtimes(tiny, "tiny", tmp_path, (3, 16, 16), batches=(1,), runtimes=("compile",), threads=1,
                           rounds=2, number=1)[0]
    assert row.note == "" and row.max_abs_diff < 1e-5, row


@pytest.mark.parametrize("kwargs, match", [(dict(batches=()), "batches"), (dict(runtimes=("tensorrt",)), "runtimes"),
                                           (dict(runtimes=("onnxruntime_int8",)), "calibration"),
                                           (dict(threads=0), "threads"), (dict(input_shape=(3, 32)), "input_shape")])
def test_bad_arguments_are_refused(model, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_runtimes(model, "mbv1", tmp_path, **{"input_shape": SHAPE, **kwargs})
    assert not any(tmp_path.iterdir())


def test_top1_is_the_same_for_eager_and_onnx_runtime(model, tmp_path):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(4, *SHAPE, generator=g) for _ in range(3)]
    with torch.no_grad():
        predicted = [model(x).argmax(1) for x in images]
    # labels: the model's own prediction on the first two images of each batch, another class on the rest
    labels = [torch.where(torch.arange(4) < 2, p, (p + 1) % 5) for p in predicted]
    loader = list(zip(images, labels))
    session = onnx_session(export_onnx(model, tmp_path / "m.onnx", torch.zeros(1, *SHAPE)), threads=1)
    eager, ort = evaluate_top1(model, loader), evaluate_top1(onnx_runner(session), loader)
    assert (eager.correct, eager.total) == (ort.correct, ort.total) == (6, 12)
    assert evaluate_top1(model, loader, max_batches=1).total == 4
    assert agreement(model, onnx_runner(session), images) == 1.0


def test_top1_refuses_bad_loaders(model):
    with pytest.raises(ValueError, match="no images"):
        evaluate_top1(model, [])
    with pytest.raises(ValueError, match="pairs"):
        evaluate_top1(model, [torch.rand(2, *SHAPE)])
    with pytest.raises(ValueError, match="logits"):
        evaluate_top1(lambda x: x.mean(1), [(torch.rand(2, *SHAPE), torch.zeros(2))])


def test_quantize_kwargs_reach_the_int8_model(model, tmp_path):
    calibration = [torch.rand(4, *SHAPE) for _ in range(2)]
    sizes = {}
    for per_channel in (True, False):
        rows = compare_runtimes(model, f"m{per_channel}", tmp_path, SHAPE, batches=(1,), calibration=calibration,
                                threads=1, runtimes=("eager", "onnxruntime_int8"), rounds=1, number=1,
                                quantize_kwargs=dict(per_channel=per_channel))
        sizes[per_channel] = rows[1].size_mb
    assert sizes[False] < sizes[True]  # one scale and zero point per tensor instead of one per output channel
    with pytest.raises(ValueError, match="per_chanel"):
        compare_runtimes(model, "bad", tmp_path / "bad", SHAPE, batches=(1,), calibration=calibration, threads=1,
                         runtimes=("onnxruntime_int8",), quantize_kwargs=dict(per_chanel=False))
    assert not (tmp_path / "bad").exists()

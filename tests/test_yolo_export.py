"""course.yolo.export: ONNX export of a tiny detector equals PyTorch; bad arguments are refused."""

import pytest
import torch

from course.yolo import DetectionModel
from course.yolo.export import check_onnx, export_onnx, onnx_latency, onnx_session

TINY = {"nc": 2, "depth_multiple": 1.0, "width_multiple": 1.0,
        "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
        "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]],
                     [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2]]],
        "head": [[[2, 3, 4], 1, "Detect", ["nc", "anchors"]]]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = DetectionModel(TINY)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", imgsz=64, opset=17, dynamo=False)
    return model, path


def test_onnx_runtime_equals_pytorch(exported):
    model, path = exported
    assert model.training  # export restores the mode it found
    check = check_onnx(model, onnx_session(path, threads=1), imgsz=64)
    assert check.ok, str(check)
    assert check.output_shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 2 + 5)
    assert check.max_abs_diff < 1e-3


def test_check_onnx_detects_a_different_model(exported):
    model, path = exported
    other = DetectionModel(TINY)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    assert not check_onnx(other, onnx_session(path, threads=1), imgsz=64).ok


def test_onnx_latency_reports_batch_threads_and_runtime(exported):
    _, path = exported
    r = onnx_latency(onnx_session(path, threads=1), imgsz=64, min_run_time=0.01)
    assert r.batch == 1 and r.threads == 1 and r.device == "cpu" and "ONNX Runtime" in r.note
    assert r.median_ms > 0


@pytest.mark.parametrize("kwargs, match", [(dict(opset=13), "opset"), (dict(imgsz=50), "imgsz"),
                                           (dict(batch=0), "batch")])
def test_export_refuses_bad_arguments(tmp_path, exported, kwargs, match):
    model, _ = exported
    with pytest.raises(ValueError, match=match):
        export_onnx(model, tmp_path / "x.onnx", **{"imgsz": 64, **kwargs})
    assert not (tmp_path / "x.onnx").exists()


def test_session_needs_a_file(tmp_path):
    with pytest.raises(ValueError, match="not an ONNX file"):
        onnx_session(tmp_path / "missing.onnx")

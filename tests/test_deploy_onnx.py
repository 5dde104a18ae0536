"""course.deploy.onnx_export: exported classifiers equal PyTorch at any batch; unsupported ops are named with their module."""

import onnx
import pytest
import torch
from torch import nn

from course.deploy.onnx_export import (
    UnsupportedOpError,
    check_onnx,
    export_onnx,
    find_op_callers,
    onnx_runner,
    onnx_session,
)
from course.models import build_model, randomize_batchnorm


class LogGamma(nn.Module):
    """An op with no ONNX translation in either exporter of this torch (``aten::lgamma``)."""

    def forward(self, x):
        return torch.lgamma(x.abs() + 1)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_batchnorm(build_model("mobilenet_v3_small", num_classes=10, width_mult=0.5))
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "v3.onnx", torch.zeros(1, 3, 64, 64))
    return model, path


@pytest.mark.parametrize("batch", [1, 8])
def test_onnx_runtime_equals_pytorch_at_every_batch(classifier, batch):
    model, path = classifier
    assert model.training  # export restores the mode it found
    check = check_onnx(model, onnx_session(path, threads=1), torch.rand(batch, 3, 64, 64))
    assert check.ok, str(check)
    assert check.output_shape == (batch, 10)
    assert model.training


def test_check_onnx_detects_a_different_model(classifier):
    path = classifier[1]
    other = randomize_batchnorm(build_model("mobilenet_v3_small", num_classes=10, width_mult=0.5), seed=5)
    assert not check_onnx(other, onnx_session(path, threads=1), torch.rand(2, 3, 64, 64)).ok


def test_dynamo_exporter_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.BatchNorm2d(8), nn.Hardswish(),
                                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)))
    path = export_onnx(model, tmp_path / "tiny.onnx", torch.zeros(1, 3, 32, 32), dynamo=True)
    onnx.checker.check_model(str(path))
    check = check_onnx(model, onnx_session(path, threads=1), torch.rand(3, 3, 32, 32), atol=1e-5)
    assert check.ok, str(check)


@pytest.mark.parametrize("dynamo", [False, True])
def test_unsupported_op_names_the_op_and_the_module(tmp_path, dynamo):
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(nn.ReLU(), LogGamma()))
    with pytest.raises(UnsupportedOpError) as error:
        export_onnx(model, tmp_path / "x.onnx", torch.zeros(1, 3, 8, 8), dynamo=dynamo)
    assert isinstance(error.value, ValueError)
    assert error.value.op == "lgamma" and error.value.modules == ["1.1 (LogGamma)"]
    assert "'lgamma'" in str(error.value) and "1.1 (LogGamma)" in str(error.value)


def test_find_op_callers_lists_every_caller():
    model = nn.Sequential(LogGamma(), nn.ReLU(), LogGamma())
    assert find_op_callers(model, (torch.rand(1, 4),), "lgamma") == ["0 (LogGamma)", "2 (LogGamma)"]
    assert find_op_callers(model, (torch.rand(1, 4),), "conv2d") == []


def test_runner_returns_torch_outputs(classifier):
    path = classifier[1]
    out = onnx_runner(onnx_session(path, threads=1))(torch.rand(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


@pytest.mark.parametrize("kwargs, match", [(dict(opset=13), "opset"), (dict(example=torch.tensor(1.0)), "example")])
def test_export_refuses_bad_arguments(tmp_path, kwargs, match):
    args = {"example": torch.zeros(1, 3, 8, 8), **kwargs}
    with pytest.raises(ValueError, match=match):
        export_onnx(nn.Conv2d(3, 3, 1), tmp_path / "x.onnx", **args)
    assert not (tmp_path / "x.onnx").exists()


def test_session_refuses_bad_arguments(tmp_path, classifier):
    with pytest.raises(ValueError, match="not an ONNX file"):
        onnx_session(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="threads"):
        onnx_session(classifier[1], threads=0)

"""course.deploy.quantize: int8 static quantization shrinks the file, keeps the logits' direction, and per-channel
weights rescue depthwise convs whose channels differ in range; bad calibration sets are refused before any work."""

import logging

import numpy as np
import pytest
import torch

from course.deploy import fold_batchnorm
from course.deploy.channel_ranges import spread_depthwise_ranges
from course.deploy.onnx_export import export_onnx, onnx_runner, onnx_session
from course.deploy.quantize import depthwise_conv_nodes, file_size_mb, quantize_int8
from course.models import build_model, randomize_batchnorm

logging.getLogger().setLevel(logging.ERROR)  # ORT's "consider pre-processing" advice on every call
SIZE = 64


def _mobilenet_v1(decades: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomize_batchnorm(build_model("mobilenet_v1", num_classes=10, width_mult=0.25)).eval()
    return spread_depthwise_ranges(model, decades=decades) if decades else model


def _calibration(n: int = 4, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, SIZE, SIZE, generator=g) for _ in range(n)]


def _relative_error(fp32_path, int8_path, x) -> float:
    ref, got = onnx_runner(onnx_session(fp32_path, 1))(x), onnx_runner(onnx_session(int8_path, 1))(x)
    return float((got - ref).norm() / ref.norm())


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    fp32 = export_onnx(fold_batchnorm(_mobilenet_v1(0)), d / "v1.onnx", torch.zeros(1, 3, SIZE, SIZE))
    return fp32, quantize_int8(fp32, d / "v1_int8.onnx", _calibration())


def test_int8_model_is_smaller_on_disk(plain):
    fp32, int8 = plain
    # 4 bytes -> 1 byte per weight; scales, zero points and int32 biases keep it short of 4x
    assert file_size_mb(int8) < file_size_mb(fp32) / 2.5


def test_int8_logits_point_where_fp32_logits_point(plain):
    fp32, int8 = plain
    x = torch.randn(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))  # the calibration distribution
    ref, got = onnx_runner(onnx_session(fp32, 1))(x), onnx_runner(onnx_session(int8, 1))(x)
    assert got.shape == ref.shape and not torch.equal(got, ref)
    assert torch.nn.functional.cosine_similarity(got, ref, dim=1).min() > 0.99


def test_spread_keeps_the_fp32_function():
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        before = _mobilenet_v1(0)(x)
        spread = _mobilenet_v1(2)
        torch.testing.assert_close(spread(x), before, atol=1e-5, rtol=1e-4)
    weights = fold_batchnorm(spread).features[1][0][0].weight.flatten(1).abs().amax(1)  # first depthwise conv
    assert weights.max() / weights.min() > 10


def test_per_channel_weights_beat_per_tensor_on_spread_depthwise_ranges(tmp_path):
    """The depthwise weights' share of the error, isolated: only depthwise convs quantized, activations at 16 bit.

    With 8-bit activations the spread activations dominate this untrained model's error and the two
    weight schemes come out alike, so that case is not asserted.
    """
    fp32 = export_onnx(fold_batchnorm(_mobilenet_v1(2)), tmp_path / "spread.onnx", torch.zeros(1, 3, SIZE, SIZE))
    x = torch.randn(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
    errors = {pc: _relative_error(fp32, quantize_int8(fp32, tmp_path / f"q{pc}.onnx", _calibration(), per_channel=pc,
                                                      activation_bits=16, depthwise_only=True), x)
              for pc in (True, False)}
    assert errors[True] < 0.3 * errors[False], errors
    assert len(depthwise_conv_nodes(fp32)) == 13  # MobileNet V1's 13 depthwise-separable layers


@pytest.mark.parametrize("calibration, match", [
    ([], "empty"),
    ([torch.zeros(2, 3, 32, 32)], r"shape \(2, 3, 32, 32\).*\('N', 3, 64, 64\)"),
    ([torch.zeros(2, 3, SIZE, SIZE, dtype=torch.float64)], "dtype float64"),
    ([(torch.zeros(2, 3, SIZE, SIZE), torch.zeros(2)), "not a batch"], "batch must be a tensor"),
])
def test_bad_calibration_is_refused_before_any_work(plain, tmp_path, calibration, match):
    with pytest.raises(ValueError, match=match):
        quantize_int8(plain[0], tmp_path / "x.onnx", calibration)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("kwargs, match", [(dict(method="kl"), "method"), (dict(per_channel="yes"), "per_channel"),
                                           (dict(max_batches=0), "max_batches"),
                                           (dict(activation_bits=4), "activation_bits")])
def test_bad_options_are_refused(plain, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantize_int8(plain[0], tmp_path / "x.onnx", _calibration(1), **kwargs)
    with pytest.raises(ValueError, match="not an ONNX file"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "x.onnx", _calibration(1))


def test_loader_pairs_and_max_batches_are_accepted(plain, tmp_path):
    loader = [(b, torch.zeros(len(b), dtype=torch.long)) for b in _calibration(3)] + [np.zeros(1)]
    out = quantize_int8(plain[0], tmp_path / "pairs.onnx", loader, max_batches=3, method="percentile")
    assert out.is_file()

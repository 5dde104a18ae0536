"""Deployment view: export a detector to ONNX, check ONNX Runtime against PyTorch, time both.

A detector only counts as deployable once the exported graph gives the same boxes as the
PyTorch model it came from; ``check_onnx`` asserts that before any latency is reported.
Latencies go through ``course.measure.latency`` (warm-up, median, IQR) with the same input,
batch and thread count for both runtimes, so the two numbers can be set side by side.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course.measure import LatencyResult, latency
from course.validate import check_int

__all__ = ["MIN_OPSET", "DecodedOutput", "OnnxCheck", "export_onnx", "onnx_session", "check_onnx", "onnx_latency",
           "torch_latency"]

MIN_OPSET = 17


class DecodedOutput(nn.Module):
    """The inference output a deployment needs: decoded boxes ``(bs, N, nc + 5)``, not the raw maps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def _stride(model: nn.Module) -> int:
    stride = getattr(model, "stride", None)
    return int(max(stride)) if stride is not None else 1


def export_onnx(model: nn.Module, path, imgsz: int = 320, batch: int = 1, opset: int = 18,
                dynamo: bool = True) -> Path:
    """Write ``model`` (in eval mode, decoded output only) as an ONNX file; return its path.

    The model's own mode is restored afterwards. ``dynamo=True`` uses ``torch.export`` (the
    default exporter since PyTorch 2.9); ``False`` the older TorchScript tracer.
    """
    check_int("opset", opset, low=MIN_OPSET)
    check_int("batch", batch)
    check_int("imgsz", imgsz, low=32, multiple=_stride(model))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    wrapped = DecodedOutput(model).eval()
    x = torch.zeros(batch, 3, imgsz, imgsz, device=next(model.parameters()).device)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            for name in ("torch.onnx", "onnxscript", "torch.export"):
                logging.getLogger(name).setLevel(logging.ERROR)
            torch.onnx.export(wrapped, (x,), str(path), opset_version=opset, dynamo=dynamo,
                              input_names=["images"], output_names=["output"], verbose=False)
    finally:
        model.train(was_training)
    return path


def onnx_session(path, threads: int | None = None):
    """An ONNX Runtime CPU session using ``threads`` intra-op threads (default: torch's count)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not an ONNX file; write one with export_onnx first")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class OnnxCheck:
    """PyTorch vs ONNX Runtime on one input: largest differences and whether they are within tolerance."""

    max_abs_diff: float
    max_rel_diff: float
    output_shape: tuple
    atol: float
    rtol: float
    ok: bool

    def __str__(self) -> str:
        verdict = "equal within tolerance" if self.ok else "DIFFERENT"
        return (f"ONNX Runtime vs PyTorch: output {self.output_shape}, max |diff| {self.max_abs_diff:.2e}, "
                f"max rel diff {self.max_rel_diff:.2e} (atol {self.atol:g}, rtol {self.rtol:g}): {verdict}")


@torch.no_grad()
def check_onnx(model: nn.Module, session, x: torch.Tensor | None = None, imgsz: int = 320, atol: float = 1e-3,
               rtol: float = 1e-3, seed: int = 0) -> OnnxCheck:
    """Run the same input through PyTorch (eval mode) and the ONNX session and compare outputs.

    ``ok`` is ``|onnx - torch| <= atol + rtol * |torch|`` everywhere (``numpy.allclose``'s rule).
    Boxes are in pixels, so ``atol`` is in pixels (and in probability units for the scores).
    """
    if x is None:
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(1, 3, imgsz, imgsz, generator=g)
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a (batch, 3, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    was_training = model.training
    ref = DecodedOutput(model).eval()(x.to(next(model.parameters()).device)).float().cpu().numpy()
    model.train(was_training)
    got = session.run(None, {session.get_inputs()[0].name: x.cpu().numpy().astype(np.float32)})[0]
    if got.shape != ref.shape:
        return OnnxCheck(float("inf"), float("inf"), tuple(got.shape), atol, rtol, False)
    diff = np.abs(got - ref)
    rel = diff / np.maximum(np.abs(ref), 1e-6)
    ok = bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return OnnxCheck(float(diff.max()), float(rel.max()), tuple(got.shape), atol, rtol, ok)


def onnx_latency(session, imgsz: int = 320, batch: int = 1, min_run_time: float | None = None) -> LatencyResult:
    """ONNX Runtime CPU latency of one forward pass, timed like ``course.measure.latency`` times PyTorch."""
    check_int("imgsz", imgsz, low=32)
    check_int("batch", batch)
    name = session.get_inputs()[0].name
    feed = {name: np.random.default_rng(0).random((batch, 3, imgsz, imgsz), dtype=np.float32)}
    threads = session.get_session_options().intra_op_num_threads or torch.get_num_threads()

    def run():
        return session.run(None, feed)

    result = latency(run, input_size=(batch, 3, imgsz, imgsz), device="cpu", min_run_time=min_run_time,
                     threads=threads)
    result.note = "; ".join(filter(None, [result.note, "ONNX Runtime CPUExecutionProvider"]))
    return result


def torch_latency(model: nn.Module, imgsz: int = 320, batch: int = 1, device="cpu",
                  min_run_time: float | None = None, cuda_graph: bool = False) -> LatencyResult:
    """PyTorch latency of the same decoded forward pass, timed on ``device`` (``model`` itself is left as it was)."""
    check_int("imgsz", imgsz, low=32)
    check_int("batch", batch)
    return latency(DecodedOutput(model), input_size=(batch, 3, imgsz, imgsz), device=device,
                   min_run_time=min_run_time, cuda_graph=cuda_graph)

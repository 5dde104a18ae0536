"""Deployment view: export a detector to ONNX, check ONNX Runtime against PyTorch, time both.

A detector only counts as deployable once the exported graph gives the same boxes as the
PyTorch model it came from; ``check_onnx`` asserts that before any latency is reported.
Latencies go through ``course.measure.latency`` (warm-up, median, IQR) with the same input,
batch and thread count for both runtimes, so the two numbers can be set side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from course.deploy.onnx_export import MIN_OPSET, OnnxCheck, onnx_session
from course.deploy.onnx_export import check_onnx as _check_onnx
from course.deploy.onnx_export import export_onnx as _export_onnx
from course.measure import LatencyResult, latency
from course.validate import check_int

__all__ = [
    "MIN_OPSET",
    "DecodedOutput",
    "OnnxCheck",
    "check_onnx",
    "export_onnx",
    "onnx_latency",
    "onnx_session",
    "torch_latency",
]


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
    x = torch.zeros(batch, 3, imgsz, imgsz, device=next(model.parameters()).device)
    return _export_onnx(DecodedOutput(model), path, x, opset=opset, dynamo=dynamo, dynamic_batch=False,
                        input_name="images", output_name="output")


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
    return _check_onnx(DecodedOutput(model), session, x, atol=atol, rtol=rtol)


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

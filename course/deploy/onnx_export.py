"""Export a network to ONNX, check the file, run it in ONNX Runtime and compare it with PyTorch.

A model only counts as deployed once the exported graph gives the outputs of the PyTorch model
it came from: ``check_onnx`` measures that before any latency is reported.

Two exporters ship with the installed torch: ``dynamo=True`` (``torch.export`` then onnxscript,
the default since PyTorch 2.9) and ``dynamo=False`` (the older TorchScript tracer). Both export
the course's networks; the TorchScript one is an order of magnitude faster to run, so quick
checks use it. When an op has no ONNX counterpart, either exporter fails deep in its stack;
``export_onnx`` re-raises that as ``UnsupportedOpError`` naming the op and the module that called it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..validate import check_int

__all__ = [
    "MIN_OPSET",
    "OnnxCheck",
    "UnsupportedOpError",
    "check_onnx",
    "export_onnx",
    "find_op_callers",
    "onnx_runner",
    "onnx_session",
]

MIN_OPSET = 17
_OP_PATTERNS = (re.compile(r"operator '(?:\w+)::(\w+)'"), re.compile(r"OpOverload\(op='\w+\.(\w+)'"))


class UnsupportedOpError(ValueError):
    """The model uses an op that the ONNX exporter cannot translate; ``op`` and ``modules`` say which and where."""

    def __init__(self, op: str, modules: list[str], exporter: str):
        self.op, self.modules, self.exporter = op, modules, exporter
        where = ", ".join(repr(m) for m in modules) if modules else "an unknown module"
        super().__init__(f"the ONNX exporter ({exporter}) has no translation for op {op!r}, called in module "
                         f"{where}; replace that op with ones ONNX has, or compute it outside the model")


class _OpRecorder(TorchDispatchMode):
    def __init__(self, stack: list[str], op: str):
        super().__init__()
        self.stack, self.op, self.callers = stack, op, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__.split(".")[-1] == self.op and self.stack[-1] not in self.callers:
            self.callers.append(self.stack[-1])
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def find_op_callers(model: nn.Module, args: tuple, op: str) -> list[str]:
    """Qualified names of the innermost modules whose forward calls aten op ``op`` (``""`` is the model)."""
    names = {id(m): f"{name or type(model).__name__} ({type(m).__name__})" for name, m in model.named_modules()}
    stack = [names[id(model)]]

    def enter(module, inputs):
        stack.append(names.get(id(module), stack[-1]))

    def leave(module, inputs, output):
        stack.pop()

    pre = nn.modules.module.register_module_forward_pre_hook(enter)
    post = nn.modules.module.register_module_forward_hook(leave)
    recorder = _OpRecorder(stack, op)
    try:
        with recorder:
            model(*args)
    finally:
        pre.remove()
        post.remove()
    return recorder.callers


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode inside, every submodule's own mode restored after (a wrapper may hold a model in eval)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def export_onnx(model: nn.Module, path, example: torch.Tensor, opset: int = 18, dynamo: bool = False,
                dynamic_batch: bool = True, input_name: str = "input", output_name: str = "output") -> Path:
    """Write ``model`` in eval mode as an ONNX file checked by ``onnx.checker``; return its path.

    ``example`` fixes every input dimension but (with ``dynamic_batch``) the first, so one file
    serves batch 1 and batch 8. The model's own mode is restored afterwards.
    """
    check_int("opset", opset, low=MIN_OPSET)
    if not isinstance(example, torch.Tensor) or example.ndim < 1:
        raise ValueError(f"example must be a tensor with a batch dimension, got {getattr(example, 'shape', example)!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    try:
        with _eval_mode(model), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            for name in ("torch.onnx", "onnxscript", "torch.export"):
                logging.getLogger(name).setLevel(logging.ERROR)
            torch.onnx.export(model, (example,), str(path), opset_version=opset, dynamo=dynamo,
                              input_names=[input_name], output_names=[output_name], dynamic_axes=axes,
                              verbose=False)
    except torch.onnx.OnnxExporterError as e:
        op = _unsupported_op(e)
        if op is None:
            raise
        with _eval_mode(model):
            callers = find_op_callers(model, (example,), op)
        raise UnsupportedOpError(op, callers, "dynamo" if dynamo else "TorchScript") from e
    onnx.checker.check_model(str(path))
    return path


def _unsupported_op(error: BaseException) -> str | None:
    while error is not None:
        for pattern in _OP_PATTERNS:
            found = pattern.search(str(error))
            if found:
                return found.group(1)
        error = error.__cause__
    return None


def onnx_session(path, threads: int | None = None):
    """An ONNX Runtime CPU session using ``threads`` intra-op threads (default: torch's count)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not an ONNX file; write one with export_onnx first")
    if threads is not None:
        check_int("threads", threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(session):
    """A function torch batch -> torch output running ``session``, so ORT fits wherever a model is called."""
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy().astype(np.float32)})[0])

    return run


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
def check_onnx(model: nn.Module, session, x: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-3) -> OnnxCheck:
    """Run ``x`` through ``model`` (eval mode, its mode restored) and the session; compare the outputs.

    ``ok`` is ``|onnx - torch| <= atol + rtol * |torch|`` everywhere (``numpy.allclose``'s rule).
    fp32 graphs differ from PyTorch only by the order of float additions: ~1e-6 relative.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"x must be a batch tensor, got {getattr(x, 'shape', type(x).__name__)}")
    with _eval_mode(model):
        reference = model(x.to(next(model.parameters()).device)).float().cpu().numpy()
    got = onnx_runner(session)(x).numpy()
    if got.shape != reference.shape:
        return OnnxCheck(float("inf"), float("inf"), tuple(got.shape), atol, rtol, False)
    diff = np.abs(got - reference)
    rel = diff / np.maximum(np.abs(reference), 1e-6)
    ok = bool(np.all(diff <= atol + rtol * np.abs(reference)))
    return OnnxCheck(float(diff.max()), float(rel.max()), tuple(got.shape), atol, rtol, ok)

"""One model under several runtimes, timed side by side: PyTorch eager, eager with BN folded,
``torch.compile`` (TorchInductor), ONNX Runtime fp32 and ONNX Runtime int8.

Every runtime is timed against eager in interleaved rounds (``course.measure.interleaved_ratio``),
so a slow drift in machine load moves both and cancels in their ratio; ``speedup`` is
eager time / runtime time (above 1: faster than eager). Each row also records the largest output
difference from eager on the timed input, the size on disk and the threads used.

``torch.compile`` on a CPU generates and compiles C++: it needs a C++ compiler and takes minutes
for a whole network (about two on a shared two-core machine for MobileNetV2 ×0.35). Where it fails
the row says why and carries no time. A detector goes in wrapped so that it returns one tensor
(``course.yolo.export.DecodedOutput``).
"""

from __future__ import annotations

import inspect
import io
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from course.measure import interleaved_ratio

from .bnfold import fold_batchnorm
from .onnx_export import export_onnx, onnx_session
from .quantize import file_size_mb, quantize_int8

__all__ = ["RUNTIMES", "RuntimeRow", "compare_runtimes", "state_dict_size_mb"]

RUNTIMES = ("eager", "eager_bn_folded", "compile", "onnxruntime", "onnxruntime_int8")


@dataclass
class RuntimeRow:
    """One model × runtime × precision × batch: median latency, speed-up over eager, size, agreement."""

    model: str
    runtime: str
    precision: str
    batch: int
    threads: int
    median_ms: float
    speedup: float
    speedup_iqr: tuple[float, float]
    size_mb: float
    max_abs_diff: float
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def state_dict_size_mb(model: nn.Module) -> float:
    """Size of the model's ``torch.save``'d state dict in MB: what a PyTorch checkpoint takes on disk."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6


def _compile(model: nn.Module, x: torch.Tensor):
    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        return None, "torch.compile needs a C++ compiler on the CPU and none was found"
    try:
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(x)
    except Exception as e:  # noqa: BLE001  (any failure of the compiler stack is reported, not raised)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        return None, f"torch.compile failed here: {type(e).__name__}: {first}"
    return compiled, ""


def _torch_fn(model, x):
    def run():
        with torch.inference_mode():
            return model(x)

    return run


def _check_args(batches, runtimes, input_shape, threads) -> None:
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batches must be a non-empty list of ints >= 1, got {batches!r}")
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise ValueError(f"runtimes must be a non-empty list from {list(RUNTIMES)}, got {list(runtimes)!r}")
    if len(input_shape) != 3 or any(not isinstance(s, int) or s < 1 for s in input_shape):
        raise ValueError(f"input_shape must be (channels, height, width) positive ints, got {input_shape!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")


def compare_runtimes(model: nn.Module, name: str, workdir, input_shape=(3, 224, 224), batches=(1, 8),
                     runtimes=RUNTIMES, calibration=None, threads: int | None = None, rounds: int | None = None,
                     number: int = 5, seed: int = 0, quantize_kwargs: dict | None = None) -> list[RuntimeRow]:
    """Rows for ``model`` under each of ``runtimes`` at each batch size, eager first.

    ONNX files are written to ``workdir``. ``onnxruntime_int8`` needs ``calibration`` (batches of
    inputs, see ``course.deploy.quantize.quantize_int8``; ``quantize_kwargs`` go to it, e.g.
    ``per_channel=False`` or ``op_types=("Conv",)``). ``rounds`` defaults as in
    ``interleaved_ratio`` (5 in quick mode, 30 otherwise).
    """
    runtimes = list(runtimes)
    _check_args(batches, runtimes, tuple(input_shape), threads)
    allowed = [p for p in inspect.signature(quantize_int8).parameters if p not in ("model_path", "output_path",
                                                                                 "calibration")]
    unknown = sorted(set(quantize_kwargs or {}) - set(allowed))
    if unknown:
        raise ValueError(f"quantize_kwargs has unknown keys {unknown}; allowed: {allowed}")
    if "onnxruntime_int8" in runtimes and calibration is None:
        raise ValueError("runtime 'onnxruntime_int8' needs calibration batches (calibration=...)")
    threads = threads or torch.get_num_threads()
    workdir = Path(workdir)
    model = model.eval()
    g = torch.Generator().manual_seed(seed)
    example = torch.rand(1, *input_shape, generator=g)
    eager_size = state_dict_size_mb(model)

    prepared: dict[str, tuple] = {}  # runtime -> (runner factory or None, precision, size, note)
    if "eager_bn_folded" in runtimes:
        folded = fold_batchnorm(model)
        prepared["eager_bn_folded"] = (lambda x: _torch_fn(folded, x), "fp32", state_dict_size_mb(folded), "")
    if "compile" in runtimes:
        compiled, note = _compile(model, example)
        # "is not None": a compiled module's truth value asks the wrapped module for len(), which most lack
        prepared["compile"] = ((lambda x: _torch_fn(compiled, x)) if compiled is not None else None, "fp32",
                               eager_size, note)
    onnx_paths = {}
    if {"onnxruntime", "onnxruntime_int8"} & set(runtimes):
        onnx_paths["fp32"] = export_onnx(model, workdir / f"{name}.onnx", example)
    if "onnxruntime_int8" in runtimes:
        onnx_paths["int8"] = quantize_int8(onnx_paths["fp32"], workdir / f"{name}_int8.onnx", calibration,
                                           **(quantize_kwargs or {}))
    for precision, path in onnx_paths.items():
        runtime = "onnxruntime" if precision == "fp32" else "onnxruntime_int8"
        if runtime in runtimes:
            session = onnx_session(path, threads=threads)
            prepared[runtime] = (lambda x, s=session: _ort_fn(s, x), precision, file_size_mb(path),
                                 "ONNX Runtime CPUExecutionProvider")

    rows = []
    for batch in batches:
        x = torch.rand(batch, *input_shape, generator=g)
        eager = _torch_fn(model, x)
        reference = eager()
        timed, eager_ms = [], []
        for runtime in runtimes:
            if runtime == "eager":
                continue
            factory, precision, size, note = prepared[runtime]
            if factory is None:
                timed.append(RuntimeRow(name, runtime, precision, batch, threads, math.nan, math.nan,
                                        (math.nan, math.nan), size, math.nan, note))
                continue
            fn = factory(x)
            diff = float((torch.as_tensor(fn()) - reference).abs().max())
            r = interleaved_ratio(eager, fn, rounds=rounds, number=number, threads=threads)
            eager_ms.append(r.median_a_ms)
            timed.append(RuntimeRow(name, runtime, precision, batch, threads, r.median_b_ms, r.ratio,
                                    (r.q1, r.q3), size, diff, note))
        if "eager" in runtimes:
            ms = sorted(eager_ms)[len(eager_ms) // 2] if eager_ms else _eager_only_ms(eager, threads, rounds, number)
            rows.append(RuntimeRow(name, "eager", "fp32", batch, threads, ms, 1.0, (1.0, 1.0), eager_size, 0.0))
        rows.extend(timed)
    return rows


def _ort_fn(session, x: torch.Tensor):
    feed = {session.get_inputs()[0].name: x.numpy()}

    def run():
        return torch.from_numpy(session.run(None, feed)[0])

    return run


def _eager_only_ms(eager, threads, rounds, number) -> float:
    return interleaved_ratio(eager, eager, rounds=rounds, number=number, threads=threads).median_a_ms

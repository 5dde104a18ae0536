"""int8 static post-training quantization of an exported ONNX model, with ONNX Runtime's tools.

Why ONNX Runtime and not PyTorch: in the installed torch (2.14) ``torch.ao.quantization``'s eager
mode still runs but warns on import that it is deprecated and will be removed, its quantized
tensors are deprecated too, the pt2e path (``prepare_pt2e``) has moved out of torch into torchao,
and torchao is not installed. ``onnxruntime.quantization.quantize_static`` is maintained, works on
the same ONNX file the runtime comparison already uses, and its int8 kernels are what the model
would run on a device.

Static means the activation ranges are fixed once, from a calibration set run through the fp32
model (MinMax, or a histogram method: Entropy, Percentile). The QDQ format inserts
QuantizeLinear/DequantizeLinear pairs around each op, which ONNX Runtime fuses into int8 kernels.
Weights get one scale per tensor or one per output channel: a depthwise conv's channels can
differ in range by orders of magnitude, and a single scale then rounds the small ones to zero,
the known MobileNet failure (PyTorch's static-quantization tutorial: MobileNetV2 per-tensor 56.7 %,
per-channel 67.3 %, float 71.9 % top-1 on ImageNet).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import torch

__all__ = ["CALIBRATION_METHODS", "CalibrationBatches", "depthwise_conv_nodes", "file_size_mb", "quantize_int8"]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_ONNX_TO_NUMPY = {onnx.TensorProto.FLOAT: np.float32}


def file_size_mb(path) -> float:
    """Size of a file on disk in MB (10^6 bytes), as model sizes are usually quoted."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    return path.stat().st_size / 1e6


def _input_spec(model_path: Path) -> tuple[str, tuple, type]:
    graph_input = onnx.load(str(model_path), load_external_data=False).graph.input[0]
    tensor = graph_input.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return graph_input.name, dims, _ONNX_TO_NUMPY.get(tensor.elem_type)


def _as_array(batch) -> np.ndarray:
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if isinstance(batch, torch.Tensor):
        return batch.detach().cpu().numpy()
    if isinstance(batch, np.ndarray):
        return batch
    raise ValueError(f"a calibration batch must be a tensor, an array or an (images, labels) pair, "
                     f"got {type(batch).__name__}")


class CalibrationBatches:
    """ONNX Runtime's ``CalibrationDataReader`` over batches already checked against the model's input.

    Built by ``CalibrationBatches.check(model_path, batches)``, which raises ``ValueError`` for an
    empty set or a batch whose shape or dtype the model does not take, before any calibration runs.
    """

    def __init__(self, input_name: str, arrays: list[np.ndarray]):
        self.input_name, self.arrays = input_name, arrays
        self._next = iter(arrays)

    @classmethod
    def check(cls, model_path, batches: Iterable, max_batches: int | None = None) -> CalibrationBatches:
        name, dims, dtype = _input_spec(Path(model_path))
        arrays = []
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            a = _as_array(batch)
            if a.dtype != dtype:
                raise ValueError(f"calibration batch {i} has dtype {a.dtype}, the model's input {name!r} takes "
                                 f"{np.dtype(dtype) if dtype else 'a non-float type'}")
            if a.ndim != len(dims) or any(d is not None and d != s for d, s in zip(dims, a.shape)):
                want = tuple(d if d is not None else "N" for d in dims)
                raise ValueError(f"calibration batch {i} has shape {tuple(a.shape)}, the model's input {name!r} "
                                 f"takes {want}")
            arrays.append(np.ascontiguousarray(a))
        if not arrays:
            raise ValueError("calibration set is empty: static quantization needs at least one batch of "
                             "inputs to measure activation ranges")
        return cls(name, arrays)

    def get_next(self) -> dict | None:
        a = next(self._next, None)
        return None if a is None else {self.input_name: a}

    def rewind(self) -> None:
        self._next = iter(self.arrays)


def _reader_class():
    from onnxruntime.quantization import CalibrationDataReader

    return type("CalibrationReader", (CalibrationBatches, CalibrationDataReader), {})


def depthwise_conv_nodes(model_path) -> list[str]:
    """Names of the ONNX graph's depthwise Conv nodes (one input channel per group)."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    nodes = []
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        shape = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if group > 1 and shape is not None and shape[1] == 1:
            nodes.append(node.name)
    return nodes


def quantize_int8(model_path, output_path, calibration: Iterable, per_channel: bool = True,
                  method: str = "minmax", max_batches: int | None = None, activation_bits: int = 8,
                  depthwise_only: bool = False, op_types=None) -> Path:
    """Write an int8 (QDQ; uint8 activations, int8 weights) copy of the fp32 ONNX model; return its path.

    ``calibration`` is any iterable of input batches (a DataLoader of ``(images, labels)`` works);
    ``max_batches`` caps how many are used. ``activation_bits=16`` keeps the weights int8 but
    quantizes activations to uint16, and ``depthwise_only=True`` quantizes only the depthwise
    convs: experiments that isolate one source of error, not deployment formats. ``op_types``
    (e.g. ``("Conv",)``) quantizes only those ONNX op types: a detector's decoded output concatenates
    pixel coordinates and probabilities, and one int8 scale for both would round the scores away.
    All arguments are checked before calibration starts.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model_path, output_path = Path(model_path), Path(output_path)
    if not model_path.is_file():
        raise ValueError(f"model_path {str(model_path)!r} is not an ONNX file; export one first")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {list(CALIBRATION_METHODS)}, got {method!r}")
    for flag, value in (("per_channel", per_channel), ("depthwise_only", depthwise_only)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be True or False, got {value!r}")
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int)
                                    or max_batches < 1):
        raise ValueError(f"max_batches must be None or an int >= 1, got {max_batches!r}")
    if activation_bits not in (8, 16) or isinstance(activation_bits, bool):
        raise ValueError(f"activation_bits must be 8 or 16, got {activation_bits!r}")
    if op_types is not None:
        if isinstance(op_types, str) or not op_types or not all(isinstance(t, str) and t for t in op_types):
            raise ValueError(f"op_types must be None or a non-empty list of ONNX op type names, got {op_types!r}")
        op_types = list(op_types)
    if output_path.resolve() == model_path.resolve():
        raise ValueError("output_path must differ from model_path: the fp32 model is the reference")
    checked = CalibrationBatches.check(model_path, calibration, max_batches)
    nodes = depthwise_conv_nodes(model_path) if depthwise_only else None
    if depthwise_only and not nodes:
        raise ValueError(f"depthwise_only=True but {model_path.name} has no depthwise Conv nodes")
    reader = _reader_class()(checked.input_name, checked.arrays)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(str(model_path), str(output_path), reader, quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, nodes_to_quantize=nodes, op_types_to_quantize=op_types,
                    activation_type=QuantType.QUInt8 if activation_bits == 8 else QuantType.QUInt16,
                    weight_type=QuantType.QInt8,
                    calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                      "percentile": CalibrationMethod.Percentile}[method])
    return output_path

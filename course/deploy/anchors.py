"""Public figures to set beside the chapter's own measurements, each with its source.

They were measured on ImageNet at 224 px (or on other hardware), not on Glyphs-10 at 48 px on the
learner's CPU: they give the direction and the size of an effect, not a number ours should equal.
"""

from __future__ import annotations

__all__ = ["ANCHORS", "anchor_rows"]

_TV = "https://pytorch.org/vision/stable/models.html"
_TUTORIAL = "https://pytorch.org/tutorials/advanced/static_quantization_tutorial.html"

# kind: "int8 accuracy", "int8 size", "per-tensor vs per-channel", "runtime ratio".
ANCHORS = [
    dict(kind="int8 accuracy", model="MobileNet V2", fp32="71.878 %", int8="71.658 %",
         how="torchvision quantized weights (QAT, qnnpack), ImageNet top-1",
         source=f"{_TV} (MobileNet_V2_Weights.IMAGENET1K_V1, MobileNet_V2_QuantizedWeights.IMAGENET1K_QNNPACK_V1)"),
    dict(kind="int8 size", model="MobileNet V2", fp32="13.6 MB", int8="3.42 MB",
         how="torchvision weight files", source=f"{_TV} (same weights, 'File size')"),
    dict(kind="int8 accuracy", model="ShuffleNet V2 x1.0", fp32="69.362 %", int8="68.360 %",
         how="torchvision quantized weights (PTQ, fbgemm), ImageNet top-1",
         source=f"{_TV} (ShuffleNet_V2_X1_0_Weights, ShuffleNet_V2_X1_0_QuantizedWeights.IMAGENET1K_FBGEMM_V1)"),
    dict(kind="per-tensor vs per-channel", model="MobileNet V2", fp32="71.9 %",
         int8="per-tensor PTQ 56.7 %, per-channel PTQ 67.3 %, QAT 71.5 %",
         how="PyTorch static-quantization tutorial, ImageNet top-1", source=_TUTORIAL),
    dict(kind="runtime ratio", model="48 detectors (Raspberry Pi 5)", fp32="PyTorch FP32 = 1", int8="",
         how="ONNX Runtime FP32 over PyTorch FP32: median 1.57x (0.92x to 2.49x), COCO detectors",
         source="https://www.visionanalysis.org/articles/onnx-fp32-vs-pytorch-fp32-rpi5"),
    dict(kind="runtime ratio", model="mobilenet_v2, shufflenet_v2_x1_0, mobilenetv2_100", fp32="eager = 1", int8="",
         how="torch.compile (Inductor) over eager on server CPUs, one dashboard report: 1.25x (bs 16), "
             "1.36x (bs 64), 3.83x (timm, bs 128): the ratio depends on batch and model",
         source="https://github.com/pytorch/pytorch/issues/93531 (TorchInductor CPU Performance Dashboard)"),
]


def anchor_rows(kind: str | None = None) -> list[dict]:
    """The anchors, or those of one ``kind``."""
    kinds = sorted({a["kind"] for a in ANCHORS})
    if kind is not None and kind not in kinds:
        raise ValueError(f"kind must be None or one of {kinds}, got {kind!r}")
    return [dict(a) for a in ANCHORS if kind is None or a["kind"] == kind]

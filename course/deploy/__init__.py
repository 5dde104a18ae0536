"""Deployment of the course's networks: BN folding, ONNX export and ONNX Runtime, int8 quantization, runtimes.

One module per idea: ``bnfold`` (BatchNorm folded into convs), ``onnx_export`` (export, check,
ONNX Runtime session), ``quantize`` (int8 static post-training quantization with ONNX Runtime),
``runtimes`` (eager vs torch.compile vs ONNX Runtime, timed), ``accuracy`` (top-1 of any runner),
``channel_ranges`` (MobileNet V1 with spread depthwise weight ranges, the per-tensor failure case).
Import the submodules by name; this package imports only ``bnfold``, which ``course.yolo`` uses.
"""

from .bnfold import count_batchnorms, fold_batchnorm, fuse_conv_bn

__all__ = ["count_batchnorms", "fold_batchnorm", "fuse_conv_bn"]

"""Batch-norm folding: at inference a BatchNorm is a per-channel affine map, so it merges into the conv before it.

In eval mode BN computes ``y = gamma * (z - mu) / sqrt(var + eps) + beta`` with fixed statistics.
With ``z = W * x + b`` and ``s = gamma / sqrt(var + eps)`` (one scale per output channel):

    y = (s * W) * x + (b - mu) * s + beta   ->   W' = s * W,   b' = (b - mu) * s + beta

One conv does the work of two layers, which is why the MobileNet and ShuffleNet papers leave BN
out of their FLOP counts and why every deployment runtime folds it. ``fuse_conv_bn`` is the
course's one implementation of the formula (``course.yolo.model.fuse_conv_and_bn`` is this
function); ``fold_batchnorm`` applies it to every Conv→BN pair of a model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["count_batchnorms", "fold_batchnorm", "fuse_conv_bn"]


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to ``bn(conv(x))`` with ``bn`` in eval mode: W' = W*g/s, b' = (b - mu)*g/s + beta."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"fuse_conv_bn needs an nn.Conv2d and an nn.BatchNorm2d, got "
                         f"{type(conv).__name__} and {type(bn).__name__}")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"the conv has {conv.out_channels} output channels but the BatchNorm normalises "
                         f"{bn.num_features}; they are not a Conv→BN pair")
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError("the BatchNorm has no running statistics (track_running_stats=False): "
                         "it normalises by batch statistics and cannot be folded")
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode).to(conv.weight.device)
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + beta)
    return fused.requires_grad_(False)


def _fold_sequential(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            seq._modules[a], seq._modules[b] = fuse_conv_bn(conv, bn), nn.Identity()


def _fold_conv_attribute_pair(module: nn.Module) -> None:
    """YOLOv5's ``Conv`` computes ``act(bn(conv(x)))`` from its attributes rather than from a Sequential."""
    from course.yolo.common import Conv

    if isinstance(module, Conv) and isinstance(module.bn, nn.BatchNorm2d):
        module.conv, module.bn = fuse_conv_bn(module.conv, module.bn), nn.Identity()


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every Conv→BN pair folded into one conv (the model is untouched).

    Pairs are found where their order is known: adjacent children of an ``nn.Sequential`` (the
    course's ``ConvBNAct``, torchvision's ``Conv2dNormActivation``, MobileNet V2's projection) and
    YOLOv5's ``Conv``. A BN anywhere else stays as it is; ``count_batchnorms`` says how many remain.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
        else:
            _fold_conv_attribute_pair(module)
    return folded


def count_batchnorms(model: nn.Module) -> int:
    """How many BatchNorm layers a model still has (0 after ``fold_batchnorm`` for the course's models)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

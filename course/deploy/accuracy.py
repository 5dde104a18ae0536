"""Top-1 accuracy of any runner (a PyTorch model, an ONNX Runtime session) on a labelled loader.

The same function scores fp32 eager, fp32 ONNX Runtime and int8 ONNX Runtime, so the accuracy
change quantization costs is measured on the same batches, in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

__all__ = ["Top1", "agreement", "evaluate_top1"]


@dataclass
class Top1:
    """Correct predictions out of ``total`` images."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    def __str__(self) -> str:
        return f"top-1 {100 * self.accuracy:.2f} % ({self.correct}/{self.total})"


def _logits(run_fn: Callable, images: torch.Tensor) -> torch.Tensor:
    out = run_fn(images)
    out = torch.as_tensor(out[0] if isinstance(out, (tuple, list)) else out)
    if out.ndim != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(f"run_fn must return (batch, classes) logits, got shape {tuple(out.shape)} "
                         f"for a batch of {images.shape[0]}")
    return out


@torch.inference_mode()
def evaluate_top1(run_fn: Callable, loader: Iterable, max_batches: int | None = None) -> Top1:
    """Top-1 of ``run_fn`` (a model or ``onnx_runner(session)``) over ``(images, labels)`` batches."""
    if not callable(run_fn):
        raise ValueError(f"run_fn must be callable (a model or an ONNX runner), got {type(run_fn).__name__}")
    if isinstance(run_fn, torch.nn.Module):
        run_fn.eval()
    correct = total = 0
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            raise ValueError(f"loader must yield (images, labels) pairs, got {type(batch).__name__}")
        images, labels = batch[0], torch.as_tensor(batch[1])
        pred = _logits(run_fn, images).argmax(1).cpu()
        correct += int((pred == labels.cpu()).sum())
        total += len(labels)
    if total == 0:
        raise ValueError("loader yielded no images: nothing to score")
    return Top1(correct, total)


@torch.inference_mode()
def agreement(run_a: Callable, run_b: Callable, batches: Iterable) -> float:
    """Share of images on which two runners predict the same class (int8 vs fp32 without labels)."""
    same = total = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        same += int((_logits(run_a, images).argmax(1) == _logits(run_b, images).argmax(1)).sum())
        total += images.shape[0]
    if total == 0:
        raise ValueError("batches is empty: nothing to compare")
    return same / total

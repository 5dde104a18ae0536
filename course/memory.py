"""Activation memory of a bottleneck block (MobileNet V2, Sandler et al. 2018, Sec. 5.1, Table 3).

What a block holds while it runs is its tensors, not its weights: an inverted residual keeps
only its thin ends (the input for the skip, the output), a classic residual its wide ones.
Memory is counted as the paper does: 16-bit activations, 1 kB = 1000 bytes.
"""

from __future__ import annotations

from .validate import check_choice, check_int

__all__ = ["BLOCK_KINDS", "block_tensors"]

BLOCK_KINDS = ("inverted", "classic")


def block_tensors(kind: str, channels: int, t: float, size: int, stride: int = 1) -> list[dict]:
    """The four tensors through a bottleneck block, with their widths and 16-bit memory.

    ``inverted`` (MobileNet V2): k → tk (1×1) → tk (3×3 dw, stride) → k (linear 1×1); the skip
    joins the thin ends. ``classic`` (ResNet): tk → k (1×1) → k (3×3) → tk (1×1); the skip joins
    the wide ends. ``channels`` is k, the thin width, so both blocks carry the same information
    in their bottleneck.
    """
    check_choice("kind", kind, BLOCK_KINDS)
    check_int("channels", channels)
    check_int("size", size)
    if t < 1:
        raise ValueError(f"t must be >= 1 (the expansion factor), got {t!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    wide = int(round(t * channels))
    out_size = (size - 1) // stride + 1
    if kind == "inverted":
        layers = [("input", channels, size), ("expand 1×1 + ReLU6", wide, size),
                  ("depthwise 3×3 + ReLU6", wide, out_size), ("project 1×1 (linear)", channels, out_size)]
    else:
        layers = [("input", wide, size), ("reduce 1×1 + ReLU", channels, size),
                  ("3×3 conv + ReLU", channels, out_size), ("expand 1×1", wide, out_size)]
    return [{"layer": name, "channels": c, "size": s, "elements": c * s * s, "kB_16bit": c * s * s * 2 / 1000}
            for name, c, s in layers]

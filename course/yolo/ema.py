"""Exponential moving average of a model's weights (YOLOv5's ``ModelEMA``).

The averaged copy is what YOLOv5 validates and saves: it smooths the noise of the last
SGD steps, so it scores higher than the raw weights at almost no cost.
"""

from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def auto_tau(total_updates: int, cap: float = 2000.0) -> float:
    """A ramp length ``tau`` that suits a run of ``total_updates`` optimizer steps.

    With ``decay(u) = d·(1 − exp(−u/τ))`` the averaging window ``1/(1 − decay)`` grows like
    ``exp(u/τ)``. YOLOv5's τ = 2000 fits COCO (≈ 500k steps) but in a 300-step run the decay
    never leaves ≈ 0.1, so the "EMA" is just the last weights. Choosing ``τ = U / ln(U/10)``
    makes the window at the end ≈ 10 % of the run; capped at YOLOv5's 2000 for long runs.
    """
    if total_updates < 1:
        raise ValueError(f"total_updates must be >= 1, got {total_updates!r}")
    if total_updates <= 10 * math.e:
        return float(total_updates)
    return min(cap, total_updates / math.log(total_updates / 10))


class ModelEMA:
    """Keeps ``ema = decay·ema + (1 − decay)·model`` for every float tensor of the state dict.

    ``decay`` ramps up from 0 as ``decay·(1 − exp(−updates/tau))`` so the early, random weights
    are forgotten quickly. BatchNorm running statistics are averaged too (they are state).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        self.ema = deepcopy(unwrap(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay_max, self.tau, self.updates = decay, float(tau), updates

    def decay(self) -> float:
        return self.decay_max * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One ``_foreach`` pass over the float tensors: a per-tensor loop's arithmetic, in fewer calls."""
        self.updates += 1
        d = self.decay()
        msd = unwrap(model).state_dict()
        pairs = [(v, msd[k].detach()) for k, v in self.ema.state_dict().items() if v.dtype.is_floating_point]
        ema = [v for v, _ in pairs]
        torch._foreach_mul_(ema, d)
        torch._foreach_add_(ema, [m for _, m in pairs], alpha=1 - d)

"""The ReLU-manifold experiment of MobileNet V2 (Sandler et al. 2018, Sec. 3.2 and Fig. 1).

A 2-D spiral is embedded in n dimensions by a random matrix T, passed through a ReLU and
projected back by T⁺ (the pseudo-inverse). In few dimensions the ReLU collapses parts of the
spiral; in many it survives: why the bottleneck of an inverted residual must stay linear.
"""

from __future__ import annotations

import numpy as np

from .validate import check_int

__all__ = ["EMBED_DIMS", "spiral", "relu_roundtrip"]

# The embedding dimensions of the paper's Figure 1.
EMBED_DIMS = (2, 3, 5, 15, 30)


def spiral(n_points: int = 400) -> np.ndarray:
    """A 2-D spiral (n_points × 2) that winds twice around the origin without touching it."""
    check_int("n_points", n_points, low=2)
    theta = np.linspace(0.5, 4 * np.pi, n_points)
    r = theta / (4 * np.pi)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def relu_roundtrip(n: int, seed: int = 0, points: np.ndarray | None = None) -> dict:
    """Figure 1: embed 2-D points in n dimensions by a random T, apply ReLU, project back by T⁺.

    ``projected`` = T⁺·ReLU(T·x) is what the figure draws. A point is kept (``recoverable``)
    when that map is still one-to-one around it: its Jacobian there, T⁺·diag(Tx > 0)·T, has
    rank 2. Where the rank drops, the ReLU has flattened the neighbourhood of x onto a line or
    a point, and nearby inputs land on top of each other: that part of the manifold is
    collapsed for good. (The rank is that of the rows of T the ReLU let through, so a kept x
    is also recovered exactly from ReLU(Tx) by those rows.) ``recovered_fraction`` is the
    share of kept points.
    """
    check_int("n", n, low=2)
    x = spiral() if points is None else np.asarray(points, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"points must have shape (k, 2), got {x.shape}")
    T = np.random.default_rng(seed).standard_normal((n, 2))
    T_pinv = np.linalg.pinv(T)
    z = x @ T.T
    y = np.maximum(z, 0)
    active = z > 0
    jacobian = np.einsum("in,kn,nj->kij", T_pinv, active.astype(float), T)
    kept = np.linalg.matrix_rank(jacobian) == 2
    return {"n": n, "seed": seed, "points": x, "T": T, "relu": y, "projected": y @ T_pinv.T,
            "jacobian": jacobian, "recoverable": kept, "recovered_fraction": float(kept.mean()),
            "active_per_point": active.sum(axis=1)}

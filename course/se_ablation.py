"""Chapter 3's ablation, read: what SE and h-swish buy in a trained MobileNet V3-Small and what they cost in
latency, set against the direction the paper reports (Howard et al. 2019, Tables 5–6), and whether the
trained network's SE gates depend on the image and its class.
"""

from __future__ import annotations

import torch
from torch import nn

from .ablations import ABLATIONS, difference
from .chapter_ablation import glyph_test_batch
from .classify import recipe, recipe_model
from .env import seed_everything
from .se import calibrate_batchnorm, compare_gates, gate_separation, gate_vectors

__all__ = ["NAME", "PAPER_DIRECTION", "direction_rows", "describe_directions", "random_twin", "gate_study", "compare_gates"]

NAME = "ch03_se_activation"

# What the paper reports for each surgery against the full network (signs: +1 more, -1 less, 0 about equal).
PAPER_DIRECTION = {
    "no_se": dict(acc=-1, latency=-1, says="SE adds accuracy for a small latency cost"),
    "hswish_to_relu": dict(acc=-1, latency=-1, says="h-swish adds accuracy over ReLU for a little latency"),
    "hswish_to_swish": dict(acc=0, latency=1, says="swish is as accurate as h-swish but slower (on phones)"),
}
_WORD = {1: "higher", -1: "lower", 0: "about equal"}


def direction_rows(summary: list[dict], name: str = NAME) -> list[dict]:
    """Per ablated variant: our accuracy change (with the spread verdict) and latency change beside the paper's direction."""
    ab = ABLATIONS[name]
    base = next(r for r in summary if r["label"] == ab.baseline)
    rows = []
    for r in summary:
        if r["label"] == ab.baseline:
            continue
        surgery = ab.variant(r["label"]).surgery
        paper = PAPER_DIRECTION.get(surgery[0]) if len(surgery) == 1 else None
        diff = difference(summary, r["label"], ab.baseline)
        row = dict(variant=r["label"], d_acc=diff["delta"], real=diff["real"], words=diff["words"],
                   paper_acc=_WORD[paper["acc"]] if paper else "?", paper_latency=_WORD[paper["latency"]] if paper else "?",
                   paper_says=paper["says"] if paper else "")
        if "latency_ms" in r and "latency_ms" in base:
            ratio = r["latency_ms"] / base["latency_ms"]
            noise = max(r.get("latency_iqr_ms", 0.0), base.get("latency_iqr_ms", 0.0)) / base["latency_ms"]
            row.update(d_latency=ratio - 1, latency_noise=noise,
                       latency_word=("about equal" if abs(ratio - 1) <= noise else "higher" if ratio > 1 else "lower"))
        if paper:
            ours = (0 if not diff["real"] else 1 if diff["delta"] > 0 else -1)
            measured = diff["spread"] == diff["spread"]  # nan with one seed: no spread, no verdict
            row["acc_agrees"] = (ours == paper["acc"]) if measured and (diff["real"] or paper["acc"] == 0) else None
            if "latency_word" in row:
                row["latency_agrees"] = row["latency_word"] == _WORD[paper["latency"]]
        rows.append(row)
    return rows


def describe_directions(rows: list[dict]) -> str:
    """One line per ablated variant: ours against the paper's direction, said plainly."""
    lines = []
    for r in rows:
        acc = {True: "agrees with", False: "goes against", None: "cannot yet be compared with"}[r.get("acc_agrees")]
        line = f"{r['words']}. Paper: accuracy {r['paper_acc']} ({r['paper_says']}); ours {acc} it"
        if "latency_word" in r:
            lat = "agrees with" if r.get("latency_agrees") else "differs from"
            line += (f". Latency {100 * r['d_latency']:+.0f} % (noise ±{100 * r['latency_noise']:.0f} %: "
                     f"{r['latency_word']}); paper: {r['paper_latency']}, ours {lat} it on this CPU")
        lines.append(line + ".")
    return "\n".join(lines)


def random_twin(images: torch.Tensor, name: str = NAME, seed: int = 0) -> nn.Module:
    """The baseline network with random weights, its BatchNorm statistics taken from ``images`` (eval mode)."""
    v = ABLATIONS[name].variant(ABLATIONS[name].baseline)
    seed_everything(seed)
    model = recipe_model(v.model, v.width_mult, None, v.surgery, dict(v.model_kwargs))
    return calibrate_batchnorm(model, images)


def gate_study(trained: nn.Module, n: int | None = None, mode: str | None = None, permutations: int = 100) -> dict:
    """Every SE gate of ``trained`` and of its random twin on ``n`` Glyphs-10 test images (default: up to 500), with
    per-layer statistics.

    Keys: images, labels, random_model, trained_gates, random_gates ({layer: (N, C)}), trained, random
    (``gate_separation`` rows).
    """
    n = min(500, recipe(mode)["n_test"]) if n is None else n
    images, labels = glyph_test_batch(mode, n)
    random = random_twin(images)
    trained_gates, random_gates = gate_vectors(trained, images), gate_vectors(random, images)
    return dict(images=images, labels=labels, random_model=random, trained_gates=trained_gates,
                     random_gates=random_gates, trained=gate_separation(trained_gates, labels, permutations),
                     random=gate_separation(random_gates, labels, permutations))

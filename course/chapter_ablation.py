"""A chapter's ablation, narrated: what is about to be trained and for how long, the run itself with one
trained network kept for later cells, verdicts against the baseline, and the reference run's note.

Thin layer over ``course.ablations``: the only new thing it does is keep a trained model
(``run_keeping``), which ``run_ablation`` throws away. (Once ``course.ablations.run_variant`` takes a
``checkpoint`` and hands back its model, ``run_keeping`` reduces to a call of it.)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .ablations import ABLATIONS, difference, reference_rows, run_ablation, variant_cost
from .classify import load_checkpoint, lr_words, recipe, recipe_model, recipe_splits, train_recipe
from .data.glyphs import GlyphDataset

__all__ = ["ablation", "training_plan", "run_keeping", "load_kept", "verdicts", "reference_note", "glyph_test_split",
           "glyph_test_batch", "cost_rows"]


def ablation(name: str):
    """``ABLATIONS[name]``, or a ValueError naming the known sets."""
    if name not in ABLATIONS:
        raise ValueError(f"name must be one of {list(ABLATIONS)}, got {name!r}")
    return ABLATIONS[name]


def training_plan(name: str, mode: str | None = None, seeds=None) -> str:
    """What ``run_ablation(name)`` will train, on what data, and the most it can take (read off the recipe)."""
    ab = ablation(name)
    seeds = [0] if seeds is None else list(seeds)
    rec = recipe(mode)
    runs = len(ab.variants) * len(seeds)
    cap = rec["time_budget_s"]
    lines = [f"{ab.question}",
             f"{runs} training run(s), {len(seeds)} seed(s) each of: " + "; ".join(ab.labels()) + ".",
             f"Each run: {rec['epochs']} epoch(s) over {rec['n_train']:,} Glyphs-10 training images at "
             f"{rec['imgsz']} px, batch {rec['batch_size']}, {rec['optimizer'].upper()} lr {lr_words([v.model for v in ab.variants], mode)} with warm-up "
             f"and cosine decay; the weights of the best epoch on {rec['n_val']:,} validation images are scored "
             f"once on {rec['n_test']:,} test images.",
             f"A run stops before an epoch that would end past {cap:.0f} s, so the set takes at most about "
             f"{runs * cap / 60:.0f} min here (plus drawing the data once)."]
    return "\n".join(lines)


def _row(v, seed: int, result, mode: str | None) -> dict:
    """The row ``course.ablations.run_variant`` makes, from a ``ClassifyResult``."""
    return dict(key=v.key, label=v.label, seed=seed, test_acc=result.test_acc, best_val_acc=result.best_val_acc,
                best_epoch=result.best_epoch, history=result.history, wall_time_s=result.wall_time_s,
                train_images_per_s=result.train_images_per_s, stopped_early=result.stopped_early,
                device=result.device, threads=result.threads, torch_version=result.torch_version,
                **variant_cost(v, mode))


def run_keeping(name: str, checkpoint, keep: str | None = None, seeds=None, mode: str | None = None,
                done: dict | None = None, threads: int | None = None, progress: bool = True):
    """``run_ablation(name)`` that keeps one trained network: ``(rows, model)``.

    The variant ``keep`` (default: the ablation's baseline) is trained first, with its best weights
    saved to ``checkpoint``; the model comes back in eval mode on the CPU. The other variants are
    trained by ``run_ablation`` as usual (``done`` shares runs between a chapter's ablations).
    """
    ab = ablation(name)
    v = ab.variant(ab.baseline if keep is None else keep)
    seeds = [0] if seeds is None else list(seeds)
    done = {} if done is None else done
    path = Path(checkpoint)
    if (v.key, seeds[0]) in done and path.is_file():
        model = load_kept(name, path, v.label)
    else:
        if progress:
            print(f"{v.label} (seed {seeds[0]}), weights kept in {path}", flush=True)
        overrides = {"imgsz": v.imgsz} if v.imgsz else {}
        result = train_recipe(v.model, v.width_mult, mode=mode, seed=seeds[0], model_kwargs=dict(v.model_kwargs),
                              surgery=v.surgery, checkpoint=path, threads=threads, progress=progress, **overrides)
        done[(v.key, seeds[0])] = _row(v, seeds[0], result, mode)
        model = result.model.cpu().eval()
    rows = run_ablation(name, seeds=seeds, mode=mode, threads=threads, progress=progress, done=done)
    return rows, model


def load_kept(name: str, checkpoint, label: str | None = None) -> nn.Module:
    """Rebuild a variant of ``ABLATIONS[name]`` (default: the baseline) and load its saved weights (eval mode)."""
    ab = ablation(name)
    v = ab.variant(ab.baseline if label is None else label)
    model = recipe_model(v.model, v.width_mult, None, v.surgery, dict(v.model_kwargs))
    load_checkpoint(checkpoint, model)
    return model.eval()


def glyph_test_split(mode: str | None = None, n: int | None = None) -> GlyphDataset:
    """The recipe's Glyphs-10 test split (the first ``n`` images; all by default): the images the runs were scored on."""
    rec = recipe(mode)
    n = rec["n_test"] if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= rec["n_test"]:
        raise ValueError(f"n must be an int in [1, {rec['n_test']}] (the recipe's test split), got {n!r}")
    return recipe_splits(mode, n_test=n)["test"]


def glyph_test_batch(mode: str | None = None, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``glyph_test_split`` as one (images, labels) pair of tensors."""
    ds = glyph_test_split(mode, n)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.tensor(ys)


def verdicts(summary: list[dict], baseline: str) -> list[dict]:
    """``difference(summary, label, baseline)`` for every other variant: delta, spread, real, words."""
    return [difference(summary, r["label"], baseline) for r in summary if r["label"] != baseline]


def reference_note(name: str) -> tuple[list[dict] | None, str]:
    """The reference run's summary rows for ``name`` (or None) and a sentence saying which."""
    ref = reference_rows(name)
    if ref is None:
        return None, ("No reference run recorded yet (results/ablations_cpu.json is made by "
                      "`python benchmarks/ablations.py`): only your own run is shown, from one seed, so no "
                      "difference below can be called real yet.")
    seeds = min(r.get("seeds", 1) for r in ref)
    return ref, f"Reference run: {seeds} seeds per variant (mean ± std), drawn hatched beside your run."


def cost_rows(summary: list[dict], baseline: str) -> list[dict]:
    """Accuracy and cost per variant, with the change against ``baseline`` (for a text table)."""
    base = {r["label"]: r for r in summary}
    if baseline not in base:
        raise ValueError(f"baseline must be one of {list(base)}, got {baseline!r}")
    b = base[baseline]
    out = []
    for r in summary:
        std = r.get("test_acc_std", float("nan"))
        row = {"variant": r["label"], "test acc %": 100 * r["test_acc"],
               "± std": float("nan") if std != std else 100 * std, "seeds": r["seeds"],
               "params": r["params"], "MAdds (M)": r["macs"] / 1e6,
               "Δ acc (points)": 100 * (r["test_acc"] - b["test_acc"])}
        if "latency_ms" in r:
            row.update({"latency ms": r["latency_ms"], "IQR ms": r.get("latency_iqr_ms", float("nan")),
                        "Δ latency %": 100 * (r["latency_ms"] / b["latency_ms"] - 1)})
        out.append(row)
    return out

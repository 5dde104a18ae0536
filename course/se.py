"""Squeeze-and-excite in MobileNet V3 (Howard et al. 2019, Sec. 5.3): the gates it applies, and
what it costs.

The gates are read off the real ``SqueezeExcitation`` modules of a network, on test pictures
generated in code; the cost of an SE in any bneck of Tables 1 and 2 is counted (parameters,
fvcore multiply-adds) for the paper's squeeze width and for other reduction ratios.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .blocks import InvertedResidualV3, SqueezeExcitation, make_divisible_round
from .measure import count_flops, count_params
from .models import MOBILENET_V3_LARGE, MOBILENET_V3_SMALL, MobileNetV3
from .validate import check_choice, check_int

__all__ = ["V3_TABLES", "IMAGE_KINDS", "synthetic_image", "se_modules", "se_gates", "calibrate_batchnorm",
           "REDUCTIONS", "se_cost", "network_se_params", "gate_vectors", "class_share", "f_ratio",
           "gate_separation", "compare_gates"]

# The bneck tables of the paper, by mode: Table 1 (Large) and Table 2 (Small).
V3_TABLES = {"large": MOBILENET_V3_LARGE, "small": MOBILENET_V3_SMALL}

IMAGE_KINDS = ("stripes", "checkerboard", "rings", "noise")


def synthetic_image(kind: str = "rings", size: int = 224, seed: int = 0) -> torch.Tensor:
    """A (1, 3, size, size) test picture generated in code, normalised per channel.

    Each colour channel carries a different pattern, so different images excite different
    channels of the network.
    """
    check_choice("kind", kind, IMAGE_KINDS)
    check_int("size", size, low=32)
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r = torch.sqrt(x**2 + y**2)
    if kind == "stripes":
        chans = [torch.sin(12 * x), torch.sin(12 * (x + y)), x]
    elif kind == "checkerboard":
        chans = [torch.sign(torch.sin(10 * x) * torch.sin(10 * y)), torch.sign(torch.sin(5 * x)), y]
    elif kind == "rings":
        chans = [torch.cos(20 * r), (r < 0.5).float(), torch.exp(-4 * r**2)]
    else:
        chans = list(torch.randn(3, size, size, generator=g))
    img = torch.stack(chans)
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    img = (img - img.mean((1, 2), keepdim=True)) / (img.std((1, 2), keepdim=True) + 1e-6)
    return img.unsqueeze(0)


def se_modules(model: nn.Module) -> dict[str, SqueezeExcitation]:
    """Every squeeze-and-excite module of ``model``, by its qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SqueezeExcitation)}


class _Stop(Exception):
    pass


@torch.no_grad()
def se_gates(model: nn.Module, image: torch.Tensor, name: str) -> torch.Tensor:
    """The gate values (C,) that SE module ``name`` applies to its input for ``image``.

    The forward pass stops at that module, so later layers cost nothing.
    """
    modules = se_modules(model)
    check_choice("name", name, tuple(modules))
    captured = []

    def hook(module, inputs):
        captured.append(module.scale(inputs[0])[0, :, 0, 0])
        raise _Stop

    handle = modules[name].register_forward_pre_hook(hook)
    was_training = model.training
    model.eval()
    try:
        model(image)
    except _Stop:
        pass
    finally:
        handle.remove()
        model.train(was_training)
    return captured[0]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Set every BN's running statistics to those of ``images`` (then eval mode).

    With random weights and fresh statistics (mean 0, variance 1) the pooled features an SE
    sees are near zero and every gate sits at 0.5; statistics from real inputs give the
    features their real scale, so the gates spread and depend on the picture.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    model(images)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return model.eval()


REDUCTIONS = (1, 2, 4, 8, 16, 32)


def _block_input_sizes(mode: str, size: int = 224) -> list[int]:
    """Spatial size of each bneck's input (the stem halves the image)."""
    sizes, s = [], size // 2
    for cfg in V3_TABLES[mode]:
        sizes.append(s)
        s //= cfg.stride
    return sizes


def _squeeze_for(expanded: int, reduction: int) -> int:
    return make_divisible_round(max(1, expanded // reduction), 8)


@lru_cache(maxsize=None)
def se_cost(mode: str, row: int, reduction: int = 4) -> dict:
    """Parameters and multiply-adds of the SE in bneck ``row`` of Table 1/2, against its whole bneck.

    The squeeze width is make_divisible_round(expanded // reduction, 8); reduction 4 is the paper's.
    """
    check_choice("mode", mode, tuple(V3_TABLES))
    table = V3_TABLES[mode]
    if not isinstance(row, int) or not 0 <= row < len(table):
        raise ValueError(f"row must be an integer in [0, {len(table) - 1}], got {row!r}")
    check_choice("reduction", reduction, REDUCTIONS)
    c = table[row]
    if not c.use_se:
        raise ValueError(f"row {row} of the {mode} table has no SE; rows with SE: "
                         f"{[i for i, r in enumerate(table) if r.use_se]}")
    size = _block_input_sizes(mode)[row]
    out_size = size // c.stride
    squeeze = _squeeze_for(c.expanded, reduction)
    base = InvertedResidualV3(c.in_channels, c.kernel, c.expanded, c.out_channels, False, c.activation, c.stride)
    se = SqueezeExcitation(c.expanded, squeeze)
    se_params, se_madds = count_params(se), count_flops(se, (1, c.expanded, out_size, out_size))
    block_params = count_params(base) + se_params
    block_madds = count_flops(base, (1, c.in_channels, size, size)) + se_madds
    return {"mode": mode, "row": row, "reduction": reduction, "expanded": c.expanded, "squeeze": squeeze,
            "size": out_size, "se_params": se_params, "block_params": block_params,
            "se_madds": se_madds, "block_madds": block_madds,
            "param_share": se_params / block_params, "madds_share": se_madds / block_madds}


@lru_cache(maxsize=None)
def _model_params(mode: str) -> int:
    return count_params(MobileNetV3(mode))


def network_se_params(mode: str, reduction: int) -> tuple[int, int]:
    """(SE parameters, all parameters) of the whole network if every SE used ``reduction``."""
    check_choice("mode", mode, tuple(V3_TABLES))
    check_choice("reduction", reduction, REDUCTIONS)
    total = _model_params(mode)
    default = se_new = 0
    for c in V3_TABLES[mode]:
        if c.use_se:
            default += count_params(SqueezeExcitation(c.expanded))
            se_new += count_params(SqueezeExcitation(c.expanded, _squeeze_for(c.expanded, reduction)))
    return se_new, total - default + se_new



# --------------------------------------------------------------------------- gates of a trained network


@torch.no_grad()
def gate_vectors(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Every SE module's gates for every image: ``{name: (N, C)}``, in network order (eval mode, restored)."""
    modules = se_modules(model)
    if not modules:
        raise ValueError("model has no SqueezeExcitation modules")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    out: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    hooks = [m.register_forward_pre_hook(lambda m, i, name=name: out[name].append(m.scale(i[0])[:, :, 0, 0]))
             for name, m in modules.items()]
    was_training = model.training
    model.eval()
    try:
        for chunk in images.split(batch_size):
            model(chunk)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: torch.cat(parts) for name, parts in out.items()}


def _check_gates(gates: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(gates, torch.Tensor) or gates.ndim != 2:
        raise ValueError(f"gates must be a (N, C) tensor, got {getattr(gates, 'shape', type(gates))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != gates.shape[:1]:
        raise ValueError(f"labels must be a tensor of {gates.shape[0]} class indices, got "
                         f"{getattr(labels, 'shape', type(labels))}")


def _sums_of_squares(gates: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, int]:
    """(between-class, within-class) sums of squares over all channels, and the number of classes."""
    g = gates.double()
    classes = labels.unique()
    centre = g.mean(0)
    between = within = 0.0
    for k in classes:
        part = g[labels == k]
        mean = part.mean(0)
        between += len(part) * float(((mean - centre) ** 2).sum())
        within += float(((part - mean) ** 2).sum())
    return between, within, len(classes)


def class_share(gates: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of the gates' variance across images that the class explains (η²: between-class SS / total SS).

    0 when every class has the same mean gate vector, 1 when the gates are a function of the class
    alone; with no class structure at all it is still about (K − 1) / (N − 1), hence ``gate_separation``'s
    label-permutation baseline.
    """
    _check_gates(gates, labels)
    between, within, _ = _sums_of_squares(gates, labels)
    total = between + within
    return between / total if total > 0 else 0.0


def f_ratio(gates: torch.Tensor, labels: torch.Tensor) -> float:
    """Between-class over within-class variance (mean squares, summed over channels): about 1 without class structure."""
    _check_gates(gates, labels)
    between, within, k = _sums_of_squares(gates, labels)
    n = len(labels)
    if k < 2 or n <= k:
        raise ValueError(f"labels need at least 2 classes and more images than classes, got {k} classes, {n} images")
    return (between / (k - 1)) / (within / (n - k)) if within > 0 else float("inf")


def gate_separation(gates_by_layer: dict[str, torch.Tensor], labels: torch.Tensor, permutations: int = 100,
                    seed: int = 0) -> list[dict]:
    """Per SE layer: how much the gates move between images and how much of that the class explains.

    ``spread``: the gates' std across images, averaged over channels (0 means one fixed gate vector);
    ``class_share`` (η²) and ``f_ratio`` as above; ``chance_share``: the 95th percentile of η² with
    the labels shuffled ``permutations`` times, so ``by_class`` says the class shapes the gates beyond chance.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name, g in gates_by_layer.items():
        share = class_share(g, labels)
        null = sorted(class_share(g, labels[torch.randperm(len(labels), generator=gen)]) for _ in range(permutations))
        chance = null[min(len(null) - 1, int(0.95 * len(null)))] if null else float("nan")
        rows.append(dict(layer=name, channels=g.shape[1], mean_gate=float(g.mean()), spread=float(g.std(0).mean()),
                         shut=float((g == 0).float().mean()), open=float((g == 1).float().mean()),
                         class_share=share, chance_share=chance, f_ratio=f_ratio(g, labels),
                         by_class=share > chance))
    return rows


def compare_gates(trained: list[dict], random: list[dict], test_acc: float | None = None,
                  chance: float = 0.1) -> str:
    """Plain sentences on what ``gate_separation`` found for the trained and the random-weights network.

    ``test_acc``: the trained network's test accuracy, so a network that learnt nothing is named as such.
    """
    def count(rows):
        return sum(r["by_class"] for r in rows)

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    best = max(trained, key=lambda r: r["class_share"])
    lines = [
        f"Trained: gates move between images by {mean(trained, 'spread'):.3f} on average (std across images, "
        f"mean over channels; random weights: {mean(random, 'spread'):.3f}); mean gate {mean(trained, 'mean_gate'):.2f} "
        f"(random: {mean(random, 'mean_gate'):.2f}).",
        f"The class explains {100 * mean(trained, 'class_share'):.0f} % of the trained gates' variance on average "
        f"(random weights: {100 * mean(random, 'class_share'):.0f} %); beyond label-shuffled chance in "
        f"{count(trained)} of {len(trained)} SE layers (random weights: {count(random)} of {len(random)}).",
        f"Most class-specific SE layer of the trained network: {best['layer']} ({best['channels']} channels, "
        f"η² = {best['class_share']:.2f}, chance {best['chance_share']:.2f}).",
    ]
    if test_acc is not None:
        learnt = test_acc > 2 * chance
        lines.append(f"The trained network scores {100 * test_acc:.1f} % on the test split (chance {100 * chance:.0f} %)"
                     + ("." if learnt else ": it has barely learnt the task, so its gates cannot be expected to "
                        "carry class information yet."))
    more = mean(trained, "class_share") > mean(random, "class_share")
    if count(trained) == 0:
        lines.append("So: the trained gates do NOT differ by class beyond chance on these images.")
    elif more:
        lines.append("So: training made the gates depend on the class — more than the random network's "
                     "(whose features already differ a little by class).")
    else:
        lines.append("So: the trained gates differ by class, but no more than a random network's do: "
                     "training did not make them more class-specific here.")
    return "\n".join(lines)

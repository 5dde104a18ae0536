"""Checks for chapter 03 (MobileNet V3): h-swish's slope, the SE block, what SE costs a whole
network, what pooling before the last 1×1 layer saves, and which SE layer of the trained network sorts
by class."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..blocks import SqueezeExcitation, make_divisible_round
from ..measure import count_flops, count_params
from ..models import MOBILENET_V3_LARGE, MOBILENET_V3_SMALL, BneckConfig, MobileNetV3
from . import ExerciseFailed, exercise


def _as_tensor(out, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise ExerciseFailed(f"{what} should return a tensor, got {type(out).__name__}")
    return out


def _hswish_slope(x: torch.Tensor) -> torch.Tensor:
    """d/dx h-swish by autograd through ``F.hardswish``."""
    x = x.detach().clone().requires_grad_(True)
    F.hardswish(x).sum().backward()
    return x.grad


@exercise("3.1", "The slope of h-swish", points=1)
def _check_hswish_grad(h_swish_grad):
    """h_swish_grad(x) = d/dx [x · ReLU6(x + 3) / 6], compared with autograd away from the kinks at ±3."""
    if not callable(h_swish_grad):
        raise ExerciseFailed(f"pass your function, got {type(h_swish_grad).__name__}")
    x = torch.cat([torch.linspace(-6, 6, 1201), torch.tensor([-100.0, -3.01, -2.99, 0.0, 2.99, 3.01, 100.0])])
    x = x[(x.abs() - 3).abs() > 1e-3]
    keep = x.clone()
    got = _as_tensor(h_swish_grad(x), "h_swish_grad(x)")
    if not torch.equal(x, keep):
        raise ExerciseFailed("h_swish_grad changed its input in place; return a new tensor")
    if got.shape != x.shape:
        raise ExerciseFailed(f"output shape {tuple(got.shape)} should equal the input shape {tuple(x.shape)}")
    want = _hswish_slope(x)
    err = (got - want).abs()
    if float(err.max()) > 1e-5:
        i = int(err.argmax())
        hint = ""
        if torch.allclose(got, F.hardsigmoid(x), atol=1e-5):
            hint = (" — that is h-sigmoid, the slope of x·g(x) only if g were constant; "
                    "the product rule adds x·g'(x)")
        elif torch.allclose(got, torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x))), atol=1e-5):
            hint = " — that is swish's slope; h-swish's is piecewise linear"
        elif torch.allclose(got, x / 3 + 0.5, atol=1e-5):
            hint = " — right between −3 and 3; outside, h-swish is 0 (x < −3) or x (x > 3)"
        raise ExerciseFailed(f"at x = {float(x[i]):g} the slope is {float(want[i]):.6f} (autograd through "
                             f"F.hardswish), you returned {float(got[i]):.6f}{hint}")
    return f"matches autograd at {x.numel():,} points of [-6, 6] and at ±100"


def _load_positionally(learner: nn.Module, reference: nn.Module) -> None:
    """Copy reference tensors into the learner's, in order; a Linear may stand in for a 1×1 conv."""
    theirs = list(learner.state_dict().items())
    ours = list(reference.state_dict().values())
    if len(theirs) != len(ours):
        names = ", ".join(k for k, _ in theirs) or "none"
        raise ExerciseFailed(f"expected 4 tensors in state_dict (fc1 weight and bias, fc2 weight and bias), "
                             f"got {len(theirs)}: {names}")
    new = {}
    for (k, t), r in zip(theirs, ours):
        if t.numel() != r.numel():
            raise ExerciseFailed(f"tensor {k} has shape {tuple(t.shape)}; expected {r.numel():,} values "
                                 f"like the reference's {tuple(r.shape)}")
        new[k] = r.reshape(t.shape)
    learner.load_state_dict(new)


def _first_out_width(module: nn.Module) -> int | None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m.out_channels
        if isinstance(m, nn.Linear):
            return m.out_features
    return None


@exercise("3.2", "Squeeze-and-excitation block", points=2)
def _check_se(se_cls):
    """se_cls(channels) → a module: pool, 1×1 down to make_divisible_round(C // 4, 8), ReLU, 1×1 up,
    h-sigmoid, scale; compared with ``course.blocks.SqueezeExcitation`` after loading its weights.
    """
    torch.manual_seed(0)
    details = []
    for channels in (16, 96, 120):
        squeeze = make_divisible_round(channels // 4, 8)
        try:
            se = se_cls(channels)
        except TypeError as exc:
            raise ExerciseFailed(f"{getattr(se_cls, '__name__', se_cls)}(channels) should build the block "
                                 f"from the channel count alone: {exc}") from None
        if not isinstance(se, nn.Module):
            raise ExerciseFailed(f"{getattr(se_cls, '__name__', se_cls)}({channels}) should be an nn.Module, "
                                 f"got {type(se).__name__}")
        width = _first_out_width(se)
        if width != squeeze:
            raise ExerciseFailed(f"channels={channels}: the squeeze layer should have {squeeze} outputs "
                                 f"(make_divisible_round({channels} // 4, 8)), got {width}")
        ref = SqueezeExcitation(channels).eval()
        want_params, got_params = count_params(ref), count_params(se)
        if got_params != want_params:
            raise ExerciseFailed(f"channels={channels}: expected {want_params:,} parameters "
                                 f"(2·{channels}·{squeeze} weights + {channels} + {squeeze} biases), "
                                 f"got {got_params:,}")
        se.eval()
        with torch.no_grad():
            nn.init.normal_(ref.fc1.weight, 0, 0.5)
            nn.init.normal_(ref.fc2.weight, 0, 0.5)
            nn.init.normal_(ref.fc2.bias, 0, 2.0)
            _load_positionally(se, ref)
            x = torch.rand(2, channels, 7, 5) * 3 + 0.1
            got = _as_tensor(se(x), "your block")
            if got.shape != x.shape:
                raise ExerciseFailed(f"output shape {tuple(got.shape)} should equal the input's {tuple(x.shape)}")
            gate = got / x
            spread = (gate - gate.mean((2, 3), keepdim=True)).abs().max()
            if float(spread) > 1e-4:
                raise ExerciseFailed("the gate should be one number per channel (average over H and W "
                                     "before the 1×1 convs), but it varies across positions")
            if float(gate.min()) < -1e-6 or float(gate.max()) > 1 + 1e-6:
                raise ExerciseFailed(f"gate values should lie in [0, 1] (h-sigmoid), got "
                                     f"{float(gate.min()):.3f} … {float(gate.max()):.3f}")
            want = ref(x)
            err = float((got - want).abs().max())
            if err > 1e-5:
                sig = x * torch.sigmoid(ref.fc2(F.relu(ref.fc1(x.mean((2, 3), keepdim=True)))))
                hint = (" — looks like a plain sigmoid; MobileNet V3 uses h-sigmoid ReLU6(x + 3) / 6"
                        if torch.allclose(got, sig, atol=1e-5) else "")
                raise ExerciseFailed(f"channels={channels}: output differs from the reference by up to "
                                     f"{err:.4g} with the same weights{hint}")
        details.append(f"{channels}→{squeeze}")
    return f"squeeze widths {', '.join(details)}; parameters, gates and outputs match the reference"


def reference_se_parameters(table, reduction: int = 4) -> int:
    """Parameters of every SE block in a network built from ``table`` (BneckConfig rows), counted
    on real ``SqueezeExcitation`` modules with squeeze width make_divisible_round(expanded // reduction, 8).
    """
    return sum(count_params(SqueezeExcitation(c.expanded, make_divisible_round(c.expanded // reduction, 8)))
               for c in table if c.use_se)


_ODD_TABLE = [BneckConfig(24, 5, 100, 24, True, "HS", 1), BneckConfig(24, 3, 36, 40, False, "RE", 2),
              BneckConfig(40, 3, 44, 40, True, "RE", 1)]


@exercise("3.3", "What SE costs a whole network", points=1)
def _check_se_parameters(se_parameters):
    """se_parameters(table, reduction) = the SE blocks' parameters over the rows that use SE."""
    in_network = sum(count_params(m) for m in MobileNetV3("large").modules() if isinstance(m, SqueezeExcitation))
    if in_network != reference_se_parameters(MOBILENET_V3_LARGE):
        raise AssertionError("reference out of step with course.models.MobileNetV3")
    cases = [(name, table, r) for name, table in (("MOBILENET_V3_LARGE", MOBILENET_V3_LARGE),
                                                   ("MOBILENET_V3_SMALL", MOBILENET_V3_SMALL),
                                                   ("a made-up table", _ODD_TABLE))
             for r in (4, 2, 8, 16)]
    for name, table, r in cases:
        want = reference_se_parameters(table, r)
        got = se_parameters(table, r)
        if isinstance(got, bool) or not isinstance(got, int):
            raise ExerciseFailed(f"se_parameters({name}, reduction={r}) should return an int, got {got!r}")
        if got != want:
            se_rows = [c for c in table if c.use_se]
            squeeze = [make_divisible_round(c.expanded // r, 8) for c in se_rows]
            hint = ""
            if got == sum(2 * c.expanded * s for c, s in zip(se_rows, squeeze)):
                hint = " — the two 1×1 convs have biases too (C + S numbers)"
            elif got == sum(2 * c.expanded * (c.expanded // r) + c.expanded + c.expanded // r for c in se_rows):
                hint = " — the squeeze width is rounded: make_divisible_round(expanded // reduction, 8)"
            elif got == sum(2 * c.expanded * make_divisible_round(c.expanded // r, 8) + c.expanded
                            + make_divisible_round(c.expanded // r, 8) for c in table):
                hint = " — only rows with use_se carry an SE block"
            raise ExerciseFailed(f"se_parameters({name}, reduction={r}): expected {want:,}, got {got:,}{hint}")
    return f"{len(cases)} tables × reductions match SqueezeExcitation modules counted in course.blocks"


def _layers_cost(layers: list[tuple[nn.Module, tuple[int, ...]]]) -> tuple[int, int]:
    """(mult-adds by fvcore, weights) of bias-free conv/linear layers, each on its own input."""
    return (sum(count_flops(m, size) for m, size in layers),
            sum(m.weight.numel() for m, _ in layers))


def reference_last_stage_change(expanded: int, projected: int, last: int, size: int,
                                kernel: int = 3) -> tuple[int, int]:
    """Fig. 5, counted on real layers: (mult-adds saved, weights added) when pooling moves before the
    ``last``-wide layer and the depthwise + projection layers go. The shared 1×1 expansion, batch
    norm, activations and pooling are left out.
    """
    pw = lambda a, b: nn.Conv2d(a, b, 1, bias=False)  # noqa: E731
    original = [(nn.Conv2d(expanded, expanded, kernel, padding=kernel // 2, groups=expanded, bias=False),
                 (1, expanded, size, size)),
                (pw(expanded, projected), (1, expanded, size, size)),
                (pw(projected, last), (1, projected, size, size))]
    efficient = [(pw(expanded, last), (1, expanded, 1, 1))]
    (old_madds, old_w), (new_madds, new_w) = _layers_cost(original), _layers_cost(efficient)
    return old_madds - new_madds, new_w - old_w


LAST_STAGE_CASES = [(960, 320, 1280, 7), (576, 96, 1024, 7), (960, 320, 1280, 10), (480, 160, 640, 4)]


@exercise("3.4", "What pooling first saves", points=1)
def _check_last_stage_change(last_stage_change):
    for expanded, projected, last, size in LAST_STAGE_CASES:
        want = reference_last_stage_change(expanded, projected, last, size)
        call = f"last_stage_change(expanded={expanded}, projected={projected}, last={last}, size={size})"
        got = last_stage_change(expanded, projected, last, size)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise ExerciseFailed(f"{call} should return a pair (mult_adds_saved, weights_added), got {got!r}")
        if got != want:
            removed = 9 * expanded + expanded * projected + projected * last
            hint = ""
            if got[0] == size**2 * removed:
                hint = (" — the last-wide layer does not vanish: it still runs, on the pooled 1×1 map, "
                        "so subtract its expanded·last mult-adds")
            elif got[0] == size**2 * (expanded * projected + projected * last) - expanded * last:
                hint = " — the 3×3 depthwise conv on the expanded map goes away too"
            elif got[1] == removed - expanded * last:
                hint = " — weights added is new minus removed: the efficient stage has more weights"
            raise ExerciseFailed(f"{call}: counted on real layers, expected {want}, got {got!r}{hint}")
    return (f"{len(LAST_STAGE_CASES)} stages match fvcore on real layers; mult-adds saved grow as size², "
            "weights added do not depend on it")


def _synthetic_gates(seed: int = 0):
    """Gates for 3 classes × 6 images × 5 channels: set by the class, with equal class means, and in between."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(18) % 3
    by_class = torch.rand(3, 5, generator=g)[labels]
    same = torch.rand(6, 5, generator=g).repeat_interleave(3, 0)
    noisy = (by_class + 0.3 * torch.rand(18, 5, generator=g)).clamp(0, 1)
    return labels, {"set by the class alone": (by_class, 1.0), "with equal class means": (same, 0.0),
                    "with noise on top of the class": (noisy, None)}


@exercise("3.5", "Which SE layer sorts by class?", points=2)
def _check_class_share(class_share, best_layer, gates, labels):
    """class_share(gates (N, C), labels (N,)) = between-class SS / total SS over all channels (η²);
    best_layer(gates, labels) = the name in ``gates`` (the trained network's SE layers) where class_share is largest."""
    from ..se import class_share as reference

    if not callable(class_share):
        raise ExerciseFailed(f"pass your class_share function first, got {type(class_share).__name__}")
    syn_labels, cases = _synthetic_gates()
    for what, (g, exact) in cases.items():
        want = reference(g, syn_labels) if exact is None else exact
        got = class_share(g.clone(), syn_labels.clone())
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseFailed(f"class_share should return a number, got {got!r}") from None
        if abs(got - want) > 1e-5:
            hint = ""
            between_only = reference(g, syn_labels) * float(((g - g.mean(0)) ** 2).sum())
            if abs(got - between_only) < 1e-5:
                hint = " — that is the between-class sum of squares itself; divide by the total sum of squares"
            elif exact == 1.0:
                hint = " — when every image of a class has the same gates, the class explains all the variance"
            raise ExerciseFailed(f"class_share on gates {what} (3 classes × 6 images × 5 channels): expected "
                                 f"{want:.6f}, got {got:.6f}{hint}")
    if not isinstance(gates, dict) or not gates:
        raise ExerciseFailed("pass the trained network's gates: a dict {layer name: (N, C) tensor} from gate_vectors")
    shares = {name: reference(g, labels) for name, g in gates.items()}
    truth = max(shares, key=shares.get)
    if not callable(best_layer):
        raise ExerciseFailed(f"pass your best_layer function, got {type(best_layer).__name__}")
    best_layer = best_layer(gates, labels)
    if best_layer not in shares:
        raise ExerciseFailed(f"best_layer should be one of the layer names {list(shares)}, got {best_layer!r}")
    if best_layer != truth:
        spread = max(gates, key=lambda n: float(gates[n].std(0).mean()))
        hint = ""
        if best_layer == min(shares, key=shares.get):
            hint = " — that is the layer where the class explains the least"
        elif best_layer == spread:
            hint = " — that is the layer whose gates move most between images, not the one the class explains best"
        raise ExerciseFailed(f"on these gates the class explains most in {truth} (η² = {shares[truth]:.3f}); "
                             f"{best_layer} has {shares[best_layer]:.3f}{hint}")
    return (f"class_share matches on 3 synthetic cases; {truth} is the most class-specific of {len(shares)} SE "
            f"layers (η² = {shares[truth]:.3f}, on {len(labels)} images)")

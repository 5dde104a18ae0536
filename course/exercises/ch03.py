"""Checks for chapter 03 (MobileNet V3): h-swish, the SE block, the SE squeeze width."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..blocks import SqueezeExcitation, make_divisible_round
from ..measure import count_params
from ..models import MOBILENET_V3_LARGE, MOBILENET_V3_SMALL
from . import ExerciseFailed, exercise


def _as_tensor(out, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise ExerciseFailed(f"{what} should return a tensor, got {type(out).__name__}")
    return out


@exercise("3.1", "h-swish from the formula", points=1)
def _check_hswish(h_swish):
    """h_swish(x) = x · ReLU6(x + 3) / 6, compared with F.hardswish on [-6, 6] and at the kinks."""
    if not callable(h_swish):
        raise ExerciseFailed(f"pass your function (or module), got {type(h_swish).__name__}")
    kinks = torch.tensor([-3.0, 3.0, 0.0, -3.001, -2.999, 2.999, 3.001, -100.0, 100.0])
    x = torch.cat([torch.linspace(-6, 6, 1201), kinks])
    keep = x.clone()
    got = _as_tensor(h_swish(x), "h_swish(x)")
    if not torch.equal(x, keep):
        raise ExerciseFailed("h_swish changed its input in place; return a new tensor (x is used "
                             "elsewhere in the network, e.g. by the residual)")
    if got.shape != x.shape:
        raise ExerciseFailed(f"output shape {tuple(got.shape)} should equal the input shape {tuple(x.shape)}")
    want = F.hardswish(x)
    err = (got - want).abs()
    if float(err.max()) > 1e-5:
        i = int(err.argmax())
        hint = ""
        if torch.allclose(got, F.silu(x), atol=1e-5):
            hint = " — that is swish x·sigmoid(x); h-swish replaces the sigmoid by ReLU6(x + 3) / 6"
        elif torch.allclose(got, x * F.relu6(x + 3), atol=1e-4):
            hint = " — missing the division by 6"
        elif torch.allclose(got, F.hardsigmoid(x), atol=1e-5):
            hint = " — that is h-sigmoid; multiply by x"
        elif torch.allclose(got, x * F.relu(x + 3) / 6, atol=1e-5):
            hint = " — ReLU instead of ReLU6: the gate must saturate at 1 for x > 3"
        raise ExerciseFailed(f"at x = {float(x[i]):g} expected {float(want[i]):.6f}, got {float(got[i]):.6f}{hint}")
    return f"matches F.hardswish at {x.numel():,} points in [-6, 6], the kinks at ±3 and ±100"


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


def _expanded_widths() -> list[int]:
    """The tables' SE widths first, then a few that test the rounding rule's edges."""
    return sorted({c.expanded for c in MOBILENET_V3_LARGE + MOBILENET_V3_SMALL if c.use_se}) + [8, 20, 1000]


@exercise("3.3", "SE squeeze width for an expanded width", points=1)
def _check_squeeze(squeeze_channels):
    """squeeze_channels(expanded) = 1/4 of the expansion width, rounded to a multiple of 8 (torchvision)."""
    for e in _expanded_widths():
        want = make_divisible_round(e // 4, 8)
        got = squeeze_channels(e)
        if isinstance(got, bool) or not isinstance(got, int):
            raise ExerciseFailed(f"squeeze_channels({e}) should return an int, got {got!r}")
        if got != want:
            hint = f" ({e} / 4 = {e / 4:g}, rounded to the nearest multiple of 8, at least 8)"
            raise ExerciseFailed(f"squeeze_channels({e}): expected {want}, got {got}{hint}")
    return f"{len(_expanded_widths())} widths match"

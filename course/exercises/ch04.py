"""Checks for chapter 04 (ShuffleNet V1): the shuffle as a permutation, group-conv cost, group reach, and
where the trained run says the shuffle helps more."""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import channel_shuffle
from ..measure import conv_cost
from ..groups import reached_groups as _reference_reach
from . import ExerciseFailed, exercise

_SHUFFLE_CASES = ((12, 3), (8, 2), (8, 4), (24, 6), (16, 8), (7, 7), (5, 1))


def _as_index(perm, channels: int, groups: int) -> torch.Tensor:
    try:
        index = torch.as_tensor(list(perm) if not isinstance(perm, torch.Tensor) else perm).long().flatten()
    except (TypeError, ValueError) as exc:
        raise ExerciseFailed(f"shuffle_permutation({channels}, {groups}) should return a list of ints, "
                             f"got {type(perm).__name__}: {exc}") from None
    if index.numel() != channels:
        raise ExerciseFailed(f"shuffle_permutation({channels}, {groups}): expected {channels} indices, got {index.numel()}")
    if sorted(index.tolist()) != list(range(channels)):
        raise ExerciseFailed(f"shuffle_permutation({channels}, {groups}) = {index.tolist()} is not a permutation of "
                             f"0..{channels - 1} (every channel must appear exactly once)")
    return index


@exercise("4.1", "Channel shuffle as a permutation", points=2)
def _check_permutation(shuffle_permutation):
    for channels, groups in _SHUFFLE_CASES:
        index = _as_index(shuffle_permutation(channels, groups), channels, groups)
        x = torch.randn(2, channels, 3, 3)
        want = channel_shuffle(x, groups)
        if not torch.equal(x[:, index], want):
            expected = channel_shuffle(torch.arange(channels).view(1, -1, 1, 1), groups).flatten().tolist()
            raise ExerciseFailed(f"shuffle_permutation({channels}, {groups}): expected {expected}, got {index.tolist()}")
    for channels, groups in ((12, 5), (8, 3), (6, 0)):
        try:
            shuffle_permutation(channels, groups)
        except ValueError:
            continue
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001 - the learner's code may raise anything
            raise ExerciseFailed(f"shuffle_permutation({channels}, {groups}) raised {type(exc).__name__}; "
                                 f"a bad groups value should raise ValueError") from None
        raise ExerciseFailed(f"shuffle_permutation({channels}, {groups}) returned a result, but {groups} groups "
                             f"cannot split {channels} channels: raise ValueError naming groups")
    return f"{len(_SHUFFLE_CASES)} (channels, groups) pairs match course.blocks.channel_shuffle; bad groups raise ValueError"


@exercise("4.2", "Cost of a group convolution", points=1)
def _check_cost(group_conv_cost):
    cases = ((240, 240, 1, 28, 3), (240, 240, 1, 28, 1), (64, 128, 3, 14, 4), (32, 32, 3, 7, 32), (24, 60, 1, 56, 2))
    for c_in, c_out, k, size, g in cases:
        got = group_conv_cost(c_in, c_out, k, size, g)
        try:
            params, madds = got
        except (TypeError, ValueError):
            raise ExerciseFailed(f"group_conv_cost{(c_in, c_out, k, size, g)} should return (params, mult_adds), "
                                 f"got {got!r}") from None
        real = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k, groups=g, bias=False).parameters())
        want = conv_cost(k, c_in, c_out, size, groups=g)
        if params != real:
            raise ExerciseFailed(f"group_conv_cost{(c_in, c_out, k, size, g)}: params expected {real:,} "
                                 f"(nn.Conv2d's count), got {params!r}")
        if madds != want["mult_adds"]:
            raise ExerciseFailed(f"group_conv_cost{(c_in, c_out, k, size, g)}: mult-adds expected "
                                 f"{want['mult_adds']:,}, got {madds!r}")
    return f"{len(cases)} layers match nn.Conv2d and course.measure.conv_cost"


@exercise("4.3", "Which groups can an input group reach?", points=2)
def _check_reach(reached_groups):
    cases = [(12, 3, 0, False), (12, 3, 1, True), (8, 4, 0, True), (8, 4, 3, True), (8, 2, 1, True),
             (16, 4, 2, False), (4, 4, 1, True), (18, 3, 2, True)]
    for channels, groups, start, shuffle in cases:
        got = reached_groups(channels, groups, start, shuffle)
        want = _reference_reach(channels, groups, start, shuffle)
        try:
            got_set = {int(v) for v in got}
        except (TypeError, ValueError):
            raise ExerciseFailed(f"reached_groups{(channels, groups, start, shuffle)} should return a set of "
                                 f"group indices, got {got!r}") from None
        if got_set != want:
            raise ExerciseFailed(f"reached_groups(channels={channels}, groups={groups}, input_group={start}, "
                                 f"shuffle={shuffle}): expected {sorted(want)}, got {sorted(got_set)} "
                                 "(read off the Jacobian of two real nn.Conv2d(groups=g) layers)")
    return f"{len(cases)} cases match the reach read off real group convolutions"


@exercise("4.4", "Where does the shuffle help more?", points=2)
def _check_shuffle_gain(shuffle_gain, more_at_larger_g, summary):
    """shuffle_gain(summary, g) = test accuracy with the shuffle minus without at g (from the summary rows);
    more_at_larger_g(summary): whether the run's gain is larger at the larger g of Table 3 than at the smaller."""
    from ..shuffle_ablation import groups_with_ablation, label_for
    from ..shuffle_ablation import shuffle_gain as reference

    if not callable(shuffle_gain):
        raise ExerciseFailed(f"pass your shuffle_gain function first, got {type(shuffle_gain).__name__}")
    lo, hi = groups_with_ablation()[0], groups_with_ablation()[-1]
    made_up = []
    for a, b in ((0.61, 0.55), (0.40, 0.47)):
        rows = [dict(r) for r in summary]
        for r in rows:
            if r["label"] in (label_for(lo, True), label_for(hi, True)):
                r["test_acc"] = a
            elif r["label"] in (label_for(lo, False), label_for(hi, False)):
                r["test_acc"] = b
        made_up.append(rows)
    for rows, what in ((summary, "your run's summary"), *((m, "a made-up summary") for m in made_up)):
        for g in (lo, hi):
            want = reference(rows, g)
            got = shuffle_gain(rows, g)
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise ExerciseFailed(f"shuffle_gain(summary, {g}) should return a number, got {got!r}") from None
            if abs(got - want) > 1e-9:
                hint = " — the sign is reversed: with the shuffle minus without" if abs(got + want) < 1e-9 else ""
                hint = hint or (" — keep it a fraction like test_acc (0.02 = 2 points)"
                                if abs(got - 100 * want) < 1e-6 else "")
                raise ExerciseFailed(f"shuffle_gain on {what}, g = {g}: expected {want:+.4f}, got {got:+.4f}{hint}")
    if not callable(more_at_larger_g):
        raise ExerciseFailed(f"pass your more_at_larger_g function, got {type(more_at_larger_g).__name__}")
    more_at_larger_g = more_at_larger_g(summary)
    if not isinstance(more_at_larger_g, bool):
        raise ExerciseFailed(f"more_at_larger_g should be True or False, computed from your run, got {more_at_larger_g!r}")
    g_lo, g_hi = reference(summary, lo), reference(summary, hi)
    truth = g_hi > g_lo
    if more_at_larger_g != truth:
        raise ExerciseFailed(f"in your run the shuffle gains {100 * g_hi:+.1f} points at g = {hi} and "
                             f"{100 * g_lo:+.1f} at g = {lo}, so more_at_larger_g is {truth}: compute it from "
                             f"shuffle_gain rather than from the paper")
    seeds = min(r["seeds"] for r in summary)
    return (f"gains {100 * g_hi:+.1f} points at g = {hi} and {100 * g_lo:+.1f} at g = {lo}: "
            f"{'more' if truth else 'not more'} at g = {hi} in this run"
            + ("" if seeds >= 2 else " (one seed: whether that is a finding needs the reference run's spread)"))

"""Chapter 04: group-conv counts and reach, channel shuffle steps, widgets, ShuffleNet V1 table, exercise checks."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from course.blocks import ShuffleV1Unit, channel_shuffle
from course import groups
from course.exercises import ExerciseFailed, check
from course.widgets import ch04_shufflenet_v1 as ch04


def test_group_conv_counts_fall_by_g():
    for g in (1, 2, 3, 4, 8):
        c = groups.group_conv_counts(240, 240, g, kernel=1, size=28) if 240 % g == 0 else None
        if c is None:
            continue
        assert c["params"] == 240 * 240 // g
        assert c["mult_adds"] == 240 * 240 // g * 28 * 28
        assert c["reduction"] == pytest.approx(g)


def test_group_conv_counts_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups=7"):
        groups.group_conv_counts(240, 240, 7)


def test_channel_reach_of_one_group_conv_is_block_diagonal():
    reach = groups.channel_reach(nn.Conv2d(12, 12, 1, groups=3, bias=False), 12)
    assert reach.shape == (12, 12)
    assert np.array_equal(reach, np.kron(np.eye(3), np.ones((4, 4))).astype(bool))


def test_group_reach_without_and_with_shuffle():
    assert np.array_equal(groups.group_reach(12, 3, 2, shuffle=False), np.eye(3))
    assert np.array_equal(groups.group_reach(12, 3, 2, shuffle=True), np.ones((3, 3)))
    # one channel per group: the shuffle is the identity, nothing mixes
    assert np.array_equal(groups.group_reach(3, 3, 2, shuffle=True), np.eye(3))


def test_reached_groups_when_groups_are_too_narrow():
    # 8 channels, g = 4: group 0's two channels land in groups 0 and 2 after the shuffle
    assert groups.reached_groups(8, 4, 0, shuffle=True) == {0, 2}
    assert groups.reached_groups(8, 4, 0, shuffle=False) == {0}
    assert groups.reached_groups(16, 4, 3, shuffle=True) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="input_group"):
        groups.reached_groups(8, 4, 4, shuffle=True)


def test_shuffle_steps_end_at_the_library_shuffle():
    steps = ch04.shuffle_steps(12, 3)
    assert steps["reshaped"].shape == (3, 4)
    assert steps["transposed"].shape == (4, 3)
    ids = torch.arange(12).view(1, 12, 1, 1)
    assert steps["flattened"].tolist() == channel_shuffle(ids, 3).flatten().tolist()
    with pytest.raises(ValueError, match="groups=5"):
        ch04.shuffle_steps(12, 5)


def test_all_library_shuffles_agree():
    impls = ch04.shuffle_implementations()
    assert "torchvision shufflenetv2.channel_shuffle" in impls
    x = torch.randn(2, 24, 3, 3)
    ref = channel_shuffle(x, 4)
    for name, fn in impls.items():
        assert torch.equal(fn(x, 4), ref), name


def test_group_conv_widget_follows_groups():
    h = ch04.group_conv_widget(channels=12, groups=3)
    assert h.state()["inputs_per_output"] == 4
    assert h.state()["connections"] == 48
    h.controls["groups"].value = 6
    assert h.state()["inputs_per_output"] == 2
    assert h.state()["params"] == 240 * 240 // 6
    with pytest.raises(ValueError, match="groups"):
        ch04.group_conv_widget(groups=5)


def test_mixing_widget_follows_controls():
    h = ch04.mixing_widget(groups=3, channels_per_group=4, depth=2)
    assert h.state()["min_groups_seen"] == {False: 1, True: 3}
    h.controls["depth"].value = 1
    assert h.state()["min_groups_seen"] == {False: 1, True: 1}
    h.controls["depth"].value = 2
    h.controls["groups"].value = 4
    h.controls["channels_per_group"].value = 2
    assert h.state()["min_groups_seen"][True] == 2
    assert h.state()["shuffle"].shape == (4, 4)


def test_shuffle_widget_follows_controls():
    h = ch04.shuffle_widget(channels=12, groups=3)
    assert h.state()["order"] == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    h.controls["groups"].value = 4
    assert h.state()["order"] == [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
    h.controls["channels"].value = 6
    assert "error" in h.state()


def test_compare_with_reference_same_block():
    ref = ShuffleV1Unit(48, 48, 3, 1)
    mine = ShuffleV1Unit(48, 48, 3, 1)
    result = ch04.compare_with_reference(mine, ref, (1, 48, 8, 8))
    assert result["max_abs_diff"] == 0.0
    assert result["params"] == result["reference_params"]


def test_v1_complexity_g3_matches_table1():
    row = ch04.v1_complexity(3)
    assert row["stage_channels"] == ch04.PAPER_STAGE_CHANNELS[3]
    assert row["mflops"] == pytest.approx(ch04.PAPER_COMPLEXITY[3], rel=0.03)
    with pytest.raises(ValueError, match="groups"):
        ch04.v1_complexity(5)


def test_format_v1_table_without_latency():
    row = {"groups": 3, "mflops": 137.5, "params_M": 1.87, "stage_channels": (240, 480, 960),
           "paper_mflops": 137, "paper_stage_channels": (240, 480, 960), "paper_top1_err": 32.6}
    text = ch04.format_v1_table([row])
    head, _, line, *notes = text.splitlines()
    assert head.split() == ["g", "MFLOPs", "paper", "params", "M", "stage", "2/3/4", "channels", "paper", "latency",
                            "ms", "paper", "err", "%"]
    assert line.split() == ["3", "137.5", "137", "1.870", "240/480/960", "240/480/960", "—", "32.6"]
    assert len(notes) == 1 and "Table 2" in notes[0]  # untimed: no latency line
    fig = ch04.plot_v1_table([row])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="groups"):
        ch04.v1_table(groups=(3, 5), measure_latency=False)


# ----------------------------------------------------------------------------- exercise checks

def shuffle_permutation(channels, groups):
    if groups < 1 or channels % groups:
        raise ValueError(f"groups={groups} must divide channels={channels}")
    per = channels // groups
    return [g * per + i for i in range(per) for g in range(groups)]


def group_conv_cost(c_in, c_out, kernel, size, groups):
    params = kernel * kernel * (c_in // groups) * c_out
    return params, params * size * size


def reached_groups(channels, groups, input_group, shuffle):
    per = channels // groups
    after_first = range(input_group * per, (input_group + 1) * per)
    if shuffle:
        after_first = [(c % per) * groups + c // per for c in after_first]
    return {c // per for c in after_first}


def test_reference_solutions_pass(capsys):
    check("4.1", shuffle_permutation)
    check("4.2", group_conv_cost)
    check("4.3", reached_groups)
    assert capsys.readouterr().out.count("passed") == 3


def test_4_1_wrong_answers_say_why():
    with pytest.raises(ExerciseFailed, match="expected"):
        check("4.1", lambda c, g: list(range(c)))
    with pytest.raises(ExerciseFailed, match="not a permutation"):
        check("4.1", lambda c, g: [0] * c)

    def no_validation(channels, groups):
        per = max(channels // max(groups, 1), 1)
        return [g * per + i for i in range(per) for g in range(groups)][:channels] if channels % max(groups, 1) == 0 \
            else list(range(channels))
    with pytest.raises(ExerciseFailed, match="ValueError"):
        check("4.1", no_validation)


def test_4_1_unfinished_says_not_done():
    def todo(channels, groups):
        raise NotImplementedError()
    with pytest.raises(ExerciseFailed, match="not done yet"):
        check("4.1", todo)


def test_4_2_wrong_answers_say_why():
    with pytest.raises(ExerciseFailed, match="params expected"):
        check("4.2", lambda ci, co, k, s, g: (k * k * ci * co, k * k * ci * co * s * s))
    with pytest.raises(ExerciseFailed, match="mult-adds expected"):
        check("4.2", lambda ci, co, k, s, g: (k * k * ci // g * co, k * k * ci // g * co * s))
    with pytest.raises(ExerciseFailed, match="should return"):
        check("4.2", lambda ci, co, k, s, g: 3)


def test_4_3_wrong_answers_say_why():
    with pytest.raises(ExerciseFailed, match="expected"):
        check("4.3", lambda c, g, i, s: set(range(g)) if s else {i})


def test_describe_latency_from_rows():
    from course.measure import LatencyResult

    def lat(ms):
        return LatencyResult(ms, 0.1, [ms], "cpu", "CPU (test)", 1, 1, "float32", "x")
    rows = [{"groups": 1, "mflops": 143.0, "latency": lat(10.0)}, {"groups": 8, "mflops": 138.0, "latency": lat(15.0)}]
    text = ch04.describe_latency(rows)
    assert "1.50×" in text and "g = 8" in text and "3.5 %" in text
    assert "nothing to compare" in ch04.describe_latency(rows[:1])


# --------------------------------------------------------------------------- the trained ablation

from course import shuffle_ablation as sh  # noqa: E402
from course.ablations import ABLATIONS  # noqa: E402


def _summary(acc_by, std=0.005, seeds=3):
    """A made-up summary of ch04_shuffle: accuracy per (g, shuffle); mult-adds grow a little with g."""
    rows = []
    for v in ABLATIONS[sh.NAME].variants:
        g, shuffle = dict(v.model_kwargs)["groups"], "no_shuffle" not in v.surgery
        rows.append(dict(label=v.label, key=v.key, seeds=seeds, test_acc=acc_by.get((g, shuffle), 0.5),
                         test_acc_std=std, params=1000, macs=2_000_000 + 10_000 * g, imgsz=48, wall_time_s=1.0))
    return rows


def test_label_for_finds_variants_by_what_they_are():
    for v in ABLATIONS[sh.NAME].variants:
        g = dict(v.model_kwargs)["groups"]
        assert sh.label_for(g, "no_shuffle" not in v.surgery) == v.label
    with pytest.raises(ValueError, match="groups=5"):
        sh.label_for(5)
    assert sh.groups_with_ablation() and all(sh.label_for(g, False) != sh.label_for(g, True)
                                               for g in sh.groups_with_ablation())


def test_shuffle_rows_and_verdicts():
    lo, hi = sh.groups_with_ablation()[0], sh.groups_with_ablation()[-1]
    s = _summary({(lo, True): 0.60, (lo, False): 0.59, (hi, True): 0.62, (hi, False): 0.50}, std=0.01)
    rows = {r["g"]: r for r in sh.shuffle_rows(s)}
    assert rows[hi]["gain (points)"] == pytest.approx(12) and rows[hi]["real"]
    assert rows[lo]["gain (points)"] == pytest.approx(1) and not rows[lo]["real"]
    assert rows[hi]["paper gain (points)"] == pytest.approx(
        ch04.PAPER_SHUFFLE_EFFECT[("0.5×", hi)][0] - ch04.PAPER_SHUFFLE_EFFECT[("0.5×", hi)][1])
    text = sh.describe_shuffle(s)
    assert f"help more at g = {hi} than at g = {lo}? Ours: yes" in text and "not yet a finding" not in text
    flipped = sh.describe_shuffle(_summary({(lo, True): 0.70, (lo, False): 0.50, (hi, True): 0.60, (hi, False): 0.59},
                                           seeds=1, std=float("nan")))
    assert "Ours: no" in flipped and "not yet a finding" in flipped
    assert sh.shuffle_gain(s, hi) == pytest.approx(0.12)


def test_groups_rows_show_the_budget_and_the_paper():
    s = _summary({(g, True): 0.5 + 0.01 * g for g in (1, 2, 3, 4, 8)})
    rows = sh.groups_rows(s)
    assert [r["g"] for r in rows] == sorted(r["g"] for r in rows) and rows[0]["g"] == 1
    assert rows[-1]["paper 0.5× top-1 %"] == pytest.approx(100 - ch04.PAPER_TOP1_ERR["0.5×"][rows[-1]["g"]])
    macs = [2.0 + 0.01 * r["g"] for r in rows]
    assert sh.macs_spread(s) == pytest.approx((max(macs) - min(macs)) / (sum(macs) / len(macs)))
    text = sh.describe_groups(s)
    assert f"Best g here: {rows[-1]['g']}" in text and "roughly fixed" in text


def test_plot_shuffle_with_and_without_reference():
    s = _summary({})
    assert len(sh.plot_shuffle(s).axes) == 3
    assert len(sh.plot_shuffle(s, reference=_summary({(3, True): 0.7})).axes) == 3


def test_exercise_44_both_ways():
    lo, hi = sh.groups_with_ablation()[0], sh.groups_with_ablation()[-1]
    for acc in ({(lo, True): 0.6, (lo, False): 0.5, (hi, True): 0.6, (hi, False): 0.58},
                {(lo, True): 0.6, (lo, False): 0.59, (hi, True): 0.6, (hi, False): 0.4}):
        s = _summary(acc)
        truth = sh.shuffle_gain(s, hi) > sh.shuffle_gain(s, lo)
        check("4.4", sh.shuffle_gain, lambda x: sh.shuffle_gain(x, hi) > sh.shuffle_gain(x, lo), s)
        with pytest.raises(ExerciseFailed, match=f"more_at_larger_g is {truth}"):
            check("4.4", sh.shuffle_gain, lambda x: not truth, s)
    with pytest.raises(ExerciseFailed, match="sign is reversed"):
        check("4.4", lambda x, g: -sh.shuffle_gain(x, g), lambda x: True, s)
    with pytest.raises(ExerciseFailed, match="fraction"):
        check("4.4", lambda x, g: 100 * sh.shuffle_gain(x, g), lambda x: True, s)
    with pytest.raises(ExerciseFailed, match="True or False"):
        check("4.4", sh.shuffle_gain, lambda x: "yes", s)

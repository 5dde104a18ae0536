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

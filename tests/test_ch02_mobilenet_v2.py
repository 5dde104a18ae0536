"""Chapter 02 (MobileNet V2): manifold experiment, block tensors, widgets, exercises."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from course import manifold, memory  # noqa: E402
from course.exercises import ExerciseFailed, check  # noqa: E402
from course.blocks import InvertedResidual  # noqa: E402
from course.exercises.ch02 import compare_inverted_residual, reference_smallest_safe_n  # noqa: E402
from course.models import MobileNetV2  # noqa: E402
from course.widgets import ch02_mobilenet_v2 as ch02  # noqa: E402


def test_relu_roundtrip_survives_only_in_high_dimensions():
    low, high = manifold.relu_roundtrip(2, seed=0), manifold.relu_roundtrip(30, seed=0)
    assert low["recovered_fraction"] < 0.5
    assert high["recovered_fraction"] == 1.0
    assert high["projected"].shape == high["points"].shape
    # A kept point really is recovered exactly from the coordinates ReLU let through.
    i = int(high["recoverable"].argmax())
    active = high["relu"][i] > 0
    x = torch.linalg.lstsq(torch.tensor(high["T"][active]), torch.tensor(high["relu"][i][active])).solution
    assert torch.allclose(x, torch.tensor(high["points"][i]), atol=1e-8)
    with pytest.raises(ValueError, match="n must be"):
        manifold.relu_roundtrip(1)


@pytest.mark.parametrize("n, seed", [(2, 0), (3, 1), (5, 2)])
def test_kept_means_the_drawn_map_is_one_to_one_there(n, seed):
    """Differentiate the drawn map x -> T+ReLU(Tx) numerically: it keeps a 2-D neighbourhood (|det J| > 0)
    exactly at the points counted as kept, and flattens it (det J = 0) at the collapsed ones."""
    r = manifold.relu_roundtrip(n, seed)
    T, T_pinv, x = r["T"], np.linalg.pinv(r["T"]), r["points"]
    drawn = lambda p: np.maximum(p @ T.T, 0) @ T_pinv.T  # noqa: E731
    assert np.allclose(drawn(x), r["projected"])
    eps = 1e-7
    away_from_kinks = np.abs(x @ T.T).min(axis=1) > 1e-4
    J = np.stack([(drawn(x + eps * e) - drawn(x)) / eps for e in np.eye(2)], axis=2)
    det = np.abs(np.linalg.det(J))
    kept = r["recoverable"]
    assert 0 < kept.sum() < len(kept)  # both kinds occur, so both directions are tested
    assert (det[kept & away_from_kinks] > 1e-3).all()
    assert (det[~kept & away_from_kinks] < 1e-6).all()


def test_the_picture_colours_exactly_the_points_the_number_counts():
    results = [manifold.relu_roundtrip(n, seed=0) for n in (3, 5)]
    fig = ch02.plot_roundtrip(results)
    for ax, r in zip(fig.axes, results):
        grey, coloured = (c.get_offsets() for c in ax.collections)
        ok = r["recoverable"]
        assert np.allclose(coloured, r["projected"][ok]) and np.allclose(grey, r["projected"][~ok])
        share = len(coloured) / (len(coloured) + len(grey))
        assert ax.get_title().endswith(f"{100 * share:.0f} % kept")
    matplotlib.pyplot.close(fig)


def test_block_tensors_inverted_vs_classic():
    inv = memory.block_tensors("inverted", 24, 6, 56, stride=2)
    assert [r["channels"] for r in inv] == [24, 144, 144, 24]
    assert [r["size"] for r in inv] == [56, 56, 28, 28]
    assert inv[0]["kB_16bit"] == 56 * 56 * 24 * 2 / 1000
    cls = memory.block_tensors("classic", 24, 6, 56)
    assert [r["channels"] for r in cls] == [144, 24, 24, 144]
    # Table 3's MobileNet V2 row at 112×112: 16 channels, about 400 kB.
    assert round(memory.block_tensors("inverted", 16, 6, 112)[0]["kB_16bit"]) == 401
    with pytest.raises(ValueError, match="kind"):
        memory.block_tensors("wide", 24, 6, 56)


def test_manifold_widget_updates():
    h = ch02.manifold_widget(n=2, seed=0)
    assert h.state()["n"] == 2 and h.state()["recovered_fraction"] < 0.5
    h.controls["n"].value = 15
    assert h.state()["n"] == 15 and h.state()["recovered_fraction"] == 1.0


def test_block_widget_updates():
    h = ch02.block_widget(channels=24, t=6, size=56)
    assert [r["channels"] for r in h.state()["inverted"]] == [24, 144, 144, 24]
    h.controls["t"].value = 2
    s = h.state()
    assert [r["channels"] for r in s["inverted"]] == [24, 48, 48, 24]
    assert s["skip_kB"]["classic"] == 2 * s["skip_kB"]["inverted"]


def test_plots_build():
    for fig in (ch02.plot_relu6(), ch02.plot_roundtrip([manifold.relu_roundtrip(n) for n in (2, 30)])):
        assert fig.axes
        matplotlib.pyplot.close(fig)


# --- exercises -------------------------------------------------------------------------------

class _IR(nn.Module):
    """A learner's inverted residual; flags break one rule each."""

    def __init__(self, k, k_out, stride, t, never_residual=False, relu_after_project=False):
        super().__init__()
        hidden = k * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(k, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, k_out, 1, bias=False), nn.BatchNorm2d(k_out)]
        if relu_after_project:
            layers.append(nn.ReLU6())
        self.conv = nn.Sequential(*layers)
        self.res = not never_residual and stride == 1 and k == k_out

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.res else y


def test_compare_inverted_residual_both_ways():
    compare_inverted_residual(_IR)
    compare_inverted_residual(InvertedResidual)
    with pytest.raises(ExerciseFailed, match="must add its input"):
        compare_inverted_residual(lambda *a: _IR(*a, never_residual=True))
    with pytest.raises(ExerciseFailed, match="linear"):
        compare_inverted_residual(lambda *a: _IR(*a, relu_after_project=True))
    with pytest.raises(ExerciseFailed, match="parameters"):
        compare_inverted_residual(lambda k, k_out, s, t: _IR(k, k_out, s, t + 1))


class _ShortV2(MobileNetV2):
    cfg = MobileNetV2.cfg[:-1] + [(6, 320, 2, 1)]


def test_exercise_2_1_both_ways():
    check("2.1", MobileNetV2)
    with pytest.raises(ExerciseFailed, match="17 bottlenecks"):
        check("2.1", _ShortV2)


def _memory(k, t, size, stride):
    out = (size - 1) // stride + 1
    return [(c, s, c * s * s * 2 / 1000) for c, s in ((k, size), (k * t, size), (k * t, out), (k, out))]


def test_exercise_2_2_both_ways():
    check("2.2", _memory)
    with pytest.raises(ExerciseFailed, match="tensor 2"):
        check("2.2", lambda k, t, size, stride: [(c, size, c * size * size * 2 / 1000) for c in (k, k * t, k * t, k)])


def test_exercise_2_3_both_ways():
    check("2.3", reference_smallest_safe_n)
    with pytest.raises(ExerciseFailed, match="expected 15"):
        check("2.3", lambda threshold, seeds: 30)
    assert math.isclose(manifold.relu_roundtrip(15)["recovered_fraction"], 1.0)


# --- Section 6: the linear bottleneck on a trained network (made-up runs keep these fast) ----------

from course import mobilenet_ablations as abl  # noqa: E402
from course.ablations import ABLATIONS  # noqa: E402
from course.exercises.ch02 import reference_bottleneck_verdict  # noqa: E402


def _bottleneck(linear, relu6, no_shortcut, std=float("nan"), seeds=1):
    names = abl.bottleneck_labels()
    accs = dict(linear=linear, relu6=relu6, no_shortcut=no_shortcut)
    return [dict(label=names[k], key=k, test_acc=a, test_acc_std=std, seeds=seeds, params=700_000, macs=2e6, imgsz=48,
                 wall_time_s=1.0, latency_ms=3.0) for k, a in accs.items()]


def test_bottleneck_labels_are_found_by_surgery():
    names = abl.bottleneck_labels()
    variants = {v.label: v for v in ABLATIONS["ch02_bottleneck"].variants}
    assert variants[names["linear"]].surgery == ()
    assert variants[names["relu6"]].surgery == ("relu6_after_projection",)
    assert variants[names["no_shortcut"]].surgery == ("no_shortcut",)


def test_winner_and_findings_respect_the_spread():
    names = abl.bottleneck_labels()
    real = _bottleneck(0.70, 0.60, 0.69, std=0.01, seeds=3)
    assert abl.winner(real, names["relu6"], names["linear"]) == names["linear"]
    assert abl.winner(real, names["no_shortcut"], names["linear"]) is None
    lines = abl.bottleneck_findings(_bottleneck(0.70, 0.60, 0.40), real)
    assert len(lines) == 4
    assert lines[0].startswith("Fig. 6a (your run)") and "one seed measures no spread" in lines[0]
    assert lines[2].startswith("Fig. 6a (reference)") and f"Verdict: {names['linear']} wins" in lines[2]
    assert "within twice the seed-to-seed spread" in lines[3]
    table = abl.bottleneck_table(_bottleneck(0.70, 0.60, 0.40), real)
    assert "-10.0" in table and "70.0 ± 1.0" in table
    fig = abl.plot_bottleneck(_bottleneck(0.70, 0.60, 0.40), real)
    assert len(fig.axes[0].patches) == 6
    matplotlib.pyplot.close(fig)


def _ignores_spread(summary):
    names = abl.bottleneck_labels()
    rows = {r["label"]: r for r in summary}
    return "linear" if rows[names["linear"]]["test_acc"] > rows[names["relu6"]]["test_acc"] else "relu6"


def _ignores_seeds(summary):
    names = abl.bottleneck_labels()
    rows = {r["label"]: r for r in summary}
    lin, relu = rows[names["linear"]], rows[names["relu6"]]
    spread = 0 if math.isnan(lin["test_acc_std"]) else lin["test_acc_std"]
    if abs(lin["test_acc"] - relu["test_acc"]) <= 2 * spread:
        return "undecided"
    return "linear" if lin["test_acc"] > relu["test_acc"] else "relu6"


def test_exercise_2_4_both_ways(capsys):
    mine, ref = _bottleneck(0.5, 0.6, 0.5), _bottleneck(0.75, 0.70, 0.7, std=0.01, seeds=3)
    check("2.4", reference_bottleneck_verdict)
    check("2.4", reference_bottleneck_verdict, mine, prediction="relu6", reference=ref)
    out = capsys.readouterr().out
    assert "your run: undecided" in out and "the reference run: linear" in out
    assert "you predicted 'relu6': the reference run says 'linear'" in out
    check("2.4", reference_bottleneck_verdict, ref, prediction="linear")
    assert "your run agrees" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="not more than twice the spread"):
        check("2.4", _ignores_spread, mine)
    with pytest.raises(ExerciseFailed, match="one seed there is no spread"):
        check("2.4", _ignores_seeds, mine)
    with pytest.raises(ExerciseFailed, match="prediction must be one of"):
        check("2.4", reference_bottleneck_verdict, mine, prediction="ReLU")

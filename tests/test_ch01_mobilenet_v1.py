"""Chapter 01 (MobileNet V1): cost formulas vs fvcore, Table 2/3 reproduction, widgets, exercises."""

import math

import matplotlib
import pytest
from torch import nn

matplotlib.use("Agg")

from course.exercises import ExerciseFailed, check  # noqa: E402
from course.exercises.ch01 import (  # noqa: E402
    PAPER_SHALLOW,
    ShallowMobileNetV1,
    reference_predict_at_resolution,
    reference_width_for_budget,
)
from course.measure import count_flops, count_params, flops_by_module  # noqa: E402
from course.models import MobileNetV1  # noqa: E402
from course.widgets import ch01_mobilenet_v1 as ch01  # noqa: E402


@pytest.mark.parametrize("k,m,n,size", [(3, 32, 64, 14), (5, 16, 8, 9), (1, 8, 8, 7)])
def test_formula_matches_fvcore(k, m, n, size):
    c = ch01.separable_cost(k, m, n, size)
    fv = ch01.fvcore_cost(k, m, n, size)
    for kind in ("standard", "separable"):
        assert fv[kind] == c[kind]
    assert math.isclose(c["ratio"], c["ratio_formula"])


def test_separable_cost_rejects_bad_input():
    with pytest.raises(ValueError, match="in_channels"):
        ch01.separable_cost(3, 0, 8, 7)
    with pytest.raises(ValueError, match="kernel"):
        ch01.fvcore_cost(2, 8, 8, 7)


def test_table3_walk_matches_paper():
    rows = ch01.table3_walk(verify=True)
    assert [r["size"] for r in rows] == [14, 14, 14, 10]
    for r in rows:
        assert math.isclose(r["mult_adds_M"], r["fvcore_mult_adds_M"])
        assert abs(r["mult_adds_M"] - r["paper_mult_adds_M"]) / r["paper_mult_adds_M"] < 0.01
        assert abs(r["params_M"] - r["paper_params_M"]) < 0.006


def test_multiplier_cost_near_paper():
    c = ch01.multiplier_cost(1.0, 224)
    assert round(c["mult_adds_M"]) == 569
    assert round(c["params_M"], 1) == 4.2
    assert c["params_with_bn_M"] > c["params_M"]
    small = ch01.multiplier_cost(0.5, 160)
    assert abs(small["mult_adds_M"] - 76) < 1 and small["paper"]["mult_adds_M"] == 76
    assert ch01.multiplier_cost(0.75, 128)["paper"] is None
    with pytest.raises(ValueError, match="alpha"):
        ch01.multiplier_cost(0.6, 224)


def test_cost_by_layer_type_close_to_table2():
    shares = ch01.cost_by_layer_type()
    assert set(shares) == set(ch01.PAPER_TABLE2)
    assert math.isclose(sum(s["mult_adds_pct"] for s in shares.values()), 100)
    for kind, s in shares.items():
        assert abs(s["params_pct"] - s["paper_params_pct"]) < 0.1, kind
        if kind != "Conv 3×3":
            assert abs(s["mult_adds_pct"] - s["paper_mult_adds_pct"]) < 0.1, kind
    # The paper's 1.19 % for the first conv makes its column sum to 99.29 %; the other three
    # rows imply 1.91 %, which is what the layer costs (3·3·3·32·112² = 10.8M of 568.8M).
    implied = 100 - sum(v[0] for k, v in ch01.PAPER_TABLE2.items() if k != "Conv 3×3")
    assert abs(shares["Conv 3×3"]["mult_adds_pct"] - implied) < 0.1
    fig = ch01.plot_layer_types(shares)
    assert len(fig.axes) == 2
    matplotlib.pyplot.close(fig)


def test_cost_widget_updates_on_control_change():
    h = ch01.cost_widget(kernel=3, in_channels=32, out_channels=32, size=7)
    assert h.state()["fvcore_agrees"]
    before = h.state()["bars_M"]["standard"]
    h.controls["out_channels"].value = 64
    after = h.state()
    assert after["standard"]["mult_adds"] == 3 * 3 * 32 * 64 * 7 * 7
    assert math.isclose(after["bars_M"]["standard"], 2 * before)
    assert after["fvcore_agrees"]
    h.controls["verify"].value = False
    h.controls["kernel"].value = 5
    assert "fvcore" not in h.state() and h.state()["standard"]["params"] == 25 * 32 * 64


def test_multiplier_widget_updates_and_shows_paper():
    h = ch01.multiplier_widget(alpha=1.0, resolution=128, measure=False)
    assert h.state()["paper"]["mult_adds_M"] == 186
    h.controls["alpha"].value = 0.75
    s = h.state()
    assert s["alpha"] == 0.75 and s["paper"] is None
    h2 = ch01.multiplier_widget(alpha=0.25, resolution=128, measure=True, min_run_time=0.01)
    r = h2.state()["latency"]
    assert r.device == "cpu" and r.batch == 1 and r.median_ms > 0


# --- exercises -------------------------------------------------------------------------------

def _good_mult_adds(k, m, n, size):
    return k * k * m * size * size + m * n * size * size


def _block(m, n, stride):
    return nn.Sequential(nn.Conv2d(m, m, 3, stride, 1, groups=m, bias=False), nn.BatchNorm2d(m), nn.ReLU(),
                         nn.Conv2d(m, n, 1, bias=False), nn.BatchNorm2d(n), nn.ReLU())


class _V1(nn.Module):
    """A learner's MobileNet V1; ``last_stride=2`` copies Table 1's typo, ``act=False`` drops the ReLUs,
    ``keep`` is how many of the five 14×14×512 layers the shallow variant keeps (the paper: none)."""

    def __init__(self, width_mult=1.0, num_classes=1000, shallow=False, last_stride=1, act=True, keep=0):
        super().__init__()
        c = lambda ch: max(8, int(ch * width_mult))  # noqa: E731
        layers = [nn.Conv2d(3, c(32), 3, 2, 1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU()]
        m = c(32)
        middle = [(512, 1)] * (keep if shallow else 5)
        cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + middle + [(1024, 2), (1024, last_stride)]
        for out, s in cfg:
            layers.append(_block(m, c(out), s))
            m = c(out)
        if not act:
            layers = [x for x in layers if not isinstance(x, nn.ReLU)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(m, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_exercise_1_1_both_ways():
    check("1.1", _good_mult_adds)
    with pytest.raises(ExerciseFailed, match="standard convolution"):
        check("1.1", lambda k, m, n, s: k * k * m * n * s * s)
    with pytest.raises(ExerciseFailed, match="not done yet"):
        def todo(*a):
            raise NotImplementedError()
        check("1.1", todo)


def test_exercise_1_2_both_ways():
    check("1.2", _V1)
    with pytest.raises(ExerciseFailed, match="typo"):
        check("1.2", lambda width_mult, num_classes, shallow: _V1(width_mult, num_classes, shallow, last_stride=2))
    with pytest.raises(ExerciseFailed, match="parameters"):
        check("1.2", lambda width_mult, num_classes, shallow: _V1(width_mult * 0.9, num_classes, shallow))
    with pytest.raises(ExerciseFailed, match=r"shallow=True: expected 8 depthwise convs.*found 9"):
        check("1.2", lambda width_mult, num_classes, shallow: _V1(width_mult, num_classes, shallow, keep=1))
    with pytest.raises(ExerciseFailed, match="shallow=True: expected 8 depthwise convs"):
        check("1.2", lambda width_mult, num_classes, shallow: _V1(width_mult, num_classes))
    with pytest.raises(ExerciseFailed, match="should be an nn.Module"):
        check("1.2", lambda width_mult, num_classes, shallow: None)


def test_shallow_reference_is_the_papers_table5_model():
    """Five 14×14×512 separable layers fewer: the paper's Shallow MobileNet, 307 M mult-adds."""
    shallow, full = ShallowMobileNetV1(), MobileNetV1()
    assert len(shallow.features) == len(full.features) - 5
    assert round(count_flops(shallow) / 1e6) == PAPER_SHALLOW["mult_adds_M"]
    assert round(count_params(shallow) / 1e6, 1) == PAPER_SHALLOW["params_M"]


def test_exercise_1_4_both_ways():
    check("1.4", reference_predict_at_resolution)
    model = MobileNetV1()
    counted = count_flops(model, (1, 3, 160, 160))
    by_module = flops_by_module(model)
    assert reference_predict_at_resolution(160, by_module[""], by_module["classifier"], 1)[0] == pytest.approx(counted)
    wrong = {
        "not ρ": lambda r, t, fc, p: (t * r / 224, p),
        "FC layer": lambda r, t, fc, p: (t * (r / 224) ** 2, p),
        "filters do not depend": lambda r, t, fc, p: ((t - fc) * (r / 224) ** 2 + fc, p * (r / 224) ** 2),
        "pair": lambda r, t, fc, p: (t - fc) * (r / 224) ** 2 + fc,
    }
    for words, fn in wrong.items():
        with pytest.raises(ExerciseFailed, match=words):
            check("1.4", fn)
    with pytest.raises(ExerciseFailed, match="not done yet"):
        def todo(*a):
            raise NotImplementedError()
        check("1.4", todo)


def test_exercise_1_3_both_ways():
    check("1.3", reference_width_for_budget)
    with pytest.raises(ExerciseFailed, match="expected α"):
        check("1.3", lambda b, m, n, s: math.sqrt(b / (9 * m * s * s + m * n * s * s)))
    assert math.isclose(reference_width_for_budget(29.58e6, 512, 512, 14), 0.75, rel_tol=1e-3)

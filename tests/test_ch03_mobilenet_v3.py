"""Chapter 03 (MobileNet V3): SE gates and cost, activations, redesigned layers, model table, widgets, exercises."""

import dataclasses
import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course import activations, se
from course import mobilenet_v3_costs as v3costs
from course.blocks import SqueezeExcitation, make_divisible_round
from course.exercises import ExerciseFailed, check
from course.measure import RatioResult, count_flops, count_params
from course.models import MOBILENET_V3_SMALL, MobileNetV3
from course.widgets import ch03_mobilenet_v3 as ch03


# --------------------------------------------------------------------------- SE widgets


def test_synthetic_image_is_normalised_and_kinds_differ():
    imgs = {k: se.synthetic_image(k, 64) for k in se.IMAGE_KINDS}
    for img in imgs.values():
        assert img.shape == (1, 3, 64, 64)
        assert torch.allclose(img.mean((2, 3)), torch.zeros(1, 3), atol=1e-4)
    assert not torch.allclose(imgs["stripes"], imgs["rings"])
    with pytest.raises(ValueError, match="kind"):
        se.synthetic_image("cat")
    with pytest.raises(ValueError, match="size"):
        se.synthetic_image("rings", 8)


def test_se_gates_equal_the_modules_scale_on_its_input():
    torch.manual_seed(0)
    model = se.calibrate_batchnorm(MobileNetV3("small"), se.synthetic_image("noise", 96)).eval()
    name = "features.1.block.1"
    captured = {}
    model.get_submodule(name).register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0]))
    x = se.synthetic_image("rings", 96)
    with torch.no_grad():
        model(x)
    gates = se.se_gates(model, x, name)
    want = model.get_submodule(name).scale(captured["x"])[0, :, 0, 0]
    assert gates.shape == (16,)
    assert torch.allclose(gates, want)
    assert float(gates.min()) >= 0 and float(gates.max()) <= 1
    with pytest.raises(ValueError, match="name"):
        se.se_gates(model, x, "features.0")


def test_calibrated_gates_spread_and_depend_on_the_image():
    handle = ch03.se_gate_widget(size=96)
    first = handle.state()
    assert first["block"] == "features.1.block.1" and first["gates"].shape == (16,)
    assert first["gates"].max() - first["gates"].min() > 0.05
    handle.controls["image"].value = "noise"
    assert handle.state()["image"] == "noise"
    assert not (handle.state()["gates"] == first["gates"]).all()
    handle.controls["block"].value = "features.10.block.2"
    assert handle.state()["gates"].shape == (576,)


def test_se_cost_matches_formula_and_paper_ratio():
    cost = se.se_cost("large", 10, 4)  # Table 1 row 11: 80 → 480 → 112, SE, 14×14
    c, s = 480, make_divisible_round(480 // 4, 8)
    assert cost["squeeze"] == s == 120
    assert cost["se_params"] == 2 * c * s + c + s
    assert cost["se_madds"] == count_flops(SqueezeExcitation(c, s), (1, c, 14, 14))
    bigger = se.se_cost("large", 10, 1)
    assert bigger["se_params"] > cost["se_params"] and bigger["squeeze"] == 480
    with pytest.raises(ValueError, match="no SE"):
        se.se_cost("large", 0, 4)
    with pytest.raises(ValueError, match="reduction"):
        se.se_cost("large", 10, 3)


def test_network_se_params_at_the_papers_ratio_are_the_networks_own():
    model = MobileNetV3("small")
    in_network = sum(count_params(m) for m in se.se_modules(model).values())
    assert se.network_se_params("small", 4) == (in_network, count_params(model))
    smaller, total = se.network_se_params("small", 16)
    assert smaller < in_network and total == count_params(model) - in_network + smaller
    with pytest.raises(ValueError, match="reduction"):
        se.network_se_params("small", 3)
    with pytest.raises(ValueError, match="mode"):
        se.network_se_params("tiny", 4)


def test_se_cost_widget_follows_the_slider():
    handle = ch03.se_cost_widget()
    at4 = handle.state()
    assert at4["reduction"] == 4
    assert at4["network_params"] == count_params(MobileNetV3(at4["mode"]))
    handle.controls["reduction"].value = 16
    at16 = handle.state()
    assert at16["squeeze"] == make_divisible_round(at16["expanded"] // 16, 8)
    assert at16["se_params"] < at4["se_params"]
    assert at16["network_params"] < at4["network_params"]
    curve = at16["param_share_curve"]
    assert curve == sorted(curve, reverse=True)


# --------------------------------------------------------------------------- activations


def test_max_deviation_known_values():
    d, at = activations.max_deviation("swish", "h-swish")
    assert d == pytest.approx(0.1423, abs=1e-4) and abs(at) == pytest.approx(3.0, abs=1e-3)
    d, _ = activations.max_deviation("sigmoid", "h-sigmoid")
    assert d == pytest.approx(0.0692, abs=1e-4)
    assert activations.max_deviation("ReLU", "ReLU6", -5, 5)[0] == 0.0
    with pytest.raises(ValueError, match="lo < hi"):
        activations.max_deviation("ReLU", "ReLU6", 1, 1)
    with pytest.raises(ValueError, match="'a'|a must"):
        activations.max_deviation("tanh", "ReLU")


def test_signed_gap_says_which_curve_is_below():
    d, at = activations.max_deviation("sigmoid", "h-sigmoid", 0.0, 8.0)
    assert at == pytest.approx(1.317, abs=1e-3)
    assert activations.signed_gap("sigmoid", "h-sigmoid", at) == pytest.approx(-d)
    assert activations.signed_gap("sigmoid", "h-sigmoid", -at) == pytest.approx(d)
    assert activations.signed_gap("swish", "h-swish", -3.0) == pytest.approx(3 / (1 + math.exp(3)))
    with pytest.raises(ValueError, match="b"):
        activations.signed_gap("ReLU", "tanh", 0.0)


def test_course_hard_activations_equal_torch():
    from course.blocks import HardSigmoid, HardSwish

    x = torch.linspace(-8, 8, 3201)
    assert torch.allclose(HardSwish()(x), F.hardswish(x), atol=1e-6)
    assert torch.allclose(HardSigmoid()(x), F.hardsigmoid(x), atol=1e-6)


def test_activation_widget_follows_controls():
    handle = ch03.activation_widget()
    assert set(handle.state()["max_deviation"]) == {"swish vs h-swish"}
    handle.controls["x_range"].value = (0.0, 2.0)
    narrow = handle.state()["max_deviation"]["swish vs h-swish"][0]
    assert narrow < 0.1423 - 0.01
    handle.controls["pair"].value = "all six"
    assert len(handle.state()["max_deviation"]) == 3
    assert handle.state()["names"] == list(activations.ACTIVATIONS)


def test_activation_costs_and_ratio_have_the_right_shape():
    rows = activations.activation_costs(4096, device="cpu", names=["ReLU (F.relu)", "h-swish fused (F.hardswish)"],
                                 min_run_time=0.01)
    assert [r.name for r in rows] == ["ReLU (F.relu)", "h-swish fused (F.hardswish)"]
    for r in rows:
        assert r.ns_per_element == pytest.approx(r.result.median_ms * 1e6 / 4096)
        assert r.result.device == "cpu"
    ratios = activations.hswish_vs_swish(4096, device="cpu", rounds=2)
    assert len(ratios) == 2 and all(v.ratio > 0 for v in ratios.values())
    fused = activations.fused_vs_formula(4096, device="cpu", rounds=2)
    assert fused.rounds == 2 and fused.q1 <= fused.ratio <= fused.q3
    with pytest.raises(ValueError, match="names"):
        activations.activation_costs(10, names=["gelu"])
    with pytest.raises(ValueError, match="numel"):
        activations.activation_costs(0)


def test_verdict_reads_the_iqr():
    mk = lambda r, q1, q3: RatioResult(r, q1, q3, 10, 1.0, 1.0)  # noqa: E731
    assert activations.verdict(mk(0.7, 0.65, 0.8)).startswith("h-swish is cheaper")
    assert "NOT cheaper" in activations.verdict(mk(1.5, 1.3, 1.6))
    assert activations.verdict(mk(0.98, 0.9, 1.1)).startswith("no clear difference")


# --------------------------------------------------------------------------- redesigned layers


def test_redesign_savings_are_computed_and_near_the_paper():
    last = v3costs.redesign_rows("last", measure=False)
    old, new, saving, paper = last
    assert old["MAdds (M)"] > new["MAdds (M)"]
    assert saving["MAdds (M)"] == pytest.approx(old["MAdds (M)"] - new["MAdds (M)"])
    assert 25 < saving["MAdds (M)"] < 40 and paper["MAdds (M)"] == 30
    first = v3costs.redesign_rows("first", measure=False)
    assert first[0]["params"] > first[2]["params"]
    assert 8 < first[3]["MAdds (M)"] < 13 and first[4]["MAdds (M)"] == 10
    with pytest.raises(ValueError, match="part"):
        v3costs.redesign_rows("middle")


def test_redesign_rows_measure_latency():
    rows = v3costs.redesign_rows("last", measure=True, network=False, min_run_time=0.01)
    assert all(r["part ms"] > 0 for r in rows[:2]) and "network ms" not in rows[0]


def test_network_ratio_reads_new_over_old():
    small, large = MobileNetV3("small"), MobileNetV3("large")
    r = v3costs._network_ratio(large, small, rounds=2)
    assert r.rounds == 2 and r.median_a_ms > 0 and r.median_b_ms > 0
    assert r.q1 <= r.ratio <= r.q3


def test_model_rows_match_torchvision():
    rows = v3costs.model_rows(measure=False)
    large, small = rows
    assert large["params"] == large["torchvision params"] == 5_483_032
    assert small["params"] == small["torchvision params"] == 2_542_856
    assert large["max |out diff|"] < 1e-5 and small["max |out diff|"] < 1e-5
    assert abs(large["MAdds (M)"] - 219) < 5 and abs(small["MAdds (M)"] - 56) < 2


# --------------------------------------------------------------------------- exercises


def hswish_slope_ok(x):
    return torch.where(x < -3, torch.zeros_like(x), torch.where(x > 3, torch.ones_like(x), x / 3 + 0.5))


class SEok(nn.Module):
    def __init__(self, channels):
        super().__init__()
        s = make_divisible_round(channels // 4, 8)
        self.fc1 = nn.Conv2d(channels, s, 1)
        self.fc2 = nn.Conv2d(s, channels, 1)

    def forward(self, x):
        g = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * F.relu6(g + 3) / 6


class SELinear(nn.Module):
    """Also correct: Linear layers in place of 1×1 convs."""

    def __init__(self, channels):
        super().__init__()
        s = make_divisible_round(channels // 4, 8)
        self.fc1, self.fc2 = nn.Linear(channels, s), nn.Linear(s, channels)

    def forward(self, x):
        g = F.hardsigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * g[:, :, None, None]


class SESigmoid(SEok):
    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class SENoSqueezeRule(SEok):
    def __init__(self, channels):
        nn.Module.__init__(self)
        self.fc1 = nn.Conv2d(channels, channels // 4, 1)
        self.fc2 = nn.Conv2d(channels // 4, channels, 1)


class SEPerPixel(SEok):
    def forward(self, x):
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(x))))


class SENotDone(nn.Module):
    def __init__(self, channels):
        super().__init__()
        raise NotImplementedError()


def test_exercise_31():
    check("3.1", hswish_slope_ok)
    sig = torch.sigmoid
    for wrong, words in ((F.hardsigmoid, "product rule"), (lambda x: sig(x) * (1 + x * (1 - sig(x))), "swish"),
                         (lambda x: x / 3 + 0.5, "outside"), (lambda x: x.mul_(2), "in place"),
                         (lambda x: 3, "tensor"), (lambda x: hswish_slope_ok(x) * 0.9, "slope is")):
        with pytest.raises(ExerciseFailed, match=words):
            check("3.1", wrong)
    with pytest.raises(ExerciseFailed, match="not done yet"):
        check("3.1", SENotDone)


def test_exercise_32():
    check("3.2", SEok)
    check("3.2", SELinear)
    check("3.2", lambda c: SqueezeExcitation(c))
    with pytest.raises(ExerciseFailed, match="h-sigmoid"):
        check("3.2", SESigmoid)
    with pytest.raises(ExerciseFailed, match=r"squeeze layer should have 8 outputs.*got 4"):
        check("3.2", SENoSqueezeRule)
    with pytest.raises(ExerciseFailed, match="one number per channel"):
        check("3.2", SEPerPixel)
    with pytest.raises(ExerciseFailed, match="not done yet"):
        check("3.2", SENotDone)


def se_parameters_ok(table, reduction=4):
    squeeze = [(c.expanded, make_divisible_round(c.expanded // reduction, 8)) for c in table if c.use_se]
    return sum(2 * e * s + e + s for e, s in squeeze)


def test_exercise_33():
    check("3.3", se_parameters_ok)
    in_network = sum(count_params(m) for m in MobileNetV3("small").modules() if isinstance(m, SqueezeExcitation))
    assert se_parameters_ok(MOBILENET_V3_SMALL) == in_network
    wrong = {
        "biases": lambda t, r=4: sum(2 * c.expanded * make_divisible_round(c.expanded // r, 8) for c in t if c.use_se),
        "rounded": lambda t, r=4: sum(2 * c.expanded * (c.expanded // r) + c.expanded + c.expanded // r
                                      for c in t if c.use_se),
        "use_se": lambda t, r=4: se_parameters_ok([dataclasses.replace(c, use_se=True) for c in t], r),
        "int": lambda t, r=4: float(se_parameters_ok(t, r)),
        "expected": lambda t, r=4: se_parameters_ok(t),
    }
    for words, fn in wrong.items():
        with pytest.raises(ExerciseFailed, match=words):
            check("3.3", fn)


def last_stage_change_ok(expanded, projected, last, size):
    removed = 9 * expanded + expanded * projected + projected * last
    return size * size * removed - expanded * last, expanded * last - removed


def test_exercise_34():
    check("3.4", last_stage_change_ok)
    madds, weights = last_stage_change_ok(960, 320, 1280, 7)
    rows = {r["version"]: r for r in v3costs.redesign_rows("last", measure=False)}
    old, new = rows["original last stage"], rows["efficient last stage"]
    # The parts' full counts differ from the pair by BN, biases and pooling only (under 0.1 M).
    assert abs((old["MAdds (M)"] - new["MAdds (M)"]) - madds / 1e6) < 0.1
    assert abs((new["params"] - old["params"]) - weights) < 1e4
    wrong = {
        "does not vanish": lambda e, p, l, s: (s * s * (9 * e + e * p + p * l), last_stage_change_ok(e, p, l, s)[1]),
        "depthwise": lambda e, p, l, s: (s * s * (e * p + p * l) - e * l, last_stage_change_ok(e, p, l, s)[1]),
        "new minus removed": lambda e, p, l, s: (last_stage_change_ok(e, p, l, s)[0],
                                                 -last_stage_change_ok(e, p, l, s)[1]),
        "pair": lambda e, p, l, s: last_stage_change_ok(e, p, l, s)[0],
        "expected": lambda e, p, l, s: last_stage_change_ok(e, p, l, 7),
    }
    for words, fn in wrong.items():
        with pytest.raises(ExerciseFailed, match=words):
            check("3.4", fn)

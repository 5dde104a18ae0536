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


# --------------------------------------------------------------------------- the trained ablation and its gates

from course import chapter_ablation, se_ablation  # noqa: E402
from course.ablations import ABLATIONS  # noqa: E402
from course.classify import recipe, recipe_lr, recipe_model  # noqa: E402


def _class_gates(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(30) % 3
    by_class = torch.rand(3, 4, generator=g)[labels]
    equal_means = torch.rand(10, 4, generator=g).repeat_interleave(3, 0)
    return labels, by_class, equal_means


def test_class_share_and_f_ratio_on_known_gates():
    labels, by_class, equal_means = _class_gates()
    assert se.class_share(by_class, labels) == pytest.approx(1.0)
    assert se.class_share(equal_means, labels) == pytest.approx(0.0, abs=1e-12)
    assert se.f_ratio(equal_means, labels) == pytest.approx(0.0, abs=1e-9)
    noisy = by_class + 0.1 * torch.rand(30, 4, generator=torch.Generator().manual_seed(1))
    assert 0.5 < se.class_share(noisy, labels) < 1 and se.f_ratio(noisy, labels) > 10
    with pytest.raises(ValueError, match="labels"):
        se.class_share(by_class, labels[:5])
    with pytest.raises(ValueError, match="gates"):
        se.class_share(by_class[0], labels)


def test_gate_separation_tells_class_structure_from_chance():
    labels, by_class, equal_means = _class_gates()
    rows = {r["layer"]: r for r in se.gate_separation({"a": by_class, "b": equal_means}, labels, permutations=50)}
    assert rows["a"]["by_class"] and not rows["b"]["by_class"]
    assert rows["a"]["channels"] == 4 and 0 <= rows["b"]["chance_share"] <= 1
    trained = list(rows.values())
    assert "do NOT" in se.compare_gates([rows["b"]], [rows["b"]])
    assert "training made the gates depend on the class" in se.compare_gates(trained, [rows["b"], rows["b"]])
    assert "barely learnt" in se.compare_gates(trained, trained, test_acc=0.11)


def test_gate_vectors_equal_se_gates_per_image():
    torch.manual_seed(0)
    images = torch.randn(3, 3, 32, 32)
    model = se.calibrate_batchnorm(recipe_model("mobilenet_v3_small"), images)
    gates = se.gate_vectors(model, images, batch_size=2)
    assert list(gates) == list(se.se_modules(model))
    for name in ("features.1.block.1", "features.9.block.2"):
        for i in range(3):
            assert torch.allclose(gates[name][i], se.se_gates(model, images[i:i + 1], name), atol=1e-6)
    with pytest.raises(ValueError, match="images"):
        se.gate_vectors(model, images[0])


def test_glyph_test_batch_is_the_recipes_test_split():
    from course.classify import _glyph_splits, DATA_KEYS

    x, y = chapter_ablation.glyph_test_batch("quick", 12)
    rec = recipe("quick")
    split = _glyph_splits(*(rec[k] for k in DATA_KEYS))["test"]
    assert x.shape == (12, 3, rec["imgsz"], rec["imgsz"]) and y.tolist() == [split[i][1] for i in range(12)]
    assert torch.equal(x[5], split[5][0])
    with pytest.raises(ValueError, match="n must be"):
        chapter_ablation.glyph_test_split("quick", rec["n_test"] + 1)


def test_gate_widget_runs_a_given_model_on_glyph_images():
    x, y = chapter_ablation.glyph_test_batch("quick", 20)
    model = se_ablation.random_twin(x)
    images = ch03.glyph_images(x, y, per_class=1)
    assert len(images) == 10 and all(t.shape == (1, *x.shape[1:]) for t in images.values())
    handle = ch03.se_gate_widget(model, images=images)
    first = handle.state()
    assert first["image"] == next(iter(images))
    handle.controls["image"].value = list(images)[3]
    assert not (handle.state()["gates"] == first["gates"]).all()
    with pytest.raises(ValueError, match="images"):
        ch03.se_gate_widget(model, images={})


def _summary(accs, stds, seeds=3, latency=None):
    labels = ABLATIONS[se_ablation.NAME].labels()
    rows = []
    for i, label in enumerate(labels):
        row = dict(label=label, key=label, seeds=seeds, test_acc=accs[i], test_acc_std=stds, params=1, macs=1, imgsz=32,
                   wall_time_s=1.0)
        if latency:
            row.update(latency_ms=latency[i], latency_iqr_ms=0.1)
        rows.append(row)
    return rows


def test_direction_rows_compare_with_the_paper_only_beyond_the_spread():
    # baseline first, then no SE, ReLU, swish (the order of ABLATIONS)
    rows = se_ablation.direction_rows(_summary([0.80, 0.70, 0.79, 0.80], 0.01, latency=[10.0, 8.0, 9.95, 12.0]))
    by = {r["variant"]: r for r in rows}
    labels = ABLATIONS[se_ablation.NAME].labels()
    assert by[labels[1]]["acc_agrees"] is True and by[labels[1]]["latency_agrees"] is True
    assert by[labels[2]]["acc_agrees"] is None  # 1 point at a 1-point spread: not a difference
    assert by[labels[2]]["latency_word"] == "about equal"
    assert by[labels[3]]["acc_agrees"] is True and by[labels[3]]["latency_word"] == "higher"
    worse = se_ablation.direction_rows(_summary([0.70, 0.80, 0.70, 0.60], 0.01))
    assert worse[0]["acc_agrees"] is False and worse[2]["acc_agrees"] is False
    one_seed = se_ablation.direction_rows(_summary([0.80, 0.70, 0.79, 0.80], float("nan"), seeds=1))
    assert all(r["acc_agrees"] is None for r in one_seed)
    assert "cannot yet be compared" in se_ablation.describe_directions(one_seed)


def test_training_plan_reads_the_recipe():
    text = chapter_ablation.training_plan(se_ablation.NAME, mode="quick")
    rec = recipe("quick")
    assert all(label in text for label in ABLATIONS[se_ablation.NAME].labels())
    assert f"{rec['n_train']:,} Glyphs-10" in text and f"{rec['time_budget_s']:.0f} s" in text
    assert f"lr {recipe_lr('mobilenet_v3_small', 'quick'):g} with" in text  # the family's rate, not the default
    with pytest.raises(ValueError, match="name must be one of"):
        chapter_ablation.training_plan("ch99")


def test_run_keeping_returns_the_trained_baseline_and_its_checkpoint(tmp_path):
    done = {}
    path = tmp_path / "kept.pt"
    rows, model = chapter_ablation.run_keeping("ch01_separable", path, mode="quick", done=done, progress=False)
    ab = ABLATIONS["ch01_separable"]
    assert [r["label"] for r in rows] == ab.labels() and path.is_file() and len(done) == len(ab.variants)
    assert not model.training
    x = torch.randn(2, 3, 32, 32)
    again = chapter_ablation.load_kept("ch01_separable", path)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x), atol=1e-6)
    rows2, model2 = chapter_ablation.run_keeping("ch01_separable", path, mode="quick", done=done, progress=False)
    assert rows2 == rows  # nothing retrained: the shared runs and the checkpoint are reused
    with torch.no_grad():
        assert torch.allclose(model2(x), model(x), atol=1e-6)


def test_cost_rows_and_reference_note():
    rows = chapter_ablation.cost_rows(_summary([0.8, 0.7, 0.8, 0.8], 0.01, latency=[10.0, 8.0, 10.0, 12.0]),
                                      ABLATIONS[se_ablation.NAME].baseline)
    assert rows[1]["Δ acc (points)"] == pytest.approx(-10) and rows[1]["Δ latency %"] == pytest.approx(-20)
    with pytest.raises(ValueError, match="baseline"):
        chapter_ablation.cost_rows(rows and _summary([0.8] * 4, 0.01), "nope")
    ref, note = chapter_ablation.reference_note(se_ablation.NAME)
    assert (ref is None) == ("No reference run" in note)


def test_exercise_35_both_ways():
    labels, by_class, equal_means = _class_gates()
    gates = {"early": equal_means, "late": by_class + 0.05}

    def best(g, lab):
        return max(g, key=lambda n: se.class_share(g[n], lab))
    check("3.5", se.class_share, best, gates, labels)
    with pytest.raises(ExerciseFailed, match="explains the least"):
        check("3.5", se.class_share, lambda g, lab: "early", gates, labels)
    with pytest.raises(ExerciseFailed, match="divide by the total"):
        def between(g, lab):
            return se.class_share(g, lab) * float(((g.double() - g.double().mean(0)) ** 2).sum())
        check("3.5", between, best, gates, labels)
    with pytest.raises(ExerciseFailed, match="explains all the variance"):
        check("3.5", lambda g, lab: 0.0, best, gates, labels)
    with pytest.raises(ExerciseFailed, match="not done yet"):
        def todo(g, lab):
            raise NotImplementedError()
        check("3.5", todo, best, gates, labels)

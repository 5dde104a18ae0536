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


# --- Section 6: what α and ρ buy (trained networks; made-up runs keep these tests fast) ---------

from course import mobilenet_ablations as abl  # noqa: E402
from course.ablations import ABLATIONS  # noqa: E402
from course.exercises.ch01 import reference_best_width  # noqa: E402


from course.classify import RECIPES, recipe, recipe_lr  # noqa: E402

BASE_PX = recipe()["imgsz"]
"""The recipe's input size: ρ = 1 for the trained networks."""


def _variants(*names):
    """Each distinct network of ``names`` (by key), in the order the ablations list them."""
    return list({v.key: v for n in names for v in ABLATIONS[n].variants}.values())


def _fake_runs(acc_of, base_px=BASE_PX, seeds=1, std=float("nan")):
    """Summaries for chapter 01's ablations: accuracy from ``acc_of(variant)``, made-up costs that grow with α and px."""
    runs = {}
    for name in abl.CH01:
        rows = []
        for v in ABLATIONS[name].variants:
            px = v.imgsz or base_px
            k = 8.0 if v.surgery else 1.0
            rows.append(dict(label=v.label, key=v.key, seeds=seeds, test_acc=acc_of(v), test_acc_std=std,
                             params=int(1e6 * v.width_mult ** 2 * k),
                             macs=1e6 * v.width_mult ** 2 * px ** 2 / base_px ** 2 * k,
                             imgsz=px, wall_time_s=1.0, latency_ms=2.0 * v.width_mult * k * px / base_px,
                             latency_threads=1))
        runs[name] = rows
    return runs


def _acc(v):
    return 0.3 + 0.5 * v.width_mult + 0.002 * ((v.imgsz or BASE_PX) - BASE_PX) + (0.05 if v.surgery else 0.0)


def _baseline(name):
    return ABLATIONS[name].variant(ABLATIONS[name].baseline)


def test_recipe_trains_every_mode_at_one_size_so_the_sets_share_networks():
    assert len({r["imgsz"] for r in RECIPES.values()}) == 1
    shared = _baseline("ch01_separable").key
    assert all(shared in {v.key for v in ABLATIONS[n].variants} for n in abl.CH01)
    assert len(_variants(*abl.CH01)) < sum(len(ABLATIONS[n].variants) for n in abl.CH01)


def test_trained_points_and_nearest():
    points = abl.trained_points(_fake_runs(_acc))
    sweeps = ("ch01_width", "ch01_resolution")
    plain = [v for v in _variants(*sweeps) if not v.surgery]
    assert len(points) == len(plain) < sum(len(ABLATIONS[n].variants) for n in sweeps)  # a shared network once
    assert sorted(p["label"] for p in points) == sorted(v.label for v in plain)
    for p in points:
        assert p["rho"] == pytest.approx(p["imgsz"] / BASE_PX) and p["imgsz"] <= BASE_PX

    widest = max(ABLATIONS["ch01_width"].variants, key=lambda v: v.width_mult)
    exact = abl.nearest_trained(widest.width_mult, 1.0, points)
    assert exact["exact"] and exact["alpha"] == widest.width_mult and exact["test_acc"] == pytest.approx(_acc(widest))
    smallest = min((v for v in plain if v.imgsz), key=lambda v: v.imgsz)
    at_small = abl.nearest_trained(smallest.width_mult, smallest.imgsz / BASE_PX, points)
    assert at_small["exact"] and at_small["imgsz"] == smallest.imgsz

    # Nudged by less than half the smallest gap between two trained points: that point, not exact.
    gap = min(math.dist((p["alpha"], p["rho"]), (q["alpha"], q["rho"])) for p in points for q in points if p is not q)
    near = abl.nearest_trained(smallest.width_mult + 0.3 * gap, smallest.imgsz / BASE_PX + 0.1 * gap, points)
    assert not near["exact"] and near["alpha"] == smallest.width_mult and near["imgsz"] == smallest.imgsz
    assert near["test_acc"] == pytest.approx(_acc(smallest))
    assert abl.nearest_trained(0.5, 1.0, []) is None and abl.trained_points(None) == []


def test_multiplier_widget_shows_nearest_trained_accuracy_or_says_none(capsys):
    h = ch01.multiplier_widget(alpha=0.5, resolution=160, measure=False, reference=None)
    assert h.state()["trained"] is None
    out = capsys.readouterr().out
    assert "only known at the trained points" in out
    assert all(f"{v.width_mult:g}" in out for v in ABLATIONS["ch01_width"].variants)
    assert all(f"{v.imgsz} px" in out for v in ABLATIONS["ch01_resolution"].variants if v.imgsz)

    runs = _fake_runs(_acc)
    points = abl.trained_points(runs)
    assert not any(math.isclose(p["rho"], 160 / 224, abs_tol=1e-3) for p in points)  # so 160 px is never exact
    h = ch01.multiplier_widget(alpha=0.5, resolution=160, measure=False, trained=runs)
    t = h.state()["trained"]
    want = abl.nearest_trained(0.5, 160 / 224, points)
    assert t["source"] == "your run" and not t["exact"] and (t["alpha"], t["imgsz"]) == (want["alpha"], want["imgsz"])
    out = capsys.readouterr().out
    assert f"{100 * t['test_acc']:.1f} %" in out and "nearest trained point" in out and f"{t['imgsz']} px" in out

    widest = max(v.width_mult for v in ABLATIONS["ch01_width"].variants)
    assert widest in ch01.ALPHAS
    h.controls["alpha"].value = widest
    h.controls["resolution"].value = 224
    assert h.state()["trained"]["exact"] and h.state()["trained"]["alpha"] == widest
    assert "at this point" in capsys.readouterr().out
    ref = _fake_runs(lambda v: 0.5, seeds=3, std=0.01)
    h = ch01.multiplier_widget(alpha=0.25, resolution=224, measure=False, reference=ref)
    assert h.state()["trained"]["source"] == "reference run" and "± 1.0" in capsys.readouterr().out


def _ref_acc(v):
    return 0.6 + 0.1 * v.width_mult


def test_tables_put_ours_beside_the_papers():
    runs, ref = _fake_runs(_acc), _fake_runs(_ref_acc, seeds=3, std=0.02)
    width = abl.width_table(runs, ref)
    widths = sorted((v for v in ABLATIONS["ch01_width"].variants), key=lambda v: -v.width_mult)
    assert [r["alpha"] for r in width] == [v.width_mult for v in widths] and len(width) > 1
    base = _baseline("ch01_width")
    for r, v in zip(width, widths):
        assert r["delta"] == pytest.approx(100 * (_acc(v) - _acc(base)))
        assert r["ref"] == f"{100 * _ref_acc(v):.1f} ± 2.0"
        assert r["ref_delta"] == pytest.approx(100 * (_ref_acc(v) - _ref_acc(base)))
        paper = abl.PAPER_MULTIPLIERS[(v.width_mult, 224)][0]
        assert r["paper_delta"] == pytest.approx(paper - abl.PAPER_MULTIPLIERS[(1.0, 224)][0])
    assert width[-1]["delta"] < 0  # the narrowest loses against the baseline in the fake data

    res = abl.resolution_table(runs)
    sizes = sorted((v.imgsz or BASE_PX for v in ABLATIONS["ch01_resolution"].variants), reverse=True)
    assert [r["imgsz"] for r in res if "imgsz" in r] == sizes and res[0]["imgsz"] == BASE_PX
    assert res[0]["delta"] == 0 and res[0]["rho"] == 1
    for r in res[:len(sizes)]:
        assert r["delta"] == pytest.approx(100 * 0.002 * (r["imgsz"] - BASE_PX))
        assert r["rho"] == pytest.approx(r["imgsz"] / BASE_PX)
    paper_px = sorted((px for a, px in abl.PAPER_MULTIPLIERS if a == 1.0), reverse=True)
    assert len(res) == max(len(sizes), len(paper_px)) and [r["paper_px"] for r in res] == paper_px

    sep = abl.separable_table(runs)
    kinds = ["full conv" if "full_conv" in v.surgery else "separable" for v in ABLATIONS["ch01_separable"].variants]
    assert [r["paper"] for r in sep] == [f"α=1 {k}" for k in kinds] and set(kinds) == {"full conv", "separable"}
    assert [r["paper_madds_M"] for r in sep] == [abl.PAPER_TABLE4[k][1] for k in kinds]
    text = abl.v1_tables(runs, ref)
    assert "Table 6" in text and "Table 7" in text and "Table 4" in text
    res_alpha = {v.width_mult for v in ABLATIONS["ch01_resolution"].variants}
    assert len(res_alpha) == 1 and f"ours at α = {res_alpha.pop():g}" in text
    assert f"Δ against α = {base.width_mult:g}" in text


def _expected_words(a, b, acc_of, std):
    """What ``difference`` should say about a − b, computed here from the fake accuracies (percent points)."""
    d = 100 * (acc_of(a) - acc_of(b))
    if abs(d) > 2 * 100 * std:
        return f"{a.label} is {'better' if d > 0 else 'worse'} than {b.label} by {abs(d):.1f} points"
    return f"{a.label} vs {b.label}: {d:+.1f} points, within twice the seed-to-seed spread ({100 * std:.1f})"


def test_findings_are_computed_and_respect_the_spread():
    widths = sorted(ABLATIONS["ch01_width"].variants, key=lambda v: v.width_mult)
    res = sorted(ABLATIONS["ch01_resolution"].variants, key=lambda v: v.imgsz or BASE_PX)
    sep = {bool(v.surgery): v for v in ABLATIONS["ch01_separable"].variants}
    pairs = [(widths[0], widths[-1]), (res[0], _baseline("ch01_resolution")), (sep[True], sep[False])]

    one = abl.v1_findings(_fake_runs(_acc))
    assert len(one) == len(pairs) + 1 and all("no spread measured" in s for s in one[:len(pairs)])
    for s, (a, b) in zip(one, pairs):
        assert f"{a.label} vs {b.label}: {100 * (_acc(a) - _acc(b)):+.1f} points" in s
    narrow, wide = pairs[0]
    assert f"{(narrow.width_mult / wide.width_mult) ** 2:.2f}× the mult-adds" in one[0]
    assert "Paper (ImageNet)" in one[-1]

    std = 0.02
    both = abl.v1_findings(_fake_runs(_acc), _fake_runs(_acc, seeds=3, std=std))
    assert len(both) == 2 * len(pairs) + 1
    verdicts = both[1:2 * len(pairs):2]
    assert all("(reference)" in s for s in verdicts)
    for s, (a, b) in zip(verdicts, pairs):
        assert _expected_words(a, b, _acc, std) in s
    # The fake data gives one gap inside twice the spread and others outside it: both wordings are checked.
    assert any("within twice" in s for s in verdicts) and any("more than twice" in s for s in verdicts)


def test_plan_counts_a_shared_network_once_and_estimates_from_the_recipe():
    plan = abl.training_plan(abl.CH01, mode="quick", probe_steps=1)
    networks = _variants(*abl.CH01)
    keys = [r["key"] for r in plan["runs"]]
    assert keys == [v.key for v in networks] and len(keys) < sum(len(ABLATIONS[n].variants) for n in abl.CH01)
    rec = plan["recipe"]
    assert rec == RECIPES["quick"]
    assert [r["imgsz"] for r in plan["runs"]] == [v.imgsz or rec["imgsz"] for v in networks]
    assert plan["steps"] == rec["epochs"] * (rec["n_train"] // rec["batch_size"])
    assert 0 < plan["estimate_s"] <= plan["cap_s"] == len(networks) * rec["time_budget_s"]
    assert f"{len(networks)} runs to train" in abl.describe_plan(plan)
    assert plan["lr"] == f"{recipe_lr('mobilenet_v1', 'quick'):g}" and f"lr {plan['lr']}," in abl.describe_plan(plan)
    width = ABLATIONS["ch01_width"].variants
    done = {(width[0].key, 0): {}}
    assert len(abl.training_plan(["ch01_width"], done=done, mode="quick", probe_steps=1)["runs"]) == len(width) - 1
    with pytest.raises(ValueError, match="names must be"):
        abl.training_plan(["ch01_depth"])
    with pytest.raises(ValueError, match="probe_steps"):
        abl.training_plan(abl.CH01, probe_steps=0)


def test_run_chapter_trains_and_times_a_shared_network_once(monkeypatch):
    trained, timed = [], []

    def fake_run(name, mode=None, threads=None, progress=True, done=None):
        rows = []
        for v in ABLATIONS[name].variants:
            if (v.key, 0) not in done:
                trained.append(v.key)
                done[(v.key, 0)] = dict(key=v.key, label=v.label, seed=0, test_acc=0.5, params=1, macs=1,
                                        imgsz=v.imgsz or BASE_PX, wall_time_s=1.0, device="cpu", threads=1,
                                        torch_version="x")
            rows.append({**done[(v.key, 0)], "label": v.label})
        return rows

    def fake_latency(summary, name, mode=None, threads=None):
        timed.extend(r["key"] for r in summary)
        return [{**r, "latency_ms": float(len(timed)), "latency_iqr_ms": 0.0, "latency_threads": 1} for r in summary]

    monkeypatch.setattr(abl, "run_ablation", fake_run)
    monkeypatch.setattr(abl, "measure_latencies", fake_latency)
    done = {}
    runs = abl.run_chapter(abl.CH01, done=done)
    n = len(_variants(*abl.CH01))
    assert len(trained) == len(set(trained)) == len(timed) == len(set(timed)) == n
    shared = ABLATIONS["ch01_separable"].baseline
    lat = {name: {r["label"]: r["latency_ms"] for r in rows} for name, rows in runs.items()}
    assert len({lat[name][shared] for name in abl.CH01}) == 1
    assert "seed [0]" in abl.provenance(runs, done)
    with pytest.raises(ValueError, match="done must hold"):
        abl.provenance(runs, {})


def test_plot_alpha_rho_labels_each_network_once():
    runs = _fake_runs(_acc)
    fig = abl.plot_alpha_rho(runs, _fake_runs(_acc, seeds=3, std=0.01))
    networks = _variants(*abl.CH01)
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.texts]
        assert len(labels) == len(set(labels)) == len(networks)
        assert set(labels) == {v.label for v in networks}
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "α sweep" in legend and "α sweep (reference)" in legend
    res_alpha = "/".join(sorted({f"{v.width_mult:g}" for v in ABLATIONS["ch01_resolution"].variants}))
    assert f"ρ sweep (α = {res_alpha})" in legend
    matplotlib.pyplot.close(fig)


def _no_chance(summary, chance=0.1):
    scores = {r["label"]: 100 * r["test_acc"] / (r["macs"] / 1e6) for r in summary}
    return max(scores, key=scores.get), scores


def _cheapest(summary, chance=0.1):
    best, scores = reference_best_width(summary, chance)
    return min(summary, key=lambda r: r["macs"])["label"], scores


def test_exercise_1_5_both_ways():
    summary = _fake_runs(_acc)["ch01_width"]
    check("1.5", reference_best_width, summary)
    check("1.5", reference_best_width)
    with pytest.raises(ExerciseFailed, match="subtract chance"):
        check("1.5", _no_chance, summary)
    with pytest.raises(ExerciseFailed, match="you picked"):
        check("1.5", _cheapest, summary)
    with pytest.raises(ExerciseFailed, match=r"should return \(label"):
        check("1.5", lambda s: "V1 α=1")


def test_reference_is_read_per_ablation_and_described_or_said_missing():
    ref = _fake_runs(_acc, seeds=3, std=0.01)
    payload = dict(machine=dict(device="cpu", cpu="x86_64", threads=2, torch_version="2.x", date="2026-01-01"),
                   seeds=[0, 1, 2], ablations={n: dict(summary=ref[n]) for n in ("ch01_width", "ch01_separable")})
    refs = abl.reference_summaries(abl.CH01, payload)
    assert refs["ch01_width"] == ref["ch01_width"] and refs["ch01_resolution"] is None
    note = abl.reference_note(refs, payload)
    assert "3 seeds" in note and "2 threads" in note and "Not recorded for: ch01_resolution" in note
    assert "No reference run recorded yet" in abl.reference_note({n: None for n in abl.CH01})

"""Chapter 05: FLOPs vs latency, MAC calculator, guideline widget, unit audit, V2 network rows, exercise checks."""

import matplotlib

matplotlib.use("Agg")

import math

import pytest
import torch
from torch import nn

from course import guidelines as G
from course.exercises import ExerciseFailed, check
from course.measure import mac_conv1x1
from course.widgets import ch05_shufflenet_v2 as ch05


def test_mac_widget_follows_controls():
    h = ch05.mac_widget(56, 56, 128, 128, 1)
    assert h.state()["mac_over_bound"] == pytest.approx(1.0)
    h.controls["c2"].value = 256
    assert h.state()["c2"] == 256 and h.state()["mac_over_bound"] > 1
    h.controls["groups"].value = 4
    assert h.state()["mac"] == mac_conv1x1(56, 56, 128, 256, 4)


def test_flops_latency_one_model():
    rows = ch05.flops_latency(names=("mobilenet_v3_small",), min_run_time=0.01)
    assert rows[0]["mflops"] == pytest.approx(56.5, rel=0.05)  # torchvision's 0.057 GFLOPs
    assert rows[0]["latency"].median_ms > 0
    head, _, line, note = ch05.format_flops_latency(rows).splitlines()
    assert head.split()[:3] == ["model", "MFLOPs", "ms"] and line.split()[0] == "mobilenet_v3_small"
    assert line.split()[-1] == "—" and note.startswith("measured: ")  # not in the paper's Table 8
    fig = ch05.plot_flops_latency(rows)
    assert len(fig.axes[0].texts) == 1
    with pytest.raises(ValueError, match="names"):
        ch05.flops_latency(names=("resnet50",))


@pytest.fixture(scope="module")
def g4_run():
    return G.run_guidelines(("G4",), device="cpu", quick=True, progress=False, min_run_time=0.01)


def test_guideline_widget_reuses_and_reruns(g4_run):
    h = ch05.guideline_widget(g4_run, quick=True)
    assert h.state()["guideline"] == "G4"
    assert h.state()["verdict"].startswith("G4")
    assert len(h.state()["rows"]) == 4
    h.controls["guideline"].value = "G2"
    assert h.state()["guideline"] == "G2" and h.state()["verdict"].startswith("G2")
    assert {r["variant"] for r in h.state()["rows"]} == {"g=1", "g=2", "g=4", "g=8"}


def test_describe_run_and_reference_runs(g4_run, tmp_path):
    assert "CPU" in ch05.describe_run(g4_run, "yours") and "QUICK MODE" in ch05.describe_run(g4_run, "yours")
    assert ch05.reference_runs(tmp_path) == []
    G.save_results(g4_run, tmp_path / "guidelines_cpu_reference.json")
    runs = ch05.reference_runs(tmp_path)
    assert len(runs) == 1 and runs[0][1]["meta"]["device"] == "cpu"


def test_unit_audit_contrasts_v1_and_v2():
    v2, v1 = ch05.unit_audit(hw=8)
    assert v2["G1 equal widths"] and not v1["G1 equal widths"]
    assert v2["G2 no group conv"] and not v1["G2 no group conv"]
    assert v2["G4 element-wise adds"] == 0 and v1["G4 element-wise adds"] == 1
    assert v2["G3 channel split / identity branch"] and v2["concat"] == 1
    lines = ch05.format_audit([v2, v1]).splitlines()
    assert lines[0].index(v2["unit"]) < lines[0].index(v1["unit"])  # one column per unit, in order
    assert [line for line in lines if line.startswith("G2 no group conv")][0].split()[-2:] == ["True", "False"]


def test_v2_network_rows_match_torchvision():
    rows = ch05.v2_network_rows(scales=(0.5,), input_hw=32, flops=False)
    r = rows[0]
    assert r["params"] == r["torchvision_params"] == 1_366_792
    assert r["max_abs_diff"] <= 1e-5 * max(1.0, r["output_scale"])
    head, _, line, note = ch05.format_v2_rows(rows).splitlines()
    assert head.split()[:3] == ["scale", "ours", "torchvision"]
    assert line.split()[:5] == ["0.5", "1,366,792", "1,366,792", "1,366,792", "1.4M"]
    assert line.split()[6] == "—" and "2×3×32×32" in note  # flops=False
    with pytest.raises(ValueError, match="scales"):
        ch05.v2_network_rows(scales=(0.75,))


# ----------------------------------------------------------------------------- exercise checks

def mac_1x1(h, w, c1, c2, groups=1):
    return h * w * (c1 + c2) + c1 * c2 // groups


class MyUnit(nn.Module):
    def __init__(self, channels):
        super().__init__()
        c = channels // 2
        self.branch = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat([x1, self.branch(x2)], dim=1)
        b, c, h, w = out.shape
        return out.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


def best_ratio(h, w, flops, ratios):
    return min(ratios, key=lambda r: abs(math.log(r)))


def test_reference_solutions_pass(capsys):
    check("5.1", mac_1x1)
    check("5.2", MyUnit)
    check("5.3", best_ratio)
    assert capsys.readouterr().out.count("passed") == 3


def test_5_1_wrong_answers_say_why():
    with pytest.raises(ExerciseFailed, match="weights"):
        check("5.1", lambda h, w, c1, c2, g=1: h * w * (c1 + c2))
    with pytest.raises(ExerciseFailed, match="group conv"):
        check("5.1", lambda h, w, c1, c2, g=1: h * w * (c1 + c2) + c1 * c2)


class _GroupedUnit(MyUnit):
    def __init__(self, channels):
        super().__init__(channels)
        c = channels // 2
        self.branch[0] = nn.Conv2d(c, c, 1, groups=2, bias=False)


class _NoShuffle(MyUnit):
    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return torch.cat([x1, self.branch(x2)], dim=1)


class _ExtraRelu(MyUnit):
    def __init__(self, channels):
        super().__init__(channels)
        self.branch.insert(5, nn.ReLU())


class _Bottleneck(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 4, 1), nn.Conv2d(channels // 4, channels, 1))

    def forward(self, x):
        return x + self.body(x)


@pytest.mark.parametrize("cls, message", [
    (_GroupedUnit, "grouped 1×1"),
    (_Bottleneck, "expected two 1×1 convs"),
    (_NoShuffle, "pass through untouched"),
    (_ExtraRelu, "outputs differ"),
])
def test_5_2_wrong_units_say_why(cls, message):
    with pytest.raises(ExerciseFailed, match=message):
        check("5.2", cls)


def test_5_3_wrong_answers_say_why():
    with pytest.raises(ExerciseFailed, match="expected"):
        check("5.3", lambda h, w, f, ratios: min(ratios, key=lambda r: abs(r - 1)))


def test_describe_flops_latency_counts_flipped_pairs():
    from course.measure import LatencyResult

    def row(name, mflops, ms):
        return {"name": name, "mflops": mflops, "latency": LatencyResult(ms, 0.1, [ms], "cpu", "CPU (test)", 1, 1,
                                                                         "float32", "x")}
    rows = [row("a", 100, 5.0), row("b", 200, 4.0), row("c", 300, 9.0)]
    assert "1 of 3 model pairs" in ch05.describe_flops_latency(rows)
    assert "0 of 1" in ch05.describe_flops_latency([row("a", 100, 1.0), row("b", 200, 2.0)])


def faster(guideline, a, b):
    """Exercise 5.4's teacher solution: each guideline as a cost, the smaller runs faster."""
    def cost(name):
        if guideline == "G1":
            c1, c2 = map(int, name.split(":"))
            return max(c1, c2) / min(c1, c2)
        if guideline == "G2":
            return int(name.split("=")[1])
        if guideline == "G3":
            return int(name[0]), "parallel" in name
        return ("ReLU" in name and "no ReLU" not in name) + ("shortcut" in name and "no shortcut" not in name)
    return min((a, b), key=cost)


def test_5_4_teacher_predictor_passes(capsys):
    check("5.4", faster)
    assert "passed" in capsys.readouterr().out


def test_5_4_pairs_are_the_ones_the_paper_orders_the_same_way_everywhere():
    from course.exercises.ch05 import consistent_pairs

    assert len(consistent_pairs("G1")) == 6  # Table 1's speeds fall with the ratio in every column
    g4 = {(f, s) for f, s, _ in consistent_pairs("G4")}
    assert ("no ReLU, no shortcut", "ReLU + shortcut") in g4
    # GPU ×1 has "shortcut, no ReLU" faster, GPU ×2 "ReLU, no shortcut": no prediction is asked there
    assert not {("ReLU, no shortcut", "shortcut, no ReLU"), ("shortcut, no ReLU", "ReLU, no shortcut")} & g4


@pytest.mark.parametrize("wrong, message", [
    (lambda g, a, b: b if faster(g, a, b) == a else a, "Table 1 measures"),  # every guideline reversed
    (lambda g, a, b: max((a, b), key=lambda n: "parallel" in n) if g == "G3" and a[0] == b[0] else faster(g, a, b),
     "Table 3 measures '2-fragment-series' faster"),  # parallel fragments taken for faster
    (lambda g, a, b: a if g == "G4" else faster(g, a, b), "Table 4"),
    (lambda g, a, b: "both", "return one of the two names"),
])
def test_5_4_wrong_predictions_say_which_table_disagrees(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        check("5.4", wrong)


# ----------------------------------------------------------------------------- section 6: the families

from course import families  # noqa: E402
from course.ablations import ABLATIONS, PAPER_POINTS, Ablation, Variant  # noqa: E402

_TEST_SET = Ablation("05", "test", (
    Variant("v1 half", "mobilenet_v1", 0.5),                                        # paper: 63.7 %, 149 M
    Variant("v2 half", "mobilenet_v2", 0.5),                                        # paper: 0.35 and 1.0 only
    Variant("v3 small", "mobilenet_v3_small", 1.0),                                 # paper: 67.4 %, 56 M
    Variant("sv1 g3 half", "shufflenet_v1", 0.5, model_kwargs=(("groups", 3),)),   # paper: 56.8 %, 38 M
    Variant("sv1 g8 half", "shufflenet_v1", 0.5, model_kwargs=(("groups", 8),)),   # no g = 8 point
    Variant("sv2 one", "shufflenet_v2", 1.0)), "", "v1 half")                      # paper: 69.4 %, 146 M
_TOP1 = {"v1 half": 63.7, "v3 small": 67.4, "sv1 g3 half": 56.8, "sv2 one": 69.4}


@pytest.fixture
def test_set(monkeypatch):
    monkeypatch.setitem(ABLATIONS, "test_fam", _TEST_SET)
    return "test_fam"


def _summary(acc, seeds=1, std=float("nan"), latency=None, macs=None):
    labels = _TEST_SET.labels()
    return [dict(label=lab, key=lab, seeds=seeds, test_acc=acc[lab], test_acc_std=std, imgsz=48, params=1,
                 macs=(macs or {}).get(lab, 1e6 * (i + 1)), **({"latency_ms": latency[lab]} if latency else {}))
            for i, lab in enumerate(labels)]


def _acc(order):
    """Test accuracies with ``order`` best first, the non-comparable variants anywhere."""
    acc = {lab: 0.5 - 0.05 * i for i, lab in enumerate(order)}
    return {**acc, "v2 half": 0.9, "sv1 g8 half": 0.1}


def test_paper_spec_reads_every_paper_point():
    specs = {p["label"]: families.paper_spec(p["label"]) for p in PAPER_POINTS}
    assert specs["ShuffleNet V1 0.5× g=3"] == ("shufflenet_v1", 0.5, 3)
    assert specs["MobileNet V3-Large 0.75"] == ("mobilenet_v3_large", 0.75, None)
    assert specs["ShuffleNet V2 1×"] == ("shufflenet_v2", 1.0, None)
    for bad in ("ResNet 50 1.0", "MobileNet V1", "ShuffleNet V2 x1"):
        with pytest.raises(ValueError, match="label"):
            families.paper_spec(bad)


def test_match_papers_only_same_network_and_width(test_set):
    m = {r["label"]: r for r in families.match_papers(test_set)}
    assert {lab for lab, r in m.items() if r["paper"]} == set(_TOP1)
    assert all(m[lab]["paper"]["top1"] == top1 for lab, top1 in _TOP1.items())
    assert m["v2 half"]["paper"] is None and m["v2 half"]["nearest"]["label"] == "MobileNet V2 0.35"
    assert m["sv1 g8 half"]["paper"] is None and m["sv1 g8 half"]["nearest"] is None  # the papers give no g=8
    with pytest.raises(ValueError, match="name"):
        families.match_papers("ch05_nothing")


def test_match_papers_on_the_chapter_set_is_a_real_match():
    rows = families.match_papers("ch05_families")
    assert [r["label"] for r in rows] == ABLATIONS["ch05_families"].labels()
    for r in rows:
        if r["paper"]:
            model, width, _ = families.paper_spec(r["paper"]["label"])
            assert (model, width) == (r["model"], r["width"])
    assert sum(r["paper"] is not None for r in rows) >= 2  # something to rank


def test_kendall_tau():
    assert families.kendall_tau([1, 2, 3], [10, 20, 30])["tau"] == 1
    assert families.kendall_tau([1, 2, 3], [30, 20, 10])["tau"] == -1
    t = families.kendall_tau([1, 2, 3], [10, 10, 30])
    assert (t["concordant"], t["discordant"], t["tied"], t["n_pairs"]) == (2, 0, 1, 3)
    assert t["tau"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same length"):
        families.kendall_tau([1, 2], [1])


def test_same_order_as_the_papers_agrees_everywhere(test_set):
    c = families.compare_rankings(_summary(_acc(["sv2 one", "v3 small", "v1 half", "sv1 g3 half"])), test_set)
    assert c["accuracy"]["tau"] == 1 and {p["status"] for p in c["accuracy"]["pairs"]} == {"agree"}
    assert len(c["accuracy"]["pairs"]) == 6 and [lab for lab, _ in c["not_comparable"]] == ["v2 half", "sv1 g8 half"]
    text = "\n".join(families.sentences(c))
    assert "agree on 6 of 6 pairs and disagree on 0" in text and "τ of the means +1.00" in text
    assert "The papers put" not in text and "point estimate" in text  # one seed
    assert "v2 half (nearest paper point: MobileNet V2 0.35)" in text


def test_one_swapped_pair_is_named(test_set):
    c = families.compare_rankings(_summary(_acc(["sv2 one", "v1 half", "v3 small", "sv1 g3 half"])), test_set)
    bad = [p for p in c["accuracy"]["pairs"] if p["status"] == "disagree"]
    assert len(bad) == 1 and {bad[0]["a"], bad[0]["b"]} == {"v1 half", "v3 small"}
    assert c["accuracy"]["tau"] == pytest.approx(4 / 6)
    text = "\n".join(families.sentences(c))
    assert "The papers put v3 small above v1 half (3.7 top-1 points on ImageNet); here v1 half is ahead by 5.0" in text


def test_gaps_within_the_spread_are_not_counted_as_orders(test_set):
    reversed_ = _acc(["sv1 g3 half", "v1 half", "v3 small", "sv2 one"])
    wide = families.compare_rankings(_summary(reversed_, seeds=3, std=0.2), test_set)
    assert {p["status"] for p in wide["accuracy"]["pairs"]} == {"within spread"}
    assert "6 within twice the seed-to-seed spread" in "\n".join(families.sentences(wide))
    tight = families.compare_rankings(_summary(reversed_, seeds=3, std=0.001), test_set)
    assert {p["status"] for p in tight["accuracy"]["pairs"]} == {"disagree"} and tight["accuracy"]["tau"] == -1


def test_cost_orders(test_set):
    acc = _acc(["sv2 one", "v3 small", "v1 half", "sv1 g3 half"])
    macs = {"v1 half": 6e6, "v2 half": 5e6, "v3 small": 2e6, "sv1 g3 half": 1e6, "sv1 g8 half": 1.5e6, "sv2 one": 4e6}
    latency = {lab: m / 1e6 for lab, m in macs.items()}
    latency["sv1 g3 half"] = 10.0  # fewest mult-adds, slowest
    c = families.compare_rankings(_summary(acc, latency=latency, macs=macs), test_set)
    assert c["macs"]["tau"] == 1  # the papers' mult-adds: 149, 56, 38, 146 M
    flipped = [p for p in c["speed"]["pairs"] if p["status"] == "disagree"]
    assert len(flipped) == 5 and all("sv1 g3 half" in (p["a"], p["b"]) for p in flipped)
    text = "\n".join(families.sentences(c, max_listed=2))
    assert "5 of 15 pairs run in the opposite order" in text
    assert "sv1 g3 half has fewer mult-adds than v1 half yet takes 4.00 ms longer" in text
    assert "… and 3 more such pairs" in text
    assert families.compare_rankings(_summary(acc), test_set)["speed"] is None  # no latency measured


def test_an_older_run_with_a_missing_variant_is_compared_on_the_rest(test_set):
    rows = [r for r in _summary(_acc(["sv2 one", "v3 small", "v1 half", "sv1 g3 half"])) if r["label"] != "v3 small"]
    c = families.compare_rankings(rows, test_set)
    assert c["missing"] == ["v3 small"] and len(c["accuracy"]["pairs"]) == 3
    assert "Not in this run (the set has changed since): v3 small." in families.sentences(c)
    extra = families.compare_rankings(rows + [dict(rows[0], label="not in the set", latency_ms=1.0)], test_set)
    assert extra["speed_labels"] == c["speed_labels"] and "not in the set" not in extra["speed_labels"]
    with pytest.raises(ValueError, match="summary must hold rows"):
        families.compare_rankings([dict(r, label="other") for r in rows], test_set)


def test_accuracy_per_ms_and_the_table(test_set):
    s = _summary(_acc(["sv2 one", "v3 small", "v1 half", "sv1 g3 half"]),
                 latency={lab: 1.0 + i for i, lab in enumerate(_TEST_SET.labels())})
    per_ms = families.accuracy_per_ms(s)
    # 40 % in 1 ms, 90 % in 2, 45 % in 3, 35 % in 4, 10 % in 5, 50 % in 6
    assert [r["label"] for r in per_ms] == ["v2 half", "v1 half", "v3 small", "sv1 g3 half", "sv2 one", "sv1 g8 half"]
    assert per_ms[0]["acc_per_ms"] == pytest.approx(45.0)
    lines = families.format_summary(s).splitlines()
    assert lines[0].split()[:3] == ["model", "test", "acc"] and len(lines) == 2 + len(s)


def test_gpu_latencies_without_a_gpu_say_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows, note = families.gpu_latencies([dict(label="x", imgsz=32)])
    assert rows is None and "no CUDA GPU" in note


def test_describe_run_says_what_produced_it(monkeypatch):
    rows = [dict(seed=0, device="cpu", threads=1, torch_version=torch.__version__)]
    summary = [dict(imgsz=48, latency_threads=2)]
    monkeypatch.setenv("COURSE_QUICK", "0")
    text = families.describe_run(rows, summary)
    assert "cpu (1 thread)" in text and torch.__version__ in text and "48 px" in text and "2 threads" in text
    assert "QUICK" not in text
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert families.describe_run(rows, summary).startswith("QUICK MODE")


# exercise 5.5

def on_front(summary):
    front, best = [], float("-inf")
    for r in sorted(summary, key=lambda r: (r["latency_ms"], -r["test_acc"])):
        if r["test_acc"] > best:
            front.append(r["label"])
            best = r["test_acc"]
    return front


_RUN = [dict(label="a", latency_ms=3.0, test_acc=0.6), dict(label="b", latency_ms=1.0, test_acc=0.4),
        dict(label="c", latency_ms=2.0, test_acc=0.3), dict(label="d", latency_ms=4.0, test_acc=0.8)]


def test_5_5_right_answer_passes(capsys):
    check("5.5", on_front, _RUN)
    assert "passed" in capsys.readouterr().out and on_front(_RUN) == ["b", "a", "d"]


@pytest.mark.parametrize("wrong, message", [
    (lambda s: [r["label"] for r in s], "beaten by"),                                      # everyone
    (lambda s: sorted(on_front(s), reverse=True), "fastest first"),
    (lambda s: [r["label"] for r in sorted(s, key=lambda r: r["latency_ms"])
                if all(o["test_acc"] <= r["test_acc"] or o["latency_ms"] > r["latency_ms"] for o in s)],
     "equal accuracy"),                                                                     # ties kept
    (lambda s: [max(s, key=lambda r: r["test_acc"])["label"]], "expected"),                # only the best
])
def test_5_5_wrong_answers_say_why(wrong, message):
    with pytest.raises(ExerciseFailed, match=message):
        check("5.5", wrong, _RUN)


def test_5_5_checks_the_run_itself():
    def fixed(s):  # right on the hand-made cases only
        return on_front(s) if {r["label"] for r in s} <= set("ABCD") else ["a"]
    with pytest.raises(ExerciseFailed, match="your run"):
        check("5.5", fixed, _RUN)
    with pytest.raises(ExerciseFailed, match="summary must"):
        check("5.5", on_front, [dict(label="a", test_acc=0.5)])

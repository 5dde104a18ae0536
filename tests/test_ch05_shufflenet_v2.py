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

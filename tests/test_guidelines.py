"""ShuffleNet V2 guideline experiments: channels, FLOPs held fixed, G4 variants, runner, schema, verdicts."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from course import guidelines as G
from course.measure import count_flops, count_params

HW = 8  # FLOPs are counted on 8×8 maps (they scale exactly with hw²); the runner uses 56×56
_FLOPS: dict = {}


@pytest.fixture(autouse=True)
def one_thread():
    """fvcore runs a real forward pass; one thread keeps that fast on a busy two-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _flops(guideline, scale, channel_list):
    key = (guideline, scale, channel_list)
    if key not in _FLOPS:
        _FLOPS[key] = [count_flops(v.build(), v.input_size()) for v in G.variants(guideline, scale, channel_list, hw=HW)]
    return _FLOPS[key]


# ----------------------------------------------------------------------------- channels

def test_g1_channels_are_table_1():
    assert [v.channels for v in G.variants("G1", 1, "gpu")] == [(128, 128), (90, 180), (52, 312), (36, 432)]
    assert [v.channels for v in G.variants("G1", 1, "cpu")] == [(32, 32), (22, 44), (13, 78), (9, 108)]
    assert [v.channels for v in G.variants("G1", 4, "cpu")] == [(128, 128), (88, 176), (52, 312), (36, 432)]
    assert [v.name for v in G.variants("G1")] == ["1:1", "1:2", "1:6", "1:12"]


def test_g2_channels_are_table_2():
    assert [v.channels for v in G.variants("G2", 1, "gpu")] == [(128,), (180,), (256,), (360,)]
    assert [v.channels for v in G.variants("G2", 2, "cpu")] == [(128,), (180,), (256,), (360,)]
    # The paper's ARM list has c = 180 with g = 8, which 8 does not divide: 184 is the nearest in FLOPs.
    assert [v.channels for v in G.variants("G2", 1, "cpu")] == [(64,), (90,), (128,), (184,)]
    model = G.variants("G2", 1, "gpu")[3].build()
    assert all(m.groups == 8 for m in model.modules() if isinstance(m, nn.Conv2d))


def test_g3_channels_hold_flops_by_sqrt_k():
    assert [v.channels[0] for v in G.variants("G3", 1, "gpu")] == [128, 91, 64, 91, 64]
    assert [v.channels[0] for v in G.variants("G3", 2, "cpu")] == [128, 91, 64, 91, 64]
    assert [v.channels[0] for v in G.variants("G3", 4, "gpu")] == [512, 362, 256, 362, 256]
    assert G.g3_channels(128, "4-fragment-parallel", merge="concat") == 128


def test_g3_structures_follow_appendix_fig_1():
    convs = [sum(isinstance(m, nn.Conv2d) for m in v.build().modules()) for v in G.variants("G3")]
    assert convs == [10, 20, 40, 20, 40]
    x = torch.randn(1, 45, 8, 8)
    block = G.FragmentBlock(45, 2, parallel=True).eval()
    with torch.no_grad():
        expected = torch.relu(block.branches[0](x) + block.branches[1](x))
        assert torch.allclose(block(x), expected)
    cat = G.FragmentBlock(64, 4, parallel=True, merge="concat").eval()
    assert cat(torch.randn(1, 64, 8, 8)).shape == (1, 64, 8, 8)


def test_g4_channels_and_input():
    vs = G.variants("G4", 2, "gpu")
    assert [v.channels for v in vs] == [(64, 16)] * 4
    assert vs[0].input_size(8) == (8, 64, 56, 56)
    assert G.variants("G4", 1, "cpu", hw=14)[0].input_size() == (1, 32, 14, 14)


# ----------------------------------------------------------------------------- FLOPs

@pytest.mark.parametrize("channel_list", ["gpu", "cpu"])
def test_flops_held_fixed_within_2_percent(channel_list):
    for g in ("G2", "G3", "G4"):
        fl = _flops(g, 1, channel_list)
        if g == "G2" and channel_list == "cpu":
            # 184 channels for g = 8 (see above) cost 3.3 % more than g = 1; the other rows agree.
            assert G.flops_spread(fl[:3]) <= 0.02 and fl[3] / fl[0] == pytest.approx(184 ** 2 / 8 / 64 ** 2)
        else:
            assert G.flops_spread(fl) <= 0.02, (g, fl)
    assert G.flops_spread(_flops("G2", 2, "cpu")) <= 0.02


@pytest.mark.parametrize("channel_list", ["gpu", "cpu"])
def test_g1_flops_are_the_papers(channel_list):
    """Table 1's channel lists hold c1·c2 only to 5.1 % (GPU) / 5.5 % (ARM): we reproduce that exactly."""
    vs = G.variants("G1", 1, channel_list)
    fl = _flops("G1", 1, channel_list)
    assert fl == [10 * 2 * HW * HW * v.channels[0] * v.channels[1] for v in vs]
    products = [v.channels[0] * v.channels[1] for v in vs]
    assert products == ([16384, 16200, 16224, 15552] if channel_list == "gpu" else [1024, 968, 1014, 972])
    assert G.flops_spread(fl) < 0.06


def test_flops_match_the_formulas():
    assert _flops("G2", 1, "gpu") == [10 * HW * HW * c * c // g for c, g in ((128, 1), (180, 2), (256, 4), (360, 8))]
    fl3 = _flops("G3", 1, "gpu")
    assert fl3[0] == 10 * HW * HW * 128 ** 2 and fl3[2] == 10 * 4 * HW * HW * 64 ** 2
    c, mid = 32, 8
    assert _flops("G4", 1, "cpu")[0] == 10 * HW * HW * (c * mid + 9 * mid * mid + mid * c)


def test_g4_variants_differ_only_in_relu_and_shortcut():
    models = [v.build() for v in G.variants("G4", 1, "cpu")]
    assert len({count_params(m) for m in models}) == 1
    shapes = [{k: t.shape for k, t in m.state_dict().items()} for m in models]
    assert all(s == shapes[0] for s in shapes)
    for m in models[1:]:
        m.load_state_dict(models[0].state_dict())
    x = torch.randn(1, 32, 12, 12)
    with torch.no_grad():
        full, no_sc, no_relu, plain = (m(x) for m in models)
        assert (full >= 0).all() and (no_sc >= 0).all()
        assert (no_relu < 0).any() and (plain < 0).any()
        assert torch.allclose(models[3](-x), -plain, atol=1e-5)  # linear at init (BN mean 0, var 1)
        assert not torch.allclose(no_relu, plain)
        assert not torch.allclose(full, no_sc)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, word", [
    ({"guidelines": ("G5",)}, "guidelines"),
    ({"guidelines": ()}, "guidelines"),
    ({"scales": (3,)}, "scales"),
    ({"device": "tpu"}, "device"),
    ({"channel_list": "arm"}, "channel_list"),
    ({"min_run_time": 0}, "min_run_time"),
    ({"threads": 0}, "threads"),
    ({"g4_expansion": 3}, "g4_expansion"),
    ({"rounds": 0}, "rounds"),
    ({"g3_merge": "mul"}, "g3_merge"),
])
def test_runner_rejects_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        G.run_guidelines(progress=False, **kwargs)


def test_builders_reject_bad_input():
    with pytest.raises(ValueError, match="guideline"):
        G.variants("G9")
    with pytest.raises(ValueError, match="scale"):
        G.variants("G1", scale=3)
    with pytest.raises(ValueError, match="groups"):
        G.g2_net(90, 4)
    with pytest.raises(ValueError, match="structure"):
        G.g3_net(64, "3-fragment-series")
    with pytest.raises(ValueError, match="expansion"):
        G.Bottleneck(30, expansion=4)


# ----------------------------------------------------------------------------- runner, CLI, schema

@pytest.fixture(scope="module")
def tiny_run():
    return G.run_guidelines(("G4",), device="cpu", scales=(1, 2), quick=True, progress=False, min_run_time=0.02,
                            rounds=2)


def test_runner_quick_returns_the_schema(tiny_run):
    r = G.validate_results(tiny_run)
    json.dumps(r)
    m = r["meta"]
    assert m["quick"] is True and m["scales"] == [1]
    assert (m["device"], m["batch"], m["speed_unit"], m["threads"], m["timings"]) == ("cpu", 1, "images/s", 1, ["eager"])
    assert m["torch_version"] == torch.__version__ and m["cudnn_version"] is None and "cpu_model" in m
    pts = r["guidelines"]["G4"]["points"]
    assert [p["variant"] for p in pts] == list(G.PAPER_TABLES["G4"]["variants"])
    assert len({p["flops"] for p in pts}) == 1 and r["guidelines"]["G4"]["flops_spread"] == {"1": 0.0}
    t = pts[0]["timing"]["eager"]
    assert t["speed"] == pytest.approx(1000 / t["median_ms"])
    assert t["speed_lo"] <= t["speed"] <= t["speed_hi"]
    assert m["rounds"] == 2 and all(p["timing"]["eager"]["n"] >= 2 for p in pts)  # blocks pooled over rounds


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback")
def test_cuda_without_gpu_falls_back_with_a_note():
    r = G.run_guidelines(("G4",), device="cuda", scales=(1,), quick=True, progress=False, min_run_time=0.01)
    assert r["meta"]["device"] == "cpu" and r["meta"]["timings"] == ["eager"]
    assert any("skipped" in n for n in r["meta"]["notes"])


def test_schema_check_catches_damage(tiny_run, tmp_path):
    for damage in (lambda r: r.pop("schema"), lambda r: r["meta"].pop("threads"),
                   lambda r: r["guidelines"]["G4"]["points"].pop(),
                   lambda r: r["guidelines"]["G4"]["points"][0]["timing"]["eager"].pop("speed"),
                   lambda r: r["meta"].update(timings=["eager", "cuda_graph"])):
        bad = copy.deepcopy(tiny_run)
        damage(bad)
        with pytest.raises(ValueError, match="results"):
            G.validate_results(bad)
    with pytest.raises(ValueError, match="path"):
        G.load_results(tmp_path / "missing.json")


def test_cli_writes_valid_json(tmp_path):
    out = tmp_path / "g.json"
    assert G.main(["--device", "cpu", "--out", str(out), "--quick", "--guidelines", "G3", "--scales", "1",
                   "--min-run-time", "0.01", "--no-progress"]) == 0
    r = G.load_results(out)
    assert list(r["guidelines"]) == ["G3"] and r["meta"]["quick"]


def test_module_entry_point(tmp_path):
    out = tmp_path / "g.json"
    env = dict(os.environ, COURSE_QUICK="1")
    proc = subprocess.run([sys.executable, "-m", "course.guidelines", "--device", "cpu", "--out", str(out),
                           "--guidelines", "G4", "--scales", "1", "--min-run-time", "0.01", "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "G4 on this CPU" in proc.stdout
    assert G.load_results(out)["meta"]["quick"] is True


# ----------------------------------------------------------------------------- normalising, verdicts, plots

def _synthetic(speeds: dict[str, dict[int, float]], rel_iqr: float = 0.01, channel_list: str = "cpu",
               gpu: bool = False) -> dict:
    """A schema-valid results dict with chosen speeds (images/s) per guideline, variant order as the paper."""
    scales = sorted({s for per in speeds.values() for s in per})
    gs = {}
    for g, per in speeds.items():
        names = list(G.PAPER_TABLES[g]["variants"])
        points = []
        for s in scales:
            for n, v in zip(names, per[s]):
                ms = 1000 / v
                t = {"median_ms": ms, "iqr_ms": ms * rel_iqr, "q1_ms": ms * (1 - rel_iqr / 2),
                     "q3_ms": ms * (1 + rel_iqr / 2), "n": 10, "speed": v,
                     "speed_lo": 1000 / (ms * (1 + rel_iqr / 2)), "speed_hi": 1000 / (ms * (1 - rel_iqr / 2))}
                points.append({"variant": n, "scale": s, "channels": [1], "input_size": [1, 1, 56, 56],
                               "flops": 1000, "params": 10,
                               "timing": {"eager": t, "cuda_graph": t} if gpu else {"eager": t}})
        gs[g] = {"title": g, "paper_table": "", "variants": names, "reference": G.PAPER_TABLES[g]["reference"],
                 "input_hw": 56, "flops_spread": {}, "points": points}
    meta = {"device": "cuda" if gpu else "cpu", "device_name": "Test GPU" if gpu else "Test CPU", "torch_version": "x", "cudnn_version": None, "threads": 1,
            "batch": 8 if gpu else 1, "speed_unit": "batches/s" if gpu else "images/s",
            "hardware": "gpu" if gpu else "cpu", "channel_list": channel_list,
            "scales": scales, "timings": ["eager", "cuda_graph"] if gpu else ["eager"], "min_run_time_s": 1.0, "quick": False, "rounds": 3, "date": "today",
            "wall_time_s": 1.0, "notes": []}
    return {"schema": G.SCHEMA, "meta": meta, "guidelines": gs}


def test_normalise():
    assert G.normalise({"a": 50.0, "b": 25.0, "c": 75.0}, "a") == {"a": 1.0, "b": 0.5, "c": 1.5}
    with pytest.raises(ValueError, match="reference"):
        G.normalise({"a": 1.0}, "z")
    with pytest.raises(ValueError, match="reference"):
        G.normalise({"a": 0.0}, "a")


def test_compare_with_paper_normalises_both_sides():
    r = _synthetic({"G1": {1: [100.0, 90.0, 80.0, 50.0]}})
    rows = {row["variant"]: row for row in G.compare_with_paper(r)}
    assert rows["1:1"]["ours_norm"] == 1.0 and rows["1:12"]["ours_norm"] == pytest.approx(0.5)
    assert rows["1:12"]["paper_norm"] == pytest.approx(57.6 / 76.2)
    assert rows["1:12"]["paper_speed"] == 57.6
    assert rows["1:12"]["ours_lo"] < 0.5 < rows["1:12"]["ours_hi"]
    gpu = {row["variant"]: row for row in G.compare_with_paper(_synthetic({"G2": {1: [4, 3, 2, 1]}}, channel_list="gpu"))}
    assert gpu["g=8"]["paper_norm"] == pytest.approx(634 / 2451)
    table = G.comparison_table(r).splitlines()
    assert "paper column: ARM Snapdragon 810" in table[0]
    assert table[2].split()[:3] == ["guideline", "scale", "variant"]
    assert [line.split()[:3] for line in table[4:]] == [["G1", "×1", v] for v in ("1:1", "1:2", "1:6", "1:12")]
    assert table[-1].split()[-2:] == ["57.6", "0.76"] and " 0.50 [" in table[-1]  # paper and ours, normalised


def test_verdicts_follow_the_numbers():
    agree = G.verdicts(_synthetic({"G1": {1: [100.0, 90.0, 80.0, 50.0]}}))["G1"]
    assert "1:1 is fastest, as the paper found" in agree and "0.50×" in agree and "0.76×" in agree
    close = G.verdicts(_synthetic({"G1": {1: [100.0, 90.0, 80.0, 99.0]}}))["G1"]
    assert "1:12 is within noise" in close
    unlike = G.verdicts(_synthetic({"G1": {1: [100.0, 90.0, 80.0, 130.0]}}))["G1"]
    assert "1:12 is fastest, unlike the paper's ARM where 1:1 was" in unlike
    g4 = G.verdicts(_synthetic({"G4": {1: [50, 60, 55, 70], 2: [50, 60, 55, 70], 4: [50, 52, 51, 49]}}))["G4"]
    assert "at ×1 and ×2, no ReLU, no shortcut is fastest, as the paper found" in g4
    assert "at ×4, ReLU, no shortcut is" in g4
    noisy = G.verdicts(_synthetic({"G1": {1: [100.0, 90.0, 80.0, 85.0]}}, rel_iqr=0.4))["G1"]
    assert "within noise" in noisy
    with pytest.raises(ValueError, match="timing"):
        G.verdicts(_synthetic({"G1": {1: [1, 1, 1, 1]}}), timing="cuda_graph")


def test_paper_tables_are_tables_1_to_4():
    t = G.PAPER_TABLES
    assert t["G1"]["speed"]["gpu"][1] == (1480, 1296, 876, 748)
    assert t["G2"]["speed"]["cpu"][4] == (2.3, 2.2, 2.1, 1.8)
    assert t["G3"]["speed"]["gpu"][1][2] == 752 and t["G4"]["speed"]["cpu"][1][3] == 66.3
    for g in G.GUIDELINES:
        for hw in ("gpu", "cpu"):
            assert all(len(v) == len(t[g]["variants"]) for v in t[g]["speed"][hw].values())
        assert t[g]["variants"][0] == t[g]["reference"]
    assert "1807.11164" in G.PAPER_SOURCE


def test_plot_has_one_panel_per_guideline():
    r = _synthetic({"G1": {1: [100.0, 90.0, 80.0, 50.0], 2: [9, 8, 7, 6]}, "G3": {1: [5, 4, 3, 2, 1], 2: [5, 4, 3, 2, 1]}})
    fig = G.plot_guidelines(r)
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 2
    assert len(panels[0].patches) == 4 * 2 * 2
    import matplotlib.pyplot as plt

    plt.close(fig)
    with pytest.raises(ValueError, match="guidelines"):
        G.plot_guidelines(r, guidelines=["G2"])


def test_verdict_names_paper_ties():
    # Table 3, ARM c = 128: 1-fragment, 2- and 4-fragment-series all run at 10.1 images/s.
    v = G.verdicts(_synthetic({"G3": {2: [10.0, 8.0, 7.0, 6.0, 5.0]}}))["G3"]
    assert "1-fragment is fastest, one of the paper's ARM fastest, where 1-fragment, 2-fragment-series and " \
           "4-fragment-series tie" in v


def test_gpu_results_compare_both_timings_with_the_gpu_column():
    r = _synthetic({"G2": {1: [100.0, 50.0, 30.0, 20.0]}}, channel_list="gpu", gpu=True)
    v = G.verdicts(r, timing="cuda_graph")["G2"]
    assert v.startswith("G2 on this GPU (Test GPU, batch 8, cuda_graph)")
    assert "as the paper found on its GPU" in v and "(paper GPU: 0.26×)" in v
    assert "batches/s" in G.comparison_table(r, "cuda_graph") and "launch" in G.TIMING_NOTES["cuda_graph"]


def test_g3_concat_reading_holds_flops_exactly():
    fl = [count_flops(v.build(), v.input_size()) for v in G.variants("G3", 1, "cpu", g3_merge="concat", hw=HW)]
    assert fl[3] == fl[4] == fl[0]  # parallel branches of c/k channels: no adjustment needed
    assert G.flops_spread(fl) <= 0.02

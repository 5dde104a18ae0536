import math

import pytest
import torch
from torch import nn

from course import measure
from course.env import pick, quick_mode


def test_count_flops_is_multiply_adds_of_convs_and_linears():
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    assert measure.count_flops(conv, (1, 16, 10, 10)) == 3 * 3 * 16 * 32 * 10 * 10
    net = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    # BN and ReLU are not counted, as in the papers' mult-adds.
    assert measure.count_flops(net, (1, 3, 4, 4)) == 3 * 8 * 16 + 128 * 5


def test_count_flops_batch_scales_and_leaves_training_mode():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    one = measure.count_flops(net, (1, 3, 8, 8))
    assert measure.count_flops(net, (4, 3, 8, 8)) == 4 * one
    assert net.training


def test_flops_by_module_sums_to_total():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1))
    by = measure.flops_by_module(net, (1, 3, 10, 10))
    assert by[""] == by["0"] + by["1"] == measure.count_flops(net, (1, 3, 10, 10))


def test_summary_totals_match_counts():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU())
    stats = measure.summary(net, (1, 3, 8, 8))
    assert stats.total_params == measure.count_params(net) == 3 * 8 * 9
    assert stats.total_mult_adds == measure.count_flops(net, (1, 3, 8, 8))


def test_conv_cost_formulas_mobilenet_v1():
    full = measure.conv_cost(3, 512, 512, 14)
    assert full["mult_adds"] == 3 * 3 * 512 * 512 * 14 * 14
    dw = measure.conv_cost(3, 512, 512, 14, groups=512)
    assert dw["params"] == 3 * 3 * 512
    with pytest.raises(ValueError, match="groups=3 must divide"):
        measure.conv_cost(3, 16, 16, 8, groups=3)


def test_mac_formulas_shufflenet_v2():
    assert measure.mac_conv1x1(56, 56, 128, 128) == 56 * 56 * 256 + 128 * 128
    assert measure.mac_conv1x1(56, 56, 128, 128, groups=4) == 56 * 56 * 256 + 128 * 128 // 4
    h = w = 28
    flops = h * w * 64 * 64
    bound = measure.mac_lower_bound(h, w, flops)
    assert measure.mac_conv1x1(h, w, 64, 64) == pytest.approx(bound)  # equality at c1 == c2
    for c1, c2 in [(32, 128), (16, 256), (128, 32)]:
        assert measure.mac_conv1x1(h, w, c1, c2) > bound
    with pytest.raises(ValueError, match="c1 must be a positive integer, got 0"):
        measure.mac_conv1x1(1, 1, 0, 4)


def test_mac_point_and_bound():
    p = measure.mac_point(56, 56, 128, 128)
    assert p["flops"] == 56 * 56 * 128 * 128
    assert p["mac"] == measure.mac_conv1x1(56, 56, 128, 128)
    assert p["mac_over_bound"] == pytest.approx(1.0)
    q = measure.mac_point(56, 56, 64, 256)  # same FLOPs, unequal widths
    assert q["flops"] == p["flops"] and q["mac"] > p["mac"]
    with pytest.raises(ValueError, match="groups"):
        measure.mac_point(56, 56, 128, 128, groups=3)


def test_mac_curve_minimum_at_equal_widths():
    curve = measure.mac_curve(56, 56, 56 * 56 * 128 * 128)
    best = curve["ratios"][curve["mac"].argmin()]
    assert best == pytest.approx(1.0)
    assert curve["mac"].min() == pytest.approx(curve["bound"])
    # the real-valued formula agrees with mac_conv1x1 at integer widths
    c = measure.mac_curve(28, 28, 28 * 28 * 64 * 256, [4.0])
    assert c["mac"][0] == pytest.approx(measure.mac_conv1x1(28, 28, 64, 256))
    with pytest.raises(ValueError, match="flops"):
        measure.mac_curve(28, 28, 0)


def test_latency_result_records_what_produced_it():
    res = measure.latency(nn.Conv2d(3, 4, 3), (2, 3, 16, 16), device="cpu", min_run_time=0.02)
    assert res.device == "cpu" and res.batch == 2 and res.dtype == "float32"
    assert res.threads == torch.get_num_threads() and res.torch_version == torch.__version__
    assert res.median_ms > 0 and res.iqr_ms >= 0 and len(res.times_ms) >= 1
    assert math.isclose(res.per_second, 2 / (res.median_ms / 1000))
    line = str(res)
    assert "\n" not in line and "batch 2" in line and "threads" in line


def test_latency_falls_back_to_cpu_with_a_note(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = measure.latency(nn.Identity(), (1, 1, 1, 1), device="cuda", cuda_graph=True, min_run_time=0.01)
    assert res.device == "cpu" and not res.cuda_graph
    assert "no CUDA GPU is visible" in res.note and "CUDA graphs need a GPU" in res.note


def test_latency_accepts_callables_and_rejects_bad_input():
    res = measure.latency(lambda: sum(range(100)), (8,), device="cpu", min_run_time=0.01)
    assert res.batch == 8
    with pytest.raises(ValueError, match="input_size must be four positive ints"):
        measure.latency(nn.Identity(), (1, 3, 224), device="cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device .*, got 'mps'"):
        measure.latency(nn.Identity(), device="mps")


def test_interleaved_ratio_reports_median_of_round_ratios():
    x = torch.randn(256, 256)
    slow = lambda: [x @ x for _ in range(4)]  # noqa: E731
    fast = lambda: x @ x  # noqa: E731
    res = measure.interleaved_ratio(slow, fast, rounds=5, number=3)
    assert res.rounds == 5 and res.q1 <= res.ratio <= res.q3
    assert res.median_a_ms > 0 and res.median_b_ms > 0 and "5 rounds" in str(res)
    with pytest.raises(ValueError, match="rounds and number must be positive"):
        measure.interleaved_ratio(fast, fast, rounds=0)


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert quick_mode() and pick(100, 3) == 3
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert not quick_mode() and pick(100, 3) == 100


def test_latency_leaves_the_models_device_dtype_and_mode_as_they_were():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = measure.latency(net, (2, 3, 8, 8), device="cpu", dtype=torch.float64, min_run_time=0.01)
    assert res.dtype == "float64"
    assert net.training
    assert all(v.dtype == before[k].dtype and v.device == before[k].device for k, v in net.state_dict().items())
    # Already on the device in the dtype: timed itself in eval mode (BN statistics unchanged), then back to train.
    measure.latency(net, (2, 3, 8, 8), device="cpu", min_run_time=0.01)
    assert net.training
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    frozen = nn.Conv2d(3, 4, 3).eval()
    measure.latency(frozen, (1, 3, 8, 8), device="cpu", dtype=torch.float64, min_run_time=0.01)
    assert not frozen.training and frozen.weight.dtype == torch.float32

"""course.ablations: every variant builds and runs, keys name networks, summaries, verdicts, reuse, the reference file."""

import json
import math

import pytest
import torch

from course import ablations as A
from course.classify import recipe

ALL_VARIANTS = [(name, v) for name, abl in A.ABLATIONS.items() for v in abl.variants]


def _signature(v, mode):
    """The variant's output on a fixed input, its weights drawn from a fixed seed: equal for one network."""
    size = v.imgsz or recipe(mode)["imgsz"]
    torch.manual_seed(0)
    model = A.build_variant(v).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    shapes = tuple((k, tuple(t.shape)) for k, t in model.state_dict().items())
    with torch.no_grad():
        return (size, shapes), model(x)


@pytest.mark.parametrize("mode", ["full", "quick"])
def test_every_variant_builds_and_runs_at_its_training_size(mode):
    for name, v in ALL_VARIANTS:
        (size, _), y = _signature(v, mode)
        assert size == (v.imgsz or recipe(mode)["imgsz"])
        assert tuple(y.shape) == (1, 10) and torch.isfinite(y).all(), (name, v.label)


def test_each_ablation_is_well_formed():
    for name, abl in A.ABLATIONS.items():
        assert len(abl.variants) >= 2 and abl.question and abl.paper, name
        assert len(set(abl.labels())) == len(abl.labels()), name  # labels unique within an ablation
        assert abl.baseline in abl.labels(), name
        assert len({v.key for v in abl.variants}) == len(abl.variants), name
        for v in abl.variants:
            assert abl.variant(v.label) is v
    with pytest.raises(ValueError, match="label must be one of"):
        A.ABLATIONS["ch01_width"].variant("no such label")


def test_shared_keys_are_identical_networks_and_different_keys_are_not():
    by_key = {}
    for _, v in ALL_VARIANTS:
        by_key.setdefault(v.key, []).append(v)
    assert len(by_key) < len(ALL_VARIANTS)  # some runs are shared between ablations of a chapter
    sigs = {}
    for key, vs in by_key.items():
        specs = {(v.model, v.width_mult, v.surgery, v.imgsz, v.model_kwargs) for v in vs}
        assert len(specs) == 1, (key, specs)  # one key, one spec (labels may differ)
        sigs[key] = _signature(vs[0], "full")
        size, y = _signature(vs[-1], "full")
        assert size == sigs[key][0] and torch.equal(y, sigs[key][1]), key
    keys = list(sigs)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            (sa, ya), (sb, yb) = sigs[a], sigs[b]
            # a freshly initialised net's logits are tiny (about 1e-16 here): compare them relatively
            assert sa != sb or not torch.allclose(ya, yb, rtol=1e-3, atol=0), f"{a} and {b}: one network, one size"


def test_variant_cost_counts_the_built_network():
    v = A.ABLATIONS["ch01_resolution"].variants[0]
    cost = A.variant_cost(v, "quick")
    assert cost["imgsz"] == v.imgsz
    assert cost["params"] == sum(p.numel() for p in A.build_variant(v).parameters())
    default = A.ABLATIONS["ch01_resolution"].variant(A.ABLATIONS["ch01_resolution"].baseline)
    assert A.variant_cost(default, "quick")["imgsz"] == recipe("quick")["imgsz"]
    bigger = A.variant_cost(default, "full")
    assert bigger["imgsz"] == recipe("full")["imgsz"] and bigger["params"] == A.variant_cost(default, "quick")["params"]


def _row(label, acc, seed=0, **extra):
    return dict(key=label.lower(), label=label, seed=seed, test_acc=acc, params=10, macs=100, imgsz=32,
                wall_time_s=2.0 + seed, **extra)


def test_summarize_mean_and_std_in_first_seen_order():
    rows = [_row("b", 0.5, 0), _row("a", 0.7, 0), _row("b", 0.7, 1), _row("b", 0.6, 2), _row("a", 0.9, 1)]
    s = A.summarize(rows)
    assert [r["label"] for r in s] == ["b", "a"]
    b, a = s
    assert b["seeds"] == 3 and b["test_acc"] == pytest.approx(0.6) and b["test_acc_std"] == pytest.approx(0.1)
    assert a["seeds"] == 2 and a["test_acc"] == pytest.approx(0.8) and a["test_acc_std"] == pytest.approx(0.02 ** 0.5)
    assert b["wall_time_s"] == pytest.approx(3.0) and (b["params"], b["macs"], b["imgsz"]) == (10, 100, 32)
    assert "latency_ms" not in b
    one = A.summarize([_row("c", 0.4, latency_ms=3.5)])[0]
    assert one["seeds"] == 1 and math.isnan(one["test_acc_std"]) and one["latency_ms"] == 3.5


def _summary(**acc_std_seeds):
    return [dict(label=k, test_acc=a, test_acc_std=s, seeds=n) for k, (a, s, n) in acc_std_seeds.items()]


def test_difference_is_real_only_beyond_twice_the_spread_with_seeds():
    s = _summary(x=(0.80, 0.01, 3), y=(0.70, 0.02, 3), z=(0.75, 0.03, 3), w=(0.60, float("nan"), 1))
    d = A.difference(s, "x", "y")
    assert d["delta"] == pytest.approx(0.10) and d["spread"] == pytest.approx(0.02) and d["real"]
    assert "x is better than y by 10.0 points" in d["words"]
    d = A.difference(s, "y", "x")
    assert d["delta"] == pytest.approx(-0.10) and d["real"] and "y is worse than x" in d["words"]
    d = A.difference(s, "x", "z")  # 5 points, spread 3: within 2 × 3
    assert not d["real"] and "within twice the seed-to-seed spread (3.0)" in d["words"]
    d = A.difference(s, "x", "w")  # one seed: never a difference, however large
    assert not d["real"] and "one seed" in d["words"] and d["delta"] == pytest.approx(0.20)


def test_difference_flags_a_network_that_stayed_near_chance():
    s = _summary(sep=(0.41, 0.07, 3), full=(0.097, 0.01, 3), wide=(0.56, 0.09, 3))
    d = A.difference(s, "sep", "full")
    assert d["real"] and d["near_chance"] == ["full"]
    assert "sep is better than full" in d["words"] and "full ended near chance (10 %)" in d["words"]
    assert "did not learn within this recipe's budget" in d["words"]
    assert A.difference(s, "wide", "sep")["near_chance"] == [] and "chance" not in A.difference(s, "wide", "sep")["words"]
    both = A.difference(_summary(p=(0.12, 0.01, 3), q=(0.10, 0.01, 3)), "p", "q")
    assert both["near_chance"] == ["p", "q"] and "p and q ended near chance" in both["words"] and "they did" in both["words"]


def test_difference_names_the_bad_argument():
    s = _summary(x=(0.8, 0.01, 3), y=(0.7, 0.01, 3))
    with pytest.raises(ValueError, match=r"^a must be one of \['x', 'y'\], got 'q'"):
        A.difference(s, "q", "y")
    with pytest.raises(ValueError, match="^b must be one of"):
        A.difference(s, "x", "q")


def test_run_ablation_names_bad_arguments():
    with pytest.raises(ValueError, match="^name must be one of"):
        A.run_ablation("ch09_nothing")
    for seeds in ([], [0.5], [True], ["0"]):
        with pytest.raises(ValueError, match="^seeds must be"):
            A.run_ablation("ch01_separable", seeds=seeds)


def test_run_ablation_trains_in_quick_mode_and_reuses_done(monkeypatch):
    done = {}
    rows = A.run_ablation("ch01_separable", mode="quick", threads=1, progress=False, done=done)
    abl = A.ABLATIONS["ch01_separable"]
    assert [r["label"] for r in rows] == abl.labels() and {r["seed"] for r in rows} == {0}
    assert set(done) == {(v.key, 0) for v in abl.variants}
    for r in rows:
        assert 0 <= r["test_acc"] <= 1 and r["params"] > 0 and r["macs"] > 0 and r["imgsz"] == recipe("quick")["imgsz"]
        assert r["device"] == "cpu" and r["threads"] == 1 and r["torch_version"] == torch.__version__

    trained = []

    def fake_run_variant(v, seed=0, mode=None, threads=None, progress=True):
        trained.append((v.key, seed))
        return _row(v.label, 0.5, seed) | {"key": v.key}

    monkeypatch.setattr(A, "run_variant", fake_run_variant)
    again = A.run_ablation("ch01_separable", mode="quick", progress=False, done=done)
    assert trained == [] and again == rows  # nothing retrained
    width_keys = {v.key for v in A.ABLATIONS["ch01_width"].variants}
    shared = width_keys & {v.key for v in abl.variants}
    assert shared, "chapter 01's width and separable sets are expected to share a network"
    width = A.run_ablation("ch01_width", mode="quick", progress=False, done=done)
    assert set(trained) == {(k, 0) for k in width_keys - shared}  # the shared run is reused, not trained again
    assert [r["label"] for r in width] == A.ABLATIONS["ch01_width"].labels()  # under this ablation's labels
    reused = [r for r in width if r["key"] in shared]
    assert all(r["test_acc"] == done[(r["key"], 0)]["test_acc"] for r in reused)
    trained.clear()
    two_seeds = A.run_ablation("ch01_separable", seeds=[0, 1], mode="quick", progress=False, done=done)
    assert [(r["label"], r["seed"]) for r in two_seeds] == [(lab, s) for lab in abl.labels() for s in (0, 1)]
    assert trained == [(v.key, 1) for v in abl.variants]  # only the new seed is trained


def test_reference_rows_none_without_the_file_and_rows_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "REFERENCE_PATH", tmp_path / "absent.json")
    assert A.load_reference() is None and A.reference_rows("ch01_width") is None
    rows = [dict(_row(v.label, 0.5 + 0.1 * i, s), key=v.key) for i, v in enumerate(A.ABLATIONS["ch01_separable"].variants)
            for s in (0, 1)]
    path = tmp_path / "ablations_cpu.json"
    path.write_text(json.dumps(A.as_json({"ch01_separable": rows}, "quick", [0, 1])))
    monkeypatch.setattr(A, "REFERENCE_PATH", path)
    ref = A.reference_rows("ch01_separable")
    assert [r["label"] for r in ref] == A.ABLATIONS["ch01_separable"].labels()
    assert all(r["seeds"] == 2 for r in ref) and ref[1]["test_acc"] == pytest.approx(0.6)
    assert A.reference_rows("ch01_width") is None  # not in this file
    assert A.reference_rows("ch01_separable", A.load_reference(path)) == ref
    unfinished = A.as_json({"ch01_separable": rows, "ch01_width": []}, "quick", [0, 1])
    assert A.reference_rows("ch01_width", unfinished) is None  # a set with no finished run reads as absent
    payload = json.loads(path.read_text())
    assert payload["machine"]["torch_version"] == torch.__version__ and payload["mode"] == "quick"
    assert payload["variants"]["ch01_separable"][0]["model"] == "mobilenet_v1"


def test_measure_latencies_adds_cpu_latency():
    abl = A.ABLATIONS["ch01_separable"]
    summary = [dict(label=v.label, key=v.key) for v in abl.variants[:1]]
    out = A.measure_latencies(summary, "ch01_separable", mode="quick", threads=1)
    assert out[0]["latency_ms"] > 0 and out[0]["latency_iqr_ms"] >= 0 and out[0]["latency_threads"] == 1
    assert "latency_ms" not in summary[0]  # a new list, the input untouched


def test_paper_points_are_complete():
    for p in A.PAPER_POINTS:
        assert set(p) == {"label", "top1", "madds", "source"} and 0 < p["top1"] < 100 and p["madds"] > 0
    assert len({p["label"] for p in A.PAPER_POINTS}) == len(A.PAPER_POINTS)


@pytest.mark.slow
def test_benchmark_smoke_run_writes_machine_rows_and_summary_and_resumes(tmp_path):
    """``benchmarks/ablations.py --smoke``: quick mode, one seed, two small ablations (about a minute)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "a.json"
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    env.pop("COURSE_QUICK", None)  # --smoke alone must choose quick mode
    cmd = [sys.executable, str(repo / "benchmarks" / "ablations.py"), "--smoke", "--jobs", "1", "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "quick" and report["seeds"] == [0] and report["recipe"] == recipe("quick")
    for machine in (report["machine"], report["machine_after_training"]):
        assert machine["device"] == "cpu" and machine["torch_version"] == torch.__version__
        assert machine["threads"] >= 1 and machine["date"] and machine["cpu"]
    assert report["machine"]["jobs"] == 1 and report["total_wall_s"] > 0
    assert len(report["ablations"]) == 2
    for name, abl in report["ablations"].items():
        labels = A.ABLATIONS[name].labels()
        assert abl["question"] == A.ABLATIONS[name].question
        assert [r["label"] for r in abl["rows"]] == labels and {r["seed"] for r in abl["rows"]} == {0}
        assert [r["label"] for r in abl["summary"]] == labels
        for r in abl["summary"]:
            assert r["latency_ms"] > 0 and r["seeds"] == 1 and 0 <= r["test_acc"] <= 1 and r["macs"] > 0
        assert f"{name}: {A.ABLATIONS[name].question}" in done.stdout
    assert f"wrote {out}" in done.stdout and out.with_suffix(".png").stat().st_size > 0
    assert not (tmp_path / "a.partial.json").exists()  # progress lives beside the JSON only while training
    assert report["calibration"]["comparisons_total"] >= 1 and "calibration (quick mode" in done.stdout
    assert A.reference_rows(next(iter(report["ablations"])), A.load_reference(out))  # what the chapters read

    n_runs = len({r["key"] for abl in report["ablations"].values() for r in abl["rows"]})
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming: {n_runs} runs already in {out}" in again.stdout and "0 training runs to do" in again.stdout
    assert json.loads(out.read_text())["ablations"].keys() == report["ablations"].keys()

    out.with_suffix(".png").unlink()
    redo = subprocess.run(cmd + ["--report"], env=env, capture_output=True, text=True, timeout=600)
    assert redo.returncode == 0 and "training runs to do" not in redo.stdout, redo.stderr[-3000:]
    assert out.with_suffix(".png").is_file() and json.loads(out.read_text())["calibration"] == report["calibration"]


def _benchmark(args, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(repo / "benchmarks" / "ablations.py"), *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.mark.slow
def test_benchmark_does_not_resume_rows_of_another_recipe(tmp_path):
    abl = A.ABLATIONS["ch01_separable"]
    rows = [dict(_row(v.label, 0.5), key=v.key) for v in abl.variants]
    payload = A.as_json({"ch01_separable": rows}, "quick", [0])
    payload["recipe"]["epochs"] += 5  # an older calibration
    out = tmp_path / "a.json"
    out.write_text(json.dumps(payload))
    done = _benchmark(["--smoke", "--only", "ch01_separable", "--jobs", "1", "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(abl.variants)} training runs to do" in done.stdout


def _set(name, accs):
    """A summarised ablation set: ``accs`` maps each label of ``ABLATIONS[name]`` to (mean, std)."""
    return dict(summary=[dict(label=v.label, key=v.key, seeds=3, test_acc=accs[v.label][0], test_acc_std=accs[v.label][1])
                         for v in A.ABLATIONS[name].variants])


def test_calibration_holds_for_a_run_that_ranks_and_fails_for_a_saturated_one():
    width = A.ABLATIONS["ch01_width"]
    spaced = {v.label: (0.2 + 0.1 * i, 0.01) for i, v in enumerate(width.variants)}
    cal = A.calibration({"ch01_width": _set("ch01_width", spaced)})
    assert cal["best"] == width.baseline and cal["best_below_ceiling"] and cal["smallest_worse"]
    assert cal["comparisons_total"] == len(width.variants) - 1 == cal["comparisons_real"]
    assert all(c["b"] == width.baseline for c in cal["comparisons"])

    saturated = {v.label: (0.97 + 0.005 * i, 0.02) for i, v in enumerate(width.variants)}
    cal = A.calibration({"ch01_width": _set("ch01_width", saturated)})
    assert not cal["best_below_ceiling"] and not cal["smallest_worse"] and cal["comparisons_real"] == 0


def test_calibration_counts_comparisons_of_every_set_and_refuses_an_empty_run():
    sets = {n: _set(n, {v.label: (0.5, 0.2) for v in A.ABLATIONS[n].variants}) for n in ("ch02_bottleneck", "ch04_shuffle")}
    cal = A.calibration(sets)
    assert cal["comparisons_total"] == sum(len(A.ABLATIONS[n].variants) - 1 for n in sets) and cal["comparisons_real"] == 0
    assert "smallest" not in cal  # MobileNet V1 0.25 was not in these sets
    with pytest.raises(ValueError, match="ablations is empty"):
        A.calibration({})


# A misspelt ablation name is an error, never a silent None.

def test_measure_latencies_names_a_bad_ablation():
    with pytest.raises(ValueError, match="^name must be one of"):
        A.measure_latencies([], "ch09_nothing")


def test_reference_rows_names_a_bad_ablation():
    with pytest.raises(ValueError, match="^name must be one of"):
        A.reference_rows("ch09_nothing", {"ablations": {}})

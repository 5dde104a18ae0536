"""benchmarks/gpu_check.py: its CPU-side parts (the smoke run takes the GPU run's code path at tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from course.models import TORCHVISION_NAMES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_without_cuda_it_stops_with_a_clear_message(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)]) != 0
    assert "no CUDA GPU visible" in capsys.readouterr().err
    assert not out.exists()
    assert gpu_check.main(["--device", "cpu", "--out", str(out)]) != 0   # the full sizes need a GPU
    assert "--smoke" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_on_the_cpu_passes_every_step_and_reports_them(gpu_check, tmp_path, capsys, one_thread):
    out = tmp_path / "report" / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == gpu_check.SCHEMA and report["ok"] and report["smoke"]
    assert report["torch"] == torch.__version__ and "CPU" in report["device_name"]
    assert list(report["steps"]) == list(gpu_check.STEPS)
    assert all(step["ok"] for step in report["steps"].values()), report["steps"]
    yolo = report["steps"]["yolo"]["figures"]
    assert yolo["epochs"] == 2 and not yolo["amp"] and yolo["map50_half"] == yolo["map50_fp32"]  # CPU: no fp16
    rows = report["steps"]["latency"]["figures"]["rows"]
    assert {(r["model"], r["batch"]) for r in rows} == {(m, b) for m in TORCHVISION_NAMES for b in (1, 2)}
    assert all(r["eager_ms"] > 0 and r["graph_ms"] > 0 and "CUDA graphs need a GPU" in r["note"] for r in rows)
    guidelines = report["steps"]["guidelines"]["figures"]
    assert guidelines["timings"] == ["eager"] and Path(guidelines["json"]).is_file()
    assert Path(guidelines["json"]).parent == out.parent and Path(guidelines["plot"]).is_file()
    notebooks = report["steps"]["notebooks"]["figures"]
    assert list(notebooks) == list(gpu_check.CHAPTERS)
    assert all("collected" in n["summary"] or "tests" in n["summary"] for n in notebooks.values()), notebooks
    table = gpu_check.table(report)
    assert table in capsys.readouterr().out
    steps, timings = table.split("\n\n")
    title, head, _, *rows = steps.splitlines()
    assert "SMOKE" in title and head.split() == ["step", "result", "s", "summary"]
    assert [row.split()[:2] for row in rows] == [[name, "ok"] for name in gpu_check.STEPS]
    head, _, *rows = timings.splitlines()
    assert head.split() == ["model", "batch", "eager", "ms", "graph", "ms"]
    assert [row.split()[0] for row in rows] == [r["model"] for r in report["steps"]["latency"]["figures"]["rows"]]
    assert "mobilenet_v3_small" in timings


def test_a_failing_step_makes_the_exit_status_non_zero(gpu_check, tmp_path, monkeypatch, capsys):
    def broken(dev, sizes, work, out_dir):
        raise gpu_check.CheckFailed("latency moved the model")

    monkeypatch.setitem(gpu_check.STEPS, "latency", broken)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--device", "cpu", "--smoke", "--steps", "latency", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert not report["ok"] and "latency moved the model" in report["steps"]["latency"]["error"]
    row = gpu_check.table(report).splitlines()[3]
    assert row.split()[:2] == ["latency", "FAIL"] and row.endswith("latency moved the model")
    assert row in capsys.readouterr().out

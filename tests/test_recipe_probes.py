"""benchmarks/recipe_probes.py: probe specs are checked before any training, and a probe row says what produced it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import recipe_probes  # noqa: E402


def test_probe_specs_parse_and_bad_ones_are_named():
    assert recipe_probes.parse_probe("mobilenet_v1:0.5:lr=3e-3,warmup_epochs=1") == dict(
        name="mobilenet_v1", width_mult=0.5, overrides=dict(lr=3e-3, warmup_epochs=1), surgery=[])
    assert recipe_probes.parse_probe("shufflenet_v2:1")["overrides"] == {}
    assert recipe_probes.parse_probe("mobilenet_v3_small:1:surgery=no_se+hswish_to_relu,lr=1e-3") == dict(
        name="mobilenet_v3_small", width_mult=1.0, overrides=dict(lr=1e-3), surgery=["no_se", "hswish_to_relu"])
    for text, match in (("mobilenet_v1", "must be name:width"), ("resnet18:1.0", "name must be one of"),
                        ("mobilenet_v1:half", "width must be a number"), ("mobilenet_v1:1:lrate=1", "key of the recipe"),
                        ("mobilenet_v1:1:lr=fast", "must be a JSON value"),
                        ("mobilenet_v1:1:surgery=no_conv", r"surgery \['no_conv'\] unknown")):
        with pytest.raises(ValueError, match=match):
            recipe_probes.parse_probe(text)


def test_smoke_probe_appends_a_row_with_its_recipe_and_machine(tmp_path):
    out = tmp_path / "probes.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "COURSE_QUICK"}  # --smoke alone must choose quick mode
    for _ in range(2):
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "recipe_probes.py"), "--smoke", "--jobs", "1",
                        "--out", str(out)], check=True, env=env, capture_output=True, text=True, timeout=300)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["test_acc"] == rows[1]["test_acc"]  # appended, and the same seed reproduces
    row = rows[0]
    assert row["mode"] == "quick" and row["recipe"]["lr"] == 1e-3 and "lr_by_model" not in row["recipe"]
    assert {"cpu", "torch_version", "date", "load_average_1min", "history"} <= set(row) and row["threads"] == 1
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "recipe_probes.py"), "mobilenet_v1:0:x=1",
                          "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "key of the recipe" in bad.stderr and len(out.read_text().splitlines()) == 2

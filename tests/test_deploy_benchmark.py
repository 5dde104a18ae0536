"""benchmarks/deploy.py: the smoke run takes the reference run's whole path at the quick sizes and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def deploy():
    spec = importlib.util.spec_from_file_location("deploy_benchmark", REPO / "benchmarks" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_bad_arguments_are_refused(deploy, tmp_path, capsys):
    with pytest.raises(SystemExit):
        deploy.parse_args(["--checkpoint", "no-equals-sign"])
    assert "LABEL=PATH" in capsys.readouterr().err
    assert deploy.main(["--threads", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_smoke_run_writes_every_row_and_the_machine_it_ran_on(deploy, tmp_path, capsys):
    from course.deploy.study import ACTIVATION_PAIRS, CLASSIFIERS
    from course.widgets.ch07_deploy import format_rows, reference_meta

    threads = torch.get_num_threads()
    out = tmp_path / "deploy.json"
    try:
        assert deploy.main(["--smoke", "--threads", "1", "--rounds", "1", "--out", str(out),
                            "--workdir", str(tmp_path / "work")]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    meta = report["meta"]
    assert meta["schema"] == deploy.SCHEMA and meta["smoke"] and meta["threads"] == 1
    assert meta["torch"] == torch.__version__ and meta["onnxruntime"] and len(meta["load_average"]) == 3
    assert "compile" not in meta["runtimes"] and "left out" in meta["compile_note"]
    from course import classify
    from course.yolo import train as yolo_train
    as_read = json.loads(json.dumps(dict(classify_recipe=classify.recipe("quick"), detector_recipe=yolo_train.recipe("quick"))))
    assert {k: meta[k] for k in as_read} == as_read  # what trained the models, not only the mode's name
    models = {r["model"] for r in report["rows"]}
    assert models == set(CLASSIFIERS) | {"YOLOv5n-ShuffleNetV2"}
    assert {(r["runtime"], r["batch"]) for r in report["rows"] if r["model"] == "MobileNet V2"} >= {
        ("eager", 1), ("onnxruntime", 8), ("onnxruntime_int8", 1), ("onnxruntime_int8_per_tensor", 8)}
    assert {r["metric"] for r in report["rows"]} == {"top-1", "mAP@0.5"}
    assert len(report["activation"]) == 2 * len(ACTIVATION_PAIRS)
    assert set(report["depthwise_spread"]) == set(CLASSIFIERS)
    assert out.with_suffix(".png").is_file()
    assert "SMOKE run" in reference_meta(report)
    assert format_rows(report["rows"]).splitlines()[2] in capsys.readouterr().out

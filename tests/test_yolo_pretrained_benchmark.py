"""benchmarks/yolo_pretrained.py: scratch vs pretrained arms, time to accuracy, the reused scratch arm."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from course.yolo import transfer as T

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("yolo_pretrained", BENCH / "yolo_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(history_map50, epoch_s=10.0, test=0.5):
    return dict(seed=0, test=dict(map50=test, map=test / 2),
                history=[dict(epoch=i, map50=m, time_s=epoch_s) for i, m in enumerate(history_map50)])


def test_reach_time_counts_the_epochs_until_the_threshold():
    h = _run([0.1, 0.3, 0.6, 0.5])["history"]
    assert T.reach_time(h, 0.3) == 20.0
    assert T.reach_time(h, 0.6) == 30.0
    assert T.reach_time(h, 0.7) is None
    assert T.reach_time(h, 0.0) is None  # nothing learned from scratch: no threshold to reach


def test_summary_threshold_is_a_fraction_of_scratch_best_and_words_follow_the_spread():
    arms = {"D": {"scratch": [_run([0.2, 0.4], test=0.40), _run([0.2, 0.6], test=0.42)],
                  "pretrained": [_run([0.5, 0.7], test=0.60), _run([0.45, 0.65], test=0.62)]}}
    s = T.summarize(arms, reach=0.9)["D"]
    assert s["threshold_map50"] == pytest.approx(0.9 * 0.5)
    assert s["arms"]["pretrained"]["reach_times"] == [10.0, 10.0]
    assert s["arms"]["scratch"]["reach_times"] == [None, 20.0] and s["arms"]["scratch"]["reached"] == "1/2"
    sentence = T.words({"D": s})["D"]
    assert "D pretrained" in sentence and "is ahead of" in sentence and "1/2 runs" in sentence


def test_scratch_from_refuses_another_recipe_and_missing_seeds(tmp_path):
    bench = _bench()
    rec = dict(a=1)
    ref = dict(meta=dict(schema=bench.FULL_SCHEMA, recipe=rec),
               models=[dict(name="D", runs=[dict(seed=0, x=1), dict(seed=1, x=2)])])
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    assert [r["x"] for r in bench.scratch_from(path, rec, ["D"], [1, 0])["D"]] == [2, 1]
    with pytest.raises(ValueError, match="another recipe"):
        bench.scratch_from(path, dict(a=2), ["D"], [0])
    with pytest.raises(ValueError, match="seeds \\[2\\]"):
        bench.scratch_from(path, rec, ["D"], [0, 2])
    with pytest.raises(ValueError, match="no runs of \\['E'\\]"):
        bench.scratch_from(path, rec, ["D", "E"], [0])


def test_smoke_trains_both_arms_from_a_pretrained_classifier(tmp_path):
    """The reference command at tiny sizes: one detector, one seed, scratch / pretrained / frozen."""
    bench = _bench()
    out = tmp_path / "pre.json"
    threads = torch.get_num_threads()
    try:
        ref = bench.main(["--smoke", "--models", "MobileNetV3-Small", "--freeze-epochs", "1", "--out", str(out),
                          "--project", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"),
                          "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved["meta"]["schema"] == bench.SCHEMA and saved["meta"]["threads"] == 1
    arms = saved["arms"]["MobileNetV3-Small"]
    assert set(arms) == {"scratch", "pretrained", "pretrained+frozen"}
    assert "start" not in arms["scratch"][0] and arms["pretrained"][0]["start"]["pretrained"].endswith("_smoke.pt")
    assert arms["pretrained+frozen"][0]["start"]["freeze_epochs"] == 1
    report = saved["load_reports"]["MobileNetV3-Small"]
    # only the SE squeezes differ (the detector's hidden // 4, the classifier's rounded to 8): 5 SE blocks x 4 tensors
    assert report["loaded"] > 100 and report["shape_mismatch"] == 20 and report["head"] > 0
    assert saved["classifiers"][0]["classifier"] == "mobilenet_v3_small"
    assert out.with_suffix(".png").is_file() and ref["words"] == saved["words"]
    again = bench.main(["--smoke", "--replot", "--out", str(out)])
    assert again["words"] == saved["words"]
    loaded, sentence = T.load_transfer_reference(out)
    assert loaded["words"] == saved["words"] and sentence.startswith("REFERENCE")
    with pytest.raises(ValueError, match="--reach"):
        bench.main(["--smoke", "--reach", "1.5", "--out", str(out)])


def test_missing_transfer_reference_says_how_to_record_it(tmp_path):
    ref, sentence = T.load_transfer_reference(tmp_path / "none.json")
    assert ref is None and "benchmarks/yolo_pretrained.py" in sentence


def test_resume_takes_only_a_run_with_the_same_key(tmp_path, capsys):
    bench = _bench()
    progress = tmp_path / "pre.partial.json"
    key = dict(recipe=dict(a=1), freeze_epochs=0, scratch_from=None)
    assert bench.resume(progress, key) == {}
    progress.write_text(json.dumps(dict(key=key, runs={"D/scratch/0": dict(seed=0)})))
    assert bench.resume(progress, key) == {"D/scratch/0": dict(seed=0)}
    assert bench.resume(progress, dict(key, freeze_epochs=5)) == {}
    assert "not resuming" in capsys.readouterr().out

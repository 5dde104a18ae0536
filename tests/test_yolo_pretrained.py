"""load_backbone: a course classifier's weights land in the swapped detector, tensor for tensor."""

import pytest
import torch
from torch import nn

from course.models import build_model, randomize_batchnorm
from course.yolo.model import DetectionModel
from course.yolo.pretrained import backbone_rows, freeze_backbone, load_backbone, unfreeze


def _pair(classifier: str, cfg: str, seed: int = 0):
    torch.manual_seed(seed)
    source = randomize_batchnorm(build_model(classifier), seed=seed)
    return source, DetectionModel(cfg, nc=4)


def _before(detector):
    return {k: v.clone() for k, v in detector.state_dict().items()}


@pytest.fixture(scope="module")
def mbv3():
    source, detector = _pair("mobilenet_v3_small", "yolov5n-mobilenetv3small.yaml")
    before = _before(detector)
    report = load_backbone(detector, source.state_dict(), verbose=False)
    return source, detector, before, report


def test_loaded_tensors_equal_the_classifiers(mbv3):
    source, detector, before, report = mbv3
    src, dst = source.state_dict(), detector.state_dict()
    assert len(report.loaded) > 200
    for dst_key, src_key in report.loaded:
        assert torch.equal(dst[dst_key], src[src_key]), dst_key
    changed = [k for k, _ in report.loaded if k.endswith("weight") and not torch.equal(before[k], dst[k])]
    assert changed, "the copy left every weight as it was"


def test_mapping_follows_the_yaml_rows(mbv3):
    _, _, _, report = mbv3
    pairs = dict(report.loaded)
    assert pairs["model.0.0.weight"] == "features.0.0.weight"
    assert pairs["model.11.block.3.0.weight"] == "features.11.block.3.0.weight"


def test_head_and_neck_are_reported_random_and_untouched(mbv3):
    _, detector, before, report = mbv3
    n = backbone_rows(detector)
    dst = detector.state_dict()
    assert report.head == [k for k in dst if int(k.split(".")[1]) >= n]
    assert any(k.startswith(f"model.{len(detector.model) - 1}.") for k in report.head)  # Detect
    for k in report.head:
        assert torch.equal(dst[k], before[k]), k
    assert all(k.startswith(("classifier.", "features.12.")) for k in report.unused)


def test_shape_mismatch_is_reported_not_loaded(mbv3):
    _, detector, before, report = mbv3
    dst = detector.state_dict()
    mismatched = {d: (a, b) for d, _, a, b in report.shape_mismatch}
    # the detector's SE squeezes hidden // 4 (YOLOv5-Lite); the classifier rounds to a multiple of 8
    assert mismatched["model.1.block.1.fc1.weight"] == ((4, 16, 1, 1), (8, 16, 1, 1))
    assert "model.1.block.1.fc1.weight" not in dict(report.loaded)
    for k in mismatched:
        assert torch.equal(dst[k], before[k]), k


def test_a_module_with_one_wrong_shape_is_left_whole():
    source, detector = _pair("mobilenet_v3_small", "yolov5n-mobilenetv3small.yaml", seed=1)
    state = dict(source.state_dict())
    state["features.2.block.0.1.weight"] = torch.ones(71)
    before = _before(detector)
    report = load_backbone(detector, state, verbose=False)
    module = {d for d, *_ in report.shape_mismatch if d.startswith("model.2.block.0.1.")}
    assert module == {f"model.2.block.0.1.{t}" for t in ("weight", "bias", "running_mean", "running_var",
                                                          "num_batches_tracked")}
    assert torch.equal(detector.state_dict()["model.2.block.0.1.bias"], before["model.2.block.0.1.bias"])
    assert "model.2.block.0.0.weight" in dict(report.loaded)


def test_shufflenet_v2_loads_where_widths_agree():
    source, detector = _pair("shufflenet_v2_x1_0", "yolov5n-shufflenetv2.yaml")
    report = load_backbone(detector, source, verbose=False)
    assert report.mapping == "shufflenet_v2"
    pairs = dict(report.loaded)
    # stage 2 is 116 wide in the paper, 120 in the detector (make_divisible rounds up); stage 3 agrees
    assert "model.1.branch2.0.0.weight" in {d for d, *_ in report.shape_mismatch}
    assert pairs["model.4.0.branch2.0.0.weight"] == "stage3.1.branch2.0.0.weight"
    assert torch.equal(detector.state_dict()["model.6.2.branch2.2.0.weight"],
                       source.state_dict()["stage4.3.branch2.2.0.weight"])


@pytest.mark.parametrize("state", [{}, {"fc.weight": torch.zeros(3, 4)}, nn.Linear(4, 3).state_dict(),
                                   {"features.0.0.weight": torch.zeros(8, 3, 3, 3)}])
def test_nothing_matching_is_an_error(state):
    detector = DetectionModel("yolov5n-mobilenetv3small.yaml", nc=4)
    before = _before(detector)
    with pytest.raises(ValueError, match="state_dict_or_path"):
        load_backbone(detector, state, verbose=False)
    assert all(torch.equal(v, before[k]) for k, v in detector.state_dict().items())


def test_bad_arguments_are_errors(tmp_path):
    detector = DetectionModel("yolov5n-mobilenetv3small.yaml", nc=4)
    source = build_model("mobilenet_v3_small").state_dict()
    with pytest.raises(ValueError, match="mapping"):
        load_backbone(detector, source, mapping="resnet")
    with pytest.raises(ValueError, match="no file"):
        load_backbone(detector, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="detector"):
        load_backbone(nn.Linear(2, 2), source)
    with pytest.raises(ValueError, match="state_dict_or_path"):
        load_backbone(detector, [1, 2])


@pytest.mark.parametrize("wrap", [False, True])
def test_round_trip_through_a_weights_only_file(tmp_path, wrap, capsys):
    source, detector = _pair("mobilenet_v3_small", "yolov5n-mobilenetv3small.yaml", seed=2)
    path = tmp_path / "classifier.pt"
    state = source.state_dict()
    torch.save(dict(model=state, epoch=3, top1=0.5) if wrap else state, path)
    report = load_backbone(detector, path)
    assert "loaded" in capsys.readouterr().out
    dst = detector.state_dict()
    assert report.loaded and all(torch.equal(dst[d], state[s]) for d, s in report.loaded)


def test_freeze_backbone_stops_only_backbone_gradients():
    detector = DetectionModel("yolov5n-mobilenetv3small.yaml", nc=4)
    frozen = freeze_backbone(detector)
    n = backbone_rows(detector)
    assert frozen and all(int(k.split(".")[1]) < n for k in frozen)
    sum(level.sum() for level in detector.train()(torch.rand(1, 3, 64, 64))).backward()
    for name, p in detector.named_parameters():
        assert (p.grad is None) == (name in frozen), name
    unfreeze(detector)
    assert all(p.requires_grad for p in detector.parameters())
    assert len(freeze_backbone(detector, 1)) == len([k for k, _ in detector.named_parameters()
                                                     if k.startswith("model.0.")])
    with pytest.raises(ValueError, match="n_layers"):
        freeze_backbone(detector, 0)

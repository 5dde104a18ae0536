"""course.deploy.bnfold: folded models compute what the unfolded eval models compute; the formula equals PyTorch's."""

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from course.deploy import count_batchnorms, fold_batchnorm, fuse_conv_bn
from course.models import build_model, randomize_batchnorm

SMALL = {"mobilenet_v1": dict(width_mult=0.25), "mobilenet_v2": dict(width_mult=0.35),
         "mobilenet_v3_small": dict(width_mult=0.5), "mobilenet_v3_large": dict(width_mult=0.35),
         "shufflenet_v1": dict(scale=0.5), "shufflenet_v2_x0_5": {}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_folded_model_equals_eval_model(name):
    torch.manual_seed(0)
    model = randomize_batchnorm(build_model(name, num_classes=10, **SMALL[name]), seed=1)
    folded = fold_batchnorm(model)
    assert count_batchnorms(folded) == 0
    assert model.training and count_batchnorms(model) > 0  # the original is untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = model.eval()(x), folded(x)
        expected_features, got_features = model.forward_features(x)[-1], folded.forward_features(x)[-1]
    assert expected_features.std() > 0.1  # random BN statistics make the features non-trivial
    torch.testing.assert_close(got_features, expected_features, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("groups, bias, affine", [(1, False, True), (4, True, True), (8, False, False)])
def test_fuse_conv_bn_equals_pytorch_fusion(groups, bias, affine):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=bias)
    bn = randomize_batchnorm(nn.Sequential(nn.BatchNorm2d(8, affine=True)))[0]
    if not affine:
        bn = nn.BatchNorm2d(8, affine=False)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    bn.eval()
    ours, theirs = fuse_conv_bn(conv, bn), fuse_conv_bn_eval(conv.eval(), bn)
    torch.testing.assert_close(ours.weight, theirs.weight)
    torch.testing.assert_close(ours.bias, theirs.bias)
    assert ours.groups == groups


def test_yolo_conv_and_torchvision_pairs_are_folded():
    import torchvision

    from course.yolo import DetectionModel
    from course.yolo.model import fuse_conv_and_bn

    assert fuse_conv_and_bn is fuse_conv_bn
    torch.manual_seed(0)
    detector = randomize_batchnorm(DetectionModel("yolov5n.yaml", nc=2)).eval()
    folded = fold_batchnorm(detector)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x)[0], detector(x)[0], atol=1e-4, rtol=1e-4)
    assert count_batchnorms(folded) == 0
    assert count_batchnorms(fold_batchnorm(torchvision.models.mobilenet_v3_small(num_classes=4))) == 0


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="output channels"):
        fuse_conv_bn(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="running statistics"):
        fuse_conv_bn(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8, track_running_stats=False))
    with pytest.raises(ValueError, match="nn.Conv2d"):
        fuse_conv_bn(nn.Linear(3, 8), nn.BatchNorm2d(8))
    with pytest.raises(ValueError, match="nn.Module"):
        fold_batchnorm("mobilenet_v2")

"""course.yolo model: YAML parsing, channel/depth scaling, Detect decoding, set-up steps.

Reference numbers: ultralytics/yolov5 v7.0 (models/yolov5*.yaml, models/yolo.py parse_model and
Detect, and the parameter counts its own code builds) and ppogg/YOLOv5-Lite (v5Lite-s.yaml).
"""

import copy
import math

import pytest
import torch
from torch import nn

from course.blocks import SqueezeExcitation
from course.yolo import (REGISTRY, Detect, DetectionModel, ModelConfigError, layer_groups, list_cfgs, load_cfg,
                         make_divisible_ceil, register, register_module)
from course.yolo.backbones import MobileV3Bneck
from course.yolo.common import Conv
from course.yolo.model import parse_activation

ANCHORS_PX = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]

# cfg: (params unfused, Detect input channels), from the reference table (nc = 80)
PUBLISHED = {
    "yolov5n.yaml": (1_872_157, [64, 128, 256]),
    "yolov5s.yaml": (7_235_389, [128, 256, 512]),
    "v5Lite-e.yaml": (787_085, [96, 96, 96]),
    "yolov5n-shufflenetv2.yaml": (1_649_853, [64, 128, 256]),  # = v5Lite-s
    "yolov5n-mobilenetv3small.yaml": (1_657_451, [64, 128, 256]),  # ours: no published count
    "yolov5-mbv3s.yaml": (3_755_819, [128, 256, 512]),
    "yolov5-mbv3l.yaml": (5_416_699, [128, 256, 512]),
}
# yolov5's fuse() folds BN into Conv modules only; YOLOv5-Lite's own fuse also folds its
# backbone blocks, so only these fused counts are comparable
PUBLISHED_FUSED = {
    "yolov5n.yaml": 1_867_405,
    "yolov5s.yaml": 7_225_885,
    "yolov5-mbv3s.yaml": 3_751_579,
    "yolov5-mbv3l.yaml": 5_412_459,
}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def models():
    return {cfg: DetectionModel(cfg) for cfg in PUBLISHED}


def test_shipped_cfgs():
    assert set(list_cfgs()) == set(PUBLISHED)


@pytest.mark.parametrize("cfg", sorted(PUBLISHED))
def test_params_strides_and_detect_inputs_match_published_builds(models, cfg):
    model = models[cfg]
    params, detect_ch = PUBLISHED[cfg]
    assert n_params(model) == params
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert [conv.in_channels for conv in model.model[-1].m] == detect_ch


@pytest.mark.parametrize("cfg", sorted(PUBLISHED_FUSED))
def test_fused_params_match_published(models, cfg):
    model = copy.deepcopy(models[cfg]).eval().fuse()
    assert n_params(model) == PUBLISHED_FUSED[cfg]


def test_fuse_keeps_outputs():
    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=3)
    with torch.no_grad():  # non-trivial BN statistics, so that fusing has something to fold
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        before = model(x)[0]
        after = model.fuse()(x)[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)


def test_mbv3s_per_layer_params_match_yolov7_issue_1253(models):
    per_layer = [n_params(m) for m in models["yolov5-mbv3s.yaml"].model]
    assert per_layer[0] == 464
    assert per_layer[1] == 612
    assert per_layer[2] == 3864
    assert per_layer[10] == 294096


def test_detect_params_formula(models):
    # na * (nc + 5) * (sum of input channels + number of levels)
    assert n_params(models["yolov5n-shufflenetv2.yaml"].model[-1]) == 3 * 85 * (448 + 3) == 115_005


@pytest.mark.parametrize("x, divisor, expected", [(116, 8, 120), (64 * 0.25, 8, 16), (1024 * 0.5, 8, 512),
                                                  (16 * 0.25, 8, 8), (100, 32, 128)])
def test_make_divisible_rounds_up(x, divisor, expected):
    assert make_divisible_ceil(x, divisor) == expected


def test_the_two_roundings_differ():
    """YOLOv5 rounds 99 channels up to 104; the MobileNets round to the nearest multiple, 96."""
    from course.blocks import make_divisible_round

    assert (make_divisible_ceil(99, 8), make_divisible_round(99, 8)) == (104, 96)


def test_width_and_depth_scaling(models):
    n, s = models["yolov5n.yaml"].model, models["yolov5s.yaml"].model
    assert n[0].args == [3, 16, 6, 2, 2]  # 64 * 0.25
    assert s[0].args == [3, 32, 6, 2, 2]  # 64 * 0.50
    # C3 repeats 3, 6, 9, 3 -> round(n * 0.33) = 1, 2, 3, 1, passed *inside* the block
    assert [s[i].args[2] for i in (2, 4, 6, 8)] == [1, 2, 3, 1]
    assert [len(s[i].m) for i in (2, 4, 6, 8)] == [1, 2, 3, 1]
    assert [s[i].args[2:] for i in (13, 17, 20, 23)] == [[1, False]] * 4


def test_shufflenet_116_becomes_120(models):
    lite = models["yolov5n-shufflenetv2.yaml"].model
    assert lite[1].args == [32, 120, 2]
    assert lite[2].args == [120, 120, 1]
    assert lite[2].n == 3 and len(lite[2]) == 3  # repeats outside the block: an nn.Sequential of 3 units
    assert lite[10].args[0] == 128 + 232
    assert lite[14].args[0] == 64 + 120
    assert "Shuffle_Block           [32, 120, 2]" in models["yolov5n-shufflenetv2.yaml"].info(print_fn=None)


def test_save_list_holds_the_layers_read_later(models):
    assert models["yolov5s.yaml"].save == [4, 6, 10, 14, 17, 20, 23]


def test_forward_shapes_train_and_eval(models):
    model = models["v5Lite-e.yaml"]
    x = torch.rand(2, 3, 64, 96)
    model.train()
    raw = model(x)
    assert [tuple(p.shape) for p in raw] == [(2, 3, 8, 12, 85), (2, 3, 4, 6, 85), (2, 3, 2, 3, 85)]
    model.eval()
    with torch.no_grad():
        pred, raw = model(x)
    assert pred.shape == (2, 3 * (8 * 12 + 4 * 6 + 2 * 3), 85)
    model.train()


def make_detect(bias_box, stride=8.0):
    """A one-level, one-class Detect with zero weights: every cell predicts the given logits."""
    det = Detect(nc=1, anchors=[[10, 13, 16, 30]], ch=[4])
    det.stride.fill_(stride)
    det.anchors /= stride
    with torch.no_grad():
        det.m[0].weight.zero_()
        det.m[0].bias.copy_(torch.tensor(bias_box * 2, dtype=torch.float32))
    return det.eval()


def test_detect_zero_logits_predict_the_anchor_centred_in_its_cell():
    det = make_detect([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    pred, raw = det([torch.zeros(1, 4, 2, 3)])
    assert raw[0].shape == (1, 2, 2, 3, 6)
    boxes = pred.view(1, 2, 2, 3, 6)  # (bs, anchor, gy, gx, no)
    assert boxes[0, 0, 1, 2, :4].tolist() == [2.5 * 8, 1.5 * 8, 10.0, 13.0]
    assert boxes[0, 1, 0, 0, :4].tolist() == [0.5 * 8, 0.5 * 8, 16.0, 30.0]
    assert torch.all(boxes[..., 4:] == 0.5)


def test_detect_decode_formula_and_bounds():
    t = [1.3, -0.7, 2.0, -1.0, 0.0, 0.0]
    det = make_detect(t, stride=16.0)
    boxes = det([torch.zeros(1, 4, 3, 3)])[0].view(1, 2, 3, 3, 6)
    sig = torch.sigmoid(torch.tensor(t[:4]))
    gx, gy = 1, 2
    expected = [(2 * sig[0] - 0.5 + gx) * 16, (2 * sig[1] - 0.5 + gy) * 16,
                (2 * sig[2]) ** 2 * 10, (2 * sig[3]) ** 2 * 13]
    torch.testing.assert_close(boxes[0, 0, gy, gx, :4], torch.stack(expected))
    big = make_detect([0, 0, 50.0, 50.0, 0, 0])([torch.zeros(1, 4, 1, 1)])[0]
    assert big[0, 0, 2:4].tolist() == pytest.approx([40.0, 52.0])  # at most 4x the anchor


def test_anchors_stored_in_grid_units(models):
    det = models["yolov5s.yaml"].model[-1]
    px = det.anchors * det.stride.view(-1, 1, 1)
    assert px.view(3, -1).tolist() == ANCHORS_PX


def test_anchors_given_largest_first_are_flipped():
    cfg = load_cfg("yolov5n.yaml")
    cfg["anchors"] = cfg["anchors"][::-1]
    det = DetectionModel(cfg).model[-1]
    px = (det.anchors * det.stride.view(-1, 1, 1)).view(3, -1).tolist()
    assert px == ANCHORS_PX  # smallest anchors back on the stride-8 level


def test_bias_priors(models):
    det = models["yolov5s.yaml"].model[-1]
    for conv, s in zip(det.m, det.stride.tolist()):
        b = conv.bias.detach().view(det.na, -1)
        bound = 1 / math.sqrt(conv.in_channels)  # default uniform init of a conv bias
        assert torch.all((b[:, 4] - math.log(8 / (640 / s) ** 2)).abs() <= bound)
        assert torch.all((b[:, 5:] - math.log(0.6 / (80 - 0.99999))).abs() <= bound)


def test_batchnorm_settings_and_probe_leaves_statistics(models):
    bns = [m for m in models["yolov5n.yaml"].modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-3 and bn.momentum == 0.03 for bn in bns)
    assert all(int(bn.num_batches_tracked) == 0 and torch.all(bn.running_var == 1) for bn in bns)


def test_nc_override_and_int_anchors():
    model = DetectionModel("yolov5n.yaml", nc=3, anchors=2)
    det = model.model[-1]
    assert (det.nc, det.na, det.no) == (3, 2, 8)
    assert det.m[0].out_channels == 2 * 8


def test_activation_key_swaps_conv_activation_and_restores_default():
    cfg = load_cfg("yolov5n.yaml")
    cfg["activation"] = "nn.LeakyReLU(0.1)"
    model = DetectionModel(cfg)
    acts = [m.act for m in model.modules() if isinstance(m, Conv)]
    assert all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.1 for a in acts)
    assert isinstance(Conv.default_act, nn.SiLU)
    assert isinstance(Conv(3, 8).act, nn.SiLU)


@pytest.mark.parametrize("spec", ["__import__('os').system('echo hi')", "nn.Conv2d(3, 3, 1)", "ReLU(x)", "1 +",
                                  "LeakyReLU(slope=2)"])
def test_activation_is_never_evaluated(spec):
    with pytest.raises(ValueError, match="activation"):
        parse_activation(spec)


def test_module_names_are_looked_up_not_evaluated():
    cfg = load_cfg("yolov5n.yaml")
    cfg["backbone"][0][2] = "__import__('os').system('echo hi')"
    with pytest.raises(ValueError, match="is not registered; registered: .*C3"):
        DetectionModel(cfg)


def edited(edit):
    cfg = load_cfg("yolov5n-shufflenetv2.yaml")
    edit(cfg)
    return cfg


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["head"][2].__setitem__(0, [-1, 40]), r"layer 9 \(Concat\): from=\[-1, 40\] points at layer 40"),
    (lambda d: d["head"][2].__setitem__(0, 4), "expected a list"),
    (lambda d: d["backbone"][3].__setitem__(1, 3), r"layer 3 \(Shuffle_Block\): repeated 3 times with c1=120, c2=232"),
    (lambda d: d["backbone"][4].__setitem__(3, [232, 2]), r"layer 4 \(Shuffle_Block\): .*stride=2"),
    (lambda d: d["anchors"].append([1, 2, 3, 4, 5, 6]), "anchors has 4 levels"),
    (lambda d: d.pop("nc"), "missing key 'nc'"),
    (lambda d: d.__setitem__("width_multiple", 0), "width_multiple"),
    (lambda d: d["head"][2].__setitem__(0, [-1, 2]), r"layer 9 \(Concat, from=\[-1, 2\]\) failed on input"),
    (lambda d: d["head"][-1].__setitem__(0, [20, 17, 14]), r"strides \[32.0, 16.0, 8.0\]"),
])
def test_bad_configs_raise_model_config_error(edit, match):
    with pytest.raises(ModelConfigError, match=match):
        DetectionModel(edited(edit))


def test_add_needs_equal_widths():
    cfg = load_cfg("v5Lite-e.yaml")
    cfg["head"][9][0] = [-1, 4]  # 96-channel map + 232-channel backbone P4
    with pytest.raises(ValueError, match="same width"):
        DetectionModel(cfg)


def test_unknown_cfg_name():
    with pytest.raises(ValueError, match="shipped configs"):
        load_cfg("yolov5x.yaml")


def test_register_custom_block():
    @register("DWSep", stride_arg=2)
    class DepthwiseSeparable(nn.Module):
        def __init__(self, c1, c2, s=1):
            super().__init__()
            self.dw = Conv(c1, c1, 3, s, g=c1)
            self.pw = Conv(c1, c2, 1)

        def forward(self, x):
            return self.pw(self.dw(x))

    try:
        cfg = load_cfg("yolov5n.yaml")
        cfg["backbone"][1] = [-1, 1, "DWSep", [128, 2]]
        model = DetectionModel(cfg)
        assert model.model[1].args == [16, 32, 2]
        assert model.stride.tolist() == [8.0, 16.0, 32.0]
    finally:
        REGISTRY.pop("DWSep", None)
    with pytest.raises(ValueError, match="channels='magic'"):
        register_module("X", DepthwiseSeparable, channels="magic")


def test_mobilev3_bneck_squeezes_to_a_quarter_and_uses_true_hard_swish():
    block = MobileV3Bneck(16, 24, 72, 3, 1, 1, 1)
    se = [m for m in block.modules() if isinstance(m, SqueezeExcitation)]
    assert len(se) == 1 and se[0].fc1.out_channels == 72 // 4
    x = torch.full((1, 16, 4, 4), -1.0)
    act = block.block[0][2]  # expand conv's activation
    assert act(torch.tensor([-1.0])).item() == pytest.approx(-1 / 3)  # h-swish; a hard sigmoid is never < 0
    assert block(x).shape == (1, 24, 4, 4)


def test_layer_groups_split_backbone_neck_head(models):
    groups = layer_groups(models["yolov5n.yaml"])
    assert groups == {"backbone": 1_046_368, "neck": 710_784, "head": 115_005}
    assert layer_groups(models["yolov5n-shufflenetv2.yaml"])["backbone"] == 780_544


@pytest.mark.parametrize("cfg, published", [("yolov5n.yaml", 4.5), ("yolov5s.yaml", 16.5)])
def test_fused_gflops_at_640_match_readme(cfg, published):
    from fvcore.nn import FlopCountAnalysis  # a core dependency (course.measure counts with it)

    model = DetectionModel(cfg).eval().fuse()
    flops = FlopCountAnalysis(model, torch.zeros(1, 3, 640, 640))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    gflops = 2 * flops.total() / 1e9  # yolov5 reports 2 x multiply-adds
    assert gflops == pytest.approx(published, rel=0.03)


def test_block_constructor_error_names_the_layer():
    from course.yolo.model import DetectionModel, load_cfg
    from course.yolo.registry import ModelConfigError

    cfg = load_cfg("yolov5n-shufflenetv2.yaml")
    row = next(i for i, r in enumerate(cfg["backbone"]) if r[2] == "Shuffle_Block" and r[3][1] == 1)
    cfg["backbone"][row] = [-1, 1, "Shuffle_Block", [232, 1]]  # stride-1 unit asked to change width
    with pytest.raises(ModelConfigError, match=rf"layer {row} \(Shuffle_Block.*must equal"):
        DetectionModel(cfg)

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course import blocks
from course.blocks import (
    ChannelShuffle,
    ConvBNAct,
    DepthwiseSeparableConv,
    HardSigmoid,
    HardSwish,
    InvertedResidual,
    InvertedResidualV3,
    ShuffleV1Unit,
    ShuffleV2Block,
    SqueezeExcitation,
    channel_shuffle,
    make_divisible_round,
)
from course.measure import count_params


@pytest.mark.parametrize("v, expected", [(32, 32), (116, 120), (92, 96), (84, 88), (24 * 0.35, 8), (1280 * 1.4, 1792), (3, 8), (100, 104)])
def test_make_divisible_matches_torchvision(v, expected):
    from torchvision.models._utils import _make_divisible

    assert make_divisible_round(v) == _make_divisible(v, 8) == expected


def test_conv_bn_act_padding_groups_and_linear():
    layer = ConvBNAct(8, 16, kernel_size=5, stride=2, groups=4)
    assert layer(torch.randn(1, 8, 20, 20)).shape == (1, 16, 10, 10)
    assert layer[0].groups == 4 and layer[0].padding == (2, 2)
    assert len(ConvBNAct(8, 8, activation=None)) == 2


def test_depthwise_separable_is_depthwise_then_pointwise():
    block = DepthwiseSeparableConv(32, 64, stride=2)
    dw, pw = block[0][0], block[1][0]
    assert dw.groups == 32 and dw.kernel_size == (3, 3) and dw.stride == (2, 2)
    assert pw.kernel_size == (1, 1) and pw.groups == 1
    assert block(torch.randn(2, 32, 16, 16)).shape == (2, 64, 8, 8)
    # 3·3·M + M·N conv weights, plus 2 BN params per channel.
    assert count_params(block) == 9 * 32 + 32 * 64 + 2 * (32 + 64)


@pytest.mark.parametrize("inp, out, stride, residual", [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False)])
def test_inverted_residual_uses_shortcut_only_when_shapes_allow(inp, out, stride, residual):
    block = InvertedResidual(inp, out, stride, expand_ratio=6)
    assert block.use_res_connect is residual
    assert block.hidden_channels == 96
    # The projection is linear: the block ends in BN, not in an activation.
    assert isinstance(block.conv[-1], nn.BatchNorm2d)
    assert block(torch.randn(1, inp, 8, 8)).shape == (1, out, 8 // stride, 8 // stride)


def test_inverted_residual_shortcut_adds_input():
    block = InvertedResidual(8, 8, 1, 6).eval()
    for p in block.conv[-1].parameters():
        nn.init.zeros_(p)  # the residual branch now outputs zero
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(block(x), x)


def test_hard_activations_equal_torch_functional():
    x = torch.linspace(-8, 8, 10001)
    torch.testing.assert_close(HardSigmoid()(x), F.hardsigmoid(x))
    torch.testing.assert_close(HardSwish()(x), F.hardswish(x))


def test_squeeze_excitation_gate_and_channels():
    se = SqueezeExcitation(96)
    assert se.fc1.out_channels == make_divisible_round(96 // 4, 8) == 24
    x = torch.randn(2, 96, 7, 7)
    gate = se.scale(x)
    assert gate.shape == (2, 96, 1, 1) and gate.min() >= 0 and gate.max() <= 1
    torch.testing.assert_close(se(x), x * gate)


def test_squeeze_excitation_matches_torchvision():
    from torchvision.ops import SqueezeExcitation as TVSE

    ours, theirs = SqueezeExcitation(64), TVSE(64, 16, scale_activation=nn.Hardsigmoid)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 64, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x))


def test_inverted_residual_v3_options():
    block = InvertedResidualV3(40, 5, 240, 40, use_se=True, activation="HS", stride=1)
    assert block.use_res_connect
    kinds = [type(m) for m in block.block]
    assert kinds == [ConvBNAct, ConvBNAct, SqueezeExcitation, ConvBNAct]
    assert block.block[1][0].kernel_size == (5, 5) and block.block[1][0].groups == 240
    assert isinstance(block.block[0][2], nn.Hardswish)
    no_expand = InvertedResidualV3(16, 3, 16, 16, use_se=False, activation="RE", stride=2)
    assert len(no_expand.block) == 2 and isinstance(no_expand.block[0][2], nn.ReLU)


def test_channel_shuffle_is_a_permutation_undone_by_transposed_groups():
    x = torch.arange(12.0).view(1, 12, 1, 1).repeat(2, 1, 3, 3)
    y = channel_shuffle(x, 3)
    assert sorted(y[0, :, 0, 0].tolist()) == list(range(12))
    assert y[0, :, 0, 0].tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    assert torch.equal(channel_shuffle(y, 12 // 3), x)


@pytest.mark.parametrize("c, g", [(12, 3), (16, 2), (24, 4), (48, 8)])
def test_channel_shuffle_equals_torchvision(c, g):
    from torchvision.models.shufflenetv2 import channel_shuffle as tv_shuffle

    x = torch.randn(2, c, 4, 4)
    assert torch.equal(channel_shuffle(x, g), tv_shuffle(x, g))
    assert torch.equal(ChannelShuffle(g)(x), F.channel_shuffle(x, g))


def test_shuffle_v1_unit_shapes_and_grouping():
    unit = ShuffleV1Unit(240, 240, groups=3, stride=1)
    assert unit(torch.randn(1, 240, 8, 8)).shape == (1, 240, 8, 8)
    assert unit.compress[0].groups == 3 and unit.expand[0].groups == 3 and unit.depthwise[0].groups == 60
    down = ShuffleV1Unit(24, 240, groups=3, stride=2, grouped_first_conv=False)
    assert down.compress[0].groups == 1
    assert down.expand[0].out_channels == 240 - 24
    assert down(torch.randn(1, 24, 16, 16)).shape == (1, 240, 8, 8)


def test_shuffle_v2_block_split_and_downsample():
    unit = ShuffleV2Block(116, 116, 1)
    x = torch.randn(1, 116, 8, 8)
    y = unit(x)
    assert y.shape == x.shape
    # Half the channels pass untouched; after the shuffle they sit at the even positions.
    assert torch.equal(y[:, 0::2], x[:, :58])
    down = ShuffleV2Block(24, 116, 2)
    assert down(torch.randn(1, 24, 16, 16)).shape == (1, 116, 8, 8)
    assert all(m.groups in (1, m.in_channels) for m in down.modules() if isinstance(m, nn.Conv2d))


def test_shuffle_v2_block_matches_torchvision():
    from torchvision.models.shufflenetv2 import InvertedResidual as TVUnit

    for inp, oup, stride in [(24, 48, 2), (48, 48, 1)]:
        ours, theirs = ShuffleV2Block(inp, oup, stride), TVUnit(inp, oup, stride)
        from course.models import load_torchvision_weights

        load_torchvision_weights(ours, theirs)
        ours.eval(), theirs.eval()
        x = torch.randn(2, inp, 10, 10)
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ConvBNAct(10, 16, groups=4), r"in_channels=10 is not divisible by groups=4"),
        (lambda: ConvBNAct(0, 16), r"in_channels must be a positive integer, got 0"),
        (lambda: channel_shuffle(torch.randn(1, 10, 2, 2), 3), r"channels=10 is not divisible by groups=3"),
        (lambda: ShuffleV2Block(117, 117, 1), r"out_channels must be even.*117"),
        (lambda: ShuffleV2Block(48, 116, 1), r"in_channels \(48\) must equal out_channels \(116\)"),
        (lambda: ShuffleV1Unit(240, 240, groups=7, stride=1), r"not divisible by groups=7"),
        (lambda: InvertedResidual(16, 16, 3, 6), r"stride must be 1 or 2, got 3"),
        (lambda: InvertedResidualV3(16, 7, 16, 16, False, "RE", 1), r"kernel_size must be 3 or 5, got 7"),
        (lambda: InvertedResidualV3(16, 3, 16, 16, False, "swish", 1), r"activation must be one of \['HS', 'RE'\], got 'swish'"),
        (lambda: make_divisible_round(-1), r"v must be positive"),
    ],
)
def test_bad_input_names_argument_value_and_allowed(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_public_names_exist():
    missing = [name for name in blocks.__all__ if not hasattr(blocks, name)]
    assert not missing and len(set(blocks.__all__)) == len(blocks.__all__)

"""The ablation surgeries change exactly the part they are named for, and refuse a network without it."""

import pytest
import torch
from torch import nn

from course.blocks import ChannelShuffle, DepthwiseSeparableConv, InvertedResidual, SqueezeExcitation
from course.classify import build_classifier, total_stride
from course.variants import VARIANTS, apply_variants, with_stem_stride

X = torch.randn(2, 3, 64, 64)


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_full_convolutions_match_the_conv_mobilenet_parameter_count():
    sep = build_classifier("mobilenet_v1", 10, 1.0)
    full = apply_variants(sep, ["full_conv"])
    assert _count(sep, DepthwiseSeparableConv) == 13 and _count(full, DepthwiseSeparableConv) == 0
    expected = sum(p.numel() for p in sep.parameters())
    for m in sep.modules():
        if isinstance(m, DepthwiseSeparableConv):
            expected += 9 * m.in_channels * m.out_channels - (9 * m.in_channels + 2 * m.in_channels
                                                               + m.in_channels * m.out_channels)
    assert sum(p.numel() for p in full.parameters()) == expected
    assert full(X).shape == (2, 10)


def test_relu6_after_projection_makes_every_block_output_non_negative():
    model = apply_variants(build_classifier("mobilenet_v2", 10, 0.5), ["relu6_after_projection"]).eval()
    outs = []
    for m in model.modules():
        if isinstance(m, InvertedResidual) and not m.use_res_connect:
            m.register_forward_hook(lambda mod, i, o: outs.append(o))
    with torch.no_grad():
        model(X)
    assert outs and all(float(o.min()) >= 0 and float(o.max()) <= 6 for o in outs)
    linear = build_classifier("mobilenet_v2", 10, 0.5).eval()
    lin_outs = []
    for m in linear.modules():
        if isinstance(m, InvertedResidual) and not m.use_res_connect:
            m.register_forward_hook(lambda mod, i, o: lin_outs.append(o))
    with torch.no_grad():
        linear(X)
    assert any(float(o.min()) < 0 for o in lin_outs)  # the linear bottleneck is not clipped


def test_without_shortcut_blocks_compute_only_their_branch():
    model = apply_variants(build_classifier("mobilenet_v2", 10, 0.5), ["no_shortcut"]).eval()
    block = next(m for m in model.modules() if isinstance(m, InvertedResidual) and m.in_channels == m.out_channels
                 and m.stride == 1)
    x = torch.randn(1, block.in_channels, 8, 8)
    assert torch.equal(block(x), block.conv(x))
    original = build_classifier("mobilenet_v2", 10, 0.5)
    assert any(m.use_res_connect for m in original.modules() if isinstance(m, InvertedResidual))


def test_activation_swaps_leave_the_se_gates_alone():
    base = build_classifier("mobilenet_v3_small", 10)
    for name, new in (("hswish_to_relu", nn.ReLU), ("hswish_to_swish", nn.SiLU)):
        model = apply_variants(base, [name])
        assert _count(model, nn.Hardswish) == 0 and _count(model, new) > _count(base, new)
        assert _count(model, nn.Hardsigmoid) == _count(base, nn.Hardsigmoid) > 0
    no_se = apply_variants(base, ["no_se"])
    assert _count(no_se, SqueezeExcitation) == 0 and _count(base, SqueezeExcitation) > 0
    assert sum(p.numel() for p in no_se.parameters()) < sum(p.numel() for p in base.parameters())


def test_removing_the_shuffle_keeps_the_weights_and_changes_the_output():
    base = build_classifier("shufflenet_v1", 10, 0.5, groups=3).eval()
    plain = apply_variants(base, ["no_shuffle"]).eval()
    assert _count(plain, ChannelShuffle) == 0
    plain.load_state_dict(base.state_dict())
    assert not torch.allclose(base(X), plain(X))


@pytest.mark.parametrize("name, model", [("no_se", "shufflenet_v2"), ("full_conv", "mobilenet_v2"),
                                         ("no_shuffle", "mobilenet_v1"), ("relu6_after_projection", "mobilenet_v3_small"),
                                         ("hswish_to_relu", "mobilenet_v2")])
def test_a_surgery_with_nothing_to_change_is_an_error(name, model):
    with pytest.raises(ValueError, match="has no"):
        apply_variants(build_classifier(model, 10, 0.5), [name])


def test_unknown_variants_are_named_and_the_input_is_untouched():
    model = build_classifier("mobilenet_v3_small", 10)
    with pytest.raises(ValueError, match="not_a_variant"):
        apply_variants(model, ["not_a_variant"])
    apply_variants(model, ["no_se"])
    assert _count(model, SqueezeExcitation) > 0
    assert set(VARIANTS) >= {"full_conv", "relu6_after_projection", "no_shortcut", "no_se", "no_shuffle"}


def test_stem_stride_one_halves_the_total_stride():
    model = build_classifier("mobilenet_v2", 10, 0.5)
    assert total_stride(with_stem_stride(model, 1)) * 2 == total_stride(model) == 32
    with pytest.raises(ValueError, match="stride"):
        with_stem_stride(model, 3)

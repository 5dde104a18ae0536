import pytest
import torch
from torch import nn

from course.measure import count_flops, count_params
from course.models import (
    MODEL_NAMES,
    TORCHVISION_NAMES,
    MobileNetV1,
    MobileNetV3,
    MobileNetV3LargeVariant,
    ShuffleNetV1,
    ShuffleNetV2,
    build_model,
    first_layers,
    last_stage,
    load_torchvision_weights,
    randomize_batchnorm,
    torchvision_reference,
)

# torchvision's weights metadata (num_params in torchvision/models/mobilenetv2.py, mobilenetv3.py, shufflenetv2.py).
TORCHVISION_PARAMS = {
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
    "shufflenet_v2_x1_5": 3_503_624,
    "shufflenet_v2_x2_0": 7_393_996,
}


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_parameter_count_equals_torchvision(name):
    assert count_params(build_model(name)) == TORCHVISION_PARAMS[name]
    assert count_params(torchvision_reference(name)) == TORCHVISION_PARAMS[name]



def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Running statistics from one real batch, so every BN normalises its input.

    With random statistics alone the activations fade layer by layer and the logits hardly
    depend on the input: any two networks would then look equal within the tolerance.
    """
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exactly this batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_outputs_equal_torchvision_with_its_weights(name):
    gen = torch.Generator().manual_seed(0)
    theirs = torchvision_reference(name).eval()
    randomize_batchnorm(theirs, seed=1)  # random affine weights: a skipped BN would show
    calibrate_batchnorm(theirs, torch.randn(4, 3, 160, 160, generator=gen))
    ours = build_model(name).eval()
    pairs = load_torchvision_weights(ours, theirs)
    assert len(pairs) == len(theirs.state_dict())
    x = torch.randn(2, 3, 160, 160, generator=gen)
    with torch.no_grad():
        ref = theirs(x)
        torch.testing.assert_close(ours(x), ref, atol=1e-5, rtol=1e-5)
        # The comparison can fail: the two images give different logits, and nudging the first
        # or the last conv of ours breaks the equality (a weight the forward pass skipped would not).
        assert (ref[0] - ref[1]).abs().max() > 100 * 1e-5
        convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
        for conv in (convs[0], convs[-1]):
            saved = conv.weight.clone()
            conv.weight.add_(0.05 * saved.abs().mean())
            with pytest.raises(AssertionError):
                torch.testing.assert_close(ours(x), ref, atol=1e-5, rtol=1e-5)
            conv.weight.copy_(saved)


def test_load_torchvision_weights_rejects_a_different_architecture():
    with pytest.raises(ValueError, match="shape mismatch|differ in length"):
        load_torchvision_weights(build_model("shufflenet_v2_x1_0"), torchvision_reference("shufflenet_v2_x0_5"))
    with pytest.raises(ValueError, match="differ in length"):
        load_torchvision_weights(build_model("mobilenet_v3_small"), torchvision_reference("mobilenet_v3_large"))


# MobileNet V1 paper, Tables 4-7: (alpha, resolution) -> (million mult-adds, million params).
MOBILENET_V1_PAPER = {
    (1.0, 224): (569, 4.2),
    (0.75, 224): (325, 2.6),
    (0.5, 224): (149, 1.3),
    (0.25, 224): (41, 0.5),
    (1.0, 192): (418, 4.2),
    (1.0, 160): (290, 4.2),
    (1.0, 128): (186, 4.2),
}


@pytest.mark.parametrize("alpha, res", list(MOBILENET_V1_PAPER))
def test_mobilenet_v1_matches_paper(alpha, res):
    madds, params = MOBILENET_V1_PAPER[(alpha, res)]
    model = MobileNetV1(alpha)
    ours_madds = count_flops(model, (1, 3, res, res)) / 1e6
    assert ours_madds == pytest.approx(madds, rel=0.02)
    # The paper prints params to one decimal: allow that rounding or 2 %, whichever is larger.
    conv_fc_params = sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                         for p in m.parameters()) / 1e6
    assert abs(conv_fc_params - params) <= max(0.02 * params, 0.05)


def test_mobilenet_v1_structure_table_1():
    model = MobileNetV1()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 28  # 27 conv layers + FC, dw and pw counted separately
    assert sum(c.groups > 1 for c in convs) == 13
    assert model.feature_channels == (256, 512, 1024)


# ShuffleNet V1 Table 1 (1x): stage output channels and MFLOPs.
SHUFFLENET_V1_PAPER = {1: ((144, 288, 576), 143), 2: ((200, 400, 800), 140), 3: ((240, 480, 960), 137),
                       4: ((272, 544, 1088), 133), 8: ((384, 768, 1536), 137)}


@pytest.mark.parametrize("groups", list(SHUFFLENET_V1_PAPER))
def test_shufflenet_v1_matches_paper_table_1(groups):
    channels, mflops = SHUFFLENET_V1_PAPER[groups]
    model = ShuffleNetV1(groups)
    assert model.feature_channels == channels
    assert count_flops(model) / 1e6 == pytest.approx(mflops, rel=0.03)
    first = model.stage2[0]
    assert first.compress[0].groups == 1  # Stage 2's first pointwise conv is not grouped
    assert model.stage2[1].compress[0].groups == groups


@pytest.mark.parametrize("name, mflops", [("mobilenet_v2", 300), ("mobilenet_v3_large", 219), ("mobilenet_v3_small", 56),
                                          ("shufflenet_v2_x0_5", 41), ("shufflenet_v2_x1_0", 146),
                                          ("shufflenet_v2_x1_5", 299), ("shufflenet_v2_x2_0", 591)])
def test_mult_adds_match_papers(name, mflops):
    assert count_flops(build_model(name)) / 1e6 == pytest.approx(mflops, rel=0.03)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_feature_maps_at_strides_8_16_32(name):
    model = build_model(name).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 128, 96))
    assert [f.shape[-2:] for f in feats] == [(16, 12), (8, 6), (4, 3)]
    assert tuple(f.shape[1] for f in feats) == model.feature_channels
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


def test_num_classes_and_width_multiplier():
    assert build_model("mobilenet_v2", num_classes=7)(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    small = MobileNetV3("small", width_mult=0.75)
    assert small.feature_channels == (24, 40, 72)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: MobileNetV1(width_mult=0), r"width_mult must be a positive number, got 0"),
        (lambda: MobileNetV1(width_mult=-0.5), r"width_mult must be a positive number, got -0.5"),
        (lambda: MobileNetV3("medium"), r"mode must be one of \['large', 'small'\], got 'medium'"),
        (lambda: ShuffleNetV1(groups=5), r"groups must be one of \[1, 2, 3, 4, 8\], got 5"),
        (lambda: ShuffleNetV2(scale=0.75), r"scale must be one of \[0.5, 1.0, 1.5, 2.0\], got 0.75"),
        (lambda: build_model("resnet50"), r"name must be one of .*got 'resnet50'"),
    ],
)
def test_bad_model_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_default_v3_variant_is_mobilenet_v3_large():
    """Built from the redesign's parts, the default variant is V3-Large, tensor for tensor."""
    variant, large = MobileNetV3LargeVariant().eval(), randomize_batchnorm(MobileNetV3("large")).eval()
    load_torchvision_weights(variant, large)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(variant(x), large(x))


def test_v3_redesigned_parts():
    """Sec. 5.1: the original last stage and the 32-filter stem cost more mult-adds."""
    at_7x7 = (1, 160, 7, 7)
    assert count_flops(last_stage("original"), at_7x7) > count_flops(last_stage("efficient"), at_7x7)
    assert count_flops(first_layers(32, "RE")) > count_flops(first_layers(16, "HS"))
    assert last_stage("original")(torch.zeros(2, 160, 7, 7)).shape == (2, 1000)
    assert first_layers(32, "RE")(torch.zeros(1, 3, 64, 64)).shape == (1, 16, 32, 32)
    with pytest.raises(ValueError, match=r"kind must be one of \['efficient', 'original'\], got 'fast'"):
        last_stage("fast")
    with pytest.raises(ValueError, match="activation must be one of"):
        first_layers(16, "swish")

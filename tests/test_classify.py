"""The classification trainer: names, bad input, schedule, seeding, checkpoints, a short run that learns."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course import classify
from course.classify import (CLASSIFIERS, RECIPES, build_classifier, load_checkpoint, lr_multiplier, recipe,
                             save_checkpoint, total_stride, train_classifier)
from course.data.glyphs import GlyphDataset
from course.models import MobileNetV1, ShuffleNetV1, ShuffleNetV2


@pytest.fixture(scope="module")
def tiny():
    """32 training and 16 validation glyphs at 32 px."""
    return GlyphDataset("train", n=32, imgsz=32), GlyphDataset("val", n=16, imgsz=32)


@pytest.fixture(scope="module")
def overfit():
    """16 training glyphs at 32 px: a set small enough to memorise."""
    return GlyphDataset("train", n=16, imgsz=32)


def _small_model(seed=0):
    torch.manual_seed(seed)
    return build_classifier("mobilenet_v1", 10, 0.25)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_every_name_builds_a_ten_way_classifier_of_total_stride_32(name):
    model = build_classifier(name, 10, 0.5)
    assert total_stride(model) == 32
    model.eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_width_mult_reaches_the_right_constructor_argument():
    assert build_classifier("mobilenet_v1", 10, 0.5).last_channel == MobileNetV1(0.5).last_channel
    assert isinstance(build_classifier("shufflenet_v2", 10, 1.5), ShuffleNetV2)
    m = build_classifier("shufflenet_v1", 10, 0.5, groups=8)
    assert isinstance(m, ShuffleNetV1) and m.groups == 8 and m.scale == 0.5
    small = sum(p.numel() for p in build_classifier("mobilenet_v2", 10, 0.5).parameters())
    large = sum(p.numel() for p in build_classifier("mobilenet_v2", 10, 1.0).parameters())
    assert small < large


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="resnet50"), r"name must be one of \['mobilenet_v1'"),
    (dict(name="mobilenet_v1", width_mult=0), "width_mult must be a number > 0"),
    (dict(name="mobilenet_v1", width_mult=-0.5), "width_mult must be a number > 0"),
    (dict(name="mobilenet_v1", num_classes=1), "num_classes must be an int >= 2"),
    (dict(name="mobilenet_v1", groups=3), r"takes no argument\(s\) \['groups'\]"),
    (dict(name="shufflenet_v2", width_mult=0.75), "scale must be one of"),
])
def test_bad_model_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_classifier(**kwargs)


def test_input_below_the_total_stride_is_refused_before_training(tiny):
    small = GlyphDataset("train", n=10, imgsz=16)
    model = _small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="16x16 is below the network's total stride 32"):
        train_classifier(model, small, tiny[1], epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="16x16 is below the network's total stride 32"):
        classify.train_recipe("mobilenet_v1", 0.25, mode="quick", imgsz=16, stem_stride=2)
    assert classify.total_stride(classify.recipe_model("mobilenet_v1", 0.25)) == 16  # the recipe's stem stride 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(train_set=TensorDataset(torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long))),
     "train_set must be a non-empty dataset"),
    (dict(val_set=None), "val_set must be a non-empty dataset"),
    (dict(epochs=0), "epochs must be an int >= 1"),
    (dict(optimizer="adam"), r"optimizer must be one of \['sgd', 'adamw'\]"),
    (dict(lr=0), "lr must be a number > 0"),
    (dict(label_smoothing=1.0), r"label_smoothing must be in \[0, 1\)"),
    (dict(amp="fp8"), "amp must be"),
    (dict(threads=0), "threads must be None or an int >= 1"),
])
def test_bad_training_arguments_are_named(tiny, kwargs, match):
    args = dict(model=_small_model(), train_set=tiny[0], val_set=tiny[1], epochs=1, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train_classifier(**args)


def test_recipe_modes_and_unknown_keys():
    assert recipe("full") == RECIPES["full"] and recipe("full") is not RECIPES["full"]
    with pytest.raises(ValueError, match="mode must be None or one of"):
        recipe("medium")
    with pytest.raises(ValueError, match=r"unknown recipe keys \['epoch'\]"):
        classify.train_recipe("mobilenet_v1", mode="quick", epoch=3)
    with pytest.raises(ValueError, match=r"style has unknown keys \['blur'\]"):
        classify.train_recipe("mobilenet_v1", mode="quick", style=dict(blur=2))
    for rec in RECIPES.values():
        assert set(classify.DATA_KEYS) <= set(rec)


class _Stop(Exception):
    pass


def test_each_network_gets_its_recipe_learning_rate_unless_lr_is_given(monkeypatch):
    seen = {}

    def capture(model, *splits, **kwargs):
        seen.clear()
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setitem(RECIPES["quick"], "lr_by_model", {"mobilenet_v1": 7e-4})
    monkeypatch.setattr(classify, "train_classifier", capture)
    base = RECIPES["quick"]["lr"]
    for name, overrides, want in (("mobilenet_v1", {}, 7e-4), ("shufflenet_v2", {}, base),
                                  ("mobilenet_v1", {"lr": 1e-3}, 1e-3)):
        with pytest.raises(_Stop):
            classify.train_recipe(name, 0.5, mode="quick", **overrides)
        assert seen["lr"] == want and "lr_by_model" not in seen
    assert classify.recipe_lr("mobilenet_v1", "quick") == 7e-4 and classify.recipe_lr("shufflenet_v2", "quick") == base
    assert classify.lr_words(["shufflenet_v2", "mobilenet_v2"], "quick") == f"{base:g}"
    assert classify.lr_words(["mobilenet_v1", "shufflenet_v2", "mobilenet_v1"], "quick") == \
        f"0.0007 (mobilenet_v1), {base:g} (shufflenet_v2)"
    with pytest.raises(ValueError, match="lr_by_model must be a dict from names in"):
        classify.train_recipe("mobilenet_v1", mode="quick", lr_by_model={"resnet18": 1e-3})
    with pytest.raises(ValueError, match="name must be one of"):
        classify.recipe_lr("resnet18")


def test_learning_rate_warms_up_linearly_then_decays_by_a_cosine():
    total, warm = 100, 10
    lrs = [lr_multiplier(s, total, warm) for s in range(total)]
    assert lrs[0] == pytest.approx(0.1) and lrs[warm - 1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:warm], lrs[1:warm]))
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))
    mid = warm + (total - warm) // 2
    assert lrs[mid] == pytest.approx(0.5 * (1 + math.cos(math.pi * (mid - warm) / (total - warm))))
    assert lr_multiplier(total, total, warm) == pytest.approx(0.0)


def test_same_seed_same_weights_other_seed_other_weights(overfit):
    def run(seed):
        model = _small_model(0)
        train_classifier(model, overfit, overfit, epochs=1, batch_size=8, seed=seed, threads=1, progress=False)
        return model.state_dict()

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_result_reports_history_best_epoch_test_accuracy_and_where_it_ran(tiny, tmp_path):
    model = _small_model()
    result = train_classifier(model, tiny[0], tiny[1], tiny[1], epochs=2, batch_size=16, threads=1,
                              progress=False, checkpoint=tmp_path / "best.pt")
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_acc", "val_acc", "lr"}
    assert result.best_val_acc == max(h["val_acc"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_acc"] == result.best_val_acc
    assert result.test_acc == pytest.approx(classify.evaluate(model, tiny[1], device="cpu"))
    assert result.device == "cpu" and result.threads == 1 and result.amp is None
    assert result.torch_version == torch.__version__ and result.train_images_per_s > 0
    assert result.params == sum(p.numel() for p in model.parameters())
    assert "model" not in result.as_dict()


def test_checkpoint_round_trip_with_weights_only(tiny, tmp_path):
    model = _small_model(0)
    train_classifier(model, tiny[0], tiny[1], epochs=1, batch_size=16, threads=1, progress=False)
    path = save_checkpoint(tmp_path / "w" / "m.pt", model, {"note": "round trip", "acc": 0.5})
    torch.load(path, weights_only=True)  # plain tensors and data only
    fresh = _small_model(1)
    assert not all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())
    meta = load_checkpoint(path, fresh)
    assert meta == {"note": "round trip", "acc": 0.5}
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt", fresh)


def test_training_checkpoint_holds_the_best_weights_and_the_result(tiny, tmp_path):
    model = _small_model()
    result = train_classifier(model, tiny[0], tiny[1], epochs=2, batch_size=16, threads=1, progress=False,
                              checkpoint=tmp_path / "best.pt")
    fresh = _small_model(1)
    meta = load_checkpoint(result.checkpoint, fresh)
    assert meta["best_epoch"] == result.best_epoch and meta["history"] == result.history
    assert classify.evaluate(fresh, tiny[1]) == pytest.approx(result.best_val_acc)


def test_a_few_batches_bring_the_loss_down_on_a_tiny_set(overfit):
    model = _small_model()
    result = train_classifier(model, overfit, overfit, epochs=40, batch_size=8, optimizer="adamw", lr=3e-3,
                              weight_decay=0.0, warmup_epochs=1, threads=1, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert min(losses[-3:]) < 0.5 * losses[0]
    assert result.best_val_acc >= 0.5  # the memorised images, scored in eval mode


def test_quick_recipe_runs_end_to_end():
    result = classify.train_recipe("shufflenet_v2", 0.5, mode="quick", threads=1, progress=True)
    assert len(result.history) == RECIPES["quick"]["epochs"] and 0 <= result.test_acc <= 1
    assert result.config["model"] == "shufflenet_v2" and result.config["n_train"] == RECIPES["quick"]["n_train"]


def test_adamw_and_label_smoothing_train_too(tiny):
    model = _small_model()
    result = train_classifier(model, tiny[0], tiny[1], epochs=1, batch_size=16, optimizer="adamw", lr=1e-3,
                              label_smoothing=0.1, threads=1, progress=False)
    assert math.isfinite(result.history[0]["train_loss"])
    assert isinstance(model, nn.Module)


def test_mixed_precision_only_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert all(classify._amp_dtype(a, cpu) is None for a in ("auto", "bf16", "fp16", None))
    assert classify._amp_dtype("fp16", cuda) == torch.float16 and classify._amp_dtype("bf16", cuda) == torch.bfloat16
    assert classify._amp_dtype(None, cuda) is None and classify._amp_dtype(False, cuda) is None

"""Glyphs-10: the generator, the splits, the image-folder form and its corrupt-file handling."""

import hashlib
import warnings

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from course.data.folder import ImageFolderChecked, write_image_folder  # noqa: E402
from course.data.gallery import class_grid  # noqa: E402
from course.data.glyphs import (CLASSES, CLASS_NAMES, EASY, HARD, GlyphDataset, GlyphStyle, glyph_splits,  # noqa: E402
                                make_glyphs, render_glyph, to_image)
from course.yolo.data import DatasetWarning  # noqa: E402


def _hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha1(im.numpy().tobytes()).hexdigest() for im in images}


def test_ten_classes_each_a_distinct_triple_and_every_factor_varies():
    assert len(CLASSES) == 10 == len(set(CLASSES)) == len(set(CLASS_NAMES))
    for factor in ("shape", "texture", "side"):
        assert len({getattr(c, factor) for c in CLASSES}) >= 2
    # no single factor names a class: each value of each factor is shared by several classes
    for factor in ("shape", "texture", "side"):
        for value in {getattr(c, factor) for c in CLASSES}:
            assert sum(getattr(c, factor) == value for c in CLASSES) >= 3


def test_same_seed_same_images_other_seed_other_images():
    a, la = make_glyphs(20, "train", 32, seed=3)
    b, lb = make_glyphs(20, "train", 32, seed=3)
    c, _ = make_glyphs(20, "train", 32, seed=4)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not _hashes(a) & _hashes(c)


def test_an_image_does_not_depend_on_the_split_size():
    small, _ = make_glyphs(5, "val", 32)
    large, _ = make_glyphs(15, "val", 32)
    assert torch.equal(small, large[:5])


def test_splits_are_disjoint_and_balanced():
    splits = glyph_splits(32, sizes=dict(train=40, val=20, test=20))
    hashes = {s: _hashes(ds.images) for s, ds in splits.items()}
    assert len(hashes["train"]) == 40
    assert not hashes["train"] & hashes["val"] and not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]
    for ds in splits.values():
        counts = np.bincount(ds.targets.numpy(), minlength=10)
        assert counts.min() == counts.max() == len(ds) // 10


def test_shapes_dtypes_and_normalisation():
    ds = GlyphDataset("test", n=10, imgsz=40)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (10, 3, 40, 40)
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (3, 40, 40) and isinstance(y, int) and y == 3
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert np.array_equal(to_image(x), ds.images[3].permute(1, 2, 0).numpy())


def test_a_smaller_input_is_the_same_scene_with_less_detail():
    big = render_glyph(4, np.random.default_rng(0), 64, GlyphStyle(noise=(0, 0))).astype(float)
    small = render_glyph(4, np.random.default_rng(0), 32, GlyphStyle(noise=(0, 0))).astype(float)
    pooled = big.reshape(32, 2, 32, 2, 3).mean((1, 3))
    other = render_glyph(4, np.random.default_rng(1), 32, GlyphStyle(noise=(0, 0))).astype(float)
    assert np.abs(pooled - small).mean() < np.abs(other - small).mean() / 4


def test_the_hard_style_adds_clutter_the_easy_style_has_none():
    """Same seeds, same scenes: the hard style's extra marks make images differ more from a plain body."""
    easy = np.stack([render_glyph(k % 10, np.random.default_rng(k), 32, EASY) for k in range(20)]).astype(float)
    hard = np.stack([render_glyph(k % 10, np.random.default_rng(k), 32, HARD) for k in range(20)]).astype(float)
    # neighbouring pixels differ more where lines, outlines, bars and noise are drawn
    def roughness(x):
        return np.abs(np.diff(x, axis=2)).mean()
    assert roughness(hard) > roughness(easy)


def test_images_vary_within_a_class():
    ds = GlyphDataset("train", n=30, imgsz=32)
    same_class = ds.images[ds.targets == 0].float()
    assert (same_class[0] - same_class[1]).abs().mean() > 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be a positive int"),
    (dict(n=5, split="dev"), "split must be one of"),
    (dict(n=5, imgsz=8), "imgsz must be an int in"),
    (dict(n=5, imgsz=48.0), "imgsz must be an int in"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_glyphs(**kwargs)


def test_bad_style_and_sizes_are_named():
    with pytest.raises(ValueError, match="GlyphStyle.period"):
        GlyphStyle(period=(20.0, 10.0))
    with pytest.raises(ValueError, match="occlusion_prob"):
        GlyphStyle(occlusion_prob=1.5)
    with pytest.raises(ValueError, match="unknown splits"):
        glyph_splits(32, sizes=dict(training=10))


def test_image_folder_round_trip_and_a_corrupt_file_is_skipped_and_counted(tmp_path):
    ds = GlyphDataset("val", n=20, imgsz=32)
    root = write_image_folder(tmp_path, {"val": ds})
    files = sorted((root / "val").rglob("*.png"))
    assert len(files) == 20
    bad = files[7]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is no image")
    (files[0].parent / "notes.txt").write_text("not an image, not counted")
    with pytest.warns(DatasetWarning, match="skipp") as record:
        folder = ImageFolderChecked(root / "val")
    assert len(folder) == 19
    assert [p for p, _ in folder.skipped] == [str(bad)]
    assert any("skipped 1 of 20" in str(w.message) for w in record)
    assert folder.classes == [f"{k:02d}-{n}" for k, n in enumerate(CLASS_NAMES)]
    x, y = folder[0]
    assert y == int(ds.targets[0]) and torch.equal(x, ds[0][0])  # PNG is lossless


def test_image_folder_resizes_and_rejects_an_empty_or_missing_root(tmp_path):
    root = write_image_folder(tmp_path, {"val": GlyphDataset("val", n=10, imgsz=32)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageFolderChecked(root / "val", imgsz=48)[0][0].shape == (3, 48, 48)
    with pytest.raises(ValueError, match="root must be an existing folder"):
        ImageFolderChecked(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no readable images"):
        ImageFolderChecked(tmp_path / "empty")


def test_class_grid_has_a_row_per_class_and_the_given_columns():
    fig = class_grid(GlyphDataset("val", n=30, imgsz=32), per_class=3)
    assert len(fig.axes) == 30
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 30
    assert [fig.axes[3 * k].get_ylabel() for k in range(10)] == list(CLASS_NAMES)
    with pytest.raises(ValueError, match="per_class"):
        class_grid(GlyphDataset("val", n=10, imgsz=32), per_class=0)

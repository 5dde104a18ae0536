"""The shapes generator and the YOLO-format loader: layout, determinism, geometry, bad files, augmentation."""

import hashlib
import os
import warnings

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from course.yolo.data import (DATA_PRESETS, SHAPE_CLASSES, DatasetWarning, YoloDataset, create_dataloader, img2label_path,
                              letterbox, load_data_config, make_shapes)
from course.yolo.data.shapes import _object_size, _render, _shape_polygon
from course.yolo.postprocess import scale_boxes, xywh2xyxy


def _digest(root):
    out = {}
    for sub in ("images", "labels"):
        for f in sorted((root / sub).rglob("*.*")):
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes(root, n_train=40, n_val=8, imgsz=320, seed=0)


# ----------------------------------------------------------------------------- generator


def test_make_shapes_layout(shapes):
    root = shapes.parent
    cfg = yaml.safe_load(shapes.read_text())
    assert cfg["train"] == "images/train" and cfg["val"] == "images/val"
    assert cfg["nc"] == len(cfg["names"]) >= 3 and cfg["names"][0] == "circle"
    imgs = sorted((root / "images" / "train").iterdir())
    assert len(imgs) == 40 and len(list((root / "images" / "val").iterdir())) == 8
    sizes, counts = [], []
    for f in imgs:
        with Image.open(f) as im:
            assert im.size == (320, 320) and im.mode == "RGB"
        rows = np.loadtxt(img2label_path(f), ndmin=2)
        assert rows.shape[1] == 5 and 2 <= len(rows) <= 8
        assert set(rows[:, 0].astype(int)) <= set(range(cfg["nc"])) and (rows[:, 0] == rows[:, 0].round()).all()
        assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
        xyxy = xywh2xyxy(rows[:, 1:])
        assert (xyxy >= 0).all() and (xyxy <= 1).all()
        sizes += list(rows[:, 3:].max(1) * 320)
        counts.append(len(rows))
    sizes = np.array(sizes)
    assert sizes.min() < 16 and (sizes < 24).mean() > 0.15      # small objects for the stride-8 level
    assert sizes.max() > 320 / 3                                # large ones for P5
    assert len(set(counts)) > 3


def test_make_shapes_is_byte_identical_for_the_same_seed(tmp_path, shapes):
    again = make_shapes(tmp_path / "b", n_train=40, n_val=8, imgsz=320, seed=0)
    assert _digest(again.parent) == _digest(shapes.parent)
    other = make_shapes(tmp_path / "c", n_train=40, n_val=8, imgsz=320, seed=1)
    assert _digest(other.parent) != _digest(shapes.parent)


def test_make_shapes_reuses_and_overwrites(tmp_path):
    y = make_shapes(tmp_path / "d", n_train=2, n_val=1, imgsz=64)
    f = tmp_path / "d" / "images" / "train" / "train_00000.jpg"
    stamp = f.stat().st_mtime_ns
    assert make_shapes(tmp_path / "d", n_train=2, n_val=1, imgsz=64) == y
    assert f.stat().st_mtime_ns == stamp
    make_shapes(tmp_path / "d", n_train=3, n_val=1, imgsz=64)   # different arguments: rewritten
    assert len(list((tmp_path / "d" / "images" / "train").iterdir())) == 3
    y = make_shapes(tmp_path / "d", n_train=2, n_val=1, imgsz=96, classes=("star", "cross", "circle"), ext="png")
    assert load_data_config(y)["names"] == {0: "star", 1: "cross", 2: "circle"}
    assert len(list((tmp_path / "d" / "images" / "val").glob("*.png"))) == 1
    (tmp_path / "f" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="not written by make_shapes"):
        make_shapes(tmp_path / "f", n_train=2, n_val=1, imgsz=64)


@pytest.mark.parametrize("kw, match", [(dict(n_train=0), "n_train"), (dict(imgsz=10), "imgsz"),
                                       (dict(classes=["circle", "heptagon"]), "classes"),
                                       (dict(ext="gif"), "ext"), (dict(objects=(3, 1)), "objects"),
                                       (dict(n_test=0), "n_test"), (dict(clutter=(5, 2)), "clutter"),
                                       (dict(decoys=(1.5, 2)), "decoys"), (dict(occlusion=1.5), "occlusion"),
                                       (dict(contrast=-1), "contrast"), (dict(noise=(3,)), "noise")])
def test_make_shapes_rejects_bad_arguments(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        make_shapes(tmp_path / "e", **{"n_train": 2, "n_val": 1, **kw})
    assert not (tmp_path / "e").exists()



def test_three_splits_on_disk_test_defaults_to_val_size(shapes, tmp_path):
    cfg = load_data_config(shapes)
    assert cfg["test"] == shapes.parent / "images" / "test"
    assert len(list(cfg["test"].iterdir())) == 8 == len(list(cfg["val"].iterdir()))  # n_test defaults to n_val
    y = make_shapes(tmp_path / "t", n_train=2, n_val=1, n_test=3, imgsz=64)
    test = sorted((tmp_path / "t" / "images" / "test").iterdir())
    assert [f.name for f in test] == ["test_00000.jpg", "test_00001.jpg", "test_00002.jpg"]
    assert all(img2label_path(f).is_file() for f in test)
    val = (tmp_path / "t" / "images" / "val" / "val_00000.jpg").read_bytes()
    assert all(f.read_bytes() != val for f in test)  # its own random stream, not a copy of val
    assert load_data_config(y)["test"] == tmp_path / "t" / "images" / "test"


def test_default_knobs_are_the_toy_preset_and_draw_the_same_images():
    """The knobs were added with the old behaviour as their defaults: "toy" is the first course recipe."""
    toy = DATA_PRESETS["toy"]
    rng_a, rng_b = np.random.default_rng([0, 0, 5]), np.random.default_rng([0, 0, 5])
    a, la = _render(rng_a, 128, toy["classes"], toy["objects"], toy["size_range"])
    b, lb = _render(rng_b, 128, **toy)
    assert la == lb and np.array_equal(np.asarray(a), np.asarray(b))


def test_hard_preset_is_harder_on_every_knob_and_labels_only_objects(tmp_path):
    toy, hard = DATA_PRESETS["toy"], DATA_PRESETS["hard"]
    assert len(hard["classes"]) > len(toy["classes"]) and hard["size_range"][0] < toy["size_range"][0]
    assert hard["clutter"][1] > toy["clutter"][1] and hard["decoys"][1] > 0 and hard["occluders"][1] > 0
    assert hard["occlusion"] > toy["occlusion"] and hard["contrast"] < toy["contrast"]
    y = make_shapes(tmp_path / "h", n_train=40, n_val=1, n_test=1, imgsz=128, **hard)
    rows = np.concatenate([np.loadtxt(f, ndmin=2) for f in sorted((tmp_path / "h" / "labels" / "train").iterdir())])
    assert set(rows[:, 0].astype(int)) == set(range(len(hard["classes"])))  # every class drawn
    sizes = rows[:, 3:].max(1) * 128
    assert sizes.min() >= hard["size_range"][0] * 0.85 and sizes.max() <= hard["size_range"][1] * 1.2
    assert load_data_config(y)["nc"] == len(hard["classes"])
    # Decoys and occluders draw pixels, never labels: the same stream with them off labels the same objects.
    knobs = dict(hard, decoys=(0, 0), occluders=(0, 0))
    plain = [_render(np.random.default_rng([0, 0, i]), 128, **knobs)[1] for i in range(5)]
    assert all(len(p) >= hard["objects"][0] - 1 for p in plain)
    img_on, lab_on = _render(np.random.default_rng([0, 0, 0]), 128, **dict(hard, decoys=(0, 0)))
    img_off, lab_off = _render(np.random.default_rng([0, 0, 0]), 128, **knobs)
    assert lab_on == lab_off  # occluders come after the objects: same labels
    assert lab_on and not np.array_equal(np.asarray(img_on), np.asarray(img_off))


def test_shape_outlines_are_centred_on_their_box():
    """The label box is centre +- max|outline|: tight only if the outline's box is centred (a triangle's
    circumcentre is not its box centre; labels once had a quarter of empty box beside each triangle)."""
    rng = np.random.default_rng(0)
    for kind in SHAPE_CLASSES:
        for _ in range(50):
            pts = _shape_polygon(kind, rng)
            if pts is not None:
                np.testing.assert_allclose(pts.min(0) + pts.max(0), 0, atol=1e-12)


@pytest.mark.parametrize("lo, hi", [(10, 160), (16, 64), (20, 40)])
def test_object_sizes_fill_three_log_bands(lo, hi):
    rng = np.random.default_rng(0)
    log_sizes = np.log([_object_size(rng, lo, hi) for _ in range(4000)])
    edges = np.log(lo) + np.array([0.0, 0.4, 0.75, 1.0]) * np.log(hi / lo)
    assert edges[0] <= log_sizes.min() and log_sizes.max() <= edges[-1]
    band = np.searchsorted(edges[1:-1], log_sizes)
    np.testing.assert_allclose(np.bincount(band, minlength=3) / len(band), [0.35, 0.45, 0.2], atol=0.03)
    for b in range(3):  # no band collapses to one size
        assert np.ptp(log_sizes[band == b]) > 0.9 * (edges[b + 1] - edges[b])

# ----------------------------------------------------------------------------- config


def test_load_data_config(shapes, tmp_path):
    cfg = load_data_config(shapes)
    assert cfg["nc"] == len(cfg["names"]) and cfg["names"][1] == "square"
    assert cfg["train"] == shapes.parent / "images" / "train" and cfg["train"].is_dir()

    # relative 'path:' taken from the yaml's folder, names as a list
    y = tmp_path / "rel.yaml"
    y.write_text(yaml.safe_dump({"path": os.path.relpath(shapes.parent, tmp_path), "train": "images/train",
                                 "val": "images/val", "names": ["a", "b", "c", "d"]}))
    cfg = load_data_config(y)
    assert cfg["names"] == {0: "a", 1: "b", 2: "c", 3: "d"} and cfg["nc"] == 4
    assert cfg["val"].resolve() == (shapes.parent / "images" / "val").resolve()

    y.write_text(yaml.safe_dump({"path": str(shapes.parent), "train": "images/train", "names": ["a"]}))
    with pytest.raises(ValueError, match="'val'"):
        load_data_config(y)
    y.write_text(yaml.safe_dump({"path": str(shapes.parent), "train": "images/train", "val": "images/val",
                                 "names": ["a", "b"], "nc": 3}))
    with pytest.raises(ValueError, match="'nc'"):
        load_data_config(y)
    y.write_text(yaml.safe_dump({"path": str(shapes.parent), "train": "nowhere", "val": "images/val",
                                 "names": ["a"]}))
    with pytest.raises(ValueError, match="'train'.*does not exist"):
        load_data_config(y)
    with pytest.raises(ValueError, match="path"):
        load_data_config(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- loader


@pytest.mark.parametrize("cache", [False, True])
def test_loader_on_generated_data(shapes, cache):
    cfg = load_data_config(shapes)
    ds = YoloDataset(cfg["val"], imgsz=256, nc=cfg["nc"], cache=cache)
    assert len(ds) == 8
    img, labels, path, (orig_hw, ratio, pad) = ds[0]
    assert img.shape == (3, 256, 256) and img.dtype == torch.uint8
    assert labels.shape[1] == 6 and (labels[:, 0] == 0).all()
    assert ((labels[:, 2:] > 0) & (labels[:, 2:] <= 1)).all() and (labels[:, 1] < cfg["nc"]).all()
    assert orig_hw == (320, 320) and ratio == (0.8, 0.8) and pad == (0, 0) and path.endswith(".jpg")
    np.testing.assert_allclose(labels[:, 1:].numpy(), np.loadtxt(img2label_path(path), ndmin=2), atol=1e-5)

    loader = create_dataloader(ds, batch_size=3, shuffle=False)
    imgs, targets, paths, shapes_ = next(iter(loader))
    assert imgs.shape == (3, 3, 256, 256) and len(paths) == 3 == len(shapes_)
    counts = [len(ds[i][1]) for i in range(3)]
    assert targets[:, 0].long().bincount(minlength=3).tolist() == counts


def _write(root, split, name, size, boxes, img_bytes=None, label_text=None):
    """An image with white rectangles at pixel boxes (x1, y1, x2, y2) on black, plus its label file."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    f = root / "images" / split / f"{name}.png"
    if img_bytes is not None:
        f.write_bytes(img_bytes)
    else:
        w, h = size
        a = np.zeros((h, w, 3), np.uint8)
        for x1, y1, x2, y2 in boxes:
            a[y1:y2, x1:x2] = 255
        Image.fromarray(a).save(f)
    if label_text is None:
        w, h = size
        label_text = "".join(f"0 {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}\n"
                             for x1, y1, x2, y2 in boxes)
    if label_text is not False:
        (root / "labels" / split / f"{name}.txt").write_text(label_text)
    return f


def _white_box(img):
    """Pixel x1, y1, x2, y2 of the bright pixels in a (3, H, W) uint8 tensor."""
    ys, xs = np.nonzero(img.numpy().min(0) > 200)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def _label_box(labels, s):
    return xywh2xyxy(labels[:, 2:].numpy().astype(float)) * s


def test_letterbox_geometry_and_inverse(tmp_path):
    # 200 wide x 100 high, box x 120..160, y 20..60 -> at 128: gain .64, 64 high, 32 px pad on top
    f = _write(tmp_path, "train", "wide", (200, 100), [(120, 20, 160, 60)])
    ds = YoloDataset(f, imgsz=128, nc=1)
    img, labels, _, (orig_hw, ratio, pad) = ds[0]
    assert orig_hw == (100, 200) and ratio == (0.64, 0.64) and pad == (0, 32)
    assert (img[:, :32] == 114).all() and (img[:, 96:] == 114).all()   # grey bars above and below
    expected = np.array([120, 20, 160, 60]) * 0.64 + [0, 32, 0, 32]
    np.testing.assert_allclose(_label_box(labels, 128)[0], expected, atol=1e-4)
    np.testing.assert_allclose(_white_box(img), expected, atol=1.0)
    back = scale_boxes((128, 128), torch.tensor(expected)[None], orig_hw, ratio_pad=(ratio, pad))
    np.testing.assert_allclose(back[0].numpy(), [120, 20, 160, 60], atol=1e-4)

    a, r, p = letterbox(np.zeros((30, 10, 3), np.uint8), 60)  # tall: pad left and right
    assert a.shape == (60, 60, 3) and r == (2.0, 2.0) and p == (20, 0)


def test_bad_files_are_skipped_with_warnings(tmp_path):
    good = [(10, 10, 30, 30)]
    for i in range(3):
        _write(tmp_path, "train", f"good{i}", (64, 64), good)
    bad = {
        "four_cols": "0 0.5 0.5 0.2\n",
        "out_of_range": "0 1.5 0.5 0.2 0.2\n",
        "big_class": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n",
        "not_numeric": "0 0.5 abc 0.2 0.2\n",
    }
    for name, text in bad.items():
        _write(tmp_path, "train", name, (64, 64), good, label_text=text)
    _write(tmp_path, "train", "corrupt", (64, 64), good, img_bytes=b"\x89PNG not really an image" * 10)
    _write(tmp_path, "train", "empty", (64, 64), [], label_text="")
    _write(tmp_path, "train", "nolabel", (64, 64), good, label_text=False)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = YoloDataset(tmp_path / "images" / "train", imgsz=64, nc=3)
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    for name in [*bad, "corrupt"]:
        assert any(f"{name}." in m for m in messages), name
    assert any("4 columns" in m for m in messages) and any("not normalised" in m for m in messages)
    assert any("class 7" in m for m in messages) and any("'abc'" in m for m in messages)
    assert any("unreadable image" in m and "corrupt.png" in m for m in messages)
    assert any("skipped 5 of 10 images" in m for m in messages)
    assert len(ds) == 5 and len(ds.skipped) == 5
    names = {p.stem: i for i, p in enumerate(ds.im_files)}
    assert len(ds[names["empty"]][1]) == 0 and len(ds[names["nolabel"]][1]) == 0   # background images
    batches = list(create_dataloader(ds, batch_size=2, shuffle=True))                # a full epoch
    assert sum(len(b[2]) for b in batches) == 5

    with pytest.raises(ValueError, match="img_dir_or_list"):
        YoloDataset(tmp_path / "does_not_exist")


def test_polygon_rows_and_duplicates(tmp_path):
    f = _write(tmp_path, "train", "poly", (100, 100), [],
               label_text="1 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")
    with pytest.warns(DatasetWarning, match="duplicate"):
        ds = YoloDataset(f, imgsz=100, nc=2)
    np.testing.assert_allclose(ds.labels[0], [[1, 0.3, 0.4, 0.4, 0.4], [0, 0.5, 0.5, 0.2, 0.2]], atol=1e-6)


def _no_aug(**kw):
    return {**dict(hsv_h=0, hsv_s=0, hsv_v=0, degrees=0, translate=0, scale=0, shear=0, flipud=0, fliplr=0,
                   mosaic=0), **kw}


def test_horizontal_flip_moves_the_box(tmp_path):
    f = _write(tmp_path, "train", "one", (64, 64), [(8, 20, 24, 44)])
    ds = YoloDataset(f, imgsz=64, augment=True, hyp=_no_aug(fliplr=1.0), nc=1)
    img, labels, _, _ = ds[0]
    expected = np.array([64 - 24, 20, 64 - 8, 44], float)
    np.testing.assert_allclose(_label_box(labels, 64)[0], expected, atol=1e-4)
    np.testing.assert_allclose(_white_box(img), expected, atol=0.5)
    img, labels, _, _ = YoloDataset(f, imgsz=64, augment=True, hyp=_no_aug(flipud=1.0), nc=1)[0]
    np.testing.assert_allclose(_white_box(img), [8, 64 - 44, 24, 64 - 20], atol=0.5)


def test_affine_and_mosaic_keep_boxes_on_their_pixels(tmp_path):
    for i in range(4):
        _write(tmp_path, "train", f"im{i}", (96, 64), [(10 + 8 * i, 12, 40 + 8 * i, 40), (60, 30, 90, 60)])
    torch.manual_seed(0)
    for hyp in (_no_aug(scale=0.5, translate=0.2, degrees=0), _no_aug(scale=0.5, translate=0.1, mosaic=1.0)):
        ds = YoloDataset(tmp_path / "images" / "train", imgsz=128, augment=True, hyp=hyp, nc=1)
        kept = 0
        for k in range(12):
            img, labels, _, _ = ds[k % 4]
            bright = img.numpy().min(0) > 200
            mask = np.zeros_like(bright)
            for x1, y1, x2, y2 in _label_box(labels, 128):
                inner = bright[int(np.ceil(y1)) + 1:int(y2) - 1, int(np.ceil(x1)) + 1:int(x2) - 1]
                assert inner.mean() > 0.95                        # every labelled box is filled white
                mask[max(int(y1) - 1, 0):int(np.ceil(y2)) + 1, max(int(x1) - 1, 0):int(np.ceil(x2)) + 1] = True
            assert not (bright & ~mask).sum() > 0.02 * max(bright.sum(), 1)  # white outside boxes: cut-off slivers only
            kept += len(labels)
        assert kept > 12


class _FixedGains:
    """Stands in for the generator: ``uniform(-1, 1, 3)`` returns the given draws."""

    def __init__(self, draws):
        self.draws = np.asarray(draws, float)

    def uniform(self, lo, hi, n):
        return self.draws


def test_hsv_gains_scale_value_and_rotate_hue_on_opencv_scale():
    import colorsys

    from course.yolo.data.augment import augment_hsv
    hyp = dict(hsv_h=0.5, hsv_s=0.7, hsv_v=0.4)
    grey = np.full((8, 8, 3), 100, np.uint8)
    same = augment_hsv(grey, hyp, _FixedGains([0, 0, 0]))
    assert np.abs(same.astype(int) - 100).max() <= 1                    # gains of 1: a round trip
    brighter = augment_hsv(grey, hyp, _FixedGains([0, 0, 1]))           # value gain 1.4
    assert np.abs(brighter.astype(int) - 140).max() <= 1
    green = np.zeros((8, 8, 3), np.uint8)
    green[..., 1] = 200                                                 # hue 120 degrees
    cyan = augment_hsv(green, hyp, _FixedGains([1, 0, 0]))              # hue gain 1.5: 180 degrees
    h, s, v = colorsys.rgb_to_hsv(*(cyan[0, 0] / 255))
    assert abs(h * 360 - 180) < 3 and s > 0.95 and abs(v - 200 / 255) < 0.01
    magenta = np.zeros((8, 8, 3), np.uint8)
    magenta[..., [0, 2]] = 200                                          # hue 300 degrees
    wrapped = augment_hsv(magenta, hyp, _FixedGains([1, 0, 0]))         # 450 degrees wraps to 90
    h, s, _ = colorsys.rgb_to_hsv(*(wrapped[0, 0] / 255))
    assert abs(h * 360 - 90) < 3 and s > 0.95


def test_an_error_in_augmentation_propagates_naming_the_image(shapes, monkeypatch):
    from course.yolo.data import dataset as dataset_module

    ds = YoloDataset(load_data_config(shapes)["val"], imgsz=64, augment=True)
    tried = []

    def broken_hsv(img, hyp, rng):
        tried.append(1)
        raise ValueError("bug in augmentation")

    monkeypatch.setattr(dataset_module, "augment_hsv", broken_hsv)
    with pytest.raises(ValueError, match="bug in augmentation") as info:
        ds[2]
    assert tried == [1], "another image was tried instead of reporting the error"
    assert any(str(ds.im_files[2]) in note for note in getattr(info.value, "__notes__", []))


def test_dataloader_is_reproducible(shapes):
    cfg = load_data_config(shapes)
    ds = YoloDataset(cfg["val"], imgsz=128, augment=True, nc=cfg["nc"])

    def first_batch(seed):
        torch.manual_seed(seed)
        imgs, labels, paths, _ = next(iter(create_dataloader(ds, 4, shuffle=True, seed=seed)))
        return imgs, labels, paths

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    assert a[2] == b[2] and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[2] != c[2] or not torch.equal(a[0], c[0])

    def worker_batch(seed):   # a worker process: its torch seed comes from the loader's generator
        return next(iter(create_dataloader(ds, 4, shuffle=True, workers=1, seed=seed)))[0]

    torch.manual_seed(5)
    first = worker_batch(0)
    torch.manual_seed(6)
    assert torch.equal(first, worker_batch(0))


def test_dataloader_uses_distributed_sampler_when_initialised(shapes, tmp_path):
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    ds = YoloDataset(load_data_config(shapes)["val"], imgsz=64)
    with pytest.raises(ValueError, match="distributed"):
        create_dataloader(ds, 2, shuffle=True, distributed=True)
    assert not isinstance(create_dataloader(ds, 2, shuffle=True).sampler, DistributedSampler)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = create_dataloader(ds, 2, shuffle=True, seed=3)
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.seed == 3
        assert sum(len(b[2]) for b in loader) == len(ds)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kw, match", [(dict(imgsz=16), "imgsz"), (dict(hyp={"fliplr": 2.0}), "fliplr"),
                                       (dict(hyp={"scale": "big"}), "scale"), (dict(nc=0), "nc")])
def test_dataset_rejects_bad_arguments(shapes, kw, match):
    with pytest.raises(ValueError, match=match):
        YoloDataset(load_data_config(shapes)["val"], **kw)


def test_create_dataloader_rejects_bad_arguments(shapes):
    ds = YoloDataset(load_data_config(shapes)["val"], imgsz=64)
    with pytest.raises(ValueError, match="batch_size"):
        create_dataloader(ds, 0, shuffle=False)
    with pytest.raises(ValueError, match="workers"):
        create_dataloader(ds, 2, shuffle=False, workers=-1)


def test_medium_preset_keeps_the_hard_classes_with_milder_nuisances():
    toy, medium, hard = DATA_PRESETS["toy"], DATA_PRESETS["medium"], DATA_PRESETS["hard"]
    assert medium["classes"] == hard["classes"]
    assert toy["size_range"][0] > medium["size_range"][0] > hard["size_range"][0]
    assert toy["contrast"] > medium["contrast"] > hard["contrast"]
    assert hard["clutter"][1] > medium["clutter"][1] and hard["decoys"][1] > medium["decoys"][1] > 0
    assert hard["occluders"][1] > medium["occluders"][1] and hard["occlusion"] > medium["occlusion"] > toy["occlusion"]

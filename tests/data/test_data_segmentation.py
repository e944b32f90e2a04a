"""Segmentation data: shipped class lists, label reading (16-bit TIFF), detectron2 layout, joint transforms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from radapter.data.segmentation import (
    LabelFileError,
    SegClassList,
    SegEvalTransform,
    SegTrainTransform,
    SemanticSegmentationDataset,
    load_class_list,
    nearest_resize,
    read_label,
    segmentation_class_list,
    split_synonyms,
)


# --- class lists ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, n, ignore, first, last",
    [
        ("coco_stuff171", 171, 255, "person", "wood"),
        ("ade150", 150, 255, "wall", "flag"),
        ("ade847", 847, 65535, "wall", "adding machine, totalizer, totaliser"),
        ("pc59", 59, 255, "aeroplane", "wood"),
        ("pc459", 459, 459, "accordion", "wool"),
        ("voc20", 20, 255, "aeroplane", "tvmonitor"),
    ],
)
def test_shipped_class_lists(name, n, ignore, first, last):
    cl = segmentation_class_list(name)
    assert cl.num_classes == n and len(set(cl.classes)) == n
    assert cl.classes[0] == first and cl.classes[-1] == last
    assert cl.ignore_value == ignore and cl.identity
    assert all(c == c.strip() and c for c in cl.classes)  # ADE-150's "bed " lost its trailing space


def test_voc20b_maps_context_prompts_to_background():
    cl = segmentation_class_list("VOC-20b")
    voc = segmentation_class_list("voc20")
    assert cl.classes == voc.classes + ("background",)
    assert len(cl.prompts) == 59 and cl.prompts[:20] == voc.classes
    assert set(cl.prompts) == set(segmentation_class_list("pc59").classes)  # CAT-Seg: VOC-20 + the other PC-59 classes
    assert cl.prompt_to_class == tuple(range(20)) + (20,) * 39
    assert not cl.identity


def test_ade847_has_synonyms_and_coco_stuff_names():
    ade = segmentation_class_list("ade847")
    assert split_synonyms(ade.classes[21]) == ("sofa", "couch", "lounge")
    assert sum("," in c for c in ade.classes) > 200
    coco = segmentation_class_list("coco-stuff")
    assert coco.classes[80] == "banner" and "building-other" in coco.classes


def test_class_list_errors_and_files(tmp_path):
    with pytest.raises(KeyError, match="ade150"):
        segmentation_class_list("ade-999")
    with pytest.raises(ValueError, match="ignore value 3 is a class id"):
        SegClassList("x", ("a", "b", "c", "d"), ignore_value=3)
    with pytest.raises(ValueError, match="classes \\[1\\] have no prompt"):
        SegClassList("x", ("a", "b"), ("p", "q"), (0, 0))
    with pytest.raises(ValueError, match="empty"):
        split_synonyms(" , ")
    txt = tmp_path / "mine.txt"
    txt.write_text("# my classes\ncat\n\nsofa, couch\n")
    cl = load_class_list(str(txt))
    assert cl.classes == ("cat", "sofa, couch") and cl.name == "mine"
    js = tmp_path / "b.json"
    js.write_text(json.dumps({"classes": ["a", "bg"], "prompts": ["a", "x", "y"], "prompt_to_class": [0, 1, 1]}))
    assert load_class_list(str(js)).prompt_to_class == (0, 1, 1)
    assert load_class_list(["cat", "dog"]).classes == ("cat", "dog")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_class_list(str(tmp_path / "nope.txt"))


# --- label files ------------------------------------------------------------------------------------------------
def test_16bit_tiff_labels_are_read_exactly_where_8bit_reading_corrupts(tmp_path):
    lab = np.array([[0, 255, 256, 300], [458, 459, 846, 65535]], dtype=np.uint16)
    path = tmp_path / "x.tif"
    Image.fromarray(lab).save(path)
    got = read_label(path)
    assert got.dtype == np.uint16 and np.array_equal(got, lab)
    # what an 8-bit read does to the same file: PIL clips to 255, numpy wraps modulo 256 — both silent
    with Image.open(path) as img:
        clipped = np.asarray(img.convert("L"))
        wrapped = np.asarray(img).astype(np.uint8)
    assert not np.array_equal(clipped, lab) and not np.array_equal(wrapped, lab)
    assert wrapped[1, 1] == 459 % 256  # PC-459's ignore value would become class 203


def test_8bit_and_palette_labels(tmp_path):
    lab = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    Image.fromarray(lab).save(tmp_path / "a.png")
    pal = Image.fromarray(lab, mode="P")
    pal.putpalette([0, 0, 0, 128, 0, 0] * 128)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_label(tmp_path / "a.png"), lab)
    assert np.array_equal(read_label(tmp_path / "p.png"), lab)


def test_label_errors_name_the_file(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(LabelFileError, match="rgb.png.*mode 'RGB'"):
        read_label(tmp_path / "rgb.png")
    with pytest.raises(LabelFileError, match="missing.png: file not found"):
        read_label(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(LabelFileError, match="bad.png: cannot decode"):
        read_label(tmp_path / "bad.png")


# --- detectron2 layout ------------------------------------------------------------------------------------------
def _write_layout(root, n=3, size=(12, 16), label_ext=".png", dtype=np.uint8, values=(0, 1, 2), ignore=255):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    labels = {}
    for i in range(n):
        img = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        lab = rng.choice(np.array(list(values) + [ignore], dtype=dtype), size=size)
        Image.fromarray(img).save(root / "images" / f"{i:03d}.jpg", quality=95)
        Image.fromarray(lab).save(root / "labels" / f"{i:03d}{label_ext}")
        labels[i] = lab
    return labels


def test_dataset_pairs_by_stem_and_keeps_full_resolution(tmp_path):
    labels = _write_layout(tmp_path)
    ds = SemanticSegmentationDataset(str(tmp_path / "images"), str(tmp_path / "labels"), num_classes=3)
    assert len(ds) == 3
    x, y = ds[1]
    assert x.shape == (3, 12, 16) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy(labels[1].astype(np.int64)))


def test_dataset_tiff_ignore_value_is_honoured(tmp_path):
    labels = _write_layout(tmp_path, label_ext=".tif", dtype=np.uint16, values=(0, 300, 458), ignore=459)
    pc459 = segmentation_class_list("pc459")
    ds = SemanticSegmentationDataset.from_class_list(str(tmp_path / "images"), str(tmp_path / "labels"), pc459)
    _, y = ds[0]
    assert torch.equal(y, torch.from_numpy(labels[0].astype(np.int64)))
    assert (y == 459).any() and (y == 300).any()
    # the same files read as an ADE-150-like dataset (150 classes, 255 ignore) are rejected, naming file and values
    bad = SemanticSegmentationDataset(str(tmp_path / "images"), str(tmp_path / "labels"), num_classes=150)
    with pytest.raises(LabelFileError, match=r"000\.tif.*values \[300, 458, 459\]"):
        bad[0]


def test_dataset_unpaired_and_missing_files_are_named(tmp_path):
    _write_layout(tmp_path)
    (tmp_path / "labels" / "001.png").unlink()
    with pytest.raises(ValueError, match="001.jpg"):
        SemanticSegmentationDataset(str(tmp_path / "images"), str(tmp_path / "labels"))
    ds = SemanticSegmentationDataset(str(tmp_path / "images"), str(tmp_path / "labels"), allow_unpaired=True)
    assert len(ds) == 2 and ds.unpaired == [str(tmp_path / "images" / "001.jpg")]
    with pytest.raises(FileNotFoundError, match="nothere"):
        SemanticSegmentationDataset(str(tmp_path / "nothere"), str(tmp_path / "labels"))
    (tmp_path / "images" / "002.jpg").write_bytes(b"broken")
    with pytest.raises(ValueError, match="002.jpg"):
        ds[1]


# --- transforms -------------------------------------------------------------------------------------------------
def test_train_transform_crops_image_and_label_jointly():
    # an image whose pixel value encodes its label: the pair must stay aligned through crop and flip (no resize
    # here: bilinear and nearest resizing differ at region borders by design)
    h, w = 30, 50
    lab = (np.arange(h)[:, None] // 3 * 10 + np.arange(w)[None, :] // 5).astype(np.uint16) + 300  # 16-bit ids
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = (lab - 300) % 256
    tf = SegTrainTransform(crop_size=20, resize_short=30, hflip=True, mean=(0, 0, 0), std=(1 / 255, 1, 1))
    seen_flip = set()
    for seed in range(8):
        x, y = tf(Image.fromarray(img), lab, np.random.default_rng(seed))
        assert x.shape == (3, 20, 20) and y.shape == (20, 20) and y.dtype == torch.int64
        assert (y >= 300).all()
        assert torch.equal(x[0].round().long(), (y - 300) % 256)
        seen_flip.add(bool(y[0, 0] > y[0, -1]))
    assert seen_flip == {True, False}
    # with resizing, 16-bit ids survive (nearest on the integer array) and shapes follow the crop
    x, y = SegTrainTransform(crop_size=16, resize_short=17)(Image.fromarray(img), lab, np.random.default_rng(0))
    assert x.shape == (3, 16, 16) and set(torch.unique(y).tolist()) <= set(np.unique(lab).tolist())


def test_train_transform_pads_with_ignore_and_is_seeded():
    lab = np.zeros((8, 8), dtype=np.uint8)
    img = Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8))
    tf = SegTrainTransform(crop_size=12, resize_short=8, hflip=False, ignore_value=255)
    x, y = tf(img, lab, np.random.default_rng(0))
    assert y.shape == (12, 12) and (y[8:, :] == 255).all() and (y[:, 8:] == 255).all() and (y[:8, :8] == 0).all()
    assert (x[:, 8:, :] == 0).all()  # padding is the mean colour
    a = SegTrainTransform(crop_size=6, scale_range=(0.8, 1.5), colour_jitter=True)
    r1, r2 = a(img, lab, np.random.default_rng(5)), a(img, lab, np.random.default_rng(5))
    assert torch.equal(r1[0], r2[0]) and torch.equal(r1[1], r2[1])


def test_eval_transform_and_nearest_resize():
    lab = np.array([[1, 2], [3, 4]], dtype=np.uint16)
    assert np.array_equal(nearest_resize(lab, 4, 4), np.kron(lab, np.ones((2, 2), dtype=np.uint16)))
    with pytest.raises(ValueError, match="label map is 2x2"):
        SegEvalTransform()(Image.new("RGB", (3, 3)), lab)


def test_every_segmentation_resource_is_attributed_in_the_readme():
    from importlib import resources

    root = resources.files("radapter.data").joinpath("resources")
    readme = root.joinpath("README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in root.joinpath("segmentation").iterdir())
    assert files == [
        "ade150.json",
        "ade847.json",
        "coco_stuff171.json",
        "pc459.json",
        "pc59.json",
        "voc20.json",
        "voc20b.json",
    ]
    assert all(f"`{name}`" in readme for name in files)

"""ImageFolderDataset: class discovery, class names, layout errors, corrupt images."""

from __future__ import annotations

import pytest
import torch
from tiny_images import make_class_tree, write_image

from radapter.data import CorruptImageError, DatasetLayoutError, ImageFolderDataset, eval_transform, skip_corrupt_images


def test_classes_are_sorted_folders_and_names_drop_underscores(tmp_path):
    make_class_tree(tmp_path, {"tabby_cat": 2, "golden_retriever": 3, "ant": 1})
    write_image(tmp_path / "ant" / "UPPER.JPEG")  # case-insensitive extension
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()  # hidden folders are not classes
    write_image(tmp_path / ".cache" / "x.png")
    write_image(tmp_path / "golden_retriever" / "nested" / "deep.png")  # sub-folders count for their class

    ds = ImageFolderDataset(tmp_path)
    assert ds.class_folders == ["ant", "golden_retriever", "tabby_cat"]
    assert ds.classnames == ["ant", "golden retriever", "tabby cat"]
    assert ds.targets == [0, 0, 1, 1, 1, 1, 2, 2]
    assert len(ds) == 8 and ds.samples[1][0].endswith("img000.png")
    assert ds.samples[1] == (str(tmp_path / "ant" / "img000.png"), 0)
    assert ds.samples[0][0].endswith("UPPER.JPEG")
    assert ds.class_to_idx == {"ant": 0, "golden_retriever": 1, "tabby_cat": 2}


def test_getitem_returns_pil_or_transformed_tensor(tmp_path):
    make_class_tree(tmp_path, ["a", "b"])
    image, label = ImageFolderDataset(tmp_path)[1]
    assert (image.mode, label) == ("RGB", 1)
    tensor, label = ImageFolderDataset(tmp_path, transform=eval_transform(16))[0]
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (3, 16, 16) and label == 0


def test_classnames_txt_one_per_line(tmp_path):
    make_class_tree(tmp_path, ["n02", "n01"])
    (tmp_path / "classnames.txt").write_text("# sorted folder order\ngoldfish\n\ntench\n")
    assert ImageFolderDataset(tmp_path).classnames == ["goldfish", "tench"]


def test_classnames_txt_folder_tab_name(tmp_path):
    make_class_tree(tmp_path, ["n02", "n01"])
    (tmp_path / "classnames.txt").write_text("n02\tgoldfish\nn01\ttench\n")
    assert ImageFolderDataset(tmp_path).classnames == ["tench", "goldfish"]


def test_classnames_txt_that_does_not_match_is_an_error(tmp_path):
    make_class_tree(tmp_path, ["a", "b", "c"])
    names = tmp_path / "classnames.txt"
    names.write_text("one\ntwo\n")
    with pytest.raises(DatasetLayoutError, match="2 class names but the folder has 3 class folders"):
        ImageFolderDataset(tmp_path)
    names.write_text("a\tA\nb\tB\nzz\tZ\n")
    with pytest.raises(DatasetLayoutError, match=r"no name for class folders c.*do not exist: zz"):
        ImageFolderDataset(tmp_path)


def test_classnames_argument_overrides_the_file(tmp_path):
    make_class_tree(tmp_path, ["a", "b"])
    (tmp_path / "classnames.txt").write_text("x\ny\n")
    assert ImageFolderDataset(tmp_path, classnames=["cat", "dog"]).classnames == ["cat", "dog"]
    assert ImageFolderDataset(tmp_path, classnames={"b": "dog", "a": "cat"}).classnames == ["cat", "dog"]
    with pytest.raises(ValueError, match="classnames has 1 entries"):
        ImageFolderDataset(tmp_path, classnames=["cat"])


def test_missing_root_names_the_path_and_draws_the_layout(tmp_path):
    missing = tmp_path / "pets"
    with pytest.raises(DatasetLayoutError) as info:
        ImageFolderDataset(missing)
    text = str(info.value)
    assert str(missing) in text and "not found" in text
    assert "expected layout:" in text and "pets/" in text and "├── class_a/" in text and "classnames.txt" in text


def test_root_without_class_folders_is_an_error(tmp_path):
    write_image(tmp_path / "loose.png")
    with pytest.raises(DatasetLayoutError, match="has no class folders"):
        ImageFolderDataset(tmp_path)
    with pytest.raises(DatasetLayoutError, match="must be a folder"):
        ImageFolderDataset(tmp_path / "loose.png")


def test_empty_class_folder_is_named(tmp_path):
    make_class_tree(tmp_path, {"full": 2, "empty_one": 0})
    (tmp_path / "empty_one" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetLayoutError, match=r"1 class folder\(s\) contain no images.*empty_one") as info:
        ImageFolderDataset(tmp_path)
    assert "expected layout" in str(info.value)


def test_explicit_class_folders_fix_label_order_and_report_missing(tmp_path):
    make_class_tree(tmp_path, ["2", "10", "1", "extra"])
    ds = ImageFolderDataset(tmp_path, class_folders=["1", "2", "10"])
    assert [ds.class_folders[label] for _, label in ds.samples] == ["1", "2", "10"]
    assert ds.samples[2] == (str(tmp_path / "10" / "img000.png"), 2)
    with pytest.raises(DatasetLayoutError, match=r"2 of 4 class folders are missing \(3, 4\)"):
        ImageFolderDataset(tmp_path, class_folders=["1", "2", "3", "4"])


def test_nested_extraction_gets_a_hint(tmp_path):
    make_class_tree(tmp_path / "imagenet-r", ["n01", "n02"])
    with pytest.raises(DatasetLayoutError, match="seem to be in .*imagenet-r: pass that path instead"):
        ImageFolderDataset(tmp_path, class_folders=["n01", "n02"])


def test_corrupt_image_raises_when_read_without_skip(tmp_path):
    make_class_tree(tmp_path, {"a": 2, "b": 1})
    bad = tmp_path / "a" / "zz_bad.jpg"
    bad.write_bytes(b"garbage bytes, not an image")
    ds = ImageFolderDataset(tmp_path)
    assert len(ds) == 4  # listing does not open files: a bad file costs nothing until it is read
    index = ds.paths.index(str(bad))
    with pytest.raises(CorruptImageError, match="zz_bad.jpg"):
        ds[index]


def test_skip_corrupt_drops_and_counts(tmp_path):
    make_class_tree(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "bad1.jpg").write_bytes(b"nope")
    (tmp_path / "b" / "bad2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = ImageFolderDataset(tmp_path, skip_corrupt=True, progress=False)
    assert len(ds) == 4 and ds.targets == [0, 0, 1, 1]
    assert len(ds.skipped) == 2
    assert {p.rsplit("/", 1)[-1] for p in ds.skipped.paths} == {"bad1.jpg", "bad2.png"}
    assert str(ds.skipped).startswith("skipped 2 corrupt images: ")
    assert all(ds[i][1] == ds.targets[i] for i in range(len(ds)))  # every remaining image reads


def test_skip_corrupt_function_on_an_existing_dataset(tmp_path):
    make_class_tree(tmp_path, {"a": 1, "b": 1})
    (tmp_path / "b" / "bad.webp").write_bytes(b"RIFF0000WEBPjunk")
    ds = ImageFolderDataset(tmp_path)
    report = skip_corrupt_images(ds, progress=False)
    assert len(report) == 1 and report.paths == [str(tmp_path / "b" / "bad.webp")]
    assert len(ds) == 2
    assert len(skip_corrupt_images(ds, progress=False)) == 0

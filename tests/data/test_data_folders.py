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


def test_classnames_txt_folder_tab_name(tmp_path):
    make_class_tree(tmp_path, ["n02", "n01"])
    (tmp_path / "classnames.txt").write_text("# folder<TAB>name\nn02\tgoldfish\n\nn01\ttench\n")
    assert ImageFolderDataset(tmp_path).classnames == ["tench", "goldfish"]


def test_classnames_txt_is_bound_to_folders_by_name_not_by_line_order(tmp_path):
    # Found on real digits: a file listing the classes in another order than the sorted folders scrambled
    # every label without a word (top-1 79.5 % -> 9.8 %). Names that spell the folders bind by name.
    make_class_tree(tmp_path, ["cat", "dog", "golden_retriever"])
    (tmp_path / "classnames.txt").write_text("Golden Retriever\nDog\nCat\n")
    ds = ImageFolderDataset(tmp_path)
    assert ds.class_folders == ["cat", "dog", "golden_retriever"]
    assert ds.classnames == ["Cat", "Dog", "Golden Retriever"]


def test_classnames_txt_with_other_names_one_per_line_is_refused_showing_the_mapping(tmp_path):
    make_class_tree(tmp_path, ["0", "1", "2"])
    (tmp_path / "classnames.txt").write_text("two\nzero\none\n")  # the order the user happened to type
    with pytest.raises(DatasetLayoutError) as info:
        ImageFolderDataset(tmp_path)
    text = str(info.value)
    assert str(tmp_path / "classnames.txt") in text
    assert "0 -> two" in text and "1 -> zero" in text and "2 -> one" in text  # the mapping it would use
    assert "folder<TAB>name" in text and "0<TAB>two" in text  # how to write the file if that is right


def test_classnames_txt_folder_space_name_lines(tmp_path):
    # Kaggle's LOC_synset_mapping.txt: "<wnid> <description>", in any order.
    make_class_tree(tmp_path, ["n01443537", "n01440764"])
    (tmp_path / "classnames.txt").write_text("n01443537 goldfish, Carassius auratus\nn01440764 tench, Tinca tinca\n")
    assert ImageFolderDataset(tmp_path).classnames == ["tench, Tinca tinca", "goldfish, Carassius auratus"]


def test_classnames_txt_that_does_not_match_is_an_error(tmp_path):
    make_class_tree(tmp_path, ["a", "b", "c"])
    names = tmp_path / "classnames.txt"
    names.write_text("one\ntwo\n")
    with pytest.raises(DatasetLayoutError, match="2 class names but the folder has 3 class folders"):
        ImageFolderDataset(tmp_path)
    names.write_text("a\tA\nb\tB\nzz\tZ\n")
    with pytest.raises(DatasetLayoutError, match=r"no name for class folders c.*do not exist: zz"):
        ImageFolderDataset(tmp_path)
    names.write_text("a\tA\nb\tB\nc\tC\nb\tBee\n")
    with pytest.raises(DatasetLayoutError, match=r"names folder 'b' twice \(entries 2 and 4\)"):
        ImageFolderDataset(tmp_path)


def test_classnames_argument_is_bound_by_name_too(tmp_path):
    make_class_tree(tmp_path, ["a", "b"])
    (tmp_path / "classnames.txt").write_text("x\ny\n")  # ignored: the argument wins
    assert ImageFolderDataset(tmp_path, classnames={"b": "dog", "a": "cat"}).classnames == ["cat", "dog"]
    assert ImageFolderDataset(tmp_path, classnames=["B", "A"]).classnames == ["A", "B"]
    with pytest.raises(ValueError, match=r"(?s)a -> cat.*b -> dog.*\{folder: name\} mapping"):
        ImageFolderDataset(tmp_path, classnames=["cat", "dog"])
    with pytest.raises(ValueError, match="classnames argument has 1 class names but the folder has 2"):
        ImageFolderDataset(tmp_path, classnames=["cat"])
    # A mapping may hold more folders than the dataset has (a lookup table such as all ImageNet classes).
    table = {"a": "cat", "b": "dog", "c": "cow"}
    assert ImageFolderDataset(tmp_path, classnames=table).classnames == ["cat", "dog"]


def test_classnames_file_argument(tmp_path):
    make_class_tree(tmp_path / "data", ["a", "b"])
    names = tmp_path / "names.tsv"
    names.write_text("b\tdog\na\tcat\n")
    assert ImageFolderDataset(tmp_path / "data", classnames_file=names).classnames == ["cat", "dog"]


def test_two_folders_with_one_name_are_reported(tmp_path, caplog):
    make_class_tree(tmp_path, ["a", "b"])
    with caplog.at_level("WARNING", logger="radapter"):
        ImageFolderDataset(tmp_path, classnames={"a": "Cat", "b": "cat"})
    assert "same class name" in caplog.text and "a, b" in caplog.text


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


def test_nesting_hint_names_every_folder_that_holds_the_classes(tmp_path):
    # An ImageNet root with train/ and val/: the hint must not steer an evaluation to train/ alone.
    make_class_tree(tmp_path / "train", ["n01", "n02"])
    make_class_tree(tmp_path / "val", ["n01", "n02"])
    with pytest.raises(DatasetLayoutError) as info:
        ImageFolderDataset(tmp_path, class_folders=["n01", "n02"])
    text = str(info.value)
    assert str(tmp_path / "train") in text and str(tmp_path / "val") in text


def test_every_image_type_torchvision_lists_is_listed(tmp_path):
    # torchvision's ImageFolder reads .tif/.tiff/.ppm/.pgm too; a folder of TIFFs must not lose images silently.
    for name in ("a.tif", "b.TIFF", "c.ppm", "d.pgm", "e.jpg"):
        write_image(tmp_path / "cls" / name)
    assert len(ImageFolderDataset(tmp_path)) == 5


def test_wordnet_id_folders_without_names_get_a_warning(tmp_path, caplog):
    # A zero-shot head built from "n01440764" prompts is meaningless; say so rather than train on it.
    make_class_tree(tmp_path, ["n01440764", "n01443537"])
    with caplog.at_level("WARNING", logger="radapter"):
        ds = ImageFolderDataset(tmp_path)
    assert ds.classnames == ["n01440764", "n01443537"]
    assert "WordNet IDs" in caplog.text and "classnames" in caplog.text

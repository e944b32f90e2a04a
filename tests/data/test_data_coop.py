"""The CoOp dataset registry and readers, on fake trees of every layout built in tmp_path."""

from __future__ import annotations

import json
import os

import pytest
from coop_fake_trees import write_authors_tree, write_fgvc_tree, write_imagenet_tree, write_split_json_tree

from radapter.data.base import DatasetLayoutError
from radapter.data.class_lists import imagenet_classnames, imagenet_wnids
from radapter.data.coop.readers import load_coop_dataset, read_split_json, write_imagenet_classnames
from radapter.data.coop.registry import COOP_DATASETS, coop_dataset_names, get_coop_dataset, split_camel_case

# CoOp's DATASETS.md and datasets/*.py (folder, image folder, split file) and trainers/zsclip.py
# (CUSTOM_TEMPLATES), written out by hand as the reference the registry must match.
COOP_TABLE = {
    "imagenet": ("imagenet", "images", None, "a photo of a {}."),
    "caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json", "a photo of a {}."),
    "oxford_pets": ("oxford_pets", "images", "split_zhou_OxfordPets.json", "a photo of a {}, a type of pet."),
    "stanford_cars": ("stanford_cars", "", "split_zhou_StanfordCars.json", "a photo of a {}."),
    "oxford_flowers": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json", "a photo of a {}, a type of flower."),
    "food101": ("food-101", "images", "split_zhou_Food101.json", "a photo of {}, a type of food."),
    "fgvc_aircraft": ("fgvc_aircraft", "images", None, "a photo of a {}, a type of aircraft."),
    "sun397": ("sun397", "SUN397", "split_zhou_SUN397.json", "a photo of a {}."),
    "dtd": ("dtd", "images", "split_zhou_DescribableTextures.json", "{} texture."),
    "eurosat": ("eurosat", "2750", "split_zhou_EuroSAT.json", "a centered satellite photo of {}."),
    "ucf101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", "a photo of a person doing {}."),
}
JSON_DATASETS = [name for name, row in COOP_TABLE.items() if row[2] is not None]


def test_registry_matches_coop():
    assert coop_dataset_names() == list(COOP_TABLE)
    for name, (folder, image_dir, split_file, template) in COOP_TABLE.items():
        spec = COOP_DATASETS[name]
        assert (spec.folder, spec.image_dir, spec.split_file, spec.template) == (
            folder,
            image_dir,
            split_file,
            template,
        )
    caltech = get_coop_dataset("caltech101")
    assert set(caltech.ignored_folders) == {"BACKGROUND_Google", "Faces_easy"}
    assert dict(caltech.renames) == {
        "airplanes": "airplane",
        "Faces": "face",
        "Leopards": "leopard",
        "Motorbikes": "motorbike",
    }
    eurosat = get_coop_dataset("eurosat")
    assert len(eurosat.renames) == 10 and eurosat.renames["SeaLake"] == "Sea or Lake"
    assert get_coop_dataset("ucf101").camel_case and get_coop_dataset("imagenet").val_is_test
    assert (
        sum(s.published.classes for s in COOP_DATASETS.values())
        == 1000 + 100 + 37 + 196 + 102 + 101 + 100 + 397 + 47 + 10 + 101
    )


@pytest.mark.parametrize(
    "alias, key",
    [("DescribableTextures", "dtd"), ("caltech-101", "caltech101"), ("ILSVRC2012", "imagenet"), ("Food-101", "food101"),
     ("OxfordFlowers", "oxford_flowers"), ("FGVCAircraft", "fgvc_aircraft"), ("EuroSAT", "eurosat")],
)  # fmt: skip
def test_lookup_by_alias(alias, key):
    assert get_coop_dataset(alias).name == key


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(KeyError, match="known: imagenet, caltech101"):
        get_coop_dataset("cifar10")


def test_camel_case_split_as_coop():
    assert split_camel_case("ApplyEyeMakeup") == "Apply_Eye_Makeup"
    assert split_camel_case("YoYo") == "Yo_Yo"
    assert split_camel_case("Apply_Eye_Makeup") == "Apply_Eye_Makeup"  # the split file's form stays


@pytest.mark.parametrize("name", JSON_DATASETS)
def test_split_json_datasets_load(tmp_path, name):
    spec = get_coop_dataset(name)
    folders = ["class_b", "Class_A", "zeta_one"]
    written = write_split_json_tree(tmp_path, spec, folders, counts=(5, 3, 2))
    data = load_coop_dataset(name, tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (15, 9, 6)
    assert data.classnames == ["class b", "Class A", "zeta one"]  # label order of the file, "_" -> " "
    assert [list(item) for item in data.train] == written["train"]
    expected_root = tmp_path / spec.folder / spec.image_dir if spec.image_dir else tmp_path / spec.folder
    assert data.image_root == str(expected_root)
    assert all(os.path.isfile(path) for path, _ in data.samples("test"))
    summary = data.summary()
    assert summary["train"] == 15 and summary["classes"] == 3 and summary["published"]["train"] == spec.published.train
    assert summary["source"] == str(tmp_path / spec.folder / spec.split_file)
    assert f"{name}: 3 classes, train 15 / val 9 / test 6 images" in str(data)


def test_split_json_keeps_coop_names_as_written(tmp_path):
    # Caltech's split file already has CoOp's fixed names ("face"); the reader does not rename again.
    spec = get_coop_dataset("caltech101")
    write_split_json_tree(tmp_path, spec, ["Faces", "accordion"], names=["face", "accordion"])
    assert load_coop_dataset("caltech101", tmp_path).classnames == ["face", "accordion"]


def test_missing_image_names_image_and_split_file(tmp_path):
    spec = get_coop_dataset("dtd")
    write_split_json_tree(tmp_path, spec, ["banded", "zigzagged"])
    victim = tmp_path / "dtd" / "images" / "zigzagged" / "val_001.jpg"
    victim.unlink()
    with pytest.raises(DatasetLayoutError) as err:
        load_coop_dataset("dtd", tmp_path)
    message = str(err.value)
    assert str(victim) in message and "split_zhou_DescribableTextures.json" in message and "1 of the 6" in message
    assert len(load_coop_dataset("dtd", tmp_path, check_files=False).val) == 6  # the check can be skipped


def test_missing_class_folder_is_reported(tmp_path):
    spec = get_coop_dataset("eurosat")
    write_split_json_tree(tmp_path, spec, ["Forest", "River"])
    for f in (tmp_path / "eurosat" / "2750" / "River").iterdir():
        f.unlink()
    (tmp_path / "eurosat" / "2750" / "River").rmdir()
    with pytest.raises(DatasetLayoutError, match=r"5 of the 10 images .*River/train_000.jpg"):
        load_coop_dataset("eurosat", tmp_path)


def test_missing_split_file_and_dataset_folder(tmp_path):
    with pytest.raises(DatasetLayoutError, match="OxfordPets is expected here"):
        load_coop_dataset("oxford_pets", tmp_path)
    (tmp_path / "oxford_pets").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"split_zhou_OxfordPets.json: missing"):
        load_coop_dataset("oxford_pets", tmp_path)


@pytest.mark.parametrize(
    "content, needle",
    [
        ({"train": [], "val": []}, "keys 'train', 'val' and 'test'"),
        ({"train": [["a.jpg", 0]], "val": [], "test": []}, r"train\[0\]"),
        ({"train": [["a.jpg", -1, "x"]], "val": [], "test": []}, r"label >= 0"),
        ({"train": {}, "val": [], "test": []}, "must be a list"),
    ],
)
def test_malformed_split_file(tmp_path, content, needle):
    path = tmp_path / "split.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DatasetLayoutError, match=needle) as err:
        read_split_json(path, tmp_path)
    assert str(path) in str(err.value)


def test_inconsistent_or_gappy_labels(tmp_path):
    spec = get_coop_dataset("food101")
    split = write_split_json_tree(tmp_path, spec, ["apple_pie", "baklava"])
    split["test"][0][2] = "not_apple_pie"
    (tmp_path / "food-101" / spec.split_file).write_text(json.dumps(split))
    with pytest.raises(DatasetLayoutError, match="label 0 is named both 'apple_pie' and 'not_apple_pie'"):
        load_coop_dataset("food101", tmp_path)
    split["test"][0][2] = "apple_pie"
    for s in split.values():
        for entry in s:
            entry[1] = 2 if entry[1] == 1 else entry[1]  # labels 0 and 2: label 1 unused
    (tmp_path / "food-101" / spec.split_file).write_text(json.dumps(split))
    with pytest.raises(DatasetLayoutError, match="labels must be 0 .. 2 with every label used; missing 1"):
        load_coop_dataset("food101", tmp_path)


def test_fgvc_aircraft_text_files(tmp_path):
    variants = ["707-320", "A300B4", "Cessna 172", "F-16A/B"]
    dataset_dir = write_fgvc_tree(tmp_path, variants, counts=(4, 2, 3))
    data = load_coop_dataset("fgvc_aircraft", tmp_path)
    assert data.classnames == variants  # label = line of variants.txt
    assert (len(data.train), len(data.val), len(data.test)) == (16, 8, 12)
    first = data.train[0]
    assert first.path.endswith(".jpg") and first.label == 0 and first.classname == "707-320"
    assert [d.classname for d in data.test if d.label == 2][0] == "Cessna 172"  # names with spaces survive
    with open(dataset_dir / "images_variant_val.txt", "a") as f:
        f.write("1999999 Boeing 999\n")
    with pytest.raises(DatasetLayoutError, match=r"images_variant_val.txt: line 9: variant 'Boeing 999'"):
        load_coop_dataset("fgvc_aircraft", tmp_path)


def test_fgvc_missing_image_names_list_file(tmp_path):
    dataset_dir = write_fgvc_tree(tmp_path, ["A", "B"])
    victim = sorted((dataset_dir / "images").iterdir())[-1]  # an image of the test list
    victim.unlink()
    with pytest.raises(DatasetLayoutError, match=r"images_variant_test.txt: 1 of the 4 images") as err:
        load_coop_dataset("fgvc_aircraft", tmp_path)
    assert str(victim) in str(err.value)


def test_imagenet_layout(tmp_path):
    wnids = {"n02000000": "zebra fish", "n01000000": "tench", "n03000000": "sunglasses"}
    write_imagenet_tree(tmp_path, wnids, train=3, val=2)
    data = load_coop_dataset("imagenet", tmp_path)
    assert data.classnames == ["tench", "zebra fish", "sunglasses"]  # sorted wnid folders
    assert (len(data.train), len(data.val), len(data.test)) == (9, 6, 6)
    assert data.val == data.test  # CoOp: the val folder is the test set, and also the val set
    assert data.train[0].path == "train/n01000000/n01000000_0.JPEG" and data.test[-1].label == 2
    assert data.image_root == str(tmp_path / "imagenet" / "images")
    assert data.summary()["published"]["val"] is None


def test_imagenet_errors(tmp_path):
    write_imagenet_tree(tmp_path, {"n01000000": "tench", "n02000000": "goldfish"})
    (tmp_path / "imagenet" / "images" / "val" / "n09999999").mkdir()
    with pytest.raises(DatasetLayoutError, match="class folders n09999999 are not in images/train"):
        load_coop_dataset("imagenet", tmp_path)
    (tmp_path / "imagenet" / "images" / "val" / "n09999999").rmdir()
    (tmp_path / "imagenet" / "classnames.txt").write_text("n01000000 tench\n")
    with pytest.raises(DatasetLayoutError, match="names no class for folders n02000000"):
        load_coop_dataset("imagenet", tmp_path)
    (tmp_path / "imagenet" / "classnames.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="classnames.txt: missing"):
        load_coop_dataset("imagenet", tmp_path)


def test_write_imagenet_classnames_matches_shipped_lists(tmp_path):
    path = tmp_path / "classnames.txt"
    write_imagenet_classnames(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 1000
    assert lines[0] == f"{imagenet_wnids()[0]} {imagenet_classnames()[0]}" == "n01440764 tench"
    names = dict(line.split(" ", 1) for line in lines)
    assert names["n15075141"] == imagenet_classnames()[999]


def test_authors_layout_applies_coop_fixes_in_imagefolder_order(tmp_path):
    classes = ["accordion", "airplanes", "BACKGROUND_Google", "Faces", "Faces_easy"]
    write_authors_tree(tmp_path, "caltech-101", classes)
    data = load_coop_dataset("caltech101", tmp_path, layout="authors")
    # sorted folders (ImageFolder order: capitals first), ignored folders dropped, renames applied
    assert data.classnames == ["face", "accordion", "airplane"]
    assert (len(data.train), len(data.val), len(data.test)) == (12, 6, 6)
    assert data.train[0].path == "train/Faces/0.jpg" and data.published is None
    assert data.image_root == str(tmp_path / "few_shot" / "caltech-101")


def test_authors_layout_ucf_and_imagenet(tmp_path):
    write_authors_tree(tmp_path, "ucf101", ["ApplyEyeMakeup", "YoYo"])
    assert load_coop_dataset("ucf101", tmp_path, layout="authors").classnames == ["Apply Eye Makeup", "Yo Yo"]
    wnids = list(imagenet_wnids()[:3])
    write_authors_tree(tmp_path, "ILSVRC2012", wnids, counts={"train": 3, "val": 2})
    data = load_coop_dataset("imagenet", tmp_path, layout="authors")
    assert data.classnames == list(imagenet_classnames()[:3])  # shipped CLIP names, as the authors' code
    assert data.test == data.val and len(data.test) == 6 and data.test[0].path.startswith("val/")


def test_authors_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="missing") as err:
        load_coop_dataset("dtd", tmp_path, layout="authors")
    assert "few_shot/dtd" in str(err.value)
    base = write_authors_tree(tmp_path, "dtd", ["banded", "dotted"])
    (base / "test" / "wrinkled").mkdir()
    with pytest.raises(DatasetLayoutError, match="class folders wrinkled are not in train/"):
        load_coop_dataset("dtd", tmp_path, layout="authors")
    with pytest.raises(ValueError, match="layout must be 'coop' or 'authors'"):
        load_coop_dataset("dtd", tmp_path, layout="imagefolder")

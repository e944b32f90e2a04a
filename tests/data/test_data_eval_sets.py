"""User-defined evaluation sets from a config: name matching, class subsets, errors."""

from __future__ import annotations

import pytest
import torch
from tiny_images import make_class_tree, write_image

from radapter.data import (
    DatasetLayoutError,
    EvalSetConfig,
    build_eval_set,
    imagenet_a_wnids,
    imagenet_classnames,
    match_classnames,
)

HEAD = ["cat", "dog", "golden retriever", "fish", "bird"]


def test_folder_classes_map_onto_the_head_by_name(tmp_path):
    make_class_tree(tmp_path, {"Golden_Retriever": 2, "fish": 1, "cat": 1})
    s = build_eval_set(EvalSetConfig(name="PetsSketch", path=str(tmp_path)), HEAD)
    assert (s.name, s.ood, s.classnames) == ("PetsSketch", True, HEAD)
    # Folders sort as Golden_Retriever, cat, fish (capitals first); labels are the head's.
    assert s.dataset.targets == [2, 2, 0, 3]
    assert s.dataset.class_to_idx == {"Golden_Retriever": 2, "cat": 0, "fish": 3}
    logits = torch.randn(4, 5)
    assert torch.equal(s.project_logits(logits), logits)  # scored over the whole head
    assert s.dataset[3][1] == 3


def test_class_subset_restricts_logits_and_relabels(tmp_path):
    make_class_tree(tmp_path, ["dog", "fish"])
    cfg = EvalSetConfig(name="Night", path=str(tmp_path), class_subset=["fish", 1])  # a name and an index
    s = build_eval_set(cfg, HEAD)
    assert s.classnames == ["fish", "dog"] and s.class_map == [[3], [1]]
    assert s.dataset.targets == [1, 0]  # folder dog -> subset label 1, fish -> 0
    logits = torch.tensor([[0.0, 10.0, 20.0, 30.0, 40.0]])
    assert s.project_logits(logits).tolist() == [[30.0, 10.0]]
    # bird (40) and golden retriever (20) would win over the full head; the subset ignores them.
    assert s.predictions(logits).tolist() == [0]


def test_subset_that_does_not_match_the_folders_is_an_error(tmp_path):
    make_class_tree(tmp_path, ["dog", "fish"])
    with pytest.raises(DatasetLayoutError, match=r"not in class_subset: fish.*no images of: bird"):
        build_eval_set(EvalSetConfig(name="X", path=str(tmp_path), class_subset=["dog", "bird"]), HEAD)
    with pytest.raises(ValueError, match=r"class_subset not in the head's 5 classes: 'dgo' \(close: dog\)"):
        build_eval_set(EvalSetConfig(name="X", path=str(tmp_path), class_subset=["dgo", "fish"]), HEAD)
    with pytest.raises(ValueError, match="lists classes twice: dog"):
        build_eval_set(EvalSetConfig(name="X", path=str(tmp_path), class_subset=["dog", 1, "fish"]), HEAD)


def test_folder_class_missing_from_the_head_is_named(tmp_path):
    make_class_tree(tmp_path, ["dog", "hamster"])
    with pytest.raises(ValueError, match=r"eval set 'Pets'.*folder classes not in the head's 5 classes: 'hamster'"):
        build_eval_set(EvalSetConfig(name="Pets", path=str(tmp_path)), HEAD)


def test_repeated_head_names_need_indices():
    head = ["sunglasses", "tench", "sunglasses"]
    with pytest.raises(ValueError, match="name more than one head class"):
        match_classnames(["sunglasses"], head)
    assert match_classnames([2, "TENCH", "0"], head) == [2, 1, 0]


def test_csv_eval_set_uses_head_labels(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    csv = tmp_path / "test.csv"
    csv.write_text("path;class\na.png;1\nb.png;4\n")
    cfg = EvalSetConfig(name="Csv", path=str(csv), kind="csv", csv_sep=";", csv_img_key="path", class_subset=[4, 1])
    s = build_eval_set(cfg, HEAD)
    assert s.dataset.targets == [1, 0] and s.classnames == ["bird", "dog"]


def test_imagenet_kinds_need_the_imagenet_head(tmp_path):
    root = make_class_tree(tmp_path / "a", imagenet_a_wnids())
    cfg = EvalSetConfig(name="MyA", path=str(root), kind="ImageNetA")
    assert cfg.kind == "imagenet-a" and cfg.ood is True
    with pytest.raises(ValueError, match="needs a head over the 1000 ImageNet classes, but the head has 5"):
        build_eval_set(cfg, HEAD)
    with pytest.raises(ValueError, match="must be the 1000 ImageNet classes"):
        build_eval_set(cfg, [f"c{i}" for i in range(1000)])  # 1000 classes, but not ImageNet's
    s = build_eval_set(cfg, list(imagenet_classnames()))
    assert s.name == "MyA" and len(s.classnames) == 200
    with pytest.raises(ValueError, match="class_subset cannot be used with kind 'imagenet-a'"):
        build_eval_set(EvalSetConfig(name="MyA", path=str(root), kind="imagenet-a", class_subset=[1]), HEAD)


def test_config_validation():
    assert EvalSetConfig(name="IN", path="/x", kind="imagenet").ood is False  # the ID set
    assert EvalSetConfig(name="IN", path="/x", kind="imagenet", ood=True).ood is True
    with pytest.raises(ValueError, match=r"unknown kind 'imagefoldr' \(did you mean 'imagefolder'\?\)"):
        EvalSetConfig(name="X", path="/x", kind="imagefoldr")
    with pytest.raises(ValueError, match=r"unknown eval set key 'class_subet' \(did you mean 'class_subset'\?\)"):
        EvalSetConfig.from_dict({"name": "X", "path": "/x", "class_subet": ["a"]})
    with pytest.raises(ValueError, match="lacks path"):
        EvalSetConfig.from_dict({"name": "X"})
    with pytest.raises(ValueError, match="list of class names"):
        EvalSetConfig(name="X", path="/x", class_subset="dog")
    cfg = EvalSetConfig.from_dict({"name": "X", "path": "/x", "kind": "CSV", "class_subset": ("a", 2)})
    assert (cfg.kind, cfg.class_subset) == ("csv", ["a", 2])


def test_imagefolder_set_with_the_training_folders_is_matched_by_folder(tmp_path):
    # Trained on wnid folders named through a {wnid: name} table: the eval set's folders are wnids too, which
    # match no head *name*; the training folders match them exactly.
    make_class_tree(tmp_path, ["n02", "n01"])
    head, folders = ["goldfish", "tench", "shark"], ["n02", "n01", "n03"]
    s = build_eval_set(EvalSetConfig(name="X", path=str(tmp_path)), head, head_folders=folders)
    assert s.dataset.class_to_idx == {"n01": 1, "n02": 0} and s.dataset.targets == [1, 0]
    with pytest.raises(ValueError, match="folder classes not in the head's 3 classes"):
        build_eval_set(EvalSetConfig(name="X", path=str(tmp_path)), head)


def test_labels_file_is_only_for_flat_imagenet_val():
    assert EvalSetConfig(name="IN", path="/x", kind="imagenet", labels_file="/gt.txt").labels_file == "/gt.txt"
    with pytest.raises(ValueError, match="labels_file is for kind 'imagenet'"):
        EvalSetConfig(name="A", path="/x", kind="imagenet-a", labels_file="/gt.txt")


def test_path_must_be_a_path_and_may_start_with_a_tilde():
    with pytest.raises(ValueError, match="'path' must be a file or folder path, got 3"):
        EvalSetConfig(name="X", path=3)
    assert not EvalSetConfig(name="X", path="~/data/pets").path.startswith("~")

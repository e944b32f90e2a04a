"""The ImageNet evaluation suite: label spaces, logit projection and layout errors, on fake folders."""

from __future__ import annotations

import pytest
import torch
from tiny_images import png_bytes

from radapter.data import (
    DatasetLayoutError,
    EvalSet,
    build_imagenet_eval_set,
    build_imagenet_suite,
    imagenet_a_wnids,
    imagenet_classnames,
    imagenet_r_wnids,
    imagenet_wnids,
    objectnet_classes,
)
from radapter.data.shifts import imagenet_eval_set_key

IMAGE = png_bytes((9, 7))


def _tree(root, folders):
    """One tiny image per folder (empty folders are layout errors)."""
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "0.png").write_bytes(IMAGE)
    return root


@pytest.fixture(scope="module")
def wnid_root(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("imagenet_val"), imagenet_wnids())


@pytest.mark.parametrize(
    ("name", "ood", "set_name"), [("imagenet", False, "ImageNet"), ("ImageNetSketch", True, "ImageNetSketch")]
)
def test_imagenet_and_sketch_use_the_1000_classes_as_they_are(wnid_root, name, ood, set_name):
    s = build_imagenet_eval_set(name, wnid_root)
    assert (s.name, s.ood, len(s.dataset), len(s.classnames)) == (set_name, ood, 1000, 1000)
    assert s.classnames == list(imagenet_classnames())
    path, label = s.dataset.samples[417]
    assert f"/{imagenet_wnids()[417]}/" in path and label == 417
    logits = torch.randn(3, 1000)
    assert s.project_logits(logits) is logits


def test_imagenet_v2_labels_are_the_integer_folder_names(tmp_path):
    s = build_imagenet_eval_set("imagenet-v2", _tree(tmp_path, [str(i) for i in range(1000)]))
    assert s.name == "ImageNetV2" and s.ood
    by_folder = {path.split("/")[-2]: label for path, label in s.dataset.samples}
    assert all(by_folder[str(i)] == i for i in range(1000))  # "10" is 10, not its rank as a string (2)
    assert s.dataset[10][1] == 10
    assert s.project_logits(torch.zeros(2, 1000)).shape == (2, 1000)


@pytest.mark.parametrize(("name", "wnids"), [("imagenet-a", imagenet_a_wnids), ("imagenet-r", imagenet_r_wnids)])
def test_imagenet_a_and_r_project_exactly_their_columns(tmp_path, name, wnids):
    subset = wnids()
    s = build_imagenet_eval_set(name, _tree(tmp_path, subset))
    assert len(s.dataset) == 200 and len(s.classnames) == 200
    columns = [imagenet_wnids().index(w) for w in subset]
    assert s.head_columns == columns
    # Each logit equals its column index, so the projection shows which columns it picked.
    logits = torch.arange(1000, dtype=torch.float32).repeat(2, 1)
    assert s.project_logits(logits).tolist() == [columns, columns]
    assert s.classnames == [imagenet_classnames()[c] for c in columns]
    # Labels are in the 200-class space: the image in folder subset[i] has label i.
    for path, label in s.dataset.samples:
        assert path.split("/")[-2] == subset[label]
    # A head that favours the true column of each image predicts every image right after projection.
    true_columns = torch.tensor([columns[label] for label in s.dataset.targets])
    head_logits = torch.nn.functional.one_hot(true_columns, 1000).float()
    head_logits[:, 0] = 0.5  # a column outside the subset (tench is in neither) must not count
    assert (s.predictions(head_logits) == torch.tensor(s.dataset.targets)).all()


def test_incomplete_imagenet_a_lists_missing_folders_and_layout(tmp_path):
    subset = imagenet_a_wnids()
    _tree(tmp_path, subset[:150])
    with pytest.raises(DatasetLayoutError) as info:
        build_imagenet_eval_set("imagenet-a", tmp_path)
    text = str(info.value)
    assert str(tmp_path) in text and "ImageNet-A is incomplete: 50 of 200 class folders are missing" in text
    assert subset[150] in text and "... and 45 more" in text
    assert "expected layout:" in text and f"├── {subset[0]}/" in text and "200 folders named by WordNet ID" in text


def test_empty_class_folder_and_missing_root_are_layout_errors(tmp_path):
    root = _tree(tmp_path / "r", imagenet_r_wnids())
    empty = imagenet_r_wnids()[7]
    (root / empty / "0.png").unlink()
    with pytest.raises(DatasetLayoutError, match=f"contain no images.*{empty}"):
        build_imagenet_eval_set("imagenet-r", root)
    with pytest.raises(DatasetLayoutError, match="ObjectNet not found \\(nothing is downloaded\\)"):
        build_imagenet_eval_set("objectnet", tmp_path / "objectnet-1.0" / "images")


def test_objectnet_maps_113_folders_ignores_others_and_crops_the_border(tmp_path):
    classes = objectnet_classes()
    root = _tree(tmp_path, [c.folder for c in classes] + ["squeegee", "dog_bed"])  # two unmapped classes
    s = build_imagenet_eval_set("objectnet", root)
    assert s.name == "ObjectNet" and len(s.dataset) == 113 and len(s.classnames) == 113
    assert all("squeegee" not in path and "dog_bed" not in path for path in s.dataset.paths)
    assert s.classnames[0] == "alarm clock"
    image, label = s.dataset[0]
    assert label == 0 and image.size == (5, 3)  # 9x7 minus a 2-pixel border on every side


def test_objectnet_logit_is_the_max_over_mapped_imagenet_classes(tmp_path):
    classes = objectnet_classes()
    s = build_imagenet_eval_set("objectnet", _tree(tmp_path, [c.folder for c in classes]))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1000, generator=generator)
    logits[0, 530] = 50.0  # digital clock: the "alarm clock" logit of row 0 must follow it
    projected = s.project_logits(logits)
    assert projected.shape == (4, 113)
    expected = torch.stack([logits[:, list(c.imagenet_indices)].max(dim=1).values for c in classes], dim=1)
    assert torch.equal(projected, expected)
    assert projected[0, 0] == 50.0 and s.predictions(logits)[0] == 0
    # Hand-made case for a three-way class (pen: ballpoint 418, fountain pen 563, quill 749).
    pen = [c.folder for c in classes].index("pen")
    hand = torch.full((1, 1000), -1.0)
    hand[0, 563] = 3.0
    hand[0, 749] = 2.0
    assert s.project_logits(hand)[0, pen] == 3.0


def test_project_logits_rejects_a_head_of_another_width():
    s = EvalSet("toy", dataset=[], classnames=["a", "b"], class_map=[[2], [0, 1]], num_head_classes=3)
    assert s.project_logits(torch.tensor([[1.0, 5.0, 2.0]])).tolist() == [[2.0, 5.0]]
    with pytest.raises(ValueError, match="expects logits over 3 head classes, got 4"):
        s.project_logits(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="outside a head of 3 classes"):
        EvalSet("bad", dataset=[], classnames=["a"], class_map=[[3]], num_head_classes=3)


def test_names_are_accepted_in_several_spellings():
    assert imagenet_eval_set_key("ImageNetA") == imagenet_eval_set_key("imagenet_a") == "imagenet-a"
    assert imagenet_eval_set_key("ImageNetV2") == "imagenet-v2" and imagenet_eval_set_key("objectnet") == "objectnet"
    with pytest.raises(ValueError, match="unknown ImageNet eval set 'imagenet-c'"):
        imagenet_eval_set_key("imagenet-c")


def test_suite_from_one_data_location(tmp_path):
    _tree(tmp_path / "imagenet-a", imagenet_a_wnids())
    _tree(tmp_path / "imagenet-r", imagenet_r_wnids())
    sets = build_imagenet_suite(tmp_path, names=["ImageNetA", "imagenet-r"])
    assert [s.name for s in sets] == ["ImageNetA", "ImageNetR"] and all(s.ood for s in sets)
    with pytest.raises(DatasetLayoutError, match="sketch"):
        build_imagenet_suite(tmp_path, names=["imagenet-sketch"])


def test_skip_corrupt_in_a_shift_set(tmp_path):
    root = _tree(tmp_path, imagenet_a_wnids())
    (root / imagenet_a_wnids()[3] / "1.jpg").write_bytes(b"corrupt")
    s = build_imagenet_eval_set("imagenet-a", root, skip_corrupt=True, progress=False)
    assert len(s.dataset) == 200 and len(s.dataset.skipped) == 1

"""ImageNet evaluation sets against a head whose classes are not in ImageNet order (issue 9 §7).

A head built from a training ImageFolder follows that folder's sorted order. The ImageNet sets label
their images in ImageNet's order, so each set must find every ImageNet class among the head's columns:
remap a permutation, refuse anything else.
"""

from __future__ import annotations

import random

import pytest
import torch
from tiny_images import png_bytes

from radapter.data.class_lists import (
    imagenet_a_wnids,
    imagenet_classnames,
    imagenet_lemmas,
    imagenet_wnids,
    match_imagenet_classes,
    objectnet_classes,
)
from radapter.data.eval_sets import EvalSetConfig, build_eval_set
from radapter.data.shifts import build_imagenet_eval_set

IMAGE = png_bytes((6, 5))


def _tree(root, folders):
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "0.png").write_bytes(IMAGE)
    return root


# CLIP's ImageNet names call two classes "missile" (657, 744) and two "sunglasses" (836, 837): a head of names
# cannot say which is which (and a text head scores them alike), so they are matched in ImageNet order.
REPEATED_NAMES = ((657, 744), (836, 837))


def _shuffled(seed: int = 0) -> list[int]:
    """``perm[j]`` = the ImageNet class at head column ``j``; the classes of a repeated name keep their order."""
    perm = list(range(1000))
    random.Random(seed).shuffle(perm)
    for first, second in REPEATED_NAMES:
        i, j = perm.index(first), perm.index(second)
        if i > j:
            perm[i], perm[j] = perm[j], perm[i]
    return perm


def _one_hot_at(columns: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(columns), 1000).float()


@pytest.fixture(scope="module")
def a_root(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("imagenet_a"), imagenet_a_wnids())


@pytest.fixture(scope="module")
def val_root(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp("imagenet_val"), imagenet_wnids())


def test_imagenet_a_scores_each_image_with_the_head_column_of_its_class(a_root):
    perm = _shuffled()
    head = [imagenet_classnames()[p] for p in perm]  # human-readable classes in the user's own order
    s = build_eval_set(EvalSetConfig(name="A", path=str(a_root), kind="imagenet-a"), head)
    column_of = {imagenet_class: column for column, imagenet_class in enumerate(perm)}
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    true_class = [position[imagenet_a_wnids()[label]] for label in s.dataset.targets]
    # A perfect model puts its highest logit on the head column of each image's class.
    logits = _one_hot_at([column_of[c] for c in true_class])
    assert (s.predictions(logits) == torch.tensor(s.dataset.targets)).all()
    # ImageNet-A's label 0 is stingray (ImageNet class 6): read from the head's stingray column, not column 6.
    assert s.classnames[0] == "stingray" and s.class_map[0] == [column_of[6]] and column_of[6] != 6


def test_imagenet_val_labels_follow_the_head_order(val_root):
    perm = _shuffled(1)
    head = [imagenet_classnames()[p] for p in perm]
    s = build_eval_set(EvalSetConfig(name="IN", path=str(val_root), kind="imagenet"), head)
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    column_of = {c: j for j, c in enumerate(perm)}
    true_column = [column_of[position[path.split("/")[-2]]] for path in s.dataset.paths]
    assert (s.predictions(_one_hot_at(true_column)) == torch.tensor(s.dataset.targets)).all()
    assert s.classnames == head  # the set's label space is the head's


def test_wnid_folders_in_another_order_are_matched_by_folder(a_root):
    perm = _shuffled(2)
    folders = [imagenet_wnids()[p] for p in perm]
    names = [f"class {j}" for j in range(1000)]  # names that say nothing: the folders decide
    cfg = EvalSetConfig(name="A", path=str(a_root), kind="imagenet-a")
    s = build_eval_set(cfg, names, head_folders=folders)
    column_of = {c: j for j, c in enumerate(perm)}
    assert s.class_map[0] == [column_of[6]]


def test_objectnet_groups_follow_the_head_order(tmp_path):
    classes = objectnet_classes()
    root = _tree(tmp_path, [c.folder for c in classes])
    perm = _shuffled(3)
    column_of = {c: j for j, c in enumerate(perm)}
    s = build_imagenet_eval_set("objectnet", root, head_classnames=[imagenet_classnames()[p] for p in perm])
    assert s.class_map == [[column_of[i] for i in c.imagenet_indices] for c in classes]


def test_a_head_in_imagenet_order_is_left_as_it_is(a_root, val_root):
    s = build_eval_set(EvalSetConfig(name="A", path=str(a_root), kind="imagenet-a"), list(imagenet_classnames()))
    position = {w: i for i, w in enumerate(imagenet_wnids())}
    assert s.class_map == [[position[w]] for w in imagenet_a_wnids()]
    v = build_eval_set(EvalSetConfig(name="IN", path=str(val_root), kind="imagenet"), list(imagenet_classnames()))
    assert v.class_map is None and v.dataset.targets == list(range(1000))


def test_a_head_of_other_1000_classes_is_refused_with_what_was_expected(a_root):
    cfg = EvalSetConfig(name="A", path=str(a_root), kind="imagenet-a")
    with pytest.raises(ValueError) as info:
        build_eval_set(cfg, [f"digit {i}" for i in range(1000)])
    text = str(info.value)
    assert "eval set 'A'" in text and "must be the 1000 ImageNet classes" in text
    assert "'digit 0'" in text or "digit 0" in text
    # A head that is ImageNet with one class replaced is refused too, naming both sides.
    head = list(imagenet_classnames())
    head[6] = "manta ray"
    with pytest.raises(ValueError, match=r"not ImageNet class names: manta ray"):
        build_eval_set(cfg, head)


def test_wnid_folders_that_are_not_imagenet_1k_are_refused(a_root):
    folders = list(imagenet_wnids())
    folders[5] = "n99999999"
    with pytest.raises(ValueError, match=r"not in ImageNet-1k: n99999999.*missing: " + imagenet_wnids()[5]):
        match_imagenet_classes([f"c{i}" for i in range(1000)], folders)


def test_wordnet_lemmas_and_folder_spellings_are_recognised():
    perm = _shuffled(4)
    lemmas = imagenet_lemmas()
    # Folders named by the full WordNet description ("tench, Tinca tinca"), as Kaggle's LOC_synset_mapping.txt.
    # Two classes are both plain "crane" (the bird 134, the machine 517): like any repeated name, either way.
    head = [", ".join(lemmas[p]) for p in perm]
    columns = match_imagenet_classes(head)
    assert {i for i in range(1000) if perm[columns[i]] != i} <= {134, 517}
    # "GREAT_WHITE_SHARK" (a folder name) matches CLIP's "great white shark"; a shuffle that keeps the
    # repeated names in order is recovered exactly.
    head = [imagenet_classnames()[p].replace(" ", "_").upper() for p in perm]
    columns = match_imagenet_classes(head)
    assert all(perm[columns[i]] == i for i in range(1000))

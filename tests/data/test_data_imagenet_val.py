"""ImageNet val in its original flat layout, the WiSE-FT folder names, V2's variants, unknown folders."""

from __future__ import annotations

import logging

import pytest
from tiny_images import png_bytes

from radapter.data.base import DatasetLayoutError
from radapter.data.class_lists import imagenet_a_wnids, imagenet_ilsvrc2012_ids, imagenet_wnids
from radapter.data.eval_sets import EvalSetConfig, build_eval_set
from radapter.data.shifts import build_imagenet_eval_set, build_imagenet_suite, imagenet_eval_set_key

IMAGE = png_bytes((6, 5))
# The devkit's ground truth for val images 1..6 (ILSVRC2012_IDs), and the labels Caffe's val.txt gives the
# same images in the sorted-wnid order (an independent public list): 65 = n01751748 sea snake, 970 = alp, ...
DEVKIT_IDS = [490, 361, 171, 822, 297, 482]
SORTED_LABELS = [65, 970, 230, 809, 516, 57]


def _tree(root, folders):
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "0.png").write_bytes(IMAGE)
    return root


def _flat_val(root, count=6):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        (root / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(IMAGE)
    return root


def test_ilsvrc2012_ids_are_a_permutation_of_the_1000_wnids():
    ids = imagenet_ilsvrc2012_ids()
    assert len(ids) == 1000 and sorted(ids) == list(imagenet_wnids())
    assert (ids[0], ids[489], ids[999]) == ("n02119789", "n01751748", "n03255030")  # kit fox, sea snake, dumbbell


def test_flat_val_with_the_devkit_ground_truth(tmp_path):
    images = _flat_val(tmp_path / "ILSVRC2012_img_val")
    gt = tmp_path / "ILSVRC2012_devkit_t12" / "data" / "ILSVRC2012_validation_ground_truth.txt"
    gt.parent.mkdir(parents=True)
    gt.write_text("\n".join(str(i) for i in DEVKIT_IDS + [1] * 10) + "\n")  # 16 lines, 6 images present
    s = build_imagenet_eval_set("imagenet", images)
    assert s.name == "ImageNet" and not s.ood and s.class_map is None
    assert [p.rsplit("/", 1)[-1] for p in s.dataset.paths][0] == "ILSVRC2012_val_00000001.JPEG"
    assert s.dataset.targets == SORTED_LABELS
    assert s.dataset[0][1] == 65


def test_flat_val_with_kaggle_loc_val_solution(tmp_path):
    images = _flat_val(tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val", count=3)
    wnids = imagenet_wnids()
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000003,{wnids[230]} 1 2 3 4 {wnids[230]} 5 6 7 8\n"  # rows in any order, several boxes
        f"ILSVRC2012_val_00000001,{wnids[65]} 10 20 30 40\n"
        f"ILSVRC2012_val_00000002,{wnids[970]} 1 1 2 2\n"
    )
    s = build_imagenet_eval_set("imagenet", images)
    assert s.dataset.targets == [65, 970, 230]


def test_flat_val_labels_file_given_in_the_config(tmp_path):
    images = _flat_val(tmp_path / "val", count=2)
    gt = tmp_path / "elsewhere" / "gt.txt"
    gt.parent.mkdir()
    gt.write_text("490\n361\n")
    cfg = EvalSetConfig(name="IN", path=str(images), kind="imagenet", labels_file=str(gt))
    s = build_eval_set(cfg, [f"c{i}" for i in range(1000)], head_folders=list(imagenet_wnids()))
    assert s.dataset.targets == [65, 970]


def test_flat_val_without_labels_says_which_files_it_looked_for(tmp_path):
    images = _flat_val(tmp_path / "ILSVRC2012_img_val", count=2)
    with pytest.raises(DatasetLayoutError) as info:
        build_imagenet_eval_set("imagenet", images)
    text = str(info.value)
    assert "ILSVRC2012_validation_ground_truth.txt" in text and "LOC_val_solution.csv" in text
    assert str(images) in text


def test_flat_val_rejects_a_short_or_bad_ground_truth(tmp_path):
    images = _flat_val(tmp_path / "val", count=3)
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("490\n361\n")
    with pytest.raises(DatasetLayoutError, match=r"has 2 labels.*ILSVRC2012_val_00000003.JPEG"):
        build_imagenet_eval_set("imagenet", images)
    gt.write_text("490\n0\n1001\n")
    with pytest.raises(DatasetLayoutError, match=r"line 2: '0'.*1\.\.1000"):
        build_imagenet_eval_set("imagenet", images)


def test_suite_finds_wise_ft_folder_names(tmp_path):
    _tree(tmp_path / "imagenet" / "val_in_folder", imagenet_wnids())
    _tree(tmp_path / "ImageNetV2-matched-frequency", [str(i) for i in range(1000)])
    sets = build_imagenet_suite(tmp_path, names=["imagenet", "imagenet-v2"])
    assert [s.name for s in sets] == ["ImageNet", "ImageNetV2"]
    assert "val_in_folder" in sets[0].dataset.root and "ImageNetV2-matched-frequency" in sets[1].dataset.root


def test_suite_error_lists_every_folder_it_tried(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        build_imagenet_suite(tmp_path, names=["imagenet-v2"])
    text = str(info.value)
    assert "imagenetv2-matched-frequency-format-val" in text and "ImageNetV2-matched-frequency" in text


@pytest.mark.parametrize(
    ("alias", "key", "name", "folder"),
    [
        (
            "ImageNetV2-threshold0.7",
            "imagenet-v2-threshold0.7",
            "ImageNetV2Threshold",
            "imagenetv2-threshold0.7-format-val",
        ),
        ("imagenetv2_top_images", "imagenet-v2-top-images", "ImageNetV2TopImages", "ImageNetV2-top-images"),
    ],
)
def test_imagenet_v2_variants_have_names(tmp_path, alias, key, name, folder):
    assert imagenet_eval_set_key(alias) == key
    _tree(tmp_path / folder, [str(i) for i in range(1000)])
    (s,) = build_imagenet_suite(tmp_path, names=[alias])
    assert s.name == name and s.ood and len(s.dataset) == 1000
    assert EvalSetConfig(name="x", path="/x", kind=alias).kind == key


def test_unknown_class_folders_are_reported_with_count_and_names(tmp_path, caplog):
    _tree(tmp_path / "a", list(imagenet_a_wnids()) + ["n01440764", "n01443537", "stray"])  # tench, goldfish: not in A
    _tree(tmp_path / "v2", [str(i) for i in range(1001)])  # a folder "1000"
    with caplog.at_level(logging.WARNING, logger="radapter"):
        build_imagenet_eval_set("imagenet-a", tmp_path / "a")
        build_imagenet_eval_set("imagenet-v2", tmp_path / "v2")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("radapter")]
    assert any("ImageNet-A" in m and "3 folders" in m and "n01440764" in m and "stray" in m for m in messages)
    assert any("ImageNet-V2" in m and "1 folder" in m and "1000" in m for m in messages)

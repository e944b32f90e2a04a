"""The shipped class lists: counts, formats and consistency with each other."""

from __future__ import annotations

import json
import re
from pathlib import Path

import open_clip.zero_shot_metadata

import radapter.data
from radapter.data import imagenet_a_wnids, imagenet_classnames, imagenet_r_wnids, imagenet_wnids, objectnet_classes

WNID = re.compile(r"^n\d{8}$")
RESOURCES = Path(radapter.data.__file__).parent / "resources"


def test_imagenet_wnids_are_1000_sorted_unique_ids():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert all(WNID.match(w) for w in wnids)
    assert list(wnids) == sorted(wnids)  # canonical label order = sorted folder order
    assert (wnids[0], wnids[999]) == ("n01440764", "n15075141")


def test_imagenet_classnames_are_open_clips():
    names = imagenet_classnames()
    assert len(names) == 1000 and names == tuple(open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES)
    assert (names[0], names[409]) == ("tench", "analog clock")


def test_imagenet_a_and_r_are_200_ids_inside_the_1000_in_label_order():
    all_ids = imagenet_wnids()
    position = {w: i for i, w in enumerate(all_ids)}
    for subset in (imagenet_a_wnids(), imagenet_r_wnids()):
        assert len(subset) == 200 and len(set(subset)) == 200
        assert set(subset) <= set(all_ids)
        assert [position[w] for w in subset] == sorted(position[w] for w in subset)
    # Spot checks against the WiSE-FT index lists: ImageNet-A starts at class 6 (stingray), R at 1 (goldfish).
    assert position[imagenet_a_wnids()[0]] == 6 and position[imagenet_a_wnids()[-1]] == 988
    assert position[imagenet_r_wnids()[0]] == 1 and position[imagenet_r_wnids()[-1]] == 988
    assert len(set(imagenet_a_wnids()) & set(imagenet_r_wnids())) == 86  # the two benchmarks overlap in part


def test_objectnet_mapping_has_113_classes_on_125_imagenet_classes():
    classes = objectnet_classes()
    assert len(classes) == 113
    assert [c.folder for c in classes] == sorted(c.folder for c in classes)
    wnids = imagenet_wnids()
    used = [i for c in classes for i in c.imagenet_indices]
    assert len(used) == len(set(used)) == 125  # no ImageNet class serves two ObjectNet classes
    for c in classes:
        assert c.imagenet_indices and all(0 <= i < 1000 for i in c.imagenet_indices)
        assert tuple(wnids[i] for i in c.imagenet_indices) == c.imagenet_wnids
    by_folder = {c.folder: c for c in classes}
    assert by_folder["alarm_clock"].imagenet_indices == (409, 530)  # analog + digital clock
    assert by_folder["bicycle"].imagenet_indices == (444, 671)
    assert by_folder["full_sized_towel"].name == "Bath towel"


def test_every_resource_file_is_attributed_in_the_readme():
    readme = (RESOURCES / "README.md").read_text()
    files = sorted(p.name for p in RESOURCES.iterdir() if p.name != "README.md" and p.is_file())
    assert files == [
        "imagenet_a_wnids.txt",
        "imagenet_ilsvrc2012_ids.txt",
        "imagenet_lemmas.txt",
        "imagenet_r_wnids.txt",
        "imagenet_wnids.txt",
        "objectnet_to_imagenet.json",
    ]
    for name in files:
        assert f"`{name}`" in readme
    json.loads((RESOURCES / "objectnet_to_imagenet.json").read_text())


def test_imagenet_lemmas_are_the_1000_classes_in_label_order():
    from radapter.data.class_lists import imagenet_lemmas

    lemmas = imagenet_lemmas()
    assert len(lemmas) == 1000 and all(lemmas)
    assert lemmas[0] == ("tench", "Tinca tinca") and lemmas[409][0] == "analog clock"
    wnids = [line.split("\t")[0] for line in (RESOURCES / "imagenet_lemmas.txt").read_text().splitlines()]
    assert wnids == list(imagenet_wnids())

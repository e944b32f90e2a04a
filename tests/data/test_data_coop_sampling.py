"""Few-shot draws, base/novel splits, templates and torch datasets of the CoOp protocols."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from coop_fake_trees import write_imagenet_tree, write_split_json_tree
from torchvision import transforms

import radapter.data.coop.sampling as sampling
from radapter.data.coop.base import CoOpData, Datum
from radapter.data.coop.datasets import SeededTrainView, split_dataset
from radapter.data.coop.readers import load_coop_dataset
from radapter.data.coop.registry import get_coop_dataset
from radapter.data.coop.sampling import DEFAULT_SEEDS, few_shot_cache_name, make_few_shot, sample_per_class
from radapter.data.coop.splits import base_novel_labels, subsample_classes, write_class_split
from radapter.data.coop.templates import coop_template, resolve_templates
from radapter.zeroshot import OPENAI_IMAGENET_TEMPLATES, fill_template


def fake_data(counts: dict[str, list[int]], name: str = "dtd") -> CoOpData:
    """In-memory data: ``counts[split][label]`` images per class (paths need not exist for sampling)."""
    splits = {
        split: [
            Datum(f"c{label}/{split}_{i}.jpg", label, f"class_{label}") for label, n in enumerate(ns) for i in range(n)
        ]
        for split, ns in counts.items()
    }
    n_classes = len(counts["train"])
    return CoOpData(
        name,
        "/nowhere",
        splits["train"],
        splits["val"],
        splits["test"],
        [f"class {c}" for c in range(n_classes)],
        "fake",
    )


def per_class(items) -> Counter:
    return Counter(item.label for item in items)


def test_enough_images_gives_k_distinct_per_class():
    labels = [0] * 20 + [1] * 30 + [2] * 16
    picks = sample_per_class(labels, 16, seed=1)
    assert len(picks) == 48 and len(set(picks)) == 48
    assert Counter(labels[i] for i in picks) == {0: 16, 1: 16, 2: 16}
    assert picks[:16] != sorted(picks[:16]) or picks[16:32] != sorted(picks[16:32])  # drawn order, not sorted


def test_short_class_takes_all_or_repeats():
    labels = [0] * 20 + [1] * 5
    picks = sample_per_class(labels, 8, seed=3)
    assert sorted(i for i in picks if labels[i] == 1) == list(range(20, 25))  # Dassl without repeat: all 5
    picks = sample_per_class(labels, 8, seed=3, repeat=True)
    short = [i for i in picks if labels[i] == 1]
    assert len(short) == 8 and set(short) <= set(range(20, 25)) and len(set(short)) < 8  # with replacement
    assert len({i for i in picks if labels[i] == 0}) == 8  # enough images: still without replacement


def test_draws_are_seeded_and_classwise_independent():
    labels = [c for c in range(4) for _ in range(25)]
    assert sample_per_class(labels, 5, seed=2) == sample_per_class(labels, 5, seed=2)
    assert sample_per_class(labels, 5, seed=2) != sample_per_class(labels, 5, seed=3)
    assert sample_per_class(labels, 5, seed=2) != sample_per_class(labels, 5, seed=2, stream=1)
    # Interleaving the classes (each class keeps its own order) or adding one changes no class's draw.
    position = [c * 25 + i for i in range(25) for c in range(4)]  # round-robin over the classes
    shuffled = [labels[p] for p in position] + [9] * 7
    drawn = [position[j] for j in sample_per_class(shuffled, 5, seed=2) if j < 100]
    assert sorted(drawn) == sorted(sample_per_class(labels, 5, seed=2))


@pytest.mark.parametrize("k, seed", [(0, 1), (2.5, 1), (4, -1), (4, 1.0)])
def test_bad_shots_or_seed(k, seed):
    with pytest.raises(ValueError, match="shots|seed"):
        sample_per_class([0, 0, 1], k, seed)


def test_make_few_shot_train_val_test():
    data = fake_data({"train": [30, 30, 10], "val": [10, 2, 10], "test": [7, 7, 7]})
    fs = make_few_shot(data, 16, seed=1)
    assert per_class(fs.train) == {0: 16, 1: 16, 2: 10}
    assert per_class(fs.val) == {0: 4, 1: 2, 2: 4}  # min(K, 4), short classes keep all
    assert fs.test == data.test and fs.classnames == data.classnames
    assert fs.info["few_shot"] == {"shots": 16, "seed": 1, "val_shots": 4, "repeat": False}
    assert per_class(make_few_shot(data, 2, seed=1).val) == {0: 2, 1: 2, 2: 2}
    assert len(data.train) == 70  # the input is not modified
    assert DEFAULT_SEEDS == (1, 2, 3)


def test_imagenet_val_is_not_subsampled(tmp_path):
    write_imagenet_tree(tmp_path, {"n01000000": "tench", "n02000000": "goldfish"}, train=5, val=6)
    fs = make_few_shot(load_coop_dataset("imagenet", tmp_path), 2, seed=1)
    assert per_class(fs.train) == {0: 2, 1: 2} and len(fs.val) == len(fs.test) == 12
    assert fs.info["few_shot"]["val_shots"] is None


def test_cache_is_json_and_reused(tmp_path, monkeypatch):
    data = fake_data({"train": [20, 20], "val": [8, 8], "test": [3, 3]})
    path = tmp_path / "run" / few_shot_cache_name("dtd", 4, 2)
    assert path.name == "fewshot_dtd_4shot_seed2.json"
    first = make_few_shot(data, 4, seed=2, cache_path=path)
    cached = json.loads(path.read_text())  # plain JSON, one item per line
    assert {k: cached[k] for k in ("dataset", "shots", "seed", "repeat", "val_shots")} == {
        "dataset": "dtd", "shots": 4, "seed": 2, "repeat": False, "val_shots": 4
    }  # fmt: skip
    assert cached["train"] == [list(item) for item in first.train] and cached["counts"]["train"] == 40
    assert path.read_text().count("\n") > len(first.train) + len(first.val)

    def must_not_draw(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(sampling, "sample_per_class", must_not_draw)
    again = make_few_shot(data, 4, seed=2, cache_path=path)
    assert again.train == first.train and again.val == first.val


def test_cache_mismatch_and_staleness(tmp_path):
    data = fake_data({"train": [20, 20], "val": [8, 8], "test": [3, 3]})
    path = tmp_path / "fs.json"
    make_few_shot(data, 4, seed=2, cache_path=path)
    with pytest.raises(ValueError, match=r"drawn with seed=2, this run asks for seed=3"):
        make_few_shot(data, 4, seed=3, cache_path=path)
    with pytest.raises(ValueError, match=r"drawn with shots=4, this run asks for shots=8"):
        make_few_shot(data, 8, seed=2, cache_path=path)
    with pytest.raises(ValueError, match=r"drawn with dataset='dtd', this run asks for dataset='eurosat'"):
        make_few_shot(
            fake_data({"train": [20, 20], "val": [8, 8], "test": [3, 3]}, "eurosat"), 4, seed=2, cache_path=path
        )
    cached = json.loads(path.read_text())
    cached["train"][0][0] = "c0/gone.jpg"
    path.write_text(json.dumps(cached))
    with pytest.raises(ValueError, match=r"train\[0\] = \['c0/gone.jpg', 0, 'class_0'\] is not an item .* stale"):
        make_few_shot(data, 4, seed=2, cache_path=path)


def test_few_shot_comes_before_the_class_split():
    data = fake_data({"train": [20] * 5, "val": [6] * 5, "test": [4] * 5})
    with pytest.raises(ValueError, match="must come before the base/novel split"):
        make_few_shot(subsample_classes(data, "base"), 4, seed=1)
    everything = make_few_shot(data, 4, seed=1)
    base = subsample_classes(everything, "base")
    # A base-only run trains on exactly the all-class run's images of the base classes.
    assert [item.path for item in base.train] == [item.path for item in everything.train if item.label < 3]
    with pytest.raises(ValueError, match="already a few-shot subset"):
        make_few_shot(everything, 4, seed=1)


def test_base_novel_split_relabels_every_split():
    assert base_novel_labels(5) == ([0, 1, 2], [3, 4]) and base_novel_labels(4) == ([0, 1], [2, 3])
    data = fake_data({"train": [3, 3, 3, 3, 3], "val": [2] * 5, "test": [1] * 5})
    base, novel = subsample_classes(data, "base"), subsample_classes(data, "new")
    assert base.classnames == ["class 0", "class 1", "class 2"] and novel.classnames == ["class 3", "class 4"]
    for split in ("train", "val", "test"):
        original = data.split(split)
        assert [(i.path, i.label) for i in base.split(split)] == [(i.path, i.label) for i in original if i.label < 3]
        assert [(i.path, i.label) for i in novel.split(split)] == [
            (i.path, i.label - 3) for i in original if i.label >= 3
        ]
    assert novel.info == {"classes": "novel", "original_labels": [3, 4]}
    assert subsample_classes(data, "all") is data
    with pytest.raises(ValueError, match="class subset must be one of"):
        subsample_classes(data, "half")
    with pytest.raises(ValueError, match="already cut to 'base'"):
        subsample_classes(base, "novel")


def test_write_class_split(tmp_path):
    paths = write_class_split(tmp_path / "run", ["a", "b", "c", "d", "e"])
    assert (tmp_path / "run" / "base_classes.txt").read_text() == "a\nb\nc\n"
    assert (tmp_path / "run" / "novel_classes.txt").read_text() == "d\ne\n"
    table = json.loads(open(paths["json"]).read())
    assert table["novel"] == [
        {"label": 0, "original_label": 3, "name": "d"},
        {"label": 1, "original_label": 4, "name": "e"},
    ]


def test_templates(tmp_path):
    assert resolve_templates("coop", "dtd") == ["{} texture."]
    assert coop_template("OxfordPets") == "a photo of a {}, a type of pet."
    assert (
        fill_template(resolve_templates("coop", "eurosat")[0], "Sea or Lake")
        == "a centered satellite photo of Sea or Lake."
    )
    eighty = resolve_templates("imagenet80", "dtd")
    assert len(eighty) == 80 and [fill_template(t, "cat") for t in eighty] == [
        t("cat") for t in OPENAI_IMAGENET_TEMPLATES
    ]
    path = tmp_path / "t.txt"
    path.write_text("# mine\na {} photo.\n\nart of the {c}\n")
    assert resolve_templates(str(path), "dtd") == ["a {} photo.", "art of the {c}"]
    path.write_text("a photo.\n")
    with pytest.raises(ValueError, match=r"line 1 'a photo.' has no"):
        resolve_templates(str(path), "dtd")
    with pytest.raises(ValueError, match="is not one of coop, imagenet80 nor an existing file"):
        resolve_templates("openai", "dtd")


def test_split_dataset_and_seeded_train_view(tmp_path):
    spec = get_coop_dataset("oxford_flowers")
    write_split_json_tree(tmp_path, spec, ["rose", "tulip"], counts=(3, 1, 1))
    data = load_coop_dataset("oxford_flowers", tmp_path)
    to_tensor = transforms.ToTensor()
    test_set = split_dataset(data, "test", to_tensor)
    image, label = test_set[1]
    assert image.shape == (3, 6, 6) and label == 1 and test_set.classnames == ["rose", "tulip"]

    augment = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x + torch.rand(()))])
    view = SeededTrainView(split_dataset(data, "train"), augment)
    assert len(view) == 6
    state = torch.random.get_rng_state()
    a, label_a = view[(4, 0, 123)]
    b, _ = view[(4, 7, 123)]
    c, _ = view[(4, 0, 124)]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert label_a == 1 and torch.equal(a, b) and not torch.equal(a, c)

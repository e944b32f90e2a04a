"""Seeded k-shot sampling and hold-out splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from radapter.data import sample_k_shot, split_holdout

# 10 classes with 5..23 examples each, interleaved as a real dataset's targets would not be.
TARGETS = [label for label in range(10) for _ in range(5 + 2 * label)]
TARGETS = [TARGETS[i] for i in np.random.default_rng(123).permutation(len(TARGETS))]


def test_k_shot_takes_exactly_k_per_class_sorted_and_unique():
    idx = sample_k_shot(TARGETS, k=4, seed=0)
    assert idx == sorted(set(idx))
    assert Counter(TARGETS[i] for i in idx) == dict.fromkeys(range(10), 4)


def test_k_shot_is_deterministic_for_a_seed_and_changes_with_it():
    first = sample_k_shot(TARGETS, k=4, seed=7)
    assert sample_k_shot(list(TARGETS), k=4, seed=7) == first
    assert sample_k_shot(torch.tensor(TARGETS), k=4, seed=7) == first  # tensors and arrays work too
    assert sample_k_shot(np.array(TARGETS), k=4, seed=7) == first
    assert sample_k_shot(TARGETS, k=4, seed=8) != first


def test_k_shot_draw_is_pinned():
    # Pinned values: the draw depends on nothing but (targets, k, seed) - not on PYTHONHASHSEED, the
    # process or the platform - so a changed number here means every published k-shot split changed.
    assert sample_k_shot([0, 1, 2] * 5, k=2, seed=0) == [2, 7, 9, 10, 11, 12]


def test_adding_a_class_leaves_the_other_classes_shots_unchanged():
    base = sample_k_shot(TARGETS, k=3, seed=1)
    extended = sample_k_shot(TARGETS + [10] * 6, k=3, seed=1)
    assert extended[:-3] == base and all(TARGETS[i] != 10 for i in base)


def test_short_class_is_an_error_naming_it_or_taken_whole_when_not_strict():
    targets = [0] * 5 + [1] * 2 + [2] * 5
    with pytest.raises(ValueError, match=r"class 1 \('dog'\) has 2"):
        sample_k_shot(targets, k=3, seed=0, classnames=["cat", "dog", "bird"])
    with pytest.warns(UserWarning, match="taking all of their examples"):
        idx = sample_k_shot(targets, k=3, seed=0, strict=False)
    assert Counter(targets[i] for i in idx) == {0: 3, 1: 2, 2: 3}


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_bad_k_is_rejected(k):
    with pytest.raises(ValueError, match="positive integer"):
        sample_k_shot(TARGETS, k=k, seed=0)


def test_stratified_holdout_is_disjoint_covering_and_per_class():
    train, held = split_holdout(TARGETS, fraction=0.2, seed=3)
    assert train == sorted(train) and held == sorted(held)
    assert set(train).isdisjoint(held) and set(train) | set(held) == set(range(len(TARGETS)))
    counts, held_counts = Counter(TARGETS), Counter(TARGETS[i] for i in held)
    for label, n in counts.items():
        assert held_counts[label] == max(1, int(0.2 * n + 0.5)), label  # round half up, at least one
        assert held_counts[label] < n  # every class keeps training examples
    assert split_holdout(TARGETS, 0.2, seed=3) == (train, held)
    assert split_holdout(TARGETS, 0.2, seed=4) != (train, held)


def test_holdout_of_a_16_shot_set_keeps_every_class_on_both_sides():
    shots = [label for label in range(5) for _ in range(16)]
    train, held = split_holdout(shots, fraction=0.1, seed=0)
    assert Counter(shots[i] for i in held) == dict.fromkeys(range(5), 2)  # round(1.6) = 2 per class
    assert Counter(shots[i] for i in train) == dict.fromkeys(range(5), 14)


def test_holdout_is_independent_of_the_k_shot_stream():
    shots = [label for label in range(3) for _ in range(4)]
    kshot = sample_k_shot(shots, k=1, seed=5)
    _, held = split_holdout(shots, fraction=0.25, seed=5)
    assert held != kshot  # same seed, different salts: the two draws are not the same picks


def test_unstratified_holdout_size_and_determinism():
    train, held = split_holdout(TARGETS, fraction=0.25, seed=0, stratified=False)
    assert len(held) == int(0.25 * len(TARGETS) + 0.5)
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(TARGETS)
    assert split_holdout(TARGETS, fraction=0.25, seed=0, stratified=False) == (train, held)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_holdout_fraction_must_be_inside_zero_one(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_holdout(TARGETS, fraction=fraction, seed=0)


def test_per_class_subset_is_class_balanced_seeded_and_sorted():
    from radapter.data.fewshot import per_class_subset

    counts = Counter(TARGETS)  # 10 classes of 5..23
    idx = per_class_subset(TARGETS, 40, seed=0)
    assert len(idx) == 40 and idx == sorted(set(idx))
    assert Counter(TARGETS[i] for i in idx) == dict.fromkeys(range(10), 4)
    assert idx == per_class_subset(TARGETS, 40, seed=0) and idx != per_class_subset(TARGETS, 40, seed=1)
    assert set(idx) <= set(per_class_subset(TARGETS, 70, seed=0))  # a larger budget keeps the smaller's picks
    # 53 = 5 per class + 3 classes with one more; which 3 depends on the seed.
    extra = [
        {c for c, n in Counter(TARGETS[i] for i in per_class_subset(TARGETS, 53, seed)).items() if n == 6}
        for seed in range(4)
    ]
    assert all(len(e) == 3 for e in extra) and len({frozenset(e) for e in extra}) > 1
    # Classes too small for their share give all they have and the rest goes to the others:
    # 100 over classes of 5, 7, 9, 11, 13, ... -> 5, 7, 9, 11 taken whole, the other six get 11 or 12.
    taken = Counter(TARGETS[i] for i in per_class_subset(TARGETS, 100, seed=0))
    assert sum(taken.values()) == 100
    assert [taken[c] for c in range(4)] == [counts[c] for c in range(4)] == [5, 7, 9, 11]
    assert sorted(taken[c] for c in range(4, 10)) == [11, 11, 11, 11, 12, 12]
    # Everything when the budget covers the set; the first N (the first classes) never.
    assert per_class_subset(TARGETS, 10_000, seed=0) == list(range(len(TARGETS)))
    sorted_targets = sorted(TARGETS)  # a sorted ImageFolder: the first 60 files are classes 0..3 only
    assert len({sorted_targets[i] for i in per_class_subset(sorted_targets, 60, seed=0)}) == 10


def test_per_class_subset_rejects_bad_budgets():
    from radapter.data.fewshot import per_class_subset

    with pytest.raises(ValueError, match="max_items must be a positive integer"):
        per_class_subset(TARGETS, 0, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        per_class_subset(TARGETS, 5, seed=-1)
    assert per_class_subset([], 5, seed=0) == []

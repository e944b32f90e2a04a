"""World scenes for segmentation: determinism, labels aligned with pixels, splits, vocabularies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radapter.data.world.scenes import (
    SceneSpec,
    WorldSceneDataset,
    default_seen_classes,
    generate_scenes,
    segmentation_benchmark,
)
from radapter.data.world.spec import COLOURS


def test_same_seed_same_bytes_other_seed_other_scenes():
    a, b = generate_scenes(n=12, seed=3), generate_scenes(n=12, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.objects, b.objects) and np.array_equal(a.domains, b.domains)
    c = generate_scenes(n=12, seed=4)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (12, 64, 64, 3) and a.images.dtype == np.uint8 and a.labels.shape == (12, 64, 64)


def test_grid_layout_one_visible_object_per_cell_and_every_object_labelled():
    spec = SceneSpec()
    s = generate_scenes(spec, n=24, seed=0)
    for i in range(len(s)):
        drawn = {int(c) for c in s.objects[i] if c >= 0}
        assert spec.objects[0] <= len(drawn) <= spec.objects[1]
        assert set(np.unique(s.labels[i]).tolist()) - {255} == drawn
        for r in range(2):
            for c in range(2):
                cell = s.labels[i, 32 * r : 32 * r + 32, 32 * c : 32 * c + 32]
                assert len(set(np.unique(cell).tolist()) - {255}) <= 1


def test_labels_sit_on_the_object_pixels():
    # photo scenes: pixels labelled with an object's class have (about) that object's colour, background does not
    spec = SceneSpec()
    s = generate_scenes(spec, n=16, seed=1, domains=["photo"])
    palette = np.array(list(COLOURS.values()))
    checked = 0
    for i in range(len(s)):
        img = s.images[i].astype(float) / 255
        for cls in {int(c) for c in s.objects[i] if c >= 0}:
            inside = s.labels[i] == cls
            core = (
                inside & np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1)
            )
            if core.sum() < 10:
                continue
            mean = img[core].mean(0)
            dist = np.linalg.norm(palette - mean, axis=1).min()
            assert dist < 0.2, (i, cls, mean)
            checked += 1
    assert checked >= 20


def test_restricted_classes_and_domains():
    s = generate_scenes(n=30, seed=2, domains=["sketch", "cartoon"], classes=[1, 4, 7])
    assert set(np.unique(s.labels).tolist()) <= {1, 4, 7, 255}
    assert set(s.objects[s.objects >= 0].tolist()) <= {1, 4, 7}
    assert np.bincount(s.domains, minlength=6)[[1, 2]].tolist() == [15, 15]
    with pytest.raises(ValueError, match="indices into the 10 world classes"):
        generate_scenes(n=2, classes=[10])


def test_benchmark_splits():
    b = segmentation_benchmark(0, n_train=10, n_test=6)
    seen = default_seen_classes()
    assert seen == (0, 2, 4, 6, 8)
    assert sorted(b) == ["id", "ood_cartoon", "ood_inverted", "ood_lowcontrast", "ood_noisy", "ood_sketch", "train"]
    assert set(np.unique(b["train"].labels).tolist()) <= set(seen) | {255}
    assert (b["train"].domains == 0).all() and (b["id"].domains == 0).all()
    assert (b["ood_sketch"].domains == 2).all()
    assert not np.array_equal(b["train"].images[:6], b["id"].images)


def test_free_layout_and_background_class():
    spec = SceneSpec(layout="free", object_size=(0.3, 0.45), background="class", ignore_index=250)
    s = generate_scenes(spec, n=8, seed=0)
    assert 10 in np.unique(s.labels) and 250 not in np.unique(s.labels)
    ds = WorldSceneDataset(s)
    assert ds.class_names[-1] == "background" and len(ds.class_names) == 11
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and y.dtype == torch.int64 and int(y.max()) == 10


def test_dataset_vocabulary_remaps_labels():
    s = generate_scenes(n=6, seed=5, classes=[2, 7])
    ds = WorldSceneDataset(s, vocabulary=[7, 2])
    x, y = ds.tensors()
    raw = torch.from_numpy(s.labels.astype(np.int64))
    assert torch.equal(y == 0, raw == 7) and torch.equal(y == 1, raw == 2) and torch.equal(y == 255, raw == 255)
    assert ds.class_names == ["square", "cross"]
    assert torch.equal(ds[2][1], y[2]) and torch.allclose(ds[2][0], x[2])
    with pytest.raises(ValueError, match=r"\[.square.\] outside the vocabulary"):
        WorldSceneDataset(s, vocabulary=[2])
    only = WorldSceneDataset(s, vocabulary=[2], unknown="ignore")
    assert not (only.tensors()[1] == 1).any()


def test_spec_errors():
    with pytest.raises(ValueError, match="do not fit 4 cells"):
        SceneSpec(objects=(2, 5))
    with pytest.raises(ValueError, match="layout"):
        SceneSpec(layout="ring")
    with pytest.raises(ValueError, match="ignore_index"):
        SceneSpec(ignore_index=5)
    with pytest.raises(ValueError, match="multiple of cell"):
        SceneSpec(image_size=48)

"""The procedural world: determinism, geometry, the colour cue and the benchmark splits."""

from __future__ import annotations

import numpy as np
import pytest

from radapter.data.world.generate import (
    downstream_benchmark,
    fixed_eval_sample,
    generate,
    measured_cue_strength,
    pretraining_set,
)
from radapter.data.world.spec import CLASSES, DOMAINS, WorldSpec


@pytest.fixture(scope="module")
def mixed():
    return generate(n=600, seed=123)


@pytest.fixture(scope="module")
def bench():
    # statistics only: skip rasterising (it is drawn after everything else, so nothing changes)
    return downstream_benchmark(seed=7, n_train=2000, n_test=1000, rho=0.8, render_images=False)


def test_same_seed_same_bytes():
    a, b = generate(n=300, seed=[4, 2]), generate(n=300, seed=[4, 2])
    assert a.images.tobytes() == b.images.tobytes()
    assert a.captions == b.captions
    for field in ("labels", "domains", "colours", "caption_labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_different_seed_differs():
    a, b = generate(n=300, seed=1), generate(n=300, seed=2)
    assert a.images.tobytes() != b.images.tobytes()
    assert a.captions != b.captions


def test_generation_leaves_global_rng_alone():
    import torch

    np.random.seed(0)
    torch.manual_seed(0)
    expected_np, expected_torch = np.random.rand(), torch.rand(1)
    np.random.seed(0)
    torch.manual_seed(0)
    generate(n=50, seed=0)
    assert np.random.rand() == expected_np
    assert torch.equal(torch.rand(1), expected_torch)


def test_shapes_and_balance(mixed):
    assert mixed.images.shape == (600, 32, 32, 3) and mixed.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(mixed.labels), [60] * len(CLASSES))
    np.testing.assert_array_equal(np.bincount(mixed.domains), [100] * len(DOMAINS))
    assert len(CLASSES) >= 8 and len(DOMAINS) >= 6


def test_domains_look_different(mixed):
    # coarse RGB histograms (4 levels per channel): every pair of styles differs clearly
    hists = []
    for d in range(len(DOMAINS)):
        x = mixed.images[mixed.domains == d].reshape(-1, 3) // 64
        hists.append(np.bincount(x[:, 0] * 16 + x[:, 1] * 4 + x[:, 2], minlength=64) / len(x))
    for i in range(len(DOMAINS)):
        for j in range(i + 1, len(DOMAINS)):
            total_variation = 0.5 * np.abs(hists[i] - hists[j]).sum()
            assert total_variation > 0.1, (DOMAINS[i], DOMAINS[j])


def test_object_size_within_bounds():
    # cartoon images: flat pastel background, so the object (incl. outline) is where pixels differ from it
    s = generate(n=200, seed=3, domains=["cartoon"])
    x = s.images.astype(np.int16)
    corner = x[:, :1, :1, :]
    fg = np.abs(x - corner).max(-1) > 40
    rows, cols = fg.any(2), fg.any(1)
    extent = np.maximum(rows.sum(1), cols.sum(1)) / 32
    # 0.55-0.85 of the frame for the canonical box; thin shapes (arrow) are shorter in one axis,
    # rotation and the outline add a little, and the frame clips a little
    assert 0.4 <= np.median(extent) <= 0.95
    assert extent.min() >= 0.35


@pytest.mark.parametrize("rho", [0.0, 0.4, 0.8])
def test_colour_cue_strength(rho):
    s = generate(n=4000, seed=11, domains=["photo"], colour_cue_rho=rho, render_images=False)
    assert measured_cue_strength(s) == pytest.approx(rho, abs=0.03)


def test_benchmark_splits(bench):
    spec = WorldSpec()
    assert set(bench) == {"train", "id", "id_shift"} | {f"ood_{d}" for d in DOMAINS if d != "photo"}
    assert len(bench["train"]) == 2000
    for name, split in bench.items():
        doms = set(split.domain_names())
        if name in ("train", "id", "id_shift"):
            assert doms == {"photo"}
        else:
            assert len(split) >= 1000 and doms == {name.removeprefix("ood_")}
    # the cue: rho in train and ID test, rho / 2 in ID-shift, absent (chance) in OOD
    assert measured_cue_strength(bench["train"]) == pytest.approx(0.8, abs=0.04)
    assert measured_cue_strength(bench["id"]) == pytest.approx(0.8, abs=0.05)
    assert measured_cue_strength(bench["id_shift"]) == pytest.approx(0.4, abs=0.05)
    for name in bench:
        if name.startswith("ood_"):
            s = bench[name]
            cue = np.array([spec.cue_colour(k) for k in s.labels])
            assert np.mean(s.colours == cue) == pytest.approx(1 / len(spec.colours), abs=0.035), name


def test_splits_are_disjoint_streams():
    small = downstream_benchmark(seed=7, n_train=50, n_test=50)
    assert small["id"].images.tobytes() != small["id_shift"].images.tobytes()
    assert pretraining_set(7, 50).images.tobytes() != small["train"].images.tobytes()
    assert len({s.images.tobytes() for s in small.values()}) == len(small)


def test_metadata_does_not_depend_on_rendering():
    a, b = generate(n=80, seed=5), generate(n=80, seed=5, render_images=False)
    assert b.images is None and a.captions == b.captions
    np.testing.assert_array_equal(a.colours, b.colours)


def test_fixed_eval_sample_is_fixed():
    a, b = fixed_eval_sample(), fixed_eval_sample()
    assert len(a) == 256 and a.images.tobytes() == b.images.tobytes()
    assert set(a.domain_names()) == set(DOMAINS)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        generate(n=10, colour_cue_rho=1.5)
    with pytest.raises(KeyError):
        generate(n=10, domains=["watercolour"])
    with pytest.raises(ValueError):
        WorldSpec(colours=("red",))

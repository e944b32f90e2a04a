"""retrieval_metrics against plain-loop references of the VSE++ i2t / t2i definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radapter.evaluation.retrieval import retrieval_metrics, retrieval_ranks


def reference(image_features, text_features, text_to_image, ks=(1, 5, 10)):
    """VSE++ ``i2t`` / ``t2i``, one query at a time, ties ordered by index (a stable sort)."""
    im = torch.nn.functional.normalize(image_features.double(), dim=-1).numpy()
    tx = torch.nn.functional.normalize(text_features.double(), dim=-1).numpy()
    t2i = np.asarray(text_to_image)
    n, m = len(im), len(tx)
    i2t_ranks = np.zeros(n)
    for i in range(n):
        d = im[i] @ tx.T
        inds = np.argsort(-d, kind="stable")
        rank = 1e20
        for j in range(m):
            if t2i[j] == i:
                rank = min(rank, int(np.where(inds == j)[0][0]))
        i2t_ranks[i] = rank
    t2i_ranks = np.zeros(m)
    for j in range(m):
        d = tx[j] @ im.T
        inds = np.argsort(-d, kind="stable")
        t2i_ranks[j] = np.where(inds == t2i[j])[0][0]
    out = {}
    for name, r in (("image_to_text", i2t_ranks), ("text_to_image", t2i_ranks)):
        for k in ks:
            out[f"{name}:R@{k}"] = 100.0 * len(np.where(r < k)[0]) / len(r)
        out[f"{name}:median_rank"] = np.floor(np.median(r)) + 1
        out[f"{name}:mean_rank"] = r.mean() + 1
    out["rsum"] = sum(out[f"{d}:R@{k}"] for d in ("image_to_text", "text_to_image") for k in ks)
    return out, i2t_ranks, t2i_ranks


def random_problem(n, captions_per_image, seed, dim=8, noise=1.0):
    """Image features and caption features near their image's (so recalls are neither 0 nor 100)."""
    g = torch.Generator().manual_seed(seed)
    counts = captions_per_image if isinstance(captions_per_image, list) else [captions_per_image] * n
    images = torch.randn(n, dim, generator=g)
    t2i = torch.repeat_interleave(torch.arange(n), torch.tensor(counts))
    texts = images[t2i] + noise * torch.randn(len(t2i), dim, generator=g)
    return images, texts, t2i


def assert_matches(got, want):
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("chunk_size", [7, 512])
def test_five_captions_per_image_matches_vsepp(chunk_size):
    images, texts, t2i = random_problem(60, 5, seed=0)
    got = retrieval_metrics(images, texts, t2i, chunk_size=chunk_size)
    want, i2t_ranks, t2i_ranks = reference(images, texts, t2i)
    assert_matches(got, want)
    ranks = retrieval_ranks(images, texts, t2i, chunk_size=chunk_size)
    assert ranks[0].tolist() == i2t_ranks.astype(int).tolist()
    assert ranks[1].tolist() == t2i_ranks.astype(int).tolist()
    assert got["n_images"] == 60 and got["n_texts"] == 300
    assert 0 < got["image_to_text:R@1"] < 100 and 0 < got["text_to_image:R@1"] < 100  # not a trivial case
    assert got["mean:R@1"] == pytest.approx((got["image_to_text:R@1"] + got["text_to_image:R@1"]) / 2)


def test_three_to_seven_captions_per_image_matches_vsepp():
    rng = np.random.default_rng(1)
    counts = rng.integers(3, 8, size=45).tolist()
    assert set(counts) == {3, 4, 5, 6, 7}
    images, texts, t2i = random_problem(45, counts, seed=1)
    got = retrieval_metrics(images, texts, t2i, ks=(1, 2, 5, 10), chunk_size=16)
    want, _, _ = reference(images, texts, t2i, ks=(1, 2, 5, 10))
    assert_matches(got, want)
    assert got["n_texts"] == sum(counts)


def test_shuffling_caption_order_changes_nothing():
    images, texts, t2i = random_problem(50, [3, 7, 5, 4, 6] * 10, seed=2)
    before = retrieval_metrics(images, texts, t2i)
    perm = torch.randperm(len(t2i), generator=torch.Generator().manual_seed(3))
    after = retrieval_metrics(images, texts[perm], t2i[perm])
    assert after == before


def test_ties_are_broken_by_index_deterministically():
    # one-hot features: every similarity is exactly 0 or 1, so most comparisons are exact ties
    g = torch.Generator().manual_seed(4)
    images = torch.eye(4)[torch.randint(0, 4, (30,), generator=g)]
    t2i = torch.arange(30).repeat_interleave(5)
    texts = torch.eye(4)[torch.randint(0, 4, (150,), generator=g)]
    got = retrieval_metrics(images, texts, t2i, chunk_size=11)
    want, _, _ = reference(images, texts, t2i)
    assert_matches(got, want)
    assert got == retrieval_metrics(images, texts, t2i, chunk_size=1000)
    # all features equal: every query ranks the lowest index first
    same = retrieval_ranks(torch.ones(4, 3), torch.ones(8, 3), torch.arange(4).repeat_interleave(2))
    assert same[0].tolist() == [0, 2, 4, 6]  # image i's first caption has index 2i
    assert same[1].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # caption of image i: i images come before it


def test_perfect_similarity_gives_100():
    n = 20
    t2i = torch.arange(n).repeat_interleave(torch.tensor([5, 6, 7, 3] * 5))
    images = torch.eye(n)
    texts = torch.eye(n)[t2i] * 3.0  # scale does not matter: features are normalised
    got = retrieval_metrics(images, texts, t2i)
    for key in ("image_to_text:R@1", "text_to_image:R@1", "image_to_text:R@10", "mean:R@1"):
        assert got[key] == 100.0
    assert got["rsum"] == 600.0
    assert got["image_to_text:median_rank"] == 1.0 and got["text_to_image:mean_rank"] == 1.0


def test_median_rank_of_an_even_count_follows_numpy():
    # ranks 0, 0, 3, 5 (0-based): numpy median 1.5 -> floor + 1 = 2 (the lower middle + 1 would be 1)
    images = torch.eye(4)
    texts = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0], [0, 0, 1.0, 0]])
    t2i = torch.tensor([0, 1, 2, 3])
    got = retrieval_metrics(images, texts, t2i)
    want, _, _ = reference(images, texts, t2i)
    assert_matches(got, want)


def test_bad_inputs_are_named():
    images, texts, t2i = random_problem(5, 2, seed=5)
    with pytest.raises(ValueError, match="images without one include \\[4\\]"):
        retrieval_metrics(images, texts[:8], t2i[:8])
    with pytest.raises(ValueError, match="one image index per caption"):
        retrieval_metrics(images, texts, t2i[:-1])
    with pytest.raises(ValueError, match="outside \\[0, 5\\)"):
        retrieval_metrics(images, texts, t2i + 1)
    with pytest.raises(ValueError, match="feature sizes differ"):
        retrieval_metrics(images, texts[:, :3], t2i)
    with pytest.raises(ValueError, match="ks must be positive"):
        retrieval_metrics(images, texts, t2i, ks=(0,))

"""Image-text retrieval metrics: Recall@K, RSUM, median and mean rank in both directions (VSE++ protocol).

Given N images with L2-normalised features ``f_i`` and M captions with features ``g_j``, each caption
belonging to one image (``text_to_image[j]``; COCO and Flickr30k test: 5 captions per image)::

    s_ij = f_i · g_j                                     (cosine similarity)
    image→text rank of image i = min over its captions j of  rank of j among all M captions for query i
    text→image rank of caption j = rank of its image among all N images for query j
    R@K = 100 · mean(rank < K)        (ranks 0-based; "found in the top K")
    median_rank = floor(median(rank)) + 1,   mean_rank = mean(rank) + 1   (1-based, as VSE++ reports them)
    RSUM = Σ_K (image→text R@K + text→image R@K)

So an image counts as found when ANY of its captions is in its top K. Naming: "image_to_text" means the
query is an image and captions are retrieved (CLIP_benchmark calls it ``text_retrieval``);
"text_to_image" means the query is a caption and images are retrieved (CLIP_benchmark's
``image_retrieval``, the VSE++ ``t2i``). Every key here spells the direction out to avoid that confusion.

Ties: items with equal similarity are ordered by index (the lower index ranks first), as a stable sort
would order them, so results are deterministic.

Cost: similarities are computed ``chunk_size`` queries at a time and ranks are counted (``(s > s_correct)``
summed over the gallery), never sorted per query in Python: COCO 5k × 25k at ``chunk_size=512`` peaks at
about 512 × 25,000 × 4 B ≈ 50 MB per temporary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["retrieval_metrics", "retrieval_ranks"]


def _check(image_features: torch.Tensor, text_features: torch.Tensor, text_to_image: torch.Tensor) -> None:
    if image_features.dim() != 2 or text_features.dim() != 2:
        raise ValueError(
            f"features must be 2-D [N, D] and [M, D], got {tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(f"feature sizes differ: images D={image_features.shape[1]}, texts D={text_features.shape[1]}")
    if text_to_image.shape != (text_features.shape[0],):
        raise ValueError(
            f"text_to_image must have shape [{text_features.shape[0]}] (one image index per caption), "
            f"got {tuple(text_to_image.shape)}"
        )
    if text_to_image.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"text_to_image must hold integer image indices, got {text_to_image.dtype}")
    n = image_features.shape[0]
    if n == 0 or text_features.shape[0] == 0:
        raise ValueError("retrieval needs at least one image and one caption")
    if int(text_to_image.min()) < 0 or int(text_to_image.max()) >= n:
        raise ValueError(
            f"text_to_image holds indices outside [0, {n}): min {int(text_to_image.min())}, max {int(text_to_image.max())}"
        )
    counts = torch.bincount(text_to_image.long(), minlength=n)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"every image needs at least one caption; images without one include {missing}")


@torch.no_grad()
def retrieval_ranks(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor,
    chunk_size: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based rank of the first correct item for every query, both directions.

    Args:
        image_features: [N, D] image embeddings (normalised here).
        text_features: [M, D] caption embeddings (normalised here).
        text_to_image: [M] int64, the image index of each caption.
        chunk_size: queries per similarity block (memory: chunk_size × max(N, M) floats).

    Returns:
        ``(image_to_text [N], text_to_image [M])`` int64 ranks on the CPU.
    """
    _check(image_features, text_features, text_to_image)
    f = F.normalize(image_features.float(), dim=-1)
    g = F.normalize(text_features.float(), dim=-1)
    t2i = text_to_image.to(device=g.device, dtype=torch.int64)
    n, m = f.shape[0], g.shape[0]
    text_index = torch.arange(m, device=g.device)
    image_index = torch.arange(n, device=f.device)

    i2t_ranks = []
    for start in range(0, n, chunk_size):
        sims = f[start : start + chunk_size] @ g.t()  # [c, M]
        own = t2i.view(1, m) == image_index[start : start + chunk_size].view(-1, 1)
        own_sims = sims.masked_fill(~own, float("-inf"))
        best = own_sims.max(dim=1, keepdim=True).values  # best-scored own caption
        first = (own_sims == best).to(torch.uint8).argmax(dim=1, keepdim=True)  # its lowest index among ties
        ahead = (sims > best) | ((sims == best) & (text_index.view(1, m) < first))
        i2t_ranks.append(ahead.sum(dim=1))
    t2i_ranks = []
    for start in range(0, m, chunk_size):
        sims = g[start : start + chunk_size] @ f.t()  # [c, N]
        target = t2i[start : start + chunk_size].view(-1, 1)
        correct = sims.gather(1, target)
        ahead = (sims > correct) | ((sims == correct) & (image_index.view(1, n) < target))
        t2i_ranks.append(ahead.sum(dim=1))
    return torch.cat(i2t_ranks).cpu(), torch.cat(t2i_ranks).cpu()


def _median_rank(ranks: torch.Tensor) -> float:
    """floor(median) + 1 of 0-based ranks, the median of an even count being the mean of the middle two."""
    r = ranks.sort().values
    k = r.numel()
    mid = int(r[k // 2]) if k % 2 else (int(r[k // 2 - 1]) + int(r[k // 2])) // 2
    return float(mid + 1)


def retrieval_metrics(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor | Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 512,
) -> dict[str, float | int]:
    """Recall@K, RSUM and median / mean rank of image→text and text→image retrieval.

    Args:
        image_features: [N, D] image embeddings, one per image (normalised here).
        text_features: [M, D] caption embeddings (normalised here).
        text_to_image: [M] image index of each caption (any order; several captions per image).
        ks: the K of Recall@K.
        chunk_size: queries per similarity block.

    Returns:
        ``{"image_to_text:R@K", "text_to_image:R@K", "mean:R@K"`` (the two directions' mean) for each K,
        ``"image_to_text:median_rank"``, ``"image_to_text:mean_rank"``, the same for ``text_to_image``,
        ``"rsum"`` (sum of both directions' R@K over ``ks``), ``"n_images"``, ``"n_texts"}``. Recalls in %.
    """
    text_to_image = torch.as_tensor(text_to_image)
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    ranks = dict(
        zip(
            ("image_to_text", "text_to_image"),
            retrieval_ranks(image_features, text_features, text_to_image, chunk_size),
        )
    )
    out: dict[str, float | int] = {}
    rsum = 0.0
    for k in ks:
        for direction, r in ranks.items():
            recall = 100.0 * float((r < k).double().mean())
            out[f"{direction}:R@{k}"] = recall
            rsum += recall
        out[f"mean:R@{k}"] = (out[f"image_to_text:R@{k}"] + out[f"text_to_image:R@{k}"]) / 2
    for direction, r in ranks.items():
        out[f"{direction}:median_rank"] = _median_rank(r)
        out[f"{direction}:mean_rank"] = float(r.double().mean()) + 1.0
    out["rsum"] = rsum
    out["n_images"] = int(image_features.shape[0])
    out["n_texts"] = int(text_features.shape[0])
    return out

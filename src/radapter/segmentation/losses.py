"""Per-pixel losses of the segmenter: binary cross-entropy over classes (CAT-Seg) or softmax cross-entropy.

With logits ``z[b, k, i, j]`` (bilinearly resized to the label's size, as CAT-Seg does) and labels ``y[b, i, j]``,
over the labelled pixels Ω (``y ≠ ignore``)::

    BCE = − 1/(|Ω|·K) Σ_{(b,i,j)∈Ω} Σ_k [ 1[y=k] log σ(z_k) + 1[y≠k] log(1 − σ(z_k)) ]
    CE  = − 1/|Ω| Σ_{(b,i,j)∈Ω} log softmax_k(z)_y

Difference from CAT-Seg: its BCE also counts ignored pixels, as negatives for every class (its target tensor is
zero there); here they are left out, which is what "ignore" means for the CE loss too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "segmentation_loss"]

LOSSES = ("bce", "ce")


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, kind: str = "bce", ignore_index: int = 255
) -> torch.Tensor:
    """Mean per-pixel loss over labelled pixels.

    Args:
        logits: [B, K, h, w] class logits (any resolution).
        target: [B, H, W] int64 class ids in ``[0, K)`` or ``ignore_index``.
        kind: ``"bce"`` or ``"ce"``.
        ignore_index: Label of unlabelled pixels.

    Returns:
        A scalar; exactly 0 (with gradient) when no pixel is labelled.

    Raises:
        ValueError: unknown kind, or a label that is neither a class id nor ``ignore_index``.
    """
    if kind not in LOSSES:
        raise ValueError(f"loss kind must be one of {LOSSES}, got {kind!r}")
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"logits [B, K, h, w] and target [B, H, W] expected, got {tuple(logits.shape)}, {tuple(target.shape)}"
        )
    k = logits.shape[1]
    target = target.long()
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= k))
    if bad.any():
        raise ValueError(
            f"labels {torch.unique(target[bad])[:8].tolist()} are neither class ids 0..{k - 1} of the {k}-class "
            f"vocabulary nor the ignore index {ignore_index}"
        )
    if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    if not valid.any():
        return logits.sum() * 0.0
    if kind == "ce":
        return F.cross_entropy(logits, torch.where(valid, target, torch.full_like(target, -100)), ignore_index=-100)
    z = logits.permute(0, 2, 3, 1)[valid]  # [|Ω|, K]
    onehot = F.one_hot(target[valid], k).to(z.dtype)
    return F.binary_cross_entropy_with_logits(z, onehot)

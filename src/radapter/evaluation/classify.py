"""Top-1 / top-5 accuracy of a CLIP classifier on evaluation sets under distribution shift.

The head is either given (``ft``-style linear heads) or rebuilt from the evaluated model's own text encoder
(zero-shot head of the merged model at each α). Logits are ``logit_scale · normalize(f) @ headᵀ`` over the
head's classes, projected onto each set's label space (ImageNet-A/R subsets, ObjectNet max-over-mapped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..backbones import encode_image, logit_scale
from ..data.fewshot import per_class_subset
from ..zeroshot import build_zero_shot_head


def _targets(dataset) -> list[int]:
    """Labels of a dataset (or a Subset of one) without reading its images."""
    if isinstance(dataset, Subset):
        return [_targets(dataset.dataset)[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"eval.max_images needs the labels of {type(dataset).__name__} (a 'targets' attribute)")
    return list(targets)


def _loader(dataset, batch_size: int, workers: int, max_images: int | None, seed: int) -> DataLoader:
    if max_images is not None and len(dataset) > max_images:
        # a seeded, class-balanced subset: the first N files of a sorted folder would be the first classes only
        dataset = Subset(dataset, per_class_subset(_targets(dataset), max_images, seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    eval_sets: Sequence[Any],
    head: torch.Tensor | None = None,
    tokenizer: Any = None,
    classnames: Sequence[str] | None = None,
    templates: Sequence[Any] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    workers: int = 0,
    max_images: int | None = None,
    seed: int = 0,
    progress: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Accuracy (percent) of ``model`` on each set: ``{"<set>:top1": …, "<set>:top5": …}``.

    Args:
        model: A plain (or adapted, eval-mode) supported model.
        eval_sets: :class:`radapter.data.EvalSet` objects.
        head: [C, D] class embeddings; None rebuilds the zero-shot head from ``classnames`` and ``templates``.
    """
    model.eval()
    device = torch.device(device)
    if head is None:
        if tokenizer is None or classnames is None or templates is None:
            raise ValueError("evaluate_classifier: give a head, or a tokenizer, classnames and templates")
        head = build_zero_shot_head(model, tokenizer, classnames, templates, device=device, progress=progress)
    head = torch.nn.functional.normalize(head.to(device).float(), dim=-1)
    scale = logit_scale(model)  # positive: it changes no ranking, only the logits' scale
    scale = 100.0 if scale is None else float(scale)
    results: dict[str, float] = {}
    for es in eval_sets:
        loader = _loader(es.dataset, batch_size, workers, max_images, seed)
        correct1 = correct5 = total = 0
        iterator = loader
        if progress:
            iterator = tqdm(loader, desc=f"eval {es.name}", leave=False)
        for images, labels in iterator:
            images, labels = images.to(device, non_blocking=True), labels.to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                f = encode_image(model, images, normalize=True)
            logits = es.project_logits(scale * f.float() @ head.t())
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices
            hit = topk == labels.view(-1, 1)
            correct1 += int(hit[:, 0].sum())
            correct5 += int(hit.any(dim=1).sum())
            total += len(labels)
        if total == 0:
            raise ValueError(f"eval set {es.name!r} is empty")
        results[f"{es.name}:top1"] = 100.0 * correct1 / total
        results[f"{es.name}:top5"] = 100.0 * correct5 / total
    return results


def summarize_sets(results: dict[str, float], eval_sets: Sequence[Any]) -> dict[str, Any]:
    """Adds ``id_set``, ``ood_sets`` and ``avg_ood:top1`` (mean top-1 over the sets marked OOD)."""
    ood = [es.name for es in eval_sets if es.ood]
    ids = [es.name for es in eval_sets if not es.ood and es.name != "holdout"]
    out: dict[str, Any] = {"id_set": ids[0] if ids else None, "ood_sets": ood}
    if ood:
        out["avg_ood:top1"] = sum(results[f"{n}:top1"] for n in ood) / len(ood)
    return out

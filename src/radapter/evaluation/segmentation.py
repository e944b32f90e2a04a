"""Semantic-segmentation metrics exactly as detectron2's ``SemSegEvaluator`` computes them.

One confusion matrix for the whole dataset, ``C[p, g]`` = number of pixels predicted ``p`` with ground truth
``g``, of size (N+1)×(N+1): ignored ground-truth pixels go to column N and are left out of every metric.
With ``TP_c = C[c, c]``, ``G_c = Σ_p C[p, c]`` (labelled pixels of class c) and ``P_c = Σ_g C[c, g]`` over labelled
pixels (pixels predicted c)::

    IoU_c  = TP_c / (G_c + P_c − TP_c)          for classes present in the ground truth (G_c > 0), else NaN
    Acc_c  = TP_c / G_c                          same classes
    mIoU   = mean of IoU_c over classes with G_c > 0
    fwIoU  = Σ_c (G_c / Σ G) IoU_c
    mACC   = mean of Acc_c over classes with G_c > 0
    pACC   = Σ TP / Σ G

This is detectron2 since July 2022 (commit f3c1bc19, "Fix semantic errors …"), ``miou_mode="present"``.
detectron2 v0.6 and earlier divided the same sum by the number of classes present in the ground truth *or*
predicted, i.e. a class predicted somewhere but absent from every label map counted as IoU 0:
``miou_mode="predicted"``. Papers of that era (and any code pinned to v0.6) report that number; every result
records the mode it used. Everything else is identical in both modes. All values are percentages.

Predictions are compared at ground-truth resolution: score maps of another size are resized bilinearly
(``align_corners=False``) before the arg-max, as detectron2's ``sem_seg_postprocess`` does; label maps must
already have the ground truth's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MIOU_MODES", "SegmentationResult", "SemSegEvaluator", "confusion_matrix", "segmentation_metrics"]

MIOU_MODES = ("present", "predicted")


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(N+1)×(N+1) int64 counts, rows = prediction, columns = ground truth (N = ignored pixels).

    Args:
        pred: Integer predictions in ``[0, N)``, any shape.
        gt: Ground truth of the same shape: class ids in ``[0, N)`` or ``ignore_index``.

    Raises:
        ValueError: shapes differ, or a value is outside the ranges above (names the values).
    """
    pred, gt = torch.as_tensor(pred), torch.as_tensor(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from ground truth {tuple(gt.shape)}")
    pred, gt = pred.reshape(-1).long(), gt.reshape(-1).long()
    bad_gt = (gt != ignore_index) & ((gt < 0) | (gt >= num_classes))
    if bad_gt.any():
        raise ValueError(
            f"ground-truth values {torch.unique(gt[bad_gt])[:8].tolist()} are neither class ids 0..{num_classes - 1} "
            f"nor the ignore index {ignore_index}"
        )
    if pred.numel() and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(
            f"predictions must be class ids 0..{num_classes - 1}, got {pred.min().item()}..{pred.max().item()}"
        )
    gt = torch.where(gt == ignore_index, torch.full_like(gt, num_classes), gt)
    n1 = num_classes + 1
    counts = torch.bincount((n1 * pred + gt).cpu(), minlength=n1 * n1)
    return counts.reshape(n1, n1)


@dataclass
class SegmentationResult:
    """Metrics of one evaluation set (percentages; NaN where undefined).

    Attributes:
        miou, fwiou, macc, pacc: Mean IoU, frequency-weighted IoU, mean class accuracy, pixel accuracy.
        iou, acc: Per-class values (NaN for classes absent from the ground truth).
        class_names: Names of the N classes.
        miou_mode: ``"present"`` (detectron2 ≥ 2022) or ``"predicted"`` (detectron2 ≤ v0.6).
        seen_miou, unseen_miou, harmonic_miou: mIoU over the seen and unseen classes and their harmonic mean
            (None when no seen vocabulary was given).
        labelled_pixels: Number of pixels that entered the metrics.
    """

    miou: float
    fwiou: float
    macc: float
    pacc: float
    iou: list[float]
    acc: list[float]
    class_names: list[str]
    miou_mode: str
    seen_miou: float | None = None
    unseen_miou: float | None = None
    harmonic_miou: float | None = None
    labelled_pixels: int = 0
    seen_classes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None)."""

        def clean(v):
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return {k: clean(v) for k, v in asdict(self).items()}


def _mean(values: np.ndarray, count: int) -> float:
    return float(100.0 * values.sum() / count) if count else float("nan")


def segmentation_metrics(
    conf: torch.Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
    miou_mode: str = "present",
    seen: Sequence[int] | None = None,
) -> SegmentationResult:
    """Metrics from an (N+1)×(N+1) confusion matrix (rows prediction, columns ground truth, last = ignored).

    Args:
        conf: Counts as :func:`confusion_matrix` returns (summed over a dataset / over processes).
        class_names: N names (default ``"0" … "N-1"``).
        miou_mode: ``"present"`` or ``"predicted"`` (see the module docstring).
        seen: Indices of the classes seen in training; adds seen / unseen / harmonic mIoU, each averaged with the
            same rule as the overall mIoU restricted to that subset.
    """
    if miou_mode not in MIOU_MODES:
        raise ValueError(f"miou_mode must be one of {MIOU_MODES}, got {miou_mode!r}")
    c = np.asarray(conf, dtype=np.int64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"confusion matrix must be (N+1)x(N+1), got shape {c.shape}")
    n = c.shape[0] - 1
    names = [str(i) for i in range(n)] if class_names is None else [str(x) for x in class_names]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}-class confusion matrix")
    tp = c.diagonal()[:-1].astype(float)
    pos_gt = c[:-1, :-1].sum(axis=0).astype(float)
    pos_pred = c[:-1, :-1].sum(axis=1).astype(float)
    total = pos_gt.sum()
    present = pos_gt > 0
    acc = np.full(n, np.nan)
    iou = np.full(n, np.nan)
    acc[present] = tp[present] / pos_gt[present]
    union = pos_gt + pos_pred - tp
    iou[present] = tp[present] / union[present]  # union >= G_c > 0 on present classes
    counted = present if miou_mode == "present" else (pos_gt + pos_pred) > 0

    def miou_over(mask: np.ndarray) -> float:
        return _mean(iou[mask & present], int((mask & counted).sum()))

    everything = np.ones(n, dtype=bool)
    result = SegmentationResult(
        miou=miou_over(everything),
        fwiou=float(100.0 * np.sum(iou[present] * pos_gt[present] / total)) if total else float("nan"),
        macc=_mean(acc[present], int(present.sum())),
        pacc=float(100.0 * tp.sum() / total) if total else float("nan"),
        iou=[float(100.0 * v) for v in iou],
        acc=[float(100.0 * v) for v in acc],
        class_names=names,
        miou_mode=miou_mode,
        labelled_pixels=int(total),
    )
    if seen is not None:
        seen_idx = sorted({int(i) for i in seen})
        bad = [i for i in seen_idx if not 0 <= i < n]
        if bad:
            raise ValueError(f"seen class indices {bad} out of range 0..{n - 1}")
        is_seen = np.zeros(n, dtype=bool)
        is_seen[seen_idx] = True
        s, u = miou_over(is_seen), miou_over(~is_seen)
        result.seen_miou, result.unseen_miou = s, u
        result.harmonic_miou = 2 * s * u / (s + u) if s + u > 0 else (0.0 if s == s and u == u else float("nan"))
        result.seen_classes = seen_idx
    return result


class SemSegEvaluator:
    """Accumulates a dataset-level confusion matrix; :meth:`compute` returns a :class:`SegmentationResult`.

    Args:
        num_classes: N, the ground-truth classes.
        ignore_index: Ground-truth value of unlabelled pixels (255; 65535 for ADE-847; 459 for PC-459).
        class_names: Names for the result (default indices).
        miou_mode: ``"present"`` (default) or ``"predicted"``.
        seen: Seen class indices for seen/unseen mIoU.
        prompt_to_class: When the scores have one channel per *prompt* (VOC-20b: 59 prompts, 21 classes), the class
            each prompt predicts; the arg-max over prompts is mapped through it.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        miou_mode: str = "present",
        seen: Sequence[int] | None = None,
        prompt_to_class: Sequence[int] | None = None,
    ):
        if miou_mode not in MIOU_MODES:
            raise ValueError(f"miou_mode must be one of {MIOU_MODES}, got {miou_mode!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class id (num_classes={num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = list(class_names) if class_names is not None else None
        self.miou_mode = miou_mode
        self.seen = list(seen) if seen is not None else None
        self.prompt_to_class = None if prompt_to_class is None else torch.as_tensor(list(prompt_to_class)).long()
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes + 1, self.num_classes + 1, dtype=torch.long)

    def _labels(self, pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """[H, W] class ids from scores [K, h, w] (resized to ``size`` first) or a label map [H, W]."""
        if pred.dim() == 3:
            scores = pred.float()
            if tuple(scores.shape[-2:]) != size:
                scores = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]
            labels = scores.argmax(0)
            if self.prompt_to_class is not None:
                if scores.shape[0] != len(self.prompt_to_class):
                    raise ValueError(f"{scores.shape[0]} score maps but {len(self.prompt_to_class)} prompts")
                labels = self.prompt_to_class.to(labels.device)[labels]
            elif scores.shape[0] != self.num_classes:
                raise ValueError(f"{scores.shape[0]} score maps for {self.num_classes} classes")
            return labels
        if pred.dim() == 2:
            if tuple(pred.shape) != size:
                raise ValueError(
                    f"label-map prediction {tuple(pred.shape)} must have the ground truth's size {size}; "
                    "pass score maps [K, h, w] to have them resized"
                )
            return pred.long()
        raise ValueError(f"prediction must be scores [K, h, w] or labels [H, W], got shape {tuple(pred.shape)}")

    @torch.no_grad()
    def update(self, pred: torch.Tensor | Sequence[torch.Tensor], gt: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """Adds images: ``pred`` scores [K, h, w] / labels [H, W] (or a batch / list of them), ``gt`` [H, W] each."""
        preds = list(pred) if isinstance(pred, (list, tuple)) or (torch.is_tensor(pred) and pred.dim() == 4) else [pred]
        gts = list(gt) if isinstance(gt, (list, tuple)) or (torch.is_tensor(gt) and gt.dim() == 3) else [gt]
        if len(preds) != len(gts):
            raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth maps")
        for p, g in zip(preds, gts):
            g = torch.as_tensor(g)
            labels = self._labels(torch.as_tensor(p), tuple(g.shape[-2:]))
            self.confusion += confusion_matrix(labels.cpu(), g.cpu(), self.num_classes, self.ignore_index)

    def merge(self, confusion: torch.Tensor) -> None:
        """Adds another process's (or shard's) confusion matrix."""
        if tuple(confusion.shape) != tuple(self.confusion.shape):
            raise ValueError(f"confusion matrix shape {tuple(confusion.shape)} != {tuple(self.confusion.shape)}")
        self.confusion += confusion.to(self.confusion.device, torch.long)

    def compute(self) -> SegmentationResult:
        return segmentation_metrics(self.confusion, self.class_names, self.miou_mode, self.seen)

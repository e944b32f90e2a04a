"""The losses a method can train with, and what each needs from the task's batches.

* ``mpm_nce`` — MPM-NCE (R-Adapter, §3.4): image/caption pairs, positives = equal group ids;
* ``clip`` — the CLIP/FLYP loss: image/caption pairs, one-hot diagonal targets;
* ``ce`` — cross-entropy against the task's fixed zero-shot class head (classification only);
* ``sigmoid`` — the multi-positive sigmoid loss of SigLIP models (positives = equal group ids), with the
  model's frozen scale and bias.
"""

from __future__ import annotations

import torch

from ..config import ConfigError
from ..losses import clip_loss, head_cross_entropy, mpm_nce_loss, sigmoid_loss
from ..tasks.base import CAPTIONS, CLASS_HEAD, GROUPS, LABELS, TASK_LOSS, Batch, get_task

LOSSES = ("mpm_nce", "clip", "ce", "sigmoid")
_NEEDS = {
    "mpm_nce": frozenset({CAPTIONS, GROUPS}),
    "clip": frozenset({CAPTIONS}),
    "ce": frozenset({LABELS, CLASS_HEAD}),
    "sigmoid": frozenset({CAPTIONS, GROUPS}),
}


def loss_needs(loss: str, where: str) -> frozenset[str]:
    """What a task must provide for ``loss``; ``where`` names the config key in the error."""
    if loss not in LOSSES:
        raise ConfigError(f"{where}: unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    return _NEEDS[loss]


def pair_loss(method, batch: Batch, loss: str, margin: float, label_smoothing: float) -> torch.Tensor:
    """The loss named ``loss`` for a method that trains on (image, caption) pairs or the class head."""
    f = method.image_features(batch.images)
    if loss == "ce":
        head = method.task.zero_shot_head().to(f.dtype)
        return head_cross_entropy(f, head, batch.labels, method.logit_scale, label_smoothing)
    g = method.text_features(batch.texts)
    if loss == "clip":
        return clip_loss(f, g, method.logit_scale)
    if loss == "sigmoid":
        return sigmoid_loss(f, g, batch.groups, method.logit_scale, method.logit_bias)
    return mpm_nce_loss(f, g, batch.groups, method.logit_scale, margin, label_smoothing)


class PairLossMethod:
    """Mixin of methods trained with ``method.<key>.loss`` (R-Adapter, LoRA): what the task must provide follows
    the chosen loss, and :meth:`loss` is that loss on a batch."""

    @classmethod
    def required(cls, cfg):
        if TASK_LOSS in get_task(cfg.task).provides:
            return frozenset({TASK_LOSS})  # the task's own loss replaces method.<key>.loss
        return loss_needs(getattr(cfg.method, cls.key).loss, f"method.{cls.key}.loss")

    def loss(self, batch: Batch) -> torch.Tensor:
        c = getattr(self.cfg.method, self.key)
        return pair_loss(self, batch, c.loss, c.margin, c.label_smoothing)

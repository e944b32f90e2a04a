"""End-to-end fine-tuning baselines of the WiSE-FT / LP-FT papers.

* ``ft``: the image tower plus a linear head initialised from the task's zero-shot head, cross-entropy on
  ``logit_scale · normalize(f) @ headᵀ`` (WiSE-FT's classifier); the text tower is not used.
* ``lpft``: a linear probe (head only) for ``method.lpft.probe_fraction`` of the steps, then ``ft`` (Kumar et
  al., 2022); implemented as a delayed schedule for the tower's parameter group.

Both need a task with class labels and a class head (classification).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..losses import head_cross_entropy
from ..tasks.base import CLASS_HEAD, LABELS, Scorer
from ..training.schedule import param_groups
from .base import Method, Variant, register_method


@register_method
class FineTune(Method):
    key = "ft"
    needs = frozenset({LABELS, CLASS_HEAD})

    def setup(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)
        for _, p in self.handler.image_tower_parameters(self.model):
            p.requires_grad_(True)
        self.head = nn.Parameter(self.task.zero_shot_head().detach().clone())

    def extra_parameters(self) -> dict[str, nn.Parameter]:
        return {"head": self.head}

    def loss(self, batch):
        f = self.image_features(batch.images)
        smoothing = self.cfg.method.ft.label_smoothing
        return head_cross_entropy(f, self.head.to(f.dtype), batch.labels, self.logit_scale, smoothing)

    def variants(self, alphas) -> Iterator[Variant]:
        yield Variant(Scorer(self.model, head=self.head.detach()))


@register_method
class LinearProbeThenFineTune(FineTune):
    key = "lpft"

    def param_groups(self) -> list[dict]:
        o = self.cfg.optim
        head = [{"params": [self.head], "lr": self.cfg.method.lpft.probe_lr, "weight_decay": 0.0}]
        return head + param_groups(self.handler.image_tower_parameters(self.model), o.lr, o.weight_decay)

    def group_starts(self, total_steps: int) -> list[int]:
        probe = int(round(self.cfg.method.lpft.probe_fraction * total_steps))
        return [0] + [probe] * (len(self.param_groups()) - 1)


@torch.no_grad()
def interpolate_state(zero: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float):
    """WiSE-FT: θ(α) = (1 − α) θ_zero-shot + α θ_fine-tuned for floating tensors (others from the tuned model)."""
    out = {}
    for k, v in tuned.items():
        z = zero[k]
        out[k] = (1 - alpha) * z + alpha * v if v.is_floating_point() else v
    return out

"""CLIP fine-tuning strategies for tasks that compute their own loss (segmentation): ``frozen``, ``qv``, ``full``.

They only choose which pretrained CLIP weights train beside the task's own modules (the segmentation head);
the loss is the task's (:meth:`~radapter.tasks.base.Task.loss`), so they serve only tasks that provide
``task_loss`` and are refused for the others at config time.

* ``frozen`` — no CLIP weight trains: the head learns on top of zero-shot CLIP;
* ``qv`` — CAT-Seg's recipe (``CLIP_FINETUNE: attention``): the query and value projection weights of every
  attention layer of both towers (``method.qv.towers``). open_clip fuses q, k, v into one ``in_proj_weight``;
  the k rows are held frozen by a gradient mask and restored after every step
  (:func:`~radapter.segmentation.finetune.select_clip_trainable`);
* ``full`` — every weight of the towers (``method.full.towers``); the logit scale stays frozen.

Learning rates: the task's modules train at ``optim.lr``, the pretrained CLIP weights at ``optim.lr ×
task.clip_lr_scale`` (segmentation: ``data.segmentation.clip_lr_scale``, CAT-Seg's 0.01). R-Adapter and LoRA are
not scaled: their adapters are new, zero-initialised weights, not pretrained ones the multiplier protects.
There is no α: the one variant evaluated and exported is the trained model itself (``OUT/merged``, the
backbone's own format; ``frozen`` exports nothing, its CLIP is the base model).
"""

from __future__ import annotations

import os
from typing import ClassVar

from ..adapters.io import export_merged
from ..config import ConfigError, RunConfig
from ..segmentation.finetune import TrainableSelection, select_clip_trainable
from ..tasks.base import TASK_LOSS
from ..training.schedule import param_groups
from .base import Method, get_method, method_names, register_method

TOWERS = {"both": ("image", "text"), "image": ("image",), "text": ("text",)}


class ClipFinetune(Method):
    """Base of the three strategies: ``strategy`` is :func:`select_clip_trainable`'s."""

    strategy: ClassVar[str] = ""
    needs = frozenset({TASK_LOSS})
    serves_task_loss = True

    @classmethod
    def check(cls, cfg, task) -> None:
        if TASK_LOSS not in task.provides:
            defaults = RunConfig()  # each method's needs with its default loss, as the base check lists them
            able = [m for m in method_names() if not (get_method(m).required(defaults) - task.provides)]
            raise ConfigError(
                f"method {cls.key!r} cannot train task {task.key!r}: it only chooses which CLIP weights train for a "
                f"task that computes its own loss (segmentation) and has no loss of its own; methods for {task.key}: "
                + ", ".join(able)
            )
        super().check(cfg, task)
        section = getattr(cfg.method, cls.key, None)
        if section is not None and section.towers not in TOWERS:
            raise ConfigError(f"method.{cls.key}.towers: {section.towers!r} is not one of {list(TOWERS)}")

    def setup(self) -> None:
        section = getattr(self.cfg.method, self.key, None)
        towers = TOWERS[section.towers] if section is not None else TOWERS["both"]
        self.selection: TrainableSelection = select_clip_trainable(self.model, self.strategy, towers)

    def param_groups(self) -> list[dict]:
        o = self.cfg.optim
        scale = float(getattr(self.task, "clip_lr_scale", 1.0))
        clip = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        own = self._task_parameters() + list(self.extra_parameters().items())
        # CLIP's groups first: the trainer logs the last group's learning rate, the head's
        return param_groups(clip, o.lr * scale, o.weight_decay) + param_groups(own, o.lr, o.weight_decay)

    def after_step(self, step: int) -> None:
        self.selection.after_step()  # the key rows of a fused projection go back to their pretrained values

    def trainable_count(self) -> int:
        own = sum(p.numel() for _, p in self._task_parameters())
        return self.selection.num_trainable + own + sum(p.numel() for p in self.extra_parameters().values())

    def export(self, directory: str, alpha: float) -> dict[str, str]:
        if not self.selection.parameters:
            return {}
        path = os.path.join(directory, "merged")
        export_merged(self.model, path, extra={"method": self.key})
        return {"merged": path}

    def record(self) -> dict:
        return {"clip_trainable_params": self.selection.num_trainable}


@register_method
class Frozen(ClipFinetune):
    key = "frozen"
    strategy = "frozen"


@register_method
class QV(ClipFinetune):
    key = "qv"
    strategy = "attention"


@register_method
class Full(ClipFinetune):
    key = "full"
    strategy = "full"

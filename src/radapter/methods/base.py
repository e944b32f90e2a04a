"""What a fine-tuning method is, to the trainer and the run.

A method owns what trains (:meth:`Method.setup`, :meth:`param_groups`), its loss on a task's :class:`Batch`
(:meth:`loss`), what happens after each optimizer step (:meth:`after_step`, e.g. EMA), its checkpointed state,
the model variants to evaluate (:meth:`variants`, e.g. one merged model per α) and its export. It works for
every task whose batches carry what it :attr:`~Method.needs`; one that cannot serve a task fails at config time
(:meth:`check`). A new method is one small module registered with :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..backbones import encode_image, encode_text, get_handler
from ..backbones.loading import LoadedModel
from ..config import ConfigError, RunConfig
from ..tasks.base import TASK_LOSS, Batch, Scorer, Task
from ..training.schedule import param_groups
from ..utils.registry import Registry


@dataclass
class Variant:
    """One evaluated model: what the task scores, at which α (None for methods without one)."""

    scorer: Scorer
    alpha: float | None = None


class Method:
    """Base class. Subclasses set ``key`` (and ``needs``, ``trains``) and override what differs.

    Args:
        cfg: The run configuration.
        backbone: The loaded base model; ``backbone.model`` is adapted in place.
        task: The task the method trains for.
        alpha: The deploy α (``eval.alpha``, or the task's default).
    """

    key: ClassVar[str] = ""
    trains: bool = True
    #: What the task's batches must carry (see radapter.tasks.base).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: Whether the method can train with a task's own loss (it only chooses what trains: R-Adapter, LoRA, …).
    serves_task_loss: ClassVar[bool] = False

    def __init__(self, cfg: RunConfig, backbone: LoadedModel, task: Task, alpha: float) -> None:
        self.cfg, self.backbone, self.task, self.alpha = cfg, backbone, task, float(alpha)
        self.model = backbone.model
        self.handler = get_handler(self.model)
        # CLIP's temperature (and SigLIP's bias) stay frozen: read once, as plain numbers
        scale, bias = self.handler.logit_scale(self.model), self.handler.logit_bias(self.model)
        self.logit_scale = 100.0 if scale is None else float(scale.detach())
        self.logit_bias = None if bias is None else float(bias.detach())
        self.setup()

    # --- configuration -------------------------------------------------------------------------------
    @classmethod
    def required(cls, cfg: RunConfig) -> frozenset[str]:
        """What this method needs from a task under ``cfg`` (a loss choice can change it)."""
        return cls.needs

    @classmethod
    def check(cls, cfg: RunConfig, task: type[Task]) -> None:
        """Refuses, before anything runs, a task whose batches lack what the method needs (or a task that computes
        its own loss, for a method whose loss cannot be replaced)."""
        if TASK_LOSS in task.provides and not cls.serves_task_loss:
            raise ConfigError(
                f"method {cls.key!r} cannot train task {task.key!r}: the task computes its own loss, and "
                f"{cls.key} trains with a loss of its own; methods for {task.key}: "
                + ", ".join(m for m in method_names() if get_method(m).serves_task_loss)
            )
        missing = sorted(cls.required(cfg) - task.provides)
        if missing:
            defaults = RunConfig()  # each method's needs with its default loss
            able = [m for m in method_names() if not (get_method(m).required(defaults) - task.provides)]
            raise ConfigError(
                f"method {cls.key!r} cannot train task {task.key!r}: it needs {', '.join(missing)}, which "
                f"{task.key} batches do not carry; methods for {task.key} (with their default loss): {', '.join(able)}"
            )

    # --- set-up and training -------------------------------------------------------------------------
    def setup(self) -> None:
        """Freezes / unfreezes / inserts modules."""

    def extra_parameters(self) -> dict[str, nn.Parameter]:
        """Trainable tensors that live outside the backbone (e.g. a linear head)."""
        return {}

    def _task_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"{k}.{n}", p) for k, m in self.task.trainable_modules().items() for n, p in m.named_parameters()]

    def param_groups(self) -> list[dict]:
        o = self.cfg.optim
        named = list(self.model.named_parameters()) + list(self.extra_parameters().items()) + self._task_parameters()
        return param_groups(named, o.lr, o.weight_decay)

    def group_starts(self, total_steps: int) -> list[int] | None:
        """Optional per-group start steps for the schedule (LP-FT)."""
        return None

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return encode_image(self.model, images, normalize=True)

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.backbone.tokenizer(list(texts))
        tokens = tokens.to(self.device) if hasattr(tokens, "to") else tokens
        return encode_text(self.model, tokens, normalize=True)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def train_loss(self, batch: Batch) -> torch.Tensor:
        """What the trainer minimises: the task's own loss for tasks that provide ``task_loss`` (segmentation),
        else the method's :meth:`loss`."""
        if TASK_LOSS in self.task.provides:
            return self.task.loss(self.model, batch)
        return self.loss(batch)

    def after_step(self, step: int) -> None:
        """Called after every optimizer step."""

    # --- state ---------------------------------------------------------------------------------------
    def trainable_count(self) -> int:
        n = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        n += sum(p.numel() for _, p in self._task_parameters())
        return n + sum(p.numel() for p in self.extra_parameters().values())

    def method_state_dict(self) -> dict[str, torch.Tensor]:
        """What the method trains (checkpointed); default: the trainable backbone parameters and extras."""
        out = {f"model.{n}": p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
        out.update({f"extra.{n}": p.detach() for n, p in self.extra_parameters().items()})
        return out

    @torch.no_grad()
    def load_method_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        extra = self.extra_parameters()
        for key, value in state.items():
            scope, _, name = key.partition(".")
            target = (extra if scope == "extra" else {**params, **buffers}).get(name)
            if target is None:
                raise KeyError(f"checkpoint tensor {key!r} does not belong to method {self.key!r}")
            target.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything training changes: the method's state and the task's trained modules (``task.<module>.…``)."""
        out = self.method_state_dict()
        for k, module in self.task.trainable_modules().items():
            out.update({f"task.{k}.{n}": t.detach() for n, t in module.state_dict().items()})
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = {k: v for k, v in state.items() if not k.startswith("task.")}
        self.load_method_state_dict(own)
        modules = self.task.trainable_modules()
        for key, value in state.items():
            if not key.startswith("task."):
                continue
            _, name, rest = key.split(".", 2)
            if name not in modules:
                raise KeyError(f"checkpoint tensor {key!r}: task {self.task.key!r} has no module {name!r}")
            modules[name].load_state_dict({rest: value}, strict=False)

    # --- evaluation and export -----------------------------------------------------------------------
    def variants(self, alphas: Sequence[float]) -> Iterator[Variant]:
        """The models to evaluate; methods without an α yield one variant and ignore ``alphas``."""
        yield Variant(Scorer(self.model))

    def export(self, directory: str, alpha: float) -> dict[str, str]:
        """Writes deployable artefacts at deploy α ``alpha``; returns ``{kind: path}``."""
        return {}

    def record(self) -> dict[str, Any]:
        """Fields every result row of this method carries (besides the task's metrics)."""
        return {}


METHODS: Registry[type[Method]] = Registry("method", "method.name")
register_method = METHODS.register  # class decorator: makes a Method selectable as ``method.name: <cls.key>``
method_names = METHODS.names
get_method = METHODS.get

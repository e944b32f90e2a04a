"""What a fine-tuning method is, to the trainer and the evaluator.

A method says which parameters train and with which loss (:meth:`Method.loss`), what happens after each
optimizer step (:meth:`after_step`, e.g. EMA), what its checkpointed state is, and which model variants to
evaluate (:meth:`variants`, e.g. one merged model per α). The trainer and evaluator know nothing
method-specific; a new method is one small module registered with :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..backbones import encode_image, encode_text
from ..backbones.loading import LoadedModel
from ..config import RunConfig


@dataclass
class Task:
    """The classification task a method trains for."""

    classnames: list[str]
    templates: Sequence[str | Callable[[str], str]]
    zero_shot_head: torch.Tensor  # [C, D], from the base model's text encoder
    device: torch.device


@dataclass
class Variant:
    """One evaluated model: ``head`` None means "rebuild the zero-shot head from this model's text encoder"."""

    model: nn.Module
    alpha: float | None = None
    head: torch.Tensor | None = None
    tags: dict[str, Any] = field(default_factory=dict)


class TrainStep(nn.Module):
    """The module DDP wraps: ``forward(images, tokens, labels) -> loss`` calls back into the method."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.model = method.model
        self.extra = nn.ParameterDict(method.extra_parameters())
        self._loss = method.loss

    def forward(self, images: torch.Tensor, tokens: Any, labels: torch.Tensor) -> torch.Tensor:
        return self._loss(images, tokens, labels)


class Method:
    """Base class. Subclasses set ``key`` and override what differs."""

    key: str = ""
    contrastive: bool = False  # needs caption tokens in the batch
    trains: bool = True

    def __init__(self, cfg: RunConfig, loaded: LoadedModel, task: Task) -> None:
        self.cfg, self.loaded, self.task = cfg, loaded, task
        self.model = loaded.model
        self.logit_scale = (
            float(loaded.model.logit_scale.exp().item()) if hasattr(loaded.model, "logit_scale") else 100.0
        )
        self.setup()

    # --- set-up and training -------------------------------------------------------------------------
    def setup(self) -> None:
        """Freezes / unfreezes / inserts modules."""

    def extra_parameters(self) -> dict[str, nn.Parameter]:
        """Trainable tensors that live outside the backbone (e.g. a linear head)."""
        return {}

    def param_groups(self) -> list[dict]:
        from ..training.schedule import param_groups

        o = self.cfg.optim
        named = list(self.model.named_parameters()) + list(self.extra_parameters().items())
        return param_groups(named, o.lr, o.weight_decay)

    def group_starts(self, total_steps: int) -> list[int] | None:
        """Optional per-group start steps for the schedule (LP-FT)."""
        return None

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return encode_image(self.model, images, normalize=True)

    def text_features(self, tokens: Any) -> torch.Tensor:
        return encode_text(self.model, tokens, normalize=True)

    def loss(self, images: torch.Tensor, tokens: Any, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after every optimizer step."""

    # --- state ---------------------------------------------------------------------------------------
    def trainable_count(self) -> int:
        n = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return n + sum(p.numel() for p in self.extra_parameters().values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything training changes (checkpointed); default: trainable parameters by name."""
        out = {f"model.{n}": p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
        out.update({f"extra.{n}": p.detach() for n, p in self.extra_parameters().items()})
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        buffers = dict(self.model.named_buffers())
        extra = self.extra_parameters()
        for key, value in state.items():
            scope, _, name = key.partition(".")
            target = (extra if scope == "extra" else {**params, **buffers}).get(name)
            if target is None:
                raise KeyError(f"checkpoint tensor {key!r} does not belong to method {self.key!r}")
            target.copy_(value)

    # --- evaluation and export -----------------------------------------------------------------------
    def variants(self) -> Iterator[Variant]:
        yield Variant(self.model)

    def export(self, directory: str) -> dict[str, str]:
        """Writes deployable artefacts; returns {kind: path}."""
        return {}


_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    _METHODS[cls.key] = cls
    return cls


def method_names() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[Method]:
    if name not in _METHODS:
        import difflib

        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"method.name: unknown method {name!r}{hint}; available: {', '.join(method_names())}")
    return _METHODS[name]

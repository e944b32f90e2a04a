"""What a task is, to the methods, the trainer and the run.

A task owns its data and its protocol: it builds the training set and the evaluation sets from the run's
config, says what one training batch carries (:class:`Batch`), which loss inputs it can hand a method
(:attr:`Task.provides`), how a model is scored (:meth:`Task.evaluate`: one head or text set per eval set),
which fields its result rows have (:meth:`Task.summarize`) and its default deploy α. It knows nothing of how a
method trains or merges. A new task is one module with a class registered by :func:`register_task`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from ..backbones.loading import LoadedModel
from ..config import ConfigError, RunConfig
from ..utils.registry import Registry

# What a task's batches and set-up can hand a method (Task.provides / Method.needs):
LABELS = "labels"  # integer class labels for every image
CAPTIONS = "captions"  # one caption per image (class templates or real captions)
GROUPS = "groups"  # the MPM-NCE positives key: class id (classification) or image id (retrieval)
CLASS_HEAD = "class_head"  # a fixed class list with a zero-shot head a linear classifier can start from
TASK_LOSS = "task_loss"  # the task computes the loss itself (Task.loss); methods only choose what trains
CAPABILITIES = (LABELS, CAPTIONS, GROUPS, CLASS_HEAD, TASK_LOSS)


@dataclass
class Batch:
    """One training (micro-)batch, as the task's collate function builds it.

    Attributes:
        images: [B, 3, H, W] float.
        labels: [B] class ids (tasks that provide ``labels``).
        groups: [B] group ids whose equal values are MPM-NCE positives (tasks that provide ``groups``).
        texts: B caption strings (tasks that provide ``captions``); methods tokenise what they use.
        extra: anything else a task hands its own loss (masks, …).
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    groups: torch.Tensor | None = None
    texts: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        extra = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in self.extra.items()}
        return Batch(move(self.images), move(self.labels), move(self.groups), self.texts, extra)


@dataclass
class Scorer:
    """How to score one model variant: a fixed head for the training classes (a fine-tuned linear head), a
    ``class_head`` that builds a head for any class list (CoOp's learned context), or neither, in which case the
    task builds zero-shot heads / text sets from the model's own text tower."""

    model: nn.Module
    head: torch.Tensor | None = None  # [C, D] over Task.classnames
    #: ``(classnames, templates) -> [C, D]`` head for any class list (novel classes, other datasets), or None
    class_head: Callable[[Sequence[str], Sequence[Any]], torch.Tensor] | None = None

    def head_over(
        self, classnames: Sequence[str], templates: Sequence[Any], training: Sequence[str] | None = None
    ) -> torch.Tensor | None:
        """The variant's own [C, D] head for ``classnames``: ``head`` when they are the training classes
        ``training`` (None: they are), else ``class_head(classnames, templates)``; None when the variant has
        neither, and the task scores with a zero-shot head from ``model``'s own text tower."""
        if self.head is not None and (training is None or list(classnames) == list(training)):
            return self.head
        if self.class_head is not None:
            return self.class_head(list(classnames), list(templates))
        return None


class Task:
    """Base class. Subclasses set ``key``, ``default_alpha``, ``provides`` and implement the methods.

    Args:
        cfg: The run configuration.
        backbone: The loaded base model with its tokenizer and preprocessing.
        device: Where evaluation runs.
        seed: The run's seed (data subsets, sampling).
        eval_only: Build the evaluation sets only (a finished run being re-evaluated).
        progress: Show progress bars.
        record: What :meth:`record` returned when the run trained (read back from ``task.json``), so a
            re-evaluation needs no training data.
    """

    key: ClassVar[str] = ""
    default_alpha: ClassVar[float] = 0.5
    provides: ClassVar[frozenset[str]] = frozenset()
    #: The result-row field the α sweep and the ID-vs-OOD plot use, e.g. "top1" or "R@1".
    metric: ClassVar[str] = "top1"
    description: ClassVar[str] = ""

    def __init__(
        self,
        cfg: RunConfig,
        backbone: LoadedModel,
        device: torch.device,
        seed: int,
        eval_only: bool = False,
        progress: bool = True,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.cfg, self.backbone, self.device, self.seed = cfg, backbone, device, seed
        self.eval_only, self.progress, self.saved = eval_only, progress, record or {}
        self.setup()

    @classmethod
    def check_config(cls, cfg: RunConfig) -> None:
        """Validates the task's own keys (eval-set entries, data kinds) before anything runs."""

    def setup(self) -> None:
        """Builds the data (train set unless ``eval_only``; evaluation sets)."""

    # --- training ----------------------------------------------------------------------------------
    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules the task owns that train with every method (a segmentation head), by name: their
        parameters join the optimizer, DDP and the checkpoint, and :meth:`export_modules` saves them."""
        return {}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The training loss of tasks that provide ``task_loss``: computed from the (adapted) CLIP ``model``
        and the task's own modules. Other tasks hand their batches to the method's loss."""
        raise NotImplementedError(f"task {self.key!r} does not compute its own loss")

    def export_modules(self, directory: str) -> dict[str, str]:
        """Saves the task's trained modules next to the method's artefacts; returns ``{kind: path}``."""
        return {}

    def train_size(self) -> int:
        """Number of training items (what an epoch iterates over)."""
        raise NotImplementedError

    def train_dataset(self) -> Dataset:
        """Items for keys ``(index, epoch, seed)``: every random choice of an item (augmentation, caption)
        is drawn from ``seed``, so an item is the same in every process and after every resume."""
        raise NotImplementedError

    def collate(self, items: Sequence[Any]) -> Batch:
        raise NotImplementedError

    @property
    def classnames(self) -> list[str] | None:
        """The training classes (tasks that provide ``class_head``)."""
        return None

    def zero_shot_head(self) -> torch.Tensor | None:
        """[C, D] zero-shot head of the training classes from the base model (``class_head`` tasks)."""
        return None

    # --- evaluation --------------------------------------------------------------------------------
    def evaluate(self, scorer: Scorer) -> dict[str, Any]:
        """Scores one model variant on every evaluation set: ``{"<set>:<metric>": value, …}``."""
        raise NotImplementedError

    def summarize(self, results: dict[str, Any]) -> dict[str, Any]:
        """Row fields derived from ``results``: ``id_set``, ``ood_sets``, ``avg_ood:<metric>``, …"""
        return {}

    def image_sets(self) -> dict[str, Any]:
        """Every dataset of the run by name (training set and evaluation sets), for ``radapter data check``."""
        return {}

    def record(self) -> dict[str, Any]:
        """JSON facts of the training data that evaluation needs later (class names, …): saved as
        ``task.json`` in the run folder and handed back as ``record`` when the run is re-evaluated."""
        return {}

    def classifier(self, scorer: Scorer) -> dict[str, Any] | None:
        """What a deployed model needs to do the task beside its weights (class names, templates, head), for
        the variant ``scorer`` — exported next to the merged model. None: nothing."""
        return None

    def describe(self) -> dict[str, Any]:
        """Counts of the data (printed at start, stored with results)."""
        return {}


TASKS: Registry[type[Task]] = Registry("task", "task")
register_task = TASKS.register  # class decorator: makes a Task selectable as ``task: <cls.key>``
task_names = TASKS.names
get_task = TASKS.get


def build_entries(cls: type, entries: Sequence[Any], where: str, validate: Callable[[type, dict, str], Any]) -> list:
    """Builds one ``cls`` per config entry, naming ``where[i].key`` in every error."""
    out = []
    valid = [f.name for f in fields(cls)]
    for i, entry in enumerate(entries):
        path = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: expected a mapping with keys {valid}, got {entry!r}")
        out.append(validate(cls, entry, path))
    return out

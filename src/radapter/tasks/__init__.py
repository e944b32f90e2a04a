"""Tasks: what is trained for and how it is scored (classification, retrieval, …), selected by ``task:``."""

from . import (
    classification,  # noqa: F401  (registers the task)
    fewshot,  # noqa: F401  (registers base2new and cross_dataset)
)
from .base import (
    CAPABILITIES,
    CAPTIONS,
    CLASS_HEAD,
    GROUPS,
    LABELS,
    Batch,
    Scorer,
    Task,
    get_task,
    register_task,
    task_names,
)

__all__ = [
    "CAPABILITIES",
    "CAPTIONS",
    "CLASS_HEAD",
    "GROUPS",
    "LABELS",
    "Batch",
    "Scorer",
    "Task",
    "get_task",
    "register_task",
    "task_names",
]

"""Tasks: what is trained for and how it is scored (classification, retrieval, …), selected by ``task:``."""

from . import (  # noqa: F401  (registers the tasks)
    classification,
    retrieval,
    segmentation,  # noqa: F401  (registers the segmentation task)
)
from .base import (
    CAPABILITIES,
    CAPTIONS,
    CLASS_HEAD,
    GROUPS,
    LABELS,
    TASK_LOSS,
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
    "TASK_LOSS",
    "Batch",
    "Scorer",
    "Task",
    "get_task",
    "register_task",
    "task_names",
]

"""Tasks: what is trained for and how it is scored (classification, retrieval, …), selected by ``task:``."""

from . import classification, fewshot, retrieval  # noqa: F401  (registers the tasks)
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
from .segmentation import SegmentationTask  # noqa: F401  (registers the segmentation task)

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

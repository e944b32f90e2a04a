"""Fine-tuning methods, selected by a short key: zeroshot, ft, lpft, flyp, wiseft, lora, radapter."""

from . import flyp, ft, lora, radapter, wiseft, zeroshot  # noqa: F401  (registers the methods)
from .base import Method, Task, TrainStep, Variant, get_method, method_names, register_method

__all__ = ["Method", "Task", "TrainStep", "Variant", "get_method", "method_names", "register_method"]

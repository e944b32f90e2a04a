"""Fine-tuning methods, selected by ``method.name``: zeroshot, ft, lpft, flyp, wiseft, lora, radapter."""

from . import (  # noqa: F401  (registers the methods)
    clip_finetune,  # noqa: F401  (frozen, qv, full: segmentation's CLIP fine-tuning strategies)
    flyp,
    ft,
    lora,
    radapter,
    wiseft,
    zeroshot,
)
from .base import Method, Variant, get_method, method_names, register_method

__all__ = ["Method", "Variant", "get_method", "method_names", "register_method"]

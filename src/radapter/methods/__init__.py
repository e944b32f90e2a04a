"""Fine-tuning methods, selected by ``method.name``: zeroshot, ft, lpft, flyp, wiseft, lora, radapter, coop."""

from . import (  # noqa: F401  (registers the methods)
    coop,
    flyp,
    ft,
    lora,
    radapter,
    wiseft,
    zeroshot,
)
from .base import Method, Variant, get_method, method_names, register_method
from .clip_finetune import QV, Frozen, Full  # noqa: F401  (registers frozen, qv, full)

__all__ = ["Method", "Variant", "get_method", "method_names", "register_method"]

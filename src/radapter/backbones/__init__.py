"""Backbone families radapter can adapt, and loading them by name or path."""

from . import hf_clip, hf_siglip, open_clip  # noqa: F401  (registers the handlers)
from .base import (
    AdapterSite,
    BackboneHandler,
    UnsupportedBackboneError,
    base_info,
    encode_image,
    encode_text,
    get_handler,
    logit_bias,
    logit_scale,
    register_backbone,
    registered_handlers,
    set_grad_checkpointing,
    supported_backbones,
)
from .memory import fp32_frozen_weights, frozen_weights_held, hold_frozen_weights, restore_frozen_weights

__all__ = [
    "AdapterSite",
    "BackboneHandler",
    "UnsupportedBackboneError",
    "base_info",
    "encode_image",
    "encode_text",
    "fp32_frozen_weights",
    "frozen_weights_held",
    "get_handler",
    "hold_frozen_weights",
    "logit_bias",
    "logit_scale",
    "register_backbone",
    "registered_handlers",
    "restore_frozen_weights",
    "set_grad_checkpointing",
    "supported_backbones",
]

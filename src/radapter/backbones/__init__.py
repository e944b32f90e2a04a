"""Backbone families radapter can adapt, and loading them by name or path."""

from . import hf_clip, open_clip  # noqa: F401  (registers the handlers)
from .base import (
    AdapterSite,
    BackboneHandler,
    UnsupportedBackboneError,
    base_info,
    encode_image,
    encode_text,
    get_handler,
    register_backbone,
    supported_backbones,
)

__all__ = [
    "AdapterSite",
    "BackboneHandler",
    "UnsupportedBackboneError",
    "base_info",
    "encode_image",
    "encode_text",
    "get_handler",
    "register_backbone",
    "supported_backbones",
]

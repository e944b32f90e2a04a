"""Hugging Face ``transformers`` dual encoders: ``CLIPModel`` and its single-tower variants
``CLIPVisionModelWithProjection`` / ``CLIPTextModelWithProjection`` (transformers 4.57+ and 5.x). SigLIP and
SigLIP2 are in :mod:`radapter.backbones.hf_siglip`; both build on :class:`radapter.backbones.hf_base.HFDualEncoderHandler`.

``CLIPAttention`` calls ``self_attn.out_proj`` as a module and ``CLIPMLP`` calls ``mlp.fc2``, so the adapter
wraps those linears directly ("post" order) and folds back into them at merge time.

The single-tower classes are what a user loads to embed only images (or only texts) in CLIP's joint space —
they keep the projection, unlike ``CLIPVisionModel`` / ``CLIPTextModel``, whose pooled outputs are not in that
space and are not supported. They have no logit scale (:meth:`logit_scale` returns None) and adapting them needs
``RAdapterConfig(towers="image")`` (or ``"text"``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import hf_siglip  # noqa: F401  (registers the SigLIP / SigLIP2 handlers with the CLIP ones)
from .base import UnsupportedBackboneError, register_backbone
from .hf_base import HFDualEncoderHandler, pooled, text_kwargs


@register_backbone
class HFClipHandler(HFDualEncoderHandler):
    name = "transformers-clip"
    class_name = "CLIPModel"


@register_backbone
class HFClipVisionHandler(HFDualEncoderHandler):
    name = "transformers-clip-vision"
    class_name = "CLIPVisionModelWithProjection"
    tower_prefixes = {"image": "vision_model"}

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return pooled(model(pixel_values=images), "image_embeds")

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        raise UnsupportedBackboneError("a CLIPVisionModelWithProjection has no text tower")

    def logit_scale(self, model: nn.Module) -> None:
        return None


@register_backbone
class HFClipTextHandler(HFDualEncoderHandler):
    name = "transformers-clip-text"
    class_name = "CLIPTextModelWithProjection"
    tower_prefixes = {"text": "text_model"}

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        raise UnsupportedBackboneError("a CLIPTextModelWithProjection has no image tower")

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        return pooled(model(**text_kwargs(tokens, True)), "text_embeds")

    def logit_scale(self, model: nn.Module) -> None:
        return None

    def image_tower_parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        raise UnsupportedBackboneError("a CLIPTextModelWithProjection has no image tower")

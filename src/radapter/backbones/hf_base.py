"""Shared code of the Hugging Face ``transformers`` dual encoders (CLIP, SigLIP, SigLIP2): towers in
``vision_model`` / ``text_model``, layer sites from :mod:`radapter.backbones.hf_layers`, ``save_pretrained`` export."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import torch
from torch import nn

from .base import AdapterSite, BackboneHandler
from .hf_layers import hf_encoder_layers, hf_layer_sites, hf_set_grad_checkpointing


def pooled(out: Any, *keys: str) -> torch.Tensor:
    """The embedding tensor of a transformers output: 4.x ``get_*_features`` return it directly, 5.x return a
    ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds it; ``*WithProjection`` models name it
    ``image_embeds`` / ``text_embeds``."""
    if isinstance(out, torch.Tensor):
        return out
    for key in (*keys, "pooler_output", "image_embeds", "text_embeds"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected output type from transformers: {type(out).__name__}")


def text_kwargs(tokens: Any, use_mask: bool) -> dict[str, torch.Tensor]:
    if isinstance(tokens, torch.Tensor):
        return {"input_ids": tokens}
    keys = ("input_ids", "attention_mask") if use_mask else ("input_ids",)
    return {k: tokens[k] for k in keys if k in tokens}


class HFDualEncoderHandler(BackboneHandler):
    """Shared code of transformers CLIP-like models with ``vision_model`` / ``text_model`` encoders.

    Subclasses set ``class_name`` (the transformers class), ``name``, and override the encoders where their
    model differs.
    """

    library = "transformers"
    class_name = ""
    tower_prefixes = {"image": "vision_model", "text": "text_model"}
    use_attention_mask = True

    def matches(self, model: nn.Module) -> bool:
        try:
            import transformers
        except ImportError:
            return False
        cls = getattr(transformers, self.class_name, None)
        return cls is not None and isinstance(model, cls)

    def describe(self, model: nn.Module) -> str:
        return f"transformers {type(model).__name__}"

    def towers(self, model: nn.Module) -> tuple[str, ...]:
        return tuple(self.tower_prefixes)

    def tower_blocks(self, model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
        prefix = self.tower_prefixes[tower]
        return hf_encoder_layers(getattr(model, prefix), prefix)

    def block_sites(self, path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
        return hf_layer_sites(path, block, tower, index)

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return pooled(model.get_image_features(pixel_values=images))

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        return pooled(model.get_text_features(**text_kwargs(tokens, self.use_attention_mask)))

    def logit_scale(self, model: nn.Module) -> torch.Tensor | None:
        return model.logit_scale.exp()

    def image_tower_parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """``vision_model.*`` plus ``visual_projection.*`` where the model has one (CLIP; SigLIP has none)."""
        out = [(f"vision_model.{n}", p) for n, p in model.vision_model.named_parameters()]
        if isinstance(getattr(model, "visual_projection", None), nn.Module):
            out += [(f"visual_projection.{n}", p) for n, p in model.visual_projection.named_parameters()]
        return out

    def set_grad_checkpointing(self, model: nn.Module, enable: bool = True) -> None:
        hf_set_grad_checkpointing(model, enable)

    def save_native(self, model: nn.Module, directory: str, info: dict[str, Any]) -> None:
        """``save_pretrained`` layout (safetensors), written to a temporary folder then moved in place."""
        os.makedirs(directory, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=directory)
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(directory, name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _processor_note(self, info: dict[str, Any]) -> str:
        base = str(info.get("name", "")).removeprefix("hf:")
        return (
            f"# tokenizer and image processor: the base model's, e.g. AutoProcessor.from_pretrained({json.dumps(base)})"
        )

    def loading_snippet(self, directory: str, info: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"from transformers import {self.class_name}",
                "",
                f"model = {self.class_name}.from_pretrained({json.dumps(directory)})",
                self._processor_note(info),
            ]
        )

    def base_snippet(self, info: dict[str, Any]) -> str:
        base = str(info.get("name", "")).removeprefix("hf:")
        return f"from transformers import {self.class_name}\n\nbase = {self.class_name}.from_pretrained({json.dumps(base)})"

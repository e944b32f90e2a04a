"""Hugging Face ``transformers.CLIPModel`` (transformers 4.57+ and 5.x).

``CLIPAttention`` calls ``self_attn.out_proj`` as a module and ``CLIPMLP`` calls ``mlp.fc2``, so the adapter
wraps those linears directly ("post" order) and folds back into them at merge time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import torch
from torch import nn

from .base import AdapterSite, BackboneHandler, register_backbone


def _pooled(out: Any) -> torch.Tensor:
    # transformers 4.x returns the projected embeddings; 5.x returns a BaseModelOutputWithPooling whose
    # pooler_output holds them.
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected output type from transformers get_*_features: {type(out).__name__}")


@register_backbone
class HFClipHandler(BackboneHandler):
    library = "transformers"

    def matches(self, model: nn.Module) -> bool:
        try:
            from transformers import CLIPModel
        except ImportError:
            return False
        return isinstance(model, CLIPModel)

    def tower_blocks(self, model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
        prefix = "vision_model" if tower == "image" else "text_model"
        layers = getattr(model, prefix).encoder.layers
        return [(f"{prefix}.encoder.layers.{i}", layer) for i, layer in enumerate(layers)]

    def block_sites(self, path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
        d = block.self_attn.out_proj.out_features
        return [
            AdapterSite(f"{tower}.{index}.attn", f"{path}.self_attn.out_proj", f"{path}.self_attn.out_proj", "post", d),
            AdapterSite(f"{tower}.{index}.mlp", f"{path}.mlp.fc2", f"{path}.mlp.fc2", "post", d),
        ]

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return _pooled(model.get_image_features(pixel_values=images))

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        if isinstance(tokens, torch.Tensor):
            return _pooled(model.get_text_features(input_ids=tokens))
        kwargs = {k: tokens[k] for k in ("input_ids", "attention_mask") if k in tokens}
        return _pooled(model.get_text_features(**kwargs))

    def logit_scale(self, model: nn.Module) -> torch.Tensor:
        return model.logit_scale.exp()

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

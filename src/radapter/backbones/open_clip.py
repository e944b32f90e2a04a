"""open_clip 3.x backbones: ``CLIP`` and ``CustomTextCLIP`` with native ViT towers.

In open_clip's ``ResidualAttentionBlock`` the residual branch is ``ls_1(attention(ln_1(x)))``: attention is
``nn.MultiheadAttention``, which reads ``out_proj.weight`` itself and never calls ``out_proj.forward``. The
adapter therefore wraps ``ls_1`` (Identity or LayerScale) in "pre" order — it sees the attention output right
after the output projection — and folds into ``attn.out_proj`` at merge time. The MLP adapter wraps ``ls_2``
the same way and folds into ``mlp.c_proj``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ..utils import atomic_save_safetensors, atomic_write_text
from .base import AdapterSite, BackboneHandler, UnsupportedBackboneError, register_backbone


def _is_open_clip_model(model: nn.Module) -> bool:
    try:
        from open_clip.model import CLIP, CustomTextCLIP
    except ImportError:  # pragma: no cover - open_clip is a hard dependency
        return False
    return isinstance(model, (CLIP, CustomTextCLIP))


@register_backbone
class OpenClipHandler(BackboneHandler):
    library = "open_clip"

    def matches(self, model: nn.Module) -> bool:
        return _is_open_clip_model(model)

    def tower_blocks(self, model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
        from open_clip.transformer import TextTransformer, VisionTransformer

        if tower == "image":
            if not isinstance(model.visual, VisionTransformer):
                raise UnsupportedBackboneError(
                    f"the image tower of this open_clip model is a {type(model.visual).__name__}; radapter supports "
                    "open_clip's native VisionTransformer (e.g. ViT-B-16) — not timm or ResNet towers yet. "
                    "Use towers='text' to adapt only the text tower."
                )
            prefix, transformer = "visual.transformer", model.visual.transformer
        else:
            if hasattr(model, "text"):
                if not isinstance(model.text, TextTransformer):
                    raise UnsupportedBackboneError(
                        f"the text tower of this open_clip model is a {type(model.text).__name__}; radapter "
                        "supports open_clip's native TextTransformer — not Hugging Face text towers. "
                        "Use towers='image' to adapt only the image tower."
                    )
                prefix, transformer = "text.transformer", model.text.transformer
            else:
                prefix, transformer = "transformer", model.transformer
        return [(f"{prefix}.resblocks.{i}", blk) for i, blk in enumerate(transformer.resblocks)]

    def block_sites(self, path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
        from open_clip.transformer import CustomResidualAttentionBlock, ResidualAttentionBlock

        if isinstance(block, CustomResidualAttentionBlock):
            # The adapter must see out_proj's output directly: a norm in between would not fold into it.
            if not isinstance(block.ln_attn, nn.Identity) or not isinstance(block.mlp.ln, nn.Identity):
                raise UnsupportedBackboneError(
                    f"{path}: blocks with scale_attn / scale_fc norms after the projection cannot be merged"
                )
        elif not isinstance(block, ResidualAttentionBlock):
            raise UnsupportedBackboneError(f"{path}: unsupported block type {type(block).__name__}")
        d = block.attn.out_proj.out_features
        return [
            AdapterSite(f"{tower}.{index}.attn", f"{path}.ls_1", f"{path}.attn.out_proj", "pre", d),
            AdapterSite(f"{tower}.{index}.mlp", f"{path}.ls_2", f"{path}.mlp.c_proj", "pre", d),
        ]

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model.encode_image(images)

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        return model.encode_text(tokens)

    def logit_scale(self, model: nn.Module) -> torch.Tensor:
        return model.logit_scale.exp()

    def save_native(self, model: nn.Module, directory: str, info: dict[str, Any]) -> None:
        """Writes open_clip's ``local-dir`` layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
        model_cfg = info.get("model_cfg")
        if model_cfg is None:
            raise ValueError(
                "cannot export an open_clip model without its model config; load it with radapter.load_model(...) "
                "or pass base_info={'model_cfg': open_clip.get_model_config(NAME)} to export_merged"
            )
        config = {"model_cfg": model_cfg, "preprocess_cfg": info.get("preprocess_cfg", {})}
        os.makedirs(directory, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        atomic_save_safetensors(state, os.path.join(directory, "open_clip_model.safetensors"))
        atomic_write_text(os.path.join(directory, "open_clip_config.json"), json.dumps(config, indent=2))

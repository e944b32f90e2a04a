"""open_clip 3.x backbones: ``CLIP``, ``CustomTextCLIP`` and ``CoCa`` (its contrastive towers) whose towers are
transformers.

Image towers: open_clip's native ``VisionTransformer`` and timm trunks (``TimmModel``, see
:mod:`radapter.backbones.timm_towers`); ``ModifiedResNet`` and convolutional timm trunks are refused. Text towers:
the native ``TextTransformer`` and Hugging Face encoders (``HFTextEncoder``, see :mod:`radapter.backbones.hf_layers`).

In open_clip's native ``ResidualAttentionBlock`` the residual branch is ``ls_1(attention(ln_1(x)))``: attention is
``nn.MultiheadAttention``, which reads ``out_proj.weight`` itself and never calls ``out_proj.forward``. The
adapter therefore wraps ``ls_1`` (Identity or LayerScale) in "pre" order — it sees the attention output right
after the output projection — and folds into ``attn.out_proj`` at merge time. The MLP adapter wraps ``ls_2``
the same way and folds into ``mlp.c_proj``.

A new kind of open_clip tower is supported by a subclass of :class:`OpenClipHandler` registered at a higher
priority whose ``matches`` accepts models with that tower and whose ``tower_blocks`` / ``block_sites`` handle it
(deferring to ``super()`` for the other tower); this class need not change.
"""

from __future__ import annotations

import json
import os
from typing import Any

import open_clip
import torch
from open_clip.coca_model import CoCa
from open_clip.hf_model import HFTextEncoder
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.timm_model import TimmModel
from open_clip.transformer import (
    CustomResidualAttentionBlock,
    ResidualAttentionBlock,
    TextTransformer,
    VisionTransformer,
)
from torch import nn

from ..utils import atomic_save_safetensors, atomic_write_text
from .base import AdapterSite, BackboneHandler, UnsupportedBackboneError, register_backbone
from .hf_layers import hf_encoder_layers, hf_layer_sites, hf_set_grad_checkpointing
from .timm_towers import set_timm_grad_checkpointing, timm_block_sites, timm_tower_blocks


def _text_module(model: nn.Module) -> nn.Module | None:
    """The text tower module (``CustomTextCLIP.text``), or None for ``CLIP``, which keeps its text parts flat."""
    return getattr(model, "text", None)


def _native_sites(path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
    if isinstance(block, CustomResidualAttentionBlock):
        # The adapter must see out_proj's output directly: a norm in between would not fold into it.
        if not isinstance(block.ln_attn, nn.Identity) or not isinstance(block.mlp.ln, nn.Identity):
            raise UnsupportedBackboneError(
                f"{path}: blocks with scale_attn / scale_fc norms after the projection cannot be merged"
            )
    d = block.attn.out_proj.out_features
    return [
        AdapterSite(f"{tower}.{index}.attn", f"{path}.ls_1", f"{path}.attn.out_proj", "pre", d),
        AdapterSite(f"{tower}.{index}.mlp", f"{path}.ls_2", f"{path}.mlp.c_proj", "pre", d),
    ]


@register_backbone
class OpenClipHandler(BackboneHandler):
    name = "open_clip"
    library = "open_clip"
    priority = 0

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, (CLIP, CustomTextCLIP, CoCa))

    def describe(self, model: nn.Module) -> str:
        return f"open_clip {type(model).__name__}"

    # --- towers ----------------------------------------------------------------------------------------------
    def tower_blocks(self, model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
        if tower == "image":
            visual = model.visual
            if isinstance(visual, VisionTransformer):
                return [(f"visual.transformer.resblocks.{i}", b) for i, b in enumerate(visual.transformer.resblocks)]
            if isinstance(visual, TimmModel):
                return timm_tower_blocks(visual, "visual")
            raise UnsupportedBackboneError(
                f"the image tower of this open_clip model is a {type(visual).__name__} (convolutional); radapter "
                "adapts transformer towers: open_clip's VisionTransformer (ViT-B-16, ...) and timm ViT-family "
                "trunks (SigLIP, EVA, PE-Core, ViTamin, Swin). Use RAdapterConfig(towers='text') to adapt only "
                "the text tower."
            )
        text = _text_module(model)
        if text is None:
            return [(f"transformer.resblocks.{i}", b) for i, b in enumerate(model.transformer.resblocks)]
        if isinstance(text, TextTransformer):
            return [(f"text.transformer.resblocks.{i}", b) for i, b in enumerate(text.transformer.resblocks)]
        if isinstance(text, HFTextEncoder):
            return hf_encoder_layers(text.transformer, "text.transformer")
        raise UnsupportedBackboneError(
            f"the text tower of this open_clip model is a {type(text).__name__}; radapter supports open_clip's "
            "TextTransformer and Hugging Face text encoders (HFTextEncoder). Use RAdapterConfig(towers='image') "
            "to adapt only the image tower."
        )

    def block_sites(self, path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
        if isinstance(block, (ResidualAttentionBlock, CustomResidualAttentionBlock)):
            return _native_sites(path, block, tower, index)
        if tower == "image":
            return timm_block_sites(path, block, tower, index)
        return hf_layer_sites(path, block, tower, index)

    # --- forward ---------------------------------------------------------------------------------------------
    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model.encode_image(images, normalize=False)  # CoCa normalises by default

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        return model.encode_text(tokens, normalize=False)

    def logit_scale(self, model: nn.Module) -> torch.Tensor:
        return model.logit_scale.exp()

    # --- training --------------------------------------------------------------------------------------------
    def image_tower_parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """``visual.*``: open_clip keeps the image projection (``proj`` or the timm ``head``) inside ``visual``."""
        return [(f"visual.{n}", p) for n, p in model.visual.named_parameters()]

    def set_grad_checkpointing(self, model: nn.Module, enable: bool = True) -> None:

        if isinstance(model.visual, TimmModel):
            set_timm_grad_checkpointing(model.visual, enable)
        else:
            model.visual.set_grad_checkpointing(enable)
        text = _text_module(model)
        if text is None:
            model.transformer.grad_checkpointing = enable
        elif isinstance(text, HFTextEncoder):
            # HFTextEncoder.set_grad_checkpointing ignores `enable` and uses re-entrant checkpoints.
            hf_set_grad_checkpointing(text.transformer, enable)
        else:
            text.set_grad_checkpointing(enable)
        decoder = getattr(model, "text_decoder", None)  # CoCa's captioning decoder (not adapted, not used)
        if decoder is not None:
            decoder.set_grad_checkpointing(enable)

    # --- export ----------------------------------------------------------------------------------------------
    def save_native(self, model: nn.Module, directory: str, info: dict[str, Any]) -> None:
        """Writes open_clip's ``local-dir`` layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``.

        ``model_cfg`` is the one the model was built from (``quick_gelu`` included, see
        :func:`radapter.load_model`); open_clip reloads it with ``timm_model_pretrained`` /
        ``hf_model_pretrained`` off because the folder holds the weights.
        """
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

    def loading_snippet(self, directory: str, info: dict[str, Any]) -> str:
        spec = json.dumps("local-dir:" + directory)
        lines = [
            "import open_clip",
            "",
            f"model, _, preprocess = open_clip.create_model_and_transforms({spec})",
            f"tokenizer = open_clip.get_tokenizer({spec})",
        ]
        if (info.get("model_cfg") or {}).get("init_logit_bias") is not None:
            lines.append("# sigmoid model: p = sigmoid(model.logit_scale.exp() * f @ g.T + model.logit_bias)")
        return "\n".join(lines)

    def base_snippet(self, info: dict[str, Any]) -> str:
        name = str(info.get("name", ""))
        if name.endswith(".json") and not name.startswith("local-dir:"):
            stem = os.path.splitext(os.path.basename(name))[0]
            head = [f"open_clip.add_model_config({json.dumps(name)})"]
            name = stem
        else:
            head = []
        args = [json.dumps(name)]
        if info.get("pretrained") not in (None, "", "none", "None"):  # "none" = random init: no pretrained=
            args.append(f"pretrained={json.dumps(info['pretrained'])}")
        if info.get("quick_gelu") and not (open_clip_cfg_quick_gelu(name)):
            args.append("force_quick_gelu=True")
        return "\n".join(
            [
                "import open_clip",
                "",
                *head,
                f"base, _, preprocess = open_clip.create_model_and_transforms({', '.join(args)})",
            ]
        )


def open_clip_cfg_quick_gelu(name: str) -> bool:
    """Whether open_clip's own config ``name`` already builds QuickGELU (``*-quickgelu`` configs)."""
    cfg = open_clip.get_model_config(name) if name in open_clip.list_models() else None
    return bool(cfg and cfg.get("quick_gelu"))

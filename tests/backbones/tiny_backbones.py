"""Tiny backbones of every family the backbone handlers support, built in the test (nothing is downloaded).

* open_clip models with a timm trunk: the trunk's timm entrypoint is registered again under a test name with
  shrinking keyword arguments (depth 2, width 64, 64×64 images), and the open_clip config names it, so plain
  open_clip can rebuild the exported model in the same process;
* open_clip models with a Hugging Face text tower: a tiny config + random weights of the model type in a folder;
* transformers CLIP / SigLIP / SigLIP2 models from tiny configs.
"""

from __future__ import annotations

import json
import os

import torch

import radapter

VOCAB = 1000
TEXT_CFG = {"context_length": 16, "vocab_size": VOCAB, "width": 32, "heads": 2, "layers": 2}
SIGLIP_TEXT_CFG = {**TEXT_CFG, "no_causal_mask": True, "proj_bias": True, "pool_type": "last"}


def register_tiny_timm(timm_name: str, **kwargs) -> str:
    """Registers ``radapter_test__<timm_name>``: the same timm entrypoint with ``kwargs`` (shrinking) applied."""
    import timm
    from timm.models import model_entrypoint, register_model

    tiny = "radapter_test__" + timm_name
    if not timm.is_model(tiny):
        original = model_entrypoint(timm_name)

        def entry(pretrained: bool = False, **kw):
            return original(pretrained=False, **{**kwargs, **kw})

        entry.__name__ = tiny
        register_model(entry)
    return tiny


VIT = {"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 64}
TIMM_TOWERS = {
    # family: (timm entrypoint, shrink kwargs, timm_pool, timm_proj)
    "siglip": ("vit_base_patch16_siglip_224", VIT, "map", "none"),
    "eva02": ("eva02_base_patch16_clip_224", VIT, "token", "linear"),
    "pe_core": ("vit_pe_core_base_patch16_224", VIT, "map", None),
    "swin": ("swin_base_patch4_window7_224", {"embed_dim": 16, "depths": (1, 1), "num_heads": (1, 2)}, "avg", "linear"),
}


def vitamin_kwargs() -> dict:
    from timm.models.vitamin import VitCfg, VitConvCfg

    stem = VitCfg(
        embed_dim=(16, 32, 64),
        depths=(1, 1, 1),
        stem_width=16,
        conv_cfg=VitConvCfg(norm_layer="layernorm2d", norm_eps=1e-6),
        head_type="1d",
    )
    return {**VIT, "embed_cfg": stem}


def write_config(tmp_path, stem: str, cfg: dict) -> str:
    path = os.path.join(str(tmp_path), f"{stem}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return path


def timm_clip_config(family: str) -> tuple[dict, int]:
    """An open_clip config whose image tower is a tiny timm trunk of ``family``; and its image size."""
    if family == "vitamin":
        timm_name, kwargs, pool, proj = "vitamin_small_224", vitamin_kwargs(), "", "linear"
    elif family == "convnext":
        timm_name, kwargs, pool, proj = "convnext_tiny", {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)}, "", "linear"
    elif family == "postnorm":  # timm ViT with post-norm blocks: norm(proj(...)) before the residual add
        from timm.models.vision_transformer import ResPostBlock

        timm_name, kwargs, pool, proj = "vit_base_patch16_224", {**VIT, "block_fn": ResPostBlock}, "token", "linear"
    elif family == "fastvit":
        kwargs = {"layers": (1, 1, 1, 1), "embed_dims": (8, 16, 32, 64)}
        timm_name, pool, proj = "fastvit_mci0", "avg", "linear"
    else:
        timm_name, kwargs, pool, proj = TIMM_TOWERS[family]
    size = 224 if family == "swin" else 64
    vision = {
        "image_size": size,
        "timm_model_name": register_tiny_timm(timm_name, **kwargs),
        "timm_model_pretrained": False,
        "timm_pool": pool,
        "timm_proj": proj,
    }
    cfg = {"embed_dim": 64, "custom_text": True, "vision_cfg": vision, "text_cfg": dict(TEXT_CFG)}
    if family == "siglip":
        cfg["init_logit_bias"] = -10.0
        cfg["text_cfg"] = dict(SIGLIP_TEXT_CFG)
    return cfg, size


def load_timm_clip(tmp_path, family: str, seed: int = 0):
    """``(LoadedModel, image_size)`` of a tiny open_clip model with a ``family`` timm trunk (random init)."""
    cfg, size = timm_clip_config(family)
    torch.manual_seed(seed)
    # (open_clip picks a SigLIP tokenizer — a download — for any config *named* like siglip)
    loaded = radapter.load_model(write_config(tmp_path, f"tiny-timm-{family[:3]}", cfg), pretrained="none")
    unit_layer_scales(loaded.model)
    return loaded, size


HF_TEXT = {
    "roberta": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=40, bos_token_id=0, eos_token_id=2),
    "mt5": dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=2,
                decoder_start_token_id=0, eos_token_id=2),
    "m2m_100": dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                    decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=40,
                    bos_token_id=0, eos_token_id=2, decoder_start_token_id=2),
}  # fmt: skip


def hf_text_dir(tmp_path, model_type: str) -> str:
    """A folder with a tiny ``model_type`` config and random weights (what ``HFTextEncoder`` loads)."""
    from transformers import CONFIG_MAPPING, AutoModel

    path = os.path.join(str(tmp_path), f"hf-text-{model_type}")
    torch.manual_seed(0)
    config = CONFIG_MAPPING[model_type](vocab_size=VOCAB, pad_token_id=1, **HF_TEXT[model_type])
    AutoModel.from_config(config).save_pretrained(path)
    return path


def load_hf_text_clip(tmp_path, model_type: str, seed: int = 0):
    """A tiny open_clip ``CustomTextCLIP`` (native ViT) whose text tower is a Hugging Face ``model_type``."""
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {
            "hf_model_name": hf_text_dir(tmp_path, model_type),
            "hf_proj_type": "linear",
            "hf_pooler_type": "mean_pooler",
            "context_length": 16,
        },
    }
    torch.manual_seed(seed)
    return radapter.load_model(write_config(tmp_path, f"tiny-hftext-{model_type}", cfg), pretrained="none")


def hf_model(class_name: str, seed: int = 0):
    """A tiny transformers model of ``class_name`` (CLIPModel, CLIP*WithProjection, SiglipModel, Siglip2Model)."""
    import transformers
    from transformers import CLIPConfig, Siglip2Config, SiglipConfig

    text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=16)  # fmt: skip
    vision = dict(patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    if class_name.startswith("CLIP"):
        config = CLIPConfig(
            text_config={**text, "eos_token_id": 2, "pad_token_id": 1, "bos_token_id": 0},
            vision_config={**vision, "image_size": 32},
            projection_dim=24,
        )
        if class_name != "CLIPModel":
            config = config.vision_config if "Vision" in class_name else config.text_config
            config.projection_dim = 24
    elif class_name == "SiglipModel":
        config = SiglipConfig(text_config=text, vision_config={**vision, "image_size": 32})
    else:
        config = Siglip2Config(text_config=text, vision_config={**vision, "num_patches": 16})
    torch.manual_seed(seed)
    return getattr(transformers, class_name)(config).eval()


@torch.no_grad()
def unit_layer_scales(model) -> None:
    """Fresh LayerScales start at 1e-4…1e-6 and would hide every block's (and adapter's) contribution."""
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] in ("gamma", "gamma_1", "gamma_2"):
            p.fill_(1.0)


@torch.no_grad()
def randomize_adapters(model, seed: int = 0, scale: float = 0.5) -> None:
    """Random non-zero adapters, live = EMA (so eval mode and merges use them)."""
    gen = torch.Generator().manual_seed(seed)
    for _, adapter in radapter.iter_adapters(model):
        for name in adapter.param_names:
            p = getattr(adapter, name)
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            else:
                p.fill_(scale)
    radapter.ema_update(model, momentum=0.0)


def inputs(size: int, batch: int = 2, context: int = 16, seed: int = 1, eos: int | None = None):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=gen)
    tokens = torch.randint(3, VOCAB - 1, (batch, context), generator=gen)
    if eos is not None:
        tokens[:, -1] = eos
    return images, tokens


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))

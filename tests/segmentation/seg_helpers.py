"""Tiny CLIPs, tokenizers and segmenters for the segmentation tests (nothing is downloaded)."""

from __future__ import annotations

import torch

from conftest import make_hf_clip, make_open_clip
from radapter.segmentation import SegHeadConfig, Segmenter, SegmenterConfig

TINY_HEAD = SegHeadConfig(
    hidden_dim=16,
    num_layers=1,
    num_heads=2,
    window_size=4,
    pooling_size=1,
    text_proj_dim=8,
    appearance_proj_dim=8,
    decoder_dims=(16, 8),
    decoder_guidance_dims=(8, 8),
    decoder_guidance_proj_dims=(4, 4),
    embed_kernel=3,
    mlp_ratio=2.0,
)


def open_clip_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=16)


def hf_tokenizer(texts: list[str]) -> torch.Tensor:
    """Characters -> ids 3..97, EOS (2) after the text, padding 1: enough to give each text its own embedding."""
    out = torch.ones(len(texts), 16, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = [3 + (ord(c) * 7) % 95 for c in t][:15]
        out[i, : len(ids)] = torch.tensor(ids)
        out[i, len(ids)] = 2
    return out


def make_clip(kind: str, seed: int = 0):
    if kind == "open_clip":
        return make_open_clip(seed), open_clip_tokenizer()
    return make_hf_clip(seed), hf_tokenizer


def make_segmenter(kind: str, seed: int = 0, **overrides) -> Segmenter:
    clip, tok = make_clip(kind, seed)
    kwargs = {"head": TINY_HEAD, "templates": ("a photo of a {}.", "a {}."), "input_size": 32, **overrides}
    cfg = SegmenterConfig(**kwargs)
    torch.manual_seed(seed + 100)
    return Segmenter(clip, tok, cfg)

"""Tiny random-init backbones shared by the tests (nothing is downloaded)."""

from __future__ import annotations

import json

import pytest
import torch

TINY_OPEN_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 24},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def make_open_clip(seed: int = 0):
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(**json.loads(json.dumps(TINY_OPEN_CLIP_CFG)))
    model.radapter_base_info = {
        "library": "open_clip",
        "name": "tiny",
        "model_cfg": TINY_OPEN_CLIP_CFG,
        "preprocess_cfg": {"size": 32},
    }
    return model.eval()


def make_hf_clip(seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config={
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "pad_token_id": 1,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 40,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=24,
    )
    return CLIPModel(cfg).eval()


BUILDERS = {"open_clip": make_open_clip, "hf": make_hf_clip}


def sample_inputs(kind: str, batch: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, 32, 32, generator=g)
    if kind == "open_clip":
        tokens = torch.randint(1, 1000, (batch, 16), generator=g)
        tokens[:, -1] = 49407  # EOT: open_clip pools at the argmax token id
    else:
        tokens = torch.randint(3, 98, (batch, 16), generator=g)
        tokens[:, -1] = 2  # EOS id of the tiny config
    return images, tokens


@pytest.fixture(params=sorted(BUILDERS))
def backbone_kind(request):
    return request.param


@pytest.fixture
def tiny_open_clip_json(tmp_path):
    path = tmp_path / "tiny-clip.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    return str(path)

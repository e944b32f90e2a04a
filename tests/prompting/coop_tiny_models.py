"""Tiny open_clip and Hugging Face CLIP models with tokenizers, built by the tests (nothing is downloaded).

The pattern of ``tests/conftest.py``, with a 32-token context so that CoOp's 16 context tokens plus a class
name fit. A plain module, not a conftest (the project imports ``tests/conftest.py`` as ``conftest``).
"""

from __future__ import annotations

import json
import string
import tempfile

import torch

CONTEXT_LENGTH = 32
TINY_OPEN_CLIP_CFG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 24},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def make_open_clip(seed: int = 0, width: int = 32):
    """open_clip ``CLIP`` (random init) and its BPE tokenizer (shipped inside open_clip)."""
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer

    cfg = json.loads(json.dumps(TINY_OPEN_CLIP_CFG))
    cfg["text_cfg"]["width"] = width
    torch.manual_seed(seed)
    model = CLIP(**cfg).eval()
    model.radapter_base_info = {"library": "open_clip", "name": "tiny-coop", "model_cfg": cfg}
    return model, SimpleTokenizer(context_length=CONTEXT_LENGTH)


def make_hf_clip(seed: int = 0, width: int = 32):
    """``transformers.CLIPModel`` (random init) and a letter-level ``CLIPTokenizer`` written to a temp folder.

    Token ids: ``<|startoftext|>`` 0, ``<|endoftext|>`` 1 (EOS and padding, pooled at its first occurrence).
    """
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from radapter.backbones.loading import HFTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in list(string.ascii_lowercase) + ["."]:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/vocab.json", "w") as f:
            json.dump(vocab, f)
        with open(f"{d}/merges.txt", "w") as f:
            f.write("#version: 0.2\n")
        tokenizer = CLIPTokenizer(f"{d}/vocab.json", f"{d}/merges.txt", pad_token="<|endoftext|>")
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": width,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": CONTEXT_LENGTH,
            "bos_token_id": 0,
            "eos_token_id": 1,
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
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    return model, HFTokenizer(tokenizer, CONTEXT_LENGTH)


BUILDERS = {"open_clip": make_open_clip, "hf": make_hf_clip}

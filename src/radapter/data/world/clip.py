"""The tiny open_clip model of the world: its config, saving in open_clip's local-dir format, zero-shot.

The model is a plain open_clip `CLIP` (native `VisionTransformer` and text transformer, default
`ResidualAttentionBlock`s with `nn.MultiheadAttention`), so every radapter code path runs on it
exactly as on ViT-B/16. Saved as `open_clip_config.json` + `open_clip_model.safetensors`, it loads with
plain `open_clip.create_model_and_transforms("local-dir:<dir>")`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from .datasets import WORLD_MEAN, WORLD_STD, images_to_tensor
from .generate import WorldSamples
from .spec import ZERO_SHOT_TEMPLATES

# The shipped checkpoint (weights may be absent in a fresh checkout until pretraining has run).
WORLD_CLIP_DIR = Path(__file__).resolve().parents[2] / "assets" / "world_clip"


def world_clip_model_cfg(
    image_size: int = 32,
    patch_size: int = 4,
    vision_width: int = 96,
    vision_layers: int = 4,
    text_width: int = 64,
    text_layers: int = 3,
    embed_dim: int = 64,
    context_length: int = 16,
) -> dict:
    """open_clip `model_cfg` of the world CLIP (keys of open_clip 3.3's CLIPVisionCfg / CLIPTextCfg).

    Mean pooling over patch tokens (`pool_type="avg"`) made the native ViT learn the world's classes
    where CLS pooling did not (issue 5 study). Head width 32 -> 3 vision heads, text head width 16.
    """
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": image_size,
            "patch_size": patch_size,
            "width": vision_width,
            "layers": vision_layers,
            "head_width": 32,
            "mlp_ratio": 4.0,
            "pool_type": "avg",
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": 49408,
            "width": text_width,
            "heads": max(1, text_width // 16),
            "layers": text_layers,
        },
    }


def preprocess_cfg(image_size: int = 32) -> dict:
    return {
        "size": image_size,
        "mean": list(WORLD_MEAN),
        "std": list(WORLD_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }


def build_world_clip(model_cfg: dict) -> open_clip.CLIP:
    """A randomly initialised open_clip CLIP from a model config dict."""
    return open_clip.CLIP(**model_cfg)


def save_open_clip_dir(model: torch.nn.Module, model_cfg: dict, out: str | Path, dtype=torch.float16) -> Path:
    """Writes `out/open_clip_config.json` and `out/open_clip_model.safetensors` (tensors in `dtype`).

    fp16 halves the file: the 49408-row token embedding dominates the parameter count.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image_size = model_cfg["vision_cfg"]["image_size"]
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg(image_size)}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    return out


def load_world_clip(path: str | Path = WORLD_CLIP_DIR):
    """(model in eval mode, preprocess, tokenizer) of a local-dir checkpoint, with plain open_clip."""
    name = f"local-dir:{path}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


@torch.no_grad()
def zero_shot_head(model, tokenizer, classnames: Sequence[str], templates: Sequence[str] = ZERO_SHOT_TEMPLATES):
    """[C, D] renormalised mean of each class's normalised template embeddings."""
    texts = [t.format(c) for c in classnames for t in templates]
    emb = F.normalize(model.encode_text(tokenizer(texts)), dim=-1).view(len(classnames), len(templates), -1)
    return F.normalize(emb.mean(1), dim=-1)


@torch.no_grad()
def zero_shot_accuracy(
    model,
    tokenizer,
    samples: WorldSamples,
    templates: Sequence[str] = ZERO_SHOT_TEMPLATES,
    mean: Sequence[float] = WORLD_MEAN,
    std: Sequence[float] = WORLD_STD,
    batch_size: int = 512,
) -> dict[str, float]:
    """Zero-shot top-1 accuracy in percent, per domain present in `samples`, plus "avg" over domains."""
    head = zero_shot_head(model, tokenizer, samples.spec.classes, templates)
    preds = []
    for i in range(0, len(samples), batch_size):
        x = images_to_tensor(samples.images[i : i + batch_size], mean, std)
        preds.append((F.normalize(model.encode_image(x), dim=-1) @ head.T).argmax(-1))
    correct = (torch.cat(preds).numpy() == samples.labels).astype(np.float64)
    result = {}
    for d in np.unique(samples.domains):
        result[samples.spec.domains[d]] = 100.0 * float(correct[samples.domains == d].mean())
    result["avg"] = float(np.mean(list(result.values())))
    return result

"""Loading a backbone by the names users type.

* ``ViT-B-16`` + ``pretrained="openai"`` (any open_clip name and pretrained tag, or a checkpoint file path);
* ``local-dir:PATH`` — open_clip's folder format (``open_clip_config.json`` + weights), what
  :func:`radapter.export_merged` writes;
* ``hf:NAME_OR_PATH`` — a ``transformers.CLIPModel`` from the Hub or a local ``save_pretrained`` folder;
* a path to an open_clip model-config JSON (random init with ``pretrained="none"``; what tests and small
  experiments use).

Tags and Hub names download on first use (that is the real code path users run); tests only build models
from configs and folders they write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .base import supported_backbones


@dataclass
class LoadedModel:
    """A backbone and what goes with it.

    Attributes:
        model: The model (open_clip ``CLIP`` or ``transformers.CLIPModel``).
        tokenizer: ``list[str] -> token batch`` accepted by :func:`radapter.encode_text`.
        image_size: Input resolution.
        mean, std: Normalisation of the image tower.
        info: Where it came from (library, name, pretrained, model config), saved with adapters and exports.
    """

    model: nn.Module
    tokenizer: Any
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)


class HFTokenizer:
    """Pads/truncates to the text tower's context length and returns a ``BatchEncoding``."""

    def __init__(self, tokenizer: Any, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: list[str]):
        return self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.context_length, return_tensors="pt"
        )


def _size(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return int(value[0])
    if isinstance(value, dict):
        return int(value.get("shortest_edge") or value.get("height"))
    return int(value)


def _load_open_clip(spec: str, pretrained: str | None, device: str) -> LoadedModel:
    import open_clip

    name, model_cfg = spec, None
    if spec.startswith("local-dir:"):
        cfg_path = os.path.join(spec[len("local-dir:") :], "open_clip_config.json")
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f"{cfg_path}: missing (a local-dir: model needs open_clip_config.json + weights)")
        with open(cfg_path, encoding="utf-8") as f:
            model_cfg = json.load(f).get("model_cfg")
        pretrained = None
    elif spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"{spec}: model config JSON not found")
        with open(spec, encoding="utf-8") as f:
            model_cfg = json.load(f)
        if "model_cfg" in model_cfg:  # an open_clip_config.json was given
            model_cfg = model_cfg["model_cfg"]
        for key in ("embed_dim", "vision_cfg", "text_cfg"):
            if key not in model_cfg:
                raise ValueError(f"{spec}: not an open_clip model config (missing key {key!r})")
        open_clip.add_model_config(spec)
        name = os.path.splitext(os.path.basename(spec))[0]
    else:
        if name not in open_clip.list_models():
            raise ValueError(
                f"unknown model {spec!r}: not an open_clip model name (see open_clip.list_models()), "
                "'local-dir:PATH', 'hf:NAME_OR_PATH' or a model-config .json path"
            )
        model_cfg = open_clip.get_model_config(name)
    tag = None if pretrained in (None, "", "none") else pretrained
    model, _, _ = open_clip.create_model_and_transforms(name, pretrained=tag, device=device)
    tokenizer = open_clip.get_tokenizer(name)
    pp = dict(model.visual.preprocess_cfg)
    info = {"library": "open_clip", "name": spec, "pretrained": tag, "model_cfg": model_cfg, "preprocess_cfg": pp}
    return LoadedModel(model, tokenizer, _size(pp["size"]), tuple(pp["mean"]), tuple(pp["std"]), info)


def _load_hf(name: str, device: str) -> LoadedModel:
    try:
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel
    except ImportError as e:
        raise ImportError("Hugging Face models need the 'hf' extra: pip install 'radapter[hf]'") from e
    model = CLIPModel.from_pretrained(name).to(device)
    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(name), model.config.text_config.max_position_embeddings)
    try:
        proc = CLIPImageProcessor.from_pretrained(name)
        size, mean, std = _size(proc.crop_size), tuple(proc.image_mean), tuple(proc.image_std)
    except OSError:  # a folder without preprocessor_config.json: CLIP's defaults
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        size, mean, std = model.config.vision_config.image_size, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    info = {
        "library": "transformers",
        "name": f"hf:{name}",
        "pretrained": None,
        "preprocess_cfg": {"size": size, "mean": list(mean), "std": list(std)},
    }
    return LoadedModel(model, tokenizer, size, mean, std, info)


def load_model(spec: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Loads a supported backbone by name or path (see the module docstring for the forms)."""
    device = str(device)
    if spec.startswith("hf:"):
        loaded = _load_hf(spec[3:], device)
    elif spec.startswith("hf-hub:"):
        raise ValueError(
            f"{spec!r}: use 'hf:NAME' for transformers CLIPModel; open_clip hf-hub models load by "
            "'local-dir:' after download. Supported: " + supported_backbones()
        )
    else:
        loaded = _load_open_clip(spec, pretrained, device)
    loaded.model.radapter_base_info = loaded.info
    return loaded

"""Loading a backbone by the names users type.

* ``ViT-B-16`` + ``pretrained="openai"`` (any open_clip name and pretrained tag, or a checkpoint file path);
* ``local-dir:PATH`` — open_clip's folder format (``open_clip_config.json`` + weights), what
  :func:`radapter.export_merged` writes;
* ``hf:NAME_OR_PATH`` — a transformers model from the Hub or a local ``save_pretrained`` folder, built by its
  config type: ``CLIPModel``, ``SiglipModel``, ``Siglip2Model`` (and ``CLIPVisionModelWithProjection`` /
  ``CLIPTextModelWithProjection`` for their single-tower configs), with its tokenizer (padded to the context
  length) and image processor settings;
* a path to an open_clip model-config JSON (random init with ``pretrained="none"``; what tests and small
  experiments use).

Tags and Hub names download on first use (that is the real code path users run); tests only build models
from configs and folders they write.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from ..errors import UserError
from .base import supported_backbones


class BackboneLoadError(UserError, ValueError):
    """A model name, path or pretrained tag that cannot be loaded as asked."""


@dataclass
class LoadedModel:
    """A backbone and what goes with it.

    Attributes:
        model: The model (an open_clip ``CLIP`` / ``CustomTextCLIP`` / ``CoCa`` or a transformers model).
        tokenizer: ``list[str] -> token batch`` accepted by :func:`radapter.encode_text` (None for an image-only
            model).
        image_size: Input resolution.
        mean, std: Normalisation of the image tower.
        info: Where it came from (library, name, pretrained, model config, ``preprocess_cfg`` with
            ``resize_mode`` "shortest" (resize + centre crop) or "squash" (SigLIP: resize to the square), and
            ``quick_gelu`` for open_clip), saved with adapters and exports.
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
    """An image size from an int, a (h, w) pair, or an image processor's size dict (transformers 4: ``dict``,
    5: ``SizeDict``) holding ``shortest_edge`` or ``height``."""
    if isinstance(value, (list, tuple)):
        return int(value[0])
    if isinstance(value, (int, float)):
        return int(value)
    for key in ("shortest_edge", "height"):
        found = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if found:
            return int(found)
    raise ValueError(f"cannot read an image size from {value!r}")


def resolve_open_clip(spec: str, pretrained: str | None) -> tuple[str, dict[str, Any], str | None, dict[str, Any]]:
    """Resolves what ``load_model`` builds for an open_clip spec, without building or downloading anything.

    Returns:
        ``(name, model_cfg, tag, create_kwargs)``: the open_clip model name, the model config the model is built
        from (as exported to ``open_clip_config.json``), the pretrained tag or file (None for random init) and
        the extra keyword arguments for ``open_clip.create_model_and_transforms``.

    QuickGELU: open_clip 3.3's ``ViT-B-16`` / ``ViT-L-14`` / ... configs build ``nn.GELU``, but OpenAI's weights
    (and a few others, e.g. MetaCLIP, DFN) were trained with QuickGELU, ``x·σ(1.702x)``; open_clip only warns about
    the mismatch. When the pretrained tag says ``quick_gelu``, the model is built with ``force_quick_gelu=True``
    and ``model_cfg["quick_gelu"] = True`` is recorded, so an exported model is rebuilt with QuickGELU too.
    """
    name, model_cfg = spec, None
    if spec.startswith("local-dir:"):
        cfg_path = os.path.join(spec[len("local-dir:") :], "open_clip_config.json")
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f"{cfg_path}: missing (a local-dir: model needs open_clip_config.json + weights)")
        with open(cfg_path, encoding="utf-8") as f:
            model_cfg = json.load(f).get("model_cfg")
        if pretrained not in (None, "", "none"):
            raise BackboneLoadError(
                f"{spec}: a local-dir model loads its folder's weights; pretrained {pretrained!r} cannot apply "
                "(leave it unset, or 'none' for a random initialisation of the folder's architecture)"
            )
        kwargs = {"load_weights": False} if pretrained == "none" else {}
        return spec, model_cfg, None, kwargs
    elif spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"{spec}: model config JSON not found")
        with open(spec, encoding="utf-8") as f:
            model_cfg = json.load(f)
        if "model_cfg" in model_cfg:  # an open_clip_config.json was given
            model_cfg = model_cfg["model_cfg"]
        for key in ("embed_dim", "vision_cfg", "text_cfg"):
            if key not in model_cfg:
                raise BackboneLoadError(f"{spec}: not an open_clip model config (missing key {key!r})")
        open_clip.add_model_config(spec)
        name = os.path.splitext(os.path.basename(spec))[0]
    else:
        if name not in open_clip.list_models():
            raise BackboneLoadError(
                f"unknown model {spec!r}: not an open_clip model name (see open_clip.list_models()), "
                "'local-dir:PATH', 'hf:NAME_OR_PATH' or a model-config .json path"
            )
        model_cfg = open_clip.get_model_config(name)
    tag = None if pretrained in (None, "", "none") else pretrained
    kwargs: dict[str, Any] = {}
    tag_cfg = open_clip.get_pretrained_cfg(name, tag) if tag and not spec.startswith("local-dir:") else {}
    if tag_cfg.get("quick_gelu") and not model_cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
        model_cfg = {**model_cfg, "quick_gelu": True}
    return name, model_cfg, tag, kwargs


def _load_open_clip(spec: str, pretrained: str | None, device: str) -> LoadedModel:
    name, model_cfg, tag, kwargs = resolve_open_clip(spec, pretrained)
    model, _, _ = open_clip.create_model_and_transforms(name, pretrained=tag, device=device, **kwargs)
    tokenizer = open_clip.get_tokenizer(name)
    pp = dict(model.visual.preprocess_cfg)
    info = {
        "library": "open_clip",
        "name": spec,
        "pretrained": "none" if kwargs.get("load_weights") is False else tag,
        "model_cfg": model_cfg,
        "preprocess_cfg": pp,
        "quick_gelu": bool(model_cfg.get("quick_gelu", False)),
    }
    return LoadedModel(model, tokenizer, _size(pp["size"]), tuple(pp["mean"]), tuple(pp["std"]), info)


# transformers config type -> (model class, has image tower, has text tower)
HF_CLASSES = {
    "clip": ("CLIPModel", True, True),
    "clip_vision_model": ("CLIPVisionModelWithProjection", True, False),
    "clip_text_model": ("CLIPTextModelWithProjection", False, True),
    "siglip": ("SiglipModel", True, True),
    "siglip2": ("Siglip2Model", True, True),
}
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _hf_preprocess(name: str, model_type: str, config: Any) -> dict[str, Any]:
    """``{"size", "mean", "std", "interpolation", "resize_mode"}`` from the folder's image processor, or the
    family's defaults when it has none. CLIP: resize the short side, centre crop; SigLIP: resize to the square
    ("squash", no crop); SigLIP2 (NaFlex): the largest square of at most ``max_num_patches`` patches."""
    from transformers import AutoImageProcessor

    vision = getattr(config, "vision_config", config)
    clip = model_type.startswith("clip")
    out: dict[str, Any] = {
        "size": int(getattr(vision, "image_size", 0) or 0),
        "mean": list(OPENAI_DATASET_MEAN if clip else (0.5, 0.5, 0.5)),
        "std": list(OPENAI_DATASET_STD if clip else (0.5, 0.5, 0.5)),
        "interpolation": "bicubic" if model_type != "siglip2" else "bilinear",
        "resize_mode": "shortest" if clip else "squash",
    }
    try:
        proc = AutoImageProcessor.from_pretrained(name)
    except (OSError, ValueError):  # a folder without preprocessor_config.json: the family's defaults
        proc = None
    if proc is not None:
        out["mean"], out["std"] = list(proc.image_mean), list(proc.image_std)
        out["interpolation"] = _RESAMPLE.get(int(getattr(proc, "resample", 3)), "bicubic")
        if getattr(proc, "crop_size", None) and getattr(proc, "do_center_crop", False):
            out["size"] = _size(proc.crop_size)
        elif getattr(proc, "size", None):
            out["size"] = _size(proc.size)
    if model_type == "siglip2":
        max_patches = int(getattr(proc, "max_num_patches", 0) or getattr(vision, "num_patches", 256))
        out["size"] = vision.patch_size * math.isqrt(max_patches)
    return out


def _load_hf(name: str, device: str, random_init: bool = False) -> LoadedModel:
    try:
        import transformers
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as e:
        raise ImportError("Hugging Face models need the 'hf' extra: pip install 'radapter[hf]'") from e
    config = AutoConfig.from_pretrained(name)
    model_type = getattr(config, "model_type", "")
    if model_type not in HF_CLASSES:
        raise ValueError(
            f"hf:{name}: a transformers {type(config).__name__} (model_type {model_type!r}); radapter supports "
            f"model types {', '.join(HF_CLASSES)}. Supported: {supported_backbones()}"
        )
    class_name, has_image, has_text = HF_CLASSES[model_type]
    cls = getattr(transformers, class_name, None)
    if cls is None:
        raise ImportError(f"hf:{name}: transformers {transformers.__version__} has no {class_name}; upgrade it")
    model = (cls(config) if random_init else cls.from_pretrained(name)).to(device)
    tokenizer = None
    if has_text:
        text_config = getattr(config, "text_config", config)
        tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(name), text_config.max_position_embeddings)
    pp = _hf_preprocess(name, model_type, config) if has_image else {"size": 0, "mean": [], "std": []}
    info = {
        "library": "transformers",
        "name": f"hf:{name}",
        "pretrained": "none" if random_init else None,
        "architecture": class_name,
        "preprocess_cfg": pp,
    }
    return LoadedModel(model, tokenizer, pp["size"], tuple(pp["mean"]), tuple(pp["std"]), info)


def load_model(spec: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Loads a supported backbone by name or path (see the module docstring for the forms).

    Args:
        spec: An open_clip name, ``local-dir:PATH``, ``hf:NAME_OR_PATH`` or an open_clip model-config JSON.
        pretrained: For open_clip names: a pretrained tag or checkpoint file, None / ``"none"`` for a random
            initialisation. For ``local-dir:`` and ``hf:`` models, which carry their weights: None (the folder's
            weights) or ``"none"`` (a random initialisation of the same architecture); a tag is an error.
    """
    device = str(device)
    if spec.startswith("hf:"):
        if pretrained not in (None, "", "none"):
            raise BackboneLoadError(
                f"{spec}: a transformers model loads its own weights; pretrained {pretrained!r} cannot apply "
                "(leave it unset, or 'none' for a random initialisation of its architecture)"
            )
        loaded = _load_hf(spec[3:], device, random_init=pretrained == "none")
    elif spec.startswith("hf-hub:"):
        raise BackboneLoadError(
            f"{spec!r}: use 'hf:NAME' for transformers models (CLIP, SigLIP, SigLIP2); open_clip hf-hub models load by "
            "'local-dir:' after download. Supported: " + supported_backbones()
        )
    else:
        loaded = _load_open_clip(spec, pretrained, device)
    loaded.model.radapter_base_info = loaded.info
    return loaded

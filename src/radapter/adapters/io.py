"""Saving and loading adapters, and exporting merged models in the backbone's own format.

An adapter folder holds ``adapter_config.json`` (R-Adapter config, base model, sites, library version),
``adapter_model.safetensors`` (live and EMA tensors keyed ``<site>.<name>``) and a model card ``README.md``.
Nothing is pickled.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ..backbones import base_info, get_handler
from ..utils import atomic_save_safetensors, atomic_write_text, load_safetensors
from ..version import __version__
from .apply import apply_r_adapter
from .config import RAdapterConfig
from .r_adapter import adapter_state_dict, get_config, iter_adapters

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
MERGE_INFO_NAME = "radapter_merge.json"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (EMA buffers are not parameters)."""
    model = getattr(model, "module", model)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def print_trainable_parameters(model: nn.Module) -> str:
    """Prints and returns ``trainable params: N || all params: M || trainable%: P`` (peft's format)."""
    trainable, total = count_parameters(model)
    line = f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / max(total, 1):.4f}"
    print(line)
    return line


def _json_safe_info(model: nn.Module) -> dict[str, Any]:
    return json.loads(json.dumps(base_info(model), default=str))


def save_adapter(model: nn.Module, directory: str, extra: dict[str, Any] | None = None) -> None:
    """Writes the adapter (live + EMA tensors), its config and a model card to ``directory``."""
    from ..reports.model_card import adapter_card

    model = getattr(model, "module", model)
    config = get_config(model)
    sites = {s.name: {"dim": s.dim, "wrap": s.wrap_path, "linear": s.linear_path} for s in model.radapter_sites}
    trainable = sum(p.numel() for _, a in iter_adapters(model) for p in a.parameters())
    meta = {
        "radapter_version": __version__,
        "method": "r-adapter",
        "config": config.to_dict(),
        "base_model": _json_safe_info(model),
        "sites": sites,
        "trainable_params": trainable,
        **(extra or {}),
    }
    os.makedirs(directory, exist_ok=True)
    atomic_save_safetensors(
        adapter_state_dict(model),
        os.path.join(directory, WEIGHTS_NAME),
        metadata={"format": "pt", "radapter_version": __version__},
    )
    atomic_write_text(os.path.join(directory, CONFIG_NAME), json.dumps(meta, indent=2))
    atomic_write_text(
        os.path.join(directory, "README.md"),
        adapter_card(
            {
                "base_model": meta["base_model"],
                "config": meta["config"],
                "trainable_params": trainable,
                "library_version": __version__,
                "results": (extra or {}).get("results"),
            }
        ),
    )


def read_adapter_config(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no adapter config (expected {CONFIG_NAME} and {WEIGHTS_NAME} in {directory})")
    with open(path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
    if "config" not in meta:
        raise ValueError(f"{path}: missing key 'config' (the R-Adapter configuration)")
    return meta


def load_adapter(base_model: nn.Module, directory: str) -> nn.Module:
    """Puts the adapter saved in ``directory`` into ``base_model`` (in place) and returns it.

    Raises:
        ValueError: naming every site that is missing, unexpected or of the wrong size for this backbone.
    """
    meta = read_adapter_config(directory)
    config = RAdapterConfig.from_dict(meta["config"], source=os.path.join(directory, CONFIG_NAME))
    saved_sites = meta.get("sites", {})
    handler = get_handler(base_model)
    expected = {s.name: s.dim for s in handler.sites(base_model, config.tower_names, config.blocks, config.positions)}
    problems = []
    missing = sorted(set(saved_sites) - set(expected))
    unexpected = sorted(set(expected) - set(saved_sites))
    if missing:
        problems.append(f"the adapter has sites this backbone lacks: {missing[:6]}{' …' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(
            f"this backbone has sites the adapter lacks: {unexpected[:6]}{' …' if len(unexpected) > 6 else ''}"
        )
    wrong = [
        f"{k} (adapter d={saved_sites[k]['dim']}, backbone d={expected[k]})"
        for k in sorted(set(saved_sites) & set(expected))
        if int(saved_sites[k]["dim"]) != expected[k]
    ]
    if wrong:
        problems.append(f"size mismatch at {wrong[:6]}")
    if problems:
        base = meta.get("base_model", {})
        raise ValueError(
            f"{directory}: adapter does not fit this {handler.library} model "
            f"(adapter was trained on {base.get('library')} {base.get('name', '?')}): " + "; ".join(problems)
        )
    tensors = load_safetensors(os.path.join(directory, WEIGHTS_NAME))
    apply_r_adapter(base_model, config)
    own = adapter_state_dict(base_model)
    missing_keys = sorted(set(own) - set(tensors))
    if missing_keys:
        raise ValueError(f"{os.path.join(directory, WEIGHTS_NAME)}: missing tensors {missing_keys[:6]}")
    with torch.no_grad():
        for site, adapter in iter_adapters(base_model):
            for name, target in adapter.state_dict().items():
                src = tensors[f"{site}.{name}"]
                if src.shape != target.shape:
                    raise ValueError(
                        f"{WEIGHTS_NAME}: {site}.{name} has shape {tuple(src.shape)}, expected {tuple(target.shape)}"
                    )
                target.copy_(src)
    return base_model


def export_merged(merged_model: nn.Module, directory: str, base_info_override: dict[str, Any] | None = None) -> None:
    """Saves a merged model in its backbone's own format, plus a model card and ``radapter_merge.json``.

    open_clip: ``open_clip.create_model_and_transforms("local-dir:DIR")`` loads it;
    transformers: ``CLIPModel.from_pretrained(DIR)``.
    """
    from ..reports.model_card import merged_card

    if getattr(merged_model, "radapter_sites", None):
        raise ValueError("export_merged takes a merged model; call radapter.merge_r_adapter(model, alpha) first")
    info = {**base_info(merged_model), **(base_info_override or {})}
    handler = get_handler(merged_model)
    handler.save_native(merged_model, directory, info)
    merge = getattr(merged_model, "radapter_merged", {})
    meta = {"radapter_version": __version__, "base_model": json.loads(json.dumps(info, default=str)), **merge}
    atomic_write_text(os.path.join(directory, MERGE_INFO_NAME), json.dumps(meta, indent=2))
    atomic_write_text(
        os.path.join(directory, "README.md"),
        merged_card(
            {
                "base_model": meta["base_model"],
                "alpha": merge.get("alpha"),
                "library_version": __version__,
                "config": {},
                "trainable_params": None,
            }
        ),
    )

"""Saving and loading adapters, and exporting merged models in the backbone's own format.

An adapter folder holds ``adapter_config.json`` (R-Adapter config, base model, sites, library version),
``adapter_model.safetensors`` (live and EMA tensors keyed ``<site>.<name>``) and a model card ``README.md``.
Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Any

import torch
from torch import nn

from ..backbones import base_info, get_handler
from ..errors import InputFileError, UserError
from ..utils import atomic_save_safetensors, atomic_write_text, load_safetensors
from ..version import __version__
from .apply import apply_r_adapter, remove_adapters
from .card import PLACEHOLDER_DIR, adapter_card, classifier_section, merged_card
from .config import RAdapterConfig
from .merge import site_linear
from .r_adapter import adapter_state_dict, get_config, iter_adapters

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
MERGE_INFO_NAME = "radapter_merge.json"


class AdapterFileError(UserError, ValueError):
    """An adapter folder is malformed or does not fit the base model it is loaded into."""


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


@torch.no_grad()
def base_fingerprint(model: nn.Module) -> str:
    """A short hash of the base weights the adapters fold into (a strided sample of every adapted linear's
    weight): two backbones of the same shapes but different weights get different fingerprints. Computed on
    the frozen base weights, so it is the same before and after training."""
    model = getattr(model, "module", model)
    digest = hashlib.sha256()
    for site in model.radapter_sites:
        weight = site_linear(model, site).weight.detach().float().flatten()
        sample = weight[:: max(1, weight.numel() // 256)].cpu().numpy()
        digest.update(site.name.encode())
        digest.update(sample.round(6).tobytes())
    return digest.hexdigest()[:16]


def save_adapter(
    model: nn.Module, directory: str, extra: dict[str, Any] | None = None, card: str | None = None
) -> None:
    """Writes the adapter (live + EMA tensors), its config and a model card to ``directory``.

    Args:
        model: A model returned by ``apply_r_adapter`` (DDP wrappers are looked through).
        directory: Created if needed; ``adapter_config.json``, ``adapter_model.safetensors``, ``README.md``.
        extra: More fields for ``adapter_config.json`` (e.g. what the run trained for).
        card: The ``README.md`` text; default: a card with the base model, configuration and usage.
    """
    model = getattr(model, "module", model)
    config = get_config(model)
    sites = {s.name: {"dim": s.dim, "wrap": s.wrap_path, "linear": s.linear_path} for s in model.radapter_sites}
    trainable = sum(p.numel() for _, a in iter_adapters(model) for p in a.parameters())
    meta = {
        "radapter_version": __version__,
        "method": "r-adapter",
        "config": config.to_dict(),
        "base_model": {**_json_safe_info(model), "fingerprint": base_fingerprint(model)},
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
    if card is None:
        card = adapter_card(
            {
                "base_model": meta["base_model"],
                "config": meta["config"],
                "trainable_params": trainable,
                "library_version": __version__,
                "base_code": get_handler(model).base_snippet(meta["base_model"]),
            }
        )
    atomic_write_text(os.path.join(directory, "README.md"), card)


def read_adapter_config(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise InputFileError(f"{path}: no adapter config (expected {CONFIG_NAME} and {WEIGHTS_NAME} in {directory})")
    with open(path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise AdapterFileError(f"{path}: not valid JSON ({e})") from e
    if "config" not in meta:
        raise AdapterFileError(f"{path}: missing key 'config' (the R-Adapter configuration)")
    return meta


def _names(keys: list[str]) -> str:
    return f"{keys[:6]}{' …' if len(keys) > 6 else ''}"


def _warn_other_base(directory: str, saved: dict[str, Any], model: nn.Module) -> None:
    """Warns when the adapter was trained on another base model than ``model`` (same shapes or not)."""
    now = base_info(model)
    problems = []
    for key in ("name", "pretrained"):
        if key in saved and key in now and saved[key] != now[key]:
            problems.append(f"{key} {saved[key]!r} ≠ {now[key]!r}")
    if saved.get("fingerprint") and saved["fingerprint"] != base_fingerprint(model):
        problems.append("the base weights differ (fingerprint of the adapted layers)")
    if problems:
        warnings.warn(
            f"{directory}: this adapter was trained on another base model ({'; '.join(problems)}); "
            "its outputs on this one are not what was evaluated",
            stacklevel=3,
        )


def load_adapter(base_model: nn.Module, directory: str) -> nn.Module:
    """Puts the adapter saved in ``directory`` into ``base_model`` (in place) and returns it.

    Warns when the adapter was trained on a different base model (name, pretrained tag or base weights).

    Raises:
        AdapterFileError: naming every site that is missing, unexpected or of the wrong size for this backbone.
    """
    meta = read_adapter_config(directory)
    config = RAdapterConfig.from_dict(meta["config"], source=os.path.join(directory, CONFIG_NAME))
    saved_sites = meta.get("sites", {})
    handler = get_handler(base_model)
    expected = {s.name: s.dim for s in handler.sites(base_model, config.tower_names, config.blocks, config.positions)}
    problems = []
    # torch's terms: "missing" = the model expects it, the file lacks it; "unexpected" = the other way round
    missing = sorted(set(expected) - set(saved_sites))
    unexpected = sorted(set(saved_sites) - set(expected))
    if missing:
        problems.append(f"missing from the adapter (this backbone has these sites): {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected in the adapter (this backbone lacks these sites): {_names(unexpected)}")
    wrong = [
        f"{k} (adapter d={saved_sites[k]['dim']}, backbone d={expected[k]})"
        for k in sorted(set(saved_sites) & set(expected))
        if int(saved_sites[k]["dim"]) != expected[k]
    ]
    if wrong:
        problems.append(f"size mismatch at {wrong[:6]}")
    if problems:
        base = meta.get("base_model", {})
        raise AdapterFileError(
            f"{directory}: adapter does not fit this {handler.library} model "
            f"(adapter was trained on {base.get('library')} {base.get('name', '?')}): " + "; ".join(problems)
        )
    weights = os.path.join(directory, WEIGHTS_NAME)
    tensors = load_safetensors(weights)
    apply_r_adapter(base_model, config)
    own = adapter_state_dict(base_model)
    missing_keys = sorted(set(own) - set(tensors))
    unexpected_keys = sorted(set(tensors) - set(own))
    if missing_keys or unexpected_keys:
        remove_adapters(base_model)
        raise AdapterFileError(
            f"{weights}: tensors do not match the adapter config: missing {_names(missing_keys)}, "
            f"unexpected {_names(unexpected_keys)}"
        )
    with torch.no_grad():
        for site, adapter in iter_adapters(base_model):
            for name, target in adapter.state_dict().items():
                src = tensors[f"{site}.{name}"]
                if src.shape != target.shape:
                    remove_adapters(base_model)
                    raise AdapterFileError(
                        f"{weights}: {site}.{name} has shape {tuple(src.shape)}, expected {tuple(target.shape)}"
                    )
                target.copy_(src)
    _warn_other_base(directory, meta.get("base_model", {}), base_model)
    return base_model


def export_merged(
    merged_model: nn.Module,
    directory: str,
    base_info_override: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    card: str | None = None,
) -> None:
    """Saves a merged model in its backbone's own format, plus a model card and ``radapter_merge.json``.

    open_clip: ``open_clip.create_model_and_transforms("local-dir:DIR")`` loads it;
    transformers: ``CLIPModel.from_pretrained(DIR)``.

    Args:
        merged_model: A model returned by ``merge_r_adapter`` (or any plain supported model).
        directory: Created if needed.
        base_info_override: Fields to replace in the recorded base-model info.
        extra: More fields for ``radapter_merge.json``.
        card: The ``README.md`` text; default: a card with the base model, the merge α and usage.
    """
    if getattr(merged_model, "radapter_sites", None):
        raise ValueError("export_merged takes a merged model; call radapter.merge_r_adapter(model, alpha) first")
    info = {**base_info(merged_model), **(base_info_override or {})}
    handler = get_handler(merged_model)
    handler.save_native(merged_model, directory, info)
    merge = getattr(merged_model, "radapter_merged", {})
    meta = {
        "radapter_version": __version__,
        "base_model": json.loads(json.dumps(info, default=str)),
        **merge,
        **(extra or {}),
    }
    atomic_write_text(os.path.join(directory, MERGE_INFO_NAME), json.dumps(meta, indent=2))
    if card is None:
        card = merged_card(
            {
                "base_model": meta["base_model"],
                "alpha": merge.get("alpha"),
                "library_version": __version__,
                "config": {},
                "trainable_params": None,
                "load_code": handler.loading_snippet(PLACEHOLDER_DIR, info),
            }
        )
    atomic_write_text(os.path.join(directory, "README.md"), card)


CLASSIFIER_NAME = "classifier.json"
HEAD_NAME = "zero_shot_head.safetensors"


def save_classifier(
    directory: str, model: nn.Module, classnames: list[str], templates: list[str], head: torch.Tensor
) -> None:
    """Writes what classifying with an exported model needs beside its weights: ``classifier.json`` (class
    names, templates), ``zero_shot_head.safetensors`` (``head`` [C, D]) and a usage section in its README.

    Args:
        directory: The exported model's folder.
        model: The model it was exported from (adapted or merged): its handler writes the loading code.
        classnames, templates: What the head was built from.
        head: [C, D] zero-shot head (unit rows).
    """
    if head.shape[0] != len(classnames):
        raise ValueError(f"head has {head.shape[0]} rows for {len(classnames)} class names")
    atomic_write_text(
        os.path.join(directory, CLASSIFIER_NAME),
        json.dumps({"classnames": list(classnames), "templates": list(templates)}, indent=2, ensure_ascii=False),
    )
    atomic_save_safetensors({"head": head.detach().float().contiguous()}, os.path.join(directory, HEAD_NAME))
    readme = os.path.join(directory, "README.md")
    text = open(readme, encoding="utf-8").read() if os.path.isfile(readme) else ""
    marker = text.find("## Citation")
    handler, info = get_handler(model), base_info(model)
    load_code = handler.loading_snippet(PLACEHOLDER_DIR, info)
    section = classifier_section(handler.library, load_code, info.get("preprocess_cfg"))
    text = text[:marker] + section + "\n" + text[marker:] if marker >= 0 else text + "\n" + section
    atomic_write_text(readme, text)

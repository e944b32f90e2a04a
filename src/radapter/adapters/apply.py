"""Putting R-Adapter into a backbone: one adapter per attention and per MLP sub-layer of every chosen block,
everything else frozen (LayerNorms, biases, projections and the logit scale, so τ stays 1/100)."""

from __future__ import annotations

import copy

from torch import nn

from ..backbones import get_handler
from .config import RAdapterConfig
from .r_adapter import AdaptedSubLayer, RAdapter


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def apply_r_adapter(model: nn.Module, config: RAdapterConfig | None = None) -> nn.Module:
    """Inserts R-Adapters into ``model`` in place and freezes every other parameter.

    The adapters are zero-initialised, so right after this call the model computes exactly what the base
    model computes. In train mode the adapters use their live weights, α = 1 and dropping; in eval mode the
    EMA weights and ``config.alpha``.

    Args:
        model: An open_clip ``CLIP``/``CustomTextCLIP`` or a ``transformers.CLIPModel``.
        config: Adapter configuration (defaults: the paper's ImageNet recipe).

    Returns:
        The same model object, with ``model.radapter_config`` and ``model.radapter_sites`` set.
    """
    config = copy.deepcopy(config) if config is not None else RAdapterConfig()
    if getattr(model, "radapter_sites", None) is not None:
        raise ValueError("model already has R-Adapters; merge them (merge_r_adapter) or start from the base model")
    handler = get_handler(model)
    sites = handler.sites(model, config.tower_names, config.blocks, config.positions)
    for p in model.parameters():
        p.requires_grad_(False)
    for site in sites:
        linear = model.get_submodule(site.linear_path)
        adapter = RAdapter(
            site.dim,
            rank=config.rank,
            init_scale=config.init_scale,
            drop_prob=config.drop_prob,
            drop_granularity=config.drop_granularity,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
            config=config,
        )
        adapter.train(model.training)
        _set_submodule(model, site.wrap_path, AdaptedSubLayer(model.get_submodule(site.wrap_path), adapter, site.order))
    model.radapter_config = config
    model.radapter_sites = sites
    return model


def remove_adapters(model: nn.Module) -> nn.Module:
    """Puts the original modules back (without merging) and forgets the adapter bookkeeping."""
    for site in getattr(model, "radapter_sites", None) or []:
        wrapper = model.get_submodule(site.wrap_path)
        if isinstance(wrapper, AdaptedSubLayer):
            _set_submodule(model, site.wrap_path, wrapper.base)
    for attr in ("radapter_sites", "radapter_config"):
        if hasattr(model, attr):
            delattr(model, attr)
    return model

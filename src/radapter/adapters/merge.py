"""Re-parameterisation and re-scaling (Kim et al., ECCV 2024, §3.2 and §3.3c).

The adapter is linear, so it folds into the linear ``y = W x + b`` that feeds it::

    M = I + α · s̃ · F̃          W' = M W = W + α s̃ F̃ W,    b' = M b = b + α s̃ F̃ b

The merged model has exactly the base architecture and parameter names. Because only the adapted layers
differ, ``W(α) = (1 − α) W(0) + α W(1)``: re-scaling is WiSE-FT without storing a second model. α = 0 returns
the base weights bit for bit (the update is skipped, not multiplied by zero). Unlike the authors' release,
the requested α is honoured (theirs always merged at 0.5).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .apply import remove_adapters
from .r_adapter import get_config, iter_adapters


@torch.no_grad()
def merged_linear_weights(
    model: nn.Module, alpha: float | None = None, use_ema: bool = True
) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """``{linear_path: (W', b')}`` for every adapted linear, computed in fp32 and cast to the layer's dtype."""
    model = getattr(model, "module", model)
    alpha = get_config(model).alpha if alpha is None else float(alpha)
    out = {}
    adapters = dict(iter_adapters(model))
    for site in model.radapter_sites:
        wrapper = model.get_submodule(site.wrap_path)
        linear = wrapper.base if site.order == "post" else model.get_submodule(site.linear_path)
        weight, bias = linear.weight, linear.bias
        if alpha == 0.0:
            out[site.linear_path] = (weight.detach().clone(), None if bias is None else bias.detach().clone())
            continue
        delta = alpha * adapters[site.name].delta_weight(use_ema=use_ema).to(weight.device)
        new_w = (weight.float() + delta @ weight.float()).to(weight.dtype)
        new_b = None if bias is None else (bias.float() + delta @ bias.float()).to(bias.dtype)
        out[site.linear_path] = (new_w, new_b)
    return out


@torch.no_grad()
def merge_r_adapter(model: nn.Module, alpha: float | None = None, use_ema: bool = True) -> nn.Module:
    """Returns a plain copy of the base model with the adapters folded into its weights.

    The adapted model is left untouched (training can go on). The result has the base class, the same
    ``state_dict`` keys as the base model and no adapter modules.

    Args:
        model: A model returned by ``apply_r_adapter`` (DDP wrappers are looked through).
        alpha: Re-scaling α (default: ``config.alpha``). 0 gives the base weights bit for bit, 1 the fine-tuned.
        use_ema: Merge the EMA weights ``s̃ F̃`` (the paper) rather than the live ones.
    """
    model = getattr(model, "module", model)
    weights = merged_linear_weights(model, alpha, use_ema)
    merged = copy.deepcopy(model)
    remove_adapters(merged)
    for p in merged.parameters():
        p.requires_grad_(True)  # a plain model, as the backbone's own constructor leaves it
    for path, (w, b) in weights.items():
        linear = merged.get_submodule(path)
        linear.weight.copy_(w)
        if b is not None:
            linear.bias.copy_(b)
    merged.radapter_merged = {"alpha": get_config(model).alpha if alpha is None else float(alpha), "use_ema": use_ema}
    return merged

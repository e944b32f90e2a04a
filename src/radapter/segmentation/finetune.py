"""Which CLIP parameters a segmentation fine-tuning strategy trains (R-Adapter and LoRA are applied elsewhere).

* ``frozen`` — none (the head alone trains on top of zero-shot CLIP);
* ``attention`` — CAT-Seg's recipe: the query and value projection **weights** of every attention layer of the
  chosen towers (``clip_finetune="attention"`` in CAT-Seg: ``q_proj_weight`` / ``v_proj_weight``; the fused
  ``in_proj_bias`` and everything else stay frozen);
* ``full`` — every parameter of the chosen towers (CAT-Seg's own ``full`` trains only the transformer blocks;
  this one also trains embeddings, final LayerNorm and projection). CLIP's logit scale never trains.

Hugging Face CLIP keeps ``q_proj``, ``k_proj`` and ``v_proj`` as separate linears, so ``attention`` just unfreezes
two of them. open_clip's ``nn.MultiheadAttention`` fuses them into one ``in_proj_weight`` [3d, d] (rows: q, k, v)
that cannot be partly frozen, and CAT-Seg's fix — replacing the attention by a subclass with three parameters —
changes the state-dict keys. Here the fused tensor trains under a **row mask** instead:

1. a gradient hook multiplies its gradient by a mask that is 1 on the q and v rows and 0 on the k rows, so the
   optimizer's moment estimates and any gradient clipping see exactly the q/v gradient;
2. :meth:`TrainableSelection.after_step` (call it after every ``optimizer.step()``) copies the frozen k rows back
   from a saved copy — decoupled weight decay (AdamW) would otherwise shrink them.

The model keeps its architecture and key names, so merging, exporting and loading need nothing special;
:attr:`TrainableSelection.num_trainable` counts only the q/v rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..backbones import get_handler

__all__ = ["STRATEGIES", "TrainableSelection", "select_clip_trainable"]

STRATEGIES = ("frozen", "attention", "full")


@dataclass
class TrainableSelection:
    """The CLIP parameters a strategy trains.

    Attributes:
        strategy: The strategy.
        names: Dotted names of the trainable parameters.
        parameters: The parameters (for the optimizer; CAT-Seg gives them 0.01× the head's learning rate).
        num_trainable: Trainable elements (q/v rows only for a masked fused projection).
    """

    strategy: str
    names: list[str] = field(default_factory=list)
    parameters: list[nn.Parameter] = field(default_factory=list)
    num_trainable: int = 0
    _frozen_rows: list[tuple[nn.Parameter, slice, torch.Tensor]] = field(default_factory=list, repr=False)
    _hooks: list = field(default_factory=list, repr=False)

    @torch.no_grad()
    def after_step(self) -> None:
        """Restores the frozen rows of masked fused projections (call after each optimizer step)."""
        for param, rows, saved in self._frozen_rows:
            param[rows].copy_(saved)

    def remove(self) -> None:
        """Removes the gradient hooks (the parameters keep their ``requires_grad``)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()


def _towers(model: nn.Module, towers: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    lib = get_handler(model).library
    out = []
    for t in towers:
        if t not in ("image", "text"):
            raise ValueError(f"towers must be 'image' and/or 'text', got {t!r}")
        if lib == "transformers":
            out += (
                [("vision_model", model.vision_model), ("visual_projection", model.visual_projection)]
                if t == "image"
                else [("text_model", model.text_model), ("text_projection", model.text_projection)]
            )
        elif t == "image":
            out.append(("visual", model.visual))
        elif hasattr(model, "text"):
            out.append(("text", model.text))
        else:
            for name in ("transformer", "token_embedding", "ln_final"):
                out.append((name, getattr(model, name)))
    return out


def _loose_text_params(model: nn.Module, towers: tuple[str, ...]) -> list[tuple[str, nn.Parameter]]:
    """open_clip CLIP keeps the text positional embedding and projection as bare parameters on the model."""
    if "text" not in towers or get_handler(model).library != "open_clip" or hasattr(model, "text"):
        return []
    out = [("positional_embedding", model.positional_embedding)]
    if isinstance(model.text_projection, nn.Parameter):
        out.append(("text_projection", model.text_projection))
    return out


def select_clip_trainable(
    model: nn.Module, strategy: str, towers: tuple[str, ...] = ("image", "text")
) -> TrainableSelection:
    """Sets ``requires_grad`` on ``model``'s parameters for a strategy and returns what trains.

    Every parameter of the model is first frozen; then the strategy's parameters in ``towers`` are unfrozen.

    Args:
        model: A plain open_clip or Hugging Face CLIP.
        strategy: ``"frozen"``, ``"attention"`` (q/v) or ``"full"``.
        towers: Towers the strategy applies to (both, as CAT-Seg).
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {STRATEGIES}, got {strategy!r} (R-Adapter and LoRA come from methods)"
        )
    model = getattr(model, "module", model)
    lib = get_handler(model).library
    for p in model.parameters():
        p.requires_grad_(False)
    sel = TrainableSelection(strategy)
    if strategy == "frozen":
        return sel
    named: list[tuple[str, nn.Parameter]] = []
    for prefix, mod in _towers(model, towers):
        named += [(f"{prefix}.{n}", p) for n, p in mod.named_parameters()]
    named += _loose_text_params(model, towers)
    if strategy == "full":
        for name, p in named:
            p.requires_grad_(True)
            sel.names.append(name)
            sel.parameters.append(p)
            sel.num_trainable += p.numel()
        return sel
    for name, p in named:
        if lib == "transformers":
            if name.endswith(("q_proj.weight", "v_proj.weight")):
                p.requires_grad_(True)
                sel.names.append(name)
                sel.parameters.append(p)
                sel.num_trainable += p.numel()
        elif name.endswith("attn.in_proj_weight"):
            d = p.shape[1]
            if p.shape[0] != 3 * d:
                raise ValueError(f"{name}: expected a fused [3d, d] projection, got {tuple(p.shape)}")
            p.requires_grad_(True)
            mask = torch.ones_like(p)
            mask[d : 2 * d] = 0.0  # rows d..2d are the key projection
            sel._hooks.append(p.register_hook(lambda g, m=mask: g * m.to(g.dtype)))
            sel._frozen_rows.append((p, slice(d, 2 * d), p.detach()[d : 2 * d].clone()))
            sel.names.append(name)
            sel.parameters.append(p)
            sel.num_trainable += 2 * d * d
    if not sel.parameters:
        raise ValueError(f"strategy {strategy!r} found no attention projections in towers {towers}")
    return sel

"""Adapter sites in Hugging Face transformer layers: CLIP / SigLIP encoder layers, and the text encoders open_clip
wraps in ``HFTextEncoder`` (RoBERTa / XLM-RoBERTa, mT5, NLLB's M2M100 encoder).

Each layer gets two adapters, on the attention output projection and on the MLP's second linear:

* pre-LN layers whose sub-layers call their linears as modules (CLIP, SigLIP: ``self_attn.out_proj`` and
  ``mlp.fc2``; M2M100/BART-style: ``self_attn.out_proj`` and ``fc2``) — the adapter wraps the linear ("post");
* BERT-style post-LN layers (RoBERTa): ``LayerNorm(dropout(dense(h)) + x)``. The adapter wraps ``dense``
  ("post"), so it acts on the dense output *before* the norm and merges into ``dense`` exactly. (The paper's
  position "before the residual add" coincides with it; the norm comes after the add in these layers.)
* T5-style layers (mT5): ``x + dropout(o(attn(norm(x))))`` and ``x + dropout(wo(ff(norm(x))))``. The MLP reads
  ``wo.weight`` to pick its dtype, so ``wo`` cannot be replaced by a wrapper; the adapter wraps the sub-layer's
  ``dropout`` instead ("pre": it sees ``o``'s / ``wo``'s output first) and merges into ``o`` / ``wo``.

Anything else is refused with the layer's type and path.
"""

from __future__ import annotations

from torch import nn

from .base import AdapterSite, UnsupportedBackboneError, linear_out_features

_LAYER_LISTS = ("encoder.layer", "encoder.layers", "block", "layers", "layer")


def hf_encoder_layers(encoder: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """``(path, layer)`` of a Hugging Face encoder's layer list (``encoder.layer``, ``block``, ``layers``...)."""
    for attr in _LAYER_LISTS:
        obj = encoder
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList) and len(obj):
            return [(f"{prefix}.{attr}.{i}", layer) for i, layer in enumerate(obj)]
    raise UnsupportedBackboneError(
        f"{prefix}: a {type(encoder).__name__} has none of the layer lists radapter knows ({', '.join(_LAYER_LISTS)})"
    )


def _has(module: nn.Module, dotted: str) -> bool:
    try:
        module.get_submodule(dotted)
    except AttributeError:
        return False
    return True


def _get(module: nn.Module, dotted: str) -> nn.Module:
    return module.get_submodule(dotted)


def hf_layer_sites(path: str, layer: nn.Module, tower: str, index: int) -> list[AdapterSite]:
    """The attention and MLP adapter sites of one Hugging Face layer (see the module docstring)."""
    if _has(layer, "self_attn.out_proj") and (_has(layer, "mlp.fc2") or _has(layer, "fc2")):
        attn_linear = "self_attn.out_proj"
        mlp_linear = "mlp.fc2" if _has(layer, "mlp.fc2") else "fc2"
        pairs = [("attn", attn_linear, attn_linear, "post"), ("mlp", mlp_linear, mlp_linear, "post")]
    elif _has(layer, "attention.output.dense") and _has(layer, "output.dense"):
        pairs = [
            ("attn", "attention.output.dense", "attention.output.dense", "post"),
            ("mlp", "output.dense", "output.dense", "post"),
        ]
    elif _has(layer, "layer.0.SelfAttention.o") and _has(layer, "layer.0.dropout"):
        ff = len(layer.layer) - 1
        if not (_has(layer, f"layer.{ff}.DenseReluDense.wo") and _has(layer, f"layer.{ff}.dropout")):
            raise UnsupportedBackboneError(f"{path}: a T5-style {type(layer).__name__} without a DenseReluDense.wo")
        pairs = [
            ("attn", "layer.0.dropout", "layer.0.SelfAttention.o", "pre"),
            ("mlp", f"layer.{ff}.dropout", f"layer.{ff}.DenseReluDense.wo", "pre"),
        ]
    else:
        raise UnsupportedBackboneError(
            f"{path}: radapter does not know where the attention output projection and MLP output of a "
            f"{type(layer).__name__} are (supported: CLIP/SigLIP, BERT/RoBERTa, T5/mT5 and BART/M2M100 layers)"
        )
    return [
        AdapterSite(
            f"{tower}.{index}.{pos}",
            f"{path}.{wrap}",
            f"{path}.{linear}",
            order,
            linear_out_features(_get(layer, linear), f"{path}.{linear}"),
        )
        for pos, wrap, linear, order in pairs
    ]


def hf_set_grad_checkpointing(model: nn.Module, enable: bool) -> None:
    """``gradient_checkpointing_enable`` with non-reentrant checkpoints (re-entrant ones give adapters inside
    frozen layers no gradient: the frozen layer's inputs do not require grad, so neither does its output)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.x (the gradient_* names are deprecated)
        if enable:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.activation_checkpointing_disable()
    elif enable:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_disable()

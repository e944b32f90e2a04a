"""Training memory: frozen base weights held in bf16, and activation checkpointing.

R-Adapter trains only the adapters; every base weight is frozen. Frozen weights need no gradient, optimizer
state or master copy, so they can be held in bfloat16 on the accelerator (half their fp32 bytes: 0.30 GB of
ViT-B/16's 0.60 GB, 0.86 of ViT-L/14's 1.71 GB) while the adapters, their EMA copies and the optimizer state
stay fp32. The forward must then run under ``torch.autocast(..., dtype=torch.bfloat16)``: autocast casts the
inputs of matmuls and convolutions to bf16 whatever the weights' dtype, and runs LayerNorm in fp32.

Only matrices and higher (``ndim >= 2``: linear, convolution and embedding weights, position embeddings) are
cast: biases, norm weights, LayerScale and the logit scale/bias stay fp32 (under 1 % of the bytes; a bf16
logit scale would move CLIP's temperature by up to 0.4 %).

Merging and export want fp32 weights: :func:`fp32_frozen_weights` puts the original fp32 tensors back (kept on
the CPU by default, so α = 0 still gives the base model bit for bit), merges run in fp32, and on exit the
weights go back to bf16 for further training.

Activation checkpointing: :func:`radapter.backbones.set_grad_checkpointing` (per family, see the handlers).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .base import set_grad_checkpointing

__all__ = [
    "fp32_frozen_weights",
    "frozen_weights_held",
    "hold_frozen_weights",
    "restore_frozen_weights",
    "set_grad_checkpointing",
]


@dataclass
class _Held:
    dtype: torch.dtype
    originals: dict[str, torch.dtype]  # parameter name -> dtype before casting
    masters: dict[str, torch.Tensor] | None  # parameter name -> original tensor (CPU), when kept


_HELD: weakref.WeakKeyDictionary[nn.Module, _Held] = weakref.WeakKeyDictionary()


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def hold_frozen_weights(
    model: nn.Module, dtype: torch.dtype = torch.bfloat16, keep_fp32: bool = True, min_ndim: int = 2
) -> int:
    """Casts every frozen floating-point parameter with ``ndim >= min_ndim`` to ``dtype`` in place.

    Call it after :func:`radapter.apply_r_adapter` (which freezes the base and creates fp32 adapters) and before
    wrapping the model in DDP. Trainable parameters (the adapters) and buffers (their EMA) are not touched.

    Args:
        model: An adapted (or otherwise partly frozen) model.
        dtype: Storage dtype of the frozen weights (bf16; fp16 works the same way under fp16 autocast).
        keep_fp32: Keep a CPU copy of the original tensors, so :func:`fp32_frozen_weights` restores them exactly;
            without it they are upcast from ``dtype`` (merges then start from the rounded weights).
        min_ndim: Cast only parameters with at least this many dimensions.

    Returns:
        The number of parameters (tensors) cast.

    Raises:
        ValueError: if the model has no frozen parameter (e.g. called before ``apply_r_adapter``) or is already held.
    """
    model = _unwrap(model)
    if model in _HELD:
        raise ValueError("hold_frozen_weights: the model's frozen weights are already held in low precision")
    chosen = [
        (n, p)
        for n, p in model.named_parameters()
        if not p.requires_grad and p.is_floating_point() and p.ndim >= min_ndim
    ]
    if not chosen:
        raise ValueError(
            "hold_frozen_weights: the model has no frozen weight matrices; call it after apply_r_adapter (or after "
            "freezing the base)"
        )
    originals = {n: p.dtype for n, p in chosen}
    masters = {n: p.detach().to("cpu", copy=True) for n, p in chosen} if keep_fp32 else None
    with torch.no_grad():
        for _, p in chosen:
            p.data = p.data.to(dtype)
    _HELD[model] = _Held(dtype, originals, masters)
    return len(chosen)


def frozen_weights_held(model: nn.Module) -> torch.dtype | None:
    """The dtype the model's frozen weights are held in by :func:`hold_frozen_weights`, or None."""
    held = _HELD.get(_unwrap(model))
    return None if held is None else held.dtype


def restore_frozen_weights(model: nn.Module) -> None:
    """Puts the original (fp32) frozen weights back — exactly, when they were kept — and forgets the hold."""
    model = _unwrap(model)
    held = _HELD.pop(model, None)
    if held is None:
        raise ValueError("restore_frozen_weights: the model's weights are not held (see hold_frozen_weights)")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, dtype in held.originals.items():
            p = params[name]
            src = held.masters[name] if held.masters is not None else p.data
            p.data = src.to(device=p.device, dtype=dtype)


@contextlib.contextmanager
def fp32_frozen_weights(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block the frozen weights are fp32 again (merge, export, exact evaluation); afterwards they are
    held in the low precision again. A no-op for a model that is not held.

    Example::

        with fp32_frozen_weights(model):
            merged = radapter.merge_r_adapter(model, alpha=0.5)   # fp32 merged weights
    """
    inner = _unwrap(model)
    held = _HELD.get(inner)
    if held is None:
        yield model
        return
    restore_frozen_weights(inner)
    try:
        yield model
    finally:
        params = dict(inner.named_parameters())
        with torch.no_grad():
            for name in held.originals:
                params[name].data = params[name].data.to(held.dtype)
        _HELD[inner] = held

"""What radapter needs to know about a backbone, and a registry of the backbones it supports.

A backbone handler answers, for one model family, everything radapter does differently per family:

* where the adapter sites are (:meth:`BackboneHandler.sites`): for each transformer block of each tower, the
  linear whose output feeds the residual add (attention output projection, MLP second linear), which module to
  wrap so the adapter sees that output, and in which order (see :class:`radapter.adapters.r_adapter.AdaptedSubLayer`);
* how to encode images and token batches into (unnormalised) embeddings, and the logit scale and bias that
  turn cosine similarities into logits (``logit_scale · f·g + logit_bias``; SigLIP has a bias, CLIP none);
* which parameters form the image tower (full fine-tuning) and which modules LoRA targets;
* how to switch activation checkpointing on;
* how to save a plain model in the family's own format, and the Python that loads it back (model cards).

Handlers are chosen by :func:`get_handler`: among the registered handlers whose :meth:`~BackboneHandler.matches`
accepts the model, the one with the highest ``priority`` wins. A new family — or a special case of an existing
one, e.g. an open_clip ``CLIP`` with a new kind of tower — is one new handler class (it may subclass an
existing handler and defer to it) registered with :func:`register_backbone` at a higher priority; no existing
handler is edited.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UserError


@dataclass(frozen=True)
class AdapterSite:
    """One place an adapter goes.

    Attributes:
        name: Stable, backbone-independent key: ``"<tower>.<block>.<position>"``, e.g. ``"image.0.attn"``.
        wrap_path: Dotted path of the module replaced by the adapter wrapper.
        linear_path: Dotted path of the ``nn.Linear`` the adapter folds into at merge time.
        order: ``"post"`` (wrap the linear) or ``"pre"`` (wrap the module that receives its output).
        dim: Output size of the linear (the adapter's d).
    """

    name: str
    wrap_path: str
    linear_path: str
    order: str
    dim: int


class UnsupportedBackboneError(UserError, TypeError):
    """The model (or one of its towers) is not a family radapter can adapt."""


def linear_out_features(module: nn.Module, path: str) -> int:
    """``out_features`` of an ``nn.Linear`` (a clear error naming ``path`` for anything else)."""
    if not isinstance(module, nn.Linear):
        raise UnsupportedBackboneError(
            f"{path}: expected an nn.Linear to merge the adapter into, found a {type(module).__name__}"
        )
    return module.out_features


def block_linear_targets(path: str, block: nn.Module) -> list[str]:
    """LoRA targets of one transformer block: every ``nn.Linear`` in it, by full dotted path.

    ``nn.MultiheadAttention`` reads its ``in_proj_weight`` and ``out_proj.weight`` itself and never calls
    ``out_proj.forward``, so a LoRA layer on ``out_proj`` would never run; the MHA module itself is the target
    (peft adapts the fused input projection and the output projection and merges them before MHA reads them).
    """
    targets: list[str] = []
    skip: list[str] = []
    for name, module in block.named_modules():
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        full = f"{path}.{name}" if name else path
        if isinstance(module, nn.MultiheadAttention):
            targets.append(full)
            skip.append(name)
        elif isinstance(module, nn.Linear):
            targets.append(full)
    return targets


class BackboneHandler:
    """Base class of a backbone family.

    Subclasses set ``name`` (registry key), ``library`` (the export format: ``"open_clip"`` or
    ``"transformers"``) and ``priority``, and implement :meth:`matches`, :meth:`tower_blocks`,
    :meth:`block_sites`, the encoders, :meth:`logit_scale`, :meth:`image_tower_parameters`,
    :meth:`set_grad_checkpointing`, :meth:`save_native` and :meth:`loading_snippet`.
    """

    name: str = ""
    library: str = ""
    priority: int = 0

    def matches(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def describe(self, model: nn.Module) -> str:
        """Short human description of the model for messages, e.g. ``"open_clip CLIP"``."""
        return f"{self.library} {type(model).__name__}"

    # --- adapter sites ---------------------------------------------------------------------------------------
    def towers(self, model: nn.Module) -> tuple[str, ...]:
        """The towers the model has (``"image"``, ``"text"``); single-tower models override it."""
        return ("image", "text")

    def tower_blocks(self, model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
        """``(dotted_path, block)`` for each transformer block of ``tower`` ("image" or "text")."""
        raise NotImplementedError

    def block_sites(self, path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
        raise NotImplementedError

    def sites(
        self, model: nn.Module, towers: tuple[str, ...], blocks: list[int] | None, positions: list[str]
    ) -> list[AdapterSite]:
        """Every adapter site of the chosen towers, blocks and positions, in forward order per tower."""
        have = self.towers(model)
        missing = [t for t in towers if t not in have]
        if missing:
            only = have[0] if len(have) == 1 else "both"
            raise UnsupportedBackboneError(
                f"a {self.describe(model)} has no {'/'.join(missing)} tower (it has: {', '.join(have)}); "
                f"use RAdapterConfig(towers={only!r})"
            )
        out: list[AdapterSite] = []
        for tower in towers:
            tower_blocks = self.tower_blocks(model, tower)
            n = len(tower_blocks)
            if blocks is not None:
                bad = [b for b in blocks if not -n <= b < n]
                if bad:
                    raise ValueError(f"RAdapterConfig.blocks: {bad} out of range for the {tower} tower ({n} blocks)")
            chosen = range(n) if blocks is None else sorted({b % n for b in blocks})
            for i in chosen:
                path, block = tower_blocks[i]
                out.extend(s for s in self.block_sites(path, block, tower, i) if s.name.split(".")[-1] in positions)
        return out

    def lora_targets(self, model: nn.Module) -> list[str]:
        """Full dotted paths of the modules LoRA adapts: the linears of every transformer block of both towers
        (the blocks R-Adapter adapts), with ``nn.MultiheadAttention`` targeted as a whole."""
        out: list[str] = []
        for tower in self.towers(model):
            for path, block in self.tower_blocks(model, tower):
                out.extend(block_linear_targets(path, block))
        return out

    # --- forward ---------------------------------------------------------------------------------------------
    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        raise NotImplementedError

    def logit_scale(self, model: nn.Module) -> torch.Tensor | None:
        """The multiplier of cosine similarities, already exponentiated (CLIP: 100); None for a single-tower
        model, which has none."""
        raise NotImplementedError

    def logit_bias(self, model: nn.Module) -> torch.Tensor | None:
        """The additive logit bias (SigLIP's b, about −10 … −17); None where the model has none (CLIP)."""
        bias = getattr(model, "logit_bias", None)
        return bias if isinstance(bias, torch.Tensor) else None

    # --- training --------------------------------------------------------------------------------------------
    def image_tower_parameters(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """``(full dotted name, parameter)`` of the image tower and its projection (what ``ft`` trains)."""
        raise NotImplementedError

    def set_grad_checkpointing(self, model: nn.Module, enable: bool = True) -> None:
        """Activation checkpointing of every transformer block of both towers (non-reentrant, so adapters
        inside frozen blocks still get gradients and the dropping masks are re-drawn identically)."""
        raise NotImplementedError

    # --- export ----------------------------------------------------------------------------------------------
    def save_native(self, model: nn.Module, directory: str, info: dict[str, Any]) -> None:
        raise NotImplementedError

    def loading_snippet(self, directory: str, info: dict[str, Any]) -> str:
        """Python that loads a model exported to ``directory`` with the plain library (for model cards)."""
        raise NotImplementedError

    def base_snippet(self, info: dict[str, Any]) -> str:
        """Python that builds the base model described by ``info`` as ``base`` with the plain library."""
        raise NotImplementedError


_REGISTRY: dict[str, BackboneHandler] = {}


def register_backbone(cls: type[BackboneHandler]) -> type[BackboneHandler]:
    """Class decorator: registers a handler under its ``name`` (re-registering a name replaces it)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a backbone handler needs a non-empty 'name'")
    _REGISTRY[cls.name] = cls()
    return cls


def registered_handlers() -> list[BackboneHandler]:
    """The registered handlers, highest priority first."""
    return sorted(_REGISTRY.values(), key=lambda h: -h.priority)


def supported_backbones() -> str:
    return (
        "open_clip CLIP / CustomTextCLIP / CoCa whose towers are transformers — open_clip's native "
        "VisionTransformer and TextTransformer, timm ViT-family trunks (SigLIP, SigLIP2, EVA, PE-Core, ViTamin's "
        "transformer stage, Swin) and Hugging Face text encoders (RoBERTa/XLM-R, mT5, NLLB) — and transformers "
        "CLIPModel, CLIPVisionModelWithProjection, CLIPTextModelWithProjection, SiglipModel, Siglip2Model"
    )


def get_handler(model: nn.Module) -> BackboneHandler:
    """The handler of ``model``'s family (DDP wrappers are looked through): the matching handler of highest
    priority. Two matching handlers of equal priority are a registration error."""
    model = getattr(model, "module", model)
    found = [h for h in registered_handlers() if h.matches(model)]
    if not found:
        raise UnsupportedBackboneError(
            f"radapter does not support a {type(model).__module__}.{type(model).__name__}; "
            f"supported: {supported_backbones()}"
        )
    if len(found) > 1 and found[0].priority == found[1].priority:
        tied = [h.name for h in found if h.priority == found[0].priority]
        raise RuntimeError(
            f"backbone handlers {tied} all match a {type(model).__name__} at priority {found[0].priority}; "
            "give the more specific one a higher priority"
        )
    return found[0]


def encode_image(model: nn.Module, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Image embeddings of any supported model (L2-normalised when ``normalize``)."""
    feats = get_handler(model).encode_image(getattr(model, "module", model), images)
    return torch.nn.functional.normalize(feats, dim=-1) if normalize else feats


def encode_text(model: nn.Module, tokens: Any, normalize: bool = False) -> torch.Tensor:
    """Text embeddings of a token batch (an open_clip token tensor or a Hugging Face ``BatchEncoding``)."""
    feats = get_handler(model).encode_text(getattr(model, "module", model), tokens)
    return torch.nn.functional.normalize(feats, dim=-1) if normalize else feats


def logit_scale(model: nn.Module) -> torch.Tensor | None:
    """``exp(model's log scale)`` (CLIP: 100); None for single-tower models."""
    return get_handler(model).logit_scale(getattr(model, "module", model))


def logit_bias(model: nn.Module) -> torch.Tensor | None:
    """The model's logit bias (SigLIP) or None (CLIP)."""
    return get_handler(model).logit_bias(getattr(model, "module", model))


def set_grad_checkpointing(model: nn.Module, enable: bool = True) -> None:
    """Turns activation checkpointing of every transformer block on (or off), for any supported model.

    Checkpointing re-runs each block's forward during backward; radapter's adapters draw their dropping masks
    from torch's RNG, whose state ``torch.utils.checkpoint`` restores for the recompute, so the masks, the loss
    and the gradients are the same as without it (tested). Costs about one extra forward per step.
    """
    get_handler(model).set_grad_checkpointing(getattr(model, "module", model), enable)


def base_info(model: nn.Module) -> dict[str, Any]:
    """What radapter knows of where ``model`` came from (set by :func:`radapter.backbones.load_model`)."""
    model = getattr(model, "module", model)
    info = dict(getattr(model, "radapter_base_info", None) or {})
    info.setdefault("library", get_handler(model).library)
    return info


def warn_skipped(what: str, skipped: list[str]) -> None:
    """One warning naming the parts of a hybrid tower that get no adapter."""
    if skipped:
        shown = ", ".join(skipped[:8]) + (f", … ({len(skipped)} in all)" if len(skipped) > 8 else "")
        warnings.warn(f"{what}: no adapters in the non-transformer parts {shown}", UserWarning, stacklevel=3)

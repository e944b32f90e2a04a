"""What radapter needs to know about a backbone, and a registry of the backbones it supports.

A backbone handler answers three questions for one model family:

* where the adapter sites are: for each transformer block of each tower, the linear whose output feeds the
  residual add (attention output projection, MLP second linear), which module to wrap so the adapter sees
  that output, and in which order (see :class:`radapter.adapters.r_adapter.AdaptedSubLayer`);
* how to encode images and token batches into (unnormalised) embeddings;
* how to save a plain model in the family's own format.

Adding a family (timm towers, SigLIP) is one new handler registered with :func:`register_backbone`.
"""

from __future__ import annotations

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


class BackboneHandler:
    """Base class of a backbone family. Subclasses implement every method."""

    library: str = ""

    def matches(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def tower_blocks(self, model: nn.Module, tower: str) -> list[tuple[str, nn.Module]]:
        """``(dotted_path, block)`` for each transformer block of ``tower`` ("image" or "text")."""
        raise NotImplementedError

    def block_sites(self, path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
        raise NotImplementedError

    def encode_image(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, model: nn.Module, tokens: Any) -> torch.Tensor:
        raise NotImplementedError

    def logit_scale(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def save_native(self, model: nn.Module, directory: str, info: dict[str, Any]) -> None:
        raise NotImplementedError

    def sites(
        self, model: nn.Module, towers: tuple[str, ...], blocks: list[int] | None, positions: list[str]
    ) -> list[AdapterSite]:
        out: list[AdapterSite] = []
        for tower in towers:
            tower_blocks = self.tower_blocks(model, tower)
            n = len(tower_blocks)
            chosen = range(n) if blocks is None else sorted({b % n for b in blocks if -n <= b < n})
            if blocks is not None:
                bad = [b for b in blocks if not -n <= b < n]
                if bad:
                    raise ValueError(f"RAdapterConfig.blocks: {bad} out of range for the {tower} tower ({n} blocks)")
            for i in chosen:
                path, block = tower_blocks[i]
                out.extend(s for s in self.block_sites(path, block, tower, i) if s.name.split(".")[-1] in positions)
        return out


_REGISTRY: dict[str, BackboneHandler] = {}


def register_backbone(cls: type[BackboneHandler]) -> type[BackboneHandler]:
    """Class decorator: registers a handler under its ``library`` key."""
    _REGISTRY[cls.library] = cls()
    return cls


def supported_backbones() -> str:
    return (
        "open_clip CLIP / CustomTextCLIP with native VisionTransformer and TextTransformer towers "
        "(e.g. ViT-B-16, ViT-L-14), and transformers CLIPModel"
    )


def get_handler(model: nn.Module) -> BackboneHandler:
    """The handler of ``model``'s family (DDP wrappers are looked through)."""
    model = getattr(model, "module", model)
    for handler in _REGISTRY.values():
        if handler.matches(model):
            return handler
    raise UnsupportedBackboneError(
        f"radapter does not support a {type(model).__module__}.{type(model).__name__}; supported: {supported_backbones()}"
    )


def encode_image(model: nn.Module, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Image embeddings of any supported model (L2-normalised when ``normalize``)."""
    feats = get_handler(model).encode_image(getattr(model, "module", model), images)
    return torch.nn.functional.normalize(feats, dim=-1) if normalize else feats


def encode_text(model: nn.Module, tokens: Any, normalize: bool = False) -> torch.Tensor:
    """Text embeddings of a token batch (an open_clip token tensor or a Hugging Face ``BatchEncoding``)."""
    feats = get_handler(model).encode_text(getattr(model, "module", model), tokens)
    return torch.nn.functional.normalize(feats, dim=-1) if normalize else feats


def base_info(model: nn.Module) -> dict[str, Any]:
    """What radapter knows of where ``model`` came from (set by :func:`radapter.backbones.load_model`)."""
    model = getattr(model, "module", model)
    info = dict(getattr(model, "radapter_base_info", None) or {})
    info.setdefault("library", get_handler(model).library)
    return info

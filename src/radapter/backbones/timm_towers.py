"""open_clip image towers built from a timm trunk (``open_clip.timm_model.TimmModel``).

open_clip 3.3 builds 78 of its 144 model configs this way: SigLIP / SigLIP2 and PE-Core (timm
``VisionTransformer`` / ``Eva`` with a MAP pooling head), EVA01/EVA02 (``Eva``), MobileCLIP-B and ViTamin (ViTs
whose patch embedding is a convolutional network), Swin, and the convolutional ConvNeXt and FastViT.

A *transformer block* here is a module with an ``attn`` child whose output projection ``proj`` is an
``nn.Linear`` and an ``mlp`` child whose last linear is ``fc2`` (``Mlp``, ``SwiGLU``, ``GluMlp``) or ``w2``
(ViTamin's ``GeGluMlp``) — timm's ``Block``, ``EvaBlock``, ``RelPosBlock``, ``SwinTransformerBlock`` and their
post-norm variants. timm calls these linears as modules, so the adapter wraps each linear itself ("post"
order) and sits directly on its output: whatever follows (dropout, LayerScale, EVA's ``gamma``, a post-norm,
the residual add) comes after the adapter, so ``A(W x + b) = (M W) x + M b`` merges exactly into the linear.
(A norm *between* the linear and the adapter would not merge; in these blocks none can be, because the adapter
is the linear's direct consumer.) For pre-norm blocks — every open_clip config — this is exactly the paper's
position, right before the residual add; for post-norm blocks the adapter sits before the norm.

Not adapted: the pooling heads (SigLIP's / PE-Core's attention pool, ``head``), patch-merging layers, and the
convolutional parts of hybrids (ViTamin's MbConv stages, MobileCLIP-B's conv stem), which get a warning.
Towers with no transformer block at all (ConvNeXt; FastViT, whose attention blocks use 1×1-convolution MLPs on
NCHW maps) are refused.
"""

from __future__ import annotations

from collections import Counter

from timm.layers import use_reentrant_ckpt
from torch import nn

from .base import AdapterSite, UnsupportedBackboneError, linear_out_features, warn_skipped

MLP_OUT_NAMES = ("fc2", "w2")


def _mlp_out_name(mlp: nn.Module) -> str | None:
    for name in MLP_OUT_NAMES:
        if isinstance(getattr(mlp, name, None), nn.Linear):
            return name
    return None


def is_transformer_block(module: nn.Module) -> bool:
    """A block whose attention output projection and MLP output are ``nn.Linear`` layers called as modules."""
    attn, mlp = getattr(module, "attn", None), getattr(module, "mlp", None)
    return (
        isinstance(attn, nn.Module)
        and isinstance(getattr(attn, "proj", None), nn.Linear)
        and not isinstance(attn, nn.MultiheadAttention)
        and isinstance(mlp, nn.Module)
        and _mlp_out_name(mlp) is not None
    )


def _looks_like_block(module: nn.Module) -> bool:
    # timm names its residual units *Block (MbConvLNBlock, ConvNeXtBlock, RepMixerBlock, AttentionBlock) and
    # ResNets use Bottleneck / BasicBlock; used only to tell the user what was skipped.
    name = type(module).__name__
    return name.endswith("Block") or name in ("Bottleneck", "BasicBlock")


def trunk_blocks(trunk: nn.Module, prefix: str) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """``([(path, transformer_block)], [skipped parts])`` of a timm trunk, in forward (registration) order."""
    blocks: list[tuple[str, nn.Module]] = []
    other: list[tuple[str, nn.Module]] = []
    inside: list[str] = []
    for name, module in trunk.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if is_transformer_block(module):
            blocks.append((f"{prefix}.{name}", module))
            inside.append(name)
        elif name and _looks_like_block(module):
            other.append((f"{prefix}.{name}", module))
            inside.append(name)
    skipped: list[str] = []
    stem = getattr(getattr(trunk, "patch_embed", None), "backbone", None)
    if isinstance(stem, nn.Module):
        skipped.append(f"{prefix}.patch_embed.backbone ({type(stem).__name__}, convolutional)")
        other = [(p, m) for p, m in other if not p.startswith(f"{prefix}.patch_embed.backbone.")]
    for cls, n in Counter(type(m).__name__ for _, m in other).items():
        where = sorted({p.rsplit(".", 1)[0] for p, m in other if type(m).__name__ == cls})
        skipped.append(f"{n} {cls} in {', '.join(where[:3])}{' …' if len(where) > 3 else ''}")
    return blocks, skipped


def timm_tower_blocks(visual: nn.Module, prefix: str = "visual") -> list[tuple[str, nn.Module]]:
    """Transformer blocks of an open_clip ``TimmModel``; warns about skipped parts of hybrids, refuses towers
    without any transformer block."""
    trunk = visual.trunk
    model_name = (getattr(trunk, "pretrained_cfg", None) or {}).get("architecture")
    label = f"timm {type(trunk).__name__}" + (f" ({model_name!r})" if model_name else "")
    blocks, skipped = trunk_blocks(trunk, f"{prefix}.trunk")
    if not blocks:
        found = f" (it has {'; '.join(skipped)})" if skipped else ""
        hint = ""
        if any("AttentionBlock" in s or "RepMixer" in s for s in skipped):
            hint = (
                " FastViT's attention blocks (MobileCLIP-S*) mix tokens on NCHW maps and use 1×1-convolution MLPs, "
                "which an adapter on the last dimension cannot follow."
            )
        raise UnsupportedBackboneError(
            f"the image tower is a {label} with no transformer blocks{found}.{hint} radapter adapts transformer "
            "blocks whose attention output projection and MLP output are nn.Linear layers (timm ViT, SigLIP, "
            "EVA, PE-Core, ViTamin, Swin; open_clip's own ViT). Use RAdapterConfig(towers='text') to adapt only "
            "the text tower."
        )
    warn_skipped(f"image tower {label}: adapting its {len(blocks)} transformer blocks", skipped)
    return blocks


def timm_block_sites(path: str, block: nn.Module, tower: str, index: int) -> list[AdapterSite]:
    proj = f"{path}.attn.proj"
    mlp_out = f"{path}.mlp.{_mlp_out_name(block.mlp)}"
    d_attn = linear_out_features(block.attn.proj, proj)
    d_mlp = linear_out_features(getattr(block.mlp, mlp_out.rsplit(".", 1)[1]), mlp_out)
    return [
        AdapterSite(f"{tower}.{index}.attn", proj, proj, "post", d_attn),
        AdapterSite(f"{tower}.{index}.mlp", mlp_out, mlp_out, "post", d_mlp),
    ]


def set_timm_grad_checkpointing(visual: nn.Module, enable: bool) -> None:
    """timm's own checkpointing of the trunk. Refuses re-entrant checkpointing (``TIMM_REENTRANT_CKPT=1``): with
    every base weight frozen, a re-entrant checkpoint's output does not require grad, so the adapters inside
    would silently get no gradient."""
    if enable and use_reentrant_ckpt():
        raise RuntimeError(
            "timm is set to re-entrant activation checkpointing (TIMM_REENTRANT_CKPT or "
            "timm.layers.set_reentrant_ckpt(True)); adapters in frozen blocks would get no gradient. "
            "Unset it (timm.layers.set_reentrant_ckpt(False))."
        )
    try:
        visual.trunk.set_grad_checkpointing(enable)
    except Exception as e:  # open_clip's TimmModel only logs this; a silent no-op would hide the memory cost
        raise RuntimeError(f"timm {type(visual.trunk).__name__} does not support activation checkpointing: {e}") from e

"""Dense (per-patch) image features from a CLIP image tower, at any input size.

CLIP's last block mixes every patch with every other through query–key attention, which is what makes its
patch tokens poor local descriptors. MaskCLIP (Zhou et al., ECCV 2022) and CAT-Seg (Cho et al., CVPR 2024)
replace the last block's attention by its **value path** — each token attends only to itself::

    h      = LN1(x)
    a      = W_o (W_v h + b_v) + b_o                      (value, then output projection: no q·k, no softmax)
    x'     = r + ls_1(a)                                   r: the residual, see below
    x''    = x' + ls_2(MLP(LN2(x')))
    f      = LN_post(x'') · P                              per patch, in the joint image–text space

The residual ``r`` is CAT-Seg's choice for CLS-pooled towers, ``x_cls`` (the class token, broadcast to every
patch: ``v.transpose(1, 0) + x[:1]`` in its ``forward_dense``); for average-pooled towers (``pool_type="avg"``,
e.g. the world CLIP) the class token is not what the embedding is read from, and the patch's own token is used
(``residual="token"``; ``"none"`` drops it). Earlier blocks run unchanged; their outputs are the intermediate
features CAT-Seg's upsampling decoder is guided by.

The value path calls the block's own sub-modules — ``ls_1`` / ``ls_2`` (open_clip) and ``self_attn.v_proj`` /
``self_attn.out_proj`` / ``mlp`` (Hugging Face) — so an R-Adapter inserted by :func:`radapter.apply_r_adapter`
(it wraps ``ls_1``/``ls_2`` in open_clip, ``out_proj``/``fc2`` in Hugging Face) acts in dense mode exactly as in
the normal forward, and merging it into the weights gives the same features. open_clip's attention is
``nn.MultiheadAttention``, which has no value/output sub-module to call: its fused ``in_proj_weight`` and
``out_proj.weight`` are read directly (a peft LoRA wrapper around it is resolved to its effective weights).

Positional embeddings are interpolated bicubically (``align_corners=False``, as CAT-Seg and Hugging Face do) to
the patch grid of the input, which may be any size divisible by the patch size and need not be square.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

from ..backbones import UnsupportedBackboneError, get_handler

__all__ = ["DenseFeatures", "dense_features", "interpolate_pos_embed", "vision_info"]

RESIDUALS = ("auto", "cls", "token", "none")


@dataclass
class DenseFeatures:
    """What the segmentation head consumes.

    Attributes:
        features: [B, D, h, w] patch embeddings in the joint space (not normalised).
        intermediates: Outputs of the requested earlier blocks, each [B, width, h, w] (class token dropped).
        grid: (h, w), the patch grid.
    """

    features: torch.Tensor
    intermediates: list[torch.Tensor]
    grid: tuple[int, int]


@dataclass(frozen=True)
class VisionInfo:
    """Facts about an image tower: ``library``, ``patch`` size, ``grid`` of its positional embedding,
    ``width``, joint ``embed_dim``, number of ``layers`` and ``pool`` ("tok" or "avg")."""

    library: str
    patch: int
    grid: tuple[int, int]
    width: int
    embed_dim: int
    layers: int
    pool: str


def vision_info(model: nn.Module) -> VisionInfo:
    """The image tower's patch size, grid, width, joint dimension, depth and pooling."""
    model = getattr(model, "module", model)
    library = get_handler(model).library
    if library == "open_clip":
        v = model.visual
        if not isinstance(v, VisionTransformer):
            raise UnsupportedBackboneError(f"dense features need open_clip's VisionTransformer, got {type(v).__name__}")
        if getattr(v, "attn_pool", None) is not None:
            raise UnsupportedBackboneError("dense features do not support open_clip towers with an attentional pooler")
        embed = v.proj.shape[1] if v.proj is not None else v.conv1.out_channels
        pool = "avg" if v.pool_type == "avg" else "tok"
        return VisionInfo(
            library,
            v.patch_size[0],
            tuple(v.grid_size),
            v.conv1.out_channels,
            embed,
            len(v.transformer.resblocks),
            pool,
        )
    vm = model.vision_model
    cfg = model.config.vision_config
    g = cfg.image_size // cfg.patch_size
    return VisionInfo(
        library,
        cfg.patch_size,
        (g, g),
        cfg.hidden_size,
        model.visual_projection.out_features,
        len(vm.encoder.layers),
        "tok",
    )


def interpolate_pos_embed(pos: torch.Tensor, grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """[1 + g_h·g_w, C] -> [1 + n_h·n_w, C]: bicubic resize of the patch part, class position kept."""
    if tuple(grid) == tuple(new_grid):
        return pos
    cls, patches = pos[:1], pos[1:]
    c = patches.shape[-1]
    patches = patches.reshape(1, grid[0], grid[1], c).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=new_grid, mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(-1, c).to(pos.dtype)
    return torch.cat([cls, patches], dim=0)


def _resolve_residual(residual: str, pool: str) -> str:
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
    if residual == "auto":
        return "token" if pool == "avg" else "cls"
    return residual


def _apply_residual(x: torch.Tensor, a: torch.Tensor, residual: str) -> torch.Tensor:
    if residual == "cls":
        return x[:, :1] + a
    if residual == "token":
        return x + a
    return a


def _mha_weights(attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """(in_proj W, b, out_proj W, b) of an ``nn.MultiheadAttention``, or of peft's LoRA wrapper around one.

    peft's ``lora.MultiheadAttention`` has no forward of its own to reuse: its forward merges the LoRA update into
    the weights, calls the attention and unmerges. The same is done here, keeping the merged tensors (they carry
    the gradient to the LoRA factors), so dense mode sees exactly the weights peft's forward uses. (peft 0.21
    adds the ``out_proj`` update twice in that merge — once in the MHA merge, once in the wrapped linear's — and
    ``merge_and_unload`` does the same; matching it keeps dense mode consistent with the trained model.)
    """
    lora_a = getattr(attn, "lora_A", None)
    if lora_a is not None and hasattr(attn, "get_base_layer"):
        base = attn.get_base_layer()
        active = [a for a in attn.active_adapters if a in lora_a]
        if getattr(attn, "merged", False) or getattr(attn, "disable_adapters", False) or not active:
            out = base.out_proj.get_base_layer()
            return base.in_proj_weight, base.in_proj_bias, out.weight, out.bias
        attn.merge(adapter_names=active)
        try:
            out = base.out_proj.get_base_layer()
            return base.in_proj_weight, base.in_proj_bias, out.weight, out.bias
        finally:
            attn.unmerge()
    if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise UnsupportedBackboneError(
            f"dense mode needs nn.MultiheadAttention with a fused in_proj, got {type(attn).__name__}"
        )
    return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias


def _open_clip_dense_block(block: nn.Module, x: torch.Tensor, residual: str) -> torch.Tensor:
    if not isinstance(block, ResidualAttentionBlock):
        raise UnsupportedBackboneError(
            f"dense mode supports open_clip's ResidualAttentionBlock, got {type(block).__name__}"
        )
    w_in, b_in, w_out, b_out = _mha_weights(block.attn)
    d = w_out.shape[0]
    h = block.ln_1(x)
    v = F.linear(h, w_in[2 * d :], None if b_in is None else b_in[2 * d :])
    a = F.linear(v, w_out, b_out)
    x = _apply_residual(x, block.ls_1(a), residual)  # ls_1 may be an R-Adapter wrapper ("pre": adapter, then ls_1)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _open_clip_dense(model: nn.Module, images: torch.Tensor, layers: tuple[int, ...], residual: str, dense_last: bool):
    v = model.visual
    info = vision_info(model)
    b, _, hh, ww = images.shape
    grid = (hh // info.patch, ww // info.patch)
    x = v.conv1(images)  # [B, width, h, w]
    x = x.flatten(2).transpose(1, 2)
    cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(b, 1, -1)
    x = torch.cat([cls, x], dim=1)
    x = x + interpolate_pos_embed(v.positional_embedding, info.grid, grid).to(x.dtype)
    x = v.ln_pre(x)  # patch dropout is skipped: dense features need every patch
    blocks = v.transformer.resblocks
    batch_first = getattr(v.transformer, "batch_first", True)
    inter = []
    for i, blk in enumerate(blocks):
        last = i == len(blocks) - 1
        if last and dense_last:
            x = _open_clip_dense_block(blk, x, residual)
        else:
            x = blk(x) if batch_first else blk(x.transpose(0, 1)).transpose(0, 1)
        if i in layers:
            inter.append(x[:, 1:])
    if dense_last:
        tokens = v.ln_post(x[:, 1:])
    elif v.final_ln_after_pool:
        pooled = x[:, 1:].mean(1) if info.pool == "avg" else x[:, 0]
        tokens = v.ln_post(pooled)[:, None]
    else:
        y = v.ln_post(x)
        tokens = (y[:, 1:].mean(1) if info.pool == "avg" else y[:, 0])[:, None]
    if v.proj is not None:
        tokens = tokens @ v.proj
    return tokens, inter, grid


def _hf_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # transformers 4.x: forward(hidden, attention_mask, causal_attention_mask, ...) -> tuple; 5.x: (hidden,
    # attention_mask, **kwargs) -> tensor.
    params = inspect.signature(layer.forward).parameters
    out = layer(x, None, None) if "causal_attention_mask" in params else layer(x, None)
    return out[0] if isinstance(out, tuple) else out


def _hf_dense_block(layer: nn.Module, x: torch.Tensor, residual: str) -> torch.Tensor:
    attn = layer.self_attn
    a = attn.out_proj(attn.v_proj(layer.layer_norm1(x)))  # module calls: adapters / LoRA on them apply
    x = _apply_residual(x, a, residual)
    return x + layer.mlp(layer.layer_norm2(x))


def _hf_dense(model: nn.Module, images: torch.Tensor, layers: tuple[int, ...], residual: str, dense_last: bool):
    vm = model.vision_model
    emb = vm.embeddings
    info = vision_info(model)
    b, _, hh, ww = images.shape
    grid = (hh // info.patch, ww // info.patch)
    x = emb.patch_embedding(images.to(emb.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
    x = torch.cat([emb.class_embedding.to(x.dtype).view(1, 1, -1).expand(b, 1, -1), x], dim=1)
    x = x + interpolate_pos_embed(emb.position_embedding.weight, info.grid, grid).to(x.dtype)
    x = vm.pre_layrnorm(x)
    inter = []
    n = len(vm.encoder.layers)
    for i, layer in enumerate(vm.encoder.layers):
        x = _hf_dense_block(layer, x, residual) if (i == n - 1 and dense_last) else _hf_layer(layer, x)
        if i in layers:
            inter.append(x[:, 1:])
    tokens = vm.post_layernorm(x[:, 1:]) if dense_last else vm.post_layernorm(x[:, 0])[:, None]
    return model.visual_projection(tokens), inter, grid


def dense_features(
    model: nn.Module,
    images: torch.Tensor,
    layers: tuple[int, ...] = (),
    residual: str = "auto",
    dense_last: bool = True,
) -> DenseFeatures:
    """Per-patch joint-space features of ``images`` and intermediate block outputs.

    Args:
        model: open_clip ``CLIP``/``CustomTextCLIP`` (native ViT) or ``transformers.CLIPModel``, with or without
            R-Adapters / LoRA.
        images: Normalised [B, 3, H, W]; H and W must be multiples of the patch size.
        layers: Indices of the blocks whose outputs to return, in this order (negative counts from the end).
        residual: Residual of the dense last block: ``"cls"`` (CAT-Seg), ``"token"``, ``"none"`` or ``"auto"``
            (``"token"`` for average-pooled towers, ``"cls"`` otherwise).
        dense_last: False runs the last block normally and returns the *pooled* embedding as a 1×1 map (what
            ``encode_image`` returns at the native size; used to check this forward against the library's).

    Returns:
        :class:`DenseFeatures` with ``features`` [B, D, h, w] (h = H / patch) or [B, D, 1, 1].
    """
    model = getattr(model, "module", model)
    info = vision_info(model)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
    if images.shape[-2] % info.patch or images.shape[-1] % info.patch:
        raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the patch size {info.patch}")
    wanted = [i % info.layers for i in layers]
    collect = tuple(sorted(set(wanted)))
    res = _resolve_residual(residual, info.pool)
    fn = _open_clip_dense if info.library == "open_clip" else _hf_dense
    tokens, inter, grid = fn(model, images, collect, res, dense_last)
    inter = [inter[collect.index(i)] for i in wanted]  # requested order, repeats allowed
    b = images.shape[0]
    fgrid = grid if dense_last else (1, 1)
    feats = tokens.transpose(1, 2).reshape(b, -1, *fgrid)
    inter = [t.transpose(1, 2).reshape(b, -1, *grid) for t in inter]
    return DenseFeatures(feats, inter, grid)

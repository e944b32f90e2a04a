"""Analytic FLOP count of one training step, from an open_clip model config (no tracing).

Only matrix products are counted, 2 FLOPs per multiply-add:

* per transformer block and token: q/k/v projection ``3d²``, attention scores ``N·d`` and weighted sum ``N·d``,
  output projection ``d²``, MLP ``2·d·m`` (m = MLP width) multiply-adds; the vision stem (patch convolution)
  ``patches·3p²·d`` per image; the final projections ``d·E`` on one token; the loss ``B²·E`` (``B·C·E`` for a
  class head of C classes);
* R-Adapter's adapters count on the ``1 − p`` kept token rows (the library applies F to kept rows only);
* backward: every product needs the gradient of its input (same cost as forward) where anything below it is
  trainable, and the gradient of its weight (same cost again) where the weight — or, for peft's
  ``MultiheadAttention``, the merged weight it builds from LoRA — is trainable;
* activation checkpointing re-runs the forward of every block once more during backward;
* ignored: LayerNorm, softmax, GELU, residual adds, the optimizer and the EMA (memory-bound, a few % of time).

ViT-B/16 forward, one image: 17.6 GMAC = 35.1 GFLOP; one 77-token text: 2.9 GMAC = 5.9 GFLOP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Tower:
    d: int  # width
    mlp: int  # MLP hidden width
    layers: int
    tokens: int
    stem_macs: int  # patch convolution MACs per sample (0 for text)


@dataclass
class StepShape:
    """What a method trains, as far as the FLOP count cares (read from a RunConfig by :func:`step_shape`)."""

    kind: str  # "full" (flyp: both towers), "image_ft" (ft: image tower + class head), "radapter", "lora"
    rank: int | None = None  # R-Adapter rank (None: full rank)
    drop_prob: float = 0.2  # R-Adapter token dropping
    lora_rank: int = 8
    grad_checkpointing: bool = False
    head_classes: int = 0  # ft: classes of the linear head


def step_shape(run_cfg: Any, head_classes: int = 0) -> StepShape:
    """The :class:`StepShape` of a ``radapter.config.RunConfig``."""
    name, m = run_cfg.method.name, run_cfg.method
    kind = {"flyp": "full", "ft": "image_ft", "radapter": "radapter", "lora": "lora"}.get(name)
    if kind is None:
        raise ValueError(f"no FLOP count for method {name!r}")
    return StepShape(
        kind,
        rank=m.radapter.rank,
        drop_prob=m.radapter.drop_prob,
        lora_rank=m.lora.r,
        grad_checkpointing=run_cfg.optim.grad_checkpointing,
        head_classes=head_classes,
    )


def towers(cfg: dict[str, Any]) -> dict[str, Tower]:
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    p, size = v["patch_size"], v["image_size"]
    patches = (size // p) ** 2
    return {
        "image": Tower(
            v["width"],
            int(v["width"] * v.get("mlp_ratio", 4.0)),
            v["layers"],
            patches + 1,
            patches * 3 * p * p * v["width"],
        ),
        "text": Tower(t["width"], int(t["width"] * t.get("mlp_ratio", 4.0)), t["layers"], t["context_length"], 0),
    }


def _block_macs(tw: Tower) -> tuple[float, float, float, float]:
    n, d = tw.tokens, tw.d
    return 3 * d * d * n, 2 * n * n * d, d * d * n, 2 * d * tw.mlp * n  # qkv, attention, out, mlp


def forward_flops(cfg: dict[str, Any], batch: int, tower: str | None = None) -> float:
    """Matmul FLOPs of one forward pass of ``batch`` samples through one tower (or both)."""
    total = 0.0
    for name, tw in towers(cfg).items():
        if tower is not None and name != tower:
            continue
        total += batch * (tw.layers * sum(_block_macs(tw)) + tw.stem_macs + tw.d * cfg["embed_dim"])
    return 2.0 * total


def train_step_flops(cfg: dict[str, Any], batch: int, shape: StepShape) -> float:
    """Matmul FLOPs of one training step (forward + backward + recompute, loss) — see the module docstring."""
    e = cfg["embed_dim"]
    if shape.kind == "image_ft":
        macs = 3.0 * batch * shape.head_classes * e  # head logits forward + input and weight gradients
        tower_names = ("image",)
    else:
        macs = 3.0 * batch * batch * e  # similarity matrix forward + two gradients
        tower_names = ("image", "text")
    for name in tower_names:
        tw = towers(cfg)[name]
        qkv, attn, out, mlp = _block_macs(tw)
        L, d, n, m = tw.layers, tw.d, tw.tokens, tw.mlp
        proj = d * e
        recompute = L * (qkv + attn + out + mlp) if shape.grad_checkpointing else 0.0
        if shape.kind in ("full", "image_ft"):
            per_block = 3 * (qkv + attn + out + mlp)
            macs += batch * (L * per_block + 2 * tw.stem_macs + 3 * proj + recompute)
        elif shape.kind == "radapter":
            # adapter per site and token: full rank d², low rank 2rd; forward + input grad + weight grad, on the
            # 1 − p kept token rows only (radapter applies F to kept rows; dropped rows are h unchanged)
            low = shape.rank is not None and shape.rank < d
            site = (2 * shape.rank * d * n if low else d * d * n) * (1.0 - shape.drop_prob)
            # forward + input gradient everywhere (attention: both operands are activations, so 2 gradients)...
            base = L * (2 * (qkv + out + mlp) + 3 * attn)
            base -= qkv + 2 * attn + out  # ... except block 0's attention below its adapter (forward only)
            adapters = 2 * L * 3 * site - site  # the first adapter needs no input gradient
            if shape.grad_checkpointing:
                recompute += 2 * L * site
            macs += batch * (base + adapters + tw.stem_macs + 2 * proj + recompute)
        elif shape.kind == "lora":
            r = shape.lora_rank
            lora_mlp = r * (d + m) * n * 2  # c_fc and c_proj LoRA paths (each r·(in+out) per token)
            # peft's MHA LoRA merges W' = W + BA before each call, so autograd computes the full weight gradient
            # of in_proj and out_proj (then A and B from it); block 0 needs no input gradient below in_proj.
            per_block = 2 * (qkv + out + mlp) + 3 * attn + (qkv + out) + 3 * lora_mlp
            merge = 4 * d * d * r * (1 + 1 + 2)  # BA merge, unmerge, and the two gradients of the merge
            if shape.grad_checkpointing:
                recompute += L * lora_mlp
                merge += 4 * d * d * r * 2  # the recomputed forward merges and unmerges again
            macs += batch * (L * per_block - qkv + tw.stem_macs + 2 * proj + recompute) + L * merge
        else:
            raise ValueError(f"unknown step kind {shape.kind!r}")
    return 2.0 * macs

"""Activation checkpointing (same loss and adapter gradients, dropping masks included) and bf16 frozen weights."""

from __future__ import annotations

import pytest
import torch
from tiny_backbones import hf_model, inputs, load_hf_text_clip, load_timm_clip, randomize_adapters, rel_err

import radapter
from conftest import make_hf_clip, make_open_clip
from radapter.backbones.base import set_grad_checkpointing
from radapter.backbones.memory import (
    fp32_frozen_weights,
    frozen_weights_held,
    hold_frozen_weights,
    restore_frozen_weights,
)

KINDS = [
    "open_clip",
    "timm-siglip",
    "timm-eva02",
    "hf-text-roberta",
    "hf-text-mt5",
    "hf-clip",
    "hf-siglip",
    "hf-siglip2",
]


def build(kind, tmp_path):
    """(model, image size, eos id or None)."""
    if kind == "open_clip":
        return make_open_clip(), 32, 49407
    if kind.startswith("timm-"):
        loaded, size = load_timm_clip(tmp_path, kind[5:])
        return loaded.model, size, None
    if kind.startswith("hf-text-"):
        return load_hf_text_clip(tmp_path, kind[8:]).model, 32, None
    if kind == "hf-clip":  # conftest's tiny CLIPModel: 99-token vocabulary
        model = make_hf_clip()
        model.text_model.embeddings.token_embedding = torch.nn.Embedding(1000, 32)
        return model, 32, 2
    return hf_model({"hf-siglip": "SiglipModel", "hf-siglip2": "Siglip2Model"}[kind]), 32, None


def _step(model, images, tokens, labels, seed):
    """Loss and adapter gradients of one training step with dropping (masks drawn from torch's RNG at ``seed``)."""
    torch.manual_seed(seed)
    f = radapter.encode_image(model, images, normalize=True)
    g = radapter.encode_text(model, tokens, normalize=True)
    loss = radapter.mpm_nce_loss(f, g, labels, label_smoothing=0.1)
    return loss.detach(), torch.autograd.grad(loss, radapter.adapter_parameters(model))


@pytest.mark.parametrize(
    "kind,granularity",
    [(k, "token") for k in KINDS] + [("open_clip", "sample"), ("open_clip", "adapter"), ("timm-siglip", "sample")],
)
def test_checkpointing_gives_the_same_loss_and_adapter_gradients(tmp_path, kind, granularity):
    model, size, eos = build(kind, tmp_path)
    config = radapter.RAdapterConfig(drop_prob=0.5, drop_granularity=granularity)
    model = radapter.apply_r_adapter(model, config)
    randomize_adapters(model)
    model.train()
    images, tokens = inputs(size, batch=4, eos=eos)
    labels = torch.tensor([0, 1, 0, 2])
    calls = []
    firsts = {}  # the first adapter of each tower: both towers' blocks must be recomputed
    for name, adapter in radapter.iter_adapters(model):
        firsts.setdefault(name.split(".")[0], adapter)
    assert sorted(firsts) == ["image", "text"]
    for tower, adapter in firsts.items():
        adapter.register_forward_hook(lambda *_, tower=tower: calls.append(tower))

    loss, grads = _step(model, images, tokens, labels, seed=3)
    plain_calls = len(calls)
    other_seed, _ = _step(model, images, tokens, labels, seed=4)
    assert not torch.allclose(loss, other_seed)  # the dropping masks matter: the check below can fail

    set_grad_checkpointing(model, True)
    calls.clear()
    loss_ckpt, grads_ckpt = _step(model, images, tokens, labels, seed=3)
    assert len(calls) == 2 * plain_calls  # the blocks really were recomputed during backward
    assert calls.count("image") == calls.count("text") == plain_calls
    assert torch.allclose(loss_ckpt, loss, rtol=1e-6, atol=0)
    for a, b in zip(grads_ckpt, grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)
    assert any(float(g.abs().max()) > 0 for g in grads_ckpt)

    set_grad_checkpointing(model, False)
    calls.clear()
    _step(model, images, tokens, labels, seed=3)
    assert len(calls) == plain_calls


def test_reentrant_timm_checkpointing_is_refused(tmp_path, monkeypatch):
    import timm.layers

    loaded, _ = load_timm_clip(tmp_path, "siglip")
    monkeypatch.setattr(timm.layers.config, "_USE_REENTRANT_CKPT", True)
    with pytest.raises(RuntimeError, match="re-entrant .* no gradient"):
        set_grad_checkpointing(loaded.model, True)


@pytest.mark.parametrize("kind", ["open_clip", "timm-siglip", "hf-clip"])
def test_bf16_frozen_weights_train_and_merge_in_fp32(tmp_path, kind):
    model, size, eos = build(kind, tmp_path)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    model = radapter.apply_r_adapter(model.eval(), radapter.RAdapterConfig())
    randomize_adapters(model)
    n = hold_frozen_weights(model)
    assert n > 0 and frozen_weights_held(model) == torch.bfloat16
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.dtype == torch.float32, name  # adapters stay fp32
        else:
            assert p.dtype == (torch.bfloat16 if p.ndim >= 2 else torch.float32), name
    assert all(b.dtype == torch.float32 for n, b in model.named_buffers() if ".ema_" in n)

    # a training step under bf16 autocast: fp32 gradients on the fp32 adapters
    images, tokens = inputs(size, batch=4, eos=eos)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f = radapter.encode_image(model, images, normalize=True)
        g = radapter.encode_text(model, tokens, normalize=True)
        loss = radapter.mpm_nce_loss(f.float(), g.float(), torch.tensor([0, 1, 0, 2]))
    loss.backward()
    grads = [p.grad for p in radapter.adapter_parameters(model)]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)

    model.eval()
    radapter.set_alpha(model, 0.7)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_out = radapter.encode_image(model, images).float()
    with fp32_frozen_weights(model):
        assert all(p.dtype == torch.float32 for p in model.parameters())
        merged = radapter.merge_r_adapter(model, alpha=0.7).eval()
        zero = radapter.merge_r_adapter(model, alpha=0.0)
        with torch.no_grad():
            fp32_unmerged = radapter.encode_image(model, images)
    assert frozen_weights_held(model) == torch.bfloat16  # back to bf16 for further training
    assert any(p.dtype == torch.bfloat16 for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in merged.parameters())  # fp32 merged weights
    assert all(torch.equal(zero.state_dict()[k], v) for k, v in base_state.items())  # α = 0: original fp32 base
    with torch.no_grad():
        merged_out = radapter.encode_image(merged, images)
    assert rel_err(merged_out, fp32_unmerged) <= 1e-5
    # what the bf16 model computes vs the fp32 merged model: bf16 round-off (measured ≈ 1e-2 on these models)
    assert rel_err(merged_out, bf16_out) <= 5e-2


def test_hold_without_keeping_fp32_upcasts_and_errors_are_clear():
    model = make_open_clip()
    with pytest.raises(ValueError, match="no frozen weight matrices; call it after apply_r_adapter"):
        hold_frozen_weights(model)
    model = radapter.apply_r_adapter(model, radapter.RAdapterConfig())
    weight = model.visual.conv1.weight.detach().clone()
    hold_frozen_weights(model, keep_fp32=False)
    with pytest.raises(ValueError, match="already held"):
        hold_frozen_weights(model)
    restore_frozen_weights(model)
    assert model.visual.conv1.weight.dtype == torch.float32
    assert torch.equal(model.visual.conv1.weight, weight.to(torch.bfloat16).float())  # upcast, not the original
    assert frozen_weights_held(model) is None
    with pytest.raises(ValueError, match="not held"):
        restore_frozen_weights(model)

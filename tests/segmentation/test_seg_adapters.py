"""Dense mode with R-Adapter, LoRA and the CLIP fine-tuning strategies."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from seg_helpers import make_segmenter

import radapter
from radapter.segmentation import Segmenter, dense_features, select_clip_trainable

KINDS = ["open_clip", "hf"]
NAMES = ["cat", "dog, puppy", "sky"]


def _trained_adapter_segmenter(kind: str):
    """A segmenter whose CLIP carries R-Adapters trained a few steps (EMA = live weights, so they are non-zero)."""
    seg = make_segmenter(kind, input_size=48)
    frozen = copy.deepcopy(seg.clip).eval()
    radapter.apply_r_adapter(seg.clip, radapter.RAdapterConfig(drop_prob=0.2, alpha=0.4))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 48, 48, generator=g)
    y = torch.randint(0, 3, (2, 48, 48), generator=g)
    opt = torch.optim.AdamW(radapter.adapter_parameters(seg.clip) + list(seg.head.parameters()), lr=0.05)
    seg.train()
    for _ in range(5):
        loss = seg.loss(seg(x, NAMES), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    radapter.ema_update(seg.clip, momentum=0.0)
    assert all(a.delta_weight().abs().max() > 0 for _, a in radapter.iter_adapters(seg.clip))
    return seg.eval(), frozen, x


@pytest.mark.parametrize("kind", KINDS)
def test_alpha_zero_cost_volume_equals_the_frozen_models_exactly(kind):
    seg, frozen, x = _trained_adapter_segmenter(kind)
    reference = Segmenter(frozen, seg.tokenizer, seg.config, head=seg.head).eval()
    with torch.no_grad():
        radapter.set_alpha(seg.clip, 0.0)
        at_zero = seg.cost_volume(x, NAMES)
        expected = reference.cost_volume(x, NAMES)
        radapter.set_alpha(seg.clip, 1.0)
        at_one = seg.cost_volume(x, NAMES)
    assert torch.equal(at_zero, expected)
    assert not torch.allclose(at_one, expected, atol=1e-4)  # the adapters do act in dense mode


@pytest.mark.parametrize("kind", KINDS)
def test_merged_equals_unmerged_on_dense_features_and_text(kind):
    seg, _, x = _trained_adapter_segmenter(kind)
    merged = radapter.merge_r_adapter(seg.clip, alpha=0.4).eval()
    radapter.set_alpha(seg.clip, 0.4)
    with torch.no_grad():
        a = dense_features(seg.clip, x, layers=(0, 1))
        b = dense_features(merged, x, layers=(0, 1))
        ta, tb = seg.text_features(NAMES), seg.with_clip(merged).text_features(NAMES)
    assert torch.allclose(a.features, b.features, atol=1e-5)
    assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(a.intermediates, b.intermediates))
    assert torch.allclose(ta, tb, atol=1e-5)
    base = radapter.merge_r_adapter(seg.clip, alpha=0.0)
    with torch.no_grad():
        assert not torch.allclose(dense_features(base, x).features, a.features, atol=1e-4)


def test_unmerged_lora_acts_in_dense_mode_on_open_clip():
    from radapter.methods.lora import apply_lora  # peft LoRA as the methods apply it (the test may use the app)

    seg = make_segmenter("open_clip", input_size=48)
    clip = seg.clip
    lora = apply_lora(clip, r=4, alpha=8.0, dropout=0.0)
    with torch.no_grad():
        for name, p in clip.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)  # peft zero-initialises B; make the update non-zero
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        unmerged = dense_features(clip, x, layers=(0,)).features
        merged = dense_features(copy.deepcopy(lora).merge_and_unload(), x, layers=(0,)).features
        lora.disable_adapter_layers()
        plain = dense_features(clip, x, layers=(0,)).features
        lora.enable_adapter_layers()
    assert torch.allclose(unmerged, merged, atol=1e-5)
    assert not torch.allclose(unmerged, plain, atol=1e-4)
    dense_features(clip, x).features.sum().backward()  # the LoRA factors of the dense last block get gradient
    last = clip.visual.transformer.resblocks[-1].attn
    assert last.lora_B["default"].weight.grad.abs().sum() > 0
    assert not last.merged and isinstance(last.get_base_layer().in_proj_weight, torch.nn.Parameter)  # unmerged again


@pytest.mark.parametrize("kind", KINDS)
def test_attention_strategy_trains_only_query_and_value(kind):
    seg = make_segmenter(kind)
    clip = seg.clip
    before = {n: p.detach().clone() for n, p in clip.named_parameters()}
    sel = select_clip_trainable(clip, "attention")
    opt = torch.optim.AdamW(sel.parameters, lr=1e-2, weight_decay=0.1)  # decay would move frozen rows
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    seg.train()
    for _ in range(2):
        loss = seg.loss(seg(x, NAMES), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sel.after_step()
    changed = {n for n, p in clip.named_parameters() if not torch.equal(p, before[n])}
    # the last image block runs in dense mode (value path): its query gets no gradient
    unused = "vision_model.encoder.layers.1.self_attn.q_proj.weight"
    assert changed == set(sel.names) - {unused} if kind == "hf" else changed == set(sel.names)
    if kind == "open_clip":
        for n in sel.names:
            p, d = clip.get_submodule(n.rsplit(".", 1)[0]).in_proj_weight, before[n].shape[1]
            assert torch.equal(p[d : 2 * d], before[n][d : 2 * d])  # keys frozen exactly, despite weight decay
            assert not torch.equal(p[2 * d :], before[n][2 * d :])  # values train
            if not n.startswith("visual.transformer.resblocks.1."):
                assert not torch.equal(p[:d], before[n][:d])  # queries train
        per_block = 2 * 48 * 48, 2 * 32 * 32  # q and v rows, image and text towers
        assert sel.num_trainable == 2 * per_block[0] + 2 * per_block[1]
    else:
        assert all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in sel.names) and len(sel.names) == 8
        assert sel.num_trainable == 4 * 40 * 40 + 4 * 32 * 32
    sel.remove()


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_and_full_strategies(kind):
    seg = make_segmenter(kind)
    assert select_clip_trainable(seg.clip, "frozen").parameters == []
    assert not any(p.requires_grad for p in seg.clip.parameters())
    full = select_clip_trainable(seg.clip, "full")
    trainable = {id(p) for p in seg.clip.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in full.parameters}
    assert not seg.clip.logit_scale.requires_grad
    assert full.num_trainable == sum(p.numel() for p in seg.clip.parameters()) - seg.clip.logit_scale.numel()
    image_only = select_clip_trainable(seg.clip, "full", towers=("image",))
    assert image_only.num_trainable < full.num_trainable
    with pytest.raises(ValueError, match="radapter"):
        select_clip_trainable(seg.clip, "radapter")


@pytest.mark.parametrize("kind", KINDS)
def test_text_features_average_synonyms_and_cache_only_when_frozen(kind):
    seg = make_segmenter(kind)
    clip, tok = seg.clip, seg.tokenizer
    templates = seg.config.templates
    texts = [t.format(s) for s in ("dog", "puppy") for t in templates]
    with torch.no_grad():
        each = F.normalize(radapter.encode_text(clip, tok(texts)).float(), dim=-1)
        feats = seg.text_features(NAMES)
    assert torch.allclose(feats[1], F.normalize(each.mean(0), dim=0), atol=1e-6)
    seg.eval()
    with torch.no_grad():
        assert seg.text_features(NAMES) is seg.text_features(NAMES)  # cached
        clip_param = next(p for n, p in clip.named_parameters() if "token_embedding" in n or "embeddings" in n)
        clip_param.add_(
            0.5 * torch.randn_like(clip_param)
        )  # any in-place change of the text tower invalidates the cache
        assert not torch.allclose(seg.text_features(NAMES), feats, atol=1e-4)
    radapter.apply_r_adapter(clip, radapter.RAdapterConfig(towers="text"))
    seg.train()
    live = seg.text_features(NAMES)
    assert live.requires_grad  # recomputed with gradient while the text tower trains
    seg.eval()
    with torch.no_grad():
        a = seg.text_features(NAMES)
        for _, ad in radapter.iter_adapters(clip):
            ad.ema_weight.add_(0.1 * torch.randn_like(ad.ema_weight))
        b = seg.text_features(NAMES)
        radapter.set_alpha(clip, 0.0)
        c = seg.text_features(NAMES)
    assert not torch.allclose(a, b) and not torch.allclose(b, c)

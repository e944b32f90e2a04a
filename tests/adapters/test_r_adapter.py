"""R-Adapter on real backbone classes: counts, zero-init, merge, re-scaling, EMA, dropping, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

import radapter
from conftest import BUILDERS, sample_inputs
from radapter.adapters import RAdapter

CASES = list(itertools.product(sorted(BUILDERS), [None, 4], ["image", "text", "both"]))


def _frozen(model):
    # PyTorch picks different attention kernels when parameters require grad (about 1e-6 apart), so the
    # bit-for-bit reference is the base model frozen as apply_r_adapter freezes it.
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _encode(model, kind):
    images, tokens = sample_inputs(kind)
    with torch.no_grad():
        return radapter.encode_image(model, images), radapter.encode_text(model, tokens)


def _randomize(model, seed=0, live_too=True):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, adapter in radapter.iter_adapters(model):
            for name in adapter.param_names:
                ema = getattr(adapter, f"ema_{name}")
                ema.copy_(torch.randn(ema.shape, generator=g) * (0.5 if name == "scale" else 0.05))
                if live_too:
                    getattr(adapter, name).copy_(torch.randn(ema.shape, generator=g) * 0.05)


def _expected_trainable(model, cfg):
    total = 0
    for site in model.radapter_sites:
        d = site.dim
        total += (d * d if cfg.rank is None or cfg.rank >= d else 2 * cfg.rank * d) + 1
    return total


@pytest.mark.parametrize("kind,rank,towers", CASES)
def test_apply_counts_zero_init_merge(kind, rank, towers):
    base = _frozen(BUILDERS[kind]())
    ref_img, ref_txt = _encode(base, kind)
    cfg = radapter.RAdapterConfig(rank=rank, towers=towers)
    model = radapter.apply_r_adapter(BUILDERS[kind](), cfg)
    n_blocks = 2
    assert len(model.radapter_sites) == 2 * n_blocks * (2 if towers == "both" else 1)
    trainable, _ = radapter.count_parameters(model)
    assert trainable == _expected_trainable(model, cfg)
    # only adapter parameters train
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".adapter." in n for n in names)

    # zero-initialised: identical to the base model, in eval and in train mode (dropping a zero branch)
    img, txt = _encode(model, kind)
    assert torch.equal(img, ref_img) and torch.equal(txt, ref_txt)
    model.train()
    img, txt = _encode(model, kind)
    assert torch.allclose(img, ref_img, atol=1e-6) and torch.allclose(txt, ref_txt, atol=1e-6)
    model.eval()

    _randomize(model)
    img, txt = _encode(model, kind)
    merged = radapter.merge_r_adapter(model)  # config alpha 0.5, EMA weights
    assert type(merged) is type(base)
    assert set(merged.state_dict()) == set(base.state_dict())
    m_img, m_txt = _encode(merged, kind)
    assert (img - m_img).abs().max() <= 1e-5 and (txt - m_txt).abs().max() <= 1e-5
    changed_img = not torch.allclose(m_img, ref_img, atol=1e-4)
    changed_txt = not torch.allclose(m_txt, ref_txt, atol=1e-4)
    assert changed_img == (towers in ("image", "both"))
    assert changed_txt == (towers in ("text", "both"))

    # α = 0 is the base model bit for bit, merged and unmerged
    merged0 = radapter.merge_r_adapter(model, alpha=0.0)
    for k, v in base.state_dict().items():
        assert torch.equal(merged0.state_dict()[k], v), k
    assert torch.equal(_encode(_frozen(merged0), kind)[0], ref_img)
    radapter.set_alpha(model, 0.0)
    img0, txt0 = _encode(model, kind)
    assert torch.equal(img0, ref_img) and torch.equal(txt0, ref_txt)

    # W(0.5) = (W(0) + W(1)) / 2: re-scaling is WiSE-FT of the adapted layers
    w0, w1, wh = (radapter.merge_r_adapter(model, alpha=a).state_dict() for a in (0.0, 1.0, 0.5))
    for k in w0:
        assert torch.allclose(wh[k], (w0[k] + w1[k]) / 2, atol=1e-6), k

    # the adapted model is still usable after merging (training can go on)
    assert any(p.requires_grad for p in model.parameters())


def test_every_adapter_runs(backbone_kind):
    """A non-zero adapter at any single site changes the output of its tower (no silently dead site)."""
    model = radapter.apply_r_adapter(BUILDERS[backbone_kind](), radapter.RAdapterConfig())
    ref_img, ref_txt = _encode(model, backbone_kind)
    for site in model.radapter_sites:
        adapter = dict(radapter.iter_adapters(model))[site.name]
        with torch.no_grad():
            adapter.ema_weight.normal_(0, 0.1)
        img, txt = _encode(model, backbone_kind)
        out, ref = (img, ref_img) if site.name.startswith("image") else (txt, ref_txt)
        assert not torch.allclose(out, ref, atol=1e-5), f"adapter at {site.name} has no effect"
        with torch.no_grad():
            adapter.ema_weight.zero_()


def test_gradients_reach_only_adapters(backbone_kind):
    model = radapter.apply_r_adapter(BUILDERS[backbone_kind](), radapter.RAdapterConfig(drop_prob=0.0))
    model.train()
    images, tokens = sample_inputs(backbone_kind, batch=4)
    f = radapter.encode_image(model, images, normalize=True)
    g = radapter.encode_text(model, tokens, normalize=True)
    radapter.mpm_nce_loss(f, g, torch.tensor([0, 0, 1, 2])).backward()
    for name, p in model.named_parameters():
        if ".adapter." in name:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    # zero-initialised F gets gradient, s does not (its gradient is F h = 0): training starts at zero-shot
    adapters = dict(radapter.iter_adapters(model))
    assert any(a.weight.grad.abs().sum() > 0 for a in adapters.values())


def test_ema_arithmetic():
    a = RAdapter(4, drop_prob=0.0)
    assert torch.equal(a.ema_weight, torch.zeros(4, 4)) and a.ema_scale.item() == pytest.approx(0.1)
    assert not a.ema_weight.requires_grad and "ema_weight" in a.state_dict()
    with torch.no_grad():
        a.weight.fill_(1.0)
        a.scale.fill_(0.3)
    a.ema_update(0.9)
    assert torch.allclose(a.ema_weight, torch.full((4, 4), 0.1))
    assert a.ema_scale.item() == pytest.approx(0.9 * 0.1 + 0.1 * 0.3)
    a.ema_update(0.9)
    assert torch.allclose(a.ema_weight, torch.full((4, 4), 0.19))
    a.ema_update(0.0)
    assert torch.equal(a.ema_weight, a.weight.detach()) and torch.equal(a.ema_scale, a.scale.detach())


def test_ema_update_on_model_uses_config_momentum():
    model = radapter.apply_r_adapter(BUILDERS["open_clip"](), radapter.RAdapterConfig(ema_momentum=0.5))
    with torch.no_grad():
        for _, a in radapter.iter_adapters(model):
            a.weight.fill_(2.0)
    radapter.ema_update(model)
    assert all(torch.allclose(a.ema_weight, torch.ones_like(a.ema_weight)) for _, a in radapter.iter_adapters(model))
    radapter.ema_update(model, momentum=0.0)
    assert all(torch.equal(a.ema_weight, a.weight.detach()) for _, a in radapter.iter_adapters(model))


def test_eval_uses_ema_and_alpha_train_uses_live():
    a = RAdapter(3, drop_prob=0.0, alpha=0.5, init_scale=1.0)
    with torch.no_grad():
        a.weight.copy_(torch.eye(3))
        a.ema_weight.copy_(2 * torch.eye(3))
    h = torch.ones(2, 5, 3)
    a.train()
    assert torch.allclose(a(h), h + h)  # live F = I, s = 1, α = 1
    a.eval()
    assert torch.allclose(a(h), h + 0.5 * 2 * h)  # EMA F = 2I, s̃ = 1, α = 0.5


@pytest.mark.parametrize("granularity", ["token", "sample", "adapter"])
def test_dropping_granularity_rate_and_scaling(granularity):
    torch.manual_seed(0)
    p = 0.2
    a = RAdapter(4, drop_prob=p, drop_granularity=granularity, init_scale=1.0)
    with torch.no_grad():
        a.weight.copy_(torch.eye(4))
    h = torch.ones(8, 16, 4)  # [batch, tokens, dim]
    a.eval()
    assert torch.equal(a(h), a(h))  # deterministic in eval mode
    a.train()
    masks = torch.stack([(a(h) - h) for _ in range(400)])  # branch / h = mask value
    values = masks.unique()
    assert set(torch.round(values, decimals=4).tolist()) <= {0.0, round(1 / (1 - p), 4)}
    keep_rate = (masks > 0).float().mean().item()
    assert keep_rate == pytest.approx(1 - p, abs=0.03)
    assert masks.mean().item() == pytest.approx(1.0, abs=0.05)  # 1/(1-p) scaling keeps the expectation
    m = masks[..., 0]  # [draws, batch, tokens]
    same_across_batch = bool((m == m[:, :1, :]).all())
    same_across_tokens = bool((m == m[:, :, :1]).all())
    if granularity == "token":
        assert same_across_batch and not same_across_tokens
    elif granularity == "sample":
        assert same_across_tokens and not same_across_batch
    else:
        assert same_across_batch and same_across_tokens


def test_low_rank_only_below_dim():
    assert RAdapter(8, rank=4).low_rank
    full = RAdapter(8, rank=8)  # r >= d trains full rank (the authors' inverted test is fixed)
    assert not full.low_rank and full.weight.shape == (8, 8)


def test_vit_b16_full_rank_count_is_the_papers():
    from open_clip import create_model

    model = create_model("ViT-B-16", pretrained=None)
    radapter.apply_r_adapter(model, radapter.RAdapterConfig())
    assert radapter.count_parameters(model)[0] == 20_447_280


def test_config_validation_and_unknown_keys():
    with pytest.raises(ValueError, match="drop_granularity"):
        radapter.RAdapterConfig(drop_granularity="batch")
    with pytest.raises(ValueError, match="did you mean 'drop_prob'"):
        radapter.RAdapterConfig.from_dict({"drop_probb": 0.1})
    with pytest.raises(ValueError, match="blocks"):
        radapter.apply_r_adapter(BUILDERS["open_clip"](), radapter.RAdapterConfig(blocks=[5]))


def test_block_selection_and_positions():
    model = radapter.apply_r_adapter(
        BUILDERS["open_clip"](), radapter.RAdapterConfig(blocks=[-1], positions=["mlp"], towers="image")
    )
    assert [s.name for s in model.radapter_sites] == ["image.1.mlp"]


def test_apply_twice_is_an_error():
    model = radapter.apply_r_adapter(BUILDERS["open_clip"](), radapter.RAdapterConfig())
    with pytest.raises(ValueError, match="already has R-Adapters"):
        radapter.apply_r_adapter(model, radapter.RAdapterConfig())

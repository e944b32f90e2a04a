"""The performance paths the benchmarks led to compute exactly what the plain formulas compute:

* adapter dropping applies F to the kept rows only — same draws, same output as ``h + s·(F h ⊙ mask)``;
* ``merge_r_adapter`` copies only what it keeps and writes ``W + (α s̃F̃) W`` in place;
* ``iter_alpha_merges`` reuses one copy and the α-free products ``s̃F̃W`` across a sweep.
"""

from __future__ import annotations

import pytest
import torch

import radapter
from conftest import BUILDERS, sample_inputs
from radapter.adapters import RAdapter
from radapter.adapters.merge import iter_alpha_merges, merged_linear_weights


@pytest.mark.parametrize("granularity", ["token", "sample", "adapter"])
@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("shape", [(4, 7, 8), (7, 8), (2, 3, 5, 8)])
def test_dropping_on_kept_rows_equals_the_mask_formula(granularity, rank, shape):
    torch.manual_seed(0)
    a = RAdapter(8, rank=rank, drop_prob=0.3, drop_granularity=granularity).train()
    with torch.no_grad():
        for name in a.param_names:
            getattr(a, name).normal_()
    h = torch.randn(*shape)
    if h.dim() == 3:  # non-contiguous, as nn.MultiheadAttention(batch_first=True) returns it
        h = h.transpose(0, 1).contiguous().transpose(0, 1)
    h1, h2 = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    torch.manual_seed(5)
    out = a(h1)
    torch.manual_seed(5)
    mask = a._drop_mask(h2)
    fh = (h2 @ a.down.t()) @ a.up.t() if a.low_rank else h2 @ a.weight.t()
    ref = h2 + a.scale * (fh * mask)
    assert torch.allclose(out, ref, atol=1e-6, rtol=1e-6)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, [h1, *a.parameters()], g)
    want = torch.autograd.grad(ref, [h2, *a.parameters()], g)
    for x, y in zip(got, want):
        assert torch.allclose(x, y, atol=1e-5, rtol=1e-5)


def test_dropping_every_row_still_gives_every_parameter_a_gradient():
    a = RAdapter(6, drop_prob=0.5).train()
    torch.manual_seed(0)
    h = torch.randn(2, 3, 6)
    a._drop_mask = lambda t: torch.zeros(1, t.shape[-2], 1)  # all tokens dropped
    out = a(h)
    assert torch.equal(out, h)
    out.sum().backward()
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in a.parameters())


def _adapted(kind, rank=None):
    model = radapter.apply_r_adapter(BUILDERS[kind](), radapter.RAdapterConfig(rank=rank))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, adapter in radapter.iter_adapters(model):
            for name in adapter.param_names:
                t = getattr(adapter, f"ema_{name}")
                t.copy_(torch.randn(t.shape, generator=g) * (0.5 if name == "scale" else 0.05))
    return model.eval()


@pytest.mark.parametrize("rank", [None, 4])
def test_merge_matches_the_reference_weights_and_shares_nothing(backbone_kind, rank):
    model = _adapted(backbone_kind, rank)
    merged = radapter.merge_r_adapter(model, alpha=0.7)
    ref = merged_linear_weights(model, alpha=0.7)
    state = merged.state_dict()
    for path, (w, b) in ref.items():
        assert torch.allclose(state[f"{path}.weight"], w, atol=1e-6)
        if b is not None:
            assert torch.allclose(state[f"{path}.bias"], b, atol=1e-6)
    assert not any(isinstance(m, radapter.adapters.AdaptedSubLayer) for m in merged.modules())
    assert all(p.requires_grad for p in merged.parameters())
    own = {p.untyped_storage().data_ptr() for p in model.parameters()} | {
        b.untyped_storage().data_ptr() for b in model.buffers()
    }
    assert not any(t.untyped_storage().data_ptr() in own for t in merged.state_dict().values())
    # merged = unmerged eval-mode forward at that α
    radapter.set_alpha(model, 0.7)
    images, tokens = sample_inputs(backbone_kind)
    with torch.no_grad():
        a = radapter.encode_image(model, images), radapter.encode_text(model, tokens)
        m = radapter.encode_image(merged, images), radapter.encode_text(merged, tokens)
    assert (a[0] - m[0]).abs().max() < 1e-5 and (a[1] - m[1]).abs().max() < 1e-5


def test_alpha_sweep_equals_one_merge_per_alpha(backbone_kind):
    model = _adapted(backbone_kind)
    base_state = {k: v.clone() for k, v in radapter.merge_r_adapter(model, alpha=0.0).state_dict().items()}
    alphas = [0.0, 0.3, 1.0, 0.0]
    seen = []
    for alpha, merged in iter_alpha_merges(model, alphas):
        seen.append(alpha)
        ref = radapter.merge_r_adapter(model, alpha=alpha).state_dict()
        got = merged.state_dict()
        assert set(got) == set(ref) and merged.radapter_merged["alpha"] == alpha
        for k in ref:
            if alpha == 0.0:
                assert torch.equal(got[k], base_state[k]), k  # α = 0: the base weights bit for bit
            else:
                assert torch.allclose(got[k], ref[k], atol=1e-6), k
    assert seen == alphas

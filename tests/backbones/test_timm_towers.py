"""open_clip models with a timm image tower: sites, merge, α = 0, export + plain reload, hybrids and refusals."""

from __future__ import annotations

import warnings

import open_clip
import pytest
import torch
from tiny_backbones import inputs, load_timm_clip, randomize_adapters, rel_err

import radapter
from radapter.backbones import UnsupportedBackboneError

# SigLIP (MAP head), EVA02 (SwiGLU + sub-LN + RoPE), PE-Core (RoPE attention, MAP head), ViTamin (hybrid,
# GeGLU), Swin (windows, patch merging), and a post-norm ViT (the adapter sits between proj and the norm)
FAMILIES = ["siglip", "eva02", "pe_core", "vitamin", "swin", "postnorm"]


def _outputs(model, images, tokens):
    with torch.no_grad():
        return radapter.encode_image(model, images), radapter.encode_text(model, tokens)


@pytest.mark.parametrize("family", FAMILIES)
def test_sites_are_the_block_linears(tmp_path, family):
    loaded, _ = load_timm_clip(tmp_path, family)
    model = radapter.apply_r_adapter(loaded.model, radapter.RAdapterConfig(towers="image"))
    sites = model.radapter_sites
    trunk = loaded.model.visual.trunk
    n_blocks = sum(1 for m in trunk.modules() if hasattr(m, "attn") and hasattr(m, "mlp"))
    assert len(sites) == 2 * n_blocks > 0
    for s in sites:
        assert s.order == "post" and s.wrap_path == s.linear_path
        assert s.linear_path.endswith((".attn.proj", ".mlp.fc2", ".mlp.w2")), s.linear_path
        assert s.name.startswith("image.")


@pytest.mark.parametrize("family", FAMILIES)
def test_merge_alpha_zero_and_plain_reload(tmp_path, family):
    loaded, size = load_timm_clip(tmp_path, family)
    base = loaded.model.eval()
    images, tokens = inputs(size)
    base_out = _outputs(base, images, tokens)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ViTamin's skipped conv stem is tested below
        model = radapter.apply_r_adapter(base, radapter.RAdapterConfig())
    randomize_adapters(model)
    radapter.set_alpha(model, 0.7)
    unmerged = _outputs(model, images, tokens)
    merged = radapter.merge_r_adapter(model, alpha=0.7).eval()
    got = _outputs(merged, images, tokens)
    for u, m, b in zip(unmerged, got, base_out):
        assert rel_err(m, u) <= 1e-5
        assert rel_err(u, b) > 1e-3  # the adapters did change the model

    # α = 0: the base weights bit for bit
    zero = radapter.merge_r_adapter(model, alpha=0.0)
    assert zero.state_dict().keys() == base_state.keys()
    for k, v in zero.state_dict().items():
        assert torch.equal(v, base_state[k]), k

    # export, then plain open_clip rebuilds the same model
    radapter.export_merged(merged, str(tmp_path / "export"))
    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    again = _outputs(plain.eval(), images, tokens)
    for a, m in zip(again, got):
        assert torch.allclose(a, m, atol=1e-6, rtol=0)


def test_siglip_has_logit_bias(tmp_path):
    loaded, _ = load_timm_clip(tmp_path, "siglip")
    handler = radapter.get_handler(loaded.model)
    assert handler.logit_bias(loaded.model) is loaded.model.logit_bias
    assert handler.logit_bias(loaded.model).item() == -10.0
    assert torch.equal(handler.logit_scale(loaded.model), loaded.model.logit_scale.exp())


def test_hybrid_warns_which_parts_it_skipped(tmp_path):
    loaded, _ = load_timm_clip(tmp_path, "vitamin")
    with pytest.warns(UserWarning, match=r"adapting its 2 transformer blocks.*patch_embed\.backbone \(MbConvStages"):
        radapter.apply_r_adapter(loaded.model, radapter.RAdapterConfig(towers="image"))


@pytest.mark.parametrize(
    "family,match",
    [("convnext", r"timm ConvNeXt .*no transformer blocks .*ConvNeXtBlock"), ("fastvit", r"FastVit.*1×1-convolution")],
)
def test_convolutional_towers_are_refused_with_what_is_supported(tmp_path, family, match):
    loaded, _ = load_timm_clip(tmp_path, family)
    with pytest.raises(UnsupportedBackboneError, match=match) as err:
        radapter.apply_r_adapter(loaded.model, radapter.RAdapterConfig())
    assert "SigLIP" in str(err.value) and "towers='text'" in str(err.value)
    assert not hasattr(loaded.model, "radapter_sites")  # nothing half-applied
    model = radapter.apply_r_adapter(loaded.model, radapter.RAdapterConfig(towers="text"))
    assert {s.name.split(".")[0] for s in model.radapter_sites} == {"text"}


def test_lora_targets_resolve_and_peft_accepts_them(tmp_path):
    from peft import LoraConfig
    from peft.tuners.lora import LoraModel

    loaded, size = load_timm_clip(tmp_path, "siglip")
    model = loaded.model
    targets = radapter.get_handler(model).lora_targets(model)
    modules = dict(model.named_modules())
    assert any(t.endswith("attn.qkv") for t in targets) and any(t.endswith(".attn") for t in targets)  # timm, MHA
    for t in targets:
        assert isinstance(modules[t], (torch.nn.Linear, torch.nn.MultiheadAttention)), t
    assert not any(t.endswith("attn.out_proj") for t in targets)  # MHA never calls out_proj.forward
    images, tokens = inputs(size)
    before = _outputs(model.eval(), images, tokens)
    lora = LoraModel(model, LoraConfig(r=2, target_modules=targets, init_lora_weights=False), "default")
    after = _outputs(lora.model.eval(), images, tokens)
    assert all(rel_err(a, b) > 1e-4 for a, b in zip(after, before))  # every tower's LoRA layers run

"""open_clip models with a Hugging Face text tower (RoBERTa, mT5, NLLB/M2M100): sites, merge, export + reload."""

from __future__ import annotations

import open_clip
import pytest
import torch
from tiny_backbones import inputs, load_hf_text_clip, randomize_adapters, rel_err

import radapter
from radapter.backbones import UnsupportedBackboneError
from radapter.backbones.hf_layers import hf_layer_sites

# model type -> (wrapped module, merged linear, order) of layer 0's attention site
EXPECTED = {
    "roberta": ("encoder.layer.0.attention.output.dense", "encoder.layer.0.attention.output.dense", "post"),
    "mt5": ("block.0.layer.0.dropout", "block.0.layer.0.SelfAttention.o", "pre"),
    "m2m_100": ("layers.0.self_attn.out_proj", "layers.0.self_attn.out_proj", "post"),
}


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_hf_text_tower_adapts_merges_and_reloads(tmp_path, model_type):
    loaded = load_hf_text_clip(tmp_path, model_type)
    base = loaded.model.eval()
    images, tokens = inputs(32)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    with torch.no_grad():
        base_text = radapter.encode_text(base, tokens)
    model = radapter.apply_r_adapter(base, radapter.RAdapterConfig())
    text_sites = [s for s in model.radapter_sites if s.name.startswith("text.")]
    assert len(text_sites) == 4
    wrap, linear, order = EXPECTED[model_type]
    assert (text_sites[0].wrap_path, text_sites[0].linear_path, text_sites[0].order) == (
        f"text.transformer.{wrap}",
        f"text.transformer.{linear}",
        order,
    )
    randomize_adapters(model)
    radapter.set_alpha(model, 0.7)
    with torch.no_grad():
        unmerged = radapter.encode_text(model, tokens)
        merged = radapter.merge_r_adapter(model, alpha=0.7).eval()
        got = radapter.encode_text(merged, tokens)
    assert rel_err(got, unmerged) <= 1e-5
    assert rel_err(unmerged, base_text) > 1e-3
    zero = radapter.merge_r_adapter(model, alpha=0.0).state_dict()
    assert zero.keys() == base_state.keys()
    assert all(torch.equal(zero[k], v) for k, v in base_state.items())  # α = 0: base weights bit for bit

    radapter.export_merged(merged, str(tmp_path / "export"))
    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    with torch.no_grad():
        assert torch.allclose(plain.eval().encode_text(tokens), got, atol=1e-6, rtol=0)


def test_unknown_hf_layer_is_refused_by_name():
    from transformers import DistilBertConfig, DistilBertModel

    model = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    with pytest.raises(UnsupportedBackboneError, match=r"text.transformer.layer.0: .*TransformerBlock"):
        hf_layer_sites("text.transformer.layer.0", model.transformer.layer[0], "text", 0)

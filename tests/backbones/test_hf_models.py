"""transformers SiglipModel, Siglip2Model and CLIP's single-tower classes; ``load_model("hf:…")`` dispatch."""

from __future__ import annotations

import json
import string

import pytest
import torch
from tiny_backbones import hf_model, inputs, randomize_adapters, rel_err

import radapter
from radapter.backbones import UnsupportedBackboneError

CLASSES = ["CLIPModel", "SiglipModel", "Siglip2Model", "CLIPVisionModelWithProjection", "CLIPTextModelWithProjection"]
TOWERS = {"CLIPVisionModelWithProjection": "image", "CLIPTextModelWithProjection": "text"}


def _encode(model, towers, images, tokens):
    with torch.no_grad():
        out = []
        if towers in ("both", "image"):
            out.append(radapter.encode_image(model, images))
        if towers in ("both", "text"):
            out.append(radapter.encode_text(model, tokens))
        return out


@pytest.mark.parametrize("class_name", CLASSES)
def test_adapt_merge_alpha_zero_export_reload(tmp_path, class_name):
    import transformers

    towers = TOWERS.get(class_name, "both")
    base = hf_model(class_name)
    images, tokens = inputs(32, eos=2)
    base_out = _encode(base, towers, images, tokens)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    model = radapter.apply_r_adapter(base, radapter.RAdapterConfig(towers=towers))
    assert len(model.radapter_sites) == 2 * 2 * (2 if towers == "both" else 1)
    randomize_adapters(model)
    radapter.set_alpha(model, 0.7)
    unmerged = _encode(model, towers, images, tokens)
    merged = radapter.merge_r_adapter(model, alpha=0.7).eval()
    got = _encode(merged, towers, images, tokens)
    for u, m, b in zip(unmerged, got, base_out):
        assert rel_err(m, u) <= 1e-5 and rel_err(u, b) > 1e-3
    zero = radapter.merge_r_adapter(model, alpha=0.0).state_dict()
    assert zero.keys() == base_state.keys() and all(torch.equal(zero[k], v) for k, v in base_state.items())

    out = str(tmp_path / "export")
    radapter.export_merged(merged, out)
    reloaded = getattr(transformers, class_name).from_pretrained(out).eval()
    for a, m in zip(_encode(reloaded, towers, images, tokens), got):
        assert torch.allclose(a, m, atol=1e-6, rtol=0)
    # the model card's snippet loads it with plain transformers
    snippet = radapter.get_handler(merged).loading_snippet(out, {"name": "hf:tiny"})
    scope: dict = {}
    exec(snippet, scope)
    assert type(scope["model"]).__name__ == class_name


def test_siglip_logit_bias_and_text_without_padding_mask():
    model = hf_model("SiglipModel")
    handler = radapter.get_handler(model)
    assert handler.name == "transformers-siglip"
    assert handler.logit_bias(model) is model.logit_bias
    _, ids = inputs(32)
    mask = torch.ones_like(ids)
    mask[:, 10:] = 0  # a padded text: the mask would change the last position's (pooled) state
    with torch.no_grad():
        plain = model.get_text_features(input_ids=ids)
        plain = getattr(plain, "pooler_output", plain)
        masked = model.get_text_features(input_ids=ids, attention_mask=mask)
        masked = getattr(masked, "pooler_output", masked)
        got = radapter.encode_text(model, {"input_ids": ids, "attention_mask": mask})
    assert not torch.allclose(plain, masked, atol=1e-4)
    assert torch.equal(got, plain)


def test_siglip2_patchify_matches_the_image_processor_and_model():
    from transformers.models.siglip2.image_processing_siglip2 import convert_image_to_patches

    from radapter.backbones.hf_siglip import patchify

    images = torch.randn(2, 3, 32, 24)
    patches, mask, grid = patchify(images, 8)
    for i in range(2):
        assert torch.equal(patches[i], convert_image_to_patches(images[i], 8))
    assert mask.shape == (2, 12) and bool(mask.all()) and grid.tolist() == [[4, 3], [4, 3]]
    model = hf_model("Siglip2Model")
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=grid)
        ref = getattr(ref, "pooler_output", ref)
        assert torch.equal(radapter.encode_image(model, images), ref)
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        patchify(torch.randn(1, 3, 30, 32), 8)


@pytest.mark.parametrize(
    "class_name,tower", [("CLIPVisionModelWithProjection", "image"), ("CLIPTextModelWithProjection", "text")]
)
def test_single_tower_models(class_name, tower):
    model = hf_model(class_name)
    with pytest.raises(
        UnsupportedBackboneError, match=f"no {'text' if tower == 'image' else 'image'} tower.*towers='{tower}'"
    ):
        radapter.apply_r_adapter(model, radapter.RAdapterConfig())
    handler = radapter.get_handler(model)
    assert handler.logit_scale(model) is None and handler.towers(model) == (tower,)
    # the single-tower embedding equals CLIPModel's for the same weights
    full = hf_model("CLIPModel")
    part = full.vision_model if tower == "image" else full.text_model
    proj = full.visual_projection if tower == "image" else full.text_projection
    getattr(model, f"{'vision' if tower == 'image' else 'text'}_model").load_state_dict(part.state_dict())
    getattr(model, f"{'visual' if tower == 'image' else 'text'}_projection").load_state_dict(proj.state_dict())
    images, tokens = inputs(32, eos=2)
    with torch.no_grad():
        if tower == "image":
            assert torch.allclose(radapter.encode_image(model, images), radapter.encode_image(full, images), atol=1e-6)
        else:
            assert torch.allclose(radapter.encode_text(model, tokens), radapter.encode_text(full, tokens), atol=1e-6)


def _tiny_tokenizer(folder):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in list(string.ascii_lowercase) + ["."]:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>").save_pretrained(
        folder
    )


@pytest.mark.parametrize(
    "class_name,size,resize_mode,mean0",
    [
        ("SiglipModel", 32, "squash", 0.5),
        ("Siglip2Model", 32, "squash", 0.5),  # patch 8 · √(16 patches)
        ("CLIPVisionModelWithProjection", 32, "shortest", 0.48145466),
    ],
)
def test_load_model_dispatches_on_the_config_type(tmp_path, class_name, size, resize_mode, mean0):
    folder = tmp_path / class_name
    hf_model(class_name).save_pretrained(folder)
    if class_name != "CLIPVisionModelWithProjection":
        _tiny_tokenizer(folder)
    loaded = radapter.load_model(f"hf:{folder}")
    assert type(loaded.model).__name__ == class_name
    assert loaded.info["architecture"] == class_name and loaded.info["library"] == "transformers"
    assert loaded.image_size == size and loaded.info["preprocess_cfg"]["resize_mode"] == resize_mode
    assert loaded.mean[0] == pytest.approx(mean0)
    if class_name == "CLIPVisionModelWithProjection":
        assert loaded.tokenizer is None
    else:
        tokens = loaded.tokenizer(["a cat.", "dog"])
        assert tokens["input_ids"].shape == (2, 16)  # padded to the context length
        assert radapter.encode_text(loaded.model, tokens).shape[0] == 2


def test_load_model_reads_the_image_processor(tmp_path):
    from transformers import SiglipImageProcessor

    folder = tmp_path / "siglip"
    hf_model("SiglipModel").save_pretrained(folder)
    _tiny_tokenizer(folder)
    SiglipImageProcessor(size={"height": 48, "width": 48}, image_mean=[0.1, 0.2, 0.3], resample=2).save_pretrained(
        folder
    )
    loaded = radapter.load_model(f"hf:{folder}")
    assert loaded.image_size == 48 and loaded.mean == (0.1, 0.2, 0.3)
    assert loaded.info["preprocess_cfg"]["interpolation"] == "bilinear"


def test_load_model_refuses_other_model_types(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path / "bert")
    with pytest.raises(
        ValueError, match=r"model_type 'bert'.*clip, clip_vision_model, clip_text_model, siglip, siglip2"
    ):
        radapter.load_model(f"hf:{tmp_path / 'bert'}")

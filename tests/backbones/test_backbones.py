"""Backbone detection, unsupported models, loading by name/path, zero-shot heads."""

from __future__ import annotations

import pytest
import torch

import radapter
from conftest import BUILDERS
from radapter.backbones import UnsupportedBackboneError, get_handler


def test_handlers_detected():
    assert get_handler(BUILDERS["open_clip"]()).library == "open_clip"
    assert get_handler(BUILDERS["hf"]()).library == "transformers"


def test_unsupported_model_names_what_is_supported():
    with pytest.raises(UnsupportedBackboneError, match="transformers CLIPModel"):
        radapter.apply_r_adapter(torch.nn.Linear(3, 3), radapter.RAdapterConfig())


def test_open_clip_timm_tower_is_a_clear_error():
    from open_clip.model import CLIP

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1},
    }
    model = CLIP(**cfg)  # ModifiedResNet image tower
    with pytest.raises(UnsupportedBackboneError, match="VisionTransformer"):
        radapter.apply_r_adapter(model, radapter.RAdapterConfig())
    radapter.apply_r_adapter(model, radapter.RAdapterConfig(towers="text"))  # the text tower is fine
    assert all(s.name.startswith("text.") for s in model.radapter_sites)


def test_load_model_from_json_config(tiny_open_clip_json):
    loaded = radapter.load_model(tiny_open_clip_json, pretrained="none")
    assert loaded.image_size == 32 and loaded.info["library"] == "open_clip"
    tokens = loaded.tokenizer(["a photo of a cat", "a dog"])
    assert tokens.shape == (2, 16)
    feats = radapter.encode_text(loaded.model, tokens, normalize=True)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert loaded.model.radapter_base_info["model_cfg"]["embed_dim"] == 32


def test_load_model_round_trips_through_export(tiny_open_clip_json, tmp_path):
    loaded = radapter.load_model(tiny_open_clip_json, pretrained="none")
    model = radapter.apply_r_adapter(loaded.model.eval(), radapter.RAdapterConfig())
    radapter.export_merged(radapter.merge_r_adapter(model, alpha=0.0), str(tmp_path / "m"))
    again = radapter.load_model(f"local-dir:{tmp_path / 'm'}")
    for k, v in loaded.model.state_dict().items():
        if ".adapter." not in k:
            key = k.replace(".base.", ".") if ".base." in k else k
            assert torch.equal(again.model.state_dict()[key], v), k


def test_load_model_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'ViT-Nope'"):
        radapter.load_model("ViT-Nope")
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        radapter.load_model(f"local-dir:{tmp_path}")
    bad = tmp_path / "bad.json"
    bad.write_text('{"embed_dim": 3}')
    with pytest.raises(ValueError, match="missing key 'vision_cfg'"):
        radapter.load_model(str(bad))


def test_zero_shot_head_is_renormalised_template_mean(tiny_open_clip_json):
    loaded = radapter.load_model(tiny_open_clip_json, pretrained="none")
    model = loaded.model.eval()
    templates = ["a photo of a {}.", "a drawing of a {}."]
    head = radapter.build_zero_shot_head(model, loaded.tokenizer, ["cat", "dog", "fish"], templates)
    assert head.shape == (3, 32)
    assert torch.allclose(head.norm(dim=-1), torch.ones(3), atol=1e-5)
    with torch.no_grad():
        e = radapter.encode_text(model, loaded.tokenizer(["a photo of a dog.", "a drawing of a dog."]), normalize=True)
    assert torch.allclose(head[1], torch.nn.functional.normalize(e.mean(0), dim=-1), atol=1e-5)
    assert len(radapter.OPENAI_IMAGENET_TEMPLATES) == 80

"""The backbone extension point: handler choice by priority, and the handler interface on every family."""

from __future__ import annotations

import pytest
import torch
from tiny_backbones import hf_model, load_hf_text_clip, load_timm_clip

import radapter
from conftest import make_hf_clip, make_open_clip
from radapter.backbones import base as registry
from radapter.backbones.open_clip import OpenClipHandler


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_a_more_specific_handler_wins_without_editing_the_existing_one(clean_registry):
    @registry.register_backbone
    class AttnOnlyOpenClip(OpenClipHandler):
        """A special case of open_clip models (marked ones): adapters after attention only."""

        name = "test-attn-only"
        priority = 10

        def matches(self, model):
            return super().matches(model) and getattr(model, "marked", False)

        def block_sites(self, path, block, tower, index):
            return [s for s in super().block_sites(path, block, tower, index) if s.name.endswith(".attn")]

    plain, marked = make_open_clip(), make_open_clip()
    marked.marked = True
    assert radapter.get_handler(plain).name == "open_clip"
    assert radapter.get_handler(marked).name == "test-attn-only"
    radapter.apply_r_adapter(marked, radapter.RAdapterConfig())
    assert marked.radapter_sites and all(s.name.endswith(".attn") for s in marked.radapter_sites)


def test_equal_priorities_that_both_match_are_an_error(clean_registry):
    @registry.register_backbone
    class Rival(OpenClipHandler):
        name = "test-rival"

    with pytest.raises(
        RuntimeError, match=r"\['open_clip', 'test-rival'\].*higher priority|\['test-rival', 'open_clip'\]"
    ):
        radapter.get_handler(make_open_clip())


def test_a_handler_needs_a_name(clean_registry):
    with pytest.raises(ValueError, match="non-empty 'name'"):

        @registry.register_backbone
        class Nameless(OpenClipHandler):
            name = ""


def _builders(tmp_path):
    return {
        "open_clip": lambda: make_open_clip(),
        "open_clip-timm": lambda: load_timm_clip(tmp_path, "siglip")[0].model,
        "open_clip-hf-text": lambda: load_hf_text_clip(tmp_path, "roberta").model,
        "transformers-clip": lambda: make_hf_clip(),
        "transformers-siglip": lambda: hf_model("SiglipModel"),
        "transformers-siglip2": lambda: hf_model("Siglip2Model"),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "open_clip",
        "open_clip-timm",
        "open_clip-hf-text",
        "transformers-clip",
        "transformers-siglip",
        "transformers-siglip2",
    ],
)
def test_handler_interface(tmp_path, kind):
    model = _builders(tmp_path)[kind]()
    handler = radapter.get_handler(model)
    scale = handler.logit_scale(model)
    assert isinstance(scale, torch.Tensor) and torch.allclose(scale, model.logit_scale.exp())
    bias = handler.logit_bias(model)
    assert (bias is None) == (getattr(model, "logit_bias", None) is None)

    named = handler.image_tower_parameters(model)
    params = dict(model.named_parameters())
    assert named and all(params[n] is p for n, p in named)  # full dotted names of the model's own parameters
    assert not any(n.startswith(("text", "transformer.", "token_embedding")) for n, _ in named)
    image_sites = handler.sites(model, ("image",), None, ["attn", "mlp"])
    assert {s.linear_path + ".weight" for s in image_sites} <= {n for n, _ in named}

    targets = handler.lora_targets(model)
    modules = dict(model.named_modules())
    assert all(isinstance(modules[t], (torch.nn.Linear, torch.nn.MultiheadAttention)) for t in targets)
    for site in handler.sites(model, ("image", "text"), None, ["attn", "mlp"]):
        # every block R-Adapter adapts is a LoRA target too (its merged linear, or the MHA that owns it)
        assert site.linear_path in targets or site.linear_path.rsplit(".", 1)[0] in targets, site


def test_open_clip_loading_snippets_run(tmp_path, tiny_open_clip_json):
    loaded = radapter.load_model(tiny_open_clip_json, pretrained="none")
    merged = radapter.merge_r_adapter(radapter.apply_r_adapter(loaded.model.eval()), alpha=0.0)
    out = str(tmp_path / "export")
    radapter.export_merged(merged, out)
    handler = radapter.get_handler(merged)
    scope: dict = {}
    exec(handler.loading_snippet(out, loaded.info), scope)
    tokens = scope["tokenizer"](["a photo of a cat"])
    with torch.no_grad():
        assert torch.equal(scope["model"].eval().encode_text(tokens), loaded.model.encode_text(tokens))
    base = handler.base_snippet(loaded.info)
    assert "open_clip.add_model_config(" in base and 'create_model_and_transforms("tiny-clip")' in base
    scope = {}
    exec(base, scope)
    assert type(scope["base"]).__name__ == "CLIP"


def test_base_snippet_forces_quick_gelu_for_openai_weights():
    info = {"name": "ViT-B-16", "pretrained": "openai", "quick_gelu": True}
    snippet = radapter.get_handler(make_open_clip()).base_snippet(info)
    assert 'create_model_and_transforms("ViT-B-16", pretrained="openai", force_quick_gelu=True)' in snippet
    info = {"name": "ViT-B-16-quickgelu", "pretrained": "openai", "quick_gelu": True}
    assert "force_quick_gelu" not in radapter.get_handler(make_open_clip()).base_snippet(info)

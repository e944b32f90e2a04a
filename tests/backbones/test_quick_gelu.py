"""OpenAI weights are loaded with QuickGELU (they were trained with it; open_clip 3.3 builds nn.GELU and warns)."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file

import radapter
from conftest import TINY_OPEN_CLIP_CFG
from radapter.backbones.loading import resolve_open_clip


def _activations(model) -> set[type]:
    return {type(m) for m in model.modules() if isinstance(m, (torch.nn.GELU, QuickGELU))}


@pytest.mark.parametrize(
    "name,tag,forced",
    [
        ("ViT-B-16", "openai", True),
        ("ViT-L-14", "openai", True),
        ("ViT-B-32", "openai", True),
        ("ViT-B-16", "laion2b_s34b_b88k", False),  # trained with GELU
        ("ViT-B-16-quickgelu", "openai", False),  # the config already builds QuickGELU
        ("ViT-B-16", None, False),
    ],
)
def test_resolution_follows_the_pretrained_tag_without_downloading(name, tag, forced):
    _, model_cfg, _, kwargs = resolve_open_clip(name, tag)
    assert kwargs.get("force_quick_gelu", False) is forced
    expected = forced or name.endswith("-quickgelu")
    assert bool(model_cfg.get("quick_gelu", False)) is expected
    assert not open_clip.get_model_config(name).get("quick_gelu", False) or name.endswith("-quickgelu")  # untouched


@pytest.fixture
def tagged_tiny(tmp_path, monkeypatch):
    """A tiny config registered with open_clip and two 'pretrained tags' pointing at a local checkpoint: one
    trained with QuickGELU (as OpenAI's), one without. open_clip resolves a tag with a 'file' to that path."""
    cfg_path = tmp_path / "tiny-qg-test.json"
    cfg_path.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    open_clip.add_model_config(str(cfg_path))
    torch.manual_seed(0)
    ckpt = tmp_path / "weights.safetensors"
    save_file(open_clip.create_model("tiny-qg-test").state_dict(), str(ckpt))
    tags = {"openai": {"file": str(ckpt), "quick_gelu": True}, "gelu": {"file": str(ckpt)}}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-qg-test", tags)
    return "tiny-qg-test"


def test_load_model_builds_quick_gelu_for_a_quick_gelu_tag_and_exports_it(tagged_tiny, tmp_path):
    loaded = radapter.load_model(tagged_tiny, pretrained="openai")
    assert _activations(loaded.model) == {QuickGELU}
    assert loaded.info["quick_gelu"] is True and loaded.info["model_cfg"]["quick_gelu"] is True
    gelu = radapter.load_model(tagged_tiny, pretrained="gelu")
    assert _activations(gelu.model) == {torch.nn.GELU} and gelu.info["quick_gelu"] is False
    # the weights are the same, the activation is not: the outputs differ
    tokens = loaded.tokenizer(["a photo of a cat"])
    with torch.no_grad():
        assert not torch.allclose(loaded.model.encode_text(tokens), gelu.model.encode_text(tokens), atol=1e-4)
    # an exported model is rebuilt with QuickGELU by plain open_clip
    merged = radapter.merge_r_adapter(radapter.apply_r_adapter(loaded.model.eval()), alpha=0.0)
    radapter.export_merged(merged, str(tmp_path / "export"))
    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    assert _activations(plain) == {QuickGELU}
    with torch.no_grad():
        assert torch.equal(plain.eval().encode_text(tokens), loaded.model.encode_text(tokens))
    again = radapter.load_model(f"local-dir:{tmp_path / 'export'}")
    assert again.info["quick_gelu"] is True and _activations(again.model) == {QuickGELU}

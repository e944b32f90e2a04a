"""Saving/loading adapters and exporting merged models that plain open_clip / transformers load."""

from __future__ import annotations

import json
import os

import pytest
import torch

import radapter
from conftest import BUILDERS, TINY_OPEN_CLIP_CFG, sample_inputs


def _trained_like(kind, **cfg):
    model = radapter.apply_r_adapter(BUILDERS[kind](), radapter.RAdapterConfig(**cfg))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _, a in radapter.iter_adapters(model):
            for name, t in a.state_dict().items():
                t.copy_(torch.randn(t.shape, generator=g) * 0.05 + (0.2 if "scale" in name else 0.0))
    return model


def _outputs(model, kind):
    images, tokens = sample_inputs(kind)
    with torch.no_grad():
        return torch.cat([radapter.encode_image(model, images), radapter.encode_text(model, tokens)], dim=1)


@pytest.mark.parametrize("rank", [None, 4])
def test_save_load_round_trip(backbone_kind, rank, tmp_path):
    model = _trained_like(backbone_kind, rank=rank, alpha=0.7)
    radapter.save_adapter(model, str(tmp_path / "ad"))
    files = set(os.listdir(tmp_path / "ad"))
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= files
    meta = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    assert meta["config"]["alpha"] == 0.7 and meta["radapter_version"] == radapter.__version__
    assert meta["trainable_params"] == radapter.count_parameters(model)[0]
    loaded = radapter.load_adapter(BUILDERS[backbone_kind](), str(tmp_path / "ad"))
    assert loaded.radapter_config == model.radapter_config
    for k, v in radapter.adapter_state_dict(model).items():
        assert torch.equal(radapter.adapter_state_dict(loaded)[k], v), k
    assert torch.equal(_outputs(loaded, backbone_kind), _outputs(model, backbone_kind))
    card = (tmp_path / "ad" / "README.md").read_text()
    assert "load_adapter" in card


def test_load_adapter_on_wrong_backbone_names_sites(tmp_path):
    model = _trained_like("open_clip")
    radapter.save_adapter(model, str(tmp_path / "ad"))
    with pytest.raises(ValueError, match=r"size mismatch at \['image.0.attn \(adapter d=48, backbone d=40\)"):
        radapter.load_adapter(BUILDERS["hf"](), str(tmp_path / "ad"))
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        radapter.load_adapter(BUILDERS["hf"](), str(tmp_path / "nothing"))


def test_export_merged_open_clip_loads_with_plain_open_clip(tmp_path):
    import open_clip

    model = _trained_like("open_clip")
    merged = radapter.merge_r_adapter(model, alpha=0.5)
    radapter.export_merged(merged, str(tmp_path / "merged"))
    plain, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'merged'}")
    plain.eval()
    assert type(plain) is type(merged)
    assert torch.allclose(_outputs(plain, "open_clip"), _outputs(model, "open_clip"), atol=1e-5)
    cfg = json.loads((tmp_path / "merged" / "open_clip_config.json").read_text())
    assert cfg["model_cfg"] == TINY_OPEN_CLIP_CFG
    assert json.loads((tmp_path / "merged" / "radapter_merge.json").read_text())["alpha"] == 0.5


def test_export_merged_hf_loads_with_from_pretrained(tmp_path):
    from transformers import CLIPModel

    model = _trained_like("hf")
    merged = radapter.merge_r_adapter(model, alpha=1.0)
    radapter.export_merged(merged, str(tmp_path / "merged"))
    plain = CLIPModel.from_pretrained(str(tmp_path / "merged")).eval()
    radapter.set_alpha(model, 1.0)
    assert torch.allclose(_outputs(plain, "hf"), _outputs(model, "hf"), atol=1e-5)
    assert (tmp_path / "merged" / "README.md").exists()


def test_export_rejects_unmerged(tmp_path):
    with pytest.raises(ValueError, match="merge_r_adapter"):
        radapter.export_merged(_trained_like("open_clip"), str(tmp_path / "x"))


def test_corrupt_adapter_weights_named(tmp_path):
    model = _trained_like("open_clip")
    radapter.save_adapter(model, str(tmp_path / "ad"))
    (tmp_path / "ad" / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="adapter_model.safetensors"):
        radapter.load_adapter(BUILDERS["open_clip"](), str(tmp_path / "ad"))

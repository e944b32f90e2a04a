"""α has one owner (the model's config), an EMA that never moved is reported, and loading an adapter names
what is missing or unexpected and warns about another base model."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import radapter
from conftest import BUILDERS, make_open_clip, sample_inputs


def _trained(kind="open_clip", ema=True, seed=0):
    model = radapter.apply_r_adapter(BUILDERS[kind](seed), radapter.RAdapterConfig(drop_prob=0.0, ema_momentum=0.5))
    model.train()
    with torch.no_grad():
        for _, adapter in radapter.iter_adapters(model):
            adapter.weight.normal_(0, 0.05)
    if ema:
        radapter.ema_update(model)
    return model


def test_one_alpha_read_by_every_adapter():
    model = _trained()
    radapter.set_alpha(model, 0.3)
    alphas = {a.alpha for _, a in radapter.iter_adapters(model)}
    assert alphas == {0.3} and model.radapter_config.alpha == 0.3
    model.radapter_config.alpha = 0.7  # the config is the owner: adapters follow it
    assert {a.alpha for _, a in radapter.iter_adapters(model)} == {0.7}
    assert all(a.config is model.radapter_config for _, a in radapter.iter_adapters(model))
    merged = radapter.merge_r_adapter(model)  # default α: the config's
    assert merged.radapter_merged["alpha"] == 0.7


def test_eval_mode_follows_the_shared_alpha_exactly():
    model = _trained().eval()
    images, _ = sample_inputs("open_clip")
    with torch.no_grad():
        radapter.set_alpha(model, 0.0)
        base = make_open_clip(0).eval()
        assert torch.equal(radapter.encode_image(model, images), radapter.encode_image(base, images))
        radapter.set_alpha(model, 0.5)
        assert not torch.equal(radapter.encode_image(model, images), radapter.encode_image(base, images))


def test_a_loop_without_ema_update_is_reported_at_eval_and_merge():
    model = _trained(ema=False)
    with pytest.warns(UserWarning, match="EMA never moved"):
        model.eval()
    with pytest.warns(UserWarning, match="ema_update"):
        radapter.merge_r_adapter(model, alpha=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        radapter.merge_r_adapter(model, alpha=0.5, use_ema=False)  # the live weights are what was asked for
        radapter.merge_r_adapter(_trained(ema=True), alpha=0.5)


def test_load_adapter_names_missing_and_unexpected_sites(tmp_path):
    model = _trained()
    radapter.save_adapter(model, str(tmp_path / "a"))
    meta = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    sites = meta["sites"]
    sites["image.9.attn"] = sites.pop("image.1.attn")
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps(meta))
    with pytest.raises(radapter.UserError) as err:
        radapter.load_adapter(make_open_clip(0), str(tmp_path / "a"))
    msg = str(err.value)
    assert "missing from the adapter (this backbone has these sites): ['image.1.attn']" in msg
    assert "unexpected in the adapter (this backbone lacks these sites): ['image.9.attn']" in msg


def test_load_adapter_warns_on_another_base_of_the_same_shapes(tmp_path):
    radapter.save_adapter(_trained(seed=0), str(tmp_path / "a"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        radapter.load_adapter(make_open_clip(0), str(tmp_path / "a"))
    with pytest.warns(UserWarning, match="trained on another base model .*base weights differ"):
        radapter.load_adapter(make_open_clip(1), str(tmp_path / "a"))
    other = make_open_clip(0)
    other.radapter_base_info = {**other.radapter_base_info, "name": "ViT-B-32", "pretrained": "openai"}
    with pytest.warns(UserWarning, match="name 'tiny' ≠ 'ViT-B-32'"):
        radapter.load_adapter(other, str(tmp_path / "a"))

import pytest

from radapter.adapters.card import adapter_card, config_table, merged_card
from radapter.version import __version__

CONFIG = {
    "rank": None,
    "init_scale": 0.1,
    "drop_prob": 0.2,
    "drop_granularity": "token",
    "ema_momentum": 0.999,
    "alpha": 0.5,
    "towers": "both",
    "blocks": None,
    "positions": ["attn", "mlp"],
}
OPEN_CLIP = {"library": "open_clip", "name": "ViT-B-16", "pretrained": "openai", "model_cfg": {"embed_dim": 512}}


HF = {"library": "transformers", "name": "hf:openai/clip-vit-base-patch16", "pretrained": None}


def _handler(kind):
    """The real backbone handler (the loading code in a card is its snippet)."""
    from conftest import BUILDERS
    from radapter.backbones import get_handler

    return get_handler(BUILDERS[kind]())


def _info(**kw):
    base = kw.get("base_model", OPEN_CLIP)
    handler = _handler("hf" if base["library"] == "transformers" else "open_clip")
    return {
        "base_model": base,
        "config": CONFIG,
        "trainable_params": 20_447_280,
        "library_version": "9.9.9",
        "base_code": handler.base_snippet(base),
        **kw,
    }


def _merged(base, folder="path/to/this/folder", **kw):
    handler = _handler("hf" if base["library"] == "transformers" else "open_clip")
    return {"base_model": base, "load_code": handler.loading_snippet(folder, base), **kw}


def test_adapter_card_open_clip():
    card = adapter_card(_info(path="out/adapter", total_params=149_620_737))
    assert card.startswith("---\nlibrary_name: radapter\n")
    assert "# R-Adapter for open_clip `ViT-B-16` (pretrained: openai)" in card
    assert 'open_clip.create_model_and_transforms("ViT-B-16", pretrained="openai")' in card
    assert 'model = radapter.load_adapter(base, "out/adapter")' in card
    assert "radapter.merge_r_adapter(model, alpha=0.5)" in card
    for row in (
        "| `drop_prob` | `0.2` |",
        "| `ema_momentum` | `0.999` |",
        "| `rank` | `null` |",
        '| `positions` | `["attn", "mlp"]` |',
        '| `drop_granularity` | `"token"` |',
    ):
        assert row in card
    assert "20,447,280 (20.4 M) of 149,620,737 (13.67 %)" in card
    assert "Efficient and Versatile Robust Fine-Tuning of Zero-shot Models" in card
    assert "Kim, Sungyeon and Jeong, Boseung and Kim, Donghyun and Kwak, Suha" in card
    assert "2408.05749" in card and "ECCV" in card
    assert "radapter 9.9.9" in card
    assert "## Results" not in card


def test_adapter_card_transformers_and_config_file_bases():
    card = adapter_card(_info(base_model=HF))
    assert 'base = CLIPModel.from_pretrained("openai/clip-vit-base-patch16")' in card
    assert 'base_model: "openai/clip-vit-base-patch16"' in card
    cfg = {"library": "open_clip", "name": "tests/tiny.json", "pretrained": "none"}
    card = adapter_card(_info(base_model=cfg, library_version=None))
    assert 'open_clip.add_model_config("tests/tiny.json")' in card
    assert 'open_clip.create_model_and_transforms("tiny")' in card
    assert f"radapter {__version__}" in card


def test_merged_card_open_clip_and_transformers():
    card = merged_card(_merged(OPEN_CLIP, "m", alpha=0.5, config={}, trainable_params=None))
    assert "library_name: open_clip" in card
    assert "merged at α = 0.5" in card
    assert 'open_clip.create_model_and_transforms("local-dir:m")' in card
    assert 'open_clip.get_tokenizer("local-dir:m")' in card
    assert "radapter.load_adapter" not in card and "## R-Adapter configuration" not in card
    card = merged_card(_merged(HF, alpha=0.8, config=CONFIG, trainable_params=20_447_280))
    assert "library_name: transformers" in card
    assert 'CLIPModel.from_pretrained("path/to/this/folder")' in card
    # the card states the α the model was merged at, never a contradicting config α next to it
    assert "`alpha`" not in card and "merged at α = 0.8" in card
    assert "20,447,280" in card


def test_cards_include_the_results_table_they_are_given():
    table = "| method | α | IN (ID) |\n|---|---|---|\n| R-Adapter | 0.5 | 78.0 |"
    card = merged_card(_merged(OPEN_CLIP, alpha=0.5, results=table))
    assert "## Results" in card and table in card
    assert "## Results" not in merged_card(_merged(OPEN_CLIP, alpha=0.5))


def test_a_card_without_loading_code_is_an_error():
    with pytest.raises(ValueError, match="load_code"):
        merged_card({"base_model": OPEN_CLIP, "alpha": 0.5})


def test_unknown_library_is_an_error():
    with pytest.raises(ValueError, match="base_model.library"):
        adapter_card(_info(base_model={"library": "timm", "name": "vit"}))


def test_config_table_flattens_and_escapes():
    table = config_table({"loss": {"name": "mpm_nce", "margin": 0.05}, "note": "a|b"})
    assert table.splitlines() == [
        "| field | value |",
        "|---|---|",
        '| `loss.name` | `"mpm_nce"` |',
        "| `loss.margin` | `0.05` |",
        '| `note` | `"a\\|b"` |',
    ]

"""Which backbones R-Adapter adapts: every open_clip model config and the supported transformers classes, each
built tiny, adapted, merged, exported and reloaded with the plain library. Writes ``docs/backbones.md``.

For each open_clip config (``open_clip.list_models()``) the script

1. shrinks it (depth 2, widths 32–64, small images; the architecture — tower types, block types, pooling,
   projections, activations, norms — is the config's own). timm trunks are shrunk through keyword arguments of
   their timm entrypoint, registered under a new timm name; Hugging Face text towers through a tiny config of the
   same model type written to a local folder. Nothing is downloaded;
2. builds it with :func:`radapter.load_model` (random init) and applies R-Adapter to both towers (falling back to
   one tower when the other is refused) with random, non-zero adapters;
3. checks that the merged model equals the adapted one in eval mode (``max |merged − unmerged| / max |unmerged|
   ≤ 1e-5`` on both towers' embeddings, at α = 0.7) and that the adapters changed the outputs;
4. exports the merged model with :func:`radapter.export_merged` and reloads it with plain open_clip
   (``create_model_and_transforms("local-dir:…")``) or ``<Class>.from_pretrained``; the reload must reproduce the
   merged model's outputs (≤ 1e-6).

Usage::

    PYTHONPATH=src python scripts/backbone_table.py            # all configs, writes docs/backbones.md
    PYTHONPATH=src python scripts/backbone_table.py --only ViT-B-16-SigLIP EVA02-B-16 --out -
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import sys
import tempfile
import time
import warnings

import torch

# Public facts: the model type of the Hugging Face text towers open_clip's configs name.
HF_TEXT_MODEL_TYPES = {
    "roberta-base": "roberta",
    "xlm-roberta-base": "xlm-roberta",
    "xlm-roberta-large": "xlm-roberta",
    "google/mt5-base": "mt5",
    "google/mt5-xl": "mt5",
    "facebook/nllb-200-distilled-600M": "m2m_100",
    "facebook/nllb-200-distilled-1.3B": "m2m_100",
}
TINY_VOCAB = 1000
JOINT = 64  # tiny joint embedding width


def _timm_shrink(timm_name: str) -> tuple[dict, int]:
    """Keyword arguments that shrink a timm entrypoint, and the image size to build it at."""
    from timm.models import model_entrypoint

    module = model_entrypoint(timm_name).__module__.rsplit(".", 1)[-1]
    vit = {"embed_dim": JOINT, "depth": 2, "num_heads": 2}
    if module in ("vision_transformer", "vision_transformer_relpos"):
        return {**vit, "img_size": 64}, 64
    if module == "eva":
        return {**vit, "img_size": 64}, 64
    if module == "vision_transformer_hybrid":  # MobileCLIP-B: the conv stem fixes the width (768)
        return {"depth": 2, "img_size": 64}, 64
    if module == "vitamin":
        from timm.models.vitamin import VitCfg, VitConvCfg

        stem = VitCfg(
            embed_dim=(16, 32, JOINT),
            depths=(1, 1, 1),
            stem_width=16,
            conv_cfg=VitConvCfg(norm_layer="layernorm2d", norm_eps=1e-6),
            head_type="1d",
        )
        return {**vit, "embed_cfg": stem, "img_size": 64}, 64
    if module == "swin_transformer":
        return {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}, 224
    if module == "convnext":
        return {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, JOINT)}, 64
    if module == "fastvit":
        return {"layers": (1, 1, 1, 1), "embed_dims": (8, 16, 32, JOINT)}, 64
    return {}, 64


def register_tiny_timm(timm_name: str) -> tuple[str, int]:
    """Registers ``radapter_tiny__<timm_name>`` (the same entrypoint with shrinking kwargs); returns it and the
    image size."""
    import timm
    from timm.models import model_entrypoint, register_model

    tiny = "radapter_tiny__" + timm_name
    kwargs, size = _timm_shrink(timm_name)
    if not timm.is_model(tiny):
        original = model_entrypoint(timm_name)

        def entry(pretrained: bool = False, **kw):
            return original(pretrained=False, **{**kwargs, **kw})

        entry.__name__ = tiny
        entry.__module__ = __name__
        register_model(entry)
    return tiny, size


def _hf_text_dir(hf_name: str, root: str) -> str:
    """A folder holding a tiny config of ``hf_name``'s model type (AutoConfig reads it offline)."""
    from transformers import CONFIG_MAPPING

    model_type = HF_TEXT_MODEL_TYPES[hf_name]
    common = {"vocab_size": TINY_VOCAB, "pad_token_id": 1}
    if model_type in ("roberta", "xlm-roberta"):
        cfg = dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            bos_token_id=0,
            eos_token_id=2,
        )
    elif model_type == "mt5":
        cfg = dict(
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
            eos_token_id=2,
        )
    else:  # m2m_100
        cfg = dict(
            d_model=32,
            encoder_layers=2,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=128,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
        )
    path = os.path.join(root, "hf-text-" + hf_name.replace("/", "--"))
    if not os.path.isdir(path):
        # With no CLIP checkpoint, open_clip loads the text tower's own pretrained weights: save tiny random ones.
        from transformers import AutoModel

        torch.manual_seed(0)
        AutoModel.from_config(CONFIG_MAPPING[model_type](**common, **cfg)).save_pretrained(path)
    return path


def tiny_open_clip_config(name: str, root: str) -> tuple[dict, int]:
    """A shrunk copy of open_clip's config ``name``, and the image size to feed it."""
    import open_clip

    cfg = copy.deepcopy(open_clip.get_model_config(name))
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    cfg["embed_dim"] = JOINT
    if v.get("timm_model_name"):
        v["timm_model_name"], size = register_tiny_timm(v["timm_model_name"])
        v["timm_model_pretrained"] = False
        if v.get("timm_proj") == "none":  # the trunk's own width is the joint embedding
            import timm

            cfg["embed_dim"] = timm.create_model(v["timm_model_name"], num_classes=0).num_features
    elif isinstance(v.get("layers"), (list, tuple)):  # ModifiedResNet
        v.update(layers=[1, 1, 1, 1], width=16, head_width=16)
        size = 64
    else:
        patch = v.get("patch_size", 16)
        v.update(layers=2, width=32, head_width=16)
        size = 2 * patch
        if "attn_pooler_heads" in v:
            v["attn_pooler_heads"] = 2
    v["image_size"] = size
    for key in ("hf_tokenizer_name", "tokenizer_kwargs", "tokenizer_mode"):
        t.pop(key, None)  # the table feeds token ids; a Hub tokenizer would be downloaded
    if t.get("hf_model_name"):
        t["hf_model_name"] = _hf_text_dir(t["hf_model_name"], root)
    else:
        t.update(width=32, heads=2, layers=2)
        if t.get("vocab_size", 49408) > 60000:
            t["vocab_size"] = TINY_VOCAB
        for key in ("pad_id", "eos_id"):
            if key in t:
                t[key] = min(t[key], t.get("vocab_size", 49408) - 1)
    if "multimodal_cfg" in cfg:
        cfg["multimodal_cfg"].update(width=32, heads=2, layers=1, attn_pooler_heads=2)
    return cfg, size


def _describe_tower(model, tower: str) -> str:
    if tower == "image":
        visual = getattr(model, "visual", None) or getattr(model, "vision_model", None)
        trunk = getattr(visual, "trunk", None)
        if trunk is not None:
            return f"timm {type(trunk).__name__}"
        return type(visual).__name__ if visual is not None else "–"
    text = getattr(model, "text", None)
    if text is not None:
        inner = getattr(text, "transformer", None)
        return f"HF {type(inner).__name__}" if type(text).__name__ == "HFTextEncoder" else type(text).__name__
    if getattr(model, "transformer", None) is not None:
        return "TextTransformer"
    tm = getattr(model, "text_model", None)
    return type(tm).__name__ if tm is not None else "–"


def _random_tokens(model, batch: int, gen: torch.Generator):
    """Random ids of the text tower's full context length (native towers add every position embedding)."""
    ctx = getattr(model, "context_length", None) or getattr(getattr(model, "text", None), "context_length", 16)
    text = getattr(model, "text", None)
    if text is not None and type(text).__name__ == "HFTextEncoder":
        ctx = 16
    return torch.randint(3, TINY_VOCAB - 1, (batch, ctx), generator=gen)


def _perturb(model, gen: torch.Generator) -> None:
    """Random, non-zero adapters (live = EMA), so merged ≠ base and the check tests something."""
    import radapter

    with torch.no_grad():
        for _, adapter in radapter.iter_adapters(model):
            for name in adapter.param_names:
                p = getattr(adapter, name)
                if p.dim() == 2:
                    p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
                else:
                    p.fill_(0.5)
    radapter.ema_update(model, momentum=0.0)


@torch.no_grad()
def _unit_layer_scales(model) -> None:
    """LayerScale starts at 1e-4 … 1e-6 in a fresh model (trained values are O(0.1–1)), which would hide every
    block's contribution, adapters included; set it to 1 so the check sees the blocks."""
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] in ("gamma", "gamma_1", "gamma_2"):
            p.fill_(1.0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@torch.no_grad()
def check_model(model, towers: tuple[str, ...], images, tokens, export_dir: str, reload) -> dict:
    """Adapt, merge, compare, export, reload. Returns the row's measurements."""
    import radapter
    from radapter.backbones import encode_image, encode_text

    def run(m):
        out = {}
        if "image" in towers:
            out["image"] = encode_image(m, images)
        if "text" in towers:
            out["text"] = encode_text(m, tokens)
        return out

    model.eval()
    base = run(model)
    adapted = radapter.apply_r_adapter(model, radapter.RAdapterConfig(towers="both" if len(towers) == 2 else towers[0]))
    _perturb(adapted, torch.Generator().manual_seed(0))
    radapter.set_alpha(adapted, 0.7)
    unmerged = run(adapted)
    merged_model = radapter.merge_r_adapter(adapted, alpha=0.7).eval()
    merged = run(merged_model)
    radapter.export_merged(merged_model, export_dir)
    reloaded = run(reload(export_dir).eval())
    return {
        "sites": len(adapted.radapter_sites),
        "merge_err": max(_rel(merged[k], unmerged[k]) for k in merged),
        "moved": min(_rel(unmerged[k], base[k]) for k in merged),
        "reload_err": max(_rel(reloaded[k], merged[k]) for k in merged),
    }


def _adaptable_towers(model) -> tuple[tuple[str, ...], str]:
    """The towers R-Adapter accepts, and the refusal message of the others."""
    import radapter

    handler = radapter.get_handler(model)
    ok, why = [], []
    for tower in handler.towers(model):
        try:
            handler.sites(model, (tower,), None, ["attn", "mlp"])
            ok.append(tower)
        except radapter.UnsupportedBackboneError as e:
            # the table keeps the message's first clause; the library's message goes on with what is supported
            short = re.split(r"\. |; radapter | \(it has ", str(e))[0]
            why.append(short.replace("the image tower of this open_clip model is a", "image tower:"))
    return tuple(ok), "; ".join(why)


def open_clip_row(name: str, root: str) -> dict:
    import open_clip

    import radapter

    cfg, size = tiny_open_clip_config(name, root)
    # open_clip picks a SigLIP tokenizer (a download) for any config *named* like siglip: keep it out of the name
    path = os.path.join(root, "tiny__" + re.sub("siglip", "sgl", name, flags=re.IGNORECASE) + ".json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = radapter.load_model(path, pretrained="none").model
        towers, why = _adaptable_towers(model)
    _unit_layer_scales(model)
    skipped = [str(w.message) for w in caught if "no adapters in the non-transformer parts" in str(w.message)]
    row = {"config": name, "image": _describe_tower(model, "image"), "text": _describe_tower(model, "text")}
    row["why"] = why
    row["skipped"] = skipped[0].split(": no adapters in the non-transformer parts ")[-1] if skipped else ""
    if not towers:
        return {**row, "adapts": "no"}
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, size, size, generator=gen)
    tokens = _random_tokens(model, 2, gen)

    def reload(d):
        return open_clip.create_model_and_transforms(f"local-dir:{d}")[0]

    res = check_model(model, towers, images, tokens, os.path.join(root, "export", name), reload)
    adapts = "yes" if len(towers) == 2 else f"{towers[0]} only"
    return {**row, **res, "adapts": adapts}


def _hf_configs():
    from transformers import CLIPConfig, Siglip2Config, SiglipConfig

    text = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=16,
    )
    vision = dict(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    clip = CLIPConfig(
        text_config={**text, "eos_token_id": 2, "pad_token_id": 1}, vision_config=vision, projection_dim=24
    )
    siglip = SiglipConfig(text_config=text, vision_config=vision)
    siglip2 = Siglip2Config(
        text_config=text, vision_config={**{k: v for k, v in vision.items() if k != "image_size"}, "num_patches": 16}
    )
    return [
        ("CLIPModel", clip, ("image", "text")),
        ("CLIPVisionModelWithProjection", clip.vision_config, ("image",)),
        ("CLIPTextModelWithProjection", clip.text_config, ("text",)),
        ("SiglipModel", siglip, ("image", "text")),
        ("Siglip2Model", siglip2, ("image", "text")),
    ]


def hf_rows(root: str) -> list[dict]:
    import transformers

    rows = []
    for cls_name, config, towers in _hf_configs():
        cls = getattr(transformers, cls_name)
        torch.manual_seed(0)
        model = cls(config)
        gen = torch.Generator().manual_seed(1)
        images = torch.randn(2, 3, 32, 32, generator=gen)
        tokens = torch.randint(3, TINY_VOCAB - 1, (2, 16), generator=gen)
        tokens[:, -1] = 2
        res = check_model(model, towers, images, tokens, os.path.join(root, "export", cls_name), cls.from_pretrained)
        rows.append(
            {
                "config": f"transformers `{cls_name}`",
                "image": _describe_tower(model, "image") if "image" in towers else "–",
                "text": _describe_tower(model, "text") if "text" in towers else "–",
                "adapts": "yes" if len(towers) == 2 else f"{towers[0]} only",
                "why": "" if len(towers) == 2 else "single-tower model",
                "skipped": "",
                **res,
            }
        )
    return rows


def _passes(row: dict) -> bool:
    return row["adapts"] != "no" and row["merge_err"] <= 1e-5 and row["reload_err"] <= 1e-6 and row["moved"] > 1e-3


def render(rows: list[dict], versions: str) -> str:
    oc = [r for r in rows if not r["config"].startswith("transformers")]
    hf = [r for r in rows if r["config"].startswith("transformers")]
    full = sum(1 for r in oc if r["adapts"] == "yes" and _passes(r))
    part = sum(1 for r in oc if r["adapts"].endswith("only") and _passes(r))
    refused = sum(1 for r in oc if r["adapts"] == "no" and not r["why"].startswith("ERROR"))
    failed = len(oc) - full - part - refused
    timm_rows = [r for r in oc if r["image"].startswith("timm ")]
    lines = [
        "# Backbones R-Adapter adapts",
        "",
        "Generated by `scripts/backbone_table.py` (do not edit by hand) with " + versions + ".",
        "",
        "Each row was built tiny (depth 2, widths 32–64, small images; the config's own tower types, blocks, pooling,",
        "projections, activations and norms), adapted with random non-zero adapters, merged at α = 0.7, exported",
        "with `radapter.export_merged` and reloaded with the plain library (`open_clip.create_model_and_transforms(",
        '"local-dir:…")` / `<Class>.from_pretrained`). **merge** = max |merged − unmerged| / max |unmerged| over both',
        "towers' embeddings (must be ≤ 1e-5), **reload** = the same between the reloaded and the merged model (≤ 1e-6),",
        "**moved** = how far the adapters moved the embeddings from the base model's (must be > 1e-3, so the checks",
        "test something). Sites = adapters (attention + MLP per transformer block of the adapted towers).",
        "",
        f"**open_clip: {len(oc)} configs — {full} adapt both towers, {part} adapt their text tower only (the image "
        f"tower is convolutional), {refused} adapt neither, {failed} failed a check; of the {len(timm_rows)} configs "
        f"with a timm image tower, {sum(1 for r in timm_rows if r['adapts'] == 'yes' and _passes(r))} adapt it.** "
        f"transformers: {sum(_passes(r) for r in hf)} of {len(hf)} classes pass.",
        "",
        "Refused towers are convolutional: open_clip's ModifiedResNet (RN50 …), timm ConvNeXt, and timm FastViT",
        "(MobileCLIP-S*: its last stage's attention blocks mix NCHW maps and use 1×1-convolution MLPs). Their text",
        'towers adapt (`RAdapterConfig(towers="text")`). Hybrids (ViTamin, MobileCLIP-B) adapt their transformer',
        "blocks and warn about the convolutional stem they skip (column *skipped*). Never adapted: pooling heads",
        "(SigLIP / PE-Core attention pooling, CoCa's attentional pooler), projections, embeddings.",
        "",
        "Regenerate: `PYTHONPATH=src python scripts/backbone_table.py` (about a minute on one CPU core).",
        "",
        "| config | image tower | text tower | adapts? | sites | merge | reload | moved | why not / skipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in oc + hf:
        ok = r["adapts"] != "no"
        nums = (
            f"{r['sites']} | {r['merge_err']:.1e} | {r['reload_err']:.1e} | {r['moved']:.1e}" if ok else "– | – | – | –"
        )
        adapts = r["adapts"] if not ok or _passes(r) else f"**FAILED** ({r['adapts']})"
        note = "; ".join(x for x in (r["why"], f"skipped: {r['skipped']}" if r["skipped"] else "") if x)
        lines.append(f"| {r['config']} | {r['image']} | {r['text']} | {adapts} | {nums} | {note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/backbones.md", help="markdown file to write ('-' = stdout)")
    parser.add_argument("--only", nargs="*", help="open_clip config names to check (default: all)")
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers classes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may download; fail fast instead of retrying
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import logging

    import open_clip
    import timm
    import transformers

    transformers.utils.logging.disable_progress_bar()
    logging.disable(logging.WARNING)  # open_clip logs "no pretrained weights" for every random-init build
    names = args.only or open_clip.list_models()
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="backbone-table-") as root:
        for name in names:
            t0 = time.time()
            try:
                row = open_clip_row(name, root)
            except Exception as e:  # a crash is a finding: record it, keep going
                row = {
                    "config": name,
                    "image": "?",
                    "text": "?",
                    "adapts": "no",
                    "why": f"ERROR {type(e).__name__}: {e}",
                    "skipped": "",
                }
            print(f"{name:40s} {row['adapts']:10s} {time.time() - t0:5.1f}s {row.get('why', '')[:90]}", file=sys.stderr)
            rows.append(row)
        if not args.no_hf:
            rows += hf_rows(root)
    versions = f"open_clip {open_clip.__version__}, timm {timm.__version__}, transformers {transformers.__version__}, torch {torch.__version__.split('+')[0]}"
    text = render(rows, versions)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(f"{len(rows)} rows in {time.time() - start:.0f} s", file=sys.stderr)
    return 0 if all(_passes(r) or r["adapts"] == "no" and not r["why"].startswith("ERROR") for r in rows) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

"""Model cards (``README.md``) written next to saved adapters and exported merged models.

Shaped like peft / Hugging Face cards: YAML front matter, what the files are, code that loads them,
the R-Adapter configuration, trainable parameters, results when known, the citation and the radapter
version that wrote them. Pure text; the callers (:func:`radapter.save_adapter`,
:func:`radapter.export_merged`) pass what they know in ``info``:

* ``base_model``: ``{"library": "open_clip" | "transformers", "name": ..., "pretrained": ...}`` as
  recorded by :func:`radapter.backbones.load_model` (names: ``ViT-B-16``, ``local-dir:PATH``,
  ``path/to/model_cfg.json``, ``hf:NAME_OR_PATH``);
* ``config``: the R-Adapter config as a dict (may be empty for a merged model);
* ``trainable_params`` (int or None), optional ``total_params``;
* ``alpha``: the re-scaling α a merged model was merged at;
* ``library_version``: radapter's version (default: the running one);
* ``results``: optional results, as a Markdown table the caller rendered (the application's reports do);
* ``path``: optional folder name to show in the loading code.
"""

from __future__ import annotations

import json
from typing import Any

from ..utils.text import format_params
from ..version import __version__

PAPER_TITLE = "Efficient and Versatile Robust Fine-Tuning of Zero-shot Models"
PAPER_URL = "https://arxiv.org/abs/2408.05749"
CITATION = """@inproceedings{kim2024efficient,
  title     = {Efficient and Versatile Robust Fine-Tuning of Zero-shot Models},
  author    = {Kim, Sungyeon and Jeong, Boseung and Kim, Donghyun and Kwak, Suha},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2024},
  note      = {arXiv:2408.05749}
}"""

_LIBRARIES = {"open_clip": "open_clip", "open-clip": "open_clip", "transformers": "transformers", "hf": "transformers"}
_PLACEHOLDER_DIR = "path/to/this/folder"


def _base(info: dict) -> dict:
    base = dict(info.get("base_model") or {})
    library = _LIBRARIES.get(str(base.get("library", "")).lower())
    if library is None:
        raise ValueError(
            f"model card: base_model.library must be one of {sorted(set(_LIBRARIES.values()))}, "
            f"got {base.get('library')!r}"
        )
    base["library"] = library
    base["name"] = str(base.get("name") or "?")
    if base.get("pretrained") in ("", "none", "None"):
        base["pretrained"] = None
    return base


def describe_base(base: dict) -> str:
    """``"open_clip ViT-B-16 (pretrained: openai)"``, ``"transformers openai/clip-vit-base-patch16"``."""
    name = base["name"].removeprefix("hf:")
    tag = f" (pretrained: {base['pretrained']})" if base.get("pretrained") else ""
    return f"{base['library']} `{name}`{tag}"


def _base_loading_code(base: dict) -> tuple[list[str], list[str]]:
    """(import lines, code lines) that build the base model as ``base`` with plain open_clip or transformers."""
    name = base["name"]
    if base["library"] == "transformers":
        return ["from transformers import CLIPModel"], [
            f"base = CLIPModel.from_pretrained({json.dumps(name.removeprefix('hf:'))})"
        ]
    if name.endswith(".json") and not name.startswith("local-dir:"):
        # A model-config file: open_clip knows it once registered, under the file's stem.
        stem = name.rsplit("/", 1)[-1][: -len(".json")]
        code = [
            f"open_clip.add_model_config({json.dumps(name)})",
            f"base, _, preprocess = open_clip.create_model_and_transforms({json.dumps(stem)})",
        ]
        if not base.get("pretrained"):
            code.append("# randomly initialised base: load the same base weights the adapter was trained on")
        return ["import open_clip"], code
    tag = f", pretrained={json.dumps(base['pretrained'])}" if base.get("pretrained") else ""
    return ["import open_clip"], [
        f"base, _, preprocess = open_clip.create_model_and_transforms({json.dumps(name)}{tag})"
    ]


def _front_matter(library: str, base: dict, tags: list[str]) -> str:
    lines = ["---", f"library_name: {library}"]
    name = base["name"]
    if base["library"] == "transformers" and not name.removeprefix("hf:").startswith(("/", ".")):
        lines.append(f"base_model: {json.dumps(name.removeprefix('hf:'))}")
    lines.append("tags:")
    lines += [f"- {t}" for t in tags]
    lines += ["pipeline_tag: zero-shot-image-classification", "---"]
    return "\n".join(lines)


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def config_table(config: dict) -> str:
    """Two-column Markdown table of a (nested) config; values shown as JSON (``null`` = not set)."""
    lines = ["| field | value |", "|---|---|"]
    for key, value in _flatten(config):
        text = json.dumps(value, ensure_ascii=False).replace("|", "\\|")
        lines.append(f"| `{key}` | `{text}` |")
    return "\n".join(lines)


def _params_line(info: dict) -> str | None:
    n = info.get("trainable_params")
    if n is None:
        return None
    text = f"{n:,} ({format_params(n)})"
    total = info.get("total_params")
    if total:
        text += f" of {total:,} ({100.0 * n / total:.2f} %)"
    return text


def _common_tail(info: dict) -> list[str]:
    parts = []
    if info.get("results"):
        parts += [
            "## Results",
            "",
            str(info["results"]).rstrip("\n"),
            "",
        ]
    parts += [
        "## Citation",
        "",
        f"R-Adapter is from Sungyeon Kim, Boseung Jeong, Donghyun Kim and Suha Kwak, *{PAPER_TITLE}*, "
        f"ECCV 2024 ([arXiv:2408.05749]({PAPER_URL})).",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
        f"Written by radapter {info.get('library_version') or __version__}.",
        "",
    ]
    return parts


def adapter_card(info: dict) -> str:
    """README for a folder written by :func:`radapter.save_adapter` (adapter weights + config)."""
    base = _base(info)
    config = info.get("config") or {}
    alpha = config.get("alpha", 0.5)
    folder = info.get("path") or _PLACEHOLDER_DIR
    imports, code = _base_loading_code(base)
    parts = [
        _front_matter("radapter", base, ["clip", "r-adapter", "robust-fine-tuning", "adapter"]),
        "",
        f"# R-Adapter for {describe_base(base)}",
        "",
        "This folder holds an **R-Adapter** (Kim et al., ECCV 2024): linear adapters after the attention and "
        "MLP of transformer blocks, trained with adapter dropping, an EMA of the adapter weights and re-scaled "
        "by α at inference. It is not a full model: it is loaded on top of the base model below.",
        "",
        "- `adapter_model.safetensors`: adapter tensors (live and EMA weights)",
        "- `adapter_config.json`: the configuration below, the base model and the adapted sites",
        "",
        "## Usage",
        "",
        "```python",
        *sorted([*imports, "import radapter"]),
        "",
        *code,
        f"model = radapter.load_adapter(base, {json.dumps(folder)})  # eval mode: EMA weights, α = {alpha:g}",
        f"merged = radapter.merge_r_adapter(model, alpha={alpha:g})  # a plain {base['library']} model, no adapter code",
        "```",
        "",
        "Merging folds the adapters into the base weights (W' = (I + α·s·F) W), so the merged model has the "
        "base architecture and runs at the base model's cost; `radapter.export_merged(merged, DIR)` saves it "
        "in the base library's own format.",
        "",
        "## R-Adapter configuration",
        "",
        config_table(config) if config else "_not recorded_",
        "",
    ]
    if "rank" in config and config["rank"] is None:
        parts += ["`rank: null` means full rank: each F is a d×d matrix.", ""]
    params = _params_line(info)
    if params:
        parts += [f"**Trainable parameters:** {params}", ""]
    parts += _common_tail(info)
    return "\n".join(parts)


def merged_card(info: dict) -> str:
    """README for a folder written by :func:`radapter.export_merged` (a plain model, adapters merged)."""
    base = _base(info)
    alpha = info.get("alpha")
    at_alpha = f" at α = {alpha:g}" if alpha is not None else ""
    rescaling = f"with re-scaling α = {alpha:g}" if alpha is not None else "(re-scaling α not recorded)"
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        side = "beyond the fine-tuned model" if alpha > 1 else "past the zero-shot model, away from the fine-tuned one"
        rescaling += f" — an extrapolation {side} (WiSE-FT reports such points; they are not interpolations)"
    folder = info.get("path") or _PLACEHOLDER_DIR
    if base["library"] == "transformers":
        library, code = (
            "transformers",
            [
                "from transformers import CLIPModel",
                "",
                f"model = CLIPModel.from_pretrained({json.dumps(folder)})",
                "# preprocessing and tokenizer are unchanged from the base model's",
            ],
        )
    else:
        library, code = (
            "open_clip",
            [
                "import open_clip",
                "",
                f"model, _, preprocess = open_clip.create_model_and_transforms({json.dumps('local-dir:' + folder)})",
                f"tokenizer = open_clip.get_tokenizer({json.dumps('local-dir:' + folder)})",
            ],
        )
    parts = [
        _front_matter(library, base, ["clip", "r-adapter", "robust-fine-tuning", "merged"]),
        "",
        f"# {describe_base(base)} fine-tuned with R-Adapter, merged{at_alpha}",
        "",
        f"A plain {library} CLIP model: the R-Adapter adapters (Kim et al., ECCV 2024) were folded into the "
        f"base weights {rescaling}: W' = (I + α·s·F) W, from the EMA weights. It has exactly "
        "the base architecture and parameter names, runs at the base model's cost and needs no radapter code.",
        "",
        "## Usage",
        "",
        "```python",
        *code,
        "```",
        "",
    ]
    # the merge α above is the one this model has; a config's α (the adapter's default) would contradict it
    config = {k: v for k, v in (info.get("config") or {}).items() if k != "alpha"}
    if config:
        parts += ["## R-Adapter configuration", "", config_table(config), ""]
    params = _params_line(info)
    if params:
        parts += [f"**Parameters trained (adapters, now merged):** {params}", ""]
    parts += _common_tail(info)
    return "\n".join(parts)


def classifier_section(library: str, preprocess: dict | None = None, folder: str | None = None) -> str:
    """Markdown: classifying an image with the exported model and its ``classifier.json`` +
    ``zero_shot_head.safetensors``, in plain open_clip or transformers (no radapter code)."""
    folder = folder or _PLACEHOLDER_DIR
    common = [
        "import json",
        "",
        "import torch",
        "from PIL import Image",
        "from safetensors.torch import load_file",
    ]
    if library == "transformers":
        pp = preprocess or {}
        size = int(pp.get("size", 224)) if not isinstance(pp.get("size"), (list, tuple)) else int(pp["size"][0])
        mean, std = (
            list(pp.get("mean", [0.48145466, 0.4578275, 0.40821073])),
            list(pp.get("std", [0.26862954, 0.26130258, 0.27577711])),
        )
        load = [
            "from transformers import CLIPImageProcessor, CLIPModel",
            "",
            f"folder = {json.dumps(folder)}",
            "model = CLIPModel.from_pretrained(folder).eval()",
            f"processor = CLIPImageProcessor(size={{'shortest_edge': {size}}}, crop_size={{'height': {size}, 'width': {size}}},",
            f"                               image_mean={mean}, image_std={std})",
            'image = processor(images=Image.open("image.jpg").convert("RGB"), return_tensors="pt")["pixel_values"]',
            "with torch.no_grad():",
            "    out = model.get_image_features(pixel_values=image)",
            "    f = out if isinstance(out, torch.Tensor) else out.pooler_output",
        ]
    else:
        load = [
            "import open_clip",
            "",
            f"folder = {json.dumps(folder)}",
            'model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")',
            "model.eval()",
            'image = preprocess(Image.open("image.jpg").convert("RGB")).unsqueeze(0)',
            "with torch.no_grad():",
            "    f = model.encode_image(image)",
        ]
    code = [
        *common,
        *load,
        "f = torch.nn.functional.normalize(f, dim=-1)",
        'head = load_file(f"{folder}/zero_shot_head.safetensors")["head"]  # [classes, dim], unit rows',
        'classnames = json.load(open(f"{folder}/classifier.json"))["classnames"]',
        "print(classnames[(f @ head.T).argmax().item()])",
    ]
    return "\n".join(
        [
            "## Classify an image",
            "",
            "`classifier.json` holds the class names and prompt templates, `zero_shot_head.safetensors` the "
            "zero-shot head built from this model's own text tower (the mean of the templates' embeddings per "
            "class, renormalised) — what the reported accuracies used:",
            "",
            "```python",
            *code,
            "```",
            "",
        ]
    )

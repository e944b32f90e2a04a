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
PLACEHOLDER_DIR = "path/to/this/folder"


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


def _missing_code(key: str) -> str:
    raise ValueError(f"model card: info[{key!r}] must hold the loading code (the backbone handler's snippet)")


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
    folder = info.get("path") or PLACEHOLDER_DIR
    base_code = info.get("base_code") or _missing_code("base_code")
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
        "import radapter",
        base_code,
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
    library = base["library"]
    code = (info.get("load_code") or _missing_code("load_code")).splitlines()
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


def classifier_section(library: str, load_code: str, preprocess: dict | None = None) -> str:
    """Markdown: classifying an image with the exported model and its ``classifier.json`` +
    ``zero_shot_head.safetensors``, in plain open_clip or transformers (no radapter code).

    Args:
        library: "open_clip" or "transformers".
        load_code: The handler's loading snippet; it defines ``model`` (and open_clip's ``preprocess``).
        preprocess: The recorded preprocessing (size, mean, std, resize_mode) for transformers models, whose
            export carries no image processor.
    """
    lines = ["import json", "", "import torch", "from PIL import Image", "from safetensors.torch import load_file"]
    lines += [line for line in load_code.splitlines() if line.strip() and not line.startswith("#")]
    lines.append(f"folder = {json.dumps(PLACEHOLDER_DIR)}")
    if library == "transformers":
        pp = preprocess or {}
        size = pp.get("size", 224)
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        mean = list(pp.get("mean", [0.48145466, 0.4578275, 0.40821073]))
        std = list(pp.get("std", [0.26862954, 0.26130258, 0.27577711]))
        resize = f"T.Resize(({size}, {size}), interpolation=T.InterpolationMode.BICUBIC)"
        if pp.get("resize_mode") != "squash":
            resize = f"T.Resize({size}, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop({size})"
        lines += [
            "from torchvision import transforms as T",
            f"preprocess = T.Compose([{resize}, T.ToTensor(), T.Normalize({mean}, {std})])",
        ]
    lines += [
        "model.eval()",
        'image = preprocess(Image.open("image.jpg").convert("RGB")).unsqueeze(0)',
        "with torch.no_grad():",
    ]
    if library == "transformers":
        lines += [
            "    out = model.get_image_features(pixel_values=image)",
            "    f = out if isinstance(out, torch.Tensor) else out.pooler_output",
        ]
    else:
        lines += ["    f = model.encode_image(image)"]
    lines += [
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
            *lines,
            "```",
            "",
        ]
    )

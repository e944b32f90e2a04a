"""Zero-shot classification heads: the renormalised mean of each class's prompt-template embeddings
(Radford et al., 2021), computed from the (adapted or merged) text encoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES
from torch import nn
from tqdm import tqdm

from .backbones import encode_text

Template = str | Callable[[str], str]

__all__ = [
    "IMAGENET_CLASSNAMES",
    "OPENAI_IMAGENET_TEMPLATES",
    "SIMPLE_IMAGENET_TEMPLATES",
    "build_zero_shot_head",
    "fill_template",
]


def fill_template(template: Template, classname: str) -> str:
    """A template is a callable (open_clip's lambdas) or a string with ``{}`` / ``{c}`` for the class name."""
    if callable(template):
        return template(classname)
    return template.replace("{c}", classname).replace("{}", classname)


@torch.no_grad()
def build_zero_shot_head(
    model: nn.Module,
    tokenizer: Callable[[list[str]], object],
    classnames: Sequence[str],
    templates: Sequence[Template] = OPENAI_IMAGENET_TEMPLATES,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Class embeddings [C, D]: for each class, mean of its L2-normalised template embeddings, renormalised.

    Args:
        model: Any supported model (adapted models should be in eval mode: EMA weights, α).
        tokenizer: Maps a list of strings to the model's token batch.
        classnames: C class names.
        templates: Prompt templates (default: the 80 OpenAI ImageNet templates shipped by open_clip).
    """
    if not templates:
        raise ValueError("build_zero_shot_head: templates must not be empty")
    device = device or next(model.parameters()).device
    texts = [fill_template(t, c) for c in classnames for t in templates]
    chunks = []
    iterator = range(0, len(texts), batch_size)
    if progress:
        iterator = tqdm(iterator, desc="zero-shot head", leave=False)
    for start in iterator:
        tokens = tokenizer(texts[start : start + batch_size])
        tokens = tokens.to(device) if hasattr(tokens, "to") else tokens
        chunks.append(encode_text(model, tokens, normalize=True).float())
    emb = torch.cat(chunks).view(len(classnames), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=-1)

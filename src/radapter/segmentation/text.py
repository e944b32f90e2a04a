"""Text features of a segmentation vocabulary: template ensemble, synonyms averaged, cached when frozen.

For class ``k`` with synonyms ``s_1 … s_m`` (``"sofa, couch, lounge"``) and templates ``t_1 … t_T``::

    t_k = normalise( mean_{i,j} normalise( E_text( t_j(s_i) ) ) )

(CAT-Seg's ``class_embeddings`` averages synonyms the same way; its training path uses the first synonym and
one template, ``"A photo of a {} in the scene"`` — ``synonyms="first"`` and that template reproduce it.)

While the text tower trains (R-Adapter, LoRA, Q/V or full fine-tuning of both towers) the features must be
recomputed every step, with gradient. When nothing of the text tower can change they are cached: the key holds
the vocabulary, the templates, the in-place version counter of every text-tower tensor (an optimizer step or a
merge bumps it) and the α of every adapter, so a stale cache cannot be served after training or ``set_alpha``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import encode_text, get_handler
from ..data.segmentation.classes import split_synonyms

__all__ = ["CATSEG_TEMPLATES", "TextFeatureBank", "class_text_features", "text_tower_parts"]

CATSEG_TEMPLATES: tuple[str, ...] = ("A photo of a {} in the scene",)


def _fill(template: str, name: str) -> str:
    return template.replace("{c}", name).replace("{}", name)


def text_tower_parts(model: nn.Module) -> tuple[list[nn.Module], list[torch.Tensor]]:
    """The modules and loose tensors that determine text features (embeddings, transformer, final LN, projection)."""
    model = getattr(model, "module", model)
    if get_handler(model).library == "transformers":
        return [model.text_model, model.text_projection], []
    if hasattr(model, "text"):  # CustomTextCLIP
        return [model.text], []
    loose = [model.positional_embedding] + ([model.text_projection] if model.text_projection is not None else [])
    return [model.transformer, model.token_embedding, model.ln_final], loose


def class_text_features(
    model: nn.Module,
    tokenizer: Callable[[list[str]], object],
    class_names: Sequence[str],
    templates: Sequence[str] = CATSEG_TEMPLATES,
    synonyms: str = "mean",
    batch_size: int = 1024,
) -> torch.Tensor:
    """[K, D] L2-normalised class embeddings (with gradient when the text tower has trainable parameters).

    Args:
        model: Any supported CLIP.
        tokenizer: ``list[str] -> token batch``.
        class_names: K names, each with optional comma-separated synonyms.
        templates: Prompt templates with ``{}``.
        synonyms: ``"mean"`` (average every synonym) or ``"first"`` (CAT-Seg's training path).
    """
    if not templates:
        raise ValueError("templates must not be empty")
    if synonyms not in ("mean", "first"):
        raise ValueError(f"synonyms must be 'mean' or 'first', got {synonyms!r}")
    texts, owner = [], []
    for k, name in enumerate(class_names):
        syns = split_synonyms(name)
        for s in syns[:1] if synonyms == "first" else syns:
            for t in templates:
                texts.append(_fill(t, s))
                owner.append(k)
    device = next(model.parameters()).device
    chunks = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[i : i + batch_size])
        tokens = tokens.to(device) if hasattr(tokens, "to") else tokens
        chunks.append(F.normalize(encode_text(model, tokens).float(), dim=-1))
    emb = torch.cat(chunks)
    idx = torch.tensor(owner, device=emb.device)
    sums = torch.zeros(len(class_names), emb.shape[1], device=emb.device, dtype=emb.dtype).index_add(0, idx, emb)
    return F.normalize(sums, dim=-1)


class TextFeatureBank:
    """Class embeddings for a model, recomputed while the text tower can change, cached otherwise.

    Args:
        model: The CLIP (adapted, merged or plain).
        tokenizer: ``list[str] -> token batch``.
        templates: Prompt templates.
        synonyms: ``"mean"`` or ``"first"``.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[[list[str]], object],
        templates: Sequence[str] = CATSEG_TEMPLATES,
        synonyms: str = "mean",
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.templates = tuple(templates)
        self.synonyms = synonyms
        self._cache: dict[tuple, torch.Tensor] = {}

    def _state_key(self) -> tuple:
        mods, loose = text_tower_parts(self.model)
        versions = [(id(t), t._version) for t in loose]
        alphas = []
        for mod in mods:
            versions.extend((id(t), t._version) for t in list(mod.parameters()) + list(mod.buffers()))
            for m in mod.modules():
                if hasattr(m, "alpha") and hasattr(m, "ema_update"):  # an R-Adapter: its α changes eval features
                    alphas.append((id(m), m.alpha, m.training))
        return tuple(versions), tuple(alphas)

    def trainable(self) -> bool:
        """Whether the text tower has parameters that require grad (then features are never cached)."""
        mods, loose = text_tower_parts(self.model)
        return any(t.requires_grad for t in loose) or any(p.requires_grad for m in mods for p in m.parameters())

    def clear(self) -> None:
        self._cache.clear()

    def __call__(self, class_names: Sequence[str]) -> torch.Tensor:
        """[K, D] normalised embeddings; with gradient iff grad mode is on and the text tower trains."""
        names = tuple(class_names)
        if torch.is_grad_enabled() and self.trainable():
            return class_text_features(self.model, self.tokenizer, names, self.templates, self.synonyms)
        key = (names, self._state_key())
        hit = self._cache.get(key)
        if hit is None:
            with torch.no_grad():
                hit = class_text_features(self.model, self.tokenizer, names, self.templates, self.synonyms)
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = hit
        return hit

"""CoOp: context optimisation for CLIP-like text towers (Zhou et al., *Learning to Prompt for Vision-Language
Models*, IJCV 2022).

The prompt of class ``c`` is ``[SOS] v_1 … v_M  <name of c> . [EOT]``: M learnable context vectors
``v_i ∈ R^d`` (d = the text tower's width) take the place of the prompt words' token embeddings, the class name
and the full stop keep their own embeddings, and the class token sits at the end. The context is *generic*
(shared by all classes), so a model trained on some classes scores any other class by its name alone. With
text features ``t_c(v) = normalize(TextEncoder([SOS] v_1…v_M e(name_c) e(.) [EOT]))`` and image features
``f(x)``, CoOp minimises the cross-entropy of ``softmax_c(s · ⟨f(x), t_c(v)⟩)`` over the context ``v`` only
(s = CLIP's logit scale; both encoders stay frozen).

Initialisation: random (``v_i ~ N(0, 0.02²)``, seeded) with M = 16 by default, or from a phrase such as
``"a photo of a"``: then M is the phrase's token count and ``v`` its token embeddings, so before training the
class features are exactly CLIP's text features of ``"a photo of a <name>."`` — the text CoOp feeds
(``prefix + " " + name + "."``, with ``_`` in names read as spaces).

How the context enters the tower: the prompt is tokenized with placeholder words (the init phrase, or ``X``
repeated M times, as in CoOp), and a forward hook on the tower's token-embedding layer replaces positions
``1 … M`` of its output by the context. Everything after that — positional embeddings, the causal mask, the
transformer, the final LayerNorm, pooling at the EOT token and the projection — is the library's own forward
(open_clip's ``encode_text`` with ``text_global_pool``; transformers' ``get_text_features``), run on the real
token ids, so pooling finds the EOT exactly as the library does. This also works on a tower carrying adapters.
Deviation from CoOp: with a phrase, M counts tokens, not words (CoOp counts words, which only agree while every
word is one BPE token).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from open_clip.model import CLIP, CustomTextCLIP
from open_clip.transformer import TextTransformer
from torch import nn
from torch.nn import functional as F

from ..backbones import UnsupportedBackboneError, encode_text
from ..utils import atomic_save_safetensors, atomic_write_text, load_safetensors
from ..version import __version__

__all__ = ["COOP_CONFIG_NAME", "COOP_WEIGHTS_NAME", "DEFAULT_N_CTX", "CoOpPromptLearner"]

#: Context length of CoOp's main experiments.
DEFAULT_N_CTX = 16
#: Files of a saved context, next to each other in one folder.
COOP_CONFIG_NAME = "coop_config.json"
COOP_WEIGHTS_NAME = "coop_context.safetensors"
_PLACEHOLDER = "X"
_FORMAT_VERSION = 1


def _text_tower(model: nn.Module) -> tuple[str, nn.Embedding, Callable[[torch.Tensor], torch.Tensor]]:
    """``(library, token embedding, pooling index of token ids)`` of a supported model's text tower."""
    if isinstance(model, CLIP):
        return "open_clip", model.token_embedding, _open_clip_pool(model.text_pool_type, model.text_eos_id, None)
    if isinstance(model, CustomTextCLIP) and isinstance(model.text, TextTransformer):
        text = model.text
        return "open_clip", text.token_embedding, _open_clip_pool(text.pool_type, text.eos_id, text.cls_emb)
    try:
        from transformers import CLIPModel
    except ImportError:  # pragma: no cover
        CLIPModel = ()
    if isinstance(model, CLIPModel):
        eos = model.config.text_config.eos_token_id  # what CLIPTextModel pools by (4.57 and 5.x alike)
        return "transformers", model.text_model.embeddings.token_embedding, _hf_pool(eos)
    raise UnsupportedBackboneError(
        f"CoOp needs a text tower with token embeddings: open_clip CLIP / CustomTextCLIP with a TextTransformer, "
        f"or transformers CLIPModel; got {type(model).__name__}"
    )


def _open_clip_pool(pool_type: str, eos_id: int | None, cls_emb: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    # Mirrors open_clip 3.3's text_global_pool (and TextTransformer's appended CLS token, pooled last).
    def pool(ids: torch.Tensor) -> torch.Tensor:
        if cls_emb is not None or pool_type == "last":
            return torch.full((ids.shape[0],), ids.shape[1] - (cls_emb is None), dtype=torch.long)
        if pool_type == "argmax":
            return ids.argmax(dim=-1)
        if pool_type == "eos":
            return (ids == eos_id).int().argmax(dim=-1)
        raise TypeError(f"open_clip text pool_type {pool_type!r} pools before the context; CoOp cannot use it")

    return pool


def _hf_pool(eos_token_id: int) -> Callable[[torch.Tensor], torch.Tensor]:
    # Mirrors transformers' CLIPTextModel: the legacy eos_token_id == 2 configs pool at the largest id.
    def pool(ids: torch.Tensor) -> torch.Tensor:
        if eos_token_id == 2:
            return ids.argmax(dim=-1)
        return (ids == eos_token_id).int().argmax(dim=-1)

    return pool


def _input_ids(tokens: Any) -> torch.Tensor:
    ids = tokens if isinstance(tokens, torch.Tensor) else tokens["input_ids"] if "input_ids" in tokens else None
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise TypeError(
            "the tokenizer must return a [batch, length] tensor of token ids, or a mapping with such 'input_ids' "
            "(use the tokenizer radapter's load_model returns, which pads to the context length)"
        )
    return ids


class CoOpPromptLearner(nn.Module):
    """Learnable generic context for a frozen CLIP-like model (CoOp, class token at the end).

    The learner's only parameter is ``ctx`` (shape ``[M, d]``); the model is held by reference, not as a
    sub-module, so ``parameters()``, ``state_dict()`` and ``.to()`` concern the context alone.

    Args:
        model: open_clip ``CLIP`` / ``CustomTextCLIP`` (native text transformer) or ``transformers.CLIPModel``.
        tokenizer: ``list[str] -> token ids`` (a ``[B, L]`` tensor or a mapping with ``input_ids``), as
            :func:`radapter.encode_text` accepts it.
        n_ctx: Number of context vectors M. Default 16 with random init; with ``init`` the phrase's token
            count (passing another value is an error).
        init: ``None`` (random, ``N(0, 0.02²)``) or a phrase such as ``"a photo of a"`` (``_`` read as space).
        seed: Seed of the random initialisation (a private generator; the global RNG is not touched).
        freeze_model: Turn off gradients of every model parameter (CoOp trains the context only).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[[list[str]], Any],
        n_ctx: int | None = None,
        init: str | None = None,
        seed: int = 0,
        freeze_model: bool = True,
    ) -> None:
        super().__init__()
        library, embedding, pool = _text_tower(model)
        # Plain attributes (not sub-modules): the learner's parameters and state are the context alone.
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "_embedding", embedding)
        self.tokenizer, self.library, self._pool = tokenizer, library, pool
        self.init, self.seed = (init.replace("_", " ").strip() or None) if init else None, int(seed)
        if freeze_model:
            for p in model.parameters():
                p.requires_grad_(False)
        weight = embedding.weight
        if self.init is None:
            n_ctx = DEFAULT_N_CTX if n_ctx is None else n_ctx
            if isinstance(n_ctx, bool) or int(n_ctx) != n_ctx or n_ctx < 1:
                raise ValueError(f"n_ctx must be a positive integer, got {n_ctx!r}")
            self.prefix = " ".join([_PLACEHOLDER] * int(n_ctx))
            generator = torch.Generator().manual_seed(self.seed)
            ctx = torch.randn(int(n_ctx), weight.shape[1], generator=generator) * 0.02
        else:
            self.prefix = self.init
        self.n_ctx = self._count_prefix_tokens()
        if self.init is None and self.n_ctx != n_ctx:
            raise ValueError(
                f"the tokenizer splits the placeholder {_PLACEHOLDER!r} into several tokens; CoOp needs one"
            )
        if self.init is not None:
            if n_ctx is not None and n_ctx != self.n_ctx:
                raise ValueError(f"n_ctx={n_ctx} but the init phrase {self.init!r} has {self.n_ctx} tokens")
            with torch.no_grad():
                ids = _input_ids(self.tokenizer([self.prefix])).to(weight.device)
                ctx = embedding(ids)[0, 1 : 1 + self.n_ctx].float().cpu()
        self.ctx = nn.Parameter(ctx.to(device=weight.device, dtype=torch.float32))
        self._token_cache: dict[tuple[str, ...], tuple[Any, torch.Tensor]] = {}

    # ----------------------------------------------------------------------------------------------- tokens
    def _count_prefix_tokens(self) -> int:
        """M = number of tokens between the start token and the end of the prefix, checked on the tokenizer."""
        ids = _input_ids(self.tokenizer(["", self.prefix, f"{self.prefix} {_PLACEHOLDER}."]))
        empty, prefix, longer = ids[0], ids[1], ids[2]
        if prefix[0] != empty[0]:
            raise ValueError("the tokenizer adds no start token; CoOp's context goes right after it")
        differs = (prefix != longer).nonzero()
        if len(differs) == 0:
            raise ValueError(f"the tokenizer's context length cannot hold the prompt {self.prefix!r} plus a class")
        return int(differs[0]) - 1

    def prompt_texts(self, classnames: Sequence[str]) -> list[str]:
        """The texts tokenized for each class: ``"<prefix> <name>."`` (CoOp's prompt, ``_`` read as space)."""
        return [f"{self.prefix} {name.replace('_', ' ')}." for name in classnames]

    def tokens(self, classnames: Sequence[str]) -> tuple[Any, torch.Tensor]:
        key = tuple(classnames)
        if key not in self._token_cache:
            if not key:
                raise ValueError("classnames must not be empty")
            tokens = self.tokenizer(self.prompt_texts(key))
            ids = _input_ids(tokens)
            head = _input_ids(self.tokenizer([self.prefix]))[0, : 1 + self.n_ctx]
            bad = [c for c, row in zip(key, ids) if not torch.equal(row[: 1 + self.n_ctx], head)]
            pooled = self._pool(ids)
            bad += [c for c, at in zip(key, pooled.tolist()) if at <= self.n_ctx]
            if bad:
                raise ValueError(
                    f"cannot place the context in the prompts of {bad[:3]}: the tokens after the start token must "
                    f"be the {self.n_ctx} context tokens, and the pooled end token must come after them"
                )
            if len(self._token_cache) > 32:  # a few class lists per run (base, novel, targets)
                self._token_cache.clear()
            self._token_cache[key] = (tokens, ids)
        return self._token_cache[key]

    @contextlib.contextmanager
    def _spliced(self, ids: torch.Tensor) -> Iterator[None]:
        """While active, the token-embedding layer returns the context at positions ``1 … M`` for ``ids``."""
        m = self.n_ctx

        def hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if args[0].shape != ids.shape:
                raise RuntimeError(
                    f"CoOp hook saw token ids of shape {tuple(args[0].shape)}, expected {tuple(ids.shape)}"
                )
            ctx = self.ctx.to(output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
            return torch.cat([output[:, :1], ctx, output[:, 1 + m :]], dim=1)

        handle = self._embedding.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    # ----------------------------------------------------------------------------------------------- features
    def class_features(self, classnames: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text features ``[C, D]`` of the classes' prompts with the learned context.

        Differentiable with respect to ``ctx`` only (the model is frozen). Any class names work, including
        classes never trained on (base-to-novel and cross-dataset evaluation).

        Args:
            classnames: C class names (``_`` read as space).
            normalize: L2-normalise each row (default; CoOp's logits are ``scale · f · tᵀ`` of unit vectors).
        """
        tokens, ids = self.tokens(classnames)
        device = self._embedding.weight.device
        tokens = tokens.to(device) if hasattr(tokens, "to") else tokens
        with self._spliced(_input_ids(tokens)):
            features = encode_text(self.model, tokens)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, classnames: Sequence[str]) -> torch.Tensor:
        """Same as :meth:`class_features` (normalised)."""
        return self.class_features(classnames)

    def extra_repr(self) -> str:
        return f"n_ctx={self.n_ctx}, ctx_dim={self.ctx.shape[1]}, init={self.init!r}, library={self.library}"

    # ----------------------------------------------------------------------------------------------- saving
    def config(self) -> dict[str, Any]:
        """What :meth:`load` needs to rebuild the learner (written to ``coop_config.json``)."""
        base = getattr(self.model, "radapter_base_info", None) or {}
        return {
            "method": "coop",
            "format_version": _FORMAT_VERSION,
            "radapter_version": __version__,
            "n_ctx": self.n_ctx,
            "ctx_dim": int(self.ctx.shape[1]),
            "init": self.init,
            "seed": self.seed,
            "class_token_position": "end",
            "context": "generic",
            "library": self.library,
            "base_model": json.loads(json.dumps(base, default=str)),
        }

    def save(self, directory: str | os.PathLike) -> None:
        """Writes ``coop_context.safetensors`` (``ctx``, float32) and ``coop_config.json`` to ``directory``."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        atomic_save_safetensors(
            {"ctx": self.ctx.detach().float()}, os.path.join(directory, COOP_WEIGHTS_NAME), metadata={"format": "pt"}
        )
        atomic_write_text(os.path.join(directory, COOP_CONFIG_NAME), json.dumps(self.config(), indent=2) + "\n")

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        model: nn.Module,
        tokenizer: Callable[[list[str]], Any],
        freeze_model: bool = True,
    ) -> CoOpPromptLearner:
        """Rebuilds a saved learner on ``model`` (the same base model it was trained with).

        Raises:
            FileNotFoundError: A file is missing.
            ValueError: Not a CoOp folder, or a context whose shape does not fit the model's text tower.
        """
        directory = os.fspath(directory)
        config_path = os.path.join(directory, COOP_CONFIG_NAME)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(
                f"{config_path}: missing (a CoOp folder holds {COOP_CONFIG_NAME} + {COOP_WEIGHTS_NAME})"
            )
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        if config.get("method") != "coop":
            raise ValueError(f"{config_path}: method is {config.get('method')!r}, expected 'coop'")
        ctx = load_safetensors(os.path.join(directory, COOP_WEIGHTS_NAME)).get("ctx")
        if ctx is None or tuple(ctx.shape) != (config["n_ctx"], config["ctx_dim"]):
            shape = None if ctx is None else tuple(ctx.shape)
            raise ValueError(
                f"{directory}: 'ctx' has shape {shape}, the config says ({config['n_ctx']}, {config['ctx_dim']})"
            )
        init = config.get("init")
        n_ctx = None if init else config["n_ctx"]
        learner = cls(model, tokenizer, n_ctx=n_ctx, init=init, seed=config.get("seed", 0), freeze_model=freeze_model)
        if tuple(learner.ctx.shape) != tuple(ctx.shape):
            raise ValueError(
                f"{directory}: saved context {tuple(ctx.shape)} does not fit this model's text tower "
                f"({learner.n_ctx} tokens of width {learner.ctx.shape[1]})"
            )
        with torch.no_grad():
            learner.ctx.copy_(ctx.to(learner.ctx.device))
        return learner

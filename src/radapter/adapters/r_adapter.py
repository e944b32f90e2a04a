"""The R-Adapter module, adapter dropping and EMA accumulation (Kim et al., ECCV 2024, §3.2–3.3).

Every adapted sub-layer computes, on the output ``h`` of the linear layer that feeds the residual add::

    A(h) = h + a · s · drop(F h)        F: d×d (full rank) or U·D (low rank), zero-initialised

* training mode: live parameters, ``a = 1``, dropping active;
* eval mode: EMA parameters ``s̃, F̃`` (self-ensemble by accumulation) and ``a = α`` (re-scaling).

Dropping is a multiplication by a Bernoulli(1−p)/(1−p) mask, never a skipped branch, so every parameter
takes part in every step (DDP needs that). ``token`` granularity draws one mask per token position shared
across the batch — the authors' code applies timm DropPath to [tokens, batch, dim] tensors, which does exactly
that and produced the published numbers; ``sample`` draws per sample, ``adapter`` once per adapter call
(the paper's formula).

EMA (§3.3b): after every optimizer step ``θ̃ ← m θ̃ + (1 − m) θ`` for F (or U, D) and s, from step 0, no
warm-up, no bias correction. The EMA copies are buffers: not trainable, saved with the adapter.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from .config import RAdapterConfig

EMA_UNTOUCHED = (
    "R-Adapter: the adapters trained but their EMA never moved, so eval mode and merging (which use the EMA "
    "weights) give back the zero-shot model. Call radapter.ema_update(model) after every optimizer step, or "
    "merge with use_ema=False."
)


class RAdapter(nn.Module):
    """A linear residual adapter ``h ↦ h + a·s·drop(F h)`` on the last dimension.

    Args:
        dim: Feature size d.
        rank: None for full rank, or r < d for ``F = U·D``.
        init_scale: Initial value of the learnable scalar s.
        drop_prob: Dropping probability p (training only).
        drop_granularity: "token", "sample" or "adapter".
        alpha: Re-scaling used in eval mode (ignored when ``config`` is given).
        config: The model's :class:`RAdapterConfig`, shared by all its adapters: eval mode reads α from it, so
            ``set_alpha`` (or ``model.radapter_config.alpha = …``) changes every adapter at once.
    """

    def __init__(
        self,
        dim: int,
        rank: int | None = None,
        init_scale: float = 0.1,
        drop_prob: float = 0.2,
        drop_granularity: str = "token",
        alpha: float = 0.5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        config: RAdapterConfig | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.low_rank = rank is not None and rank < dim
        self.rank = rank if self.low_rank else dim
        self.drop_prob = float(drop_prob)
        self.drop_granularity = drop_granularity
        # α has one owner: the config (shared by every adapter of a model), never a per-adapter copy
        self.config = config if config is not None else RAdapterConfig(alpha=float(alpha))
        factory = {"device": device, "dtype": dtype}
        if self.low_rank:
            # D random (as LoRA's A), U zero: the product U·D is zero, so training starts at the zero-shot model.
            self.down = nn.Parameter(torch.empty(rank, dim, **factory))
            nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
            self.up = nn.Parameter(torch.zeros(dim, rank, **factory))
        else:
            self.weight = nn.Parameter(torch.zeros(dim, dim, **factory))
        self.scale = nn.Parameter(torch.tensor(float(init_scale), **factory))
        for name in self.param_names:
            self.register_buffer(f"ema_{name}", getattr(self, name).detach().clone())

    @property
    def alpha(self) -> float:
        """The eval-mode re-scaling α (read from the shared config)."""
        return float(self.config.alpha)

    def ema_untouched(self) -> bool:
        """True when the live adapter moved away from zero but its EMA never did: ``ema_update`` was never
        called, so eval mode and merging (which use the EMA) would give back the zero-shot model."""
        name = "up" if self.low_rank else "weight"
        live, ema = getattr(self, name), getattr(self, f"ema_{name}")
        return bool(live.detach().abs().sum() > 0) and not bool(ema.abs().sum() > 0)

    def train(self, mode: bool = True) -> RAdapter:
        if not mode and self.training and self.ema_untouched():
            warnings.warn(EMA_UNTOUCHED, stacklevel=3)
        return super().train(mode)

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("down", "up", "scale") if self.low_rank else ("weight", "scale")

    def delta_weight(self, use_ema: bool = True) -> torch.Tensor:
        """The d×d matrix ``s·F`` (``s̃·F̃`` from the EMA when ``use_ema``), in fp32 for merging."""
        prefix = "ema_" if use_ema else ""
        scale = getattr(self, prefix + "scale").float()
        if self.low_rank:
            mat = getattr(self, prefix + "up").float() @ getattr(self, prefix + "down").float()
        else:
            mat = getattr(self, prefix + "weight").float()
        return scale * mat

    def _drop_mask(self, h: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.drop_prob
        if self.drop_granularity == "token":
            shape = (1,) * (h.dim() - 2) + (h.shape[-2], 1) if h.dim() >= 3 else (h.shape[0], 1)
        elif self.drop_granularity == "sample":
            shape = (h.shape[0],) + (1,) * (h.dim() - 1)
        else:
            shape = (1,) * h.dim()
        return torch.empty(shape, device=h.device, dtype=h.dtype).bernoulli_(keep).div_(keep)

    def _transform(self, h: torch.Tensor, prefix: str) -> torch.Tensor:
        """``F h`` (``U (D h)`` for low rank) on the last dimension."""
        if self.low_rank:
            return (h @ getattr(self, prefix + "down").to(h.dtype).t()) @ getattr(self, prefix + "up").to(h.dtype).t()
        return h @ getattr(self, prefix + "weight").to(h.dtype).t()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            prefix, a = "", 1.0
        else:
            prefix, a = "ema_", self.alpha
            if a == 0.0:
                return h  # α = 0 is the zero-shot model bit for bit
        scale = (a * getattr(self, prefix + "scale")).to(h.dtype)
        if self.training and self.drop_prob > 0.0:
            mask = self._drop_mask(h)
            if self.drop_granularity != "adapter":
                # A token (or sample) mask zeroes whole rows of F h, so F is applied to the kept rows only: the
                # same result (dropped rows are h exactly, kept rows h + s·(F h)·1/(1-p)), the same random draws,
                # and p fewer matmul FLOPs forward and backward (ViT-B/16 full rank, p = 0.2: adapter fwd+bwd
                # 56 → 46 ms per site and step at batch 8). Every parameter still enters the graph (DDP-safe),
                # even when no row is kept.
                dim = 0 if self.drop_granularity == "sample" or h.dim() < 3 else h.dim() - 2
                kept = mask.reshape(-1).nonzero().squeeze(1)
                u = self._transform(h.index_select(dim, kept), prefix) * mask.index_select(dim, kept)
                return h.index_add(dim, kept, scale * u)
            return h + scale * (self._transform(h, prefix) * mask)
        return h + scale * self._transform(h, prefix)

    @torch.no_grad()
    def ema_update(self, momentum: float) -> None:
        for name in self.param_names:
            live, ema = getattr(self, name), getattr(self, f"ema_{name}")
            if momentum == 0.0:
                ema.copy_(live)
            else:
                ema.mul_(momentum).add_(live.detach(), alpha=1.0 - momentum)

    def extra_repr(self) -> str:
        kind = f"low rank r={self.rank}" if self.low_rank else "full rank"
        return f"dim={self.dim}, {kind}, p={self.drop_prob} ({self.drop_granularity}), alpha={self.alpha}"


class AdaptedSubLayer(nn.Module):
    """Puts an adapter on the output of a merge-able linear layer without touching the backbone's code.

    It replaces one child module of a block and calls the original (``base``) plus the adapter:

    * ``order="post"``: ``adapter(base(x))`` — ``base`` is the linear itself (Hugging Face ``out_proj``, ``fc2``);
    * ``order="pre"``: ``base(adapter(x))`` — ``base`` is the module that receives the linear's output
      (open_clip's ``ls_1``/``ls_2``, Identity or LayerScale). open_clip's attention is
      ``nn.MultiheadAttention``, which reads ``out_proj.weight`` directly and never calls ``out_proj.forward``,
      so a wrapper on ``out_proj`` would silently do nothing.
    """

    def __init__(self, base: nn.Module, adapter: RAdapter, order: str) -> None:
        super().__init__()
        if order not in ("pre", "post"):
            raise ValueError(f"order must be 'pre' or 'post', got {order!r}")
        self.base = base
        self.adapter = adapter
        self.order = order

    def forward(self, *args, **kwargs):
        if self.order == "post":
            return self.adapter(self.base(*args, **kwargs))
        return self.base(self.adapter(args[0]), *args[1:], **kwargs)


def iter_adapters(model: nn.Module) -> Iterator[tuple[str, RAdapter]]:
    """Yields ``(site_name, adapter)`` for every R-Adapter in ``model`` in insertion order."""
    sites = getattr(model, "radapter_sites", None)
    if sites is None:
        raise ValueError("model has no R-Adapter; call radapter.apply_r_adapter(model, config) first")
    for site in sites:
        wrapper = model.get_submodule(site.wrap_path)
        if not isinstance(wrapper, AdaptedSubLayer):
            raise RuntimeError(f"adapter site {site.name} ({site.wrap_path}) is no longer adapted")
        yield site.name, wrapper.adapter


def get_config(model: nn.Module) -> RAdapterConfig:
    cfg = getattr(model, "radapter_config", None)
    if cfg is None:
        raise ValueError("model has no R-Adapter; call radapter.apply_r_adapter(model, config) first")
    return cfg


@torch.no_grad()
def ema_update(model: nn.Module, momentum: float | None = None) -> None:
    """Accumulates ``θ̃ ← m θ̃ + (1 − m) θ`` for every adapter parameter; call after each optimizer step.

    Args:
        model: A model returned by ``apply_r_adapter`` (or wrapped in DDP).
        momentum: Overrides ``config.ema_momentum``; 0.0 copies the live weights (the "no EMA" ablation).
    """
    model = getattr(model, "module", model)
    m = get_config(model).ema_momentum if momentum is None else float(momentum)
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {m}")
    for _, adapter in iter_adapters(model):
        adapter.ema_update(m)


def set_alpha(model: nn.Module, alpha: float) -> None:
    """Sets the eval-mode re-scaling α of every adapter (training mode always uses α = 1): ``model``'s config
    holds the one α its adapters read."""
    model = getattr(model, "module", model)
    get_config(model).alpha = float(alpha)


def check_ema(model: nn.Module) -> None:
    """Warns when any adapter trained but its EMA never moved (a loop without ``ema_update``)."""
    model = getattr(model, "module", model)
    if any(adapter.ema_untouched() for _, adapter in iter_adapters(model)):
        warnings.warn(EMA_UNTOUCHED, stacklevel=3)


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Live and EMA adapter tensors keyed ``<site>.<name>`` (``image.3.attn.weight``, ``…ema_weight``)."""
    model = getattr(model, "module", model)
    out: dict[str, torch.Tensor] = {}
    for site, adapter in iter_adapters(model):
        for key, tensor in adapter.state_dict().items():
            out[f"{site}.{key}"] = tensor.detach()
    return out


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    model = getattr(model, "module", model)
    return [p for _, adapter in iter_adapters(model) for p in adapter.parameters()]
